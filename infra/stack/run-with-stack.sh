#!/usr/bin/env bash
# Run a command with the local stack up, and stop what this script started on
# the way out, even when the command fails. Components that were already
# running (a developer's `make up`) are left running.
source "$(dirname "$0")/lib.sh"
set +e

# WITH_SERVICES=1 also starts the four services and the provider simulator.
components=(kafka milvus jaeger)
[[ "${WITH_SERVICES:-0}" == 1 ]] && components+=(services)

started=()
for c in "${components[@]}"; do
  if ! is_running "$c"; then
    bash "$REPO_ROOT/infra/stack/$c.sh" start || { rc=$?; for s in "${started[@]}"; do bash "$REPO_ROOT/infra/stack/$s.sh" stop; done; exit $rc; }
    started+=("$c")
  fi
  if [[ $c == kafka ]]; then "$VENV/bin/semnexus" topics apply >/dev/null || exit 1; fi
done

# KEEP=1 leaves what this script started running (to look at Jaeger and the
# ledger's page after `make demo`); `make down` stops it later.
cleanup() {
  local i
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "left running: ${started[*]:-nothing new} (stop with: make down)"
    return 0
  fi
  for ((i=${#started[@]}-1; i>=0; i--)); do bash "$REPO_ROOT/infra/stack/${started[$i]}.sh" stop; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$@"
