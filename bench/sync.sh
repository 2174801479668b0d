#!/usr/bin/env bash
# LabVault sync benchmark: upload of a 1 GiB file and of 10,000 small files (1-64 KiB) to a
# tenant server on loopback TLS, and download of both to a fresh device, side by side with
#   restic: `restic backup` / `restic restore` against a REST repository served by
#           `rclone serve restic` over loopback TLS;
#   rclone: `rclone copy` to and from `rclone serve webdav` over loopback TLS (no encryption);
# with the peak memory (RSS) of each client and server process; and an idle sync of a vault of
# 100,000 synced items (nothing changed).
#
# Usage:  bench/sync.sh                 (1 GiB + 10,000 files, 3 rounds; ~50 min, most of it rclone's
#                                        WebDAV upload of the small files)
#         BIG_MIB=256 SMALL_N=2000 IDLE_N=20000 ROUNDS=1 bench/sync.sh   (quicker)
# Env:    BENCH_DIR  work directory (default <target dir>/labvault-sync-bench; removed at the end
#                    unless KEEP=1). Every server and client reads and writes there: same disk.
#         ROUNDS     rounds (default 3), each running every tool once in a rotated order; the
#                    table shows medians and the median of the same-round ratios.
#         IDLE_N     items of the idle-sync vault (default 100000; 0 skips it).
#         TOOLS      which of "labvault restic rclone" to run (default all three).
#         BENCH_PROFILE=dev  smoke-test the script with debug binaries (numbers meaningless).
# LabVault's commands unlock from the OS keyring ("remember on this device", a private
# gnome-keyring as in the tests), so the figures are the sync, not the passphrase KDF.
# Output: a table on stdout and bench/sync-latest.txt (not committed). Not part of the tests.
set -euo pipefail

if [[ -z "${LV_BENCH_IN_DBUS:-}" ]]; then
  exec bash "$(dirname "$0")/../scripts/with-keyring.sh" env LV_BENCH_IN_DBUS=1 bash "$0" "$@"
fi

REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WORK="${BENCH_DIR:-$TARGET/labvault-sync-bench}"
BIG_MIB="${BIG_MIB:-1024}"
SMALL_N="${SMALL_N:-10000}"
IDLE_N="${IDLE_N:-100000}"
ROUNDS="${ROUNDS:-3}"
PROFILE="${BENCH_PROFILE:-release}"
export LABVAULT_PASSPHRASE="bench passphrase (not secret)"
export LABVAULT_NEW_PASSPHRASE="$LABVAULT_PASSPHRASE"
export LABVAULT_TENANT_PASSWORD="Bench-Tenant-Passw0rd"
export LABVAULT_OWNER_PASSWORD="$LABVAULT_TENANT_PASSWORD"
export RESTIC_PASSWORD="bench passphrase (not secret)"
export NO_COLOR=1 RUST_LOG=warn

need() { command -v "$1" >/dev/null || { echo "missing tool: $1 (apt-get install $2)" >&2; exit 2; }; }
need restic restic; need rclone rclone; need openssl openssl; need python3 python3
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 2; }
log() { echo "[sync-bench] $*" >&2; }

# ---------------------------------------------------------------- build
cd "$REPO"
OUTDIR="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
log "building labvault and labvault-server (profile $PROFILE)"
cargo build --profile "$PROFILE" -q -p labvault-cli -p labvault-server
rm -rf "$WORK"; mkdir -p "$WORK/bin" "$WORK/run"
cp "$OUTDIR/labvault" "$OUTDIR/labvault-server" "$WORK/bin/"
LV="$WORK/bin/labvault"; LVS="$WORK/bin/labvault-server"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

# ---------------------------------------------------------------- data
DATA="$WORK/data"; mkdir -p "$DATA/small"
log "generating a ${BIG_MIB} MiB random file and ${SMALL_N} small files (1-64 KiB)"
head -c "$((BIG_MIB * 1024 * 1024))" /dev/urandom > "$DATA/big.bin"
python3 - "$DATA/small" "$SMALL_N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
for i in range(n):
    d = os.path.join(root, f"d{i // 100:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.dat"), "wb") as f:
        f.write(os.urandom(rng.randint(1024, 64 * 1024)))
PY
BIG_BYTES=$(stat -c %s "$DATA/big.bin")
SMALL_BYTES=$(find "$DATA/small" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
# On disk before any clock starts (else the first tool of round 1 pays this writeback), and
# in the page cache for every tool alike.
sync; cat "$DATA/big.bin" > /dev/null; tar -C "$DATA" -cf - small > /dev/null

# One self-signed certificate for the peers' servers (the tenant server makes its own).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
ROUND=0
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
# Peak RSS of a running server since the last reset (VmHWM; `5 > clear_refs` resets it).
hwm_reset() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }
hwm_mib() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

