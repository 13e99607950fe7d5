#!/usr/bin/env bash
# The whole GPU measurement of docs/performance.md ("GPU") in ONE run that ends within BUDGET seconds:
#
#   NVLABS=.devref/stylegan3 BUDGET=540 bash scripts/gpu_session.sh        # on the lent GPU
#   DRYRUN=1 bash scripts/gpu_session.sh                                 # CPU dry run: same steps, tiny sizes
#   bash scripts/gpu_session.sh --dry-run                                # the same
#
# Steps, in this order, each with its own time cap (cut to what the budget leaves, minus RESERVE), so that none can
# starve the next:
#   1. build sgtrain's fused ops (sgtrain-ops build) and, beside it, NVlabs' plugins (bias_act, upfirdn2d,
#      filtered_lrelu); make the 256x256 synthetic images (a folder for NVlabs, shards for sgtrain);
#   2. pytest -m gpu (fused ops against the reference, fp16 blocks, conv2d_gradfix on CUDA);
#   3. sgtrain at paper256 (experiment=paper256, batch 64 in one pass, one GPU): scripts/bench_train.py (step img/s
#      after a warm-up lazy cycle, peak memory, FLOPs per image, MFU), then sgtrain-train itself (sec/kimg of its
#      ticks after the first, peak memory; stopped by its own train.kimg);
#   4. NVlabs at the same settings: their networks and loss driven as their training loop drives them
#      (.devref/bench_nvlabs_step.py, same timing method) and their train.py --cfg=stylegan2 (sec/kimg and gpumem of
#      its tick lines after the first; it stops at its own --kimg: the step ends at its last tick line);
#   5. StyleGAN3-T at 256: bench_train.py model=stylegan3_t, then NVlabs' train.py --cfg=stylegan3-t;
#   6. variants of the paper256 step: fp32 (no float16 blocks), bf16 autocast, channels_last, tf32, torch.compile.
# Every figure goes into ONE file, $OUT/session.json ({"steps": [...]}, rewritten after each step), so a run cut off
# at any point still returns what it measured; the logs of the steps are packed into $OUT/logs.tar at the end.
#
# Device needs (docs/performance.md "GPU"): the device's Python lacks hydra, omegaconf, webdataset: carry .whl/
# (made by ../shared/tools/device-wheels.sh) and .devref (NVlabs' stylegan3 c233a91: fetch github:NVlabs/stylegan3
# and unpack it to .devref/stylegan3); the command starts this script directly.
set -u
for a in "$@"; do
  case $a in
    --dry-run) DRYRUN=1 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_session.sh: unknown argument $a (--dry-run, --help)" >&2; exit 2 ;;
  esac
done
DRYRUN=${DRYRUN:-0}
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(el) )); }
OUT=${OUT:-/tmp/gpu_out}
NVLABS=$(realpath -m "${NVLABS:-.devref/stylegan3}")
PEER=${PEER:-scripts/bench_nvlabs_step.py}
LOGS=${LOGS:-$(mktemp -d /tmp/gpu_logs.XXXXXX)}  # one log per step; packed into $OUT/logs.tar at the end
JSON=$OUT/session.json
if [ "$DRYRUN" = 1 ]; then
  # tiny sizes on the CPU, no NVlabs reference: the same steps in the same order, NVlabs' marked as skipped
  BUDGET=${BUDGET:-900}; RESERVE=${RESERVE:-5}; PY=${PY:-python3}; DEV=cpu; RES=32; BATCH=8
  SG2=(model=stylegan2_small model.channel_base=512 model.channel_max=16 model.map_layers=1 model.z_dim=16
       model.w_dim=16 model.mbstd_group_size=2)
  SG3=(model=stylegan3_t model.channel_base=256 model.channel_max=16 model.z_dim=16 model.w_dim=16 model.map_layers=1
       model.D.channel_base=128 model.D.channel_max=16 model.mbstd_group_size=2 model.num_fp16_res=0)
  ITERS=(--iters 2 --warmup 1 --repeats 1 --threads 1); COMPILE=(--compile --compile-backend eager)
  KIMG=0.016; KIMG3=0.016; TICK=0.008; NIMAGES=16
