#!/usr/bin/env bash
# The GPU rows of the README's speed tables, in one run, each against PyTorch eager on the same
# GPU in the same process:
#   synthesis       style transfer, L-BFGS through VGG19, 200 iterations at 256 px and 500 at
#                   512 px, float32 on both sides (the benchmark's default precision);
#   synthesis_tf32  the 512 px run again at each framework's default precision (TF32);
#   synthesis_winograd  the 512 px run again with gen_jax's convolutions by Winograd
#                   (`--conv-algorithm winograd`: batched float32 matmuls instead of cuDNN);
#   synthesis_tune  the 512 px run again with each convolution shape's algorithm measured on
#                   the GPU (`--conv-algorithm tune`, gen_jax.nn.conv_tune: cuDNN or
#                   Winograd, per layer); its table lists every candidate's time;
#   step            the DCGAN train step, 64x64, batch 64.
#
#   bash scripts/gpu_bench.sh OUT_DIR [BENCHMARK...]
#   (default: synthesis synthesis_winograd synthesis_tune; the H200 results of
#   synthesis_tf32 and step are in docs/bench already)
#
# Runs with the machine's own python3 (its CUDA builds of jax and torch): nothing is
# installed, gen_jax comes from this checkout through PYTHONPATH. Each benchmark has a time
# limit, and a failed one does not stop the next; OUT_DIR gets each one's .md/.json and one
# log of everything.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_bench.sh OUT_DIR (an existing folder)}
if [ ! -d "$out" ]; then
  echo "gpu_bench: OUT_DIR $out is not an existing folder" >&2
  exit 2
fi
shift
all="synthesis synthesis_tf32 synthesis_winograd synthesis_tune step"
wanted=" ${*:-synthesis synthesis_winograd synthesis_tune} "
for name in $wanted; do
  case " $all " in
    *" $name "*) ;;
    *) echo "gpu_bench: unknown benchmark $name (expected one of: $all)" >&2
       exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
log=$out/gpu_bench.log
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  "$PY" - <<'EOF'
import importlib
for name in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "chex", "torch", "numpy"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as e:  # noqa: BLE001 - a report, not a check
        print(name, "unavailable:", e)
import jax
print("jax devices:", jax.devices())
EOF
} 2>&1 | tee "$log"

status=0
run() {  # run LIMIT_S NAME ARGS...: one benchmark, its output appended to the log
  local limit=$1 name=$2
  shift 2
  echo "== $name: $*" | tee -a "$log"
  timeout "$limit" "$PY" "$@" 2>&1 | tee -a "$log"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc" | tee -a "$log"
  [ "$rc" -eq 0 ] || status=1
}

if [[ $wanted == *" synthesis "* ]]; then
  run "${SYNTHESIS_LIMIT_S:-240}" synthesis -m benchmarks.synthesis_speed \
    --sizes 256,512 --iterations 200,500 --repeats 3 --out "$out/synthesis_gpu.md"
fi
if [[ $wanted == *" synthesis_tf32 "* ]]; then
  run "${SYNTHESIS_TF32_LIMIT_S:-200}" synthesis_tf32 -m benchmarks.synthesis_speed \
    --sizes 512 --iterations 500 --repeats 1 --precision default \
    --out "$out/synthesis_gpu_tf32.md"
fi
if [[ $wanted == *" synthesis_winograd "* ]]; then
  run "${SYNTHESIS_WINOGRAD_LIMIT_S:-200}" synthesis_winograd -m benchmarks.synthesis_speed \
    --sizes 512 --iterations 500 --repeats 1 --conv-algorithm winograd \
    --out "$out/synthesis_gpu_winograd.md"
fi
if [[ $wanted == *" synthesis_tune "* ]]; then
  run "${SYNTHESIS_TUNE_LIMIT_S:-240}" synthesis_tune -m benchmarks.synthesis_speed \
    --sizes 512 --iterations 500 --repeats 1 --conv-algorithm tune \
    --out "$out/synthesis_gpu_tune.md"
fi
if [[ $wanted == *" step "* ]]; then
  run "${STEP_LIMIT_S:-150}" step -m benchmarks.step_speed --image_size 64 --batch_size 64 \
    --out "$out/step_gpu_64.json" --markdown "$out/step_gpu_64.md"
fi
exit $status
