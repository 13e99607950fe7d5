"""Ops with a reference (pure PyTorch) and a fused implementation behind one signature.

``bias_act``, ``upfirdn2d`` (with ``setup_filter``, ``filter2d``, ``upsample2d``, ``downsample2d``),
``conv2d_resample`` and ``filtered_lrelu`` (StyleGAN3); ``impl='auto'`` picks the fused kernel where
``sgtrain.ops._backend.use_fused`` allows. ``conv2d_gradfix``: the convolution of ``conv2d_resample``, whose backward
skips weight gradients inside ``no_weight_gradients()`` (R1, path length). ``sgtrain-ops info`` says which path each
op takes on a machine and why (``sgtrain.ops.build.op_paths``).
"""
