#!/bin/bash
# bench-failover.sh - what a dead or slow link costs, measured as the issue's
# MPTCP figures were: two namespaces joined by two veth links, 5,000 requests/s
# of 4 KiB with at most 64 in flight, driven by ml-perf.
#
#   1. blackhole: link A silently dropped (iptables, both ways) at 5 s,
#      restored at 12 s, in a 20 s run; repeated RUNS times. Reports the
#      longest gap between completions (stall), max and p99.9 latency, the time
#      until the completion rate is back to 90% of its pre-fault level, and
#      what was resent against what was in flight on link A.
#   2. slow link: link A limited to 10 mbit (tc tbf) against both links
#      healthy: p99 latency of each, medians of RUNS runs.
#   3. no faults, full load (closed loop, 64 in flight) for LONG_S seconds:
#      path failures and suspicions must stay at zero (no spurious failover).
#
# Not a pass/fail test: it prints a Markdown report (also written to OUT) for
# doc/performance.md. Usage: make bench-failover (root).
# Env: BIN (build/bin), RUNS (5), LONG_S (600), OUT (build/bench-failover.md).
set -u
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
net_require

BIN=${BIN:-build/bin}
PERF=$(realpath "$BIN/ml-perf")
RUNS=${RUNS:-5}
LONG_S=${LONG_S:-600}
OUT=${OUT:-build/bench-failover.md}
PORT=7400
WORK=$(mktemp -d)
trap 'net_cleanup; rm -rf "$WORK"' EXIT
LOAD=(--test rr --size 4096 --window 64 --interval 0 --json)

net_up 2 2
spawn 1 "$PERF" server --listen "tcp://0.0.0.0:$PORT" --port-file "$WORK/ports" >"$WORK/server.log" 2>&1
wait_file "$WORK/ports" 10 || exit 1

client() {                                    # client OUT [ml-perf options]: node 2 -> node 1
	local out=$1
	shift
	nsx 2 "$PERF" client --node 2 --server-node 1 --peer "$(urls 1 2 $PORT)" "${LOAD[@]}" "$@" \
		>"$out" 2>"$out.log"
}
# median FIELD FILES...: the median of a numeric JSON field over runs.
median() {
	local f=$1
	shift
	jq -s "[.[] | $f] | sort | .[length / 2 | floor]" "$@"
}
range() {
	local f=$1
	shift
	jq -rs "[.[] | $f] | sort | \"\(.[0])..\(.[-1])\"" "$@"
}

echo "== blackhole of link A at 5 s, restored at 12 s ($RUNS runs of 20 s)"
for (( r = 1; r <= RUNS; r++ )); do
	client "$WORK/bh$r.json" --rate 5000 --duration 20 --fault at=5,path=0,kind=external &
	pid=$!
	sleep 5
	fault_blackhole 1 2 0 both
	sleep 7
	fault_clear 1 2 0
	wait $pid
	jq -c '{stall_ms, max_us, p999_us, time_to_recover_s, lost, duplicated, failed,
		resent_A: .paths[0].resent, inflight_A: .paths[0].failed_inflight}' "$WORK/bh$r.json"
done
BH=("$WORK"/bh*.json)

echo "== slow link A (10 mbit) against two healthy links ($RUNS runs of 10 s each)"
for (( r = 1; r <= RUNS; r++ )); do
	client "$WORK/base$r.json" --rate 5000 --duration 10
	link_slow 1 2 0 10mbit
	client "$WORK/slow$r.json" --rate 5000 --duration 10
	link_fast 1 2 0
	echo "{\"base_p99_us\": $(jq .p99_us "$WORK/base$r.json"), \"slow_p99_us\": $(jq .p99_us "$WORK/slow$r.json")," \
		"\"slow_share_A\": $(jq .paths[0].share "$WORK/slow$r.json")}"
done

echo "== no faults, full load, $LONG_S s"
client "$WORK/long.json" --duration "$LONG_S"
jq -c '{msgs_per_s, p99_us, max_us, lost, duplicated, failed,
	failures: [.paths[].failures] | add, suspects: [.paths[].suspects] | add}' "$WORK/long.json"

{
	echo "Measured by \`make bench-failover\` (tests/netns/bench-failover.sh) on $(date -u +%Y-%m-%d)," \
		"$(nproc) cores, kernel $(uname -r); medians of $RUNS runs (range in brackets)."
	echo
	echo "| link A blackholed at 5 s, back at 12 s (5,000 req/s of 4 KiB, 64 in flight at most) | value |"
	echo "|---|---|"
	echo "| longest stall between completions | $(median .stall_ms "${BH[@]}") ms [$(range .stall_ms "${BH[@]}")] |"
	echo "| max latency | $(median '.max_us / 1000' "${BH[@]}") ms [$(range '.max_us / 1000' "${BH[@]}")] |"
	echo "| p99.9 latency | $(median '.p999_us / 1000' "${BH[@]}") ms [$(range '.p999_us / 1000' "${BH[@]}")] |"
	echo "| back to 90% of the pre-fault rate after | $(median '.time_to_recover_s * 1000' "${BH[@]}") ms [$(range '.time_to_recover_s * 1000' "${BH[@]}")] |"
	echo "| resent / in flight on A when it failed | $(median .paths[0].resent "${BH[@]}") / $(median .paths[0].failed_inflight "${BH[@]}") frames |"
	echo "| lost, duplicated, failed (all runs) | $(jq -s '[.[].lost] | add' "${BH[@]}"), $(jq -s '[.[].duplicated] | add' "${BH[@]}"), $(jq -s '[.[].failed] | add' "${BH[@]}") |"
	echo
	echo "| link A at 10 mbit (tc tbf), 5,000 req/s of 4 KiB | p99 |"
	echo "|---|---|"
	echo "| both links healthy | $(median '.p99_us / 1000' "$WORK"/base*.json) ms [$(range '.p99_us / 1000' "$WORK"/base*.json)] |"
	echo "| link A slowed | $(median '.p99_us / 1000' "$WORK"/slow*.json) ms [$(range '.p99_us / 1000' "$WORK"/slow*.json)] |"
	echo "| share of link A when slowed | $(median '.paths[0].share * 100 | floor' "$WORK"/slow*.json) % |"
	echo
	echo "| no faults, closed loop, 64 in flight, $LONG_S s | value |"
	echo "|---|---|"
	echo "| requests/s | $(jq '.msgs_per_s | floor' "$WORK/long.json") |"
	echo "| p99, max latency | $(jq '.p99_us / 1000' "$WORK/long.json") ms, $(jq '.max_us / 1000' "$WORK/long.json") ms |"
	echo "| path failures, suspicions (spurious failovers) | $(jq '[.paths[].failures] | add' "$WORK/long.json"), $(jq '[.paths[].suspects] | add' "$WORK/long.json") |"
	echo "| lost, duplicated, failed | $(jq '.lost' "$WORK/long.json"), $(jq '.duplicated' "$WORK/long.json"), $(jq '.failed' "$WORK/long.json") |"
} | tee "$OUT"
