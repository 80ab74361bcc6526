#!/usr/bin/env bash
# The four SemNexus services and the provider simulator, as one supervised
# group (honcho, from the Procfile beside this script). Logs go to
# $STACK_DIR/logs/services.log, one JSON line per handled event.
source "$(dirname "$0")/lib.sh"

NAME=services
SIM_PORT="${SIMULATOR_PORT:-8900}"

do_start() {
  if is_running "$NAME"; then say "$NAME: already running (pid $(cat "$(pidfile $NAME)"))"; return 0; fi
  [[ -x "$VENV/bin/honcho" ]] || die "$NAME: honcho missing (run 'make setup')"
  require_free_ports "$NAME" "$SIM_PORT"
  cd "$REPO_ROOT"
  launch "$NAME" "$VENV/bin/honcho" --no-colour -f "$REPO_ROOT/infra/stack/Procfile" -d "$REPO_ROOT" start
  wait_ready "$NAME" 60 curl -sf "http://127.0.0.1:$SIM_PORT/_sim/calls"
  say "$NAME: started (pid $(cat "$(pidfile $NAME)"); simulator on 127.0.0.1:$SIM_PORT; log $STACK_DIR/logs/$NAME.log)"
}

do_status() { status_component "$NAME"; }

main_verbs "$NAME" "${1:-status}"
