"""A Hydra app with sgtrain-train's config and resolvers whose job only reports where it would train (JSON line).

For tests of sweep directories without training: ``python tests/_sweep_app.py -m key=a,b ...``.
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from sgtrain.training.config import register_configs
from sgtrain.training.sweep import register_resolvers

register_configs()
register_resolvers()


@hydra.main(version_base="1.3", config_path="pkg://sgtrain.conf", config_name="train")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    print("JOB " + json.dumps({"num": hc.job.num, "output_dir": hc.runtime.output_dir, "run_dir": str(cfg.run.dir),
                               "gamma": cfg.loss.r1_gamma}), flush=True)  # fmt: skip


if __name__ == "__main__":
    _app()
