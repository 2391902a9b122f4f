#!/bin/bash
# cs.sh - throw-away Corosync clusters for tests and demos (Debian 12,
# corosync 3.1.7, root, no systemd). Every node runs in a network namespace of
# its own with a private /run, so it cannot collide with a host Corosync, with
# another test run, or with the hard-coded /run/corosync.pid lock.
#
#   cs.sh up1              one node (nodeid 1, 127.0.0.1) in netns ${CS_PREFIX}0
#   cs.sh up3              three nodes ${CS_PREFIX}1..3, two knet links each
#                          (10.0.0.0/24 and 10.0.1.0/24 on two bridges in
#                          netns ${CS_PREFIX}br; the host's namespace is untouched)
#   cs.sh exec N CMD...    run CMD next to node N (0 = the single node): CPG
#                          clients must share their Corosync's network namespace
#   cs.sh kill N [SIG]     stop node N's Corosync (TERM; KILL after 5 s)
#   cs.sh start N          start node N's Corosync (its network must exist)
#   cs.sh restart N        kill N TERM, start N, wait until it sees its peers
#   cs.sh wait N M         wait until node N sees M members (15 s at most)
#   cs.sh status           nodes, pids, namespaces of this prefix
#   cs.sh down             stop every node, delete the namespaces, remove the
#                          /dev/shm files Corosync and its clients leave behind
#
# Environment:
#   CS_DIR     work directory (configs, state, logs)   default /tmp/mlcs-$CS_PREFIX
#   CS_PREFIX  netns name prefix, unique per user/run  default mlcs
#   CS_FAST    1: token 300 ms, token_coefficient 0, knet ping 200/1000 ms
#              (a killed node is noticed in ~0.65 s); default 1 for up3.
#              Lowering only the token makes a loaded cluster flap.
# Exit status: 0 ok, 1 failure, 2 usage, 77 not root or corosync missing.
set -euo pipefail
P=${CS_PREFIX:-mlcs}
D=${CS_DIR:-/tmp/mlcs-$P}

die() { echo "cs.sh: $*" >&2; exit 1; }

preflight() {
	[ "$(id -u)" = 0 ] || { echo "cs.sh: needs root (network namespaces, bind mounts)" >&2; exit 77; }
	command -v corosync >/dev/null || { echo "cs.sh: corosync is not installed" >&2; exit 77; }
	command -v ip >/dev/null || { echo "cs.sh: ip (iproute2) is not installed" >&2; exit 77; }
}

# conf IDX NODE... : write $D/nIDX/corosync.conf. NODE 0 is the single
# loopback node. One option per line: the parser rejects "a { b: c }".
conf() {
	local i=$1 fast=$2 d=$D/n$1 j l links
	shift 2
	mkdir -p "$d/state" "$d/run"
	[ "$i" = 0 ] && links=0 || links="0 1"
	{
		printf 'totem {\n\tversion: 2\n\tcluster_name: mlcs\n\ttransport: knet\n'
		printf '\tcrypto_cipher: none\n\tcrypto_hash: none\n'
		if [ "$fast" = 1 ]; then
			printf '\ttoken: 300\n\ttoken_coefficient: 0\n'
		fi
		for l in $links; do
			printf '\tinterface {\n\t\tlinknumber: %s\n' "$l"
			# With token 300 the derived knet ping timeout (150 ms) flaps
			# on a busy 2-core machine; 200/1000 does not.
			if [ "$fast" = 1 ]; then
				printf '\t\tknet_ping_interval: 200\n\t\tknet_ping_timeout: 1000\n'
			fi
			printf '\t}\n'
		done
		printf '}\nnodelist {\n'
		for j in "$@"; do
			if [ "$j" = 0 ]; then
				printf '\tnode {\n\t\tnodeid: 1\n\t\tname: node1\n\t\tring0_addr: 127.0.0.1\n\t}\n'
			else
				printf '\tnode {\n\t\tnodeid: %s\n\t\tname: n%s\n' "$j" "$j"
				printf '\t\tring0_addr: 10.0.0.%s\n\t\tring1_addr: 10.0.1.%s\n\t}\n' "$j" "$j"
			fi
		done
		printf '}\nquorum {\n\tprovider: corosync_votequorum\n}\n'
		printf 'logging {\n\tto_stderr: yes\n\tto_logfile: no\n\tto_syslog: no\n\ttimestamp: hires\n}\n'
		printf 'system {\n\tstate_dir: %s/state\n}\n' "$d"
	} > "$d/corosync.conf"
	ip netns exec "$P$i" corosync -t -c "$d/corosync.conf" >/dev/null 2>&1 ||
		die "node $i: corosync -t rejects $d/corosync.conf"
}

node_pid() { cat "$D/n$1/corosync.pid" 2>/dev/null; }

