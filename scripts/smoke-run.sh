#!/usr/bin/env bash
# What `make run` promises, checked on the real binaries: the stack comes up on its
# documented ports, /health/detailed answers 200, seeded data is served, every process's
# /metrics passes `promtool check metrics` and holds the RED metrics of the traffic just
# sent, Grafana's derived field finds the trace_id of every line they logged, and SIGTERM
# stops everything with exit code 0.
#
# Uses the fixed ports (8000, 9000-9004, 50051-50054, 9900): stop a running `make run` first.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LOG_DIR="${ROOT}/.run/logs"
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }
say() { printf 'smoke: %s\n' "$*"; }

for port in 8000 9000 9001 9002 9003 9004 50051 50052 50053 50054; do
  # A plain TCP connect: gRPC ports speak only HTTP/2, which curl's HTTP/1.1 would miss.
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
    fail "port ${port} is already in use (is 'make run' running?)"
  fi
done

rm -rf "${ROOT}/.run"
# Default settings mean the development keys; the stack and `check-deploy.py --live`'s
# `<binary> healthcheck` runs both load them, and refuse them without this.
export SOCIALFLOW__AUTH__ALLOW_DEVELOPMENT_KEY=true
# Contract fuzzing (below) registers, logs in and calls thousands of times from one address.
for class in LOGIN REGISTER ANONYMOUS AUTHENTICATED; do
  export "SOCIALFLOW__RATE_LIMIT__${class}__PER_MINUTE=1000000" "SOCIALFLOW__RATE_LIMIT__${class}__BURST=1000000"
done
# Its own database, dropped at the end: the smoke run leaves nothing behind.
PG="${SOCIALFLOW_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
SMOKE_DB="sf_smoke_$(date +%s)_$$"
export SOCIALFLOW__DATABASE__URL="${PG%/*}/${SMOKE_DB}"
drop_db() { psql "$PG" -qc "DROP DATABASE IF EXISTS ${SMOKE_DB} WITH (FORCE)" >/dev/null 2>&1 || true; }
"${ROOT}/scripts/dev-stack.sh" > >(sed 's/^/stack: /') 2>&1 &
STACK=$!
cleanup() { kill -TERM "$STACK" 2>/dev/null || true; wait "$STACK" 2>/dev/null || true; drop_db; }
trap cleanup EXIT

say "waiting for http://localhost:8000/health/detailed"
status=""
for _ in $(seq 1 600); do
  status="$(curl -s -o /tmp/smoke-detailed.json -w '%{http_code}' --max-time 3 http://127.0.0.1:8000/health/detailed || true)"
  [ "$status" = "200" ] && break
  kill -0 "$STACK" 2>/dev/null || fail "the stack stopped while starting"
  sleep 0.5
done
[ "$status" = "200" ] || fail "/health/detailed answered ${status}: $(cat /tmp/smoke-detailed.json 2>/dev/null)"
say "/health/detailed: 200 $(cat /tmp/smoke-detailed.json)"

"${ROOT}/scripts/seed.sh" >/dev/null
"${ROOT}/scripts/seed.sh" >/dev/null # idempotent

feed="$(curl -fs http://127.0.0.1:8000/api/v1/videos)" || fail "GET /api/v1/videos"
echo "$feed" | grep -q '"Night train to the mountains"' || fail "the feed lacks seeded videos: $feed"
echo "$feed" | grep -q 'Drone over the salt flats' && fail "the feed shows an unpublished video"
video="$(curl -fs http://127.0.0.1:8000/api/v1/videos/0190b000-0000-7000-8000-000000000002)" || fail "GET one video"
echo "$video" | grep -q '"views":40511' || fail "the video lacks its counts: $video"
curl -fs http://127.0.0.1:8000/api/v1/users/0190a000-0000-7000-8000-000000000001 | grep -q maya_films || fail "GET one user"
curl -fs http://127.0.0.1:8000/api/v1/subscriptions/plans | grep -q premium_annual || fail "GET plans"
code="$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/api/v1/videos/not-a-uuid)"
[ "$code" = "400" ] || fail "a malformed id answered ${code}"
say "API answers with seeded data"

