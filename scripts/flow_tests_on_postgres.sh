#!/usr/bin/env bash
# The flow tests (and the deployment registration test) against a Prefect server backed by a
# real PostgreSQL: a private cluster and server on free ports of their own, stopped and
# removed afterwards. `make test` runs them this way (and not on the stack's SQLite server).
# As root, installs postgresql when missing and runs the cluster as the postgres user
# (PostgreSQL refuses root).
# Usage: scripts/flow_tests_on_postgres.sh [--alongside COMMAND... --] [pytest args...]
#   --alongside: run COMMAND while the cluster and server start (their start, with the
#   schema migrations, takes a minute or more) and while the flow tests run, which start
#   as soon as the server is healthy (their output is printed once COMMAND ends, so the
#   two never interleave); the exit status is the first failure's. `make test` runs the
#   rest of the suite that way.
set -euo pipefail
cd "$(dirname "$0")/.."
alongside=()
if [ "${1:-}" = --alongside ]; then
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do alongside+=("$1"); shift; done
  [ $# -gt 0 ] && shift
fi
PG_TESTS=(tests/flows tests/integration/test_deployments.py)
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT=${RUNBOOK_PG_TEST_PORT:-$(free_port)}
API_PORT=${RUNBOOK_PG_TEST_PREFECT_PORT:-$(free_port)}
if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "PostgreSQL is not installed (apt-get install postgresql)"; exit 2; }
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi
PG_BIN=$(printf "%s\n" /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_cluster_user() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
WORK=$(mktemp -d /tmp/runbook-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
server_pid=""
alongside_pid=""
# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  if [ -n "$alongside_pid" ]; then kill "$alongside_pid" 2>/dev/null; wait "$alongside_pid" || true; fi
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" || true; fi
  as_cluster_user "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# A killed run (CI timeout, Ctrl-C) still stops its PostgreSQL and Prefect server.
trap "exit 143" TERM
trap "exit 130" INT
as_cluster_user "$PG_BIN/initdb" -D "$WORK/data" -A trust -U prefect >/dev/null
# fsync off: a throw-away cluster; durability is not what these tests check.
as_cluster_user "$PG_BIN/pg_ctl" -D "$WORK/data" -w -t 60 -l "$WORK/postgres.log" \
  -o "-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U prefect prefect
mkdir -p "$WORK/prefect-home"
PREFECT_HOME="$WORK/prefect-home" PREFECT_SERVER_ANALYTICS_ENABLED=false \
  PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect@127.0.0.1:$PG_PORT/prefect" \
  .venv/bin/prefect server start --host 127.0.0.1 --port "$API_PORT" >"$WORK/server.log" 2>&1 &
server_pid=$!
status=0
if [ ${#alongside[@]} -gt 0 ]; then "${alongside[@]}" & alongside_pid=$!; fi
# The alongside COMMAND's status, once it ended (and only then: the flow tests' own
# failure comes second).
finish_alongside() {
  [ -n "$alongside_pid" ] || return 0
  local code=0
  wait "$alongside_pid" || code=$?
  alongside_pid=""
  return "$code"
}
healthy() { .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
  "http://127.0.0.1:$API_PORT/api/health" 2>/dev/null; }
for _ in $(seq 120); do
  healthy && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 1
done
if ! healthy; then
  finish_alongside || true
  echo "Prefect server on PostgreSQL did not become healthy:"; tail -20 "$WORK/server.log"
  exit 1
fi
flow_tests=0
flow_log="$WORK/flow-tests.log"
[ -n "$alongside_pid" ] || flow_log=/dev/stdout
PREFECT_API_URL="http://127.0.0.1:$API_PORT/api" .venv/bin/pytest -q "${PG_TESTS[@]}" "$@" \
  >"$flow_log" 2>&1 || flow_tests=$?
finish_alongside || status=$?
echo "flow tests on a Prefect server backed by PostgreSQL (127.0.0.1:$API_PORT, pg :$PG_PORT)"
[ "$flow_log" = /dev/stdout ] || cat "$flow_log"
[ "$status" -ne 0 ] || status=$flow_tests
exit "$status"
