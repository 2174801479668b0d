#!/usr/bin/env bash
# How the desktop app answers while it imports (issue "One vault, many callers"): p50/p99 of
# items_page, a preview range read of another item, audit_page and vault_status on an idle
# vault and during the import of a large file, through the code the Tauri commands run (no
# window); and the import's time alone and under those calls.
#
# Usage:  bench/concurrency.sh                 (4 GiB import; ~3 min and 9 GiB of disk)
#         IMPORT_MIB=512 bench/concurrency.sh  (quicker)
# Env:    WORK  work directory (default <target dir>/concurrency-bench; removed unless KEEP=1)
# Not part of the test suite (docs/benchmarks.md).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
export WORK="${WORK:-$TARGET/concurrency-bench}"
cd "$REPO"
echo "[bench] building the benchmark (release)" >&2
cargo build --release -q --example concurrency_bench
"$TARGET/release/examples/concurrency_bench" | tee "$REPO/bench/concurrency-latest.txt"
