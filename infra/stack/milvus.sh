#!/usr/bin/env bash
# Milvus 2.3.5 standalone (embedded etcd, RocksMQ, local storage) on 127.0.0.1,
# from the PyPI package `milvus` in the venv (`make setup`).
# infra/milvus/prepare.py unpacks the bundled binary into $STACK_DIR/data/milvus/bin
# and writes its configs; this script then runs the binary itself, so the pid
# file names the real server. Data, etcd data and the message log persist
# under $STACK_DIR/data/milvus across stop/start.
# Known 2.3.5 behaviour: its gRPC and metrics servers listen on all interfaces
# (the address is hard-coded; only the embedded etcd is on 127.0.0.1), and a
# stop ends with "panic: context canceled" plus a goroutine dump in the log,
# after a clean shutdown (etcd closed first); neither affects the data.
source "$(dirname "$0")/lib.sh"

NAME=milvus
PORT="${MILVUS_PORT:-19530}"                    # gRPC (and REST) for clients
INTERNAL_PORT="${MILVUS_INTERNAL_PORT:-19529}"  # proxy, internal gRPC
METRICS_PORT="${MILVUS_METRICS_PORT:-9091}"     # /healthz, /metrics
ETCD_PORT="${MILVUS_ETCD_PORT:-2379}"           # embedded etcd, client
ETCD_PEER_PORT="${MILVUS_ETCD_PEER_PORT:-2380}" # embedded etcd, peer
ROOT_COORD_PORT="${MILVUS_ROOT_COORD_PORT:-53100}"
QUERY_COORD_PORT="${MILVUS_QUERY_COORD_PORT:-19531}"
QUERY_NODE_PORT="${MILVUS_QUERY_NODE_PORT:-21123}"
INDEX_COORD_PORT="${MILVUS_INDEX_COORD_PORT:-22930}"
INDEX_NODE_PORT="${MILVUS_INDEX_NODE_PORT:-21121}"
DATA_COORD_PORT="${MILVUS_DATA_COORD_PORT:-13333}"
DATA_NODE_PORT="${MILVUS_DATA_NODE_PORT:-21124}"
ALL_PORTS=("$PORT" "$INTERNAL_PORT" "$METRICS_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"
  "$ROOT_COORD_PORT" "$QUERY_COORD_PORT" "$QUERY_NODE_PORT" "$INDEX_COORD_PORT"
  "$INDEX_NODE_PORT" "$DATA_COORD_PORT" "$DATA_NODE_PORT")
DATA="$STACK_DIR/data/milvus"
PYTHON="$VENV/bin/python"

# ping: a real client call, the same one the services make first
ping() {
  "$PYTHON" - "$PORT" <<'PY'
import sys
from pymilvus import MilvusClient
MilvusClient(uri=f"http://127.0.0.1:{sys.argv[1]}", timeout=5).list_collections()
PY
}

do_start() {
  if is_running "$NAME"; then say "$NAME: already running (pid $(cat "$(pidfile $NAME)")) on 127.0.0.1:$PORT"; return 0; fi
  [[ -x "$PYTHON" ]] || die "$NAME: no venv at $VENV (run 'make setup')"
  "$PYTHON" -c "import pymilvus" 2>/dev/null || die "$NAME: pymilvus is missing from $VENV (run 'make setup')"
  require_free_ports "$NAME" "${ALL_PORTS[@]}"
  "$PYTHON" "$REPO_ROOT/infra/milvus/prepare.py" --home "$DATA" \
    --port "$PORT" --internal-port "$INTERNAL_PORT" \
    --etcd-port "$ETCD_PORT" --etcd-peer-port "$ETCD_PEER_PORT" \
    --root-coord-port "$ROOT_COORD_PORT" --query-coord-port "$QUERY_COORD_PORT" \
    --query-node-port "$QUERY_NODE_PORT" --index-coord-port "$INDEX_COORD_PORT" \
    --index-node-port "$INDEX_NODE_PORT" --data-coord-port "$DATA_COORD_PORT" \
    --data-node-port "$DATA_NODE_PORT" || exit 1
  # what the package's launcher sets; MILVUSCONF points at our rendered configs
  export DEPLOY_MODE=STANDALONE METRICS_PORT MILVUSCONF="$DATA/configs/" MILVUS_RUN_DIR="$DATA/run"
  export LD_LIBRARY_PATH="$DATA/bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # relative paths the server still uses (glog's logs/, run/) land under $DATA
  cd "$DATA" || die "$NAME: cannot enter $DATA"
  launch "$NAME" "$DATA/bin/milvus" run standalone
  wait_ready "$NAME" 120 ping
  say "$NAME: ready on 127.0.0.1:$PORT (pid $(cat "$(pidfile $NAME)"), data $DATA)"
}

do_status() { status_component "$NAME" "127.0.0.1:$PORT"; }

main_verbs "$NAME" "${1:-status}"
