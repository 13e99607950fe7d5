"""DCGAN (Radford et al. 2016): ``networks.py`` (Generator, Discriminator), ``loss.py`` (LogisticLoss).

The smallest family, and the walk-through of docs/families.md: z only (no W space), no schedule, no file formats of
its own.
"""

from sgtrain.models.family import Family, refuse_non_square

from .loss import LogisticLoss
from .networks import Discriminator, Generator

__all__ = ["FAMILY", "Discriminator", "Generator", "LogisticLoss"]


def check_config(cfg, per_pass_batches: list[int]) -> None:
    """DCGAN builds square networks only: W x H data is refused, naming the fix (``refuse_non_square``)."""
    del per_pass_batches
    refuse_non_square(cfg, "DCGAN", "its networks are square")


FAMILY = Family(name="dcgan", display_name="DCGAN", package=__name__, check_config=check_config)
