#!/usr/bin/env bash
# Contract fuzzing of the gateway with schemathesis, from the OpenAPI 3.1 document it serves.
#
#   scripts/fuzz-api.sh BASE_URL [MAX_EXAMPLES]      e.g. scripts/fuzz-api.sh http://127.0.0.1:8000 20
#
# 1. installs schemathesis (pinned) and openapi-spec-validator into target/fuzz-venv if they
#    are missing or at another version (needs Python >= 3.11 and PyPI);
# 2. fetches BASE_URL/api/v1/openapi.json and validates it against the OpenAPI 3.1 meta-schema
#    (schemathesis itself does not reject an invalid document up front);
# 3. registers a fresh user (fuzz_<time>_<random>) through POST /api/v1/auth/register and logs
#    in through POST /api/v1/auth/login for an access token;
# 4. runs `schemathesis run` on the document with that user's bearer token on every request,
#    except DELETE /api/v1/me, which would delete the fuzzing user. Access tokens live 15
#    minutes (auth.access_token_ttl_secs); a long run logs in again every
#    FUZZ_TOKEN_REFRESH_SECS through a schemathesis auth hook (target/fuzz/auth_hook.py).
#
# Exits non-zero when schemathesis reports any failure or error. Reports: target/fuzz/junit.xml
# (and ndjson of every request, for digging in: target/fuzz/events.ndjson).
#
# The gateway's rate limits apply: 1200/min per user (burst 200), and per address 300/min for
# anonymous requests, 10/min for login, 5/min for register. Fuzzing /auth/register or
# /auth/login gets 429s, which the document must declare (or run the gateway with higher
# limits, e.g. SOCIALFLOW__RATE_LIMIT__REGISTER__PER_MINUTE=100000 and ..._BURST=100000).
#
# Variables (all optional):
#   FUZZ_CHECKS      schemathesis --checks (default: not_a_server_error,status_code_conformance,
#                    content_type_conformance,response_schema_conformance,response_headers_conformance)
#   FUZZ_PHASES      --phases (default examples,coverage,fuzzing,stateful)
#   FUZZ_MODE        --mode: positive, negative or all (default all)
#   FUZZ_SEED        --seed (default 20240601)
#   FUZZ_WORKERS     --workers (default 1)
#   FUZZ_RATE_LIMIT  --rate-limit, e.g. 1000/m; "none" for no limit (default 1000/m, under the
#                    gateway's 1200/min per user)
#   FUZZ_MAX_TIME    --max-time in seconds (off by default; with it, fuzzing repeats until spent)
#   FUZZ_REQUEST_TIMEOUT  --request-timeout in seconds (default 10)
#   FUZZ_TOKEN_REFRESH_SECS  log in again after this many seconds (default 600)
#   FUZZ_VALIDATE_SPEC  0 skips step 2 (default 1)
#   FUZZ_PROMOTE_DATABASE_URL  the stack's Postgres: the fuzzing user is made an administrator
#                    there, so the /admin routes are fuzzed too (default: not set)
#   FUZZ_EXTRA_ARGS  more schemathesis arguments, split on spaces
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
SPEC_VALIDATOR_VERSION="0.9.0"

usage() { printf 'usage: %s BASE_URL [MAX_EXAMPLES]\n' "$0" >&2; exit 2; }
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'fuzz: %s\n' "$*"; }

