#!/usr/bin/env bash
# Load benchmark of the tenant server (not a test): authorized reads (access review, audit
# page) over TLS 1.3 on loopback with oha. Target on a 2-core machine: >= 5,000 req/s with
# p99 < 20 ms and no errors at 200 concurrent connections.
#
# For each path it runs
#   1. a FIXED-RATE run: `oha -q RATE -c CONNS --latency-correction` (open loop: requests are
#      scheduled at RATE whatever the latency, and latency is measured from the scheduled
#      time, so a stall is not hidden by the generator waiting: no coordinated omission);
#   2. a MAX-THROUGHPUT run: closed loop, CONNS connections each sending as fast as answered.
# A closed loop alone cannot test "p99 < 20 ms at 5,000 req/s": with 200 connections it
# always queues (Little's law: 200 in flight / 5,000 req/s = 40 ms mean), so the latency
# target is judged on the fixed-rate run and throughput on the max run.
#
#   bench/server-load.sh                       # release build, 200 conns, 5,000 req/s, 60 s
#   RATE=3000 DURATION=10s bench/server-load.sh
#   PATHS="/v1/audit?limit=10 /v1/me" bench/server-load.sh
#   BIN=/tmp/old/labvault-server bench/server-load.sh   # measure another build as is
#   WRK=1 bench/server-load.sh                 # also a closed-loop max run with wrk (C, lighter)
#   nice -n -10 bench/server-load.sh           # (root) server + generator ahead of other builds
#   cargo install oha --locked                 # the load generator (crates.io)
#   apt-get install -y wrk time                # optional: wrk; /usr/bin/time for oha's CPU
#
# After every run it prints the CPU time the server used (utime+stime from /proc, in µs per
# answered request) and, with /usr/bin/time, the generator's: on 2 shared cores the
# generator's share bounds what the server can do, and CPU per request is the figure that
# does not depend on what else the machine is running.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/targets/server}"
CONNS="${CONNS:-200}"
RATE="${RATE:-5000}"
# 60 s: each measured run opens its 200 TLS connections at its start (≈ 0.2-0.4 s of
# handshakes during which scheduled requests queue); in a 10 s run that ramp is ~4 % of the
# requests and alone sets the p99, in a 60 s run it is below 1 %.
DURATION="${DURATION:-60s}"
PORT="${PORT:-18443}"
PROJECTS="${PROJECTS:-10}"
PATHS="${PATHS:-/v1/access-review /v1/audit?limit=50}"
OHA="${OHA:-$(command -v oha || echo "$HOME/.cargo/bin/oha")}"

[ -x "$OHA" ] || { echo "oha is required: cargo install oha --locked" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then # BIN=path/to/labvault-server compares another build
  cargo build --release -p labvault-server --bin labvault-server >&2
  BIN="$CARGO_TARGET_DIR/release/labvault-server"
fi
DATA="$(mktemp -d)"
trap 'kill "$SERVER_PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT

PW="Bench-Horse-9-$RANDOM"
LABVAULT_OWNER_PASSWORD="$PW" "$BIN" --data-dir "$DATA" init --slug bench --plan professional \
  --owner-email owner@bench.test >&2
# One token drives the whole load: the per-caller request limit (see docs/tenant-server.md) is lifted.
RUST_LOG=warn "$BIN" --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" --requests-per-caller-second 0 >"$DATA/serve.log" 2>&1 &
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

OHA_COMMON=(--no-tui --ipv4 --cacert "$DATA/tls/cert.pem" -c "$CONNS" -z "$DURATION"
  -H "Authorization: Bearer $TOKEN")
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; } # utime+stime, 1/100 s
OUT="$DATA/gen.out"
# measured GENERATOR ARGS...: runs the generator, then prints the CPU used per request.
measured() {
  local before after answered gen_cpu=""
  before=$(server_ticks)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%U %S" -o "$DATA/gen.time" "$@" | tee "$OUT"
    gen_cpu=$(awk '{print $1 + $2}' "$DATA/gen.time")
  else
    "$@" | tee "$OUT"
  fi
  after=$(server_ticks)
  # oha: "[200] N responses" per status; wrk: "N requests in ..." (non-2xx listed apart).
  answered=$(grep -oE '\[2[0-9][0-9]\] [0-9]+ responses|^ +[0-9]+ requests in' "$OUT" |
    grep -oE '[0-9]+ (responses|requests)' | awk '{s += $1} END {print s + 0}')
  python3 - "$before" "$after" "$answered" "$gen_cpu" <<'PY'
import sys
b, a, n, g = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
srv = (a - b) / 100
line = f"--- CPU: server {srv:.2f} s"
if n:
    line += f" = {srv / n * 1e6:.0f} µs/request ({n} answered)"
if g:
    line += f"; generator {float(g):.2f} s" + (f" = {float(g) / n * 1e6:.0f} µs/request" if n else "")
print(line)
PY
  echo "--- $(uptime)"
}
echo "machine: $(nproc) cores; $(uptime)"
for path in $PATHS; do
  url="https://localhost:$PORT$path"
  "$OHA" --no-tui --ipv4 --cacert "$DATA/tls/cert.pem" -c "$CONNS" -z 3s \
    -H "Authorization: Bearer $TOKEN" -o /dev/null "$url" # warm-up (connections, caches)
  echo "=== GET $path: fixed rate ${RATE} req/s, ${CONNS} connections, ${DURATION}; $(uptime)"
  measured "$OHA" "${OHA_COMMON[@]}" -q "$RATE" --latency-correction "$url"
  echo "=== GET $path: max throughput, ${CONNS} connections, ${DURATION}; $(uptime)"
  measured "$OHA" "${OHA_COMMON[@]}" "$url"
  if [ -n "${WRK:-}" ]; then
    # wrk does not verify the certificate; it only generates load on loopback.
    echo "=== GET $path: max throughput (wrk, ${WRK_THREADS:-1} thread), ${CONNS} connections, ${DURATION}; $(uptime)"
    measured wrk -t "${WRK_THREADS:-1}" -c "$CONNS" -d "$DURATION" --latency \
      -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT$path"
  fi
done
echo "after: $(uptime)"
# A normal day raises no security alert (docs/alerts.md): the run's traffic is checked by the
# server's detector like any other.
ALERTS=$("${CURL[@]}" -H "authorization: Bearer $TOKEN" "$BASE/v1/alerts?hours=24" |
  python3 -c 'import json,sys; print(len(json.load(sys.stdin)["alerts"]))')
echo "security alerts raised by the run: $ALERTS"
[ "$ALERTS" = 0 ] || { echo "the load raised alerts: see GET /v1/alerts" >&2; exit 1; }
