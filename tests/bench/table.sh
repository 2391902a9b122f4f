#!/bin/bash
# table.sh - the Markdown table of `make bench` from its results.tsv (one line
# per measurement: figure, implementation, run, value), with the median of the
# runs, their range, each median's ratio to raw TCP's of the same run set, and
# the performance issue's targets as ratios.
# Usage: table.sh RESULTS COMMAND RUNS SECONDS LOAD_BEFORE LOAD_AFTER
set -u
[ $# -eq 6 ] || { echo "usage: table.sh RESULTS COMMAND RUNS SECONDS LOAD_BEFORE LOAD_AFTER" >&2; exit 2; }
RESULTS=$1 CMD=$2 RUNS=$3 SECS=$4 LOAD_BEFORE=$5 LOAD_AFTER=$6
[ -s "$RESULTS" ] || { echo "table.sh: $RESULTS is empty: no figure was measured" >&2; exit 1; }

# figure impl median min max n, one line each
MEDIANS=$(sort -t$'\t' -k1,1 -k2,2 -k4,4g "$RESULTS" | awk -F'\t' '
	function flush() {
		if (n) printf "%s %s %.6g %.6g %.6g %d\n", key1, key2,
			n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2, v[1], v[n], n
	}
	$1 != key1 || $2 != key2 { flush(); key1 = $1; key2 = $2; n = 0 }
	{ v[++n] = $4 }
	END { flush() }')

cat <<EOF
Command: \`$CMD\` (tests/bench/bench.sh), $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r),
load average $LOAD_BEFORE before and $LOAD_AFTER after; each figure the median of $RUNS run(s) of
$SECS s (or a fixed count), [range]; ratio: to raw TCP's median in the same run.

EOF
echo "$MEDIANS" | awk -v secs="$SECS" '
	{ med[$1, $2] = $3; lo[$1, $2] = $4; hi[$1, $2] = $5 }
	function fmt(fig, x) {
		if (fig == "rr64") return sprintf("%.1f us", x)
		if (fig == "msg64") return sprintf("%.3g M/s", x / 1e6)
		return sprintf("%.3g GB/s", x / 1e9)
	}
	function row(fig, impl, label,   r) {
		if (!((fig, impl) in med)) { printf "| %s | not measured | |\n", label; return }
		r = ((fig, "tcp") in med) ? sprintf("%.2fx", med[fig, impl] / med[fig, "tcp"]) : "n/a"
		printf "| %s | %s [%s..%s] | %s |\n", label, fmt(fig, med[fig, impl]),
			fmt(fig, lo[fig, impl]), fmt(fig, hi[fig, impl]), r
	}
	END {
		print "| 64 B request/response, round trip p50 | median [range] | vs raw TCP |"
		print "|---|---|---|"
		row("rr64", "tcp", "raw TCP (`sockperf pp --full-rtt`)")
		row("rr64", "ours1", "msglayer, 1 path (`ml-perf --test rr`)")
		row("rr64", "ours2", "msglayer, 2 paths")
		row("rr64", "ucx", "UCX tcp (`ucx_perftest -t tag_lat`, 2 x one-way)")
		row("rr64", "ofi", "libfabric tcp (`fi_pingpong`, 2 x usec/xfer: a mean)")
		row("rr64", "zmq", "ZeroMQ REQ/REP (`zmq-perf`)")
		print ""
		print "| 64 B one-way messages | median [range] | vs raw TCP |"
		print "|---|---|---|"
		row("msg64", "tcp", "raw TCP (`sockperf tp`, sent)")
		row("msg64", "ours1", "msglayer, 1 path, each acknowledged (`--test stream`)")
		row("msg64", "ours2", "msglayer, 2 paths, each acknowledged")
		row("msg64", "ucx", "UCX tcp (`ucx_perftest -t tag_bw`)")
		row("msg64", "zmq", "ZeroMQ PUSH/PULL, received (`zmq-perf`)")
		print "| libfabric tcp | not measured: Debian 12 packages no streaming test (fabtests) | |"
		print ""
		print "| 1 MiB messages, bandwidth | median [range] | vs raw TCP |"
		print "|---|---|---|"
		row("bw1M", "tcp", "raw TCP (`iperf3 -l 1M`, received)")
		row("bw1M", "ours2", "msglayer, 2 paths, 8 in flight (`--test bw`)")
		row("bw1M", "ucx", "UCX tcp (`ucx_perftest -t tag_bw`)")
		row("bw1M", "ofi", "libfabric tcp (`fi_pingpong`: ping-pong, both ways)")
		row("bw1M", "zmq", "ZeroMQ PUSH/PULL, received (`zmq-perf`)")
		print ""
		print "| target (ratios of one run) | measured | met |"
		print "|---|---|---|"
		target("64 B rr p50 <= 1.2 x raw TCP round trip", "rr64", "ours1", "tcp", 1.2, -1)
		target("64 B rr p50 <= UCX round trip", "rr64", "ours1", "ucx", 1, -1)
		target("64 B one-way rate >= ZeroMQ", "msg64", "ours2", "zmq", 1, 1)
		target("1 MiB bandwidth over 2 paths >= 0.8 x iperf3", "bw1M", "ours2", "tcp", 0.8, 1)
	}
	# sign -1: at most limit x the reference; 1: at least.
	function target(label, fig, impl, ref, limit, sign,   q) {
		if (!((fig, impl) in med) || !((fig, ref) in med)) {
			printf "| %s | not measured | - |\n", label
			return
		}
		q = med[fig, impl] / med[fig, ref]
		printf "| %s | %.2fx | %s |\n", label, q, (sign < 0 ? q <= limit : q >= limit) ? "yes" : "**no**"
	}'
