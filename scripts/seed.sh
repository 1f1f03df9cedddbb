#!/usr/bin/env bash
# Loads demo data (users, videos with metadata, view and like counts) into a running stack.
# Subscription plans come with payments-service's migration. Run `make run` first: the
# services create their schemas at start.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATABASE_URL="${SOCIALFLOW__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/socialflow}"

for schema in users videos engagement payments; do
  present="$(psql "$DATABASE_URL" -qtAc "SELECT 1 FROM information_schema.schemata WHERE schema_name = '${schema}'" 2>/dev/null || true)"
  if [ "$present" != "1" ]; then
    echo "error: schema ${schema} does not exist yet: start the stack with 'make run' first" >&2
    exit 1
  fi
done

psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -f "${ROOT}/scripts/seed.sql"
echo "seeded: try  curl -s localhost:8000/api/v1/videos  and  curl -s localhost:8000/api/v1/videos/0190b000-0000-7000-8000-000000000001"
