#!/bin/bash
# test_pubsub3.sh MLPS_NODE - discovery across three Corosync nodes (cs.sh up3:
# a network namespace each, two knet links, fast failure detection), with
# publishers and subscribers on every node. One agent per node (MLPS_NODE
# agent, see tests/corosync/mlps_node.c) takes commands through a FIFO and
# prints its view; this script compares every view with what was published.
# The agents stamp their events with CLOCK_REALTIME, which all namespaces
# share with this script: latencies are measured from the kills stamped here.
#
#   1. publish, update, withdraw (also in quick succession, and one name from
#      two publishers): every node's view is exactly the published set
#   2. a late subscriber's snapshot is that set
#   3. kill -9 of a publisher process: removed everywhere (publisher-left);
#      kill -9 of node 3's Corosync: its resources removed on nodes 1 and 2
#      (node-left), node 3's view emptied (disconnected)
#   4. node 3's Corosync started again: its processes reconnect by themselves
#      and re-announce; every view is the whole set again
#   5. partition: the bridges stop forwarding node 3's two links; changes on
#      both sides, each side keeps its own part; once knet has given the
#      links up, forwarding again: all views converge to the union
#   6. a frontend on node 1 (message-layer node 101, connect_publishers) with
#      requests held by a backend on node 2 (node 102, listening on both of
#      node 2's addresses): node 2 crashes (kill -9 of its Corosync, then of
#      the backend): every request completes with ML_EPEERDOWN
#
# RESULT lines carry the timings. Prints SKIP and succeeds when not root or
# Corosync is missing. Processes, namespaces and /dev/shm files are cleaned up
# on every exit.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: test_pubsub3.sh path/to/mlps_node}
if [ "$(id -u)" != 0 ]; then echo "SKIP test_pubsub3: needs root (network namespaces)"; exit 0; fi
if ! command -v corosync >/dev/null || ! command -v ip >/dev/null; then
	echo "SKIP test_pubsub3: corosync or ip not installed"; exit 0
fi
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
CS_PREFIX=mlps3-$$-
CS_DIR=$(mktemp -d /tmp/mlps3-test.XXXXXX)
export CS_PREFIX CS_DIR
cs=$here/cs.sh
declare -a win rin     # per node: the agent's command FIFO (write end), reply FIFO (read end)
declare -A rec         # what is published, "NAME:NODE" -> the view line every node must show

now_us() { echo "${EPOCHREALTIME/./}"; }
# lat_ms T_US NS: milliseconds from T_US (ours) to NS (an agent's stamp)
lat_ms() { awk -v t="$1" -v e="$2" 'BEGIN { printf "%.1f", (e / 1000 - t) / 1000 }'; }

cleanup() {
	local n
	for n in 1 2 3; do
		[ -n "${win[$n]:-}" ] && eval "exec ${win[$n]}>&- ${rin[$n]}<&-"
	done
	# agents exit when their command FIFO closes; publishers and backends wait to be killed
	kill $(jobs -p) 2>/dev/null
	wait 2>/dev/null
	local d0
	d0=$(now_us)
	"$cs" down
	echo "corosync stopped and namespaces removed in $(( ($(now_us) - d0) / 1000 )) ms"
	rm -rf "$CS_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
trap '' PIPE # an agent that died shows as a failed command, not as our death

fail() {
	local n
	echo "FAIL test_pubsub3: $*"
	for n in 1 2 3; do
		[ -s "$CS_DIR/a$n.err" ] && { echo "-- agent $n stderr:"; tail -15 "$CS_DIR/a$n.err"; }
		[ -s "$CS_DIR/p$n.err" ] && { echo "-- publishers on node $n, stderr:"; tail -5 "$CS_DIR/p$n.err"; }
		[ -s "$CS_DIR/n$n/corosync.log" ] && { echo "-- corosync $n:"; tail -8 "$CS_DIR/n$n/corosync.log"; }
	done
	exit 1
}

# start_agent N [ML_NODE]: node N's agent, its FIFOs in win[N] and rin[N]
start_agent() {
	local n=$1 fd
	shift
	mkfifo "$CS_DIR/a$n.in" "$CS_DIR/a$n.out"
	"$cs" exec "$n" "$bin" agent "$@" < "$CS_DIR/a$n.in" > "$CS_DIR/a$n.out" 2> "$CS_DIR/a$n.err" &
	exec {fd}> "$CS_DIR/a$n.in"
	win[$n]=$fd
	exec {fd}< "$CS_DIR/a$n.out"
	rin[$n]=$fd
	apid[$n]=$!
}

# ask N WORDS...: one command to node N's agent; its reply lines (the final
# "ok" left out) on stdout. Fails on "err", on EOF and after 10 s of silence.
ask() {
	local n=$1 line
	shift
	printf '%s\n' "$*" >&"${win[$n]}" 2>/dev/null || { echo "node $n: agent gone" >&2; return 1; }
	while IFS= read -r -t 10 -u "${rin[$n]}" line; do
		case $line in
		ok) return 0 ;;
		err*) echo "node $n: $*: $line" >&2; return 1 ;;
		*) printf '%s\n' "$line" ;;
		esac
	done
	echo "node $n: $*: no answer" >&2
	return 1
}

