"""StyleGAN (Karras et al. 2019): ``networks.py`` (NVlabs' TF ``G_style`` / ``D_basic``), ``loss.py``, ``tf.py``
(their TensorFlow pickles). Style-based (W space, mapping layers ``mapping.fc<i>``) and progressive.
"""

from sgtrain.core.schedule import progressive_transfer_settings
from sgtrain.models.family import Family, refuse_non_square

from .loss import StyleGANLoss
from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all

__all__ = ["FAMILY", "StyleGANLoss", *_networks_all]


def check_config(cfg, per_pass_batches: list[int]) -> None:
    """StyleGAN builds square networks only: W x H data is refused, naming the fix (``refuse_non_square``)."""
    del per_pass_batches
    refuse_non_square(cfg, "StyleGAN", "a progressive family grows square levels")


FAMILY = Family(
    name="stylegan", display_name="StyleGAN", package=__name__, check_config=check_config, w_space=True,
    progressive=True, mapping_layer="mapping.fc{i}.", transfer_settings=progressive_transfer_settings,
    tf_builds={"G_style": f"{__name__}.tf:convert", "D_basic": f"{__name__}.tf:convert"},
)
