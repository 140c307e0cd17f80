#!/usr/bin/env bash
# PostgreSQL and replicas: throughput and CPU per request of one vs two tollgate replicas
# on one database, every request on a 3-level chain of hard budgets far from their
# limits; database round trips per 1,000 admitted requests (every statement the server
# executes, counted from its log); ledger records/s into PostgreSQL. See
# docs/BENCHMARKS.md, "PostgreSQL and replicas".
#
# Env knobs (defaults in brackets): DURATION [10] (seconds per run)  CONNECTIONS [64]
#   PG_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres]  PG_LOG [/var/log/postgresql/postgresql-15-main.log]
#   MOCK_PORT [9100]  BASE_PORT [18180]  SKIP_BUILD [0]  KEEP_TMP [0]  LEDGER_RECORDS [200000]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_LOG=${PG_LOG:-/var/log/postgresql/postgresql-15-main.log}
MOCK_PORT=${MOCK_PORT:-9100}
BASE_PORT=${BASE_PORT:-18180}
LEDGER_RECORDS=${LEDGER_RECORDS:-200000}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
DB=tollgate_bench_replicas
DB_URL=${PG_ADMIN_URL%/*}/$DB
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-replicas.XXXXXX")
PIDS=()
log() { printf '[replicas] %s\n' "$*" >&2; }
cleanup() {
    local status=$?
    trap - EXIT
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    psql "$PG_ADMIN_URL" -qc "ALTER DATABASE $DB RESET log_statement" 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$status" != 0 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    cargo build --release --bin tollgate --example mock_upstream --example ledger_bench
fi

psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN/examples/mock_upstream" --listen "127.0.0.1:$MOCK_PORT" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)

# replica N: proxy on BASE_PORT + 10N, admin on + 1.
config() {
    local n=$1
    cat >"$TMP/r$n.toml" <<EOF
[server]
listen = "127.0.0.1:$((BASE_PORT + 10 * n))"
[admin]
listen = "127.0.0.1:$((BASE_PORT + 10 * n + 1))"
token = "bench"
[database]
url = "$DB_URL"
max_connections = 8
[log]
filter = "warn"
[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:$MOCK_PORT"
api_key = "sk-bench"
EOF
}
declare -A REPLICA_PID
start_replica() {
    local n=$1
    config "$n"
    "$BIN/tollgate" --config "$TMP/r$n.toml" serve >"$TMP/r$n.log" 2>&1 &
    REPLICA_PID[$n]=$!
    PIDS+=($!)
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$((BASE_PORT + 10 * n + 1))/healthz" && return 0
        sleep 0.1
    done
    log "replica $n did not start"; cat "$TMP/r$n.log" >&2; return 1
}
stop_replica() {
    kill "${REPLICA_PID[$1]}"; wait "${REPLICA_PID[$1]}" 2>/dev/null || true
}

config 0
TG=("$BIN/tollgate" --config "$TMP/r0.toml")
"${TG[@]}" migrate >/dev/null
ORG=$("${TG[@]}" organization create bench | cut -f1)
PROJECT=$("${TG[@]}" project create --org "$ORG" web | cut -f1)
USER_ID=$("${TG[@]}" user create --org "$ORG" alice | cut -f1)
KEY=$("${TG[@]}" key create --user "$USER_ID" --project "$PROJECT" 2>/dev/null)
"${TG[@]}" budget create --scope organization --scope-id "$ORG" --limit 1000000 --period monthly >/dev/null
"${TG[@]}" budget create --scope project --scope-id "$PROJECT" --limit 100000 --period daily >/dev/null
"${TG[@]}" budget create --scope user --scope-id "$USER_ID" --limit 10000 --period total >/dev/null

BODY='{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
cat >"$TMP/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f\n", summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
EOF
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
records() { psql "$DB_URL" -Atc "SELECT count(*) FROM ai_cost_records"; }
statements() { if [ -r "$PG_LOG" ]; then grep -cE 'LOG:  (statement|execute)' "$PG_LOG" || true; else echo 0; fi; }
wait_written() { # until the record count stops moving
    local last now
    last=$(records)
    for _ in $(seq 1 100); do sleep 0.3; now=$(records); [ "$now" = "$last" ] && return 0; last=$now; done
}

# run NAME CONNS REPLICAS...: wrk on each replica at once (CONNS split), then the table row.
run() {
    local name=$1 conns=$2; shift 2
    local n replicas=("$@") loaders=()
    local per=$((conns / ${#replicas[@]}))
    local before_records before_stmts ticks0=()
    wait_written
    before_records=$(records); before_stmts=$(statements)
    for n in "${replicas[@]}"; do ticks0[$n]=$(cpu_ticks "${REPLICA_PID[$n]}"); done
    for n in "${replicas[@]}"; do
        wrk -t1 -c "$per" -d "${DURATION}s" -s "$TMP/post.lua" "http://127.0.0.1:$((BASE_PORT + 10 * n))/v1/chat/completions" \
            | grep '^RESULT' >"$TMP/$name-$n.out" &
        loaders+=($!)
    done
    wait "${loaders[@]}"
    wait_written
    local total=0 errors=0 cpu=0 p50 p99 non2xx sock
    for n in "${replicas[@]}"; do
        read -r _ req non2xx sock p50 p99 <"$TMP/$name-$n.out"
        total=$((total + req - non2xx - sock)); errors=$((errors + non2xx + sock))
        cpu=$((cpu + $(cpu_ticks "${REPLICA_PID[$n]}") - ticks0[$n]))
    done
    local written=$(( $(records) - before_records )) stmts=$(( $(statements) - before_stmts ))
    local hz; hz=$(getconf CLK_TCK)
    python3 - "$name" "${#replicas[@]}" "$total" "$errors" "$DURATION" "$cpu" "$hz" "$written" "$stmts" "$p50" "$p99" <<'PY'
import sys
name, replicas, total, errors, dur, cpu, hz, written, stmts, p50, p99 = sys.argv[1:]
total, errors, cpu, hz, written, stmts = int(total), int(errors), int(cpu), int(hz), int(written), int(stmts)
rps = total / float(dur)
cpu_us = cpu / hz * 1e6 / max(total, 1)
rt = f"{stmts / max(written, 1) * 1000:.1f}" if stmts else "(not logged)"
print(f"| {name} | {replicas} | {rps:,.0f} | {errors} | {float(p50):.2f} / {float(p99):.2f} | {cpu_us:.0f} | {written:,} | {rt} |")
PY
}

start_replica 0
start_replica 1
log "throughput (statement logging off)"
echo "| run | replicas | 2xx/s | non-2xx + socket errors | p50 / p99 ms | tollgate CPU us/req | records written | DB round trips / 1,000 |"
echo "|---|---|---|---|---|---|---|---|"
run one-replica "$CONNECTIONS" 0
run two-replicas "$CONNECTIONS" 0 1
log "round trips: every statement logged (new connections only, so the replicas restart)"
psql "$PG_ADMIN_URL" -qc "ALTER DATABASE $DB SET log_statement = 'all'"
stop_replica 0; stop_replica 1
start_replica 0; start_replica 1
run one-replica-logged "$CONNECTIONS" 0
run two-replicas-logged "$CONNECTIONS" 0 1
run one-replica-4conn-logged 4 0
psql "$PG_ADMIN_URL" -qc "ALTER DATABASE $DB RESET log_statement"
stop_replica 0; stop_replica 1

log "ledger alone into PostgreSQL ($LEDGER_RECORDS records)"
LEDGER_BENCH_URL="$DB_URL" "$BIN/examples/ledger_bench" "$LEDGER_RECORDS"
