"""ProGAN (Karras et al. 2018): ``networks.py`` (NVlabs' TF ``G_paper`` / ``D_paper``), ``loss.py`` (WGAN-GP),
``tf.py`` (their TensorFlow pickles). Grows progressively (``lod`` buffers,
:class:`sgtrain.core.schedule.ProgressiveSchedule`).
"""

from sgtrain.core.schedule import progressive_transfer_settings
from sgtrain.models.family import Family, refuse_non_square

from .loss import WGANGPLoss
from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all

__all__ = ["FAMILY", "WGANGPLoss", *_networks_all]


def check_config(cfg, per_pass_batches: list[int]) -> None:
    """ProGAN builds square networks only: W x H data is refused, naming the fix (``refuse_non_square``)."""
    del per_pass_batches
    refuse_non_square(cfg, "ProGAN", "a progressive family grows square levels")


FAMILY = Family(
    name="progan", display_name="ProGAN", package=__name__, check_config=check_config, progressive=True,
    transfer_settings=progressive_transfer_settings,
    tf_builds={"G_paper": f"{__name__}.tf:convert", "D_paper": f"{__name__}.tf:convert"},
)
