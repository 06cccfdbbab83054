#!/usr/bin/env bash
# Regenerates `.sqlx/` (the query metadata that lets the workspace build with
# SQLX_OFFLINE=true) against a scratch database migrated from `migrations/`.
# Run after adding or changing a `sqlx::query!` or a migration; commit `.sqlx/`.
# Same result as `cargo sqlx prepare --workspace`, without installing sqlx-cli.
set -euo pipefail
cd "$(dirname "$0")/../.."
PGURL=${PREPARE_PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=watch_party_sqlx_prepare
psql "$PGURL/postgres" -q -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
for f in migrations/*.sql; do psql "$PGURL/$DB" -q -v ON_ERROR_STOP=1 -f "$f"; done
rm -rf .sqlx && mkdir -p .sqlx
# Touch every crate that uses the macros so they re-expand and write their metadata.
touch shared/src/lib.rs core/src/lib.rs workers/src/lib.rs api/src/lib.rs scheduler/src/lib.rs realtime/src/lib.rs
DATABASE_URL="$PGURL/$DB" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$PWD/.sqlx" \
  cargo check --workspace --all-targets --quiet
psql "$PGURL/postgres" -q -c "DROP DATABASE IF EXISTS $DB"
echo "sqlx: $(ls .sqlx | wc -l) queries prepared in .sqlx/"