# timed NAME BYTES SERVER_PID CMD...: runs CMD under /usr/bin/time, then `sync`; records seconds,
# MB/s (10^6 bytes of plaintext per second), the client's and the server's peak RSS (MiB).
timed() {
  local name=$1 bytes=$2 spid=$3; shift 3
  hwm_reset "$spid"
  local t0 t1
  t0=$(date +%s.%N)
  if ! /usr/bin/time -f '%M' -o "$WORK/run/rss" "$@" > "$WORK/run/last.out" 2> "$WORK/run/last.err"; then
    log "FAILED: $name"; tail -5 "$WORK/run/last.err" >&2
    echo -e "$name\t$ROUND\tFAIL\tFAIL\t-\t-" >> "$RESULTS"; return 0
  fi
  sync
  t1=$(date +%s.%N)
  local crss; crss=$(( $(tail -1 "$WORK/run/rss") / 1024 ))
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]}\t{sys.argv[5]}\t{s:.3f}\t{int(sys.argv[4])/s/1e6:.1f}\t{sys.argv[6]}\t{sys.argv[7]}')" \
    "$t0" "$t1" "$name" "$bytes" "$ROUND" "$crss" "$(hwm_mib "$spid")" >> "$RESULTS"
  log "round $ROUND: $(tail -1 "$RESULTS" | cut -f1,3,4,5,6)"
}
same() { diff -rq "$1" "$2" > /dev/null || { log "MISMATCH: $1 vs $2"; echo -e "mismatch:$3\t$ROUND\t-\t-\t-\t-" >> "$RESULTS"; }; }

# ---------------------------------------------------------------- LabVault
SERVER_PID=""; SERVER_URL=""; SERVER_PIN=""
start_tenant() { # $1 = data dir
  "$LVS" --data-dir "$1" init --slug lab --plan enterprise --owner-email pi@lab.test > /dev/null
  "$LVS" --data-dir "$1" serve --bind 127.0.0.1:0 > "$1.out" 2> "$1.err" &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  for _ in $(seq 200); do grep -q '^certificate pin: ' "$1.out" 2>/dev/null && break; sleep 0.05; done
  SERVER_URL=$(sed -n 's/^labvault-server listening on //p' "$1.out")
  SERVER_PIN=$(sed -n 's/^certificate pin: //p' "$1.out")
  [ -n "$SERVER_PIN" ] || { cat "$1.err" >&2; return 1; }
}
device() { # $1 = vault dir: a vault remembered on this device, signed in to the tenant
  "$LV" --vault "$1" init --json > /dev/null
  "$LV" --vault "$1" remember > /dev/null
  "$LV" --vault "$1" remote add "$SERVER_URL" --pin "$SERVER_PIN" --tenant lab > /dev/null
  "$LV" --vault "$1" login --email pi@lab.test > /dev/null
}
lvk() { env -u LABVAULT_PASSPHRASE LABVAULT_KEYRING_SERVICE="$KR" "$LV" "$@"; }
tool_labvault() {
  log "LabVault"
  local R="$WORK/run/lv"; rm -rf "$R"; mkdir -p "$R"
  start_tenant "$R/server"
  export LABVAULT_KEYRING_SERVICE="labvault-sync-bench-$ROUND"; KR=$LABVAULT_KEYRING_SERVICE
  device "$R/a"
  lvk --vault "$R/a" project create big > /dev/null
  lvk --vault "$R/a" project create small > /dev/null
  lvk --vault "$R/a" import --project big --area uploads "$DATA/big.bin" > /dev/null
  lvk --vault "$R/a" import --project small --area uploads "$DATA/small" > /dev/null
  sync # the import's writes reach the disk before the clock starts, as the peers' data did
  local big_id small_id
  big_id=$(lvk --vault "$R/a" project ls --json | python3 -c 'import json,sys; print(next(p["id"] for p in json.load(sys.stdin) if p["name"]=="big"))')
  small_id=$(lvk --vault "$R/a" project ls --json | python3 -c 'import json,sys; print(next(p["id"] for p in json.load(sys.stdin) if p["name"]=="small"))')
  timed "labvault up 1file" "$BIG_BYTES" "$SERVER_PID" env -u LABVAULT_PASSPHRASE "$LV" --vault "$R/a" sync --project big
  timed "labvault up small" "$SMALL_BYTES" "$SERVER_PID" env -u LABVAULT_PASSPHRASE "$LV" --vault "$R/a" sync --project small
  device "$R/b"
  local code; code=$(lvk --vault "$R/b" device pair | sed -n 's/^pairing code: //p')
  lvk --vault "$R/a" device approve "$code" > /dev/null
  # The fresh device knows the projects by id until it has pulled their (encrypted) names.
  timed "labvault down 1file" "$BIG_BYTES" "$SERVER_PID" env -u LABVAULT_PASSPHRASE "$LV" --vault "$R/b" sync --project "$big_id"
  timed "labvault down small" "$SMALL_BYTES" "$SERVER_PID" env -u LABVAULT_PASSPHRASE "$LV" --vault "$R/b" sync --project "$small_id"
  lvk --vault "$R/b" export --project big big.bin "$R/out-big" > /dev/null
  same "$DATA/big.bin" "$R/out-big/big.bin" "labvault big"
  lvk --vault "$R/b" export --project small --area uploads "$R/out-small" > /dev/null
  same "$DATA/small" "$(dirname "$(find "$R/out-small" -type d -name d000 | head -1)")" "labvault small"
  lvk --vault "$R/a" forget > /dev/null 2>&1 || true; lvk --vault "$R/b" forget > /dev/null 2>&1 || true
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$R"
}

