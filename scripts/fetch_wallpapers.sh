#!/usr/bin/env bash
# Fetch free photographs and artwork from Debian's desktop-background packages (no install needed) into
# data/wallpapers/PACKAGE/, each with its copyright file. Licences (debian/copyright of each package):
#   mate-backgrounds    GPL-2+ and CC-BY-SA-4.0 (nature photos: Dune, GreenMeadow, LadyBird, Storm, ...)
#   ukui-wallpapers     CC-BY-SA-3.0
#   gnome-backgrounds   CC-BY-SA-3.0
#   lomiri-wallpapers   CC-BY-4.0 / CC-BY-SA-3.0/4.0 / CC0-1.0 / Expat
# All allow redistribution and derived works (with attribution; share-alike for the CC-BY-SA ones): the model
# card lists them.
set -euo pipefail
dest="${1:-data/wallpapers}"
packages=(mate-backgrounds ukui-wallpapers gnome-backgrounds lomiri-wallpapers)
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pkg in "${packages[@]}"; do
  if [ -d "$dest/$pkg" ]; then echo "$pkg already in $dest"; continue; fi
  (cd "$tmp" && { apt-get download "$pkg" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get download "$pkg" >/dev/null; }; })
  dpkg -x "$tmp/${pkg}"_*.deb "$tmp/$pkg"
  mkdir -p "$dest/$pkg"
  find "$tmp/$pkg/usr/share/backgrounds" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -size +100k \
    -exec cp {} "$dest/$pkg/" \;
  cp "$tmp/$pkg/usr/share/doc/$pkg/copyright" "$dest/$pkg/COPYRIGHT" 2>/dev/null || true
  echo "$pkg: $(ls "$dest/$pkg" | grep -vc COPYRIGHT) images"
done
