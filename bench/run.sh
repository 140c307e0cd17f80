#!/usr/bin/env bash
# Throughput and latency of tollgate against a fast mock upstream, with the mock hit
# directly and through nginx as baselines. See docs/BENCHMARKS.md.
#
# Env knobs (defaults in brackets):
#   DURATION [10s]  CONNECTIONS [64]  WARMUP [2s]  CHUNKS [20] (SSE events per stream)
#   CHUNK_DELAY_MS [0]  LOG_FILTER [warn] (tollgate's log filter)  TARGETS [direct nginx tollgate]
#   SCENARIOS [chat chat-stream chat-stream-paced chat-stream-1conn chat-rate chat-stream-rate]
#   RATE [5000] (chat-rate's requests/s)  STREAM_RATE [1500] (chat-stream-rate's)  PACE_MS [5] (gap between the paced
#   scenario's events)  PACED_CONNECTIONS [256]  MOCK_PORT [9000]  PROXY_PORT [18080]  ADMIN_PORT [18081]
#   NGINX_PORT [18082]  NOMETER_PORT [18090]  KEEP_TMP [0] (1 keeps the temp dir: configs, logs, raw results)
#   CARGO_TARGET_DIR [target]  SKIP_BUILD [0]  LOADGEN [oha] (or wrk)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WARMUP=${WARMUP:-2s}
CHUNKS=${CHUNKS:-20}
CHUNK_DELAY_MS=${CHUNK_DELAY_MS:-0}
LOG_FILTER=${LOG_FILTER:-warn}
# tollgate-nometer: a second tollgate with metering off (same database);
# tollgate-budgets: the main tollgate with a key whose user, project and organization
# each have a hard budget, so every request reserves and settles on a 3-level chain
# shared by all connections.
TARGETS=${TARGETS:-direct nginx tollgate-nometer tollgate tollgate-budgets}
SCENARIOS=${SCENARIOS:-chat chat-stream chat-stream-paced chat-stream-1conn chat-rate chat-stream-rate}
PACE_MS=${PACE_MS:-5}
# Fixed-rate scenarios: requests (streams) per second offered whatever the answers' speed,
# below what every target sustains, so the table compares CPU per request and latency.
RATE=${RATE:-5000}
STREAM_RATE=${STREAM_RATE:-1500}
PACED_CONNECTIONS=${PACED_CONNECTIONS:-256}
MOCK_PORT=${MOCK_PORT:-9000}
PROXY_PORT=${PROXY_PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-18081}
NGINX_PORT=${NGINX_PORT:-18082}
NOMETER_PORT=${NOMETER_PORT:-18090}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-bench.XXXXXX")
PIDS=()
NGINX_STARTED=0

log() { printf '[bench] %s\n' "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$NGINX_STARTED" = 1 ] && [ -f "$TMP/nginx/nginx.pid" ]; then
        nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" -s stop 2>/dev/null || true
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$status" != 0 ]; then
        log "kept $TMP (configs, logs, raw results)"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until `url` answers with any HTTP status, or gives up after ~20 s.
wait_http() {
    local url=$1 name=$2
    for _ in $(seq 1 200); do
        if curl -s -o /dev/null "$url"; then return 0; fi
        sleep 0.1
    done
    log "$name did not come up at $url"
    return 1
}

for port in "$MOCK_PORT" "$PROXY_PORT" "$ADMIN_PORT" "$NGINX_PORT" "$NOMETER_PORT" "$((NOMETER_PORT + 1))"; do
    port_free "$port" || { log "port $port is already in use"; exit 1; }
done

# --- load generator ------------------------------------------------------------------
LOADGEN=${LOADGEN:-oha}
if [ "$LOADGEN" = oha ] && ! command -v oha >/dev/null; then
    log "oha not found; installing it with cargo (a few minutes, once)"
    if ! cargo install oha --locked >"$TMP/oha-install.log" 2>&1; then
        log "cargo install oha failed (see $TMP/oha-install.log); falling back to wrk"
        LOADGEN=wrk
    fi
fi
if [ "$LOADGEN" = wrk ] && ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
if [ "$LOADGEN" = oha ]; then
    # Newer oha spells JSON output --output-format json; older ones -j/--json.
    if oha --help | grep -q -- '--output-format'; then OHA_JSON=(--output-format json); else OHA_JSON=(-j); fi
fi

# --- build ---------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries (first time: several minutes)"
    cargo build --release --bin tollgate --example mock_upstream
