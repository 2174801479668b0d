#!/usr/bin/env bash
# How the desktop app answers during a large sync (issue 16's benchmark): p50/p99 of
# items_page, a preview range read, audit_page and vault_status on an idle vault and while
# "Sync now" uploads a large project to a real tenant server (in-process, TLS on loopback),
# through the code the Tauri commands run (no window). Target: p99 under 100 ms.
#
# Usage:  bench/sync-busy.sh                              (2 GiB + 10,000 files; ~5 min, 7 GiB of disk)
#         BIG_MIB=512 SMALL_N=2000 bench/sync-busy.sh      (quicker)
# Env:    WORK  work directory (default <target dir>/sync-busy-bench; removed unless KEEP=1)
# Not part of the test suite (docs/benchmarks.md).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
export WORK="${WORK:-$TARGET/sync-busy-bench}"
cd "$REPO"
echo "[bench] building the benchmark (release)" >&2
cargo build --release -q --example sync_busy_bench
"$TARGET/release/examples/sync_busy_bench" | tee "$REPO/bench/sync-busy-latest.txt"
