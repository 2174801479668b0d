#!/usr/bin/env bash
# LabVault benchmark: import/export throughput of the `labvault` CLI vs `age` and
# `restic backup/restore`, on the same data and the same disk, in one run; plus the
# single-core `openssl speed -evp aes-256-gcm` ceiling and LabVault's raw chunk
# encryption throughput (per core and on all cores, aes-gcm and ring backends).
#
# Usage:  bench/run.sh            (1 GiB file + 10,000 files of 1-64 KiB; ~5-10 min)
#         BIG_MIB=256 SMALL_N=2000 bench/run.sh   (quicker, smaller)
# Env:    BENCH_DIR   work directory (default: <target dir>/labvault-bench; removed at the end
#                     unless KEEP=1). All tools read and write there: same disk.
#         ROUNDS      rounds (default 3). Each round runs every tool once, in a rotated order;
#                     the table shows medians, and each ratio is the median of the same-round
#                     ratios (this VM's speed drifts by up to 40 % within minutes: one run per
#                     tool, one after the other, compared different minutes).
#         NO_RING=1   skip the extra LabVault build with the ring AES-GCM backend.
#         RAW_MIB     MiB processed by the raw chunk-throughput example (default 256).
#         BENCH_PROFILE=dev  smoke-test the script with debug binaries (numbers meaningless;
#                     use with small BIG_MIB/SMALL_N/RAW_MIB).
# Output: a table on stdout, and bench/results-latest.txt (not committed).
# Not part of the test suite (docs/benchmarks.md).
set -euo pipefail

# The `labvault-remembered` column unlocks from the OS keyring ("remember on this device"): run
# everything on a private D-Bus session with a throwaway unlocked gnome-keyring, as the tests do.
# Without dbus-run-session / gnome-keyring-daemon that column is skipped.
if [[ -z "${LV_BENCH_IN_DBUS:-}" ]] && command -v dbus-run-session >/dev/null \
   && command -v gnome-keyring-daemon >/dev/null; then
  exec bash "$(dirname "$0")/../scripts/with-keyring.sh" env LV_BENCH_IN_DBUS=1 bash "$0" "$@"
fi
export LABVAULT_KEYRING_SERVICE="labvault-bench"

REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WORK="${BENCH_DIR:-$TARGET/labvault-bench}"
BIG_MIB="${BIG_MIB:-1024}"
SMALL_N="${SMALL_N:-10000}"
export LABVAULT_PASSPHRASE="bench passphrase (not secret)"
export LABVAULT_NEW_PASSPHRASE="$LABVAULT_PASSPHRASE"   # used by `init`
export RESTIC_PASSWORD="bench passphrase (not secret)"
export XDG_CACHE_HOME="$WORK/cache"   # restic cache inside the work dir
export NO_COLOR=1

need() { command -v "$1" >/dev/null || { echo "missing tool: $1" >&2; exit 2; }; }
for t in cargo age age-keygen restic openssl tar python3; do need "$t"; done

log() { echo "[bench] $*" >&2; }

# ---------------------------------------------------------------- build
cd "$REPO"
log "building labvault CLI and the chunk_throughput example (profile ${BENCH_PROFILE:-release})"
PROFILE="${BENCH_PROFILE:-release}"
OUTDIR="$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"
cargo build --profile "$PROFILE" -q -p labvault-cli
cargo build --profile "$PROFILE" -q -p labvault-crypto --example chunk_throughput
mkdir -p "$WORK/bin"
cp "$OUTDIR/labvault" "$WORK/bin/labvault"
cp "$OUTDIR/examples/chunk_throughput" "$WORK/bin/chunk_throughput"
if [ -z "${NO_RING:-}" ]; then
  log "building labvault CLI and example with the ring AES-256-GCM backend"
  if cargo build --profile "$PROFILE" -q -p labvault-cli -p labvault-crypto --features labvault-crypto/ring-backend \
     && cargo build --profile "$PROFILE" -q -p labvault-crypto --features ring-backend --example chunk_throughput; then
    cp "$OUTDIR/labvault" "$WORK/bin/labvault-ring"
    cp "$OUTDIR/examples/chunk_throughput" "$WORK/bin/chunk_throughput-ring"
  else
    log "ring-backend build failed; continuing without it"
  fi
fi

