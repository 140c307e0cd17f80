#!/usr/bin/env bash
# GET /v1/spend for one project over one month, and the dashboard's pages, with 10
# million cost records in the table, on SQLite and on PostgreSQL. See docs/BENCHMARKS.md,
# "Spend reports" and "Dashboard".
#
# The records (generated in SQL, not through the proxy) span 90 days (2026-09-01 to
# 2026-11-30) across 50 projects and 200 users of one organization, three models; the
# report asks for one project's November, grouped by model and by day.
#
# Env knobs (defaults in brackets): RECORDS [10000000]  PG_ADMIN_URL
#   [postgres://postgres@127.0.0.1:5432/postgres]  PORT [18280]  SKIP_BUILD [0]  KEEP_DATA [0]
#   (1 keeps both databases for another run: REUSE=1 then skips generating)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
RECORDS=${RECORDS:-10000000}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18280}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
DATA=${DATA:-/tmp/tollgate-spend-bench}
DB=tollgate_bench_spend
PG_URL=${PG_ADMIN_URL%/*}/$DB
SQLITE_URL="sqlite://$DATA/spend.db"
mkdir -p "$DATA"
PIDS=()
log() { printf '[spend] %s\n' "$*" >&2; }
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release --bin tollgate

ORG=00000000-0000-4000-8000-000000000001
PROJECT=00000000-0000-4000-8001-000000000007   # one of the 50
# gen_ids: organization, 50 projects, 200 users, in SQL both databases accept.
project_id() { printf '00000000-0000-4000-8001-%012x' "$1"; }

generate_postgres() {
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
    "$BIN/tollgate" --config <(printf '[database]\nurl = "%s"\n' "$PG_URL") migrate >/dev/null
    log "PostgreSQL: generating $RECORDS records"
    psql "$PG_URL" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO organizations VALUES ('$ORG', 'bench', now(), NULL);
INSERT INTO projects SELECT ('00000000-0000-4000-8001-' || lpad(to_hex(i), 12, '0'))::uuid, '$ORG', 'p' || i, now(), NULL
  FROM generate_series(1, 50) i;
INSERT INTO users SELECT ('00000000-0000-4000-8002-' || lpad(to_hex(i), 12, '0'))::uuid, '$ORG', 'u' || i, NULL, now(), NULL
  FROM generate_series(1, 200) i;
-- Indexes are built after the load (much faster), with the names the migration gave them.
DROP INDEX ai_cost_records_org_time, ai_cost_records_project_time, ai_cost_records_user_time,
  ai_cost_records_key_time, ai_cost_records_time;
INSERT INTO ai_cost_records (id, request_id, created_at, organization_id, project_id, user_id, api_key_id, provider,
  model, endpoint, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
  status_code, latency_ms, streamed, usage_source, priced)
SELECT gen_random_uuid(), gen_random_uuid(), timestamptz '2026-09-01 00:00:00+00' + i * (interval '90 days' / $RECORDS),
  '$ORG', ('00000000-0000-4000-8001-' || lpad(to_hex(1 + i % 50), 12, '0'))::uuid,
  ('00000000-0000-4000-8002-' || lpad(to_hex(1 + i % 200), 12, '0'))::uuid, NULL, 'openai',
  (ARRAY['gpt-4o', 'gpt-4o-mini', 'o3'])[1 + i % 3], '/v1/chat/completions', 1000 + i % 500, 0, 0, 200 + i % 100, 0,
  0.0000001 * (1 + i % 1000), 200, 100, false, 'reported', true
FROM generate_series(0, $RECORDS - 1) i;
CREATE INDEX ai_cost_records_org_time ON ai_cost_records (organization_id, created_at);
CREATE INDEX ai_cost_records_project_time ON ai_cost_records (project_id, created_at);
CREATE INDEX ai_cost_records_user_time ON ai_cost_records (user_id, created_at);
CREATE INDEX ai_cost_records_key_time ON ai_cost_records (api_key_id, created_at);
CREATE INDEX ai_cost_records_time ON ai_cost_records (created_at);
VACUUM ANALYZE ai_cost_records;
-- Written around the ledger: tollgate fills the hourly rollup from them when it opens.
UPDATE ai_spend_hourly_state SET filled = false;
SQL
}

generate_sqlite() {
    rm -f "$DATA"/spend.db*
    "$BIN/tollgate" --config <(printf '[database]\nurl = "%s"\n' "$SQLITE_URL") migrate >/dev/null
    log "SQLite: generating $RECORDS records"
    sqlite3 "$DATA/spend.db" <<SQL
PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000;
INSERT INTO organizations VALUES ('$ORG', 'bench', '2026-08-01T00:00:00.000000Z', NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
INSERT INTO projects SELECT printf('00000000-0000-4000-8001-%012x', i), '$ORG', 'p' || i, '2026-08-01T00:00:00.000000Z', NULL FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO users SELECT printf('00000000-0000-4000-8002-%012x', i), '$ORG', 'u' || i, NULL, '2026-08-01T00:00:00.000000Z', NULL FROM n;
DROP INDEX ai_cost_records_org_time; DROP INDEX ai_cost_records_project_time; DROP INDEX ai_cost_records_user_time;
DROP INDEX ai_cost_records_key_time; DROP INDEX ai_cost_records_time;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $RECORDS - 1)
INSERT INTO ai_cost_records (id, request_id, created_at, organization_id, project_id, user_id, api_key_id, provider,
  model, endpoint, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cost_usd,
  status_code, latency_ms, streamed, usage_source, priced)
SELECT printf('%08x-0000-4000-8000-%012x', i, i), printf('%08x-0000-4000-9000-%012x', i, i),
  strftime('%Y-%m-%dT%H:%M:%S', 1788220800 + i * 7776000 / $RECORDS, 'unixepoch') || '.000000Z',
  '$ORG', printf('00000000-0000-4000-8001-%012x', 1 + i % 50), printf('00000000-0000-4000-8002-%012x', 1 + i % 200),
  NULL, 'openai', CASE i % 3 WHEN 0 THEN 'gpt-4o' WHEN 1 THEN 'gpt-4o-mini' ELSE 'o3' END, '/v1/chat/completions',
  1000 + i % 500, 0, 0, 200 + i % 100, 0, printf('0.%07d', 1 + i % 1000), 200, 100, 0, 'reported', 1
FROM n;
COMMIT;
CREATE INDEX ai_cost_records_org_time ON ai_cost_records (organization_id, created_at);
CREATE INDEX ai_cost_records_project_time ON ai_cost_records (project_id, created_at);
CREATE INDEX ai_cost_records_user_time ON ai_cost_records (user_id, created_at);
CREATE INDEX ai_cost_records_key_time ON ai_cost_records (api_key_id, created_at);
CREATE INDEX ai_cost_records_time ON ai_cost_records (created_at);
ANALYZE;
UPDATE ai_spend_hourly_state SET filled = 0;
SQL
}

# measure NAME URL: start tollgate on the database, time the report (best and median of 7).
measure() {
    local name=$1 url=$2
    printf '[server]\nlisten = "127.0.0.1:%d"\n[admin]\nlisten = "127.0.0.1:%d"\n[database]\nurl = "%s"\n[log]\nfilter = "warn"\n' \
        "$PORT" "$((PORT + 1))" "$url" >"$DATA/$name.toml"
    local started=$SECONDS
    "$BIN/tollgate" --config "$DATA/$name.toml" serve >"$DATA/$name.log" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    # The first start after the records were written fills the hourly rollup from them.
    for _ in $(seq 1 36000); do curl -s -o /dev/null "http://127.0.0.1:$((PORT + 1))/healthz" && break; sleep 0.1; done
    log "$name: serving after $((SECONDS - started)) s (filling the rollup, if it had to)"
    for group in model day; do
        local q="/v1/spend?group_by=$group&project_id=$PROJECT&from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"
        curl -s "http://127.0.0.1:$((PORT + 1))$q" >"$DATA/$name-$group.json"
        local times=()
        for _ in $(seq 1 7); do
            times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$((PORT + 1))$q")")
        done
        python3 - "$name" "$group" "$DATA/$name-$group.json" "${times[@]}" <<'PY'
import json, sys
name, group, path, *times = sys.argv[1:]
t = sorted(float(x) * 1000 for x in times)
rows = json.load(open(path))["data"]
requests = sum(r["requests"] for r in rows)
cost = sum(__import__("decimal").Decimal(r["cost_usd"]) for r in rows)
print(f"| {name} | {group} | {requests:,} | {cost} | {t[0]:.0f} | {t[len(t)//2]:.0f} |")
PY
    done
    # The dashboard (docs/DASHBOARD.md) over the same data: one project's month by model,
    # the whole organization's month by project, and 90 days by user.
    for q in "group_by=model&project_id=$PROJECT&from=2026-11-01&to=2026-11-30" \
        "group_by=project&from=2026-11-01&to=2026-11-30" \
        "group_by=user&from=2026-09-01&to=2026-11-29"; do
        local page="/dashboard?$q"
        curl -s -o "$DATA/$name-dashboard.html" -w '%{http_code}' "http://127.0.0.1:$((PORT + 1))$page" | grep -q 200 ||
            { log "$name: $page did not answer 200"; exit 1; }
        local times=()
        for _ in $(seq 1 7); do
            times+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$((PORT + 1))$page")")
        done
        python3 - "$name" "$q" "$DATA/$name-dashboard.html" "${times[@]}" <<'PY'
import re, sys
name, q, path, *times = sys.argv[1:]
t = sorted(float(x) * 1000 for x in times)
html = open(path).read()
requests = re.search(r'id="total-requests">([0-9,]+)<', html).group(1)
cost = re.search(r'id="total-cost"><span title="\$([0-9.]+)"', html).group(1)
print(f"| {name} | dashboard {q.split('&')[0]}{' (one project)' if 'project_id' in q else ''}, {q.split('from=')[1].replace('&to=', ' to ')} | {requests} | {cost} | {t[0]:.0f} | {t[len(t)//2]:.0f} |")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

if [ "${REUSE:-0}" != 1 ]; then
    generate_postgres
    generate_sqlite
fi
echo "| database | group_by | records in the report | cost_usd | best ms | median ms |"
echo "|---|---|---|---|---|---|"
measure postgres "$PG_URL"
measure sqlite "$SQLITE_URL"
if [ "${KEEP_DATA:-0}" != 1 ]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    rm -rf "$DATA"
fi
