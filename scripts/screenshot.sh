#!/usr/bin/env bash
# Screenshot a web page (the Prefect or MLflow UI of `mvarchive services up`) in headless Chromium.
#
#   scripts/screenshot.sh URL OUT.png [WIDTHxHEIGHT]     e.g.
#   scripts/screenshot.sh http://127.0.0.1:4200/deployments prefect-deployments.png
#   scripts/screenshot.sh 'http://127.0.0.1:5000/#/models' mlflow-models.png 1440x900
#
# Needs Debian's `chromium` (apt-get install chromium). The virtual-time flags let the
# single-page apps fetch their data and render before the shot; without them the page is blank.
# No network beyond URL: background networking, component updates and sync are off.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 URL OUT.png [WIDTHxHEIGHT]" >&2
  exit 2
fi
url="$1"
out="$2"
size="${3:-1280x800}"

browser="${CHROMIUM:-}"
if [ -z "$browser" ]; then
  for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then browser="$(command -v "$candidate")"; break; fi
  done
fi
if [ -z "$browser" ]; then
  echo "error: chromium not found; install it with: sudo apt-get install chromium (or set CHROMIUM=/path)" >&2
  exit 1
fi

profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
mkdir -p "$(dirname "$out")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"

"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --virtual-time-budget=15000 --run-all-compositor-stages-before-draw \
  --window-size="${size/x/,}" --screenshot="$out_abs" "$url" >/dev/null 2>&1 || true

if [ ! -s "$out_abs" ]; then
  echo "error: no screenshot written to $out_abs (is $url reachable?)" >&2
  exit 1
fi
echo "$out_abs"