# ---------------------------------------------------------------- data
DATA="$WORK/data"
rm -rf "$DATA" "$WORK/run"; mkdir -p "$DATA/small" "$WORK/run"
log "generating ${BIG_MIB} MiB random file and ${SMALL_N} small files (1-64 KiB)"
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
sync
# Warm the page cache equally for every tool (each reads the same cached data).
cat "$DATA/big.bin" > /dev/null; tar -C "$DATA" -cf - small > /dev/null

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
ROUND=0
export BENCH_LOAD_START; BENCH_LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at the start of the measurements: $BENCH_LOAD_START"
# timed NAME BYTES CMD...: runs CMD then `sync` (LabVault fsyncs its blobs; the others are
# charged for flushing their output too), records MB/s (10^6 bytes/s of plaintext).
timed() {
  local name=$1 bytes=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > "$WORK/run/last.out" 2> "$WORK/run/last.err" || { log "FAILED: $name"; cat "$WORK/run/last.err" >&2; echo -e "$name\t$ROUND\tFAIL\tFAIL" >> "$RESULTS"; return 0; }
  sync
  t1=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]}\t{sys.argv[5]}\t{s:.3f}\t{int(sys.argv[4])/s/1e6:.1f}')" "$t0" "$t1" "$name" "$bytes" "$ROUND" >> "$RESULTS"
  log "round $ROUND: $(tail -1 "$RESULTS" | cut -f1,3,4)"
}

check_same() { # verify an export is byte-identical to the source (outside the timing)
  if ! diff -rq "$1" "$2" > /dev/null; then log "MISMATCH: $1 vs $2"; echo -e "mismatch:$3\t$ROUND\t-\t-" >> "$RESULTS"; fi
}

# ---------------------------------------------------------------- LabVault
run_labvault() { # $1 = binary, $2 = label, $3 = "remember" to unlock from the OS keyring
  local lv=$1 label=$2 V="$WORK/run/vault-$2"
  rm -rf "$V"
  "$lv" --vault "$V" init --json > /dev/null
  "$lv" --vault "$V" project create big > /dev/null
  "$lv" --vault "$V" project create small > /dev/null
  local use=("$lv")
  if [ "${3:-}" = remember ]; then
    "$lv" --vault "$V" remember > /dev/null
    # A supplied passphrase takes precedence over the keyring: the timed commands get none.
    use=(env -u LABVAULT_PASSPHRASE "$lv")
  fi
  # What every command pays to unlock (Argon2id as calibrated by init, or a keyring lookup for a
  # remembered vault), included in each figure.
  timed "$label unlock" 1 "${use[@]}" --vault "$V" project ls
  timed "$label import 1file" "$BIG_BYTES" "${use[@]}" --vault "$V" import --project big --area uploads "$DATA/big.bin"
  rm -rf "$WORK/run/out"; mkdir -p "$WORK/run/out"
  timed "$label export 1file" "$BIG_BYTES" "${use[@]}" --vault "$V" export --project big --area uploads "$WORK/run/out"
  check_same "$DATA/big.bin" "$(find "$WORK/run/out" -type f -name big.bin | head -1)" "$label big"
  rm -rf "$WORK/run/out"; mkdir -p "$WORK/run/out"
  timed "$label import small" "$SMALL_BYTES" "${use[@]}" --vault "$V" import --project small --area uploads "$DATA/small"
  timed "$label export small" "$SMALL_BYTES" "${use[@]}" --vault "$V" export --project small --area uploads "$WORK/run/out"
  check_same "$DATA/small" "$(dirname "$(find "$WORK/run/out" -type d -name d000 | head -1)")" "$label small"
  [ "${3:-}" != remember ] || "$lv" --vault "$V" forget > /dev/null 2>&1 || true
  rm -rf "$WORK/run/out" "$V"
}
tool_labvault() { log "LabVault (aes-gcm backend)"; run_labvault "$WORK/bin/labvault" labvault; }
tool_labvault_remembered() {
  log "LabVault (aes-gcm backend), vault remembered on this device (OS keyring, no KDF)"
  run_labvault "$WORK/bin/labvault" labvault-remembered remember
}
tool_labvault_ring() { log "LabVault (ring backend)"; run_labvault "$WORK/bin/labvault-ring" labvault-ring; }

