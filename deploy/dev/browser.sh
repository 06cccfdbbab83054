#!/usr/bin/env bash
# Playback sync in real browsers (docs/sync.md, "In browsers"): 4 Chromium members of a
# party on two realtime nodes, each through a delaying proxy (20–300 ms, jitter,
# asymmetry, retransmission stalls, 3 MB/s) and with its own clock offset (the page's clock),
# a timeline of play, seeks into unloaded media, rate changes, a pause, a late join and
# a node restart; every shown frame measured. `--short` (CI): the MP4 half only.
# Needs the debug binary (cargo build) and Chromium (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${CARGO_TARGET_DIR:-target}
bin="$target/debug/watch-party"
[ -x "$bin" ] || { echo "build first: cargo build (no $bin)" >&2; exit 1; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
for pkg in chromium; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "$pkg: installing from Debian"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
  fi
done
(cd deploy/browser && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --loglevel=error)
# Test media: a test card with a running clock, 2 s keyframes, as MP4 (H.264/AAC) and WebM (VP9/Opus).
media=${BROWSER_MEDIA:-$HOME/.cache/watch-party-media}
mkdir -p "$media"
if [ ! -s "$media/clip.mp4" ]; then
  ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=640x360:rate=30" -f lavfi -i "sine=frequency=440" \
    -t 150 -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -c:a aac -movflags +faststart "$media/clip.mp4"
fi
if [ "${1:-}" != "--short" ] && [ ! -s "$media/clip.webm" ]; then
  ffmpeg -loglevel error -y -f lavfi -i "testsrc2=size=426x240:rate=30" -f lavfi -i "sine=frequency=440" \
    -t 90 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 400k -g 60 -c:a libopus "$media/clip.webm"
fi
exec node deploy/browser/sync-run.mjs --bin "$bin" --media "$media" "$@"