else
  BUDGET=${BUDGET:-540}; RESERVE=${RESERVE:-20}; PY=${PY:-python3}; DEV=cuda; RES=256; BATCH=64
  SG2=(experiment=paper256)
  SG3=(model=stylegan3_t)
  ITERS=(--iters 16 --warmup 16 --repeats 2); COMPILE=(--compile)
  KIMG=6; KIMG3=3; TICK=1; NIMAGES=1000
fi
mkdir -p "$OUT" "$LOGS"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-8}
step() { echo; echo "=== [$(el) s] $*"; }

# record NAME RC SECONDS [JSONFILE] [key=value ...]: append one step to $JSON (atomically), with JSONFILE's figures
record() {
  "$PY" - "$JSON" "$@" <<'EOF'
import json, os, sys, time
path, name, rc, secs, *rest = sys.argv[1:]
doc = {"steps": []}
if os.path.exists(path):
    with open(path) as f:
        doc = json.load(f)
entry = {"step": name, "rc": int(rc), "seconds": int(secs), "time": time.strftime("%H:%M:%S")}
for item in rest:
    if "=" in item:
        k, v = item.split("=", 1)
        try:
            entry[k] = json.loads(v)
        except ValueError:
            entry[k] = v
    elif os.path.isfile(item):
        try:
            with open(item) as f:
                entry.update(json.load(f))
        except ValueError as err:
            entry["figures_error"] = str(err)
doc["steps"].append(entry)
with open(path + ".tmp", "w") as f:
    json.dump(doc, f, indent=1)
os.replace(path + ".tmp", path)
EOF
}

# run NAME SECONDS CMD...: a step with its own time limit, its output in $LOGS/NAME.log; returns its exit status
run() {
  local name=$1 limit=$2; shift 2
  local avail=$(( $(left) - RESERVE ))
  (( limit > avail )) && limit=$avail
  if (( limit < 10 )); then echo "skip $name: no time left"; record "$name" 99 0 skipped=no_time_left; return 99; fi
  step "$name (limit $limit s)"
  local t=$(el)
  timeout -k 5 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 12 "$LOGS/$name.log"
  echo "--- $name: rc $rc after $(el) s"
  LAST_SECS=$(( $(el) - t ))
  return $rc
}

# run_until NAME SECONDS REGEX CMD...: like run, in its own process group, ended as soon as its log matches REGEX
# (NVlabs' train.py has finished measuring at its last tick line; it then saves and tears down, which once took the
# whole remaining limit and starved the next step)
run_until() {
  local name=$1 limit=$2 pat=$3; shift 3
  local avail=$(( $(left) - RESERVE ))
  (( limit > avail )) && limit=$avail
  if (( limit < 10 )); then echo "skip $name: no time left"; record "$name" 99 0 skipped=no_time_left; return 99; fi
  step "$name (limit $limit s, until /$pat/)"
  setsid "$@" > "$LOGS/$name.log" 2>&1 &
  local pid=$! t=0 rc=124
  while kill -0 $pid 2>/dev/null && (( t < limit )); do
    if grep -Eq "$pat" "$LOGS/$name.log"; then rc=0; break; fi
    sleep 1; t=$((t + 1))
  done
  if ! kill -0 $pid 2>/dev/null; then wait $pid; rc=$?; fi
  kill -TERM -- -$pid 2>/dev/null; sleep 2; kill -KILL -- -$pid 2>/dev/null; wait $pid 2>/dev/null
  tail -n 12 "$LOGS/$name.log"
  echo "--- $name: rc $rc, ended after $t s (at $(el) s)"
  LAST_SECS=$t
  return $rc
}

