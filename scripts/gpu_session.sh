#!/usr/bin/env bash
# Everything sgtrain checks on a lent GPU, in one call that ends within BUDGET seconds (docs/performance.md "GPU").
#
#   NVLABS=.devref/stylegan3 BUDGET=560 bash scripts/gpu_session.sh
#
# 1. installs the carried wheels (.whl/: hydra, omegaconf, webdataset; ../shared/tools/device-wheels.sh) and starts
#    two ADA runs in the background (1,000 emoji at 32x32 from .devdata/ada, scripts/bench_ada.py's split; with and
#    without augment=ada), which use the GPU while the compilers run;
# 2. builds sgtrain's fused ops and NVlabs' (bias_act, upfirdn2d, filtered_lrelu) side by side;
# 3. runs the `-m gpu` tests;
# 4. pauses the ADA runs and trains paper256 (batch 64, one GPU, fp16 in the 4 highest resolutions) with NVlabs'
#    stylegan3 train.py --cfg=stylegan2 and then with sgtrain-train experiment=paper256, back to back, on the same
#    256x256 images; then StyleGAN3-T against --cfg=stylegan3-t if time is left;
# 5. lets the ADA runs go on to the end of the budget, measures D's overfitting on every snapshot
#    (scripts/ada_overfit.py) and packs the runs' logs and last snapshots.
# Writes under $OUT (default /tmp/gpu_out): session.log, logs.tar (a log per step), ada_overfit.jsonl, ada-*.tar.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( BUDGET - $(el) )); }
BUDGET=${BUDGET:-560}
OUT=${OUT:-/tmp/gpu_out}
NVLABS=${NVLABS:-.devref/stylegan3}
PY=${PY:-python3}
ADA_KIMG=${ADA_KIMG:-100}
LOGS=/tmp/gpu_logs  # one log per step; packed into $OUT/logs.tar at the end (few files come back from a device)
mkdir -p "$OUT" "$LOGS"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 MAX_JOBS=${MAX_JOBS:-8}
step() { echo; echo "=== [$(el) s] $*"; }
# run NAME SECONDS CMD...: a step with its own time limit, its output in $LOGS/NAME.log; prints its exit status
run() {
  local name=$1 limit=$2; shift 2
  local avail=$(( $(left) - ${RESERVE:-80} ))  # keep time for the ADA measurement and the packing
  (( limit > avail )) && limit=$avail
  if (( limit < 10 )); then echo "skip $name: no time left"; return 99; fi
  step "$name (limit $limit s)"
  timeout -k 5 "$limit" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$LOGS/$name.log"
  echo "--- $name: rc $rc after $(el) s"
  return $rc
}

# run_until NAME SECONDS REGEX CMD...: like run, in its own process group, stopped as soon as its log matches REGEX
# (the last tick: NVlabs' train.py once took its whole limit after its last tick and starved the next step)
run_until() {
  local name=$1 limit=$2 pat=$3; shift 3
  local avail=$(( $(left) - ${RESERVE:-80} ))
  (( limit > avail )) && limit=$avail
  if (( limit < 10 )); then echo "skip $name: no time left"; return 99; fi
  step "$name (limit $limit s, until /$pat/)"
  setsid "$@" > "$LOGS/$name.log" 2>&1 &
  local pid=$! t=0
  while kill -0 $pid 2>/dev/null && (( t < limit )); do
    grep -Eq "$pat" "$LOGS/$name.log" && break
    sleep 1; t=$((t + 1))
  done
  kill -TERM -- -$pid 2>/dev/null; sleep 2; kill -KILL -- -$pid 2>/dev/null; wait $pid 2>/dev/null
  tail -n 25 "$LOGS/$name.log"
  echo "--- $name: stopped after $t s (at $(el) s)"
}

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
$PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))"
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
# setup.py installs conf/ as sgtrain.conf and ops/ as sgtrain.ops.csrc; from a source tree without an install, links
if ! $PY -c "import sgtrain.conf, sgtrain.ops.csrc" 2>/dev/null; then
  ln -sfn ../conf sgtrain/conf; ln -sfn ../../ops sgtrain/ops/csrc
