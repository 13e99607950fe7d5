"""StyleGAN3 (Karras et al. 2021), configs T and R: ``networks.py`` (NVlabs' keywords and keys; its D is StyleGAN2's,
as NVlabs trains it, and so is its loss). Style-based, with a translatable / rotatable synthesis input.
"""

from sgtrain.models.family import Family
from sgtrain.models.stylegan2 import check_config, transfer_settings

from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all

__all__ = ["FAMILY", *_networks_all]

FAMILY = Family(
    name="stylegan3", display_name="StyleGAN3", package=__name__, w_space=True, input_transform=True,
    mapping_layer="mapping.fc{i}.", check_config=check_config, transfer_settings=transfer_settings,
    nvlabs_classes=(("Generator", frozenset({"SynthesisInput", "SynthesisLayer", "MappingNetwork"}),
                     f"{__name__}.networks.Generator"),),
)
