#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for training (its image has torch, lightning, safetensors, torchmetrics,
# tensorboard, PyYAML, numpy, scipy, pillow; not PyAV or scikit-video), for its Python 3.12, into .whl/ (ignored),
# at the versions of constraints.txt. Run here, where pip reaches the registry; scripts/gpu_lease.sh installs them there.
set -eu
dir=${1:-.whl}
mkdir -p "$dir"
pin() { grep -E "^$1==" constraints.txt; }
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$dir" "$(pin av)" "$(pin scikit-video)"
ls -l "$dir"
