#!/usr/bin/env bash
# Applied migrations are never edited: a database that ran a migration keeps its
# checksum, and sqlx refuses to start against an edited one; a ClickHouse migration
# (clickhouse/0*.sql) that ran is never run again, so an edit would reach no database
# that has it. `migrations/applied.sha256`
# records each migration's SHA-256 when it lands; this check fails when
#  - a migration's content no longer matches its recorded checksum,
#  - a migration exists that is not recorded (record it: `--record`),
#  - a recorded line was ever changed or removed in the history of the record.
# Fixing a migration that already ran means a new migration, never an edit.
set -euo pipefail
cd "$(dirname "$0")/../.."
lock=migrations/applied.sha256

if [ "${1:-}" = "--record" ]; then
  touch "$lock"
  for f in migrations/*.sql clickhouse/0*.sql; do
    grep -q "  $f\$" "$lock" || sha256sum "$f" >> "$lock"
  done
  echo "recorded: $(wc -l < "$lock") migrations in $lock"
  exit 0
fi

fail=0
sha256sum --quiet -c "$lock" || { echo "an applied migration was edited (see above): add a new migration instead" >&2; fail=1; }
for f in migrations/*.sql clickhouse/0*.sql; do
  grep -q "  $f\$" "$lock" || { echo "$f is not recorded in $lock: run deploy/dev/check-migrations.sh --record and commit it" >&2; fail=1; }
done
# The record itself only grows: no commit may change or drop a line of it.
if git rev-parse --git-dir >/dev/null 2>&1 && [ "$(git rev-parse --is-shallow-repository)" = false ]; then
  removed=$(git log --format= -p -- "$lock" | grep -E '^-[0-9a-f]{64} ' || true)
  if [ -n "$removed" ]; then
    echo "lines of $lock were changed or removed in its history:" >&2
    echo "$removed" >&2
    fail=1
  fi
fi
[ "$fail" -eq 0 ] && echo "migrations: $(wc -l < "$lock") recorded, none edited"
exit "$fail"
