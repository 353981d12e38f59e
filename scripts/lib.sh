# Shared by the scripts: the .venv with the Python tools, Debian's Chromium
# for the browser tests, free-port checks, a moto server on 127.0.0.1, and
# stopping on exit whatever a script started (and nothing else).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# What each requirements file holds, and roughly what installing it costs.
requirements_summary() {
  case "$(basename "$1")" in
    requirements-dev.txt) echo "moto, the AWS emulator, and its dependencies (about 40 MB to download; a minute or two)" ;;
    requirements-test.txt) echo "cfn-lint, aws-sam-cli, cargo-lambda with zig, standardwebhooks and schemathesis (about 140 MB to download, 550 MB installed; a few minutes)" ;;
    *) echo "the tools in $(basename "$1")" ;;
  esac
}

# Installs each requirements file given (relative to the repository root)
# into .venv, once per change of that file, with pip's progress shown.
ensure_venv() {
  local file stamp want
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the Python environment .venv"
    python3 -m venv "$VENV"
  fi
  for file in "$@"; do
    stamp="$VENV/.$(basename "$file").sha"
    want=$(sha256sum "$ROOT/$file" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
      log "installing $(requirements_summary "$file") into .venv from $file"
      "$VENV/bin/pip" install --disable-pip-version-check --progress-bar on -r "$ROOT/$file"
      echo "$want" > "$stamp"
    fi
  done
  export PATH="$VENV/bin:$PATH"
}

# Installs Chromium and ChromeDriver from Debian's packages (chromium,
# chromium-driver) when /usr/bin/chromium or /usr/bin/chromedriver is
# missing: the browser tests (tests/src/browser.rs) drive them, and fail
# without them. Installing needs root; fails, saying so, if it cannot.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/$(basename "$0"): the browser tests need Chromium and ChromeDriver (/usr/bin/chromium, /usr/bin/chromedriver)," >&2
    echo "  and installing them needs root: sudo apt-get install -y chromium chromium-driver" >&2
    return 1
  fi
  log "installing Chromium and ChromeDriver from Debian's packages (about 165 MB to download, 500 MB installed; a minute or two)"
  if ! apt-get update || ! DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; then
    echo "scripts/$(basename "$0"): apt-get could not install chromium and chromium-driver (see above);" >&2
    echo "  the browser tests need them: apt-get install -y chromium chromium-driver" >&2
    return 1
  fi
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "scripts/$(basename "$0"): apt-get installed chromium and chromium-driver, but /usr/bin/chromium or /usr/bin/chromedriver is still missing" >&2
    return 1
  fi
}

# Builds every binary and example of the workspace (jobline-local, the
# jobline CLI, the functions, webhook-samples) in the debug profile. Always
# the whole workspace with its examples: then Cargo resolves each
# dependency's features as `cargo test --workspace` does, and the scripts
# and the tests share one build of each. A `-p` build resolves features of
# its own (no tokio test-util, say) and compiles the AWS SDKs again: three
# such sets ran a CI disk out of space.
build_bins() {
  cargo build --quiet --workspace --bins --examples
}

# Cargo's target directory (CARGO_TARGET_DIR if set).
target_dir() {
  cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether 127.0.0.1:$1 is free to listen on (as a server would bind it).
port_is_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# Fails, saying how to choose another, unless port $1 is free. $2 names the
# variable that sets it, $3 what it is for.
require_free_port() {
  local port=$1 variable=$2 what=$3
  if ! port_is_free "$port"; then
    echo "scripts/$(basename "$0"): port $port ($what, $variable) is already in use on 127.0.0.1." >&2
    echo "  Stop what listens there, or choose another port, e.g. $variable=$((port + 1)) ./scripts/$(basename "$0")" >&2
    return 1
  fi
}

# Fake credentials and a region: moto accepts any, the SDK needs some.
aws_env() {
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_DEFAULT_REGION=$AWS_REGION
  export AWS_EC2_METADATA_DISABLED=true
}

# Processes this script started, stopped in reverse order by stop_started.
STARTED_PIDS=()
started() { STARTED_PIDS+=("$1"); }

# Stops (SIGTERM, then SIGKILL after 20 s) every process registered with
# `started`, last first, and waits for each. Never fails, so it is safe in
# an EXIT trap under `set -e`, whatever has already died.
stop_started() {
  local i pid tries
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${STARTED_PIDS[$i]}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      tries=0
      while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 200 ]; do
        sleep 0.1
        tries=$((tries + 1))
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# Starts moto on 127.0.0.1:$1 (a free port if empty), registers it with
# `started`, and exports AWS_ENDPOINT_URL. Never adopts another server: the
# port must be free, and the server that answers must be the one started
# here (its log says it listens on that port, and it is still alive).
# MOTO_LOG names its log.
MOTO_PID=""
# Runs "$@" (a `jobline-local serve` command, env assignments first if any)
# in the background with its output in $SERVE_LOG, registered with
# `started`, and waits up to 30 s for the banner it prints once it listens,
# "Jobline API on http://ADDR  (Ctrl-C to stop)". Sets SERVE_URL to that
# address; fails, showing the log, if the server exits or prints none.
start_serve() {
  mkdir -p "$(dirname "$SERVE_LOG")"
  "$@" > "$SERVE_LOG" 2>&1 &
  local pid=$!
  started "$pid"
  SERVE_URL=""
  local i
  for i in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$SERVE_LOG" >&2
      echo "jobline-local serve exited before it listened (log: $SERVE_LOG)" >&2
      return 1
    fi
    SERVE_URL=$(grep -m1 -o 'Jobline API on http://[^ ]*' "$SERVE_LOG" 2>/dev/null | sed 's/^Jobline API on //' || true)
    if [ -n "$SERVE_URL" ]; then
      log "the API is up on $SERVE_URL (log: $SERVE_LOG)"
      return 0
    fi
    sleep 0.2
  done
  echo "jobline-local serve printed no address within 30 s (log: $SERVE_LOG)" >&2
  return 1
}

start_moto() {
  local port=${1:-$(free_port)}
  local logfile=${MOTO_LOG:-$ROOT/target/moto.log}
  require_free_port "$port" MOTO_PORT "the emulator" || return 1
  mkdir -p "$(dirname "$logfile")"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$logfile" 2>&1 &
  MOTO_PID=$!
  started "$MOTO_PID"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  local i
  for i in $(seq 1 150); do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      cat "$logfile" >&2
      echo "moto failed to start on port $port (log: $logfile)" >&2
      return 1
    fi
    if grep -q "Running on http://127.0.0.1:$port" "$logfile" 2>/dev/null \
      && curl -sf "$AWS_ENDPOINT_URL/moto-api/" > /dev/null 2>&1; then
      log "moto is up on $AWS_ENDPOINT_URL (log: $logfile)"
      return 0
    fi
    sleep 0.2
  done
  echo "moto did not answer on $AWS_ENDPOINT_URL within 30 s (log: $logfile)" >&2
  return 1
}
