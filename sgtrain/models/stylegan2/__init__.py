"""StyleGAN2 (Karras et al. 2020): ``networks.py`` (NVlabs' keywords and keys), ``loss.py`` (StyleGAN2Loss, also
StyleGAN3's), ``tf.py`` (NVlabs' StyleGAN2 TensorFlow pickles), ``rosinality.py`` (rosinality's checkpoints).
NVlabs' PyTorch pickles (stylegan2-ada-pytorch, stylegan3) are read by :mod:`sgtrain.io.nvlabs` for the classes
this descriptor claims.
"""

from __future__ import annotations

from typing import Any

from sgtrain.models.family import Family

from .loss import StyleGAN2Loss
from .networks import *  # noqa: F403
from .networks import __all__ as _networks_all
from .networks import _to_json_kwargs  # noqa: F401  (used by the other NVlabs families)

__all__ = ["FAMILY", "StyleGAN2Loss", "check_config", "transfer_settings", *_networks_all]


def check_config(cfg: Any, per_pass_batches: list[int]) -> None:
    """Path length regularization needs at least one image per pass after ``loss.pl_batch_shrink``.

    Raises:
        ConfigError: ``train.batch_gpu`` (or the per-device batch) smaller than ``loss.pl_batch_shrink``.
    """
    from omegaconf import OmegaConf

    from sgtrain.errors import ConfigError

    shrink = OmegaConf.select(cfg, "loss.pl_batch_shrink", default=None)
    if not shrink or not OmegaConf.select(cfg, "loss.pl_weight", default=0):
        return
    for bgpu in per_pass_batches:
        if bgpu // int(shrink) < 1:
            raise ConfigError(f"train.batch_gpu={bgpu} is smaller than loss.pl_batch_shrink={shrink}")


def transfer_settings(cfg: Any) -> list[str]:
    """NVlabs' fine-tuning setting of this family: no ramp of D's input blur (``loss.blur_init_sigma=0``)."""
    from omegaconf import open_dict

    if not cfg.loss.get("blur_init_sigma"):
        return []
    with open_dict(cfg):
        cfg.loss.blur_init_sigma = 0
    return ["loss.blur_init_sigma=0"]


_G = frozenset({"SynthesisBlock", "SynthesisLayer", "ToRGBLayer", "MappingNetwork"})
FAMILY = Family(
    name="stylegan2", display_name="StyleGAN2", package=__name__, w_space=True, mapping_layer="mapping.fc{i}.",
    check_config=check_config, transfer_settings=transfer_settings,
    nvlabs_classes=(("Generator", _G, f"{__name__}.networks.Generator"),
                    ("Discriminator", frozenset({"DiscriminatorBlock", "DiscriminatorEpilogue"}),
                     f"{__name__}.networks.Discriminator")),
    tf_builds={k: f"{__name__}.tf:convert" for k in ("G_main", "D_stylegan2", "D_stylegan", "D_main")},
    checkpoint_readers=((f"{__name__}.rosinality:is_rosinality_checkpoint", f"{__name__}.rosinality:load_checkpoint"),
                        (f"{__name__}.rosinality:is_sgtrain01_checkpoint",
                         f"{__name__}.rosinality:load_sgtrain01_checkpoint")),
    moved_keys={  # sgtrain 0.1 (StyleGAN2 only) kept the loss settings under train
        "train.gamma": "loss.r1_gamma",
        "train.style_mixing_prob": "loss.style_mixing_prob (StyleGAN2/3) or model.G.style_mixing_prob (StyleGAN)",
        **{f"train.{k}": f"loss.{k}" for k in ("pl_weight", "pl_batch_shrink", "pl_decay", "pl_no_weight_grad")},
    },
)
