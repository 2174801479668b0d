#!/usr/bin/env bash
# Desktop app benchmark (NOT a test; run by hand, release builds only):
#   1. launch -> unlocked workspace showing the first rows of a 100,000-item project, unlocked
#      from the OS keyring (the vault key comes from the keyring, so no KDF runs);
#   2. memory of the running app with that workspace open: PSS and RSS of labvault-app plus its
#      WebKitWebProcess / WebKitNetworkProcess children (from /proc/PID/smaps_rollup);
#   3. import throughput of one 1 GiB file through the app (file dialog answered by the e2e-hooks
#      build) against `labvault import` of the same file into the same vault (IMPORT_RUNS=3 each,
#      medians compared; CPU seconds per process are printed for each app import).
#
# Build once (release; the app binary needs custom-protocol for the bundled UI and e2e-hooks so
# the import dialog can be answered without a human):
#   npm --prefix ui run build
#   cargo build --release -p labvault-cli
#   cargo build --release --features labvault-app/custom-protocol,labvault-app/e2e-hooks --bin labvault-app
# Run:   bench/app-launch.sh            (N_ITEMS=100000 BIG_MIB=1024 by default)
#        N_ITEMS=5000 BIG_MIB=128 bench/app-launch.sh   # quick smoke run
#        SKIP_IMPORT=1 ...   # launch and memory only
#        BENCH_WORK=/dev/shm/lv-app-bench bench/app-launch.sh   # keep the generated vault there;
#            a re-run with the same BENCH_WORK (and N_ITEMS, BIG_MIB) skips the setup
#        LABVAULT_LOG=labvault_core=debug,labvault_app=debug ...    # step timings in the app log
#            ($BENCH_WORK/state/.../logs or the path printed at the end when BENCH_WORK is set)
# Needs: Xvfb, tauri-driver, WebKitWebDriver, dbus-run-session, gnome-keyring, curl, jq, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
APP="${LABVAULT_APP_BIN:-$TARGET/release/labvault-app}"
CLI="${LABVAULT_CLI_BIN:-$TARGET/release/labvault}"
N_ITEMS="${N_ITEMS:-100000}"
BIG_MIB="${BIG_MIB:-1024}"
RUNS="${RUNS:-3}"   # launch measurements (fresh app process each)

# A private D-Bus session with an unlocked throwaway gnome-keyring (as scripts/test-all.sh does).
if [[ -z "${LV_BENCH_IN_DBUS:-}" ]]; then
  exec bash "$ROOT/scripts/with-keyring.sh" env LV_BENCH_IN_DBUS=1 bash "${BASH_SOURCE[0]}" "$@"
fi

for f in "$APP" "$CLI"; do
  [[ -x "$f" ]] || { echo "missing $f (see the build commands at the top of $0)" >&2; exit 2; }
done
for t in Xvfb tauri-driver curl jq python3; do
  command -v "$t" >/dev/null || [[ -x "$HOME/.cargo/bin/$t" ]] ||
    { echo "missing tool: $t" >&2; exit 2; }
done
export PATH="$HOME/.cargo/bin:$PATH"

# tmpfs by default: the 100,000-file setup import is otherwise bound by fsync latency on a busy
# disk (minutes), and both 1 GiB imports then measure the app and CLI, not the disk.
# BENCH_DIR=/var/tmp measures with a real disk instead (needs ~3 GiB either way).
if [[ -n "${BENCH_WORK:-}" ]]; then
  WORK="$BENCH_WORK"; mkdir -p "$WORK"; KEEP=1
else
  WORK="$(mktemp -d "${BENCH_DIR:-/dev/shm}/lv-app-bench.XXXXXX")"; KEEP=
fi
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n "$KEEP" ]]; then
    # The vault is kept for the next run (the big file is imported again as a new version).
    echo "kept $WORK (logs: $(find "$WORK" -name 'labvault*.log' 2>/dev/null | head -1))"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

