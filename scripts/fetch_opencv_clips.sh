#!/usr/bin/env bash
# Fetch the real video clips of Debian's opencv-doc package (no install needed) into data/opencv/:
# vtest.avi (768x576, 795 frames, street camera), box.mp4.gz and cup.mp4.gz (640x480, handheld), tree.avi
# (320x240, foliage) and Megamind.avi (720x528, animated trailer). cup, tree and Megamind are held out
# for evaluation (onevae.eval.heldout); the end of vtest too.
set -euo pipefail
dest="${1:-data/opencv}"
mkdir -p "$dest"
files=(vtest.avi box.mp4.gz cup.mp4.gz tree.avi Megamind.avi)
missing=0
for f in "${files[@]}"; do [ -f "$dest/$f" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "opencv clips already in $dest"; exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download opencv-doc >/dev/null; })
dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
data="$tmp/x/usr/share/doc/opencv-doc/examples/data"
html="$tmp/x/usr/share/doc/opencv-doc/opencv4/html"
cp "$data/vtest.avi" "$data/tree.avi" "$data/Megamind.avi" "$dest/"
cp "$html/box.mp4.gz" "$html/cup.mp4.gz" "$dest/"
echo "wrote $(ls "$dest" | tr '\n' ' ')to $dest"
