#!/usr/bin/env bash
# The compose topology on one machine without containers (issue 18; deploy/cluster/):
# the release binary as 9 processes (2 API, 2 realtime nodes, 3 worker pools, 2
# schedulers) behind nginx, which routes /ws/ to the nodes and the rest to the API.
#   deploy/local-cluster.sh up                      # bring it up; Ctrl-C stops it
#   deploy/local-cluster.sh scenario                # 2,000 sockets in 20 parties + REST
#                                                   # load; SIGKILL of each role kind
#   deploy/local-cluster.sh scenario --short        # CI: 400 sockets in 8 parties
# Figures of the scenario: docs/operations.md ("The local cluster").
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-up}
shift || true
extra=()
if [ "${1:-}" = "--short" ]; then
  shift
  extra=(--parties 8 --members 50 --gap 5)
fi
deploy/dev/services.sh --test >/dev/null
if ! command -v nginx >/dev/null 2>&1; then
  echo "nginx: installing from Debian"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null 2>&1 \
    || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx-light >/dev/null; }
fi
(cd deploy/cluster && [ -d node_modules/ws ] || npm install --no-package-lock --no-audit --no-fund --silent)
export SQLX_OFFLINE=true CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/watch-party-target}
cargo build --quiet --release --bin watch-party
cargo build --quiet --release -p watch-party-realtime --example party_load
ulimit -n "$(ulimit -Hn)"
exec python3 deploy/cluster/cluster.py "$mode" --bin "$CARGO_TARGET_DIR/release/watch-party" \
  --load "$CARGO_TARGET_DIR/release/examples/party_load" "${extra[@]}" "$@"
