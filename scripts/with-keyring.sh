#!/usr/bin/env bash
# Runs a command on a private D-Bus session bus with an unlocked throwaway gnome-keyring (Secret
# Service), so keyring tests and benchmarks talk to a real keyring and never to the user's own.
# The daemon keeps its keyrings in a throwaway directory: a login keyring left in ~/.local/share
# by anything else (with another password) would otherwise stay locked and fail the tests.
#   scripts/with-keyring.sh CMD [ARGS...]
set -euo pipefail
keyrings="$(mktemp -d)"
status=0
dbus-run-session -- bash -c '
  set -euo pipefail
  echo -n "labvault-throwaway-keyring" |
    XDG_DATA_HOME="$1" gnome-keyring-daemon --unlock --components=secrets >/dev/null
  shift
  exec "$@"' with-keyring "$keyrings" "$@" || status=$?
rm -rf "$keyrings"
exit "$status"
