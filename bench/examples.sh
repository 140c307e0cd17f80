#!/usr/bin/env bash
# Runs every example in examples/ against tollgate in front of the mock upstream
# (bench/mock_upstream.rs) and checks that each one got the expected answer and that
# tollgate wrote a priced cost record for each of its calls. .ci/run runs it after the
# test suite.
#
#   - python/openai_chat.py, python/anthropic_messages.py (official SDKs from PyPI, in a
#     venv), typescript/chat.ts (official npm SDK, compiled with tsc), curl/gemini.sh:
#     each with a tollgate key of its own, created with the CLI;
#   - sidecar/tollgate.toml: a second tollgate in headers mode, called by
#     python/sidecar_headers.py with x-tollgate-user / x-tollgate-project;
#   - kubernetes/sidecar.yaml and compose.yaml cannot run here (no cluster, no container
#     engine): they are parsed and checked, and the manifest's tollgate.toml goes through
#     `tollgate check-config`.
#
# Needs cargo, curl, python3 (3.10+, with venv) and Node.js 20+ with npm; Python and npm
# packages are installed here (PyPI, npm registry). Env knobs (defaults in brackets):
#   PROFILE [debug] (or release: the build to use; `cargo nextest run` made the debug one)
#   SKIP_BUILD [0]  EXAMPLES_CACHE [target/examples] (the venv, kept between runs)
#   KEEP_TMP [0] (1 keeps configs, logs and outputs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PROFILE=${PROFILE:-debug}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/$PROFILE
CACHE=${EXAMPLES_CACHE:-$TARGET_DIR/examples}
CHUNKS=3
# What the mock answers with --chunks 3, once the SDKs' text is trimmed.
EXPECTED="token token token"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-examples.XXXXXX")
PIDS=()
log() { printf '[examples] %s\n' "$*" >&2; }
die() {
    log "FAILED: $*"
    exit 1
}
cleanup() {
    local status=$?
    trap - EXIT
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$status" != 0 ]; then
        log "kept $TMP (configs, logs, each example's output)"
        for f in "$TMP"/*.log "$TMP"/*.out; do
            [ "$status" != 0 ] && [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; } >&2
        done
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT

# --- tools ---------------------------------------------------------------------------
for tool in curl python3 node npm; do
    command -v "$tool" >/dev/null || die "$tool not found: install curl, python3 (with venv), Node.js 20+ and npm"
done
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$(python3 --version) is too old: the Python SDKs need 3.10+"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "Node.js $(node --version) is too old: the TypeScript example needs 20+"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building tollgate and the mock upstream ($PROFILE)"
    if [ "$PROFILE" = debug ]; then
        cargo build -q --bin tollgate --example mock_upstream
    else
        cargo build -q --profile "$PROFILE" --bin tollgate --example mock_upstream
    fi
fi
TG=$BIN/tollgate
[ -x "$TG" ] && [ -x "$BIN/examples/mock_upstream" ] || die "no $TG or $BIN/examples/mock_upstream"

log "installing the Python SDKs (examples/python/requirements.txt) into $CACHE/venv"
[ -x "$CACHE/venv/bin/python" ] || python3 -m venv "$CACHE/venv" ||
    die "python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"
PY=$CACHE/venv/bin/python
"$PY" -m pip install -q --disable-pip-version-check -r examples/python/requirements.txt pyyaml >"$TMP/pip.log" 2>&1 ||
    die "pip install failed (see $TMP/pip.log)"
log "installing and compiling the TypeScript example (npm ci, tsc)"
(cd examples/typescript && npm ci --no-audit --no-fund --loglevel=error && npx tsc) >"$TMP/npm.log" 2>&1 ||
    die "npm ci / tsc failed (see $TMP/npm.log)"

CHECK() { "$PY" bench/examples_check.py "$@"; }

# --- mock upstream and tollgate --------------------------------------------------------
read -r MOCK_PORT PROXY_PORT ADMIN_PORT SIDECAR_PORT SIDECAR_ADMIN_PORT <<<"$(CHECK ports 5)"
export TOLLGATE_ADMIN_TOKEN=examples-admin-token
wait_ready() {
    for _ in $(seq 1 100); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    die "$2 did not come up at $1 (see $TMP/$2.log)"
}

"$BIN/examples/mock_upstream" --listen "127.0.0.1:$MOCK_PORT" --chunks "$CHUNKS" --threads 1 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$MOCK_PORT/v1/models" mock

# Every provider at the mock (which ignores keys); `with-keys` gives each a dummy key.
mock_providers() {
    for p in openai anthropic gemini; do
        printf '[[providers]]\nname = "%s"\nkind = "%s"\nbase_url = "http://127.0.0.1:%s"\n' "$p" "$p" "$MOCK_PORT"
        if [ "${1:-}" = with-keys ]; then printf 'api_key = "upstream-%s-key"\n' "$p"; fi
    done
}
CFG=$TMP/tollgate.toml
cat >"$CFG" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token = "\${TOLLGATE_ADMIN_TOKEN}"
[database]
url = "sqlite://$TMP/tollgate.db"
[log]
filter = "warn"
$(mock_providers with-keys)
EOF
# One organization, project and user; a key per example, so each one's records are its own.
tg() { "$TG" --config "$CFG" "$@"; }
ORG=$(tg organization create examples --json | CHECK field id)
PROJECT=$(tg project create --org "$ORG" web --json | CHECK field id)
USER_ID=$(tg user create --org "$ORG" alice --email alice@example.com --json | CHECK field id)
declare -A KEY KEY_ID
for example in python-openai python-anthropic typescript curl-gemini; do
    tg key create --user "$USER_ID" --project "$PROJECT" --name "$example" --json >"$TMP/key-$example.json" 2>>"$TMP/cli.log"
    KEY[$example]=$(CHECK field key <"$TMP/key-$example.json")
    KEY_ID[$example]=$(CHECK field id <"$TMP/key-$example.json")
done
# A budget on the project, so answers carry x-tollgate-budget-remaining-usd.
tg budget create --scope project --scope-id "$PROJECT" --limit 5 --period monthly >/dev/null
# Started after the CLI wrote all this, so it sees it at once (not within its poll interval).
"$TG" --config "$CFG" serve >"$TMP/tollgate.log" 2>&1 &
PIDS+=($!)
ADMIN=http://127.0.0.1:$ADMIN_PORT
wait_ready "$ADMIN/readyz" tollgate

# --- the examples ----------------------------------------------------------------------
export TOLLGATE_URL=http://127.0.0.1:$PROXY_PORT
run_example() {
    local name=$1
    shift
    log "$name"
    "$@" >"$TMP/$name.out" 2>&1 || die "$name exited with $? (output in $TMP/$name.out)"
}
check_records() {
    local name=$1 count=$2
    printf '[examples]   %s: ' "$name" >&2
    CHECK records "$ADMIN" "api_key_id=${KEY_ID[$name]}" "$count" "$TMP/$name.out" >&2 ||
        die "$name: cost records"
}

TOLLGATE_KEY=${KEY[python-openai]} run_example python-openai "$PY" examples/python/openai_chat.py
CHECK answers "$TMP/python-openai.out" "$EXPECTED" || die python-openai
grep -Eqx 'budget remaining: 5(\.0*)?' "$TMP/python-openai.out" || die "python-openai: no budget header"
check_records python-openai 2

TOLLGATE_KEY=${KEY[python-anthropic]} run_example python-anthropic "$PY" examples/python/anthropic_messages.py
CHECK answers "$TMP/python-anthropic.out" "$EXPECTED" || die python-anthropic
check_records python-anthropic 2

TOLLGATE_KEY=${KEY[typescript]} run_example typescript node examples/typescript/dist/chat.js
CHECK answers "$TMP/typescript.out" "$EXPECTED" || die typescript
check_records typescript 2

TOLLGATE_KEY=${KEY[curl-gemini]} run_example curl-gemini sh examples/curl/gemini.sh
CHECK gemini "$TMP/curl-gemini.out" "$EXPECTED" || die curl-gemini
check_records curl-gemini 2

# The CLI's report agrees: eight calls on the four keys.
tg spend --group-by key --json >"$TMP/spend.json"
REQUESTS=$("$PY" -c 'import json,sys; print(sum(r["requests"] for r in json.load(sys.stdin)["data"]))' <"$TMP/spend.json")
[ "$REQUESTS" = 8 ] || die "tollgate spend --json counts $REQUESTS requests, expected 8"
# What the operator sees of them: the project's spend on the dashboard (signed in
# through its form) equal to its records, and the calls counted on /metrics.
log "dashboard and /metrics"
printf '[examples]   ' >&2
CHECK operator "$ADMIN" "$PROJECT" 8 >&2 || die "dashboard or /metrics"

# --- the sidecar -----------------------------------------------------------------------
# examples/sidecar/tollgate.toml as it is, on free ports, with its own database and the
# providers at the mock without keys (so the app's own key passes through).
log "sidecar (auth.mode = \"headers\")"
SIDECAR_CFG=$TMP/sidecar.toml
sed -e "s/127.0.0.1:8080/127.0.0.1:$SIDECAR_PORT/" -e "s/127.0.0.1:8081/127.0.0.1:$SIDECAR_ADMIN_PORT/" \
    examples/sidecar/tollgate.toml >"$SIDECAR_CFG"
mock_providers >>"$SIDECAR_CFG"
# A directory of its own: the journal defaults to tollgate.journal beside the database.
mkdir "$TMP/sidecar"
export TOLLGATE_DATABASE_URL=sqlite://$TMP/sidecar/sidecar.db
sc() { "$TG" --config "$SIDECAR_CFG" "$@"; }
sc check-config | grep -qx 'auth mode        headers' || die "the sidecar config is not in headers mode"
SC_ORG=$(sc organization create acme --json | CHECK field id)
SC_PROJECT=$(sc project create --org "$SC_ORG" web --json | CHECK field id)
SC_USER=$(sc user create --org "$SC_ORG" alice --json | CHECK field id)
# Not through sc: a backgrounded function is a subshell, and its pid is not tollgate's.
"$TG" --config "$SIDECAR_CFG" serve >"$TMP/sidecar.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$SIDECAR_ADMIN_PORT/readyz" sidecar
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SIDECAR_PORT/v1/chat/completions" \
    -H 'content-type: application/json' -d '{"model":"gpt-4o-mini","messages":[]}')
[ "$STATUS" = 401 ] || die "the sidecar answered $STATUS to a call without x-tollgate-* headers, expected 401"
TOLLGATE_URL=http://127.0.0.1:$SIDECAR_PORT TOLLGATE_USER=alice TOLLGATE_PROJECT=$SC_PROJECT \
    OPENAI_API_KEY=sk-the-apps-own-key run_example sidecar "$PY" examples/python/sidecar_headers.py
CHECK answers "$TMP/sidecar.out" "$EXPECTED" || die sidecar
printf '[examples]   sidecar: ' >&2
CHECK records "http://127.0.0.1:$SIDECAR_ADMIN_PORT" "user_id=$SC_USER&project_id=$SC_PROJECT" 1 "$TMP/sidecar.out" >&2 ||
    die "sidecar: cost records"

# --- what cannot run here --------------------------------------------------------------
log "kubernetes/sidecar.yaml (parsed and checked; not applied: no cluster here)"
printf '[examples]   ' >&2
CHECK kubernetes examples/kubernetes/sidecar.yaml "$TMP/k8s-tollgate.toml" >&2 || die kubernetes
TOLLGATE_DATABASE_URL=postgres://tollgate@127.0.0.1:1/tollgate "$TG" --config "$TMP/k8s-tollgate.toml" check-config \
    >"$TMP/k8s-check.out" 2>&1 || die "the manifest's tollgate.toml: $(cat "$TMP/k8s-check.out")"
grep -qx 'auth mode        headers' "$TMP/k8s-check.out" || die "the manifest's tollgate.toml is not in headers mode"
log "compose.yaml (parsed and checked; not started: no container engine here)"
printf '[examples]   ' >&2
CHECK compose examples/compose.yaml >&2 || die compose

log "all examples passed"
