#!/usr/bin/env bash
# Loads demo data (users, videos with metadata, view and like counts) into a running stack,
# and creates one administrator whose password it prints. Subscription plans come with
# payments-service's migration. Run `make run` first: the services create their schemas at
# start, and the administrator is registered through the gateway.
#
# The administrator (username `admin` unless SEED_ADMIN_USERNAME says otherwise):
#   1. is registered through the API (POST /api/v1/auth/register), so its password is hashed
#      by user-service like anyone's. The password is 24 random letters and digits (about
#      143 bits), which the registration policy accepts (10-128 characters, not a common
#      one, not one character repeated, not containing the username);
#   2. is promoted in SQL (users.users.role = 'admin'): roles are granted nowhere else. The
#      role reaches the access tokens issued from the account's next login or refresh;
#   3. is reported at the end: username and password, shown this once.
# Running the script again finds the administrator and leaves it alone: the password is
# stored only as an argon2id hash, so it cannot be shown again, and nothing here resets it
# (user-service has no password change, and writing a hash from a shell script, or deleting
# the account and its rows in other schemas, is not something a seed should do behind
# your back). To replace a lost password, delete the account yourself and seed again; the
# script prints how. An account of that name that is not an administrator is never
# promoted: whoever registered it knows its password, not this script.
#
# Variables: SOCIALFLOW__DATABASE__URL (as `make run`), SOCIALFLOW_GATEWAY_URL (default
# http://127.0.0.1:8000), SEED_ADMIN_USERNAME (default admin), SEED_ADMIN_EMAIL (default
# <username>@example.com).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/socialflow"
# The hints below name the variable, not its value: the URL may hold a password.
DATABASE_URL="${SOCIALFLOW__DATABASE__URL:-${DEFAULT_DATABASE_URL}}"
GATEWAY_URL="${SOCIALFLOW_GATEWAY_URL:-http://127.0.0.1:8000}"
GATEWAY_URL="${GATEWAY_URL%/}"
ADMIN_USERNAME="${SEED_ADMIN_USERNAME:-admin}"
ADMIN_EMAIL="${SEED_ADMIN_EMAIL:-${ADMIN_USERNAME}@example.com}"

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Both end up in SQL and JSON: only what the registration rules accept anyway, and nothing
# that would need quoting.
[[ "$ADMIN_USERNAME" =~ ^[A-Za-z0-9_]{3,30}$ ]] \
  || die "SEED_ADMIN_USERNAME must be 3 to 30 letters, digits or underscores"
[[ "$ADMIN_EMAIL" =~ ^[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$ ]] \
  || die "SEED_ADMIN_EMAIL must look like name@example.com"

for schema in users videos engagement payments; do
  present="$(psql "$DATABASE_URL" -qtAc "SELECT 1 FROM information_schema.schemata WHERE schema_name = '${schema}'" 2>/dev/null || true)"
  if [ "$present" != "1" ]; then
    die "schema ${schema} does not exist yet: start the stack with 'make run' first"
  fi
done
present="$(psql "$DATABASE_URL" -qtAc "SELECT 1 FROM information_schema.columns WHERE table_schema = 'users' AND table_name = 'users' AND column_name = 'role'" 2>/dev/null || true)"
[ "$present" = "1" ] \
  || die "users.users has no role column: the running user-service predates migration 0004_roles; rebuild and restart the stack ('make run')"

psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -f "${ROOT}/scripts/seed.sql"
echo "seeded: try  curl -s localhost:8000/api/v1/videos  and  curl -s localhost:8000/api/v1/videos/0190b000-0000-7000-8000-000000000001"

# --- the administrator ----------------------------------------------------------------

# The role of the account named $ADMIN_USERNAME (compared as user-service compares names,
# case-insensitively), or nothing when there is none. SQL goes through stdin: psql
# interpolates :'username' there, quoted.
role_of_admin() {
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qtA -v username="$ADMIN_USERNAME" <<'SQL'
SELECT role FROM users.users WHERE lower(username) = lower(:'username');
SQL
}

promote_admin() {
  psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qtA -v username="$ADMIN_USERNAME" <<'SQL'
UPDATE users.users SET role = 'admin' WHERE lower(username) = lower(:'username') RETURNING id;
SQL
}

# 24 characters from [A-Za-z0-9]. Bytes of 248 and above are skipped (248 = 4 x 62), so
# every character is equally likely.
generate_password() {
  local alphabet='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
  local password='' byte
  while [ "${#password}" -lt 24 ]; do
    for byte in $(od -An -N64 -tu1 /dev/urandom); do
      [ "$byte" -lt 248 ] || continue
      password+="${alphabet:$((byte % 62)):1}"
      [ "${#password}" -lt 24 ] || break
    done
  done
  printf '%s' "$password"
}

replace_hint() {
  cat <<HINT
  To replace it: delete the account (signed in as it, DELETE /api/v1/me; or, for an account
  that owns nothing, psql "\${SOCIALFLOW__DATABASE__URL:-${DEFAULT_DATABASE_URL}}" \\
    -c "DELETE FROM users.users WHERE username = '${ADMIN_USERNAME}'")
  and run 'make seed' again.
HINT
}

role="$(role_of_admin)" || die "cannot read users.users"
case "$role" in
  admin)
    echo
    echo "admin: the administrator '${ADMIN_USERNAME}' already exists; left as it is."
    echo "  Its password was printed when 'make seed' created it: the seed cannot show it again."
    replace_hint
    exit 0
    ;;
  "")
    ;;
  *)
    die "an account named '${ADMIN_USERNAME}' exists with role '${role}' and was not made by this script: not promoting it (whoever registered it knows its password). Promote it yourself if it is yours (UPDATE users.users SET role = 'admin' WHERE username = '${ADMIN_USERNAME}'), or choose another name with SEED_ADMIN_USERNAME"
    ;;
