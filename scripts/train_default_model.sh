#!/usr/bin/env bash
# Train the shipped default tokenizer from scratch (CPU is enough: about 2 h on 2 cores) and install it
# into the package with its model card:
#   bash scripts/train_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_opencv_clips.sh data/opencv
python scripts/prepare_training_data.py --out data/train_small --short-side 144 --photos
rm -f data/train_small/photos/{cat,chelsea,colorwheel,hubble_deep_field,retina,immunohistochemistry}.png
start=$(date +%s)
onevae train --config configs/default_small_continuous.yaml
onevae train --config configs/default_small_joint.yaml
onevae train --config configs/default_small_long.yaml
onevae train --config configs/default_small_longer.yaml
end=$(date +%s)
python scripts/install_default_model.py runs/default_small/longer/export --wall-seconds $((end - start))