fi
$PY -c "import hydra, omegaconf, webdataset, lightning, sgtrain; print('imports ok', lightning.__version__)" || exit 1
TRAIN=(env "$PY" -m sgtrain.cli.train)
# NVlabs' stylegan3 (c233a91) under torch 2.11 needs two one-line changes in the reference copy (not in sgtrain):
# Sampler.__init__ takes no argument any more, and cpp_extension.load no longer puts the plugin on sys.path.
sed -i 's/super().__init__(dataset)/super().__init__()/' "$NVLABS/torch_utils/misc.py"
sed -i -e 's/^\( *\)torch.utils.cpp_extension.load(name=module_name/\1module = torch.utils.cpp_extension.load(name=module_name/' \
       -e 's/^\( *\)module = importlib.import_module(module_name)$/\1pass  # module: returned by load()/' \
       "$NVLABS/torch_utils/custom_ops.py"

# ---- 1. ADA runs in the background (reference ops: the build runs beside them)
ADA_ARGS=(experiment=quickstart_stylegan2 dataset.path=.devdata/ada/train train.kimg=100000 train.batch=32
          train.tick_kimg=4 train.snap_kimg=20 train.ckpt_kimg=1000 train.swd=false logger=none
          trainer.progress_bar=false run.print_config=false)
declare -A ADA_PID
for name in none ada; do
  extra=(); [ $name = ada ] && extra=(augment=ada augment.ada_kimg=$ADA_KIMG)
  SGTRAIN_OPS=ref "${TRAIN[@]}" "${ADA_ARGS[@]}" "${extra[@]}" run.dir=/tmp/adagpu/run-$name > "$LOGS/ada-$name.log" 2>&1 &
  ADA_PID[$name]=$!
done
echo "ADA runs started: ${ADA_PID[*]}"