# field LINE KEY: the value of KEY=value in LINE
field() { local l=" $1 "; l=${l#* $2=}; echo "${l%% *}"; }

# spawn N ARGS...: an mlps_node publisher or backend next to node N; pid in $spawned
spawn() {
	local n=$1
	shift
	"$cs" exec "$n" "$bin" "$@" < /dev/null > /dev/null 2>> "$CS_DIR/p$n.err" &
	spawned=$!
}

eps() { echo "tcp://10.0.0.$1:$2 tcp://10.0.1.$1:$2"; } # eps NODE PORT: both of its networks

# expect N NAME SIZE EP...: node N publishes this (unexpect N NAME: no longer)
expect() {
	local n=$1 name=$2 size=$3
	shift 3
	rec[$name:$n]="$name node=$n size=$size eps=$(IFS=,; echo "$*")"
}
unexpect() { unset "rec[$2:$1]"; }
pub() { ask "$1" pub "${@:2}" > /dev/null || fail "pub ${*:2} on node $1"; expect "$@"; }
wd() { ask "$1" wd "$2" > /dev/null || fail "wd $2 on node $1"; unexpect "$1" "$2"; }
# upd N NAME SIZE [EP...]: without endpoints the record keeps its own
upd() {
	local n=$1 name=$2 size=$3 old=${rec[$2:$1]}
	shift 3
	ask "$n" upd "$name" "$size" "$@" > /dev/null || fail "upd $name on node $n"
	if [ $# = 0 ]; then
		rec[$name:$n]="$name node=$n size=$size eps=${old##*eps=}"
	else
		expect "$n" "$name" "$size" "$@"
	fi
}

# want NODES...: the view lines of what NODES publish, sorted as the agents sort
want() {
	local k n
	for k in "${!rec[@]}"; do
		for n in "$@"; do [ "${k##*:}" = "$n" ] && echo "${rec[$k]}"; done
	done | LC_ALL=C sort
}

# converge WHAT NODES WANT [SECONDS]: poll the views of NODES until each is WANT
converge() {
	local what=$1 nodes=$2 w=$3 end=$(( $(now_us) + ${4:-10} * 1000000 )) n got same
	while :; do
		same=1
		for n in $nodes; do
			got=$(ask "$n" view) || fail "$what: node $n has no view"
			[ "$got" = "$w" ] || { same=0; break; }
		done
		[ $same = 1 ] && return 0
		if [ "$(now_us)" -gt $end ]; then
			echo "-- node $n's view, then the expected one:"
			echo "$got"
			echo "--"
			echo "$w"
			fail "$what: node $n's view is not the published set after ${4:-10} s"
		fi
		sleep 0.02
	done
}

# poll WHAT SECONDS CMD...: run CMD until it succeeds
poll() {
	local what=$1 s=$2 end
	shift 2
	end=$(( $(now_us) + s * 1000000 ))
	until "$@"; do
		[ "$(now_us)" -lt $end ] || fail "$what: not after $s s"
		sleep 0.02
	done
}

# last_event N NAME: node N's last event about NAME, in $info
last_event() { info=$(ask "$1" info "$2") || fail "node $1 knows nothing of $2"; }
# removed_ms N NAME REASON T_US: node N removed NAME for REASON; ms since T_US
removed_ms() {
	last_event "$1" "$2"
	case $info in *" present=0 reason=$3 "*) ;; *) fail "node $1: $info (want removed, $3)" ;; esac
	lat_ms "$4" "$(field "$info" removed_ns)"
}
# added_ms N NAME T_US: node N holds NAME; ms from T_US to its last add
added_ms() {
	last_event "$1" "$2"
	case $info in *" present=1 "*) ;; *) fail "node $1: $info (want present)" ;; esac
	lat_ms "$3" "$(field "$info" added_ns)"
}

