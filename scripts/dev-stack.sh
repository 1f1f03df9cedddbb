#!/usr/bin/env bash
# Starts the whole Social Flow stack on this machine: the five processes, plus an
# S3-compatible server (s3s-fs) when none answers on the configured endpoint. Postgres and
# Redis are expected on localhost (the `socialflow` database is created when missing).
#
# Every SOCIALFLOW__* and OTEL_* variable in the environment reaches every process, e.g.
#   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 scripts/dev-stack.sh
# Ctrl-C (or SIGTERM) stops everything: each process drains and exits.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${ROOT}/.run"
LOG_DIR="${RUN_DIR}/logs"
mkdir -p "${LOG_DIR}" "${RUN_DIR}/s3"

DATABASE_URL="${SOCIALFLOW__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/socialflow}"
REDIS_URL="${SOCIALFLOW__REDIS__URL:-redis://127.0.0.1:6379}"
S3_ENDPOINT="${SOCIALFLOW__S3__ENDPOINT:-http://127.0.0.1:9900}"
S3_ACCESS_KEY="${SOCIALFLOW__S3__ACCESS_KEY:-socialflow}"
S3_SECRET_KEY="${SOCIALFLOW__S3__SECRET_KEY:-socialflow-dev-secret}"
PROFILE_DIR="${CARGO_TARGET_DIR:-${ROOT}/target}/debug"
# The processes run on their built-in development keys (auth.jwt_secret,
# auth.internal_token_secret), which they refuse unless told this is development.
export SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY="${SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY:-true}"

log() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PIDS=()
S3_PID=""
stop_all() {
  trap - INT TERM EXIT
  if [ "${#PIDS[@]}" -gt 0 ]; then
    log "stopping: every process drains its in-flight requests, then exits"
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    local failed=0 pid
    for pid in "${PIDS[@]}"; do
      wait "$pid" || failed=1
    done
    [ "$failed" -eq 0 ] && log "all processes exited cleanly" || log "a process exited with an error: see ${LOG_DIR}"
  fi
  if [ -n "$S3_PID" ]; then
    kill -TERM "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# --- dependencies -----------------------------------------------------------------------
log "checking Postgres (${DATABASE_URL%%\?*})"
ADMIN_URL="${DATABASE_URL%/*}/postgres"
DB_NAME="${DATABASE_URL##*/}"; DB_NAME="${DB_NAME%%\?*}"
psql "$ADMIN_URL" -qtAc 'SELECT 1' >/dev/null 2>&1 || die "Postgres does not answer at ${ADMIN_URL}"
if [ "$(psql "$ADMIN_URL" -qtAc "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != "1" ]; then
  log "creating database ${DB_NAME}"
  psql "$ADMIN_URL" -qc "CREATE DATABASE \"${DB_NAME}\"" >/dev/null
fi

log "checking Redis (${REDIS_URL})"
redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1 || die "Redis does not answer at ${REDIS_URL}"

S3_HOSTPORT="${S3_ENDPOINT#*://}"; S3_HOSTPORT="${S3_HOSTPORT%%/*}"
if curl -s -o /dev/null --max-time 2 "$S3_ENDPOINT"; then
  log "S3-compatible store already answering at ${S3_ENDPOINT}"
else
  command -v s3s-fs >/dev/null 2>&1 || "${ROOT}/scripts/install-test-deps.sh"
  log "starting s3s-fs on ${S3_HOSTPORT} (data in .run/s3)"
  s3s-fs --host "${S3_HOSTPORT%:*}" --port "${S3_HOSTPORT##*:}" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "${RUN_DIR}/s3" \
    >"${LOG_DIR}/s3s-fs.log" 2>&1 &
  S3_PID=$!
  for _ in $(seq 1 50); do
    curl -s -o /dev/null --max-time 1 "$S3_ENDPOINT" && break
    sleep 0.2
  done
fi

# The gRPC ports 50051-50054 lie inside Linux's ephemeral port range, where any outgoing
# connection (a pool's connection to Postgres, say) may take one as its local port just
# before the service binds it. Where this user may, take the stack's ports out of that range
# (only ephemeral port selection changes; nothing else is affected).
RESERVED=/proc/sys/net/ipv4/ip_local_reserved_ports
if [ -w "$RESERVED" ] && ! grep -q '50051-50054' "$RESERVED" 2>/dev/null; then
  current="$(cat "$RESERVED")"
  if echo "${current:+$current,}8000,9000-9004,9900,50051-50054" > "$RESERVED" 2>/dev/null; then
    log "reserved the stack's ports outside the ephemeral range (${RESERVED})"
  fi
fi

# --- build and start --------------------------------------------------------------------
log "building (cargo build --bins)"
(cd "$ROOT" && cargo build --bins --quiet)

cd "$ROOT"
# Services first so the gateway's first calls find them; each migrates its own schema.
for process in user-service video-service engagement-service payments-service gateway; do
  "${PROFILE_DIR}/${process}" >"${LOG_DIR}/${process}.log" 2>&1 &
  PIDS+=("$!")
done

log "waiting for readiness"
for port in 9001 9002 9003 9004 9000; do
  ready=""
  for _ in $(seq 1 150); do
    if curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:${port}/health/readiness"; then ready=1; break; fi
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a process died at start: see ${LOG_DIR}"; done
    sleep 0.2
  done
  [ -n "$ready" ] || die "the process with admin port ${port} did not become ready: see ${LOG_DIR}"
done

cat <<INFO

Social Flow is running.

  REST API (gateway)     http://localhost:8000/api/v1/videos
  health                 http://localhost:8000/health/detailed
  admin (metrics, health)
    gateway              http://localhost:9000/metrics
    user-service         http://localhost:9001/metrics   gRPC localhost:50051
    video-service        http://localhost:9002/metrics   gRPC localhost:50052
    engagement-service   http://localhost:9003/metrics   gRPC localhost:50053
    payments-service     http://localhost:9004/metrics   gRPC localhost:50054
  S3-compatible store    ${S3_ENDPOINT}
  traces                 ${OTEL_EXPORTER_OTLP_ENDPOINT:-${SOCIALFLOW__TELEMETRY__OTLP_ENDPOINT:-not exported (set OTEL_EXPORTER_OTLP_ENDPOINT=http://host:4317)}}
  logs (JSON)            ${LOG_DIR}/<process>.log

Load demo data with: make seed        Stop with: Ctrl-C
INFO

# Stay up until interrupted or until a process dies.
while true; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "a process exited unexpectedly: see ${LOG_DIR}"
      exit 1
    fi
  done
  sleep 1
done
