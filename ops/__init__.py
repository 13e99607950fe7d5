"""CUDA/C++ sources of sgtrain's fused ops (installed as the package data ``sgtrain.ops.csrc``; built by ninja)."""
