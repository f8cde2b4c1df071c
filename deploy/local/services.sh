#!/usr/bin/env bash
# Runs finpulse's backing services on 127.0.0.1 without Docker: Kafka (KRaft), Elasticsearch,
# Prometheus, Alertmanager. Usage: services.sh up | down [--purge] | status
# See deploy/local/README.md for ports, directories and timings.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(dirname "$HERE")
CACHE=${FINPULSE_CACHE:-$HOME/.cache/finpulse}
# Under /tmp because the Elasticsearch user must be able to traverse every parent directory.
STATE=${FINPULSE_SERVICES_DIR:-/tmp/finpulse-services}
ES_VERSION=8.19.21
ES_USER=finpulse-es
SERVICES=(kafka elasticsearch prometheus alertmanager)

declare -A ADDRESS=(
  [kafka]=127.0.0.1:19092
  [elasticsearch]=127.0.0.1:19200
  [prometheus]=127.0.0.1:19090
  [alertmanager]=127.0.0.1:19095
)
declare -A TIMEOUT=([kafka]=120 [elasticsearch]=180 [prometheus]=30 [alertmanager]=30)
# A process counts as ours only if its command line still contains this marker (pids get reused).
declare -A MARKER=(
  [kafka]="$STATE/kafka/server.properties"
  [elasticsearch]="-Des.path.home=$STATE/elasticsearch/elasticsearch-$ES_VERSION"
  [prometheus]="--storage.tsdb.path=$STATE/prometheus/data"
  [alertmanager]="--storage.path=$STATE/alertmanager/data"
)
declare -A LOG=(
  [kafka]="$STATE/kafka/kafka.log"
  [elasticsearch]="$STATE/elasticsearch/logs/finpulse-local.log"
  [prometheus]="$STATE/prometheus/prometheus.log"
  [alertmanager]="$STATE/alertmanager/alertmanager.log"
)

say() { echo "[services] $*" >&2; }

pidfile() { echo "$STATE/$1/$1.pid"; }

# Prints the recorded pid if that process is alive and still the one we started.
our_pid() {
  local pid
  pid=$(cat "$(pidfile "$1")" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "${MARKER[$1]}" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; }

# Kafka readiness: a Metadata request must list a live broker. v4 is pre-"flexible" (no tagged
# fields), so plain struct packing does; Kafka 4.1 serves it.
kafka_metadata_ok() {
  python3 - "${ADDRESS[kafka]}" <<'EOF'
import socket, struct, sys
host, port = sys.argv[1].rsplit(":", 1)
client = b"finpulse-services"
# header v1: api_key=3 (Metadata), api_version=4, correlation_id, client_id;
# body: topics=null (all), allow_auto_topic_creation=false
req = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">ib", -1, 0)
with socket.create_connection((host, int(port)), timeout=5) as s:
    s.settimeout(5)
    s.sendall(struct.pack(">i", len(req)) + req)
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit(1)
        buf += chunk
correlation_id, _throttle, brokers = struct.unpack(">iii", buf[4:16])
sys.exit(0 if correlation_id == 7 and brokers >= 1 else 1)
EOF
}

http_ok() { curl -sf -o /dev/null --max-time 3 "$1"; }

# One readiness probe per service, quick enough to poll.
probe() {
  case $1 in
    kafka) grep -q "Kafka Server started" "${LOG[kafka]}" 2>/dev/null && kafka_metadata_ok 2>/dev/null ;;
    elasticsearch) http_ok "http://${ADDRESS[$1]}/_cluster/health?wait_for_status=yellow&timeout=1s" ;;
    *) http_ok "http://${ADDRESS[$1]}/-/ready" ;;
  esac
}

fail() {
  local svc=$1 why=$2
  say "FAILED: $svc $why"
  if [[ -s ${LOG[$svc]} ]]; then
    say "last 30 lines of ${LOG[$svc]}:"
    tail -n 30 "${LOG[$svc]}" >&2
  fi
  if [[ $svc == elasticsearch && -s $STATE/elasticsearch/launcher.log ]]; then
    say "last 30 lines of $STATE/elasticsearch/launcher.log:"
    tail -n 30 "$STATE/elasticsearch/launcher.log" >&2
  fi
  return 1
}

wait_ready() {
  local svc=$1 deadline=$((SECONDS + TIMEOUT[$1]))
  until probe "$svc"; do
    # Elasticsearch writes its pid file only once its node runs; until then its launcher counts.
    if ! our_pid "$svc" >/dev/null && ! { [[ $svc == elasticsearch ]] && launcher_pid >/dev/null; }; then
      fail "$svc" "exited before it was ready"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      fail "$svc" "not ready within ${TIMEOUT[$svc]}s"
      return 1
    fi
    sleep 1
  done
}

java_home() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    echo "$JAVA_HOME"
  else
    dirname "$(dirname "$(readlink -f "$(command -v java)")")"
  fi
}

