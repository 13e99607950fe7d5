"""StyleGAN3 (Karras et al. 2021), configs T and R: ``networks.py`` (NVlabs' keywords and keys; its D is StyleGAN2's,
as NVlabs trains it, and so is its loss). Style-based, with a translatable / rotatable synthesis input.
"""

from sgtrain.models.family import Family, refuse_non_square
from sgtrain.models.stylegan2 import check_config as _stylegan2_check_config
from sgtrain.models.stylegan2 import transfer_settings

from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all

__all__ = ["FAMILY", "check_config", *_networks_all]


def check_config(cfg, per_pass_batches: list[int]) -> None:
    """StyleGAN2's checks (path length batch), and square data only: this StyleGAN3 samples its input Fourier
    features on a square grid (no W x H synthesis input yet), so W x H data is refused naming the fix."""
    _stylegan2_check_config(cfg, per_pass_batches)
    refuse_non_square(cfg, "StyleGAN3", "its synthesis input is a square grid")

FAMILY = Family(
    name="stylegan3", display_name="StyleGAN3", package=__name__, w_space=True, input_transform=True,
    mapping_layer="mapping.fc{i}.", check_config=check_config, transfer_settings=transfer_settings,
    nvlabs_classes=(("Generator", frozenset({"SynthesisInput", "SynthesisLayer", "MappingNetwork"}),
                     f"{__name__}.networks.Generator"),),
)
