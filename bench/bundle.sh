#!/usr/bin/env bash
# Full project export (issue 19's benchmark): `labvault export-project` of a project of
# 10,000 files / 1 GiB, as a directory bundle and as one .tar, against `tar cf` of the same
# plaintext onto the same disk, in the same run. Target: the bundle at least as fast as tar
# (ratio = tar seconds / labvault seconds, >= 1.0 meets it). Every run ends with `sync`, and
# the bundle is checked with `labvault verify-bundle` outside the timing.
#
# Usage:  bench/bundle.sh                       (~6 min with the release build)
#         FILES=2000 TOTAL_MIB=200 bench/bundle.sh   (quicker)
# Env:    BENCH_DIR (default <target>/labvault-bench-bundle, removed unless KEEP=1), ROUNDS (3).
# Output: a table on stdout and bench/bundle-latest.txt. Not part of the test suite.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WORK="${BENCH_DIR:-$TARGET/labvault-bench-bundle}"
FILES="${FILES:-10000}"
TOTAL_MIB="${TOTAL_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
export LABVAULT_PASSPHRASE="bench passphrase (not secret)"
export LABVAULT_NEW_PASSPHRASE="$LABVAULT_PASSPHRASE"
export NO_COLOR=1
log() { echo "[bench] $*" >&2; }

cd "$REPO"
log "building the labvault CLI (release)"
cargo build --release -q -p labvault-cli
LV=("$TARGET/release/labvault" --no-keyring --vault "$WORK/vault")
rm -rf "$WORK"; mkdir -p "$WORK/data" "$WORK/out"
log "generating $FILES files, $TOTAL_MIB MiB in all"
python3 - "$WORK/data" "$FILES" "$TOTAL_MIB" <<'PY'
import os, random, sys
root, n, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20
rng = random.Random(19)
weights = [rng.uniform(0.2, 1.8) for _ in range(n)]
scale = total / sum(weights)
for i, w in enumerate(weights):
    d = os.path.join(root, f"run-{i // 250:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"frame-{i:05d}.dat"), "wb") as f:
        f.write(os.urandom(max(1, int(w * scale))))
PY
BYTES=$(find "$WORK/data" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
log "importing into a fresh vault (not timed)"
"${LV[@]}" init --json > /dev/null
"${LV[@]}" project create bench > /dev/null
"${LV[@]}" import --project bench "$WORK/data" > /dev/null
sync

RESULTS="$WORK/results.tsv"; : > "$RESULTS"
timed() { # NAME ROUND CMD...
  local name=$1 round=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null
  sync
  t1=$(date +%s.%N)
  echo -e "$name\t$round\t$(python3 -c "print(f'{$t1-$t0:.3f}')")" >> "$RESULTS"
  log "round $round: $name $(tail -1 "$RESULTS" | cut -f3) s"
}
for r in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/out"; mkdir -p "$WORK/out"; sync
  # Rotate the order each round: this VM's speed drifts within minutes.
  order=(tar dir tarball); for _ in $(seq 2 "$r"); do order=("${order[@]:1}" "${order[0]}"); done
  for t in "${order[@]}"; do
    case $t in
      tar) timed "tar cf (peer)" "$r" tar -C "$WORK/data" -cf "$WORK/out/peer.tar" . ;;
      dir) timed "labvault bundle (directory)" "$r" "${LV[@]}" export-project bench "$WORK/out/bundle" ;;
      tarball) timed "labvault bundle (.tar)" "$r" "${LV[@]}" export-project bench "$WORK/out/bundle.tar" ;;
    esac
  done
  "${LV[@]}" verify-bundle "$WORK/out/bundle" > /dev/null
  "${LV[@]}" verify-bundle "$WORK/out/bundle.tar" > /dev/null
done

python3 - "$RESULTS" "$BYTES" "$FILES" <<'PY' | tee "$REPO/bench/bundle-latest.txt"
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
bytes_, files = int(sys.argv[2]), int(sys.argv[3])
by = collections.defaultdict(dict)
for name, rnd, secs in rows:
    by[name][rnd] = float(secs)
peer = by["tar cf (peer)"]
print(f"Project bundle export: {files} files, {bytes_/2**20:.0f} MiB, median of {len(peer)} rounds")
print(f"{'':30} {'seconds':>8} {'MB/s':>8} {'vs tar':>8}")
for name in ["tar cf (peer)", "labvault bundle (directory)", "labvault bundle (.tar)"]:
    secs = statistics.median(by[name].values())
    ratio = statistics.median(peer[r] / by[name][r] for r in by[name])
    print(f"{name:30} {secs:8.2f} {bytes_/secs/1e6:8.1f} {ratio:7.2f}x")
PY
[ -n "${KEEP:-}" ] || rm -rf "$WORK"