fi

# --- mock upstream -------------------------------------------------------------------
"$BIN/examples/mock_upstream" --listen "127.0.0.1:$MOCK_PORT" --chunks "$CHUNKS" \
    --chunk-delay-ms "$CHUNK_DELAY_MS" >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$MOCK_PORT/v1/models" mock_upstream

# --- tollgate ------------------------------------------------------------------------
CFG=$TMP/tollgate.toml
cat >"$CFG" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token = "bench-admin-token"

[database]
url = "sqlite://$TMP/tollgate.db"

[log]
filter = "$LOG_FILTER"

[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:$MOCK_PORT"
api_key = "sk-bench-dummy"
EOF

TG=("$BIN/tollgate" --config "$CFG")
"${TG[@]}" migrate >/dev/null
ORG=$("${TG[@]}" organization create bench-org | cut -f1)
PROJECT=$("${TG[@]}" project create --org "$ORG" bench-project | cut -f1)
USER_ID=$("${TG[@]}" user create --org "$ORG" bench-user | cut -f1)
KEY=$("${TG[@]}" key create --user "$USER_ID" --project "$PROJECT" 2>/dev/null)
case $KEY in tg_*) ;; *) log "unexpected key output: $KEY"; exit 1 ;; esac
# A second identity with a budget at each level (limits far above what a run spends).
BORG=$("${TG[@]}" organization create budget-org | cut -f1)
BPROJECT=$("${TG[@]}" project create --org "$BORG" budget-project | cut -f1)
BUSER=$("${TG[@]}" user create --org "$BORG" budget-user | cut -f1)
BKEY=$("${TG[@]}" key create --user "$BUSER" --project "$BPROJECT" 2>/dev/null)
"${TG[@]}" budget create --scope organization --scope-id "$BORG" --limit 1000000 --period monthly >/dev/null
"${TG[@]}" budget create --scope project --scope-id "$BPROJECT" --limit 100000 --period daily >/dev/null
"${TG[@]}" budget create --scope user --scope-id "$BUSER" --limit 10000 --period total >/dev/null

"${TG[@]}" serve >"$TMP/tollgate.log" 2>&1 &
TOLLGATE_PID=$!
PIDS+=("$TOLLGATE_PID")
wait_http "http://127.0.0.1:$ADMIN_PORT/healthz" tollgate
wait_http "http://127.0.0.1:$PROXY_PORT/v1/models" tollgate

if [[ " $TARGETS " == *" tollgate-nometer "* ]]; then
    sed -e "s/127.0.0.1:$PROXY_PORT/127.0.0.1:$NOMETER_PORT/" -e "s/127.0.0.1:$ADMIN_PORT/127.0.0.1:$((NOMETER_PORT + 1))/" \
        "$CFG" >"$TMP/nometer.toml"
    printf '\n[metering]\nenabled = false\n' >>"$TMP/nometer.toml"
    "$BIN/tollgate" --config "$TMP/nometer.toml" serve >"$TMP/tollgate-nometer.log" 2>&1 &
    NOMETER_PID=$!
    PIDS+=("$NOMETER_PID")
    wait_http "http://127.0.0.1:$((NOMETER_PORT + 1))/healthz" tollgate-nometer
fi

# --- nginx baseline ------------------------------------------------------------------
if [[ " $TARGETS " == *" nginx "* ]]; then
    if ! command -v nginx >/dev/null; then
        log "installing nginx"
        apt-get update -qq && apt-get install -y -qq nginx >/dev/null
    fi
    mkdir -p "$TMP/nginx"
    cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream mock {
        server 127.0.0.1:$MOCK_PORT;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
EOF
    nginx -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log"
    NGINX_STARTED=1
    wait_http "http://127.0.0.1:$NGINX_PORT/v1/models" nginx
fi

# --- load ----------------------------------------------------------------------------
BODY_CHAT='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Name three prime numbers and say why each is prime."}],"max_tokens":128}'
BODY_STREAM='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Name three prime numbers and say why each is prime."}],"max_tokens":128}'

# The process serving a target, whose CPU time a run is charged with (none for direct/nginx).
pid_for() {
    case $1 in
        tollgate | tollgate-budgets) echo "$TOLLGATE_PID" ;;
        tollgate-nometer) echo "${NOMETER_PID:-}" ;;
    esac
}

