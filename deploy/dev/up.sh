#!/usr/bin/env bash
# Brings up everything on one machine: starts (or installs) PostgreSQL, Redis and
# ClickHouse, builds the release binary, migrates, and runs every role (API on
# BIND_ADDR, default 127.0.0.1:8000; workers for every queue; the scheduler) in one
# process, with its ops routes (/ready's checks, /metrics, /ws/stats/) on OPS_BIND_ADDR,
# default 127.0.0.1:9100. Ctrl-C stops it gracefully.
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh
SQLX_OFFLINE=true cargo build --release --bin watch-party
export OPS_BIND_ADDR=${OPS_BIND_ADDR:-127.0.0.1:9100}
exec ./target/release/watch-party all