BENCH_HOME="$WORK/home"
VAULT="$BENCH_HOME/.local/share/labvault/vault"
mkdir -p "$BENCH_HOME"
export LABVAULT_KEYRING_SERVICE="labvault-bench"
export LABVAULT_KDF=floor
PASS="app benchmark passphrase 1"
lv() { HOME="$BENCH_HOME" LABVAULT_PASSPHRASE="$PASS" "$CLI" --vault "$VAULT" "$@"; }
now_ms() { date +%s%3N; }

SETUP_MARK="$WORK/setup-done-$N_ITEMS-$BIG_MIB"
if [[ -e "$SETUP_MARK" ]]; then
  echo "== setup: reusing the vault in $WORK ($N_ITEMS items, $BIG_MIB MiB file)"
  BIG_BYTES=$(stat -c %s "$WORK/big.bin")
  lv remember 2>/dev/null   # the throwaway keyring of this D-Bus session is new
  # Erase the previous run's 1 GiB imports: a kept vault would otherwise grow by 2 GiB per run
  # (on tmpfs, that is memory).
  for p in cli-import app-import; do
    lv purge -y --project "$p" --area uploads big.bin >/dev/null 2>&1 || true
  done
else
  echo "== setup: vault with $N_ITEMS items (CLI import of tiny files), $BIG_MIB MiB file"
  HOME="$BENCH_HOME" LABVAULT_NEW_PASSPHRASE="$PASS" "$CLI" --vault "$VAULT" init </dev/null >/dev/null
  lv project create bench >/dev/null
  lv project create cli-import >/dev/null
  lv project create app-import >/dev/null
  python3 - "$WORK/small" "$N_ITEMS" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"run{i // 1000:03d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"sample-{i:06d}.csv"), "w") as f:
        f.write(f"sample,value\n{i},{i * 0.5}\n")
EOF
  t0=$(now_ms)
  lv import --project bench --area uploads "$WORK/small" >/dev/null 2>&1
  echo "   CLI import of $N_ITEMS tiny files: $(( $(now_ms) - t0 )) ms"
  rm -rf "$WORK/small"
  lv remember 2>/dev/null
  head -c $(( BIG_MIB * 1024 * 1024 )) /dev/urandom > "$WORK/big.bin"
  BIG_BYTES=$(stat -c %s "$WORK/big.bin")
  touch "$SETUP_MARK"
fi

SKIP_IMPORT="${SKIP_IMPORT:-}"   # 1 = launch and memory only (for profiling the launch)
IMPORT_RUNS="${IMPORT_RUNS:-3}"   # 1 GiB imports per side; the medians are compared
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
CLI_IMPORT_MS=1
[[ -n "$SKIP_IMPORT" ]] || {
echo "== CLI import of the $BIG_MIB MiB file, $IMPORT_RUNS runs (each adds a version)"
TIMEFORMAT='%U %S'
CLI_RESULTS=()
for run in $(seq "$IMPORT_RUNS"); do
  cat "$WORK/big.bin" > /dev/null   # same page-cache state for every import
  t0=$(now_ms); lv project ls >/dev/null; CLI_UNLOCK_MS=$(( $(now_ms) - t0 ))
  t0=$(now_ms); { time lv import --project cli-import --area uploads "$WORK/big.bin" >/dev/null 2>&1; } 2>"$WORK/cli-cpu"
  CLI_TOTAL_MS=$(( $(now_ms) - t0 ))
  CLI_RESULTS+=("$(( CLI_TOTAL_MS - CLI_UNLOCK_MS ))")
  echo "   run $run: total ${CLI_TOTAL_MS} ms, minus unlock+list ${CLI_UNLOCK_MS} ms = ${CLI_RESULTS[-1]} ms;" \
       "CPU (incl. unlock) $(awk '{printf "%.2f s user + %.2f s system", $1, $2}' "$WORK/cli-cpu")"
done
CLI_IMPORT_MS=$(median "${CLI_RESULTS[@]}")
}

# The app's unlock screen offers the keyring when its settings say this device remembers the
# vault (the CLI's `remember` stored the key; the app's own checkbox would also set this hint).
mkdir -p "$WORK/config/org.labvault.desktop"
echo '{"rememberedOnDevice": true}' > "$WORK/config/org.labvault.desktop/settings.json"

