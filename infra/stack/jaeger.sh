#!/usr/bin/env bash
# Jaeger v2 (v1.75.0 module, built by infra/jaeger/build.sh in `make setup`)
# on 127.0.0.1: OTLP gRPC and HTTP in, in-memory storage, query API and UI out.
# Config: infra/jaeger/config.yaml; the ports below reach it through the
# environment. Traces live in memory only: a restart starts empty.
source "$(dirname "$0")/lib.sh"

NAME=jaeger
OTLP_GRPC_PORT="${JAEGER_OTLP_GRPC_PORT:-4317}"
OTLP_HTTP_PORT="${JAEGER_OTLP_HTTP_PORT:-4318}"
QUERY_PORT="${JAEGER_QUERY_PORT:-16686}"           # HTTP query API and UI
QUERY_GRPC_PORT="${JAEGER_QUERY_GRPC_PORT:-16685}" # gRPC query API
BIN="$REPO_ROOT/infra/jaeger/bin/jaeger"
CONF="$REPO_ROOT/infra/jaeger/config.yaml"

ping() { curl -sf "http://127.0.0.1:$QUERY_PORT/api/services"; }

do_start() {
  if is_running "$NAME"; then say "$NAME: already running (pid $(cat "$(pidfile $NAME)")) on 127.0.0.1:$QUERY_PORT"; return 0; fi
  [[ -x "$BIN" ]] || die "$NAME: binary missing at $BIN (run 'make setup', or infra/jaeger/build.sh)"
  command -v curl >/dev/null 2>&1 || die "$NAME: curl is missing (install it, e.g. 'apt-get install curl')"
  require_free_ports "$NAME" "$OTLP_GRPC_PORT" "$OTLP_HTTP_PORT" "$QUERY_PORT" "$QUERY_GRPC_PORT"
  export JAEGER_OTLP_GRPC_PORT="$OTLP_GRPC_PORT" JAEGER_OTLP_HTTP_PORT="$OTLP_HTTP_PORT" \
    JAEGER_QUERY_PORT="$QUERY_PORT" JAEGER_QUERY_GRPC_PORT="$QUERY_GRPC_PORT"
  launch "$NAME" "$BIN" --config "file:$CONF"
  wait_ready "$NAME" 60 ping
  say "$NAME: ready: OTLP 127.0.0.1:$OTLP_GRPC_PORT (gRPC), 127.0.0.1:$OTLP_HTTP_PORT (HTTP); query http://127.0.0.1:$QUERY_PORT (pid $(cat "$(pidfile $NAME)"))"
}

do_status() { status_component "$NAME" "OTLP 127.0.0.1:$OTLP_GRPC_PORT/$OTLP_HTTP_PORT, query http://127.0.0.1:$QUERY_PORT"; }

main_verbs "$NAME" "${1:-status}"