esac

password="$(generate_password)"
# The policy refuses a password containing the username; 24 random characters almost never
# do, but draw again if they do.
while [[ "${password,,}" == *"${ADMIN_USERNAME,,}"* ]]; do
  password="$(generate_password)"
done

response="$(mktemp)"
trap 'rm -f "$response"' EXIT
body="$(printf '{"email": "%s", "username": "%s", "password": "%s", "display_name": "Administrator"}' \
  "$ADMIN_EMAIL" "$ADMIN_USERNAME" "$password")"
# The body goes through stdin, so the password is not on curl's command line (ps).
if ! status="$(printf '%s' "$body" | curl -sS -o "$response" -w '%{http_code}' --max-time 30 \
    -X POST "${GATEWAY_URL}/api/v1/auth/register" \
    -H 'Content-Type: application/json' --data-binary @-)"; then
  die "the gateway does not answer at ${GATEWAY_URL} (is 'make run' running?): the demo data is loaded, the administrator is not"
fi
case "$status" in
  201) ;;
  409) die "registering '${ADMIN_USERNAME}' answered 409 (the username or ${ADMIN_EMAIL} is taken): $(cat "$response"). Choose another with SEED_ADMIN_USERNAME or SEED_ADMIN_EMAIL" ;;
  *) die "registering '${ADMIN_USERNAME}' answered ${status}: $(cat "$response")" ;;
esac

if ! promoted="$(promote_admin)" || [ -z "$promoted" ]; then
  # The account exists now and only this run knows its password: say it before giving up.
  printf 'error: %s was registered but could not be made an administrator.\n' "$ADMIN_USERNAME" >&2
  printf '  username  %s\n  password  %s\n' "$ADMIN_USERNAME" "$password" >&2
  printf '  Promote it with: psql "${SOCIALFLOW__DATABASE__URL:-%s}" -c "UPDATE users.users SET role = '"'"'admin'"'"' WHERE username = '"'"'%s'"'"'"\n' \
    "$DEFAULT_DATABASE_URL" "$ADMIN_USERNAME" >&2
  exit 1
fi

cat <<DONE

admin: created the administrator (role admin, user id ${promoted}):

    username  ${ADMIN_USERNAME}
    password  ${password}

  Shown this once: only its hash is stored, and 'make seed' will not print it again.
  The role is in the access tokens of its logins from now on, which the admin routes
  (/api/v1/admin/...) require:
    curl -s -X POST ${GATEWAY_URL}/api/v1/auth/login -H 'Content-Type: application/json' \\
      -d '{"login": "${ADMIN_USERNAME}", "password": "${password}"}'
DONE