# node_left_told N NODE: node N's on_node_left named NODE last
node_left_told() {
	local l
	l=$(ask "$1" cs) || fail "node $1: agent gone"
	[ "$(field "$l" last_node_left)" = "$2" ] || fail "node $1: $l (want on_node_left($2))"
}

agents_joined() {
	local n l
	for n in 1 2 3; do
		l=$(ask "$n" cs) || fail "node $n: agent gone"
		[ "$(field "$l" joined)" = 1 ] || return 1
	done
}

# fe_has KEY=VALUE...: the frontend (node 1) says so; its last line in $fe
fe_has() {
	local kv
	fe=$(ask 1 fe) || fail "node 1: no frontend"
	for kv in "$@"; do [[ " $fe " == *" $kv "* ]] || return 1; done
}

cs_pid() { cat "$CS_DIR/n$1/corosync.pid"; }

# ---- the cluster and the agents ----------------------------------------------------------

t0=$(now_us)
"$cs" up3 > "$CS_DIR/up3.log" 2>&1 || { cat "$CS_DIR/up3.log"; fail "cs.sh up3"; }
echo "three corosync nodes ready in $(( ($(now_us) - t0) / 1000 )) ms"
start_agent 1 101 # with the frontend of scenario 6
start_agent 2
start_agent 3
poll "the agents join the group" 10 agents_joined
converge "start" "1 2 3" ""

# ---- 1. publish, update, withdraw -----------------------------------------------------------

t_pub=$(now_us)
pub 1 n1/vol0 100 $(eps 1 7400)
for n in 2 3; do pub $n n$n/vol0 $(( n * 100 )) $(eps $n 7400); done
for n in 1 2 3; do pub $n n$n/vol1 $(( n * 100 + 1 )) $(eps $n 7400); done
pub 1 shared/x 1 $(eps 1 7400) # one name, two publishers: two resources
pub 2 shared/x 2 $(eps 2 7400)
converge "publish" "1 2 3" "$(want 1 2 3)"
pub_lat="$(added_ms 1 n1/vol0 "$t_pub") / $(added_ms 2 n1/vol0 "$t_pub") / $(added_ms 3 n1/vol0 "$t_pub")"

upd 1 n1/vol0 150
upd 2 n2/vol1 250 $(eps 2 7401)
upd 3 n3/vol0 350 tcp://10.0.1.3:7400
converge "update" "1 2 3" "$(want 1 2 3)"

wd 1 n1/vol1
wd 3 n3/vol1
wd 2 shared/x
converge "withdraw" "1 2 3" "$(want 1 2 3)"

pub 2 n2/flip 1 $(eps 2 7400)
upd 2 n2/flip 2
wd 2 n2/flip
pub 2 n2/flip 3 tcp://10.0.0.2:7401
converge "publish, update, withdraw, publish in a row" "1 2 3" "$(want 1 2 3)"
echo "ok 1: publish, update, withdraw: every view is the published set ($(want 1 2 3 | wc -l) records)"

# ---- 2. late subscribers --------------------------------------------------------------------

for n in 1 2 3; do
	got=$(ask $n late) || fail "node $n: late subscriber"
	[ "$got" = "$(want 1 2 3)" ] || { echo "$got"; fail "node $n: the late snapshot is not the published set"; }
