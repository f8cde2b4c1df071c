#!/usr/bin/env bash
# Runs finpulse's backing services on 127.0.0.1 without Docker: Kafka (KRaft), Elasticsearch,
# Prometheus, Alertmanager.
# Usage: services.sh up [--record FILE] | down [--purge] [SERVICE...] | status | fetch
#        | missing SERVICE (the Debian packages it lacks, one a line)
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
# The commands each needs (deps.sh knows their Debian packages).
declare -A NEEDS=(
  [kafka]="java mvn"
  [elasticsearch]="java mvn unzip curl"
  [prometheus]="prometheus curl"
  [alertmanager]="prometheus-alertmanager curl"
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
  mkdir -p "$CACHE/m2"
  local log=$CACHE/mvn.log progress rc=0
  download_progress &
  progress=$!
  (cd "$CACHE" && mvn -B --strict-checksums -Dmaven.repo.local="$CACHE/m2" "$@") >"$log" 2>&1 || rc=$?
  kill "$progress" 2>/dev/null || true
  wait "$progress" 2>/dev/null || true
  ((rc == 0)) || { say "FAILED: mvn $*; last 30 lines of $log:"; tail -n 30 "$log" >&2; return 1; }
}

# Until killed (or this script ends), shows how much the Maven repository in the cache has grown
# (Maven writes a download in place, as a .part file): on one rewritten line on a terminal, else
# every 10 s.
download_progress() {
  local t0=$SECONDS mb0 mb every=10 end=$'\n'
  if [[ -t 2 ]]; then
    every=1 end=$'\r'
    trap 'echo >&2; exit 0' TERM
  fi
  mb0=$(du -sm "$CACHE/m2" | cut -f1)
  while kill -0 $$ 2>/dev/null; do
    sleep "$every"
    mb=$(du -sm "$CACHE/m2" 2>/dev/null | cut -f1)
    printf '[services]   %d MB downloaded, %ds%s' $((mb - mb0)) $((SECONDS - t0)) "$end" >&2
  done
}

# The Debian packages service $1 lacks, one a line.
cmd_missing() {
  [[ $# == 1 && -n ${NEEDS[$1]:-} ]] || usage
  # shellcheck disable=SC2086 # a list of words
  "$HERE/deps.sh" missing ${NEEDS[$1]}
}

# True if every command $1 needs is installed; otherwise says which packages it lacks.
runnable() {
  local pkgs
  pkgs=$(cmd_missing "$1")
  [[ -z $pkgs ]] && return
  say "not starting $1: needs the Debian packages ${pkgs//$'\n'/ } (as root: make deps)"
  return 1
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

# Starts $1, fetching what it needs first; refuses when a stranger holds its port. With
# `up --record FILE` its name goes to FILE before it is launched.
start() {
  local svc=$1
  if port_open "${ADDRESS[$svc]}"; then
    say "FAILED: ${ADDRESS[$svc]} is taken by a process services.sh did not start (state dir $STATE)"
    return 1
  fi
  if declare -F "fetch_$svc" >/dev/null; then "fetch_$svc"; fi
  mkdir -p "$STATE/$svc"
  say "starting $svc"
  [[ -z $RECORD ]] || echo "$svc" >>"$RECORD"
  "start_$svc"
}

RECORD=""
cmd_up() {
  local t0=$SECONDS svc started=() running=() skipped=()
  case ${1:-} in
    --record) RECORD=${2:?--record needs a file} ;;
    "") ;;
    *) usage ;;
  esac
  mkdir -p "$STATE"
  chmod 755 "$STATE"
  # Serialises concurrent `up`s. Every service is launched with fd 9 closed, or it would hold the lock.
  exec 9>"$STATE/.lock"
  if ! flock -n 9; then
    say "waiting for another services.sh up (lock $STATE/.lock)"
    flock -w 600 9 || return 1
  fi
  # As root, what is missing gets installed; otherwise a service lacking a command is skipped.
  ((EUID != 0)) || "$HERE/deps.sh" ensure services
  # Prometheus and Alertmanager start at once; Kafka boots while Elasticsearch downloads and unpacks.
  for svc in prometheus alertmanager kafka elasticsearch; do
    if our_pid "$svc" >/dev/null; then
      running+=("$svc")
    elif runnable "$svc"; then
      start "$svc"
      started+=("$svc")
    else
      skipped+=("$svc")
    fi
  done
  for svc in "${SERVICES[@]}"; do
    [[ " ${skipped[*]} " != *" $svc "* ]] || continue
    wait_ready "$svc"
    say "$svc ready at ${ADDRESS[$svc]} (pid $(our_pid "$svc"), $((SECONDS - t0))s)"
  done
  say "up: started ${started[*]:-nothing}; already running: ${running[*]:-nothing}"
  if ((${#skipped[@]})); then
    say "FAILED: not started: ${skipped[*]} (missing packages above)"
    return 1
  fi
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

# Stops the services named (all if none) that up started; --purge also deletes their state.
cmd_down() {
  local purge="" svc pid entry stopped=() deadline svcs
  if [[ ${1:-} == --purge ]]; then purge=1 && shift; fi
  svcs=("${@:-${SERVICES[@]}}")
  for svc in "${svcs[@]}"; do [[ -n ${ADDRESS[$svc]:-} ]] || usage; done
  [[ -d $STATE ]] || { say "nothing to stop ($STATE does not exist)"; return 0; }
  for svc in "${svcs[@]}"; do
    if pid=$(our_pid "$svc"); then
      say "stopping $svc (pid $pid)"
      kill -TERM "$pid"
      stopped+=("$svc:$pid")
    fi
  done
  # A launcher still starting Elasticsearch (after a failed `up`): its process group, which
  # services.sh created with setsid, holds the node too.
  if [[ " ${svcs[*]} " == *" elasticsearch "* ]] && pid=$(launcher_pid); then
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
  if [[ -n $purge && $# == 0 ]]; then
    say "removing $STATE"
    rm -rf "$STATE"
  elif [[ -n $purge ]]; then
    say "removing the state of ${svcs[*]} in $STATE"
    for svc in "${svcs[@]}"; do rm -rf "${STATE:?}/$svc"; done
  fi
}

# Downloads what up needs (Kafka's jars, the Elasticsearch zip) without starting anything.
cmd_fetch() {
  fetch_kafka
  fetch_elasticsearch
  say "cache $CACHE holds Kafka and Elasticsearch ($(du -sh "$CACHE" | cut -f1))"
}

usage() {
  echo "usage: $0 up [--record FILE] | down [--purge] [SERVICE...] | status | fetch" \
    "| missing SERVICE" >&2
  echo "SERVICE: ${SERVICES[*]}" >&2
  exit 2
}

case ${1:-} in
  up) cmd_up "${@:2}" ;;
  down) cmd_down "${@:2}" ;;
  status) cmd_status ;;
  fetch) cmd_fetch ;;
  missing) cmd_missing "${@:2}" ;;
  *) usage ;;
esac
