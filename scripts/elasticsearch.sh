#!/usr/bin/env bash
# A real, single-node Elasticsearch 8.19.x for jianfu's tests and for local use.
#
#   scripts/elasticsearch.sh install   fetch the node from Maven Central (integ-test-zip) and unpack it
#   scripts/elasticsearch.sh start     start it on 127.0.0.1 and wait for /_cluster/health; prints the URL
#   scripts/elasticsearch.sh stop      stop the node this script started (by its pid file)
#   scripts/elasticsearch.sh status    print health; exit 0 when the node answers, 3 when it does not
#
# Every command is idempotent. Everything lives under .cache/elasticsearch/ in the project
# (gitignored): the zip, the unpacked node, and one directory per port with config, data, logs and
# the pid file. The node refuses to run as root, so when this script runs as root it creates a
# dedicated system user (JIANFU_ES_USER, default "jianfu-es") and runs the node as that user.
#
# Environment:
#   JIANFU_ES_VERSION   8.19.x version to fetch            (default 8.19.3)
#   JIANFU_ES_PORT      HTTP port on 127.0.0.1             (default 9200)
#   JIANFU_ES_HEAP      JVM heap                           (default 1g)
#   JIANFU_ES_TIMEOUT   seconds start waits for health     (default 180)
#   JIANFU_ES_USER      user the node runs as under root   (default jianfu-es)
#   JIANFU_ES_CACHE     cache directory                    (default <project>/.cache/elasticsearch)
#   ES_JAVA_HOME        Java 17+ (the integ-test zip bundles no JDK; default: the system java)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # runuser, useradd

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${JIANFU_ES_VERSION:-8.19.3}"
PORT="${JIANFU_ES_PORT:-9200}"
HEAP="${JIANFU_ES_HEAP:-1g}"
TIMEOUT="${JIANFU_ES_TIMEOUT:-180}"
ES_USER="${JIANFU_ES_USER:-jianfu-es}"
CACHE="${JIANFU_ES_CACHE:-$ROOT/.cache/elasticsearch}"
if [[ -z "${JIANFU_ES_CACHE:-}" && "$(id -u)" == 0 ]] && ! runuser -u nobody -- test -x "$ROOT" 2>/dev/null; then
  # The node runs as an unprivileged user, which cannot reach a project under a private directory
  # (e.g. /root): keep the node outside it, one cache per project path.
  CACHE="/var/tmp/jianfu-elasticsearch-$(echo -n "$ROOT" | sha256sum | cut -c1-12)"
fi
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:${VERSION}:zip"
ZIP="$CACHE/dl/elasticsearch-${VERSION}.zip"
HOME_DIR="$CACHE/elasticsearch-${VERSION}"
NODE_DIR="$CACHE/node-${PORT}"
PID_FILE="$NODE_DIR/elasticsearch.pid"
URL="http://127.0.0.1:${PORT}"

say() { echo "elasticsearch.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

java_home() {
  if [[ -n "${ES_JAVA_HOME:-}" ]]; then echo "$ES_JAVA_HOME"; return; fi
  local java
  java="$(command -v java || true)"
  [[ -n "$java" ]] || die "no java on PATH; set ES_JAVA_HOME to a Java 17+ home"
  java="$(readlink -f "$java")"
  dirname "$(dirname "$java")"
}

healthy() {
  # The integ-test node has no rest-root module, so GET / fails: ask /_cluster/health.
  curl -fsS --max-time 3 "$URL/_cluster/health" 2>/dev/null | grep -q '"status":"\(green\|yellow\)"'
}

as_node_user() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u "$ES_USER" -- "$@"
  else
    "$@"
  fi
}

pid_alive() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

cmd_install() {
  if [[ -x "$HOME_DIR/bin/elasticsearch" ]]; then
    say "Elasticsearch $VERSION already installed in $HOME_DIR"
  else
    mkdir -p "$CACHE/dl"
    if [[ ! -s "$ZIP" ]]; then
      command -v mvn >/dev/null || die "mvn not found (needed to fetch $ARTIFACT)"
      say "fetching $ARTIFACT from Maven Central"
      mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
        "-Dartifact=$ARTIFACT" "-DoutputDirectory=$CACHE/dl" >&2 || die "could not fetch $ARTIFACT"
    fi
    local tmp="$CACHE/unpack.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    unzip -q "$ZIP" -d "$tmp" || { rm -rf "$tmp"; die "cannot unpack $ZIP"; }
    [[ -x "$tmp/elasticsearch-${VERSION}/bin/elasticsearch" ]] || { rm -rf "$tmp"; die "unexpected layout in $ZIP"; }
    mv "$tmp/elasticsearch-${VERSION}" "$HOME_DIR"
    rmdir "$tmp"
    say "installed Elasticsearch $VERSION in $HOME_DIR"
  fi
  if [[ "$(id -u)" == 0 ]]; then
    if ! id -u "$ES_USER" >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ES_USER" \
        || id -u "$ES_USER" >/dev/null 2>&1 || die "cannot create user $ES_USER"
      say "created system user $ES_USER"
    fi
    # The node user reads the distribution; every directory above it must be traversable.
    chmod -R a+rX "$HOME_DIR"
    runuser -u "$ES_USER" -- test -x "$HOME_DIR/bin/elasticsearch" \
      || die "user $ES_USER cannot reach $HOME_DIR (a parent directory is not world-traversable); set JIANFU_ES_CACHE to a directory it can reach"
  fi
}

