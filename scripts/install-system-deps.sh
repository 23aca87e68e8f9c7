#!/usr/bin/env bash
# Install the Debian packages that mvarchive's classical baselines (mvarchive eval) need,
# only for the tools that are missing. Idempotent and never fatal: when apt-get is not
# available (no root, not Debian, offline) it prints which baselines will be unavailable
# and exits 0, and `mvarchive eval` then reports those baselines as unavailable.
#
#   tool             Debian package   baselines
#   ffmpeg (libx265) ffmpeg           x265-intra, x265-joint (HEVC 4:4:4)
#   avifenc/avifdec  libavif-bin      avif (fallback when Pillow has no AVIF support)
#   cjxl/djxl        libjxl-tools     jxl
#   JPEG, WebP and JPEG 2000 come from Pillow's wheels (libjpeg-turbo, libwebp, openjpeg).
#
# Usage: scripts/install-system-deps.sh [--check]   (--check: report only, install nothing)
set -u

CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [ -x "$here/.venv/bin/python" ]; then PYTHON="$here/.venv/bin/python"; else PYTHON="$(command -v python3 || true)"; fi
fi

pillow_has() {  # pillow_has FEATURE -> 0 when Pillow in $PYTHON supports it
  [ -n "$PYTHON" ] && "$PYTHON" -c "import sys, PIL.features as f; sys.exit(0 if f.check('$1') else 1)" >/dev/null 2>&1
}

ffmpeg_has_x265() {
  command -v ffmpeg >/dev/null 2>&1 && ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx265
}

# command -> package, only for what is missing
missing_pkgs=()
ffmpeg_has_x265 || missing_pkgs+=(ffmpeg)
# avifenc/avifdec are the AVIF fallback when Pillow was built without AVIF
{ command -v avifenc >/dev/null 2>&1 && command -v avifdec >/dev/null 2>&1; } || missing_pkgs+=(libavif-bin)
{ command -v cjxl >/dev/null 2>&1 && command -v djxl >/dev/null 2>&1; } || missing_pkgs+=(libjxl-tools)

if [ ${#missing_pkgs[@]} -eq 0 ]; then
  echo "install-system-deps: all baseline tools present (ffmpeg+libx265, avifenc/avifdec, cjxl/djxl)"
elif [ "$CHECK_ONLY" = 1 ]; then
  echo "install-system-deps: missing packages: ${missing_pkgs[*]} (--check: nothing installed)"
else
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "$SUDO" = none ]; then
    echo "install-system-deps: cannot install ${missing_pkgs[*]} (no apt-get or no root); skipping" >&2
  else
    echo "install-system-deps: installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-o DPkg::Lock::Timeout=300 -q)
    # refresh the lists only when they are missing or a first install attempt fails
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
      $SUDO apt-get "${apt_opts[@]}" update >/dev/null || true
    fi
    if ! $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing_pkgs[@]}"; then
      $SUDO apt-get "${apt_opts[@]}" update >/dev/null || true
      $SUDO apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing_pkgs[@]}" \
        || echo "install-system-deps: apt-get install failed; continuing without ${missing_pkgs[*]}" >&2
    fi
  fi
fi

# Final report: what each baseline will use, or why it is unavailable.
report() { printf '  %-12s %s\n' "$1" "$2"; }
echo "classical baselines:"
if [ -n "$PYTHON" ] && "$PYTHON" -c "import PIL.features" >/dev/null 2>&1; then
  pillow_has jpg && report jpeg "available (Pillow)" || report jpeg "UNAVAILABLE: Pillow lacks JPEG"
  pillow_has webp && report webp "available (Pillow)" || report webp "UNAVAILABLE: Pillow lacks WebP"
  pillow_has jpg_2000 && report jpeg2000 "available (Pillow/openjpeg)" || report jpeg2000 "UNAVAILABLE: Pillow lacks JPEG 2000 (openjpeg)"
else
  for b in jpeg webp jpeg2000; do report "$b" "UNKNOWN: ${PYTHON:-python3} cannot import Pillow (run make install first)"; done
fi
if pillow_has avif; then report avif "available (Pillow)"
elif command -v avifenc >/dev/null 2>&1 && command -v avifdec >/dev/null 2>&1; then report avif "available (avifenc/avifdec)"
else report avif "UNAVAILABLE: no Pillow AVIF and no avifenc/avifdec (Debian package libavif-bin)"; fi
{ command -v cjxl >/dev/null 2>&1 && command -v djxl >/dev/null 2>&1; } && report jxl "available (cjxl/djxl)" \
  || report jxl "UNAVAILABLE: cjxl/djxl missing (Debian package libjxl-tools)"
if ffmpeg_has_x265; then report x265-intra "available (ffmpeg libx265)"; report x265-joint "available (ffmpeg libx265)"
else report x265-intra "UNAVAILABLE: ffmpeg with libx265 missing (Debian package ffmpeg)"
     report x265-joint "UNAVAILABLE: ffmpeg with libx265 missing (Debian package ffmpeg)"; fi
exit 0
