"""sgtrain.data: pack images into webdataset shards and stream them to every rank.

- :func:`pack` (``sgtrain-data pack``): folder / zip / NVlabs zip / LMDB -> ``OUT/<name>-NNNNNN.tar`` and
  ``dataset.json``.
- :class:`DatasetCard`, :func:`load_card`: the ``dataset.json`` card (resolution, channels, c_dim, label names, count,
  shards with counts and sha256, pack options) and :meth:`DatasetCard.sample_labels`; :func:`load_vector_labels`
  (``labels.npy``, read once) and :func:`check_labels_source` (vector labels need a local pack directory).
- :class:`ShardDataModule`: LightningDataModule yielding ``(img uint8 [B, C, R, R], c float32 [B, c_dim])``.

``ShardDataModule`` is imported lazily so that the packer does not pay for importing Lightning.
"""

from .card import (
    DatasetCard,
    ShardInfo,
    load_card,
    load_vector_labels,
    local_dir_of,
    sample_vector_labels,
)
from .pack import PackError, pack
from .stream import check_labels_source

__all__ = [
    "DatasetCard",
    "PackError",
    "ShardDataModule",
    "ShardInfo",
    "ShardStream",
    "check_labels_source",
    "load_card",
    "load_vector_labels",
    "local_dir_of",
    "pack",
    "sample_vector_labels",
]


def __getattr__(name: str):
    if name == "ShardDataModule":
        from .datamodule import ShardDataModule

        return ShardDataModule
    if name == "ShardStream":
        from .stream import ShardStream

        return ShardStream
    raise AttributeError(f"module 'sgtrain.data' has no attribute {name!r}")