[ $# -ge 1 ] && [ $# -le 2 ] || usage
BASE_URL="${1%/}"
MAX_EXAMPLES="${2:-200}"
[[ "$BASE_URL" =~ ^https?://[^[:space:]]+$ ]] || die "BASE_URL must be http(s)://host[:port], got '$1'"
[[ "$MAX_EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die "MAX_EXAMPLES must be a positive integer, got '$MAX_EXAMPLES'"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ROOT}/target/fuzz-venv"
OUT="${ROOT}/target/fuzz"
SPEC_URL="${BASE_URL}/api/v1/openapi.json"

CHECKS="${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance}"
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
MODE="${FUZZ_MODE:-all}"
SEED="${FUZZ_SEED:-20240601}"
WORKERS="${FUZZ_WORKERS:-1}"
RATE_LIMIT="${FUZZ_RATE_LIMIT:-1000/m}"
REQUEST_TIMEOUT="${FUZZ_REQUEST_TIMEOUT:-10}"
TOKEN_REFRESH_SECS="${FUZZ_TOKEN_REFRESH_SECS:-600}"

# --- 1. the tools ---------------------------------------------------------------------

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

installed_version() {  # the version of package $1 in the venv, or nothing
  "${VENV}/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true
}

if [ ! -x "${VENV}/bin/python" ]; then
  PYTHON="$(find_python)" || die "schemathesis ${SCHEMATHESIS_VERSION} needs Python >= 3.11 (python3.11 or newer on PATH)"
  say "creating ${VENV} with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV" || die "cannot create a venv (Debian/Ubuntu: apt-get install python3-venv)"
fi
if [ "$(installed_version schemathesis)" != "$SCHEMATHESIS_VERSION" ] \
    || [ "$(installed_version openapi-spec-validator)" != "$SPEC_VALIDATOR_VERSION" ]; then
  say "installing schemathesis==${SCHEMATHESIS_VERSION} openapi-spec-validator==${SPEC_VALIDATOR_VERSION}"
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==${SCHEMATHESIS_VERSION}" "openapi-spec-validator==${SPEC_VALIDATOR_VERSION}" \
    || die "pip install failed"
fi
PY="${VENV}/bin/python"

mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- 2. the document --------------------------------------------------------------------

status="$(curl -sS -o "${WORK}/openapi.json" -w '%{http_code}' --max-time 30 "$SPEC_URL")" \
  || die "the gateway does not answer at ${BASE_URL}"
[ "$status" = "200" ] || die "GET ${SPEC_URL} answered ${status}: $(head -c 300 "${WORK}/openapi.json")"
cp "${WORK}/openapi.json" "${OUT}/openapi.json"
"$PY" - "${WORK}/openapi.json" <<'PY' || die "GET ${SPEC_URL} is not an OpenAPI 3.1 JSON document"
import json, sys
doc = json.load(open(sys.argv[1]))
version = str(doc.get("openapi", ""))
if not version.startswith("3.1."):
    sys.exit(f"fuzz: error: openapi is {version!r}, expected 3.1.x")
operations = sum(1 for item in doc.get("paths", {}).values() for m in item
                 if m in ("get", "put", "post", "delete", "patch", "head", "options", "trace"))
schemes = doc.get("components", {}).get("securitySchemes", {})
bearer = [n for n, s in schemes.items() if s.get("type") == "http" and str(s.get("scheme", "")).lower() == "bearer"]
print(f"fuzz: document: OpenAPI {version}, {operations} operations, bearer schemes: {', '.join(bearer) or 'none'}")
if not bearer:
    print("fuzz: warning: no http/bearer securityScheme: the token is still sent, but schemathesis "
          "cannot tell protected operations from public ones", file=sys.stderr)
PY
if [ "${FUZZ_VALIDATE_SPEC:-1}" != "0" ]; then
  "${VENV}/bin/openapi-spec-validator" --schema 3.1 --validation-errors all "${OUT}/openapi.json" \
    || die "the document is not valid OpenAPI 3.1 (saved as ${OUT}/openapi.json; FUZZ_VALIDATE_SPEC=0 skips this)"
fi

# --- 3. the fuzzing user ----------------------------------------------------------------

# POST $2 (JSON from stdin, so the password stays off the command line) to $1; the body goes
# to ${WORK}/response, the status is printed. 429s are waited out (Retry-After) 3 times.
post_json() {
  local path="$1" body attempt status wait
  body="$(cat)"
  for attempt in 1 2 3 4; do
    status="$(printf '%s' "$body" | curl -sS -o "${WORK}/response" -D "${WORK}/headers" \
      -w '%{http_code}' --max-time 30 -X POST "${BASE_URL}${path}" \
      -H 'Content-Type: application/json' --data-binary @-)" || return 1
    [ "$status" = "429" ] && [ "$attempt" -lt 4 ] || break
    wait="$(tr -d '\r' <"${WORK}/headers" | awk -F': *' 'tolower($1) == "retry-after" { print $2 }')"
    [[ "$wait" =~ ^[0-9]+$ ]] || wait=15
    [ "$wait" -le 120 ] || wait=120
    say "${path} answered 429: waiting ${wait}s" >&2
    sleep "$wait"
  done
  printf '%s' "$status"
}

random_alnum() {  # $1 characters from [A-Za-z0-9]
  "$PY" -c 'import secrets, string, sys; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(int(sys.argv[1]))))' "$1"
}

FUZZ_USERNAME="fuzz_$(date +%s)_$(random_alnum 8)"          # 24 characters, [A-Za-z0-9_]
FUZZ_PASSWORD="$(random_alnum 24)"                         # 10-128, never contains the username
export FUZZ_USERNAME FUZZ_PASSWORD

body="$("$PY" -c 'import json, os; print(json.dumps({"email": os.environ["FUZZ_USERNAME"].lower() + "@example.com", "username": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"], "display_name": "Fuzz Tester"}))')"
status="$(printf '%s' "$body" | post_json /api/v1/auth/register)" || die "POST /api/v1/auth/register: no answer"
[ "$status" = "201" ] || die "registering ${FUZZ_USERNAME} answered ${status}: $(head -c 300 "${WORK}/response")"

# With the stack's database at hand, the fuzzing user is made an administrator (as
# `make seed` does its admin), so the /admin routes are fuzzed past their 403. The role is in
# the access token, so this comes before the login.
if [ -n "${FUZZ_PROMOTE_DATABASE_URL:-}" ]; then
  # From stdin: psql expands :'username' (quoted) there, never in -c.
  psql "$FUZZ_PROMOTE_DATABASE_URL" -qtA -v ON_ERROR_STOP=1 -v username="$FUZZ_USERNAME" >/dev/null \
    <<<"UPDATE users.users SET role = 'admin' WHERE username = :'username';" \
    || die "could not make ${FUZZ_USERNAME} an administrator"
  say "${FUZZ_USERNAME} is an administrator"
fi

body="$("$PY" -c 'import json, os; print(json.dumps({"login": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]}))')"
status="$(printf '%s' "$body" | post_json /api/v1/auth/login)" || die "POST /api/v1/auth/login: no answer"
[ "$status" = "200" ] || die "logging in as ${FUZZ_USERNAME} answered ${status}: $(head -c 300 "${WORK}/response")"
FUZZ_ACCESS_TOKEN="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' "${WORK}/response")" \
  || die "the login answer has no access_token: $(head -c 300 "${WORK}/response")"
export FUZZ_ACCESS_TOKEN
say "fuzzing as ${FUZZ_USERNAME}"

# --- 4. schemathesis --------------------------------------------------------------------

# Every request carries `Authorization: Bearer <token>`, whatever the document declares; the
# token is renewed by logging in again before it expires. Through the environment, not argv.
cat >"${OUT}/auth_hook.py" <<'PY'
"""Written by scripts/fuzz-api.sh: the fuzzing user's bearer token on every request."""
import os
import time

import requests
import schemathesis


@schemathesis.auth(refresh_interval=int(os.environ["FUZZ_TOKEN_REFRESH_SECS"]), retry_on=[])
class FuzzUserToken:
    first = True

    def get(self, case, ctx):
        if FuzzUserToken.first:  # the token fuzz-api.sh just obtained
            FuzzUserToken.first = False
            return os.environ["FUZZ_ACCESS_TOKEN"]
        for _ in range(4):
            response = requests.post(
                os.environ["FUZZ_BASE_URL"] + "/api/v1/auth/login",
                json={"login": os.environ["FUZZ_USERNAME"], "password": os.environ["FUZZ_PASSWORD"]},
                timeout=30,
            )
            if response.status_code != 429:
                break
            time.sleep(min(int(response.headers.get("Retry-After", "15") or 15), 120))
        response.raise_for_status()
        return response.json()["access_token"]

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
PY
export FUZZ_BASE_URL="$BASE_URL" FUZZ_TOKEN_REFRESH_SECS="$TOKEN_REFRESH_SECS"
export SCHEMATHESIS_HOOKS="${OUT}/auth_hook.py"

args=(
  run "$SPEC_URL"
  --checks "$CHECKS"
  --phases "$PHASES"
  --mode "$MODE"
  --max-examples "$MAX_EXAMPLES"
  --seed "$SEED"
  --generation-database none
  --workers "$WORKERS"
  --request-timeout "$REQUEST_TIMEOUT"
  # The user deleting itself would end the run's authentication. Both spellings of the path:
  # with the /api/v1 prefix in `paths`, or in `servers`.
  --exclude-name-regex '^DELETE (/api/v1)?/me$'
  --report junit,ndjson
  --report-junit-path "${OUT}/junit.xml"
  --report-ndjson-path "${OUT}/events.ndjson"
  --no-color
)
[ "$RATE_LIMIT" = "none" ] || args+=(--rate-limit "$RATE_LIMIT")
[ -z "${FUZZ_MAX_TIME:-}" ] || args+=(--max-time "$FUZZ_MAX_TIME")
# shellcheck disable=SC2206  # split on purpose
[ -z "${FUZZ_EXTRA_ARGS:-}" ] || args+=(${FUZZ_EXTRA_ARGS})

say "schemathesis ${args[*]}"
started=$SECONDS
rc=0
# From ${OUT}: anything schemathesis writes next to itself stays out of the work tree.
(cd "$OUT" && "${VENV}/bin/schemathesis" "${args[@]}") || rc=$?
say "schemathesis exited ${rc} after $((SECONDS - started))s; reports in ${OUT}/ (junit.xml, events.ndjson)"
exit "$rc"