# CPU time (user + system, in clock ticks) a process has used so far.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# Waits (at most 30 s) until a process is idle — at most one tick of CPU in 300 ms — so
# work a run left behind (the ledger's backlog) is charged to that run, not the next.
wait_idle() {
    local pid=$1 last now
    last=$(cpu_ticks "$pid")
    for _ in $(seq 1 100); do
        sleep 0.3
        now=$(cpu_ticks "$pid")
        [ $((now - last)) -le 1 ] && return 0
        last=$now
    done
    log "pid $pid still busy 30 s after a run"
}

url_for() {
    case $1 in
        direct) echo "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" ;;
        nginx) echo "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" ;;
        tollgate | tollgate-budgets) echo "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" ;;
        tollgate-nometer) echo "http://127.0.0.1:$NOMETER_PORT/v1/chat/completions" ;;
    esac
}

key_for() {
    case $1 in
        tollgate-budgets) echo "$BKEY" ;;
        *) echo "$KEY" ;;
    esac
}

# load DURATION URL BODY OUT: one run with $conns connections and $delay_ms pacing
# (set by the scenario loop), raw result in OUT.
load() {
    local duration=$1 url=$2 body=$3 out=$4
    if [ "$LOADGEN" = oha ]; then
        local rate_args=()
        [ -z "$rate" ] || rate_args=(-q "$rate")
        oha --no-tui "${OHA_JSON[@]}" "${rate_args[@]}" -z "$duration" -c "$conns" -m POST -H "authorization: Bearer $RUN_KEY" \
            -H "x-mock-chunk-delay-ms: $delay_ms" -T application/json -d "$body" "$url" >"$out"
    else
        cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")
wrk.headers["x-mock-chunk-delay-ms"] = os.getenv("WRK_DELAY")
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"wrk":true,"rps":%f,"p50":%f,"p99":%f,"requests":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
EOF
        WRK_BODY=$body WRK_KEY=$RUN_KEY WRK_DELAY=$delay_ms wrk -t2 -c "$conns" -d "$duration" -s "$TMP/post.lua" "$url" \
            | grep '^{"wrk"' >"$out"
    fi
}

# probe URL BODY: one request that must succeed before a run; a failure is retried once
# and reported, since it says something about the target.
probe() {
    for _ in 1 2; do
        if curl -sS -f -o /dev/null -H "authorization: Bearer $RUN_KEY" -H 'content-type: application/json' \
            -d "$2" "$1" 2>"$TMP/probe.err"; then
            return 0
        fi
        log "probe of $1 failed ($(cat "$TMP/probe.err")); mock alive: $(kill -0 "${PIDS[0]}" 2>/dev/null && echo yes || echo no)"
        sleep 1
    done
    return 1
}

mkdir -p "$TMP/results"
# Everything shares the machine's cores: a compiler running beside the benchmark skews it.
if pgrep -x rustc >/dev/null || pgrep -x cc1 >/dev/null; then
    log "warning: a compiler is running on this machine; results will be noisy"
fi
log "load: $LOADGEN, $DURATION per run (+$WARMUP warm-up), $CHUNKS SSE events per stream"
for scenario in $SCENARIOS; do
    conns=$CONNECTIONS delay_ms=$CHUNK_DELAY_MS rate=
    case $scenario in
        chat) body=$BODY_CHAT ;;
        chat-stream) body=$BODY_STREAM ;;
        chat-rate) body=$BODY_CHAT rate=$RATE ;;
        chat-stream-rate) body=$BODY_STREAM rate=$STREAM_RATE ;;
        chat-stream-paced) body=$BODY_STREAM conns=$PACED_CONNECTIONS delay_ms=$PACE_MS ;;
        chat-stream-1conn) body=$BODY_STREAM conns=1 ;;
        *) log "unknown scenario $scenario"; exit 1 ;;
    esac
    if [ -n "$rate" ] && [ "$LOADGEN" != oha ]; then
        log "$scenario needs oha (fixed request rate); skipped with $LOADGEN"
        continue
    fi
    for target in $TARGETS; do
        url=$(url_for "$target")
        RUN_KEY=$(key_for "$target")
        probe "$url" "$body" || { log "$scenario via $target: probe request failed"; exit 1; }
        log "$scenario via $target ($conns connections)"
        [ "$WARMUP" = 0 ] || load "$WARMUP" "$url" "$body" "$TMP/results/warmup.json"
        pid=$(pid_for "$target")
        [ -z "$pid" ] || { wait_idle "$pid"; before=$(cpu_ticks "$pid"); }
        load "$DURATION" "$url" "$body" "$TMP/results/$scenario.$target.json"
        # CPU the proxy process used for the measured run, the ledger catching up included.
        [ -z "$pid" ] || { wait_idle "$pid"; echo "$(($(cpu_ticks "$pid") - before)) $(getconf CLK_TCK)" >"$TMP/results/$scenario.$target.cpu"; }
    done
