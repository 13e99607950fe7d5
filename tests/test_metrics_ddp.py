"""Acceptance: a 2-process (gloo, CPU) evaluation of the metrics gives the single-process values."""

from __future__ import annotations

import json
import os

import pytest
import torch
from metrics_helpers import DETECTOR, fixture_images, write_png_folder

IO_PKL = os.path.join(os.path.dirname(__file__), "fixtures", "io", "nvlabs_ada_tiny_uncond.pkl")
# num_gen values that do not divide into whole batches of 64 (PPL: batches of 2), so the ranks get unequal shares
RUNS = [("fid1k_full", 130), ("kid1k_full", 130), ("pr1k3_full", 130), ("is1k", 130), ("ppl2_wend", 21)]


def _evaluate(data: str, fake: str, cache_dir: str) -> dict[str, float]:
    from sgtrain.io import load_network
    from sgtrain.metrics import compute_metric, compute_metric_between

    G = load_network(IO_PKL)["G_ema"].eval()
    out: dict[str, float] = {}
    for name, num in RUNS:
        res = compute_metric(name, G, data=data, detector=DETECTOR, num_gen=num, seed=3, device="cpu",
                             cache_dir=cache_dir)
        out.update(res["results"])
        out[f"{name}_num_gpus"] = res["num_gpus"]
    res = compute_metric_between("kid50k_full", data, fake, detector=DETECTOR, num_gen=250, cache_dir=cache_dir)
    out["between_kid"] = res["results"]["kid50k_full"]
    return out


def _rank(rank: int, world: int, init_file: str, data: str, fake: str, result_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cache = os.path.join(result_dir, "cache")
        first = _evaluate(data, fake, cache)  # computes and writes the real statistics
        second = _evaluate(data, fake, cache)  # reads them back (rank 0 checks, every rank loads)
        with open(os.path.join(result_dir, f"r{rank}.json"), "w") as f:
            json.dump({"first": first, "second": second}, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_processes_give_single_process_values(tmp_path):
    from sgtrain.data import pack

    a = write_png_folder(fixture_images("A"), str(tmp_path / "A"))
    fake = write_png_folder(fixture_images("B"), str(tmp_path / "B"))
    data = str(tmp_path / "A_shards")
    pack(a, data, resolution=16, workers=1, progress=False, order="sorted", shard_size=25000)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _evaluate(data, fake, str(tmp_path / "cache1"))
    finally:
        torch.set_num_threads(before)
    os.environ.pop("RANK", None)
    os.environ.pop("WORLD_SIZE", None)
    torch.multiprocessing.start_processes(_rank, args=(2, str(tmp_path / "init"), data, fake, str(tmp_path)),
                                          nprocs=2, join=True, start_method="spawn")
    ranks = [json.load(open(tmp_path / f"r{r}.json")) for r in range(2)]
    assert ranks[0] == ranks[1]  # every rank returns rank 0's values
    for key, value in single.items():
        if key.endswith("_num_gpus"):
            assert value == 1 and ranks[0]["first"][key] == 2
            continue
        for run in ("first", "second"):
            assert ranks[0][run][key] == pytest.approx(value, rel=1e-6, abs=1e-9), (run, key)
    assert len(os.listdir(tmp_path / "cache")) == len(os.listdir(tmp_path / "cache1")) > 0