# Maven's repository lives in the cache, so the cache alone holds every download. The plugin is
# pinned because Maven 3.8's default maven-dependency-plugin (2.8) is too old.
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
mvn_() {
  mkdir -p "$CACHE"
  local log=$CACHE/mvn.log
  (cd "$CACHE" && mvn -B --strict-checksums -Dmaven.repo.local="$CACHE/m2" "$@") >"$log" 2>&1 ||
    { say "FAILED: mvn $*; last 30 lines of $log:"; tail -n 30 "$log" >&2; return 1; }
}

ensure_prometheus_installed() {
  command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && return
  local pkgs=(prometheus prometheus-alertmanager)
  if ((EUID != 0)); then
    say "${pkgs[*]} missing; as root run:"
    say "  apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"
    return 1
  fi
  say "installing ${pkgs[*]} (Debian packages)"
  mkdir -p "$STATE"
  if ! { apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"; } \
    >"$STATE/apt.log" 2>&1; then
    tail -n 30 "$STATE/apt.log" >&2
    return 1
  fi
}

# Writes $CACHE/kafka-<pom hash>.classpath, pointing into the cache's own Maven repository.
fetch_kafka() {
  local cp
  cp="$CACHE/kafka-$(sha256sum <"$HERE/kafka/pom.xml" | cut -c1-16).classpath"
  if [[ ! -s $cp ]] || ! tr ':' '\n' <"$cp" | xargs ls >/dev/null 2>&1; then
    say "fetching Kafka jars (Maven Central)"
    mvn_ -f "$HERE/kafka/pom.xml" "$DEP_PLUGIN:build-classpath" -Dmdep.includeScope=runtime \
      -Dmdep.outputFile="$cp.tmp"
    mv "$cp.tmp" "$cp"
  fi
  KAFKA_CLASSPATH=$(cat "$cp")
}

start_kafka() {
  local dir=$STATE/kafka java
  java="$(java_home)/bin/java"
  mkdir -p "$dir/data"
  { cat "$HERE/kafka/server.properties"; echo "log.dirs=$dir/data"; } >"$dir/server.properties"
  local jvm=(-Djava.awt.headless=true -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties"
    -cp "$KAFKA_CLASSPATH")
  if [[ ! -f $dir/data/meta.properties ]]; then
    local cluster_id
    # A cluster id is a UUID in URL-safe base64; a leading '-' would read as an option.
    cluster_id=$(python3 -c 'import base64, uuid
while (s := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())[0] == "-": pass
print(s)')
    "$java" -Xmx256m "${jvm[@]}" kafka.tools.StorageTool format --ignore-formatted \
      --cluster-id "$cluster_id" --config "$dir/server.properties" >"$dir/format.log" 2>&1 ||
      { say "FAILED: Kafka storage format:"; tail -n 30 "$dir/format.log" >&2; return 1; }
  fi
  setsid "$java" -Xms512m -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    "${jvm[@]}" kafka.Kafka "$dir/server.properties" 9>&- </dev/null >"${LOG[kafka]}" 2>&1 &
  echo $! >"$(pidfile kafka)"
}

fetch_elasticsearch() {
  ES_ZIP=$CACHE/m2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION
  ES_ZIP+=/elasticsearch-$ES_VERSION.zip
  [[ -s $ES_ZIP ]] && return
  say "fetching Elasticsearch $ES_VERSION (Maven Central, ~110 MB)"
  mvn_ "$DEP_PLUGIN:get" -Dtransitive=false \
    -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"
}

# The Elasticsearch launcher (runuser, then the ES CLI), while it is still starting the node.
launcher_pid() {
  local pid
  pid=$(cat "$STATE/elasticsearch/launcher.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$STATE/elasticsearch/" || return 1
  echo "$pid"
}

start_elasticsearch() {
  local dir=$STATE/elasticsearch
  local home=$dir/elasticsearch-$ES_VERSION
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  if [[ ! -x $home/bin/elasticsearch ]]; then
    rm -rf "$home"
    unzip -q "$ES_ZIP" -d "$dir"
  fi
  rm -f "$(pidfile elasticsearch)"
  local run=()
  # Elasticsearch refuses to run as root.
  if ((EUID == 0)); then
    id -u "$ES_USER" >/dev/null 2>&1 ||
      useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER"
    chown -R "$ES_USER:" "$dir"
    run=(runuser -u "$ES_USER" --)
  fi
  # The integ-test zip bundles no JDK and ignores JAVA_HOME: ES_JAVA_HOME is mandatory.
  # With -d the launcher returns once the node runs and leaves its pid in -p. ES_TMPDIR: each
  # start would otherwise leave a /tmp/elasticsearch-<random> dir behind.
  setsid "${run[@]}" env ES_JAVA_HOME="$(java_home)" ES_JAVA_OPTS="-Xms1g -Xmx1g" ES_TMPDIR="$dir/tmp" \
    "$home/bin/elasticsearch" -d -p "$(pidfile elasticsearch)" \
    -E cluster.name=finpulse-local -E discovery.type=single-node -E network.host=127.0.0.1 \
    -E http.port=19200 -E transport.port=19300 -E path.data="$dir/data" -E path.logs="$dir/logs" \
    -E xpack.security.enabled=false -E cluster.routing.allocation.disk.threshold_enabled=false \
    9>&- </dev/null >"$dir/launcher.log" 2>&1 &
  echo $! >"$dir/launcher.pid"
}

start_prometheus() {
  mkdir -p "$STATE/prometheus/data"
  setsid prometheus --config.file="$DEPLOY/prometheus/prometheus.local.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" --storage.tsdb.retention.time=2d \
    --web.listen-address="${ADDRESS[prometheus]}" --web.enable-lifecycle \
    9>&- </dev/null >"${LOG[prometheus]}" 2>&1 &
  echo $! >"$(pidfile prometheus)"
}

start_alertmanager() {
  mkdir -p "$STATE/alertmanager/data"
  # Empty --cluster.listen-address turns off the HA gossip listener (0.0.0.0:9094 by default).
  setsid prometheus-alertmanager --config.file="$DEPLOY/alertmanager/alertmanager.local.yml" \
    --storage.path="$STATE/alertmanager/data" --web.listen-address="${ADDRESS[alertmanager]}" \
    --cluster.listen-address= 9>&- </dev/null >"${LOG[alertmanager]}" 2>&1 &
  echo $! >"$(pidfile alertmanager)"
}

# Starts $1 unless it already runs; refuses when a stranger holds its port.
start() {
  local svc=$1
  if our_pid "$svc" >/dev/null; then
    say "$svc already running"
    return
  fi
  if port_open "${ADDRESS[$svc]}"; then
    say "FAILED: ${ADDRESS[$svc]} is taken by a process services.sh did not start (state dir $STATE)"
    return 1
  fi
  mkdir -p "$STATE/$svc"
  say "starting $svc"
  "start_$svc"
}

cmd_up() {
  local t0=$SECONDS svc
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  # Serialises concurrent `up`s. Every service is launched with fd 9 closed, or it would hold the lock.
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    say "waiting for another services.sh up (lock $STATE/.lock)"
    flock -w 600 9 || return 1
  fi
  ensure_prometheus_installed
  start prometheus
  start alertmanager
  # Kafka boots while Elasticsearch downloads and unpacks.
  if ! our_pid kafka >/dev/null; then fetch_kafka; fi
  start kafka
  if ! our_pid elasticsearch >/dev/null; then fetch_elasticsearch; fi
  start elasticsearch
  for svc in "${SERVICES[@]}"; do
    wait_ready "$svc"
    say "$svc ready at ${ADDRESS[$svc]} (pid $(our_pid "$svc"), $((SECONDS - t0))s)"
  done
}

cmd_status() {
  local svc pid up all=0 sep="" json="{"
  for svc in "${SERVICES[@]}"; do
    pid=$(our_pid "$svc") || pid=null
    if [[ $pid != null ]] && probe "$svc"; then up=true; else up=false all=1; fi
    json+="$sep\"$svc\": {\"up\": $up, \"address\": \"${ADDRESS[$svc]}\", \"pid\": $pid}"
    sep=", "
  done
  echo "$json}"
  return $all
}

cmd_down() {
  local svc pid entry stopped=() deadline
  [[ -d $STATE ]] || { say "nothing to stop ($STATE does not exist)"; return 0; }
  for svc in "${SERVICES[@]}"; do
    if pid=$(our_pid "$svc"); then
      say "stopping $svc (pid $pid)"
      kill -TERM "$pid"
      stopped+=("$svc:$pid")
    fi
  done
  # A launcher still starting Elasticsearch (after a failed `up`): its process group, which
  # services.sh created with setsid, holds the node too.
  if pid=$(launcher_pid); then
    say "stopping the Elasticsearch launcher (process group $pid)"
    kill -TERM -- "-$pid"
    stopped+=("elasticsearch:-$pid")
  fi
  for entry in "${stopped[@]}"; do
    svc=${entry%%:*} pid=${entry#*:}
    deadline=$((SECONDS + 60))
    while kill -0 -- "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
    if kill -0 -- "$pid" 2>/dev/null; then
      say "$svc ($pid) ignored SIGTERM for 60s; killing it"
      kill -KILL -- "$pid"
    fi
    rm -f "$(pidfile "$svc")"
  done
  ((${#stopped[@]})) || say "nothing was running"
  if [[ ${1:-} == --purge ]]; then
    say "removing $STATE"
    rm -rf "$STATE"
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up | down [--purge] | status" >&2
    exit 2
    ;;
esac
