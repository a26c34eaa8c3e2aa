#!/usr/bin/env bash
# Starts, stops and describes a private Docker engine for the integration tests.
#
#   scripts/test-engine.sh start   # installs docker.io if missing, starts dockerd, prints DOCKER_HOST=...
#   scripts/test-engine.sh env     # prints `export DOCKER_HOST=...` for a running private engine
#   scripts/test-engine.sh stop    # stops it and removes its data
#
# The engine never touches the machine's default daemon: its socket, data, exec root and pidfile all
# live under $WATCHER_ENGINE_DIR (default /tmp/watcher-test-engine). It runs with vfs storage, no
# bridge, no iptables and no masquerading, which is what a container-in-a-sandbox machine allows and
# all the tests need: they never publish ports and never send traffic to container IPs.
set -euo pipefail

dir=${WATCHER_ENGINE_DIR:-/tmp/watcher-test-engine}
sock="$dir/docker.sock"
pidfile="$dir/docker.pid"
host="unix://$sock"

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && [ -S "$sock" ]
}

install() {
  command -v dockerd >/dev/null 2>&1 && return 0
  echo "test-engine: dockerd not found; installing Debian's docker.io" >&2
  if [ "$(id -u)" != 0 ]; then
    echo "test-engine: need root to apt-get install docker.io" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq docker.io >&2
}

start() {
  if running; then
    echo "DOCKER_HOST=$host"
    return 0
  fi
  install
  mkdir -p "$dir/data" "$dir/exec"
  rm -f "$sock" "$pidfile"
  # --host only: the machine's default socket and any DOCKER_* variables are ignored.
  env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    nohup dockerd \
    --host "$host" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$pidfile" \
    --storage-driver=vfs \
    --bridge=none \
    --iptables=false \
    --ip6tables=false \
    --ip-masq=false \
    --userland-proxy=false \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    if [ -S "$sock" ] && DOCKER_HOST="$host" docker version >/dev/null 2>&1; then
      echo "DOCKER_HOST=$host"
      return 0
    fi
    sleep 0.2
  done
  echo "test-engine: dockerd did not come up within 30s; last log lines:" >&2
  tail -n 30 "$dir/dockerd.log" >&2 || true
  exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Containers' shims and mounts die with the daemon; unmount anything left before removing the data.
  grep " $dir/" /proc/mounts 2>/dev/null | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    if running; then echo "export DOCKER_HOST=$host"; else echo "test-engine: not running (scripts/test-engine.sh start)" >&2; exit 1; fi ;;
  status)
    if running; then echo "running: DOCKER_HOST=$host"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