done

if ! kill -0 "$TOLLGATE_PID" 2>/dev/null; then
    log "tollgate exited during the run; its log:"
    tail -n 50 "$TMP/tollgate.log" >&2
    exit 1
fi
# Summarise what tollgate logged at warn level and above, by message (timestamps and
# colours stripped).
if grep -qE 'WARN|ERROR|panick' "$TMP/tollgate.log"; then
    log "tollgate logged (count, message):"
    sed -E 's/\x1b\[[0-9;]*m//g; s/^[0-9T:.Z-]+ +//' "$TMP/tollgate.log" | grep -E '^(WARN|ERROR)|panick' \
        | sort | uniq -c | sort -rn | head -n 20 >&2
fi

# --- report --------------------------------------------------------------------------
python3 - "$TMP/results" "$SCENARIOS" "$TARGETS" \
    "$CONNECTIONS connections (chat-stream-paced: $PACED_CONNECTIONS, $PACE_MS ms between events; chat-stream-1conn: 1; chat-rate: $RATE req/s offered; chat-stream-rate: $STREAM_RATE streams/s offered); $CHUNKS content events per stream; $DURATION per run; ttfb = time to the first response byte" <<'EOF'
import json, os, sys

results, scenarios, targets, footnote = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]

def parse(path):
    with open(path) as f:
        d = json.load(f)
    if d.get("wrk"):
        return d["rps"], d["p50"], d["p99"], None, d["requests"] - d["non2xx"], d["non2xx"] + d["errors"]
    codes = {int(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    # Requests cut off by the deadline are reported as errors by oha; they are not failures.
    errors = {k: v for k, v in (d.get("errorDistribution") or {}).items() if "deadline" not in k}
    bad = sum(v for k, v in codes.items() if not 200 <= k < 300) + sum(errors.values())
    lat = d.get("latencyPercentiles") or {}
    ttfb = (d.get("firstBytePercentiles") or {}).get("p50")
    ms = lambda v: (v or 0) * 1000
    return d["summary"]["requestsPerSec"], ms(lat.get("p50")), ms(lat.get("p99")), ttfb and ms(ttfb), ok, bad

# Overhead checks: metering vs metering off, budgets vs no budgets.
reference = {"tollgate": "tollgate-nometer", "tollgate-budgets": "tollgate"}
rows = []
cpu_us = {}
for s in scenarios:
    direct = None
    seen = {}
    for t in targets:
        path = os.path.join(results, f"{s}.{t}.json")
        if not os.path.exists(path):
            continue
        rps, p50, p99, ttfb, ok, bad = parse(path)
        if t == "direct":
            direct = rps
        seen[t] = rps
        ratio = f"{rps / direct:.2f}" if direct else "-"
        ref = reference.get(t)
        vs_ref = f"{rps / seen[ref]:.3f} vs {ref}" if ref in seen else "-"
        ttfb = "-" if ttfb is None else f"{ttfb:.2f}"
        cpu = "-"
        cpu_path = os.path.join(results, f"{s}.{t}.cpu")
        if os.path.exists(cpu_path) and ok:
            ticks, hz = map(int, open(cpu_path).read().split())
            cpu = f"{ticks / hz / ok * 1e6:.1f}"
            cpu_us[(s, t)] = ticks / hz / ok * 1e6
            if (s, ref) in cpu_us:
                vs_ref += f"; cpu {cpu_us[(s, t)] / cpu_us[(s, ref)]:.2f}x"
        rows.append((s, t, f"{rps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", ttfb, ratio, vs_ref, cpu, f"{ok:,}", str(bad)))

head = ("scenario", "target", "req/s", "p50 ms", "p99 ms", "ttfb p50 ms", "req/s vs direct", "overhead check",
        "proxy cpu us/req", "2xx", "failed")
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"
print(line(head))
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print(line(r))
print()
print(footnote + "; proxy cpu us/req = CPU time (user + system, all threads) of the tollgate process from the run's start until it is idle again / 2xx answers")
EOF
