#!/usr/bin/env bash
# Table 3 on a GPU: the paper's network at full width and the other Table 3 CNNs, N repeats per
# protocol, all from `trainer repeat` with KERAS_BACKEND=jax, in processes sharing the GPU.
#
#   benchmarks/table3_gpu.sh DATASET OUT [N] [EPOCHS] [PATIENCE] [WALL_SECONDS] [PLAN]
#
# PLAN says how many processes share each model's N seeds per protocol, e.g. "sang2021:3
# liu2017:2 fan2019:2" (default: one process per model and protocol). Small networks leave the
# GPU idle between steps, so several processes keep it busy; each process writes its own folder
# and fixes its own share of the GPU's memory (no process can starve another).
# Each process stops starting runs once WALL_SECONDS are up (a run in progress is killed at the
# limit), and one that dies early (a GPU fault) is started again, skipping its finished runs.
# At the end the run folders are gathered per model and summarised (`trainer repeat
# --summary-only`, which names the runs that did not finish): OUT/ARCH.json per model, both
# protocols; OUT/runs.tar.gz holds every run's records (no weights) and the logs.
set -uo pipefail
dataset=$1 out=$2 n=${3:-5} epochs=${4:-80} patience=${5:-15} wall=${6:-480}
plan=${7:-"sang2021:1 liu2017:1 fan2019:1"}
py=${PYTHON:-python3}
work=${TABLE3_WORK:-/tmp/table3}
processes=0
for entry in $plan; do processes=$((processes + 2 * ${entry##*:})); done
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=true
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-$(awk -v p="$processes" 'BEGIN { printf "%.3f", 0.85 / p }')}
deadline=$(($(date +%s) + wall))
mkdir -p "$out" "$work/logs"

for entry in $plan; do
  arch=${entry%%:*} procs=${entry##*:}
  for protocol in random grouped; do
    for ((k = 0; k < procs; k++)); do
      first=$((k * n / procs)) count=$(((k + 1) * n / procs - k * n / procs))
      [ "$count" -gt 0 ] || continue
      (
        while left=$((deadline - $(date +%s))); [ "$left" -gt 0 ]; do
          timeout "$left" "$py" -m trainer repeat "$dataset" --out "$work/$arch-$protocol-p$k" --arch "$arch" \
            --protocols "$protocol" --seed "$first" --n "$count" --epochs "$epochs" --patience "$patience" --quiet && break
          sleep 5
        done
      ) > "$work/logs/$arch-$protocol-p$k.log" 2>&1 &
    done
  done
done
wait

for entry in $plan; do
  arch=${entry%%:*}
  mkdir -p "$work/merged/$arch"
  mv "$work/$arch"-*-p*/"$arch"-*-seed* "$work/merged/$arch/" 2>/dev/null
  "$py" -m trainer repeat "$dataset" --out "$work/merged/$arch" --arch "$arch" --protocols random,grouped --n "$n" \
    --epochs "$epochs" --patience "$patience" --summary-only --quiet > "$work/logs/$arch-summary.log" 2>&1
  cp "$work/merged/$arch/summary.json" "$out/$arch.json" 2>/dev/null || echo "$arch: no summary"
done
nvidia-smi --query-gpu=name,memory.total --format=csv > "$work/logs/gpu.txt" 2>&1 || true
tar -C "$work" -czf "$out/runs.tar.gz" --exclude='*.weights.h5' --exclude='*.png' merged logs
