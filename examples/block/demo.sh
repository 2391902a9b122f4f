#!/bin/bash
# demo.sh - what `make demo` runs: a block volume served over two network
# paths, one of them cut under load, and nothing lost.
#
# Starts a private single-node Corosync (tests/corosync/cs.sh, in a network
# namespace of its own), ml-blockd with a sparse 64 MiB volume listening on
# 127.0.0.1 and 127.0.0.2, and ml-blockcli in verify mode over both paths.
# At 35% of the run it blackholes path 0 of the client's session with
# `mlctl fault` (nothing passes, nothing says so: the heartbeats find it), at
# 65% it clears it. The client's summary says how many I/Os were done and
# verified, lost (0), duplicated (0), the stall at failover and each path's
# traffic before, during and after. Everything started is stopped at the end,
# also on Ctrl-C.
#
# Environment: DEMO_SECONDS (20) length of the run; DEMO_RATE (20000) I/Os
# per second; BIN (build/bin). Needs root (network namespace) and Corosync.
# Exit: 0 verified, 1 failed, 77 cannot run here (not root, no Corosync).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/build/bin}
case $BIN in /*) ;; *) BIN=$root/$BIN ;; esac
secs=${DEMO_SECONDS:-20}
rate=${DEMO_RATE:-20000}
cs=$root/tests/corosync/cs.sh

if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root: it starts a private Corosync in a network namespace" >&2
	exit 77
fi
if ! command -v corosync >/dev/null || ! command -v ip >/dev/null; then
	echo "demo: corosync or ip is not installed (make deps installs them)" >&2
	exit 77
fi
case $secs in '' | *[!0-9.]*) echo "demo: DEMO_SECONDS must be a number" >&2; exit 1 ;; esac
t_fault=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 0.35 }')
t_clear=$(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 0.30 }')

W=$(mktemp -d /tmp/ml-demo.XXXXXX)
export CS_PREFIX=mldemo$$ CS_DIR=$W/corosync
DAEMON= CLIENT= INTERRUPTED=
# stop_client: a first signal makes it finish what is in flight and print
# its summary; if it takes longer than 5 s, a second one stops it at once.
# After Ctrl-C it has its SIGINT already (it shares the terminal).
stop_client() {
	[ "$INTERRUPTED" = INT ] || kill -INT "$CLIENT" 2>/dev/null
	(sleep 5; kill -TERM "$CLIENT" 2>/dev/null) &
	local watchdog=$!
	wait "$CLIENT"
	kill "$watchdog" 2>/dev/null
	CLIENT=
}
cleanup() {
	trap - INT TERM
	[ -n "$CLIENT" ] && stop_client
	[ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON"
	"$cs" down >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'INTERRUPTED=INT; echo; echo "demo: interrupted"; exit 130' INT
trap 'INTERRUPTED=TERM; echo; echo "demo: terminated"; exit 143' TERM
fail() { echo "demo: FAILED: $*"; exit 1; }
# Background jobs are started with "$cs" exec directly: cs.sh and ip netns
# exec both exec, so $! is the program's pid (a function would fork a shell).
# The backend runs in a session of its own: Ctrl-C must reach the client
# (which then finishes its I/O) but not the backend still answering it.
in_ns() { "$cs" exec 0 "$@"; }

echo "== msglayer demo: a block volume over two TCP paths; one is cut under load"
echo "-- a private single-node Corosync (network namespace ${CS_PREFIX}0)"
"$cs" up1 >"$W/cs.log" 2>&1 || { cat "$W/cs.log"; fail "corosync did not start"; }
# Loopback in a fresh namespace is up (cs.sh), and 127.0.0.0/8 is all ours.
in_ns ip route get 127.0.0.2 2>/dev/null | grep -q "dev lo" || fail "127.0.0.2 is not local in the namespace"

echo "-- ml-blockd: volume block/demo (64 MiB, sparse) on tcp://127.0.0.1 and tcp://127.0.0.2"
setsid "$cs" exec 0 "$BIN/ml-blockd" --node 1 --volume name=demo,size=64M --sched round-robin \
	--listen tcp://127.0.0.1:0 --listen tcp://127.0.0.2:0 --admin-socket "$W/blockd.sock" \
	2>"$W/blockd.log" &
DAEMON=$!

echo "-- ml-blockcli: ${secs} s of random 4 KiB reads, writes and discards, ${rate}/s, 16 in flight,"
echo "   over both paths (round-robin); every block written carries its number and a generation,"
echo "   every read is checked against the last acknowledged write"
mkfifo "$W/ready"
exec 4<>"$W/ready" # read-write: opening does not wait for the client
"$cs" exec 0 "$BIN/ml-blockcli" --node 2 --volume demo --verify --rw randrw --discard-pct 5 --qd 16 \
	--rate "$rate" --duration "$secs" --sched round-robin --fault-window auto \
	--admin-socket "$W/client.sock" --ready-file "$W/ready" --wait 15 &
CLIENT=$!
read -r -t 20 ready <&4 || fail "the client did not start (see above; backend log: $(tail -3 "$W/blockd.log"))"
exec 4<&-

mlctl() { in_ns "$BIN/mlctl" --socket "$W/client.sock" "$@"; }
sleep "$t_fault"
echo "-- cutting path 0 silently: mlctl fault 1 0 blackhole (the client's admin socket)"
mlctl fault 1 0 blackhole >/dev/null || echo "demo: mlctl fault failed"
sleep "$t_clear"
echo "-- restoring path 0: mlctl clear 1 0"
mlctl clear 1 0 >/dev/null || echo "demo: mlctl clear failed"

wait "$CLIENT"
rc=$?
CLIENT=
# The backend's side of the cut: its answers that were on path 0 went again.
resent=$(in_ns "$BIN/mlctl" --socket "$W/blockd.sock" --json status 2>/dev/null |
	jq '[.peers[].frames_resent] | add // 0' 2>/dev/null)
echo "ml-blockd: frames resent to the client: ${resent:-?}"
kill -TERM "$DAEMON"
wait "$DAEMON"
drc=$?
DAEMON=
grep "^ml-blockd: served" "$W/blockd.log"
[ $drc = 0 ] || { cat "$W/blockd.log"; fail "ml-blockd exited with $drc"; }
[ $rc = 0 ] || fail "ml-blockcli exited with $rc"
echo "demo: OK: every I/O completed once and every read verified, with a path cut for $t_clear s"
