#!/bin/bash
# failover.sh - real network faults between network namespaces, under request load.
#
# Each scenario builds nodes and links (lib.sh), runs `ml-perf server` on node 1
# and a paced `ml-perf client` (4 KiB requests, 64 in flight at most) on the
# others, breaks links the way networks break (iptables DROP one or both ways,
# TCP resets, link down, a token-bucket slow link, a flapping link) and asserts
# from the client's JSON: lost = 0, duplicated = 0, every request completed
# with success (or with the documented error), and the per-path counters show
# the failures that were injected and none elsewhere.
#
# Usage: tests/netns/failover.sh [SCENARIO...]   (root; skips otherwise)
# Env: BIN (directory of ml-perf; default build/bin), FLAP_S (30).
set -u
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
net_require

BIN=${BIN:-build/bin}
PERF=$(realpath "$BIN/ml-perf")
PORT=7400
RATE=2000
FLAP_S=${FLAP_S:-30}
WORK=$(mktemp -d)
FAILED=0
trap 'net_cleanup; rm -rf "$WORK"' EXIT

fail() { echo "  FAIL: $*"; FAILED=$(( FAILED + 1 )); }
# expect JQ_EXPR FILE WHAT: the jq expression must be true on the client's JSON.
expect() { jq -e "$1" "$2" >/dev/null || fail "$3 ($1; got $(jq -c "${4:-.}" "$2"))"; }

server_start() {                              # on node 1, every address, one port
	rm -f "$WORK/ports"
	spawn 1 "$PERF" server --listen "tcp://0.0.0.0:$PORT" --port-file "$WORK/ports" \
		>"$WORK/server.log" 2>&1
	SERVER_PID=$!
	wait_file "$WORK/ports" 10 || { cat "$WORK/server.log"; return 1; }
}
server_stop() { kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null; cat "$WORK/server.log" >>"$WORK/server.old.log"; }

# client_start NODE SECONDS OUT [extra ml-perf options]: load from NODE to node 1.
client_start() {
	local n=$1 secs=$2 out=$3
	shift 3
	spawn "$n" "$PERF" client --node "$(( 100 + n ))" --server-node 1 \
		--peer "$(urls 1 "$n" $PORT)" --test rr --size 4096 --window 64 --rate $RATE \
		--duration "$secs" --interval 0 --json "$@" >"$out" 2>"$out.log"
	CLIENT_PID=$!
}
client_wait() { wait "$CLIENT_PID"; CLIENT_RC=$?; }

