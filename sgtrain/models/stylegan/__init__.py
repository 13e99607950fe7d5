"""StyleGAN (Karras et al. 2019): ``networks.py`` (NVlabs' TF ``G_style`` / ``D_basic``), ``loss.py``, ``tf.py``
(their TensorFlow pickles). Style-based (W space, mapping layers ``mapping.fc<i>``) and progressive.
"""

from sgtrain.core.schedule import progressive_transfer_settings
from sgtrain.models.family import Family

from .loss import StyleGANLoss
from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all

__all__ = ["FAMILY", "StyleGANLoss", *_networks_all]

FAMILY = Family(
    name="stylegan", display_name="StyleGAN", package=__name__, w_space=True, progressive=True,
    mapping_layer="mapping.fc{i}.", transfer_settings=progressive_transfer_settings,
    tf_builds={"G_style": f"{__name__}.tf:convert", "D_basic": f"{__name__}.tf:convert"},
)