# ---- X display and WebDriver
exec 3> "$WORK/display"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 2>/dev/null &
PIDS+=($!)
exec 3>&-
for _ in $(seq 100); do [[ -s "$WORK/display" ]] && break; sleep 0.1; done
DISPLAY_NUM=":$(head -n1 "$WORK/display")"

# A desktop login session already runs the accessibility bus and the desktop portal when an app
# starts; this private D-Bus session would start them on the app's first call instead (with the
# portal's GTK backend failing for want of a display), charging ~0.4 s to the first launch only.
# COLD_SESSION=1 skips this and measures that first launch as it is.
if [[ -z "${COLD_SESSION:-}" ]]; then
  dbus-update-activation-environment DISPLAY="$DISPLAY_NUM" 2>/dev/null || true
  for svc in org.a11y.Bus org.freedesktop.portal.Desktop; do
    gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
      --method org.freedesktop.DBus.StartServiceByName "$svc" 0 >/dev/null 2>&1 || true
  done
  DISPLAY="$DISPLAY_NUM" gdbus call --session --dest org.freedesktop.portal.Desktop \
    --object-path /org/freedesktop/portal/desktop --method org.freedesktop.portal.Settings.Read \
    org.freedesktop.appearance color-scheme >/dev/null 2>&1 || true
  echo "== desktop session services started (accessibility bus, portal)"
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DISPLAY="$DISPLAY_NUM" HOME="$BENCH_HOME" \
  XDG_CONFIG_HOME="$WORK/config" XDG_CACHE_HOME="$WORK/cache" XDG_STATE_HOME="$WORK/state" \
  WEBKIT_DISABLE_DMABUF_RENDERER=1 LIBGL_ALWAYS_SOFTWARE=1 WEBKIT_DISABLE_COMPOSITING_MODE=1 \
  LABVAULT_E2E_PICK_IMPORT="$WORK/big.bin" \
  tauri-driver --port "$PORT" --native-port "$NPORT" --native-driver /usr/bin/WebKitWebDriver \
  >"$WORK/driver.log" 2>&1 &
DRIVER_PID=$!
PIDS+=("$DRIVER_PID")
for _ in $(seq 200); do curl -s "http://127.0.0.1:$NPORT/status" >/dev/null && break; sleep 0.1; done

