"""``sgtrain-train``: the Hydra app that trains a GAN of any family on packed shards (see docs/training.md).

Examples::

    sgtrain-train model=stylegan2_small dataset.path=data/smileys run.dir=runs/smileys train.kimg=10
    sgtrain-train experiment=paper256 dataset.path=/data/ffhq256 trainer=ddp run.dir=runs/ffhq256
    sgtrain-train --cfg job dataset.path=data/smileys          # print the composed config and exit

Rerunning a command with the same run.dir resumes from run.dir/checkpoints/last.ckpt.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from sgtrain.training.config import register_configs
from sgtrain.training.sweep import register_resolvers

register_configs()
register_resolvers()  # ${sgtrain_job_dirname:...} in conf/hydra/default.yaml


@hydra.main(version_base="1.3", config_path="pkg://sgtrain.conf", config_name="train")
def _app(cfg: DictConfig) -> None:
    from sgtrain.training.run import main_entry

    main_entry(cfg)


def main() -> None:
    """Console entry point ``sgtrain-train`` (Hydra parses sys.argv)."""
    import sys

    from sgtrain.training.config import precheck_overrides

    if not any(a in ("--help", "-h", "--hydra-help", "--info") for a in sys.argv[1:]):
        err = precheck_overrides(sys.argv[1:])
        if err:
            print(f"sgtrain-train: error: {err}", file=sys.stderr)
            sys.exit(2)
    _app()


if __name__ == "__main__":
    main()