done
pub 3 n3/after-late 5 $(eps 3 7400) # from now on view also compares the late subscribers'
converge "after the late subscribers" "1 2 3" "$(want 1 2 3)"
echo "ok 2: late subscribers got the snapshot"

# ---- 3. kill -9 of a publisher process, of a node's Corosync ---------------------------------

spawn 2 publisher n2/child 7 $(eps 2 7500)
child=$spawned
expect 2 n2/child 7 $(eps 2 7500)
converge "a publisher process on node 2" "1 2 3" "$(want 1 2 3)"
t_kill=$(now_us)
kill -KILL $child
wait $child 2>/dev/null # reaped, without the shell's "Killed" notice
unexpect 2 n2/child
converge "publisher process killed" "1 2 3" "$(want 1 2 3)"
proc_lat="$(removed_ms 1 n2/child publisher-left "$t_kill") / $(removed_ms 2 n2/child publisher-left "$t_kill") / $(removed_ms 3 n2/child publisher-left "$t_kill")"
echo "ok 3a: publisher process kill -9: removed everywhere"

spawn 3 publisher n3/child 8 $(eps 3 7500) # lives on through its Corosync's death
expect 3 n3/child 8 $(eps 3 7500)
converge "a publisher process on node 3" "1 2 3" "$(want 1 2 3)"
t_kill=$(now_us)
kill -KILL "$(cs_pid 3)"
converge "node 3's Corosync killed: nodes 1 and 2" "1 2" "$(want 1 2)"
converge "node 3's Corosync killed: node 3 sees nothing" 3 ""
node_lat="$(removed_ms 1 n3/vol0 node-left "$t_kill") / $(removed_ms 2 n3/vol0 node-left "$t_kill")"
for n in 1 2; do removed_ms $n n3/child node-left "$t_kill" > /dev/null; done
removed_ms 3 n1/vol0 disconnected "$t_kill" > /dev/null
node_left_told 1 3
node_left_told 2 3
"$cs" kill 3 KILL # reaped, its /dev/shm files removed
echo "ok 3b: node 3's Corosync kill -9: its resources removed on nodes 1 and 2, node 3's view emptied"

# ---- 4. node 3 restarted: reconnect and re-announce -----------------------------------------

t_start=$(now_us)
"$cs" start 3
converge "node 3 restarted" "1 2 3" "$(want 1 2 3)" 15
l=$(ask 3 cs) || fail "node 3: agent gone"
[ "$(field "$l" ups)" = 2 ] && [ "$(field "$l" downs)" = 1 ] || fail "node 3: $l (want 2 ups, 1 down)"
rejoin_lat="$(lat_ms "$t_start" "$(field "$l" up_ns)") / $(added_ms 1 n3/vol0 "$t_start") / $(added_ms 2 n3/vol0 "$t_start") / $(added_ms 3 n1/vol0 "$t_start")"
echo "ok 4: node 3 restarted: it re-announced, every view is the whole set again"

# ---- 5. partition: node 3 cut off, then back ------------------------------------------------

# The "switch" (the bridges' namespace) stops forwarding node 3's ports, both
# ways and silently, as a failed switch port would; node 3's own interfaces
# stay up. (Taking node 3's own interfaces down instead made its knet fail
# its sends at once; in 2 of 6 runs, with the cut right after node 3's
# restart, it never took its links up again once they were back.)
cut() { local l; for l in 0 1; do bridge -n "${CS_PREFIX}br" link set dev "v3-$l" state "$1"; done; }
# knet_down N PEER: node N's knet has given up on both links to PEER
knet_down() {
	[ "$(ip netns exec "$CS_PREFIX$1" corosync-cfgtool -s 2>/dev/null |
		grep -cE "nodeid: +$2:[[:space:]]+disconnected")" = 2 ]
}
t_cut=$(now_us)
cut 0 # disabled
converge "partition: nodes 1 and 2" "1 2" "$(want 1 2)"
converge "partition: node 3" 3 "$(want 3)"
cut_lat="$(removed_ms 1 n3/vol0 node-left "$t_cut") / $(removed_ms 3 n1/vol0 node-left "$t_cut")"
upd 1 n1/vol0 175 # changes on both sides while split
wd 2 n2/flip
pub 3 n3/split 9 $(eps 3 7400)
converge "partition, after changes: nodes 1 and 2" "1 2" "$(want 1 2)"
converge "partition, after changes: node 3" 3 "$(want 3)"
# a partition, not a blip: the links themselves are found dead and must be found again
poll "knet on node 1 gives node 3 up" 10 knet_down 1 3
poll "knet on node 3 gives node 1 up" 10 knet_down 3 1
t_heal=$(now_us)
cut 3 # forwarding
converge "partition healed" "1 2 3" "$(want 1 2 3)" 20
heal_lat="$(added_ms 1 n3/split "$t_heal") / $(added_ms 3 n1/vol0 "$t_heal")"
echo "ok 5: partition: each side kept its part, the healed cluster converged to the union"

