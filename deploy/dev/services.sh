#!/usr/bin/env bash
# Makes sure every service the project needs answers on this machine:
# PostgreSQL and Redis (started if installed but down), ClickHouse (installed from
# Debian and started if missing), ffmpeg for the media worker, and, with `--test`,
# aiosmtpd (the test SMTP server), moto (the test S3 server) and PgBouncer (the
# pooling test starts its own; a 1.21+ binary in PGBOUNCER_BIN is used when given)
# and faketime (a node with a wrong clock).
set -euo pipefail
cd "$(dirname "$0")"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "postgres: not answering; starting it"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
pg_isready -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "redis: not answering; starting it"
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.2; done
fi
echo "redis: $(redis-cli -h 127.0.0.1 -p 6379 ping)"

./clickhouse.sh

# The media worker probes and prepares videos with ffmpeg/ffprobe.
if ! command -v ffprobe >/dev/null 2>&1 || ! command -v ffmpeg >/dev/null 2>&1; then
  echo "ffmpeg: installing from Debian"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi
echo "ffmpeg: $(ffmpeg -version | head -1)"

if [ "${1:-}" = "--test" ]; then
  if [ -z "${PGBOUNCER_BIN:-}" ] && [ ! -x /usr/sbin/pgbouncer ]; then
    echo "pgbouncer: installing from Debian"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pgbouncer >/dev/null
  fi
  echo "pgbouncer: $("${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}" --version | head -1)"
  # A realtime node with a wrong clock, in the sync tests.
  if ! command -v faketime >/dev/null 2>&1; then
    echo "faketime: installing from Debian"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime >/dev/null
  fi
  if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null && ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "aiosmtpd: installing python3-aiosmtpd from Debian"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-aiosmtpd >/dev/null
  fi
  echo "aiosmtpd: available"
  # moto's server mode stands in for S3 in the storage tests.
  if ! python3 -c 'import moto.server' 2>/dev/null; then
    echo "moto: installing moto[server] from PyPI"
    python3 -m pip install -q "moto[server]"
  fi
  echo "moto: available"
  # The frame check after the tests (deploy/dev/check-frames.py) reads YAML and JSON Schema.
  if ! python3 -c 'import yaml, jsonschema' 2>/dev/null; then
    echo "jsonschema, PyYAML: installing from PyPI"
    python3 -m pip install -q jsonschema PyYAML
  fi
  echo "jsonschema: available"
fi
