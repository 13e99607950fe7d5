"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"): ``networks.py``
(Generator, Discriminator under the authors' keywords and state_dict keys), ``loss.py`` (RpGAN + R1 + R2),
``pickles.py`` (the authors' snapshot pickles, read without their code).

z only (no W space), not progressive, no input transform. StyleGAN-only config keys are refused.
"""

from sgtrain.io.safe_pickle import allow_module_classes
from sgtrain.models.family import Family

from .networks import Discriminator, Generator
from .pickles import PICKLE_CLASSES

__all__ = ["FAMILY", "Discriminator", "Generator"]

allow_module_classes(PICKLE_CLASSES)

FAMILY = Family(
    name="r3gan", display_name="R3GAN", package=__name__,
    refused_keys=("loss.pl_weight", "model.mapping_kwargs", "model.G.mapping_kwargs"),
    checkpoint_readers=((f"{__name__}.pickles:is_r3gan_snapshot", f"{__name__}.pickles:load_r3gan_snapshot"),),
)
