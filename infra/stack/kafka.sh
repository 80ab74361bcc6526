#!/usr/bin/env bash
# Apache Kafka 4.x, one node in KRaft mode (broker + controller), on 127.0.0.1.
# Jars come from Maven Central via infra/kafka/pom.xml (`make setup`).
# Storage is formatted on first start; data and logs live under $STACK_DIR.
# Besides the plain listener, a SASL_PLAINTEXT one (mechanism PLAIN, one local
# user) lets the tests and a developer check a secured client configuration:
#   SEMNEXUS_KAFKA__BOOTSTRAP=127.0.0.1:9094 SEMNEXUS_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT
#   SEMNEXUS_KAFKA__SASL_USERNAME=semnexus SEMNEXUS_KAFKA__SASL_PASSWORD=semnexus-local
source "$(dirname "$0")/lib.sh"

NAME=kafka
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
SASL_PORT="${KAFKA_SASL_PORT:-9094}"
# local development credentials, not a secret
SASL_USER=semnexus
SASL_PASSWORD=semnexus-local
LIB="$REPO_ROOT/infra/kafka/lib"
DATA="$STACK_DIR/data/kafka"
CONF="$STACK_DIR/run/kafka.properties"

java_cmd() {
  command -v java >/dev/null 2>&1 || die "kafka: Java is missing (install a JDK 17+, e.g. 'apt-get install openjdk-17-jre-headless')"
  echo java
}

write_config() {
  cat >"$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$SASL_USER" password="$SASL_PASSWORD" user_$SASL_USER="$SASL_PASSWORD";
log.dirs=$DATA
num.partitions=1
# topics are declared and created by 'semnexus topics apply'; a typo must fail, not create one
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.check.interval.ms=60000
message.max.bytes=2097152
PROPS
}

do_start() {
  if is_running "$NAME"; then say "$NAME: already running (pid $(cat "$(pidfile $NAME)")) on 127.0.0.1:$PORT"; return 0; fi
  local java; java="$(java_cmd)"
  [[ -d "$LIB" ]] && compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null || die "kafka: jars missing in $LIB (run 'make setup')"
  require_free_ports "$NAME" "$PORT" "$CONTROLLER_PORT" "$SASL_PORT"
  write_config
  export KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}"
  local log4j="$REPO_ROOT/infra/kafka/log4j2.yaml"
  if [[ ! -f "$DATA/meta.properties" ]]; then
    mkdir -p "$DATA"
    "$java" -cp "$LIB/*" -Dlog4j2.configurationFile="$log4j" kafka.tools.StorageTool format \
      --config "$CONF" --cluster-id "$("$java" -cp "$LIB/*" kafka.tools.StorageTool random-uuid)" --standalone \
      >>"$STACK_DIR/logs/$NAME.log" 2>&1 || die "kafka: formatting storage failed (log: $STACK_DIR/logs/$NAME.log)"
  fi
  launch "$NAME" "$java" $KAFKA_HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$log4j" -Dkafka.logs.dir="$STACK_DIR/logs" \
    -cp "$LIB/*" kafka.Kafka "$CONF"
  wait_ready "$NAME" 90 port_in_use "$PORT"
  # the port opens before the broker has joined its own quorum: wait for metadata
  wait_ready "$NAME" 60 "$VENV/bin/python" -m semnexus_shared.topics --bootstrap "127.0.0.1:$PORT" ping
  say "$NAME: ready on 127.0.0.1:$PORT (pid $(cat "$(pidfile $NAME)"), data $DATA)"
}

do_status() { status_component "$NAME" "127.0.0.1:$PORT"; }

main_verbs "$NAME" "${1:-status}"
