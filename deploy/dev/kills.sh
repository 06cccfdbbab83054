#!/usr/bin/env bash
# Kill rehearsal (see deploy/dev/kills.py): every role as its own process under load
# (comments, views, party sockets), each killed with SIGKILL in turn and restarted, then
# ClickHouse and Redis (empty) restarted; checks that nothing acknowledged is lost, nothing is
# notified twice, and every socket is back and in step within 30 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh --test >/dev/null
export SQLX_OFFLINE=true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/watch-party-target}
cargo build --quiet --bin watch-party
exec python3 deploy/dev/kills.py --bin "$CARGO_TARGET_DIR/debug/watch-party" "$@"
