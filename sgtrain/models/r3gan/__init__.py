"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline"): ``networks.py``
(Generator, Discriminator under the authors' keywords and state_dict keys), ``loss.py`` (RpGAN + R1 + R2),
``pickles.py`` (the authors' snapshot pickles, read without their code).

z only (no W space), not progressive, no input transform. StyleGAN-only config keys are refused.
"""

from __future__ import annotations

from typing import Any

from sgtrain.errors import ConfigError
from sgtrain.models.family import Family

from .networks import Discriminator, Generator
from .pickles import PICKLE_CLASSES

__all__ = ["FAMILY", "Discriminator", "Generator", "check_config"]


def check_config(cfg: Any, per_pass_batches: list[int]) -> None:
    """Settings R3GAN cannot train with: lazy regularization intervals (the authors run R1 + R2 in every D step, and
    G has no regularizer: ``train.G_reg_interval`` / ``train.D_reg_interval`` must be null) and a resolution that
    its stages do not reach (one ``WidthPerStage`` entry per resolution from 4x4, square).

    Raises:
        ConfigError: naming the key and the value to use.
    """
    from omegaconf import OmegaConf

    from sgtrain.models.family import refuse_non_square

    refuse_non_square(cfg, "R3GAN", why="its generative basis is a square 4x4")
    if OmegaConf.select(cfg, "schedule", default=None) is not None:
        raise ConfigError("schedule: R3GAN does not grow progressively; set schedule=null")
    widths = OmegaConf.select(cfg, "model.G.WidthPerStage", default=None)
    res = OmegaConf.select(cfg, "model.G.img_resolution", default=None)
    if widths is not None and res:
        need = 4 * 2 ** (len(widths) - 1)
        if int(res) != need:
            stages = int(res).bit_length() - 2
            raise ConfigError(f"model.WidthPerStage has {len(widths)} stages ({need}x{need}) but the images are "
                              f"{res}x{res}: give {stages} entries (one per resolution from 4x4) in "
                              "model.WidthPerStage, model.CardinalityPerStage and model.BlocksPerStage")
    for key in ("train.G_reg_interval", "train.D_reg_interval"):
        if OmegaConf.select(cfg, key, default=None) is not None:
            raise ConfigError(f"{key}={OmegaConf.select(cfg, key)}: R3GAN regularizes D in every step (R1 + R2 in "
                              f"the Dboth phase) and G not at all; set {key}=null")


FAMILY = Family(
    name="r3gan", display_name="R3GAN", package=__name__,
    refused_keys=("loss.pl_weight", "loss.style_mixing_prob", "loss.r1_gamma", "model.mapping_kwargs",
                  "model.G.mapping_kwargs", "model.w_dim", "model.map_layers", "model.mbstd_group_size",
                  "schedule.lod_initial_resolution"),
    check_config=check_config,
    pickle_classes=PICKLE_CLASSES,
    checkpoint_readers=((f"{__name__}.pickles:is_r3gan_snapshot", f"{__name__}.pickles:load_r3gan_snapshot"),),
)
