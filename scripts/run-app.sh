#!/usr/bin/env bash
# Sets up whatever is missing, builds the UI and the app, and opens LabVault with its embedded
# UI and default settings (vault in $XDG_DATA_HOME/labvault/vault or ~/.local/share/...).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
npm --prefix ui run build
exec cargo run --features custom-protocol --bin labvault-app -- "$@"
