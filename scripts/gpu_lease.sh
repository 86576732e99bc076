#!/usr/bin/env bash
# One short GPU lease of a training stage (issue 9), run from the repository root on the lent machine:
#   OUT=/path bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]
# - installs the wheels carried in .whl/ (the device image has torch and lightning but not PyAV or scikit-video)
#   into /tmp/site, and runs onevae from src/ (nothing to build);
# - trains CONFIG in pieces (`--resume auto`, each stopped by SIGTERM with a checkpoint, exit 75) until the
#   stage ends or SECONDS have passed, PIECE seconds at most each (default 540);
#   set SECONDS to the call's timeout_s less about 60 (start-up, export);
# - leaves what can come back under $OUT: the float16 export (split into 15 MB parts when larger, since a file
#   over 16 MB does not come back; join them with `cat model.safetensors.part* > model.safetensors`), the
#   metrics log, the run's config and this script's log. The next lease starts from that export
#   (`model.init_from=DIR`); the optimizer state stays behind.
# docs/training.md "On a GPU" has the carry: data/train_default and .whl (built here by scripts/gpu_wheels.sh).
set -u
config=${1:?usage: OUT=DIR bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]}
seconds=${2:?usage: OUT=DIR bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]}
shift 2
out=${OUT:?set OUT to the folder that comes back}
piece=${PIECE:-540}
py=${PYTHON:-python3}
deadline=$(( $(date +%s) + seconds ))
mkdir -p "$out/export"
exec > >(tee -a "$out/lease.log") 2>&1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
[ -d /tmp/site ] && PYTHONPATH=/tmp/site:$PYTHONPATH   # wheels installed by this call or an earlier one on the same machine
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

run_dir=$("$py" -c 'import sys; from onevae.train.config import load_train_config; print(load_train_config(sys.argv[1], sys.argv[2:]).output_dir)' "$config" "$@") || exit 1
rc=1
echo "== $config -> $run_dir, until $(date -u -d @"$deadline" +%H:%M:%S) UTC"
while :; do
  left=$(( deadline - $(date +%s) - 30 ))   # 30 s for the export
  [ "$left" -ge 30 ] || { echo "== out of time"; break; }
  budget=$(( left < piece ? left : piece ))
  echo "== piece of ${budget} s ($(date -u +%H:%M:%S))"
  timeout --preserve-status -s TERM "$budget" "$py" -m onevae.cli.main train --config "$config" --resume auto "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then echo "== stage finished"; break; fi
  [ "$rc" -eq 75 ] || { echo "== training failed (exit $rc)"; break; }
done

ckpt="$run_dir/checkpoints/last.ckpt"
if [ "$rc" -eq 0 ] && [ -f "$run_dir/export/model.safetensors" ]; then   # a finished stage: its own (EMA) export
  "$py" -c 'import sys; from onevae import OneVAE; import torch; OneVAE.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], dtype=torch.float16)' \
    "$run_dir/export" "$out/export" || exit 1
elif [ -f "$ckpt" ]; then
  "$py" -m onevae.cli.main export "$ckpt" -o "$out/export" --save-dtype float16 || exit 1
fi
weights="$out/export/model.safetensors"
if [ -f "$weights" ]; then
  part=${SPLIT_BYTES:-15000000}
  if [ "$(stat -c %s "$weights")" -gt "$part" ]; then
    split -b "$part" -d "$weights" "$weights.part" && rm "$weights"
  fi
fi
cp "$run_dir/logs/metrics.csv" "$out/metrics.csv" 2>/dev/null
cp "$run_dir/config.yaml" "$out/config.yaml" 2>/dev/null
ls -l "$out" "$out/export"
