#!/usr/bin/env bash
# Installs whatever is missing to build, run and test LabVault on Debian 12 (bookworm), then
# returns. Idempotent and quiet when everything is already there; run-app.sh and test-all.sh
# call it first. Options: --bench also installs the benchmark comparison tools.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19
RUST_TOOLCHAIN=1.95

# Build: Tauri 2 / WebKitGTK 4.1, OpenSSL for bundled SQLCipher, D-Bus for the Secret Service.
# Test: Xvfb + WebKitWebDriver for the end-to-end tests, gnome-keyring + dbus for keyring tests.
APT_PACKAGES=(
  build-essential pkg-config curl ca-certificates git file
  libwebkit2gtk-4.1-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
  libdbus-1-dev
  webkit2gtk-driver xvfb xauth imagemagick gnome-keyring dbus dbus-x11
  age softhsm2
)
BENCH_PACKAGES=(restic hyperfine openssl)

log() { printf '[setup] %s\n' "$*"; }

if [[ ${1:-} == "--bench" ]]; then
  APT_PACKAGES+=("${BENCH_PACKAGES[@]}")
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { log "not root and no sudo: install ${APT_PACKAGES[*]} yourself"; exit 1; }
  SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- system packages -------------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  apt_install "${missing[@]}"
else
  log "system packages: all present"
fi

# --- Rust ------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
# Debian's own cargo (1.63 on bookworm) is far too old for this workspace (rust-version 1.90):
# treat it like no Rust at all and install rustup's toolchain ahead of it on PATH.
rust_ok() {
  command -v cargo >/dev/null || return 1
  local v minor
  v=$(cargo --version | awk '{print $2}') || return 1
  minor=$(cut -d. -f2 <<<"$v")
  [[ ${v%%.*} -gt 1 || $minor -ge 90 ]]
}
if ! rust_ok && command -v rustup >/dev/null; then
  log "updating Rust to $RUST_TOOLCHAIN via rustup"
  rustup toolchain install "$RUST_TOOLCHAIN" --profile minimal -c rustfmt -c clippy --no-self-update
  rustup default "$RUST_TOOLCHAIN"
fi
if ! rust_ok; then
  log "installing Rust $RUST_TOOLCHAIN via rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
    sh -s -- -y --profile minimal --default-toolchain "$RUST_TOOLCHAIN" -c rustfmt -c clippy
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  log "adding rustfmt and clippy"
  rustup component add rustfmt clippy
fi
log "$(cargo --version)"

# --- Node (Vite 8 needs >= 20.19; Debian 12 ships 18, so use NodeSource's 22.x) ---------------
node_ok() {
  command -v node >/dev/null || return 1
  local v major minor
  v=$(node -p 'process.versions.node') || return 1
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  ((major > NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor >= NODE_MIN_MINOR)))
}
if ! node_ok; then
  log "installing Node.js 22 from NodeSource"
  curl -fsSL https://deb.nodesource.com/setup_22.x | "${SUDO[@]}" bash -
  APT_UPDATED=1
  apt_install nodejs
fi
log "node $(node --version), npm $(npm --version)"

# --- UI dependencies (exactly what package-lock.json says) -----------------------------------
if [[ ! -f "$ROOT/ui/node_modules/.package-lock.json" ||
      "$ROOT/ui/package-lock.json" -nt "$ROOT/ui/node_modules/.package-lock.json" ]]; then
  log "npm ci in ui/"
  npm ci --prefix "$ROOT/ui" --no-audit --no-fund
else
  log "ui/node_modules: up to date"
fi

# --- tauri-driver (WebDriver bridge for the end-to-end tests) --------------------------------
if ! command -v tauri-driver >/dev/null; then
  log "cargo install tauri-driver"
  cargo install tauri-driver --version '^2' --locked
fi
log "ready"
