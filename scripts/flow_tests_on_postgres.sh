#!/usr/bin/env bash
# The flow tests (and the deployment registration test) against a Prefect server backed by a
# real PostgreSQL: a private cluster and server on their own ports, stopped afterwards.
# Needs root (installs postgresql when missing; the cluster runs as the postgres user).
# Usage: scripts/flow_tests_on_postgres.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PG_PORT=${RUNBOOK_PG_TEST_PORT:-15438}
API_PORT=${RUNBOOK_PG_TEST_PREFECT_PORT:-4308}
command -v pg_ctlcluster >/dev/null || { apt-get update -q && apt-get install -y -q postgresql; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/runbook-pg.XXXXXX)
chown postgres "$WORK"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; wait "$server_pid" || true; fi
  su postgres -c "$PG_BIN/pg_ctl -D $WORK/data -m fast stop" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
su postgres -c "$PG_BIN/initdb -D $WORK/data -A trust -U prefect" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $WORK/data -w -l $WORK/postgres.log \
  -o '-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1' start" >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U prefect prefect
mkdir -p "$WORK/prefect-home"
PREFECT_HOME="$WORK/prefect-home" PREFECT_SERVER_ANALYTICS_ENABLED=false \
  PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://prefect@127.0.0.1:$PG_PORT/prefect" \
  .venv/bin/prefect server start --host 127.0.0.1 --port "$API_PORT" >"$WORK/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 90); do
  curl -sf -m 2 "http://127.0.0.1:$API_PORT/api/health" >/dev/null && break
  sleep 1
done
curl -sf -m 2 "http://127.0.0.1:$API_PORT/api/health" >/dev/null || {
  echo "Prefect server on PostgreSQL did not become healthy:"; tail -20 "$WORK/server.log"; exit 1; }
PREFECT_API_URL="http://127.0.0.1:$API_PORT/api" .venv/bin/pytest -q tests/flows \
  tests/integration/test_deployments.py "$@"