# ---------------------------------------------------------------- age
tool_age() {
  log "age"
  local A="$WORK/run/age" RCPT; rm -rf "$A"; mkdir -p "$A/out"
  age-keygen -o "$A/key.txt" 2> /dev/null
  RCPT=$(age-keygen -y "$A/key.txt")
  timed "age import 1file" "$BIG_BYTES" age -r "$RCPT" -o "$A/big.age" "$DATA/big.bin"
  timed "age export 1file" "$BIG_BYTES" age -d -i "$A/key.txt" -o "$A/out/big.bin" "$A/big.age"
  check_same "$DATA/big.bin" "$A/out/big.bin" "age big"; rm -f "$A/big.age" "$A/out/big.bin"
  timed "age import small" "$SMALL_BYTES" bash -c "tar -C '$DATA' -cf - small | age -r '$RCPT' -o '$A/small.tar.age'"
  timed "age export small" "$SMALL_BYTES" bash -c "age -d -i '$A/key.txt' '$A/small.tar.age' | tar -C '$A/out' -xf -"
  check_same "$DATA/small" "$A/out/small" "age small"; rm -rf "$A"
}

# ---------------------------------------------------------------- restic
tool_restic() {
  log "restic"
  local R="$WORK/run/restic"; rm -rf "$R"; mkdir -p "$R/out1" "$R/out2"
  restic -q init --repo "$R/repo1" > /dev/null
  restic -q init --repo "$R/repo2" > /dev/null
  timed "restic import 1file" "$BIG_BYTES" restic -q -r "$R/repo1" backup "$DATA/big.bin"
  timed "restic export 1file" "$BIG_BYTES" restic -q -r "$R/repo1" restore latest --target "$R/out1"
  check_same "$DATA/big.bin" "$R/out1$DATA/big.bin" "restic big"; rm -rf "$R/repo1" "$R/out1"
  timed "restic import small" "$SMALL_BYTES" restic -q -r "$R/repo2" backup "$DATA/small"
  timed "restic export small" "$SMALL_BYTES" restic -q -r "$R/repo2" restore latest --target "$R/out2"
  check_same "$DATA/small" "$R/out2$DATA/small" "restic small"; rm -rf "$R"
}

# ---------------------------------------------------------------- raw crypto
raw_crypto() { # one measurement of openssl's ceiling and LabVault's chunk crypto, tagged by round
  log "round $ROUND: openssl speed (single core, 1 MiB blocks) and LabVault chunk throughput"
  local ossl
  ossl=$(openssl speed -elapsed -seconds 3 -bytes 1048576 -evp aes-256-gcm 2>/dev/null | awk '/^AES-256-GCM/ {sub(/k$/, "", $2); print $2/1000}')
  {
    echo "openssl=$ossl"
    "$WORK/bin/chunk_throughput" "${RAW_MIB:-256}"
    if [ -x "$WORK/bin/chunk_throughput-ring" ]; then
      "$WORK/bin/chunk_throughput-ring" "${RAW_MIB:-256}" | sed -n 's/^blob_\(.*\)=/blob_ring_\1=/p'
    fi
  } | sed "s/^/$ROUND /" >> "$WORK/run/raw.txt"
}

