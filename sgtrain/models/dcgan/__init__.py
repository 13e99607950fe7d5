"""DCGAN (Radford et al. 2016): ``networks.py`` (Generator, Discriminator), ``loss.py`` (LogisticLoss).

The smallest family, and the walk-through of docs/families.md: z only (no W space), no schedule, no file formats of
its own.
"""

from sgtrain.models.family import Family

from .loss import LogisticLoss
from .networks import Discriminator, Generator

__all__ = ["FAMILY", "Discriminator", "Generator", "LogisticLoss"]

FAMILY = Family(name="dcgan", display_name="DCGAN", package=__name__)
