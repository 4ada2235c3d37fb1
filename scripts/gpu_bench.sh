#!/usr/bin/env bash
# The GPU rows of docs/speed.md's tables, in one run, each against PyTorch eager on the same
# GPU in the same process:
#   synthesis       style transfer, L-BFGS through VGG19, 500 iterations at 512 px, then 200
#                   at 256 px, float32 on both sides (the benchmark's default precision), with
#                   one gen_jax row for each of two convolution algorithms against the same
#                   PyTorch runs: `auto` (cuDNN on GPUs) and `tune` (each shape's algorithm
#                   measured on the GPU, gen_jax.nn.xla_cpu: cuDNN or Winograd's batched
#                   float32 products, per layer; the table lists every candidate's time).
#                   512 px first: its table is saved before 256 px starts, so a run cut
#                   short by the time limit keeps the size that decides the docs row;
#                   tuning stops measuring after TUNE_BUDGET_S (240) s, later shapes taking
#                   auto's rule (each candidate compiles once per shape, and XLA:GPU's
#                   compile times for them are unmeasured);
#   synthesis_tf32  the 512 px run again at each framework's default precision (TF32);
#   synthesis_winograd  the 512 px run again with every 3x3 convolution by Winograd
#                   (`--conv-algorithm winograd`);
#   step            the DCGAN train step, 64x64, batch 64.
#
#   bash scripts/gpu_bench.sh OUT_DIR [BENCHMARK...]
#   (default: synthesis; the H200 results of synthesis_tf32 and step are in docs/bench)
#
# GPU_BENCH_SMOKE=1 runs the same commands at toy sizes (seconds, on a CPU too): the test
# suite uses it to check this script's plumbing before a GPU session depends on it.
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
all="synthesis synthesis_tf32 synthesis_winograd step"
wanted=" ${*:-synthesis} "
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

if [ "${GPU_BENCH_SMOKE:-0}" = 1 ]; then
  both=(--sizes 32,16 --iterations 2,2 --repeats 1 --check_size 16)
  one=(--sizes 16 --iterations 2 --repeats 1 --check_size 16)
  step=(--image_size 28 --batch_size 4 --steps 2 --chunk 2 --warmup 1 --repeats 1 --ngf 8 --ndf 8)
  budget=${TUNE_BUDGET_S:-2}
else
  both=(--sizes 512,256 --iterations 500,200 --repeats 3)
  one=(--sizes 512 --iterations 500 --repeats 1)
  step=(--image_size 64 --batch_size 64)
  budget=${TUNE_BUDGET_S:-240}
fi

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
  run "${SYNTHESIS_LIMIT_S:-540}" synthesis -m benchmarks.synthesis_speed \
    "${both[@]}" --conv-algorithm auto,tune --tune-budget-s "$budget" \
    --out "$out/synthesis_gpu.md"
fi
if [[ $wanted == *" synthesis_tf32 "* ]]; then
  run "${SYNTHESIS_TF32_LIMIT_S:-200}" synthesis_tf32 -m benchmarks.synthesis_speed \
    "${one[@]}" --precision default --out "$out/synthesis_gpu_tf32.md"
fi
if [[ $wanted == *" synthesis_winograd "* ]]; then
  run "${SYNTHESIS_WINOGRAD_LIMIT_S:-200}" synthesis_winograd -m benchmarks.synthesis_speed \
    "${one[@]}" --conv-algorithm winograd --out "$out/synthesis_gpu_winograd.md"
fi
if [[ $wanted == *" step "* ]]; then
  run "${STEP_LIMIT_S:-150}" step -m benchmarks.step_speed "${step[@]}" \
    --out "$out/step_gpu_64.json" --markdown "$out/step_gpu_64.md"
fi
exit $status