# ---- 6. frontend on node 1, backend on node 2, node 2 crashes --------------------------------

spawn 2 backend 102 backend/vol0 1 $(eps 2 7600)
backend=$spawned
expect 2 backend/vol0 1 $(eps 2 7600)
converge "the backend published" "1 2 3" "$(want 1 2 3)"
poll "the frontend's session to the backend" 10 fe_has peer=1
fe_has ml_node=102 eps=2 || fail "frontend: $fe (want ml node 102, 2 endpoints)"
ask 1 fesend 5 > /dev/null || fail "frontend: requests not sent"
# acked by the backend, over both links
poll "the backend holds 5 requests" 10 fe_has pending=5 inflight=0 paths_up=2
t_kill=$(now_us)
kill -KILL "$(cs_pid 2)" "$backend" # Corosync first: nobody on node 2 can report the backend's end
wait "$backend" 2>/dev/null
poll "the 5 requests complete" 10 fe_has done=5
fe_has peerdown=5 other=0 declared_down=1 removes=1 removed_reason=node-left ||
	fail "frontend: $fe (want 5 ML_EPEERDOWN, declared down once, the record removed: node-left)"
peerdown_lat=$(lat_ms "$t_kill" "$(field "$fe" last_done_ns)")
for k in "${!rec[@]}"; do [ "${k##*:}" = 2 ] && unset "rec[$k]"; done
converge "node 2 crashed" "1 3" "$(want 1 3)"
crash_lat="$(removed_ms 1 n2/vol0 node-left "$t_kill") / $(removed_ms 3 n2/vol0 node-left "$t_kill")"
node_left_told 1 2
node_left_told 3 2
"$cs" kill 2 KILL
echo "ok 6: node 2 crashed: the frontend's 5 requests failed with ML_EPEERDOWN"

# ---- the agents end cleanly (a sanitizer's leak check runs at exit) -------------------------

for n in 1 2 3; do
	ask $n quit > /dev/null || fail "node $n: quit"
	wait "${apid[$n]}" || fail "node $n: agent exit status $?"
done

echo "RESULT publish on node 1 -> added on nodes 1 / 2 / 3: $pub_lat ms"
echo "RESULT publisher process kill -9 -> removed on nodes 1 / 2 / 3: $proc_lat ms"
echo "RESULT node 3 Corosync kill -9 -> removed (node-left) on nodes 1 / 2: $node_lat ms"
echo "RESULT node 3 Corosync start -> its agent rejoined / its records on nodes 1 / 2 / node 1's on node 3: $rejoin_lat ms"
echo "RESULT node 3 cut off -> removed on node 1 / node 1's removed on node 3: $cut_lat ms"
echo "RESULT node 3 reachable again -> its news on node 1 / node 1's news on node 3: $heal_lat ms"
echo "RESULT node 2 crash (kill -9 Corosync and backend) -> 5 requests ML_EPEERDOWN: $peerdown_lat ms; records removed on nodes 1 / 3: $crash_lat ms"
echo "test_pubsub3: 6 scenarios passed in $(( ($(now_us) - t0) / 1000000 )) s"
