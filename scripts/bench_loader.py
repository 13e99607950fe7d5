#!/usr/bin/env python
"""Images per second per CPU core of sgtrain's loader, for each decoder and storage, and the cores a run needs.

    python scripts/bench_loader.py [--resolutions 256,1024] [--images 64] [--seconds 3] [--rounds 3] [--json OUT]

Made-up photo-like images (smooth gradients plus noise, so that PNG compresses them about as it does photos) are
encoded once per resolution as the packer stores them (PNG, compress_level 6; ``raw``: the decoded uint8 array as
``sgtrain-data pack --storage raw`` stores it, an ``.npy`` member) and as JPEG (quality 95). In one process with one
thread (one core), each round times, for --seconds each:

- ``decode``: sgtrain.data.decode.decode_image over the encoded images, for each decoder (``pillow``, and ``fast`` =
  pyspng / simplejpeg where installed) and storage (``png``, ``jpeg``); for ``raw``, decode_raw (decoder ``none``:
  the header and size checks and a view of the bytes);
- ``loader``: the whole per-worker path of the training loader (tar parsing, shuffle buffer, decode, batch assembly:
  sgtrain.data.stream.ShardStream in this process) over one PNG shard, for each decoder, and over one raw shard.

Rounds alternate the settings, so a ratio between two settings is measured under the same load; the figure kept is
each setting's median over rounds. The last lines give the cores that feed the 8-GPU rates that issue 27 quotes
from NVlabs (StyleGAN2-ADA paper256 on 8 A100: about 405 img/s at 256x256; StyleGAN2 at 1024x1024: about 69 img/s):
``cores = rate / (img/s per core)`` for the loader over PNG with the fastest decoder here, and over raw shards. The
load average is printed with the figures: on a shared machine the absolute numbers are low by the load; the ratios
are the robust part.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tarfile
import tempfile
import time

import numpy as np

#: 8-GPU consumption quoted by issue 27 from NVlabs' published training speeds: resolution -> img/s
NVLABS_8GPU = {256: 405.0, 1024: 69.0}


def photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 [h, w, 3]: smooth colour gradients plus N(0, 12) noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    k = rng.uniform(2, 8, 3)
    base = np.stack([np.sin(k[c] * xx + c) * np.cos(k[2 - c] * yy - c) for c in range(3)], axis=-1) * 100 + 128
    return np.clip(base + rng.normal(0, 12, [h, w, 3]), 0, 255).astype(np.uint8)


def encode(arr: np.ndarray, storage: str) -> bytes:
    from PIL import Image

    if storage == "raw":
        from sgtrain.data.decode import encode_raw

        return encode_raw(arr)
    buf = io.BytesIO()
    if storage == "png":
        Image.fromarray(arr).save(buf, "PNG", compress_level=6)
    else:
        Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def time_decode(blobs: list[bytes], decoder: str, seconds: float, res: int) -> float:
    """img/s of decode_image (decoder ``none``: decode_raw of [res, res, 3]) over ``blobs`` (cycled) for about
    ``seconds``."""
    from sgtrain.data.decode import decode_image, decode_raw

    n, t0 = 0, time.perf_counter()
    while True:
        for b in blobs:
            if decoder == "none":
                decode_raw(b, (res, res, 3))
            else:
                decode_image(b, decoder)
        n += len(blobs)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def write_shard(path: str, blobs: list[bytes], ext: str = "png") -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for i, b in enumerate(blobs):
            info = tarfile.TarInfo(f"{i:08d}.{ext}")
            info.size = len(b)
            tf.addfile(info, io.BytesIO(b))


def time_loader(shard: str, count: int, res: int, decoder: str, seconds: float, batch: int,
                storage: str = "png") -> float:
    """img/s of ShardStream (one worker's path, in this process) over one shard, cycled, for about ``seconds``."""
    from sgtrain.data.stream import ShardStream

    os.environ["SGTRAIN_DECODER"] = decoder if decoder != "none" else "auto"
    try:
        stream = ShardStream([shard], [count], batch_size=batch, resolution=res, channels=3, c_dim=0,
                             label_type=None, samples_per_rank=max(batch, count), shuffle_buffer=min(64, count),
                             storage=storage)
        n, t0 = 0, time.perf_counter()
        while True:
            for img, _ in stream:
                n += img.shape[0]
            dt = time.perf_counter() - t0
            if dt >= seconds:
                return n / dt
    finally:
        os.environ.pop("SGTRAIN_DECODER", None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", default="256,1024", help="comma-separated square sizes (default 256,1024)")
    p.add_argument("--images", type=int, default=32, help="distinct images per resolution (default 32)")
    p.add_argument("--seconds", type=float, default=3.0, help="time per setting per round (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is kept (default 3)")
    p.add_argument("--batch", type=int, default=8, help="loader batch size (default 8)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    from sgtrain.data.decode import available_decoders

    have = available_decoders()
    decoders = ["pillow"] + (["fast"] if have["pyspng"] or have["simplejpeg"] else [])
    resolutions = [int(r) for r in args.resolutions.split(",") if r.strip()]
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        data: dict[int, dict[str, list[bytes]]] = {}
        for res in resolutions:
            arrays = [photo_like(res, res, i) for i in range(args.images)]
            data[res] = {s: [encode(a, s) for a in arrays] for s in ("png", "jpeg", "raw")}
            write_shard(os.path.join(tmp, f"s{res}.tar"), data[res]["png"])
            write_shard(os.path.join(tmp, f"r{res}.tar"), data[res]["raw"], "npy")
        settings = [(res, "decode", st, d) for res in resolutions for st in ("png", "jpeg") for d in decoders]
        settings += [(res, "decode", "raw", "none") for res in resolutions]
        settings += [(res, "loader", "png", d) for res in resolutions for d in decoders]
        settings += [(res, "loader", "raw", "none") for res in resolutions]
        rates: dict[tuple, list[float]] = {s: [] for s in settings}
        for r in range(args.rounds):
            for s in settings if r % 2 == 0 else settings[::-1]:
                res, what, storage, dec = s
                if what == "decode":
                    rates[s].append(time_decode(data[res][storage], dec, args.seconds, res))
                else:
                    shard = os.path.join(tmp, f"{'r' if storage == 'raw' else 's'}{res}.tar")
                    rates[s].append(time_loader(shard, args.images, res, dec, args.seconds, args.batch, storage))
    load = os.getloadavg()
    print(f"one core per setting, {args.rounds} alternating rounds of {args.seconds} s, median; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs; decoders installed: "
          + ", ".join(k for k, v in have.items() if v))
    print(f"{'res':>5} {'what':>7} {'storage':>8} {'decoder':>8} {'img/s/core':>11} {'MB/image':>9}")
    for s in settings:
        res, what, storage, dec = s
        med = statistics.median(rates[s])
        mb = statistics.mean(len(b) for b in data[res][storage]) / 1e6
        results.append(dict(resolution=res, what=what, storage=storage, decoder=dec, img_per_s_per_core=med,
                            rounds=rates[s], mb_per_image=mb))
        print(f"{res:>5} {what:>7} {storage:>8} {dec:>8} {med:>11.1f} {mb:>9.3f}")
    needs = []
    for res in resolutions:
        ref = NVLABS_8GPU.get(res)
        for storage in ("png", "raw"):
            loaders = [x for x in results if x["resolution"] == res and x["what"] == "loader"
                       and x["storage"] == storage]
            best = max(loaders, key=lambda x: x["img_per_s_per_core"])
            if ref is None:
                continue
            cores = ref / best["img_per_s_per_core"]
            needs.append(dict(resolution=res, nvlabs_8gpu_img_per_s=ref, storage=storage, decoder=best["decoder"],
                              cores=cores))
            print(f"{res}x{res}: {ref:.0f} img/s (8 GPUs, NVlabs) needs {cores:.1f} cores of this machine's loader "
                  f"({storage}, {best['decoder']}, {best['img_per_s_per_core']:.1f} img/s/core, load {load[0]:.2f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(load_average=load, cpus=os.cpu_count(), decoders=have, results=results, cores=needs,
                           seconds=args.seconds, rounds=args.rounds, images=args.images), f, indent=2)


if __name__ == "__main__":
    main()
