#!/usr/bin/env bash
# How fast the Team screen's data arrives on a large lab (issue 16's benchmark): a real tenant
# server with 500 members x 200 projects (and 2,000 per-project roles), the app's `team_view`
# body timed, plus the tenant's access review alone for comparison. Target: under 1 s.
#
# Usage:  bench/team.sh                          (~2 min with the build)
#         MEMBERS=100 PROJECTS=50 bench/team.sh  (quicker)
# Not part of the test suite (docs/benchmarks.md).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
cd "$REPO"
echo "[bench] building the benchmark (release)" >&2
cargo build --release -q --example team_bench
"$TARGET/release/examples/team_bench" | tee "$REPO/bench/team-latest.txt"