# ---- 2. builds, side by side; the 256x256 images for the speed runs meanwhile
step "builds"
( $PY -m sgtrain.cli.ops build -v > "$LOGS/build-sgtrain.log" 2>&1; echo "sgtrain ops build rc $?" >> "$LOGS/build-sgtrain.log" ) &
B1=$!
nvinit() {  # compile NVlabs' plugins (torch_utils.ops.<op>._init()), as their train.py does at first use
  ( cd "$NVLABS" && PYTHONPATH=$PWD/../shim:$PWD $PY -c "
import importlib, sys
for op in sys.argv[1:]:
    print('nvlabs', op, 'built:', importlib.import_module('torch_utils.ops.' + op)._init(), flush=True)
" "$@" )
}
nvinit bias_act upfirdn2d > "$LOGS/build-nvlabs.log" 2>&1 &
B2=$!
nvinit filtered_lrelu > "$LOGS/build-nvlabs-flrelu.log" 2>&1 &  # for StyleGAN3 only; may finish later
B3=$!
$PY - <<'EOF' > "$LOGS/data256.log" 2>&1
import io, os, tarfile
from PIL import Image
os.makedirs("/tmp/d256/png", exist_ok=True)
with tarfile.open(".devdata/ada/train/emoji-train-000000.tar") as t:
    for m in t.getmembers():
        if m.name.endswith(".png"):
            img = Image.open(io.BytesIO(t.extractfile(m).read())).convert("RGB").resize((256, 256), Image.BICUBIC)
            img.save(f"/tmp/d256/png/{m.name}")
print(len(os.listdir("/tmp/d256/png")), "images at 256")
EOF
$PY -m sgtrain.cli.data pack /tmp/d256/png /tmp/d256/shards --resolution 256 --labels none --no-progress --overwrite \
  >> "$LOGS/data256.log" 2>&1
tail -n 3 "$LOGS/data256.log"
wait $B1; tail -n 8 "$LOGS/build-sgtrain.log"
wait $B2; tail -n 8 "$LOGS/build-nvlabs.log"
echo "builds done at $(el) s"

# ---- 3. the gpu tests
run gpu-tests 150 $PY -m pytest -q -m gpu -p no:cacheprovider tests/test_ops_fused.py tests/test_ops_filtered_lrelu.py \
  tests/test_conv2d_gradfix.py tests/test_stylegan2.py

# ---- 4. speed, back to back, with the ADA runs paused and no compiler running
for i in $(seq 40); do kill -0 $B3 2>/dev/null || break; sleep 1; done
if kill -0 $B3 2>/dev/null; then
  pkill -f "torch_utils.ops"; pkill ninja; pkill nvcc; pkill cicc; pkill ptxas
  echo "NVlabs filtered_lrelu still compiling after $(el) s: stopped (no StyleGAN3 comparison)"
fi
tail -n 3 "$LOGS/build-nvlabs-flrelu.log"
kill -STOP ${ADA_PID[none]} ${ADA_PID[ada]} 2>/dev/null
pkill -STOP -P ${ADA_PID[none]} 2>/dev/null; pkill -STOP -P ${ADA_PID[ada]} 2>/dev/null
sleep 2
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
NV_ARGS=(--outdir=/tmp/nv --data=/tmp/d256/png --gpus=1 --batch=64 --gamma=1 --cbase=16384 --mbstd-group=8
         --map-depth=8 --glr=0.0025 --dlr=0.0025 --aug=noaug --metrics=none --snap=1000 --tick=1 --workers=3)
SG_ARGS=(dataset.path=/tmp/d256/shards train.batch=64 train.batch_gpu=64 train.tick_kimg=1 train.snap_kimg=1000
         train.ckpt_kimg=1000 train.swd=false logger=none trainer.progress_bar=false run.print_config=false)
run_until nvlabs-sg2 110 "kimg +6\.0 " env -C "$NVLABS" PYTHONPATH="$PWD/.devref/shim:$PWD/$NVLABS" $PY train.py --cfg=stylegan2 --kimg=6 "${NV_ARGS[@]}"
run_until sgtrain-sg2 110 "kimg +6\.0 " "${TRAIN[@]}" experiment=paper256 train.kimg=6 run.dir=/tmp/sg256 "${SG_ARGS[@]}"
cp /tmp/sg256/metrics.jsonl "$LOGS/sgtrain-sg2.metrics.jsonl" 2>/dev/null
if (( $(left) > 250 )) && grep -q "built: True" "$LOGS/build-nvlabs-flrelu.log"; then  # StyleGAN3-T at NVlabs' defaults (cbase 32768, 2 mapping layers), gamma 2, batch 64
  run_until nvlabs-sg3t 80 "kimg +3\.0 " env -C "$NVLABS" PYTHONPATH="$PWD/.devref/shim:$PWD/$NVLABS" $PY train.py --cfg=stylegan3-t \
    --outdir=/tmp/nv3 --data=/tmp/d256/png --gpus=1 --batch=64 --gamma=2 --aug=noaug --metrics=none --snap=1000 \
    --tick=1 --workers=3 --kimg=3
  run_until sgtrain-sg3t 80 "kimg +3\.0 " "${TRAIN[@]}" model=stylegan3_t loss.r1_gamma=2 train.kimg=3 run.dir=/tmp/sg3t "${SG_ARGS[@]}"
  cp /tmp/sg3t/metrics.jsonl "$LOGS/sgtrain-sg3t.metrics.jsonl" 2>/dev/null
fi

# ---- 5. the ADA runs to the end of the budget, then D's overfitting per snapshot
kill -CONT ${ADA_PID[none]} ${ADA_PID[ada]} 2>/dev/null
pkill -CONT -P ${ADA_PID[none]} 2>/dev/null; pkill -CONT -P ${ADA_PID[ada]} 2>/dev/null
while (( $(left) > ${ADA_END:-75} )); do sleep 5; done
kill -TERM ${ADA_PID[none]} ${ADA_PID[ada]} 2>/dev/null; sleep 3
pkill -KILL -f "run.dir=/tmp/adagpu/run-" 2>/dev/null
for name in none ada; do tail -n 3 "$LOGS/ada-$name.log"; done
RESERVE=5 run ada-overfit 50 $PY scripts/ada_overfit.py --train .devdata/ada/train --held .devdata/ada/heldout \
  /tmp/adagpu/run-none /tmp/adagpu/run-ada --json "$OUT/ada_overfit.jsonl"
for name in none ada; do
  d=/tmp/adagpu/run-$name
  last=$(ls "$d"/network-snapshot-*.safetensors 2>/dev/null | sort | tail -n 1)
  mid=$(ls "$d"/network-snapshot-*.safetensors 2>/dev/null | sort | awk '{a[NR]=$0} END {if (NR) print a[int((NR+1)/2)]}')
  files=("$d/metrics.jsonl" "$d/config.yaml")
  for f in $mid $last; do files+=("$f" "${f%.safetensors}.json"); done
  s=$(ls "$d"/samples/* 2>/dev/null | sort | tail -n 1); [ -n "$s" ] && files+=("$s")
  tar cf "$OUT/ada-$name.tar" "${files[@]}" 2>/dev/null
done
cp "$OUT/ada_overfit.jsonl" "$LOGS/" 2>/dev/null
tar cf "$OUT/logs.tar" -C /tmp gpu_logs
ls -la "$OUT"
step "done"
