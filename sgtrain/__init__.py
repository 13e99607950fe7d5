"""sgtrain: distributed training of progressive and style-based GANs.

ProGAN, StyleGAN, StyleGAN2 (with ADA) and StyleGAN3 on PyTorch Lightning and Hydra, with
NVlabs-compatible networks (same constructor keywords, state_dict keys and outputs) and the
latent-space tools used once a generator exists.
"""

__version__ = "0.1.0"
