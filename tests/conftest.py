import os

import pytest
import torch

# Keep CPU tests deterministic and from oversubscribing the 2-core CI machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
