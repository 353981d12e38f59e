# Shared by scripts/dev, scripts/test and scripts/bench: the .venv with the
# Python tools, and a moto server on 127.0.0.1 that is stopped on exit.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs requirements-dev.txt into .venv, once per change of that file.
ensure_venv() {
  local stamp="$VENV/.requirements.sha"
  local want
  want=$(sha256sum "$ROOT/requirements-dev.txt" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing Python tools into .venv (moto, cfn-lint, aws-sam-cli, cargo-lambda)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements-dev.txt"
    echo "$want" > "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Fake credentials and a region: moto accepts any, the SDK needs some.
aws_env() {
  export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
  export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
  export AWS_REGION=${AWS_REGION:-us-east-1}
  export AWS_DEFAULT_REGION=$AWS_REGION
  export AWS_EC2_METADATA_DISABLED=true
}

# Starts moto on 127.0.0.1:$1 (a free port if empty), exports
# AWS_ENDPOINT_URL, and registers its stop on exit. MOTO_LOG names its log.
MOTO_PID=""
start_moto() {
  local port=${1:-$(free_port)}
  local logfile=${MOTO_LOG:-$ROOT/target/moto.log}
  mkdir -p "$(dirname "$logfile")"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$logfile" 2>&1 &
  MOTO_PID=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  local i
  for i in $(seq 1 100); do
    if curl -sf "$AWS_ENDPOINT_URL/moto-api/" > /dev/null 2>&1; then
      log "moto is up on $AWS_ENDPOINT_URL (log: $logfile)"
      return 0
    fi
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      cat "$logfile" >&2
      echo "moto failed to start" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "moto did not answer on $AWS_ENDPOINT_URL" >&2
  return 1
}

stop_moto() {
  if [ -n "$MOTO_PID" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null
    wait "$MOTO_PID" 2>/dev/null
  fi
  MOTO_PID=""
}
