#!/usr/bin/env bash
# One prepared GPU benchmark (at most 8 minutes on one H200): run it from the repository root on a machine with a
# GPU and the project installed (pip install -e .), e.g.
#
#     bash benchmarks/gpu.sh                # writes results/bench-gpu.json (and results/bench-gpu/ with the parts)
#     bash benchmarks/gpu.sh --dry-run      # the same steps on the CPU at toy sizes, no nvidia-smi: checks plumbing
#
# Each search is stopped with SIGINT at its limit (it then writes its summary as interrupted).
# Steps, each under its own time limit so the whole stays within budget and a slow step cannot lose the others:
#   1. images/s per model kind, fp32 vs bf16, contiguous vs channels_last (benchmarks/speed.py; 1.25 min)
#   2. the GPU's busy fraction (nvidia-smi utilization.gpu, sampled every 200 ms) while 1, 4 and 16 trials share
#      it (--gpus-per-trial 1/N, the product's search on 2800 synthetic 128 px phantoms, dae, 5 epochs; 4.75 min)
#   3. a reduced gpu-preset search (ae and dunet, 4 trials each, epochs {4, 8}, ASHA grace 2; 1.7 min)
# Phantoms, not the MRI set: the device machine holds only the repository. PYTHON overrides the interpreter.
set -euo pipefail

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
if [[ -z "${PYTHON:-}" && -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tuneae-gpu.XXXXXX")"
OUT_DIR="results/bench-gpu"; FINAL="results/bench-gpu.json"
(( DRY )) && { OUT_DIR="$WORK/out"; FINAL="$WORK/bench-gpu.json"; }  # a dry run leaves results/ alone
mkdir -p "$OUT_DIR"
START=$(date +%s)
log() { echo "[gpu.sh +$(( $(date +%s) - START ))s] $*"; }
cleanup() { [[ -n "${SMI_PID:-}" ]] && kill "$SMI_PID" 2>/dev/null || true; }
trap cleanup EXIT

if (( DRY )); then
  DEVICE=cpu; SIZE=32; PHANTOMS=120; EPOCHS=2; SHARES="1 2"; SPEED_STEPS=1; SPEED_ARGS=(--cases quick --size 32)
  STEP1_S=300; STEP2_S=600; STEP3_S=600; SEARCH_N=2; SEARCH_EPOCHS="1 2"; GPU_FLAG=(--gpus-per-trial 0)
else
  command -v nvidia-smi >/dev/null || { echo "gpu.sh: nvidia-smi not found (use --dry-run without a GPU)" >&2; exit 2; }
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "gpu.sh: torch sees no CUDA device" >&2; exit 2; }
  DEVICE=cuda; SIZE=128; PHANTOMS=2800; EPOCHS=5; SHARES="1 4 16"; SPEED_STEPS=20; SPEED_ARGS=(--cases all)
  STEP1_S=75; STEP2_S=285; STEP3_S=100; SEARCH_N=4; SEARCH_EPOCHS="4 8"; GPU_FLAG=()
fi
NCPU=$(nproc)
log "device=$DEVICE python=$PY cpus=$NCPU work=$WORK"
"$PY" -c "import torch, ray, optuna, tuneae; print('torch', torch.__version__, 'ray', ray.__version__)" \
  || { echo "gpu.sh: $PY cannot import torch, ray, optuna and tuneae (pip install -e . first)" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$WORK/gpu.txt" 2>/dev/null \
  || echo "none" > "$WORK/gpu.txt"

# ------------------------------------------------------------------ 1. images/s per kind, fp32 vs bf16
log "step 1: speed per kind and precision"
timeout "$STEP1_S" "$PY" benchmarks/speed.py --device "$DEVICE" --precision fp32 bf16 \
  --memory-format contiguous channels_last --batch-size 64 --steps "$SPEED_STEPS" "${SPEED_ARGS[@]}" \
  --out "$OUT_DIR/speed.json" > "$WORK/speed.log" 2>&1 || log "step 1 stopped (exit $?): see $WORK/speed.log"

# ------------------------------------------------------------------ 2. busy fraction with 1, 4, 16 trials
cat > "$WORK/phantom.toml" <<EOF
[data]
phantom_count = $PHANTOMS
EOF
cat > "$WORK/share.toml" <<EOF
[data]
phantom_count = $PHANTOMS
[space]
"model.depth" = [5]
"model.base_channels" = [32]
"model.kernel_size" = [3]
"model.norm" = ["batch"]
"model.input_norm" = ["none"]
"model.latent_layout" = ["dense"]
"model.residual" = [false]
"model.recon_loss" = ["mse"]
EOF
for n in $SHARES; do  # the product's search: n identical dae trials at once, 1/n of the device each
  left=$(( STEP1_S + STEP2_S - ($(date +%s) - START) ))
  (( left < 30 )) && { log "step 2: no time left for $n trial(s)"; break; }
  gpus=$("$PY" -c "print(1 / $n if '$DEVICE' == 'cuda' else 0)")
  cpus=$(( NCPU / n > 0 ? NCPU / n : 1 ))
  log "step 2: $n trial(s) sharing the device, $gpus GPU and $cpus CPU each (limit ${left}s)"
  SMI_PID=""
  if (( ! DRY )); then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 200 \
      > "$WORK/smi-$n.csv" & SMI_PID=$!
  fi
  date +%s.%N > "$WORK/share-$n.start"
  timeout -s INT -k 30 "$left" "$PY" -m tuneae.search --preset gpu --data phantom --config "$WORK/share.toml" \
    --image-size "$SIZE" --model dae --num-samples "$n" --max-concurrent "$n" --gpus-per-trial "$gpus" \
    --cpus-per-trial "$cpus" --epochs "$EPOCHS" --grace-period "$EPOCHS" --lr 5e-4 --batch-size 64 \
    --latent-dim 1024 --no-wandb --storage-path "$WORK/runs" --results-dir "$WORK/results" --name "share$n" \
    > "$WORK/share-$n.log" 2>&1 || log "step 2 ($n trials) exit $?: see $WORK/share-$n.log"
  date +%s.%N > "$WORK/share-$n.end"
  if [[ -n "$SMI_PID" ]]; then kill "$SMI_PID" 2>/dev/null || true; wait "$SMI_PID" 2>/dev/null || true; fi
  SMI_PID=""
done

# ------------------------------------------------------------------ 3. a reduced gpu-preset search
left=$(( STEP1_S + STEP2_S + STEP3_S - ($(date +%s) - START) ))
log "step 3: reduced gpu-preset search (limit ${left}s)"
if (( left >= 30 )); then
  # shellcheck disable=SC2086
  timeout -s INT -k 30 "$left" "$PY" -m tuneae.search --preset gpu --data phantom --config "$WORK/phantom.toml" \
    --image-size "$SIZE" --model ae dunet --num-samples "$SEARCH_N" --epochs $SEARCH_EPOCHS --grace-period 2 \
    ${GPU_FLAG[@]+"${GPU_FLAG[@]}"} --no-wandb --storage-path "$WORK/runs" --results-dir "$WORK/results" --name reduced \
    > "$WORK/reduced.log" 2>&1 || log "step 3 exit $?: see $WORK/reduced.log"
fi

# ------------------------------------------------------------------ the JSON
log "writing $FINAL"
"$PY" benchmarks/gpu_summary.py --work "$WORK" --out-dir "$OUT_DIR" --out "$FINAL" \
  --shares $SHARES --dry-run "$DRY"
log "done in $(( $(date +%s) - START ))s"