check_metrics() {
  local port="$1"; shift
  local body; body="$(curl -fs "http://127.0.0.1:${port}/metrics")" || fail "GET :${port}/metrics"
  printf '%s\n' "$body" | promtool check metrics || fail "promtool check metrics on :${port}"
  local series
  for series in "$@"; do
    printf '%s\n' "$body" | grep -qF "$series" || fail ":${port}/metrics lacks ${series}"
  done
}
check_metrics 9000 \
  'http_requests_total{method="GET",endpoint="/api/v1/videos/{id}",status_code="200"}' \
  'http_request_duration_seconds_bucket{method="GET",endpoint="/api/v1/videos/{id}"' \
  'grpc_client_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="OK"}' \
  'socialflow_build_info{service="gateway"'
check_metrics 9001 'grpc_server_handled_total{grpc_service="socialflow.user.v1.UserService",grpc_method="GetUser",grpc_code="OK"}' \
  'socialflow_build_info{service="user-service"'
check_metrics 9002 'grpc_server_handled_total{grpc_service="socialflow.video.v1.VideoService",grpc_method="GetVideo",grpc_code="OK"}' \
  'grpc_client_handling_seconds_bucket{grpc_service="socialflow.engagement.v1.EngagementService"' \
  'socialflow_build_info{service="video-service"'
check_metrics 9003 'grpc_server_handled_total{grpc_service="socialflow.engagement.v1.EngagementService",grpc_method="GetVideoStats",grpc_code="OK"}' \
  'socialflow_build_info{service="engagement-service"'
check_metrics 9004 'grpc_server_handled_total{grpc_service="socialflow.payments.v1.PaymentsService",grpc_method="ListPlans",grpc_code="OK"}' \
  'socialflow_build_info{service="payments-service"'
if curl -fs http://127.0.0.1:9000/metrics | grep -E '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' >/dev/null; then
  fail "an id appears in the gateway's metrics"
fi
say "every process's /metrics passes promtool and has its RED metrics"

# Contract fuzzing: schemathesis generates requests from the served OpenAPI document (valid
# and invalid ones) and checks every answer against it: no 5xx, only documented statuses,
# content types, headers and bodies. `make fuzz` runs it with more examples.
FUZZ_EXAMPLES="${SMOKE_FUZZ_EXAMPLES:-200}"
if [ "$FUZZ_EXAMPLES" != 0 ]; then
  say "contract fuzzing with schemathesis: ${FUZZ_EXAMPLES} examples per operation"
  FUZZ_RATE_LIMIT=none FUZZ_WORKERS="${FUZZ_WORKERS:-2}" FUZZ_PROMOTE_DATABASE_URL="$SOCIALFLOW__DATABASE__URL" \
    "${ROOT}/scripts/fuzz-api.sh" http://127.0.0.1:8000 "$FUZZ_EXAMPLES" \
    || fail "schemathesis found answers that break the OpenAPI document (target/fuzz/junit.xml)"
fi

# --live also matches Grafana's log → trace link (the Loki datasource's derived field) against
# the lines the processes just wrote to .run/logs: real lines, with this run's trace ids.
say "probe paths/ports of compose, chart and Dockerfile, the healthcheck subcommand, and the derived field on .run/logs"
python3 "${ROOT}/scripts/check-deploy.py" --live || fail "scripts/check-deploy.py --live"

say "stopping the stack with SIGTERM"
trap drop_db EXIT
kill -TERM "$STACK"
if ! wait "$STACK"; then fail "the stack did not stop cleanly"; fi
for process in gateway user-service video-service engagement-service payments-service; do
  grep -q '"message":"stopped cleanly"' "${LOG_DIR}/${process}.log" || fail "${process} did not log a clean stop"
done
say "all five processes drained and exited 0"
echo "smoke: 1 passed, 0 failed"