# ticks LOG FORMAT: sec/kimg (median of the ticks after the first) and peak memory from a training log
ticks() {
  "$PY" - "$@" <<'EOF'
import json, re, statistics, sys
path, fmt = sys.argv[1:3]
rows = []
if fmt == "nvlabs":  # tick 1  kimg 1.0  time 30s  sec/tick 5.1  sec/kimg 5.13  maintenance 0.1  cpumem 4.1  gpumem 16.90 ...
    for line in open(path, errors="replace"):
        m = re.search(r"^tick\s+(\d+)\s+kimg\s+([\d.]+).*?sec/kimg\s+([\d.]+)(?:.*?gpumem\s+([\d.]+))?(?:.*?reserved\s+([\d.]+))?", line)
        if m:
            rows.append({"tick": int(m[1]), "kimg": float(m[2]), "sec_per_kimg": float(m[3]),
                         "gpumem_gb": float(m[4]) if m[4] else None, "reserved_gb": float(m[5]) if m[5] else None})
else:  # sgtrain metrics.jsonl
    for line in open(path, errors="replace"):
        try:
            r = json.loads(line)
        except ValueError:
            continue
        rows.append({"tick": r.get("tick"), "kimg": r.get("kimg"), "sec_per_kimg": r.get("sec_per_kimg"),
                     "gpumem_gb": r.get("peak_mem_gb"), "reserved_gb": r.get("gpu_peak_reserved_gb")})
timed = [r for r in rows if r["tick"] and r["sec_per_kimg"]]  # tick 0 holds start-up and the first compiles
out = {"ticks": rows}
if timed:
    out["sec_per_kimg"] = statistics.median(r["sec_per_kimg"] for r in timed)
    out["img_s"] = 1000 / out["sec_per_kimg"]
    mem = [r["gpumem_gb"] for r in timed if r["gpumem_gb"] is not None]
    out["peak_mem_gb"] = max(mem) if mem else None
print(json.dumps(out))
EOF
}

step "machine (dry run: $DRYRUN)"
record machine 0 0 dryrun=$DRYRUN budget_s=$BUDGET host="$(hostname)" load="$(cut -d' ' -f1-3 /proc/loadavg)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
"$PY" -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda,
           torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