write_config() {
  mkdir -p "$NODE_DIR/data" "$NODE_DIR/logs" "$NODE_DIR/config"
  if [[ ! -f "$NODE_DIR/config/jvm.options" ]]; then
    cp -R "$HOME_DIR/config/." "$NODE_DIR/config/"
  fi
  cat >"$NODE_DIR/config/elasticsearch.yml" <<EOF
# written by scripts/elasticsearch.sh
cluster.name: jianfu-test
node.name: jianfu-${PORT}
discovery.type: single-node
network.host: 127.0.0.1
http.port: ${PORT}
path.data: ${NODE_DIR}/data
path.logs: ${NODE_DIR}/logs
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
  if [[ "$(id -u)" == 0 ]]; then
    chown -R "$ES_USER" "$NODE_DIR"
  fi
}

cmd_start() {
  if healthy; then
    say "already running"
    echo "$URL"
    return 0
  fi
  [[ -x "$HOME_DIR/bin/elasticsearch" ]] || cmd_install
  if [[ "$(id -u)" == 0 ]] && ! id -u "$ES_USER" >/dev/null 2>&1; then cmd_install; fi
  if pid_alive; then
    say "node pid $(cat "$PID_FILE") is up but not healthy yet; waiting"
  else
    if curl -s --max-time 2 -o /dev/null "$URL/" 2>/dev/null; then
      die "port $PORT answers but is not a healthy Elasticsearch node; set JIANFU_ES_PORT"
    fi
    write_config
    local jh
    jh="$(java_home)"
    [[ -x "$jh/bin/java" ]] || die "no java in $jh; set ES_JAVA_HOME"
    rm -f "$PID_FILE"
    say "starting Elasticsearch $VERSION on $URL (heap $HEAP, java $jh)"
    as_node_user env ES_JAVA_HOME="$jh" ES_PATH_CONF="$NODE_DIR/config" \
      ES_JAVA_OPTS="-Xms${HEAP} -Xmx${HEAP}" \
      "$HOME_DIR/bin/elasticsearch" -d -p "$PID_FILE" >"$NODE_DIR/logs/stdout.log" 2>&1 \
      || { tail -n 30 "$NODE_DIR/logs/stdout.log" >&2 || true; die "node failed to start (see $NODE_DIR/logs)"; }
  fi
  local waited=0
  until healthy; do
    if (( waited >= TIMEOUT )); then
      tail -n 30 "$NODE_DIR/logs/jianfu-test.log" >&2 2>/dev/null || true
      die "no healthy cluster at $URL after ${TIMEOUT}s (see $NODE_DIR/logs)"
    fi
    if (( waited > 5 )) && ! pid_alive; then
      tail -n 30 "$NODE_DIR/logs/jianfu-test.log" >&2 2>/dev/null || tail -n 30 "$NODE_DIR/logs/stdout.log" >&2 || true
      die "node exited during start (see $NODE_DIR/logs)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "healthy after ${waited}s"
  echo "$URL"
}

cmd_stop() {
  if ! pid_alive; then
    rm -f "$PID_FILE"
    say "not running (no live pid in $PID_FILE)"
    return 0
  fi
  local pid waited=0
  pid="$(cat "$PID_FILE")"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= 60 )); then
      say "pid $pid ignored TERM for 60s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  rm -f "$PID_FILE"
  say "stopped (pid $pid)"
}

cmd_status() {
  if healthy; then
    curl -fsS --max-time 3 "$URL/_cluster/health" || true
    echo
    echo "$URL"
    return 0
  fi
  if pid_alive; then
    say "pid $(cat "$PID_FILE") is running but $URL is not healthy"
  else
    say "not running at $URL"
  fi
  return 3
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 {install|start|stop|status}" >&2; exit 2 ;;
esac