# ---------------------------------------------------------------- restic (rclone serve restic)
tool_restic() {
  log "restic -> rclone serve restic"
  local R="$WORK/run/restic"; rm -rf "$R"; mkdir -p "$R/repo"
  local port; port=$(free_port)
  rclone serve restic --addr "127.0.0.1:$port" --cert "$WORK/cert.pem" --key "$WORK/key.pem" "$R/repo" 2> "$R/serve.err" &
  local spid=$!; PIDS+=("$spid"); wait_port "$port"
  local repo=(-r "rest:https://127.0.0.1:$port/" --cacert "$WORK/cert.pem")
  XDG_CACHE_HOME="$R/cache-a" restic "${repo[@]}" init > /dev/null
  timed "restic up 1file" "$BIG_BYTES" "$spid" env XDG_CACHE_HOME="$R/cache-a" restic "${repo[@]}" backup --tag big "$DATA/big.bin"
  timed "restic up small" "$SMALL_BYTES" "$spid" env XDG_CACHE_HOME="$R/cache-a" restic "${repo[@]}" backup --tag small "$DATA/small"
  # The fresh device: an empty cache.
  timed "restic down 1file" "$BIG_BYTES" "$spid" env XDG_CACHE_HOME="$R/cache-b" restic "${repo[@]}" restore latest --tag big --target "$R/out-big"
  timed "restic down small" "$SMALL_BYTES" "$spid" env XDG_CACHE_HOME="$R/cache-b" restic "${repo[@]}" restore latest --tag small --target "$R/out-small"
  same "$DATA/big.bin" "$R/out-big$DATA/big.bin" "restic big"
  same "$DATA/small" "$R/out-small$DATA/small" "restic small"
  kill "$spid"; wait "$spid" 2>/dev/null || true
  rm -rf "$R"
}

# ---------------------------------------------------------------- rclone copy (rclone serve webdav)
tool_rclone() {
  log "rclone copy -> rclone serve webdav"
  local R="$WORK/run/rclone"; rm -rf "$R"; mkdir -p "$R/dav"
  local port; port=$(free_port)
  rclone serve webdav --addr "127.0.0.1:$port" --cert "$WORK/cert.pem" --key "$WORK/key.pem" "$R/dav" 2> "$R/serve.err" &
  local spid=$!; PIDS+=("$spid"); wait_port "$port"
  local rc=(env RCLONE_CONFIG_DAV_TYPE=webdav "RCLONE_CONFIG_DAV_URL=https://127.0.0.1:$port" RCLONE_CONFIG_DAV_VENDOR=other
            rclone --config /dev/null --ca-cert "$WORK/cert.pem")
  timed "rclone up 1file" "$BIG_BYTES" "$spid" "${rc[@]}" copy "$DATA/big.bin" dav:big
  timed "rclone up small" "$SMALL_BYTES" "$spid" "${rc[@]}" copy "$DATA/small" dav:small
  timed "rclone down 1file" "$BIG_BYTES" "$spid" "${rc[@]}" copy dav:big "$R/out-big"
  timed "rclone down small" "$SMALL_BYTES" "$spid" "${rc[@]}" copy dav:small "$R/out-small"
  same "$DATA/big.bin" "$R/out-big/big.bin" "rclone big"
  same "$DATA/small" "$R/out-small" "rclone small"
  kill "$spid"; wait "$spid" 2>/dev/null || true
  rm -rf "$R"
}

