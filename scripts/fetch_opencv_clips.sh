#!/usr/bin/env bash
# Fetch the real video clips of Debian's opencv-doc package (no install needed) into data/opencv/:
# vtest.avi (768x576, 795 frames, street camera), box.mp4.gz and cup.mp4.gz (640x480, handheld).
set -euo pipefail
dest="${1:-data/opencv}"
mkdir -p "$dest"
if [ -f "$dest/vtest.avi" ] && [ -f "$dest/box.mp4.gz" ] && [ -f "$dest/cup.mp4.gz" ]; then
  echo "opencv clips already in $dest"; exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download opencv-doc >/dev/null; })
dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
cp "$tmp/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$dest/"
cp "$tmp/x/usr/share/doc/opencv-doc/opencv4/html/box.mp4.gz" "$tmp/x/usr/share/doc/opencv-doc/opencv4/html/cup.mp4.gz" "$dest/"
echo "wrote $(ls "$dest" | tr '\n' ' ')to $dest"
