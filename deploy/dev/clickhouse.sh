#!/usr/bin/env bash
# Installs (Debian's clickhouse-server, if missing) and starts a ClickHouse server for
# development and tests: 127.0.0.1, HTTP 8123, data under $CLICKHOUSE_DIR
# (default /tmp/watch-party-clickhouse). Idempotent: does nothing if it already answers.
set -euo pipefail
DIR=${CLICKHOUSE_DIR:-/tmp/watch-party-clickhouse}
HTTP_PORT=${CLICKHOUSE_HTTP_PORT:-8123}
TCP_PORT=${CLICKHOUSE_TCP_PORT:-9000}

if curl -sf "http://127.0.0.1:${HTTP_PORT}/ping" >/dev/null 2>&1; then
  echo "clickhouse: already answering on ${HTTP_PORT}"
  exit 0
fi

if ! command -v clickhouse-server >/dev/null 2>&1; then
  echo "clickhouse: installing clickhouse-server from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null
fi

mkdir -p "$DIR"/{data,tmp,user_files,format_schemas,log}
cat > "$DIR/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <!-- Lets migrations use LowCardinality on 18.16 (never sent by the client). -->
      <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
cat > "$DIR/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>$DIR/log/server.log</log>
    <errorlog>$DIR/log/error.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>${HTTP_PORT}</http_port>
  <tcp_port>${TCP_PORT}</tcp_port>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <max_concurrent_queries>200</max_concurrent_queries>
  <timezone>UTC</timezone>
</yandex>
XML

clickhouse-server --config-file="$DIR/config.xml" --pid-file="$DIR/clickhouse.pid" --daemon
for _ in $(seq 1 100); do
  if curl -sf "http://127.0.0.1:${HTTP_PORT}/ping" >/dev/null 2>&1; then
    echo "clickhouse: ready on ${HTTP_PORT} (data in $DIR)"
    exit 0
  fi
  sleep 0.2
done
echo "clickhouse: did not start; last log lines:" >&2
tail -n 30 "$DIR/log/error.log" >&2 2>/dev/null || true
exit 1