# start IDX: corosync -f inside the node's netns, with a private /run
# (Corosync locks the hard-coded /run/corosync.pid). ip netns exec unshares
# the mount namespace, so the bind mount stays private to this process tree.
start() {
	local i=$1 d=$D/n$1 pid
	[ -f "$d/corosync.conf" ] || die "node $i: not set up (run up1/up3 first)"
	pid=$(node_pid "$i") && kill -0 "$pid" 2>/dev/null && die "node $i: already running (pid $pid)"
	setsid ip netns exec "$P$i" sh -c "mount --bind '$d/run' /run && exec corosync -f -c '$d/corosync.conf'" \
		>> "$d/corosync.log" 2>&1 < /dev/null &
	echo $! > "$d/corosync.pid" # ip netns exec and sh both exec: this is corosync's pid
}

# wait_members IDX M: poll votequorum (IPC, in the node's netns) until the
# node sees M nodes; fail at once if its Corosync died.
wait_members() {
	local i=$1 m=$2 n pid k
	pid=$(node_pid "$i") || die "node $i: not started"
	for k in $(seq 1 300); do
		n=$(ip netns exec "$P$i" corosync-quorumtool -s 2>/dev/null | awk '/^Nodes:/{print $2}') || true
		[ "${n:-0}" -ge "$m" ] && return 0
		kill -0 "$pid" 2>/dev/null || { tail -5 "$D/n$i/corosync.log" >&2; die "node $i: corosync exited"; }
		sleep 0.05
	done
	die "node $i: fewer than $m members after 15 s"
}

# shm_clean PID: libqb files of a Corosync: its blackbox (8 MB) and one ring
# directory per client connection (3 MB each). A clean exit removes them, a
# kill -9 does not.
shm_clean() {
	rm -rf /dev/shm/qb-"$1"-* /dev/shm/qb-corosync-"$1"-blackbox-* 2>/dev/null || true
}

kill_node() {
	local i=$1 sig=${2:-TERM} pid k
	pid=$(node_pid "$i") || return 0
	if kill -0 "$pid" 2>/dev/null; then
		kill -"$sig" "$pid" 2>/dev/null || true
		for k in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
		kill -KILL "$pid" 2>/dev/null || true
		for k in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
	fi
	shm_clean "$pid"
	rm -f "$D/n$i/corosync.pid"
}

netns_add() { ip netns add "$1"; ip -n "$1" link set lo up; }

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up1)
	preflight
	ip netns list | grep -qw "^${P}0" && die "netns ${P}0 exists: run '$0 down' first"
	mkdir -p "$D"
	netns_add "${P}0"
	conf 0 "${CS_FAST:-0}" 0
	start 0
	wait_members 0 1
	;;
up3)
	preflight
	ip netns list | grep -qw "^${P}br" && die "netns ${P}br exists: run '$0 down' first"
	mkdir -p "$D"
	netns_add "${P}br"
	for l in 0 1; do
		ip -n "${P}br" link add br$l type bridge
		ip -n "${P}br" link set br$l up
	done
	for i in 1 2 3; do
		netns_add "$P$i"
		for l in 0 1; do
			ip link add eth$l netns "$P$i" type veth peer name v$i-$l netns "${P}br"
			ip -n "${P}br" link set v$i-$l master br$l
			ip -n "${P}br" link set v$i-$l up
			ip -n "$P$i" addr add 10.0.$l.$i/24 dev eth$l
			ip -n "$P$i" link set eth$l up
		done
		conf $i "${CS_FAST:-1}" 1 2 3
	done
	for i in 1 2 3; do start $i; done
	for i in 1 2 3; do wait_members $i 3; done
	;;
exec)
	[ $# -ge 2 ] || { sed -n 2,30p "$0"; exit 2; }
	n=$1
	shift
	exec ip netns exec "$P$n" "$@"
	;;
start) start "$1" ;;
wait) wait_members "$1" "$2" ;;
kill) kill_node "$1" "${2:-TERM}" ;;
restart)
	kill_node "$1" TERM
	start "$1"
	[ "$1" = 0 ] && wait_members 0 1 || wait_members "$1" 3
	;;
status)
	for i in 0 1 2 3; do
		pid=$(node_pid $i) || continue
		kill -0 "$pid" 2>/dev/null && s=running || s=dead
		echo "node $i: pid $pid $s"
	done
	ip netns list | grep "^$P" || true
	;;
down)
	for i in 0 1 2 3; do [ -f "$D/n$i/corosync.pid" ] && kill_node $i TERM & done
	wait
	for i in 0 1 2 3 br; do ip netns del "$P$i" 2>/dev/null || true; done
	;;
*)
	sed -n 2,30p "$0"
	exit 2
	;;
esac
