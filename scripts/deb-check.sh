#!/usr/bin/env bash
# Builds the Debian package, installs it with apt-get on this machine, starts the *installed*
# app under Xvfb with a fresh home (no vault yet), and checks that its window opens on the
# first-run screen: the LabVault window exists, the process is still running after 10 s, and a
# screenshot is written to docs/screenshots/00-deb-first-run.png. Then it removes the package
# again (unless KEEP=1).
#
# Usage:  scripts/deb-check.sh      (as root or with sudo; ~10 min on 2 cores, mostly the release build)
# Not part of the test command (too slow for CI); README says how to run it.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
START=$(date +%s)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

say() { echo "[deb-check] $*" >&2; }

# What this script needs beyond scripts/setup.sh: xwininfo (x11-utils) and ImageMagick's import.
missing=()
command -v xwininfo >/dev/null || missing+=(x11-utils)
command -v import >/dev/null || missing+=(imagemagick)
command -v Xvfb >/dev/null || missing+=(xvfb)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}"
fi
bash scripts/setup.sh

say "building the .deb (release)"
npm --prefix ui run tauri build -- --bundles deb >&2
DEB="$(ls -t target/release/bundle/deb/*.deb | head -1)"
say "built $DEB ($(du -h "$DEB" | cut -f1))"
dpkg-deb -c "$DEB" | awk '{print $6}' | grep -E '^(\./)?usr/(bin|share/applications|share/icons)/' >&2 || true

PKG="$(dpkg-deb -f "$DEB" Package)"
say "installing $PKG with apt-get"
$SUDO apt-get install -y -qq "./$DEB" >&2
BIN="$(dpkg -L "$PKG" | grep '^/usr/bin/' | head -1)"
[ -x "$BIN" ] || { say "no binary installed under /usr/bin"; exit 1; }
grep -q "Exec=" "$(dpkg -L "$PKG" | grep '\.desktop$' | head -1)" || { say "no desktop entry"; exit 1; }

WORK="$(mktemp -d)"
cleanup() {
  [ -n "${APP_PID:-}" ] && kill "$APP_PID" 2>/dev/null || true
  [ -n "${BIN:-}" ] && pkill -f "^$BIN" 2>/dev/null || true
  [ -n "${XVFB_PID:-}" ] && kill "$XVFB_PID" 2>/dev/null || true
  rm -rf "$WORK"
  if [ -z "${KEEP:-}" ]; then $SUDO apt-get remove -y -qq "$PKG" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

DISPLAY_NUM=$(( 90 + RANDOM % 100 ))
Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp &
XVFB_PID=$!
export DISPLAY=":$DISPLAY_NUM"
sleep 1

say "starting $BIN with a fresh home"
# A private D-Bus session with a throwaway keyring, as the tests use; software rendering (no GPU).
HOME="$WORK/home" XDG_DATA_HOME="$WORK/home/.local/share" XDG_CONFIG_HOME="$WORK/home/.config" \
  WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1 \
  bash scripts/with-keyring.sh "$BIN" >"$WORK/app.log" 2>&1 &
APP_PID=$!

opened=""
for _ in $(seq 1 60); do
  if xwininfo -root -tree 2>/dev/null | grep -q '"LabVault"'; then opened=1; break; fi
  sleep 0.5
done
[ -n "$opened" ] || { say "no LabVault window within 30 s"; cat "$WORK/app.log" >&2; exit 1; }
say "the LabVault window is open"
sleep 10
kill -0 "$APP_PID" 2>/dev/null || { say "the app exited"; cat "$WORK/app.log" >&2; exit 1; }
[ ! -e "$WORK/home/.local/share/labvault/vault/vault.key" ] || { say "a vault appeared without being created"; exit 1; }
import -window root docs/screenshots/00-deb-first-run.png
say "screenshot: docs/screenshots/00-deb-first-run.png"
say "passed in $(( $(date +%s) - START )) s"
