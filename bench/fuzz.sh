#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time, one after another, and fails if
# any of them finds a crash. Not part of CI. See docs/FUZZING.md.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
#
# Env knobs (defaults in brackets):
#   TARGETS [every target in fuzz/Cargo.toml]  SANITIZER [none] (address for C dependencies'
#   sake, ~2x slower)  JOBS [1] (parallel fuzzing processes per target)  RSS_LIMIT_MB [2048]
#   SKIP_BUILD [0]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SECONDS_PER_TARGET=${1:-60}
SANITIZER=${SANITIZER:-none}
JOBS=${JOBS:-1}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}
ALL_TARGETS=$(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tollgate-fuzz$' || true)
TARGETS=${TARGETS:-$ALL_TARGETS}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "FATAL: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "FATAL: cargo-fuzz is needed (cargo install cargo-fuzz)" >&2
    exit 1
fi

# The targets build the dependency versions tollgate itself is tested with.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock

# -a: release code with debug assertions and overflow checks, so an arithmetic overflow
# is a crash too.
FUZZ_FLAGS=(-s "$SANITIZER" -a)
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd fuzz && cargo +nightly fuzz build "${FUZZ_FLAGS[@]}")
fi

# Seed corpora: the committed seeds, plus every public corpus case in the shape each
# target reads (its option bytes in front). Generated, never committed.
seed() {
    local target=$1
    mkdir -p "fuzz/corpus/$target"
    if [ -d "fuzz/seeds/$target" ]; then
        cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    fi
}
for target in $TARGETS; do seed "$target"; done
if command -v python3 >/dev/null 2>&1; then
    python3 - "$ROOT" <<'PY'
import json, os, sys
root = sys.argv[1]
cases = os.path.join(root, "tests/fixtures/corpus/public")
corpus = os.path.join(root, "fuzz/corpus")
SEED = b"\x05\x00\x00\x00\x00\x00\x00\x40"  # slicing: 1..64-byte pieces

def api_index(path):
    path = path.split("?")[0]
    for suffix, i in [(":streamGenerateContent", 6), (":generateContent", 5), (":embedContent", 7),
                      ("chat/completions", 0), ("completions", 1), ("responses", 2),
                      ("embeddings", 3), ("messages", 4)]:
        if path.endswith(suffix):
            return i
    return 0

def write(target, name, data):
    d = os.path.join(corpus, target)
    if os.path.isdir(d):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

for file in sorted(os.listdir(cases)):
    if not file.endswith(".expected.json"):
        continue
    name = file[: -len(".expected.json")]
    expected = json.load(open(os.path.join(cases, file)))
    request = json.load(open(os.path.join(cases, name + ".request.json")))
    body = open(os.path.join(cases, name + ".response"), "rb").read()
    headers = {k.lower(): v for k, v in expected.get("response_headers", {}).items()}
    sse = str(headers.get("content-type", "")).startswith("text/event-stream")
    api = api_index(request["path"])
    status = {200: 0, 201: 1, 429: 2}.get(expected.get("http_status"), 3)
    write("meter", name, bytes([api | (8 if sse else 0) | (status << 4), 0xFF]) + SEED + body)
    if sse:
        write("sse_framer", name, b"\xff" + SEED + body)
        write("inject_filter", name, SEED + body)
    raw = json.dumps(request.get("body", {})).encode()
    write("request_facts", name, bytes([api]) + request["path"].encode() + b"\n" + raw)
    write("route", name, request["path"].encode() + b"?alt=sse&key=k")
PY
else
    echo "python3 not found: fuzzing from the committed seeds only" >&2
fi

JOB_FLAGS=()
[ "$JOBS" -gt 1 ] && JOB_FLAGS=(--jobs "$JOBS")

failed=()
for target in $TARGETS; do
    echo "=== $target: ${SECONDS_PER_TARGET}s"
    # Crashes land in fuzz/artifacts/$target; cargo fuzz exits non-zero when one is found.
    if ! (cd fuzz && cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "${JOB_FLAGS[@]}" "$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" -timeout=10 \
        -print_final_stats=1); then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${SECONDS_PER_TARGET}s without a crash: ${TARGETS//$'\n'/ }"
