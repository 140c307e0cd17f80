#!/usr/bin/env bash
# Runs schemathesis against a live tollgate's admin API, driven by the description that
# tollgate itself serves at /openapi.json, on SQLite and on PostgreSQL. See
# docs/ADMIN_API.md, "Fuzzing it".
#
# For each backend: starts tollgate on a fresh database with an admin token, seeds three
# organizations with a project, a user, a key, three budgets and an alert config each,
# plus 50 cost records (so ids resolve, reports have rows to serialize, and deleting the
# first organization is refused for its spend history), runs schemathesis for a bounded
# number of examples per operation, then stops tollgate. Exits non-zero when schemathesis
# reports a failure on either backend. About a minute for both once built.
#
# Checks: not_a_server_error (a 5xx is a bug), status_code_conformance and
# content_type_conformance (every answer is one the description lists),
# response_schema_conformance (every body matches its schema), and the header, method
# and Allow checks.
#
# Env knobs (defaults in brackets): BACKENDS ["sqlite postgres"]
#   PG_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres]  PORT [18380: admin; PORT+1: proxy]
#   MAX_EXAMPLES [40 per operation and phase]  SEED [random]  PHASES [examples,coverage,fuzzing,stateful]
#   VENV [/tmp/tollgate-schemathesis-venv]  SCHEMATHESIS_VERSION [>=4.32,<5]  SKIP_BUILD [0]
#   KEEP_DATA [0: 1 keeps each run's config, log, database and JUnit report]
#   EXTRA [more arguments for `schemathesis run`, e.g. "--checks all"]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BACKENDS=${BACKENDS:-sqlite postgres}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_DB=tollgate_schemathesis
PORT=${PORT:-18380}
MAX_EXAMPLES=${MAX_EXAMPLES:-40}
PHASES=${PHASES:-examples,coverage,fuzzing,stateful}
VENV=${VENV:-/tmp/tollgate-schemathesis-venv}
SCHEMATHESIS_VERSION=${SCHEMATHESIS_VERSION:->=4.32,<5}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/tollgate
TOKEN=schemathesis-$RANDOM$RANDOM
ADMIN=http://127.0.0.1:$PORT
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
CHECKS=$CHECKS,response_headers_conformance,unsupported_method,allow_header_conformance
PID=
DATA=
log() { printf '[schemathesis] %s\n' "$*" >&2; }
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    if [ -n "$DATA" ] && [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

if [ ! -x "$VENV/bin/schemathesis" ]; then
    log "installing schemathesis into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis$SCHEMATHESIS_VERSION"
fi
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --bin tollgate

start() {
    RUST_LOG=${RUST_LOG:-warn} "$BIN" serve --config "$DATA/tollgate.toml" >>"$DATA/tollgate.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do
        curl -fsS "$ADMIN/healthz" >/dev/null 2>&1 && return
        kill -0 "$PID" 2>/dev/null || { cat "$DATA/tollgate.log" >&2; exit 1; }
        sleep 0.1
    done
    log "tollgate did not answer /healthz"; exit 1
}
stop() { kill "$PID"; wait "$PID" || true; PID=; }
# post PATH JSON: creates an object, prints its id.
post() {
    curl -fsS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$2" "$ADMIN$1" | jq -r .id
}
# list ID...: the ids as a TOML array's items.
list() { local IFS=,; printf '"%s"' "$*" | sed 's/,/", "/g'; }

# The columns and values of the 50 seeded cost records, in SQL both databases take: a
# record every 3 hours back from now, with and without the optional dimensions.
RECORD_COLUMNS="id, request_id, created_at, organization_id, project_id, user_id, api_key_id, provider, model,
  endpoint, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
  status_code, latency_ms, streamed, usage_source, priced, service_tier, audio_input_tokens, web_search_requests"
record_values() { # TRUE FALSE: how the backend spells booleans
    cat <<SQL
  CASE i % 2 WHEN 0 THEN '${KEYS[0]}' END,
  CASE i % 3 WHEN 0 THEN 'openai' WHEN 1 THEN 'anthropic' ELSE 'gemini' END,
  CASE i % 4 WHEN 0 THEN NULL ELSE 'gpt-4o' END, '/v1/chat/completions',
  CASE i % 5 WHEN 0 THEN NULL ELSE 1000 + i END, 0, 0, 200 + i, 0, $3,
  200, 100, CASE i % 2 WHEN 0 THEN $2 ELSE $1 END,
  CASE i % 4 WHEN 0 THEN 'none' WHEN 1 THEN 'reported' WHEN 2 THEN 'partial' ELSE 'estimated' END,
  CASE i % 2 WHEN 0 THEN $2 ELSE $1 END, CASE i % 3 WHEN 0 THEN 'flex' END,
  CASE i % 3 WHEN 1 THEN 5 END, CASE i % 3 WHEN 2 THEN 1 END
SQL
}
seed_records() {
    case $1 in
    sqlite) sqlite3 "$DATA/tollgate.db" <<SQL ;;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 49)
