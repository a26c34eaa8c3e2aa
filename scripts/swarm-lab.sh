#!/usr/bin/env bash
# A Swarm of several nodes on one machine, for `make test-swarm` and for trying the watcher on it.
#
#   scripts/swarm-lab.sh up N         # N private dockerds, each in a network namespace of its own,
#                                     # joined into one swarm (node 1 the manager, the rest workers)
#   scripts/swarm-lab.sh env          # prints the lab's variables (export them with eval)
#   scripts/swarm-lab.sh stop-node I  # kills node I's dockerd (SIGKILL, as a crash would)
#   scripts/swarm-lab.sh start-node I # starts it again on its data
#   scripts/swarm-lab.sh down         # stops every node; removes namespaces, links, bridge and data
#
# Wiring: a bridge ${SWARM_LAB_NAME}br in the root namespace, without an address; per node a
# namespace ${SWARM_LAB_NAME}I (/var/run/netns/), a veth pair (one end on the bridge, eth0 inside)
# and ${SWARM_LAB_NET}.(10+I)/24. Each dockerd runs in its namespace (nsenter --net, not `ip netns
# exec`, which remounts /sys and breaks dockerd) and its own UTS namespace (hostname labI), with
# the private engine's flags (scripts/test-engine.sh) and its own data, exec root, pidfile and unix
# socket under ${SWARM_LAB_DIR}. The CLI reaches every node through its socket from the root
# namespace. Images: 127.0.0.1 in a namespace is that namespace's own loopback, so a registry for
# the nodes listens on 127.0.0.1:PORT inside each node's namespace (the test serves one there, see
# testenv.Registry.ServeIn), and images are named 127.0.0.1:PORT/… everywhere. Services need no
# overlay network: tasks without published ports and without --network run anywhere. Traffic
# stays between the namespaces this script creates. Needs root, iproute2 and util-linux.
set -euo pipefail

dir=${SWARM_LAB_DIR:-/tmp/swarm-lab}
name=${SWARM_LAB_NAME:-wlab}
net=${SWARM_LAB_NET:-10.251.0}
bridge=${name}br

node_dir() { echo "$dir/n$1"; }
sock() { echo "unix://$(node_dir "$1")/docker.sock"; }
addr() { echo "$net.$((10 + $1))"; }
nodes() { cat "$dir/nodes" 2>/dev/null || echo 0; }

die() { echo "swarm-lab: $*" >&2; exit 1; }

need() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, dockerd)"
  for c in ip nsenter unshare dockerd docker; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found (apt-get install iproute2 util-linux docker.io)"
  done
}

start_node() {
  local i=$1 d
  d=$(node_dir "$i")
  mkdir -p "$d/data" "$d/exec"
  rm -f "$d/docker.sock" "$d/docker.pid"
  env -u DOCKER_HOST -u DOCKER_TLS_VERIFY -u DOCKER_CERT_PATH \
    nohup nsenter --net="/var/run/netns/$name$i" unshare --uts sh -c "hostname lab$i && exec dockerd \
      --host $(sock "$i") --data-root $d/data --exec-root $d/exec --pidfile $d/docker.pid \
      --storage-driver=vfs --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
      --userland-proxy=false" >"$d/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    if DOCKER_HOST=$(sock "$i") docker version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  tail -n 20 "$d/dockerd.log" >&2 || true
  die "node $i's dockerd did not come up within 30s"
}

stop_node() {
  local i=$1 d pid
  d=$(node_dir "$i")
  [ -f "$d/docker.pid" ] || return 0
  pid=$(cat "$d/docker.pid")
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$d/docker.pid"
}

up() {
  local n=${1:-3} i token
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 40 ] || die "up N: N is 1 to 40 nodes"
  need
  [ -e "$dir/nodes" ] && die "a lab is up at $dir; run '$0 down' first"
  ip link show "$bridge" >/dev/null 2>&1 && die "link $bridge exists; run '$0 down' first"
  ip -o addr show | grep -q " $net\." && die "$net.0/24 is in use on this machine; set SWARM_LAB_NET"
  mkdir -p "$dir"
  echo "$n" >"$dir/nodes"
  ip link add "$bridge" type bridge
  ip link set "$bridge" up
  for i in $(seq 1 "$n"); do
    ip netns add "$name$i"
    ip link add "${name}h$i" type veth peer name "${name}n$i"
    ip link set "${name}n$i" netns "$name$i"
    ip link set "${name}h$i" master "$bridge" up
    ip -n "$name$i" link set "${name}n$i" name eth0
    ip -n "$name$i" addr add "$(addr "$i")/24" dev eth0
    ip -n "$name$i" link set eth0 up
    ip -n "$name$i" link set lo up
  done
  for i in $(seq 1 "$n"); do start_node "$i"; done
  DOCKER_HOST=$(sock 1) docker swarm init --advertise-addr "$(addr 1)" >/dev/null
  token=$(DOCKER_HOST=$(sock 1) docker swarm join-token -q worker)
  for i in $(seq 2 "$n"); do
    DOCKER_HOST=$(sock "$i") docker swarm join --token "$token" "$(addr 1):2377" >/dev/null
  done
  for _ in $(seq 1 150); do
    [ "$(DOCKER_HOST=$(sock 1) docker node ls --format '{{.Status}}' | grep -c Ready)" = "$n" ] && break
    sleep 0.2
  done
  envfile >"$dir/env"
  echo "swarm-lab: $n nodes up" >&2
  envfile
}

envfile() {
  local n i socks="" netns=""
  n=$(nodes)
  for i in $(seq 1 "$n"); do
    socks="$socks $(sock "$i")"
    netns="$netns /var/run/netns/$name$i"
  done
  echo "SWARM_LAB_DIR=$dir"
  echo "SWARM_LAB_MANAGER=$(sock 1)"
  echo "SWARM_LAB_NODES='${socks# }'"
  echo "SWARM_LAB_NETNS='${netns# }'"
}

down() {
  local n i d
  n=$(nodes)
  for i in $(seq 1 "$n"); do stop_node "$i"; done
  # What the dockerds left: their containerd, shims and containers' processes, then their mounts.
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q -- "$dir/n"; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  grep " $dir/" /proc/mounts 2>/dev/null | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for i in $(seq 1 "$n"); do ip netns del "$name$i" 2>/dev/null || true; done
  ip link del "$bridge" 2>/dev/null || true
  rm -rf "$dir"
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  env) [ -e "$dir/nodes" ] || die "no lab at $dir"; envfile ;;
  stop-node) stop_node "${2:?stop-node I}" ;;
  start-node) start_node "${2:?start-node I}" ;;
  down) down ;;
  *) echo "usage: $0 up N | env | stop-node I | start-node I | down" >&2; exit 2 ;;
esac
