#!/usr/bin/env bash
# The painting and photographs of Debian's opencv-doc (starry_night.jpg and friends) without the
# 328 MB install: `apt-get download` the package and unpack only examples/data into
# ${GEN_JAX_DATA:-~/.cache/gen_jax}/opencv-doc. Safe to rerun; does nothing when the files are there
# (installed system-wide or already unpacked).
set -euo pipefail
system=/usr/share/doc/opencv-doc/examples/data
dest=${GEN_JAX_DATA:-$HOME/.cache/gen_jax}/opencv-doc
if [ -f "$system/starry_night.jpg" ] || [ -f "$dest/starry_night.jpg" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "[fetch_opencv_data] no apt-get here: pass your own --style image instead" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "[fetch_opencv_data] downloading Debian's opencv-doc (about 96 MB) for starry_night.jpg"
(cd "$tmp" && apt-get download -qq opencv-doc 2>/dev/null)
dpkg-deb -x "$tmp"/opencv-doc_*.deb "$tmp/root"
mkdir -p "$dest"
cp "$tmp/root/usr/share/doc/opencv-doc/examples/data/"*.{jpg,png} "$dest/"
echo "[fetch_opencv_data] unpacked $(ls "$dest" | wc -l) images into $dest"