INSERT INTO ai_cost_records ($RECORD_COLUMNS)
SELECT printf('00000000-0000-4000-8000-%012x', i), printf('00000000-0000-4000-9000-%012x', i),
  strftime('%Y-%m-%dT%H:%M:%S', 'now', '-' || (i * 3) || ' hours') || '.000000Z',
  '${ORGS[0]}', '${PROJECTS[0]}', '${USERS[0]}',
$(record_values 1 0 "printf('0.%07d', 1 + i)")
FROM n;
UPDATE ai_spend_hourly_state SET filled = 0;
SQL
    postgres) psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q <<SQL ;;
INSERT INTO ai_cost_records ($RECORD_COLUMNS)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid,
  ('00000000-0000-4000-9000-' || lpad(to_hex(i), 12, '0'))::uuid, now() - i * interval '3 hours',
  '${ORGS[0]}', '${PROJECTS[0]}', '${USERS[0]}',
$(record_values true false "0.0000001 * (1 + i)" | sed "s/WHEN 0 THEN '${KEYS[0]}'/WHEN 0 THEN '${KEYS[0]}'::uuid/")
FROM generate_series(0, 49) i;
UPDATE ai_spend_hourly_state SET filled = false;
SQL
    esac
}

# run_on BACKEND: one whole run; returns schemathesis's exit code.
run_on() {
    local backend=$1
    DATA=$(mktemp -d "/tmp/tollgate-schemathesis-$backend.XXXXXX")
    case $backend in
    sqlite) DATABASE_URL="sqlite://$DATA/tollgate.db" ;;
    postgres)
        psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB"
        DATABASE_URL=${PG_ADMIN_URL%/*}/$PG_DB
        ;;
    *) log "unknown backend $backend"; exit 2 ;;
    esac
    cat >"$DATA/tollgate.toml" <<TOML
[server]
listen = "127.0.0.1:$((PORT + 1))"
[admin]
listen = "127.0.0.1:$PORT"
token = "$TOKEN"
[database]
url = "$DATABASE_URL"
[ledger]
journal_dir = "$DATA/journal"
TOML
    start
    ORGS=() PROJECTS=() USERS=() KEYS=() BUDGETS=() CONFIGS=()
    local i scope id
    for i in 1 2 3; do
        ORGS+=("$(post /v1/organizations "{\"name\": \"org $i\"}")")
        PROJECTS+=("$(post /v1/projects "{\"organization_id\": \"${ORGS[-1]}\", \"name\": \"project $i\"}")")
        USERS+=("$(post /v1/users "{\"organization_id\": \"${ORGS[-1]}\", \"external_id\": \"user $i\", \"email\": \"u$i@example.com\"}")")
        KEYS+=("$(post /v1/keys "{\"user_id\": \"${USERS[-1]}\", \"project_id\": \"${PROJECTS[-1]}\", \"name\": \"key $i\"}")")
        for scope in organization project user; do
            case $scope in organization) id=${ORGS[-1]} ;; project) id=${PROJECTS[-1]} ;; user) id=${USERS[-1]} ;; esac
            BUDGETS+=("$(post /v1/budgets "{\"scope\": \"$scope\", \"scope_id\": \"$id\", \"limit_usd\": \"10\", \"period\": \"monthly\"}")")
        done
        CONFIGS+=("$(post /v1/alert-configs "{\"budget_id\": \"${BUDGETS[-1]}\", \"threshold_percent\": 80, \"webhook_url\": \"http://127.0.0.1:9/hook\"}")")
    done
    # Records are written around the ledger: tollgate fills its hourly rollup from them
    # when it starts again.
    stop
    seed_records "$backend" || { log "$backend: seeding cost records failed"; stop; return 1; }
    start
    log "$backend: tollgate on $ADMIN (pid $PID), seeded organizations ${ORGS[*]}"

    # Ids that exist, offered in place of random UUIDs half of the time.
    cat >"$DATA/schemathesis.toml" <<TOML
[dictionaries]
organizations.values = [$(list "${ORGS[@]}")]
projects.values = [$(list "${PROJECTS[@]}")]
users.values = [$(list "${USERS[@]}")]
keys.values = [$(list "${KEYS[@]}")]
budgets.values = [$(list "${BUDGETS[@]}")]
scopes.values = [$(list "${ORGS[@]}" "${PROJECTS[@]}" "${USERS[@]}")]
all.values = [$(list "${ORGS[@]}" "${PROJECTS[@]}" "${USERS[@]}" "${KEYS[@]}" "${BUDGETS[@]}" "${CONFIGS[@]}")]

[parameters]
"path.id" = { dictionary = "all", probability = 0.5 }
"body.organization_id" = { dictionary = "organizations", probability = 0.5 }
"body.project_id" = { dictionary = "projects", probability = 0.5 }
"body.user_id" = { dictionary = "users", probability = 0.5 }
"body.scope_id" = { dictionary = "scopes", probability = 0.5 }
"body.budget_id" = { dictionary = "budgets", probability = 0.5 }
"query.organization_id" = { dictionary = "organizations", probability = 0.5 }
"query.project_id" = { dictionary = "projects", probability = 0.5 }
"query.user_id" = { dictionary = "users", probability = 0.5 }
"query.api_key_id" = { dictionary = "keys", probability = 0.5 }
"query.scope_id" = { dictionary = "scopes", probability = 0.5 }
"query.budget_id" = { dictionary = "budgets", probability = 0.5 }
TOML

    local status=0
    # In $DATA, so that schemathesis's cache (.schemathesis/) stays out of the tree.
    # shellcheck disable=SC2086 # EXTRA is split on purpose
    (cd "$DATA" && "$VENV/bin/schemathesis" --config-file "$DATA/schemathesis.toml" run "$ADMIN/openapi.json" \
        --header "Authorization: Bearer $TOKEN" \
        --checks "$CHECKS" \
        --phases "$PHASES" \
        --max-examples "$MAX_EXAMPLES" \
        ${SEED:+--seed "$SEED"} \
        --request-timeout 10 \
        --report junit --report-dir "$DATA/report" \
        ${EXTRA:-}) || status=$?
    if [ "$status" != 0 ]; then
        log "$backend: schemathesis found problems (exit $status); tollgate's warnings:"
        grep -E 'ERROR|WARN' "$DATA/tollgate.log" | tail -20 >&2 || true
    fi
    stop
    if [ "$backend" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)"; fi
    if [ "${KEEP_DATA:-0}" = 1 ]; then log "$backend: kept $DATA"; else rm -rf "$DATA"; fi
    DATA=
    return "$status"
}

failed=()
for backend in $BACKENDS; do
    run_on "$backend" || failed+=("$backend")
done
if [ ${#failed[@]} -gt 0 ]; then
    log "failures on: ${failed[*]}"
    exit 1
fi
log "clean on: $BACKENDS"