# ---------------------------------------------------------------- rounds
: > "$WORK/run/raw.txt"
TOOLS=(tool_labvault)
[ -z "${LV_BENCH_IN_DBUS:-}" ] || TOOLS+=(tool_labvault_remembered)
[ ! -x "$WORK/bin/labvault-ring" ] || TOOLS+=(tool_labvault_ring)
TOOLS+=(tool_age tool_restic)
ROUNDS="${ROUNDS:-3}"
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
  # Rotate the order, so that no tool always runs first (cold) or right after another's sync.
  n=${#TOOLS[@]}; shift_by=$(( (ROUND - 1) % n ))
  for ((k = 0; k < n; k++)); do "${TOOLS[(k + shift_by) % n]}"; done
  raw_crypto
done

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$WORK/run/raw.txt" "$BIG_BYTES" "$SMALL_BYTES" "$SMALL_N" <<'PY' | tee "$REPO/bench/results-latest.txt"
import os, statistics, sys
from collections import defaultdict
res, raw = sys.argv[1], sys.argv[2]
big, small, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
secs = defaultdict(dict)   # name -> round -> seconds
bad = []
for line in open(res):
    name, rnd, s, _ = line.rstrip("\n").split("\t")
    if name.startswith("mismatch:"):
        bad.append(f"{name} (round {rnd})")
    elif s != "FAIL":
        secs[name][int(rnd)] = float(s)
rawv = defaultdict(dict)   # key -> round -> value
for line in open(raw):
    rnd, _, kv = line.strip().partition(" ")
    if "=" in kv:
        k, v = kv.split("=", 1)
        try: rawv[k][int(rnd)] = float(v)
        except ValueError: pass
med = lambda xs: statistics.median(xs) if xs else None
def cell(name, nbytes):
    m = med(list(secs[name].values()))
    return "n/a" if m is None else f"{nbytes / m / 1e6:.1f} ({m:.3f}s)"
def speedup(lv, other):
    """Median over rounds of other's time / LabVault's time in the same round (>1: LabVault faster)."""
    rs = [secs[other][k] / secs[lv][k] for k in secs[lv] if k in secs[other]]
    return (med(rs), rs)
def fmt(x): return "  n/a" if x is None else f"{x:5.2f}x"
tools = ["labvault", "labvault-remembered", "labvault-ring", "age", "restic"]
rounds = sorted({k for d in secs.values() for k in d})
print(f"Load average (1/5/15 min) at the start: {os.environ.get('BENCH_LOAD_START', '?')}; at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
print(f"Workloads: 1 file of {big/2**20:.0f} MiB; {n} files, {small/1e6:.1f} MB total (1-64 KiB each)")
print(f"{len(rounds)} rounds, every tool once per round in a rotated order. Cells: MB/s (10^6 bytes of plaintext")
print("per second, incl. sync) from the median time, median seconds in (); ratios: median of the same-round")
print("ratios, the other tool's time / LabVault's (> 1: LabVault faster)")
print()
print(f"{'operation':<15}" + "".join(f"{t:>22}" for t in tools) + f"{'lv/age':>9}{'lv/restic':>11}{'lvR/age':>9}{'lvR/restic':>11}")
per_round = []
for op, nbytes in [("import 1file", big), ("export 1file", big), ("import small", small), ("export small", small)]:
    row = f"{op:<15}" + "".join(f"{cell(f'{t} {op}', nbytes):>22}" for t in tools)
    for lv in ["labvault", "labvault-remembered"]:
        for other in ["age", "restic"]:
            m, rs = speedup(f"{lv} {op}", f"{other} {op}")
            row += f"{fmt(m):>{9 if other == 'age' else 11}}"
            if lv == "labvault-remembered" and other == "age" and op.startswith("import"):
                per_round.append(f"  lvR/age {op}, per round: " + " ".join(f"{x:.2f}x" for x in rs))
    print(row)
print("\n".join(per_round))
for t in ["labvault", "labvault-remembered", "labvault-ring"]:
    m = med(list(secs[f"{t} unlock"].values()))
    if m is not None:
        how = "from the OS keyring, no KDF" if t == "labvault-remembered" else "Argon2id, calibrated at init"
        print(f"{t}: unlocking ({how}) takes {m:.3f} s per command (median), included in every {t} figure above")
print()
def rmed(k): return med(list(rawv[k].values()))
print(f"openssl speed -evp aes-256-gcm (1 core, 1 MiB blocks): {rmed('openssl') or float('nan'):8.0f} MB/s (median of {len(rawv['openssl'])})")
for k in ["aesgcm_seal_1core", "aesgcm_seal_allcores", "ring_seal_1core", "ring_seal_allcores",
          "sha256_1core", "blob_encrypt_allcores", "blob_decrypt_allcores",
          "blob_ring_encrypt_allcores", "blob_ring_decrypt_allcores"]:
    if rawv[k]: print(f"  {k:<28} {rmed(k):8.0f} MB/s")
def rawratio(k):
    rs = [rawv[k][r] / rawv["openssl"][r] for r in rawv[k] if rawv["openssl"].get(r)]
    return med(rs), rs
for name, k in [("aes-gcm", "aesgcm_seal_1core"), ("ring", "ring_seal_1core")]:
    m, rs = rawratio(k)
    if m is not None:
        print(f"raw per-core / openssl, {name}: {m:.2f}x (rounds: {' '.join(f'{x:.2f}x' for x in rs)}; target >= 0.50x)")
print(f"cores = {int(rmed('cores') or 0)}")
if bad: print("EXPORT MISMATCHES:", ", ".join(bad))
PY

[ -n "${KEEP:-}" ] || rm -rf "$WORK/data" "$WORK/run" "$WORK/cache"
