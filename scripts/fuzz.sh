#!/usr/bin/env bash
# Fuzzes LabVault's parsers with cargo-fuzz (libFuzzer): blob format, key file, recovery keys,
# names, membership entries, sync payloads, audit export files, the server's JSON bodies and
# access tokens. Seed corpora come from the committed test vectors and fixtures.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default: 5 s each, every target)
# README's test command runs it for a few seconds per target (a smoke run); a real campaign
# runs each for 30 minutes or more (docs/fuzzing.md). Findings land in fuzz/artifacts/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"
SECS="${1:-5}"
shift || true
TARGETS=("$@")
if (( ${#TARGETS[@]} == 0 )); then
  TARGETS=(blob_decrypt key_file recovery_key names membership_entry sync_payload audit_export server_json jwt bundle_verify)
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# cargo-fuzz needs unstable compiler flags (sanitizer, coverage); the stable toolchain allows
# them with RUSTC_BOOTSTRAP, so no second toolchain is needed.
export RUSTC_BOOTSTRAP=1
# Known false positives of the leak check (each explained in the file).
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
python3 "$ROOT/scripts/fuzz-seeds.py" "$ROOT" "$ROOT/fuzz/corpus"
cargo fuzz build -O
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${SECS}s"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::new_units_added|ERROR|panicked|SUMMARY" || true
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/leak-*" >/dev/null; then
    echo "FUZZ: $t found a crash: $(ls artifacts/$t)" >&2
    exit 1
  fi
done
echo "FUZZ: ${#TARGETS[@]} targets, ${SECS}s each, no crash"
