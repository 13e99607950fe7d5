"""Network families. ``sgtrain.models.stylegan2``: StyleGAN2 Generator / Discriminator with NVlabs' keys."""
