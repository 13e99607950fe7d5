"""Network files: portable safetensors + JSON, NVlabs pickles through an allow-list, rosinality checkpoints.

- :func:`load_network` opens a run directory, a portable file, a Lightning ``.ckpt``, an NVlabs ``.pkl`` or a
  rosinality ``.pt`` and returns sgtrain modules (``G_ema`` and, where present, ``G``, ``D``, ``augment_p``,
  ``training_info``).
- :func:`save_network` writes ``<stem>.safetensors`` + ``<stem>.json``.
- Pickles never execute code: :class:`~sgtrain.io.safe_pickle.SafeUnpickler` refuses any global outside its
  allow-list with :class:`UnsafePickleError`.
"""

from sgtrain.io.errors import NetworkFileError, UnsafePickleError, UnsupportedNetworkError
from sgtrain.io.loader import find_run_network, load_network
from sgtrain.io.portable import load_portable, network_header, save_network
from sgtrain.io.safe_pickle import SafeUnpickler, safe_load_pickle

__all__ = [
    "NetworkFileError",
    "SafeUnpickler",
    "UnsafePickleError",
    "UnsupportedNetworkError",
    "find_run_network",
    "load_network",
    "load_portable",
    "network_header",
    "safe_load_pickle",
    "save_network",
]
