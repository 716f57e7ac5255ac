#!/usr/bin/env bash
# Table 3 on a GPU: the paper's network at full width and the other Table 3 CNNs, N repeats per
# protocol on Dataset_1, all from `trainer repeat` with KERAS_BACKEND=jax, one process per
# (model, protocol) sharing the GPU. Summaries (summary.json per model and protocol) go to OUT.
#
#   benchmarks/table3_gpu.sh DATASET OUT [N] [EPOCHS] [PATIENCE] [WALL_SECONDS]
#
# Each process stops starting runs once WALL_SECONDS are up (a run in progress is killed at the
# limit); summary.json is rewritten after every run, so what finished is kept and what did not is
# listed under "missing".
set -uo pipefail
dataset=$1 out=$2 n=${3:-5} epochs=${4:-80} patience=${5:-15} wall=${6:-480}
export KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$out"
for arch in sang2021 liu2017 fan2019; do
  for protocol in random grouped; do
    timeout "$wall" ${PYTHON:-python3} -m trainer repeat "$dataset" --out "/tmp/table3/$arch-$protocol" --arch "$arch" \
      --protocols "$protocol" --n "$n" --epochs "$epochs" --patience "$patience" --quiet \
      > "$out/$arch-$protocol.log" 2>&1 &
  done
done
wait
for arch in sang2021 liu2017 fan2019; do
  for protocol in random grouped; do
    cp "/tmp/table3/$arch-$protocol/summary.json" "$out/$arch-$protocol.json" 2>/dev/null || echo "$arch $protocol: no summary"
  done
done
nvidia-smi --query-gpu=name,memory.used --format=csv > "$out/gpu.txt" 2>&1 || true
