#!/usr/bin/env bash
# One short GPU lease of a training stage (issue 9), run from the repository root on the lent machine:
#   OUT=/path bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]
# - installs the wheels carried in .whl/ (the device image has torch and lightning but not PyAV or scikit-video)
#   into /tmp/site, and runs onevae from src/ (nothing to build);
# - trains CONFIG in pieces (`--resume auto`, each stopped by SIGTERM with a checkpoint, exit 75) until the
#   stage ends or SECONDS have passed, PIECE seconds at most each (default 540);
#   set SECONDS to the call's timeout_s less about 60 (start-up, export);
# - leaves what can come back as ONE tar split into parts: $OUT/NAME.tar.part00, part01, ... (NAME: the config's
#   file name, or $NAME), each below SPLIT_BYTES (15 MB), holding export/ (the float16 model), metrics.csv,
#   config.yaml and lease.log. The device returns at most 8 files of 16 MB, 64 MiB in all (2026-11-27: a lease
#   that left 14 separate files got 8 back and lost both models), so a lease's whole output is 2 files for
#   onevae-small and warns when $OUT holds more than the device returns. Here: `cat NAME.tar.part* | tar xf -`.
#   The next lease starts from that export (`model.init_from=DIR`); the optimizer state stays behind.
# docs/default_model.md "A lease, step by step" has the carry: data/train_default and .whl (scripts/gpu_wheels.sh).
set -u
config=${1:?usage: OUT=DIR bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]}
seconds=${2:?usage: OUT=DIR bash scripts/gpu_lease.sh CONFIG SECONDS [KEY=VALUE ...]}
shift 2
out=${OUT:?set OUT to the folder that comes back}
piece=${PIECE:-540}
py=${PYTHON:-python3}
name=${NAME:-$(basename "$config" .yaml)}
deadline=$(( $(date +%s) + seconds ))
bundle=$(mktemp -d)   # what goes into the tar
trap 'rm -rf "$bundle"' EXIT
mkdir -p "$out" "$bundle/export"
exec > >(tee -a "$bundle/lease.log") 2>&1

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
  # 75: stopped with a checkpoint; 143: stopped by the TERM before training began (a short last piece, a slow
  # start), so the next piece resumes from the last checkpoint
  [ "$rc" -eq 75 ] || [ "$rc" -eq 143 ] || { echo "== training failed (exit $rc)"; break; }
done

ckpt="$run_dir/checkpoints/last.ckpt"
if [ "$rc" -eq 0 ] && [ -f "$run_dir/export/model.safetensors" ]; then   # a finished stage: its own (EMA) export
  "$py" -c 'import sys; from onevae import OneVAE; import torch; OneVAE.from_pretrained(sys.argv[1]).save_pretrained(sys.argv[2], dtype=torch.float16)' \
    "$run_dir/export" "$bundle/export" || exit 1
elif [ -f "$ckpt" ]; then
  "$py" -m onevae.cli.main export "$ckpt" -o "$bundle/export" --save-dtype float16 || exit 1
fi
cp "$run_dir/logs/metrics.csv" "$bundle/metrics.csv" 2>/dev/null
cp "$run_dir/config.yaml" "$bundle/config.yaml" 2>/dev/null
rm -f "$out/$name.tar.part"*
tar cf - -C "$bundle" . | split -b "${SPLIT_BYTES:-15000000}" -d - "$out/$name.tar.part" || exit 1
ls -l "$out"
# The device's return limits (docs of the device tool): 8 files, 16 MB each, 64 MiB together.
files=$(find "$out" -type f | wc -l)
bytes=$(du -sb "$out" | cut -f1)
if [ "$files" -gt 8 ] || [ "$bytes" -gt 67108864 ]; then
  echo "== WARNING: $out holds $files files, $bytes bytes: the device returns at most 8 files, 64 MiB in all"
fi
