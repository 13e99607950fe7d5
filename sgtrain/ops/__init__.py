"""Ops with a reference (pure PyTorch) and a fused implementation behind one signature.

``bias_act``, ``upfirdn2d`` (with ``setup_filter``, ``filter2d``, ``upsample2d``, ``downsample2d``),
``conv2d_resample`` and ``filtered_lrelu`` (StyleGAN3); ``impl='auto'`` picks the fused kernel where
``sgtrain.ops._backend.use_fused`` allows.
"""
