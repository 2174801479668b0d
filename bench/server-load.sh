#!/usr/bin/env bash
# Load benchmark of the tenant server (not a test): authorized reads (access review, audit
# page) over TLS 1.3 on loopback with wrk. Target on a 2-core machine: >= 5,000 req/s,
# p99 < 20 ms, no errors at 200 concurrent connections.
#
#   bench/server-load.sh            # release build, 200 connections, 20 s per endpoint
#   CONNS=100 DURATION=10s bench/server-load.sh
#   PATHS="/v1/audit?limit=10 /v1/me" bench/server-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/targets/server}"
CONNS="${CONNS:-200}"
THREADS="${THREADS:-2}"
DURATION="${DURATION:-20s}"
PORT="${PORT:-18443}"
PROJECTS="${PROJECTS:-10}"
PATHS="${PATHS:-/v1/access-review /v1/audit?limit=50}"

command -v wrk >/dev/null || { echo "wrk is required" >&2; exit 1; }
cargo build --release -p labvault-server --bin labvault-server >&2
BIN="$CARGO_TARGET_DIR/release/labvault-server"
DATA="$(mktemp -d)"
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT

PW="Bench-Horse-9-$RANDOM"
LABVAULT_OWNER_PASSWORD="$PW" "$BIN" --data-dir "$DATA" init --slug bench --plan professional \
  --owner-email owner@bench.test >&2
RUST_LOG=warn "$BIN" --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" >"$DATA/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q "listening" "$DATA/serve.log" 2>/dev/null && break
  sleep 0.1
done
grep "pin" "$DATA/serve.log" >&2

CURL=(curl -sS --fail-with-body --cacert "$DATA/tls/cert.pem" --resolve "localhost:$PORT:127.0.0.1"
  -H "content-type: application/json")
BASE="https://localhost:$PORT"
TOKEN=$("${CURL[@]}" -d "{\"tenant\":\"bench\",\"email\":\"owner@bench.test\",\"password\":\"$PW\"}" \
  "$BASE/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
for i in $(seq 1 "$PROJECTS"); do
  "${CURL[@]}" -H "authorization: Bearer $TOKEN" -d "{\"name\":\"project-$i\"}" "$BASE/v1/projects" >/dev/null
done
for i in 1 2 3 4 5; do
  "${CURL[@]}" -H "authorization: Bearer $TOKEN" -d "{\"email\":\"invitee$i@bench.test\",\"role\":\"editor\"}" \
    "$BASE/v1/invitations" >/dev/null
done

echo "machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for path in $PATHS; do
  echo "=== GET $path  (${CONNS} connections, ${THREADS} wrk threads, ${DURATION})"
  wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -H "Authorization: Bearer $TOKEN" \
    "https://127.0.0.1:$PORT$path"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
