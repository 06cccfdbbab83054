#!/usr/bin/env bash
# Fault rehearsal (see deploy/dev/faults.py): runs every role as its own process with
# Redis and PostgreSQL behind TCP proxies, cuts them under load, and checks that every
# role recovers by itself and nothing acknowledged is lost. `--long` adds 30 s outages.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh --test >/dev/null
export SQLX_OFFLINE=true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/watch-party-target}
cargo build --quiet --bin watch-party
exec python3 deploy/dev/faults.py --bin "$CARGO_TARGET_DIR/debug/watch-party" "$@"
