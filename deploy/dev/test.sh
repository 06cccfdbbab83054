#!/usr/bin/env bash
# Runs every test against real services (PostgreSQL, Redis, ClickHouse, an SMTP server).
# Starts or installs what is missing first. Extra arguments go to cargo nextest
# (e.g. `deploy/dev/test.sh --test jobs`).
set -euo pipefail
cd "$(dirname "$0")/../.."
deploy/dev/services.sh --test
export SQLX_OFFLINE=true
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