wd() { curl -sS -X "$1" "http://127.0.0.1:$PORT$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }
js() { wd POST "/session/$SID/execute/sync" "$(jq -nc --arg s "$1" '{script:$s,args:[]}')" | jq -c '.value'; }
# Polls a condition every ${3:-0.1} s. Cheap on purpose: on 2 cores a poll loop running curl
# AND jq every 20 ms took 13% of the CPU away from the app it was timing. The timings come from
# in-page clocks (MutationObserver + Date.now/performance.now), so polling slower costs no
# precision.
wait_js() { # condition-js timeout-s [interval-s]
  local end=$(( $(date +%s) + $2 )) body
  body=$(jq -nc --arg s "return !!($1);" '{script:$s,args:[]}')
  until [[ "$(curl -sS -X POST "http://127.0.0.1:$PORT/session/$SID/execute/sync" \
              -H 'Content-Type: application/json' -d "$body")" == *'"value":true'* ]]; do
    (( $(date +%s) < end )) || { echo "timed out waiting for: $1" >&2; tail -50 "$WORK/driver.log" >&2; exit 1; }
    sleep "${3:-0.1}"
  done
}
# Records (in page, epoch ms) when the unlock screen's keyring button first exists.
SCREEN_JS='
if (window.__lvScreen === undefined) {
  window.__lvScreen = null;
  const seen = () => {
    if (!document.querySelector("[data-testid=\"unlock-keyring\"]")) return false;
    window.__lvScreen = Date.now();
    return true;
  };
  if (!seen()) {
    const obs = new MutationObserver(() => { if (seen()) obs.disconnect(); });
    obs.observe(document.documentElement, { subtree: true, childList: true, attributes: true });
  }
}
return null;'

launch() {
  local body
  body=$(jq -nc --arg app "$APP" '{capabilities:{alwaysMatch:{"tauri:options":{application:$app}}}}')
  for _ in $(seq 60); do
    SID=$(wd POST /session "$body" 2>/dev/null | jq -r '.value.sessionId // empty') && [[ -n "$SID" ]] && return
    sleep 0.5
  done
  echo "could not start a WebDriver session" >&2; tail -50 "$WORK/driver.log" >&2; exit 1
}
descendants() { # pid -> all descendant pids
  local kids
  kids=$(cat /proc/"$1"/task/*/children 2>/dev/null || true)
  for k in $kids; do echo "$k"; descendants "$k"; done
}
memory() { # prints per-process PSS/RSS (MiB) of the app and its WebKit processes, then totals
  local pss_total=0 rss_total=0 p name pss rss
  for p in $(descendants "$DRIVER_PID"); do
    name=$(cat /proc/"$p"/comm 2>/dev/null || true)
    case "$name" in labvault-app|WebKitWebProces*|WebKitNetworkPr*) ;; *) continue ;; esac
    pss=$(awk '/^Pss:/{print $2}' /proc/"$p"/smaps_rollup); rss=$(awk '/^Rss:/{print $2}' /proc/"$p"/smaps_rollup)
    printf '   %-22s pid %-7s PSS %7.1f MiB  RSS %7.1f MiB\n' "$name" "$p" "$(bc -l <<<"$pss/1024")" "$(bc -l <<<"$rss/1024")"
    pss_total=$(( pss_total + pss )); rss_total=$(( rss_total + rss ))
  done
  printf '   %-22s             PSS %7.1f MiB  RSS %7.1f MiB\n' TOTAL "$(bc -l <<<"$pss_total/1024")" "$(bc -l <<<"$rss_total/1024")"
}

# In-page timer: from the keyring-unlock click to the first rendered item row of project "bench"
# (selecting the project if the workspace does not open on it).
UNLOCK_JS='
window.__lvRows = null;
const t0 = performance.now();
let clicked = false;
const check = () => {
  if (document.querySelector("[data-testid=\"item-row\"]")) {
    if (window.__lvRows === null) window.__lvRows = performance.now() - t0;
    return true;
  }
  const p = document.querySelector("[data-testid=\"project-bench\"]");
  if (p && !clicked && document.querySelector("[data-testid=\"screen-workspace\"]")) { clicked = true; p.click(); }
  return false;
};
const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
obs.observe(document.documentElement, { subtree: true, childList: true, attributes: true });
document.querySelector("[data-testid=\"unlock-keyring\"]").click();
return null;'

echo "== launch -> workspace with $N_ITEMS items (keyring unlock, no KDF), $RUNS runs"
LAUNCH_RESULTS=()
for run in $(seq "$RUNS"); do
  t0=$(now_ms)
  launch
  js "$SCREEN_JS" >/dev/null
  wait_js 'window.__lvScreen' 60
  t_screen=$(( $(js 'return window.__lvScreen;') - t0 ))
  js "$UNLOCK_JS" >/dev/null
  wait_js 'window.__lvRows !== null' 120
  unlock_ms=$(js 'return Math.round(window.__lvRows);')
  rows=$(js 'return document.querySelectorAll("[data-testid=\"item-row\"]").length;')
  echo "   run $run: launch -> unlock screen ${t_screen} ms; keyring unlock -> first rows ${unlock_ms} ms (total $(( t_screen + unlock_ms )) ms, $rows rows rendered)"
  LAUNCH_RESULTS+=("$(( t_screen + unlock_ms ))")
  if [[ "$run" != "$RUNS" ]]; then wd DELETE "/session/$SID" >/dev/null; sleep 1; fi
done

cpu_ticks() { # "name=ticks ..." (user+system clock ticks) of the app, its WebKit processes and Xvfb
  local p name
  for p in $(descendants "$DRIVER_PID") "${PIDS[0]}"; do
    name=$(cat /proc/"$p"/comm 2>/dev/null || true)
    case "$name" in labvault-app|WebKitWebProces*|WebKitNetworkPr*|Xvfb) ;; *) continue ;; esac
    printf '%s=%s ' "$name" "$(awk '{print $14 + $15}' /proc/"$p"/stat)"
  done
}
cpu_delta() { # before after -> CPU seconds per process between the two samples
  python3 - "$1" "$2" "$(getconf CLK_TCK)" <<'EOF'
import sys
a = dict(kv.split("=") for kv in sys.argv[1].split())
b = dict(kv.split("=") for kv in sys.argv[2].split())
hz = int(sys.argv[3])
print("   CPU: " + ", ".join(f"{k} {(int(v) - int(a.get(k, 0))) / hz:.2f} s" for k, v in b.items()))
EOF
}

echo "== memory with the $N_ITEMS-item workspace open (after 3 s idle)"
sleep 3
memory

APP_IMPORT_MS=1
if [[ -z "$SKIP_IMPORT" ]]; then
echo "== app import of the $BIG_MIB MiB file (file dialog answered by e2e-hooks)"
js 'document.querySelector("[data-testid=\"project-app-import\"]").click(); return null;' >/dev/null
wait_js 'document.querySelector("[data-testid=\"area-tab-uploads\"]")' 20
js 'document.querySelector("[data-testid=\"area-tab-uploads\"]").click(); return null;' >/dev/null
sleep 1
CPU_BEFORE=$(cpu_ticks); sleep 2
echo "   baseline, 2 s idle before the imports:"; cpu_delta "$CPU_BEFORE" "$(cpu_ticks)"
APP_RESULTS=()
for run in $(seq "$IMPORT_RUNS"); do
  cat "$WORK/big.bin" > /dev/null
  CPU_BEFORE=$(cpu_ticks)
  js '
window.__lvImport = null;
const panel = () => document.querySelector("[data-testid=\"progress-panel\"]");
const before = panel() ? panel().getAttribute("data-op-id") : null;
const t0 = performance.now();
const obs = new MutationObserver(() => {
  const p = panel();
  if (p && p.getAttribute("data-op-id") !== before &&
      ["done", "failed", "cancelled"].includes(p.getAttribute("data-state"))) {
    window.__lvImport = { ms: performance.now() - t0, state: p.getAttribute("data-state") };
    obs.disconnect();
  }
});
obs.observe(document.documentElement, { subtree: true, childList: true, attributes: true });
document.querySelector("[data-testid=\"import-files\"]").click();
return null;' >/dev/null
  wait_js 'window.__lvImport !== null' 900 0.25
  APP_IMPORT=$(js 'return window.__lvImport;')
  [[ "$(jq -r .state <<<"$APP_IMPORT")" == done ]] || { echo "app import ended: $APP_IMPORT" >&2; exit 1; }
  APP_RESULTS+=("$(jq -r '.ms | round' <<<"$APP_IMPORT")")
  echo "   run $run: ${APP_RESULTS[-1]} ms; $(cpu_delta "$CPU_BEFORE" "$(cpu_ticks)" | sed 's/^ *//')"
  sleep 1
done
APP_IMPORT_MS=$(median "${APP_RESULTS[@]}")
echo "== memory after the import"
memory
fi
wd DELETE "/session/$SID" >/dev/null

mbs() { bc -l <<<"scale=1; $BIG_BYTES / 1000 / $1"; }   # bytes per ms / 1000 = MB/s
echo
echo "RESULTS ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  launch -> workspace with first rows (ms, per run): ${LAUNCH_RESULTS[*]}  (target < 1500)"
[[ -n "$SKIP_IMPORT" ]] ||
echo "  import $BIG_MIB MiB, median of $IMPORT_RUNS (app ${APP_RESULTS[*]} ms; CLI ${CLI_RESULTS[*]} ms):"
[[ -n "$SKIP_IMPORT" ]] ||
echo "  app ${APP_IMPORT_MS} ms = $(mbs "$APP_IMPORT_MS") MB/s;" \
     "CLI ${CLI_IMPORT_MS} ms = $(mbs "$CLI_IMPORT_MS") MB/s;" \
     "app/CLI throughput $(bc -l <<<"scale=2; $CLI_IMPORT_MS / $APP_IMPORT_MS")  (target >= 0.90)"
