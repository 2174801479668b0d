#!/usr/bin/env bash
# How much one audited request costs on disk (not a test): N authenticated reads (GET /v1/me,
# each an `account.view` event in the tenant's hash chain) against the real server over TLS,
# then the audit tables' bytes (SQLite dbstat, via `labvault-server db-usage`) per event, and the log bytes per request at the
# default log level. Size does not depend on the build profile, so the debug build is used.
#
#   bench/audit-volume.sh            # 20,000 requests
#   N=100000 bench/audit-volume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-20000}"
cargo build -q -p labvault-server --bin labvault-server
BIN="${CARGO_TARGET_DIR:-target}/debug/labvault-server"
DATA="$(mktemp -d)"
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT
PW="Bench-Horse-9-$RANDOM"
LABVAULT_OWNER_PASSWORD="$PW" "$BIN" --data-dir "$DATA" init --slug bench --plan professional \
  --owner-email owner@bench.test >/dev/null
# One caller sends them all: the per-caller request limit is lifted to measure the cost of
# each event (with it, one caller adds at most 100 events a second; docs/tenant-server.md).
"$BIN" --data-dir "$DATA" --log-file "$DATA/server.log" serve --bind 127.0.0.1:0 \
  --requests-per-caller-second 0 >"$DATA/out" 2>&1 &
PID=$!
for _ in $(seq 1 100); do grep -q "listening" "$DATA/out" 2>/dev/null && break; sleep 0.1; done
PORT="$(sed -n 's#.*listening on https://127.0.0.1:\([0-9]*\).*#\1#p' "$DATA/out" | head -1)"
# The audit tables (events, the strings they share, its index) and the event count, read through
# the server's own keyed connection (the database is encrypted): `labvault-server db-usage`.
usage() { "$BIN" --data-dir "$DATA" db-usage; }
audit_bytes() { usage | awk '$2 == "audit_log" || $2 == "audit_strings" || $2 ~ /^sqlite_autoindex_audit_strings/ { s += $1 } END { print s + 0 }'; }
events() { usage | awk '$2 == "audit" { print $1 }'; }
B0="$(audit_bytes)"; E0="$(events)"; L0="$(stat -c %s "$DATA/server.log")"
python3 - "$PORT" "$PW" "$N" <<'PY'
import http.client, json, ssl, sys, threading
port, pw, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl._create_unverified_context()  # loopback, the server's generated certificate
def conn(): return http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
c = conn()
c.request("POST", "/v1/auth/login", json.dumps({"tenant": "bench", "email": "owner@bench.test", "password": pw}), {"Content-Type": "application/json"})
tok = json.loads(c.getresponse().read())["access_token"]
def run(k):
    c = conn()
    for _ in range(k):
        c.request("GET", "/v1/me", headers={"Authorization": "Bearer " + tok, "User-Agent": "LabVault/0.1 (bench)"})
        r = c.getresponse(); r.read(); assert r.status == 200, r.status
ts = [threading.Thread(target=run, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
PY
kill -INT "$PID"; wait "$PID" 2>/dev/null || true  # stopped: its WAL is folded in
B1="$(audit_bytes)"; E1="$(events)"; L1="$(stat -c %s "$DATA/server.log")"
EV=$((E1 - E0))
echo "events: $EV (requests: $N)"
echo "audit tables: $((B1 - B0)) bytes, $(( (B1 - B0) / EV )) bytes per event"
echo "log: $((L1 - L0)) bytes at the default level ($(( (L1 - L0) / N )) per request)"