WANT="${TOOLS:-labvault restic rclone}"; TOOLS=(); for t in $WANT; do TOOLS+=("tool_$t"); done
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  for ((i = 0; i < ${#TOOLS[@]}; i++)); do
    "${TOOLS[$(( (i + ROUND - 1) % ${#TOOLS[@]} ))]}"
  done
done

# ---------------------------------------------------------------- idle sync of a large vault
IDLE="$WORK/idle.tsv"; : > "$IDLE"
if (( IDLE_N > 0 )); then
  log "idle sync: a vault of $IDLE_N items, synced, then synced again with nothing changed"
  R="$WORK/run/idle"; rm -rf "$R"; mkdir -p "$R/files"
  python3 - "$R/files" "$IDLE_N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"n{i:06d}.txt"), "w") as f:
        f.write(f"reading {i}\n")
PY
  start_tenant "$R/server"
  export LABVAULT_KEYRING_SERVICE="labvault-sync-bench-idle"; KR=$LABVAULT_KEYRING_SERVICE
  device "$R/a"
  lvk --vault "$R/a" project create many > /dev/null
  lvk --vault "$R/a" import --project many --area uploads "$R/files" > /dev/null
  t0=$(date +%s.%N); lvk --vault "$R/a" sync > /dev/null; t1=$(date +%s.%N)
  echo -e "first sync of $IDLE_N items (s)\t$(python3 -c "print(f'{$t1-$t0:.1f}')")" >> "$IDLE"
  for i in 1 2 3 4 5; do
    t0=$(date +%s.%N)
    lvk --vault "$R/a" sync --json > "$R/pass.json"
    t1=$(date +%s.%N)
    python3 - "$t0" "$t1" "$R/pass.json" >> "$R/idle-runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[3]))
assert r["pulled"] == 0 and r["pushed"] == 0, r
print(f"{(float(sys.argv[2]) - float(sys.argv[1])) * 1000:.0f}\t{r['elapsed_ms']}")
PY
  done
  python3 - "$R/idle-runs" >> "$IDLE" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
print(f"idle sync, whole command (ms, median of 5)\t{statistics.median(int(r[0]) for r in rows):.0f}")
print(f"idle sync, the pass itself (ms, median of 5)\t{statistics.median(int(r[1]) for r in rows):.0f}")
PY
  lvk --vault "$R/a" forget > /dev/null 2>&1 || true
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$R"
fi

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$IDLE" "$BIG_BYTES" "$SMALL_BYTES" "$SMALL_N" "$ROUNDS" "$(nproc)" <<'PY' | tee "$REPO/bench/sync-latest.txt"
import collections, statistics, sys
res, idle, big, small, n, rounds, cores = sys.argv[1:8]
rows = [l.split("\t") for l in open(res).read().split("\n") if l]
bad = [r[0] for r in rows if r[0].startswith("mismatch") or r[2] == "FAIL"]
by = collections.defaultdict(dict)
for name, rnd, secs, mbs, crss, srss in rows:
    if secs in ("FAIL", "-"):
        continue
    by[name][rnd] = (float(secs), float(mbs), int(crss), int(srss))
print(f"LabVault sync vs restic (rclone serve restic) and rclone copy (rclone serve webdav), loopback TLS;"
      f" {int(big) >> 20} MiB file, {n} files ({int(small) / 1e6:.0f} MB); {rounds} round(s), medians; {cores} cores")
print()
print(f"{'workload':<14}{'tool':<10}{'s':>8}{'MB/s':>8}{'client MiB':>12}{'server MiB':>12}{'LabVault / peer':>17}")
for work in ["up 1file", "up small", "down 1file", "down small"]:
    for tool in ["labvault", "restic", "rclone"]:
        d = by.get(f"{tool} {work}", {})
        if not d:
            continue
        med = lambda k: statistics.median(v[k] for v in d.values())
        ratio = ""
        if tool != "labvault":
            lv = by.get(f"labvault {work}", {})
            same = [lv[r][1] / d[r][1] for r in d if r in lv]
            if same:
                ratio = f"{statistics.median(same):.2f}x"
        print(f"{work:<14}{tool:<10}{med(0):>8.2f}{med(1):>8.1f}{max(v[2] for v in d.values()):>12}{max(v[3] for v in d.values()):>12}{ratio:>17}")
print()
for l in open(idle).read().split("\n"):
    if l:
        k, v = l.split("\t")
        print(f"{k:<48}{v:>8}")
print("(memory: the peak RSS over the rounds; ratio: median of the same-round throughput ratios)")
if bad:
    print("PROBLEMS:", ", ".join(bad))
    sys.exit(1)
PY
