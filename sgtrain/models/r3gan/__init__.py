"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"): ``networks.py``
(Generator, Discriminator under the authors' keywords and state_dict keys), ``loss.py`` (RpGAN + R1 + R2).

z only (no W space), not progressive, no input transform. StyleGAN-only config keys are refused.
"""

from sgtrain.models.family import Family

from .networks import Discriminator, Generator

__all__ = ["FAMILY", "Discriminator", "Generator"]

FAMILY = Family(name="r3gan", display_name="R3GAN", package=__name__,
                refused_keys=("loss.pl_weight", "model.mapping_kwargs"))