# The common outcome of a scenario where every request must succeed.
expect_clean() {
	local f=$1
	[ "$CLIENT_RC" -eq 0 ] || fail "ml-perf client exited with $CLIENT_RC ($(tail -3 "$f.log"))"
	expect '.lost == 0' "$f" "nothing lost" .lost
	expect '.duplicated == 0' "$f" "nothing duplicated" .duplicated
	expect '.failed == 0' "$f" "every request succeeded" .errors
	expect '.completed > 0' "$f" "requests completed" .completed
}
# The path took the failure; the others did not, and it carries data again.
expect_path_failed() {
	local f=$1 i=$2
	expect ".paths[$i].failures >= 1" "$f" "path $i failed" ".paths[$i]"
	expect ".paths[$i].resent <= .paths[$i].failed_inflight" "$f" \
		"path $i: resent at most what was in flight on it" ".paths[$i]"
	expect "[.paths[] | select(.index != $i) | .failures] | add == 0" "$f" \
		"no other path failed" "[.paths[] | .failures]"
	expect ".paths[$i].state == \"up\"" "$f" "path $i is up again at the end" ".paths[$i].state"
}
summary() {
	jq -r '"  completed \(.completed)  p99 \(.p99_us) us  max \(.max_us) us  stall \(.stall_ms) ms  resent \(.resent)  " +
		([.paths[] | "[\(.url | sub("tcp://"; "")) \(.state) share \(.share * 100 | floor)% fail \(.failures)]"] | join(" "))' "$1"
}

# ---- scenarios -----------------------------------------------------------------

# A fault on link 0 between nodes 1 and 2, from 2 s to 4 s of a 6 s run.
one_link_fault() {                            # one_link_fault APPLY-COMMAND...
	net_up 2 2
	server_start || return
	client_start 2 6 "$WORK/c.json"
	sleep 2
	"$@"
	sleep 2
	fault_clear 1 2 0
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	expect_clean "$WORK/c.json"
	expect_path_failed "$WORK/c.json" 0
}

scenario_blackhole() { one_link_fault fault_blackhole 1 2 0 both; }
# Node 2's packets on link 0 vanish; node 1's still arrive.
scenario_blackhole_tx() { one_link_fault fault_blackhole 2 1 0 tx; }
# Node 2 hears nothing on link 0; its own packets still arrive.
scenario_blackhole_rx() { one_link_fault fault_blackhole 2 1 0 rx; }
scenario_reset() { one_link_fault fault_reset 1 2 0; }

scenario_link_down() {
	net_up 2 2
	server_start || return
	client_start 2 6 "$WORK/c.json"
	sleep 2
	link_down 1 2 0
	sleep 2
	link_up 1 2 0
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	expect_clean "$WORK/c.json"
	expect_path_failed "$WORK/c.json" 0
}

# A live but slow link is not a dead one: no failover, less traffic on it.
scenario_slow() {
	net_up 2 2
	link_slow 1 2 0 10mbit
	server_start || return
	client_start 2 5 "$WORK/c.json"
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	expect_clean "$WORK/c.json"
	expect '[.paths[].failures] | add == 0' "$WORK/c.json" "no path failed" '[.paths[].failures]'
	expect '.paths[0].share < .paths[1].share' "$WORK/c.json" "the slow link carries less" \
		'[.paths[].share]'
}

scenario_flapping() {
	local downs
	net_up 2 2
	server_start || return
	client_start 2 $(( FLAP_S + 5 )) "$WORK/c.json"
	sleep 2
	downs=$(link_flap 1 2 0 "$FLAP_S" 7)
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	echo "  link went down $downs times in $FLAP_S s"
	expect_clean "$WORK/c.json"
	expect '.paths[0].failures >= 1' "$WORK/c.json" "the flapping path failed" '.paths[0]'
	expect ".paths[0].failures <= $downs" "$WORK/c.json" "no more failures than link downs" '.paths[0]'
	expect '.paths[0].flaps >= 1' "$WORK/c.json" "flaps counted" '.paths[0]'
	expect '.paths[0].probations >= 1' "$WORK/c.json" "probations counted" '.paths[0]'
	expect '.paths[1].failures == 0' "$WORK/c.json" "the steady path never failed" '.paths[1]'
}

# Four links, three blackholed at once: everything moves to the last one.
scenario_four_links() {
	local l
	net_up 2 4
	server_start || return
	client_start 2 6 "$WORK/c.json"
	sleep 2
	for l in 0 1 2; do fault_blackhole 1 2 $l both; done
	sleep 2
	for l in 0 1 2; do fault_clear 1 2 $l; done
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	expect_clean "$WORK/c.json"
	for l in 0 1 2; do
		expect ".paths[$l].failures >= 1" "$WORK/c.json" "path $l failed" ".paths[$l]"
	done
	expect '.paths[3].failures == 0' "$WORK/c.json" "path 3 never failed" '.paths[3]'
}

# Three nodes: breaking link 0 between 1 and 2 leaves node 3's session alone.
scenario_three_nodes() {
	local pid2
	net_up 3 2
	server_start || return
	client_start 2 6 "$WORK/c2.json"
	pid2=$CLIENT_PID
	client_start 3 6 "$WORK/c3.json"
	sleep 2
	fault_blackhole 1 2 0 both
	sleep 2
	fault_clear 1 2 0
	client_wait
	summary "$WORK/c3.json"
	expect_clean "$WORK/c3.json"
	expect '[.paths[].failures] | add == 0' "$WORK/c3.json" "node 3's paths never failed" '.paths'
	CLIENT_PID=$pid2
	client_wait
	summary "$WORK/c2.json"
	expect_clean "$WORK/c2.json"
	expect_path_failed "$WORK/c2.json" 0
}

# Every link dead past the session timeout: what was outstanding fails with
# ML_ETIMEDOUT (the documented error), nothing hangs, nothing is lost, and
# requests succeed again once a link is back.
scenario_all_down() {
	net_up 2 2
	server_start || return
	client_start 2 7 "$WORK/c.json" --session-timeout 1
	sleep 2
	fault_blackhole 1 2 0 both
	fault_blackhole 1 2 1 both
	sleep 2.5
	fault_clear 1 2 0
	fault_clear 1 2 1
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	[ "$CLIENT_RC" -eq 1 ] || fail "ml-perf should report failed requests (exit 1), got $CLIENT_RC"
	expect '.lost == 0 and .duplicated == 0' "$WORK/c.json" "nothing lost or duplicated" '.'
	expect '.failed >= 1 and .failed == (.errors.ML_ETIMEDOUT // 0)' "$WORK/c.json" \
		"the failures are all session timeouts" '.errors'
	expect '[.paths[].state] | all(. == "up")' "$WORK/c.json" "both paths back" '[.paths[].state]'
	expect '.completed_after_last_failure > 0' "$WORK/c.json" "requests succeed afterwards" '.'
}

# The server restarts (new incarnation) under load: what it had not answered
# fails with ML_EPEERRESTART, the rest succeeds, nothing hangs.
scenario_peer_restart() {
	net_up 2 2
	server_start || return
	client_start 2 6 "$WORK/c.json"
	sleep 2
	server_stop
	server_start || return
	client_wait
	summary "$WORK/c.json"; [ -n "${VERBOSE:-}" ] && jq -c .paths "$WORK/c.json" && cat "$WORK/c.json.log" "$WORK/server.log"
	expect '.lost == 0 and .duplicated == 0' "$WORK/c.json" "nothing lost or duplicated" '.'
	expect '.failed == (.errors.ML_EPEERRESTART // 0)' "$WORK/c.json" \
		"the only failures are peer restarts" '.errors'
	expect '.failed <= 64' "$WORK/c.json" "at most a window of requests failed" .failed
	expect '.completed_after_last_failure > 0' "$WORK/c.json" "requests succeed afterwards" '.'
}

ALL="blackhole blackhole_tx blackhole_rx reset link_down slow flapping four_links three_nodes all_down peer_restart"
for s in ${@:-$ALL}; do
	echo "== netns: $s"
	before=$FAILED
	( "scenario_$s" || fail "scenario $s stopped early"; exit $(( FAILED - before )) ) || FAILED=$(( FAILED + 1 ))
	net_cleanup
done
if [ "$FAILED" -ne 0 ]; then
	echo "netns failover: $FAILED check(s) failed"
	exit 1
fi
echo "netns failover: all scenarios passed"
