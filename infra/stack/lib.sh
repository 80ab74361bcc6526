# Shared shell functions for the local stack scripts (sourced, never run).
#
# Every component script (kafka.sh, milvus.sh, jaeger.sh, services.sh) has the
# same verbs: start, stop, status. State lives under one git-ignored folder:
#   $STACK_DIR/data/<component>   data
#   $STACK_DIR/logs/<component>.log
#   $STACK_DIR/run/<component>.pid  the id of the process `start` launched
# `stop` kills exactly that process (and its process group), never by name.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
VENV="${VENV:-$REPO_ROOT/.venv}"
mkdir -p "$STACK_DIR/data" "$STACK_DIR/logs" "$STACK_DIR/run"

die() { echo "error: $*" >&2; exit 1; }
say() { echo "$*"; }

pidfile() { echo "$STACK_DIR/run/$1.pid"; }

# is_running NAME: true when the pid file names a live process.
is_running() {
  local f; f="$(pidfile "$1")"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# port_in_use PORT: true when something listens on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# require_free_ports NAME PORT...: a clear one-line error when a port is taken.
require_free_ports() {
  local name=$1; shift
  local p
  for p in "$@"; do
    port_in_use "$p" && die "$name: port 127.0.0.1:$p is already taken by another process (stop it, or set the port in the environment)"
  done
  return 0
}

# launch NAME CMD...: start CMD in its own session, detached, logging to the
# component's log; records its pid.
launch() {
  local name=$1; shift
  local log="$STACK_DIR/logs/$name.log"
  echo "---- $(date -u +%FT%TZ) starting: $*" >>"$log"
  setsid nohup "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# wait_ready NAME TIMEOUT_S CHECK...: poll CHECK until it succeeds; on timeout
# or when the process died, print the log's tail and fail.
wait_ready() {
  local name=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! is_running "$name"; then
      tail -n 20 "$STACK_DIR/logs/$name.log" >&2 || true
      rm -f "$(pidfile "$name")"
      die "$name exited during start-up (log: $STACK_DIR/logs/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$STACK_DIR/logs/$name.log" >&2 || true
      die "$name not ready after ${timeout}s (log: $STACK_DIR/logs/$name.log)"
    fi
    sleep 0.5
  done
}

# stop_component NAME: TERM the recorded process group, KILL after 20 s.
stop_component() {
  local name=$1 f pid
  f="$(pidfile "$name")"
  if [[ ! -f "$f" ]]; then say "$name: not running"; return 0; fi
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
  say "$name: stopped (pid $pid)"
}

status_component() {
  local name=$1 detail=${2:-}
  if is_running "$name"; then say "$name: running (pid $(cat "$(pidfile "$name")"))${detail:+ $detail}"
  else say "$name: stopped"; fi
}

# main_verbs NAME: dispatch start/stop/status to the script's functions.
main_verbs() {
  local name=$1 verb=${2:-status}
  case "$verb" in
    start) do_start ;;
    stop) stop_component "$name" ;;
    status) do_status ;;
    *) die "usage: $(basename "$0") start|stop|status" ;;
  esac
}