if [ -d .whl ] && [ "$DRYRUN" != 1 ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# setup.py installs conf/ as sgtrain.conf and ops/ as sgtrain.ops.csrc; from a source tree without an install, links
if ! "$PY" -c "import sgtrain.conf, sgtrain.ops.csrc" 2>/dev/null; then
  ln -sfn ../conf sgtrain/conf; ln -sfn ../../ops sgtrain/ops/csrc
fi
"$PY" -c "import hydra, omegaconf, webdataset, lightning, sgtrain; print('imports ok', lightning.__version__)" || exit 1
NV=0
if [ "$DRYRUN" != 1 ] && [ -f "$NVLABS/train.py" ]; then
  NV=1
  # NVlabs' stylegan3 (c233a91) under torch 2.11 needs two one-line changes in the reference copy (not in sgtrain):
  # Sampler.__init__ takes no argument any more, and cpp_extension.load no longer puts the plugin on sys.path.
  sed -i 's/super().__init__(dataset)/super().__init__()/' "$NVLABS/torch_utils/misc.py"
  sed -i -e 's/^\( *\)torch.utils.cpp_extension.load(name=module_name/\1module = torch.utils.cpp_extension.load(name=module_name/' \
         -e 's/^\( *\)module = importlib.import_module(module_name)$/\1pass  # module: returned by load()/' \
         "$NVLABS/torch_utils/custom_ops.py"
fi
# their conv2d_gradfix imports pkg_resources, which newer setuptools no longer ship: a one-line stand-in
mkdir -p /tmp/nvshim
"$PY" -c "import pkg_resources" 2>/dev/null || \
  echo "from packaging.version import parse as parse_version  # noqa: F401" > /tmp/nvshim/pkg_resources.py
NVPATH="/tmp/nvshim:$NVLABS:$PYTHONPATH"
nv_skip() { record "$1" 98 0 skipped="$([ "$DRYRUN" = 1 ] && echo dry run || echo no NVlabs reference at $NVLABS)"; }
TRAIN=("$PY" -m sgtrain.cli.train)
BENCH=("$PY" scripts/bench_train.py --device $DEV --resolution $RES "${ITERS[@]}")

# ---- 1. builds (NVlabs' beside sgtrain's), and the images
step "builds"
if [ "$DRYRUN" = 1 ]; then
  run build-sgtrain 120 "$PY" -m sgtrain.cli.ops info
else
  nvinit() {  # compile NVlabs' plugins (torch_utils.ops.<op>._init()), as their train.py does at first use
    ( cd "$NVLABS" && PYTHONPATH=$NVPATH "$PY" -c "
import importlib, sys
for op in sys.argv[1:]:
    print('nvlabs', op, 'built:', importlib.import_module('torch_utils.ops.' + op)._init(), flush=True)
" "$@" )
  }
  if [ $NV = 1 ]; then
    nvinit bias_act upfirdn2d filtered_lrelu > "$LOGS/build-nvlabs.log" 2>&1 &
    BNV=$!
  fi
  run build-sgtrain 200 "$PY" -m sgtrain.cli.ops build -v
fi
record build-sgtrain $? ${LAST_SECS:-0}
run data 120 "$PY" - "$RES" "$NIMAGES" /tmp/gpu_data <<'EOF'
# smooth synthetic images (colour gradients and discs), a PNG folder for NVlabs and the same packed for sgtrain
import os, sys
import numpy as np
from PIL import Image
res, n, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
os.makedirs(f"{root}/png", exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:res, 0:res] / res
for i in range(n):
    a, b, c = rng.uniform(0, 1, (3, 3))
    img = np.stack([a[k] * xx + b[k] * yy + c[k] * 0.5 for k in range(3)], -1)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, 1, 3) * (1, 1, 0.3)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = rng.uniform(0, 1, 3)
    Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(f"{root}/png/{i:05d}.png")
from sgtrain.data.pack import pack
print(pack(f"{root}/png", f"{root}/shards", res, labels="none", workers=0, progress=False, overwrite=True).summary())
EOF
record data $? ${LAST_SECS:-0}
if [ $NV = 1 ]; then
  for i in $(seq 60); do kill -0 $BNV 2>/dev/null || break; sleep 1; done
  if kill -0 $BNV 2>/dev/null; then
    kill $BNV 2>/dev/null; echo "NVlabs' plugins still compiling after $(el) s: stopped (their reference ops run instead)"
  fi
  cat "$LOGS/build-nvlabs.log" | tail -n 5
  record build-nvlabs 0 0 summary="$(grep -c 'built: True' "$LOGS/build-nvlabs.log") of 3 plugins built"
fi

# ---- 2. the gpu tests
run gpu-tests 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_ops_fused.py \
  tests/test_ops_filtered_lrelu.py tests/test_conv2d_gradfix.py tests/test_stylegan2.py
record gpu-tests $? ${LAST_SECS:-0} summary="$(grep -E 'passed|failed|error|skipped' "$LOGS/gpu-tests.log" | tail -n 1)"

# ---- 3. sgtrain at paper256, batch 64 in one pass
SG_ARGS=(dataset.path=/tmp/gpu_data/shards train.batch=$BATCH train.batch_gpu=$BATCH train.tick_kimg=$TICK
         train.snap_kimg=1000 train.ckpt_kimg=1000 train.ckpt_minutes=null train.swd=false logger=none
         trainer.progress_bar=false run.print_config=false dataset.num_workers=3 trainer.devices=1)
[ "$DRYRUN" = 1 ] && SG_ARGS+=(trainer.accelerator=cpu trainer.threads=1 dataset.num_workers=0 train.grid=[2,2])
run sg2-step 120 "${BENCH[@]}" "${SG2[@]}" --batch $BATCH --batch-gpu $BATCH --json "$LOGS/sg2-step.json"
record sg2-step $? ${LAST_SECS:-0} "$LOGS/sg2-step.json"
run sg2-train 130 "${TRAIN[@]}" "${SG2[@]}" train.kimg=$KIMG run.dir=/tmp/sg256 "${SG_ARGS[@]}"
rc=$?; ticks /tmp/sg256/metrics.jsonl sgtrain > "$LOGS/sg2-train.json" 2>/dev/null
record sg2-train $rc ${LAST_SECS:-0} "$LOGS/sg2-train.json"

# ---- 4. NVlabs at the same settings
NV_ARGS=(--outdir=/tmp/nv --data=/tmp/gpu_data/png --gpus=1 --batch=$BATCH --gamma=1 --cbase=16384 --mbstd-group=8
         --map-depth=8 --glr=0.0025 --dlr=0.0025 --aug=noaug --metrics=none --snap=1000 --tick=$TICK --workers=3)
if [ $NV = 1 ]; then
  run nv-sg2-step 120 env PYTHONPATH="$NVPATH" "$PY" "$PEER" --nvlabs "$NVLABS" --device cuda --resolution 256 \
    --channel-base 16384 --channel-max 512 --map-layers 8 --mbstd-group-size 8 --batch 64 --gamma 1 "${ITERS[@]}"
  record nv-sg2-step $? ${LAST_SECS:-0} img_s="$(tail -n 1 "$LOGS/nv-sg2-step.log" | grep -Eo '^[0-9.]+' || echo null)" \
    summary="$(grep '^#' "$LOGS/nv-sg2-step.log" | tail -n 1)"
  run_until nv-sg2-train 150 "^tick .*kimg +${KIMG}\.0 " env -C "$NVLABS" PYTHONPATH="$NVPATH" "$PY" train.py \
    --cfg=stylegan2 --kimg=$KIMG "${NV_ARGS[@]}"
  rc=$?; ticks "$LOGS/nv-sg2-train.log" nvlabs > "$LOGS/nv-sg2-train.json"
  record nv-sg2-train $rc ${LAST_SECS:-0} "$LOGS/nv-sg2-train.json"
else
  nv_skip nv-sg2-step; nv_skip nv-sg2-train
fi

# ---- 5. StyleGAN3-T at 256 (NVlabs' defaults: cbase 32768, 2 mapping layers), gamma 2, batch 64
run sg3t-step 100 "${BENCH[@]}" "${SG3[@]}" --batch $BATCH --batch-gpu $BATCH --gamma 2 --json "$LOGS/sg3t-step.json"
record sg3t-step $? ${LAST_SECS:-0} "$LOGS/sg3t-step.json"
if [ $NV = 1 ] && grep -q "filtered_lrelu built: True" "$LOGS/build-nvlabs.log"; then
  run_until nv-sg3t-train 110 "^tick .*kimg +${KIMG3}\.0 " env -C "$NVLABS" PYTHONPATH="$NVPATH" "$PY" train.py \
    --cfg=stylegan3-t --outdir=/tmp/nv3 --data=/tmp/gpu_data/png --gpus=1 --batch=64 --gamma=2 --aug=noaug \
    --metrics=none --snap=1000 --tick=$TICK --workers=3 --kimg=$KIMG3
  rc=$?; ticks "$LOGS/nv-sg3t-train.log" nvlabs > "$LOGS/nv-sg3t-train.json"
  record nv-sg3t-train $rc ${LAST_SECS:-0} "$LOGS/nv-sg3t-train.json"
else
  nv_skip nv-sg3t-train
fi

# ---- 6. precision and compile variants of the paper256 step
for v in "fp32:--precision fp32" "bf16:--precision bf16" "channels-last:--channels-last" "tf32:--tf32 on" \
         "compile:${COMPILE[*]}"; do
  name=sg2-${v%%:*}; read -r -a flags <<< "${v#*:}"
  run "$name" 90 "${BENCH[@]}" "${SG2[@]}" --batch $BATCH --batch-gpu $BATCH --no-flops "${flags[@]}" \
    --json "$LOGS/$name.json"
  record "$name" $? ${LAST_SECS:-0} "$LOGS/$name.json"
done

step "done"
tar cf "$OUT/logs.tar" -C "$(dirname "$LOGS")" "$(basename "$LOGS")" 2>/dev/null
"$PY" - "$JSON" <<'EOF'
import json, sys
for s in json.load(open(sys.argv[1]))["steps"]:
    figs = {k: s.get(k) for k in ("img_s", "sec_per_kimg", "peak_mem_gb", "peak_mem_gib", "flops_per_img", "mfu",
                                  "summary", "skipped") if s.get(k) is not None}
    print(f"{s['step']:16s} rc {s['rc']:3d} {s['seconds']:4d} s  {figs}")
EOF
echo "session: $(el) s of $BUDGET"
