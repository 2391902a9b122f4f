#!/bin/bash
# bench.sh - `make bench`: msglayer's ml-perf next to raw TCP (sockperf, iperf3),
# ZeroMQ (zmq-perf), UCX over TCP (ucx_perftest) and libfabric's tcp provider
# (fi_pingpong), on the same three workloads over loopback, each figure RUNS
# times, interleaved so that a change of load falls on every tool alike.
# Writes one line per measurement to $OUT/results.tsv, then tests/bench/table.sh
# turns the medians into the table of doc/performance.md (its marked section),
# and tests/bench/memory.sh adds allocations per message and the memory of a
# sender with 10,000 messages in flight.
#
# Env: BIN (ml-perf; build/bin), ZMQ_PERF (build/bench/zmq-perf), OUT (build/bench),
#      RUNS (3), BENCH_QUICK=1 (short runs, once each; the table goes to
#      $OUT/table.md, not into doc/, unless BENCH_DOC is given), BENCH_DOC (file
#      whose marked section gets the table; doc/performance.md).
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=${BIN:-build/bin}
ZMQ_PERF=${ZMQ_PERF:-build/bench/zmq-perf}
OUT=${OUT:-build/bench}
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
	RUNS=${RUNS:-1} SECS=1 MEM_SHORT=0.5 MEM_LONG=1 UCX_LAT_N=20000 UCX_MSG_N=100000 UCX_BW_N=300 FI_N=5000 FI_BW_N=30
	DOC=${BENCH_DOC:-$OUT/table.md}
else
	RUNS=${RUNS:-3} SECS=3 MEM_SHORT=1 MEM_LONG=3 UCX_LAT_N=30000 UCX_MSG_N=800000 UCX_BW_N=3000 FI_N=20000 FI_BW_N=300
	DOC=${BENCH_DOC:-doc/performance.md}
fi
MIB=1048576
# sockperf and iperf3 take whole seconds.

for tool in sockperf iperf3 ucx_perftest fi_pingpong jq ss; do
	command -v $tool >/dev/null || { echo "bench: $tool is missing (make bench-deps)" >&2; exit 2; }
done
for f in "$BIN/ml-perf" "$ZMQ_PERF"; do
	[ -x "$f" ] || { echo "bench: $f is not built (make bench builds it)" >&2; exit 2; }
done

mkdir -p "$OUT"
WORK=$(mktemp -d)
RESULTS=$OUT/results.tsv
: >"$RESULTS"
SERVERS=()
cleanup() {
	for pid in "${SERVERS[@]}"; do kill "$pid" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
# Fixed ports for the tools that need one, away from the common ones and
# different per run of this script.
PORT=$(( 20000 + $$ % 20000 ))
next_port() { PORT=$(( PORT + 1 )); }

# Wait for a server to listen: its socket is the event (the tools have no
# ready file). Polls ss for up to 10 s.
wait_listen() {                           # wait_listen PORT PID
	for (( i = 0; i < 1000; i++ )); do
		[ -n "$(ss -Hltn "sport = :$1")" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.01
	done
	echo "bench: nothing listens on port $1" >&2
	return 1
}

LAST=$EPOCHREALTIME
record() {                                # record FIGURE IMPL RUN VALUE
	awk -v f="$1" -v i="$2" -v v="$4" -v t="$EPOCHREALTIME" -v l="$LAST" \
		'BEGIN { printf "   %-6s %-6s %-12s %5.1f s\n", f, i, v, t - l }'
	LAST=$EPOCHREALTIME
	if [[ "$4" =~ ^[0-9.e+]+$ ]] && [ "$4" != 0 ]; then
		printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
	else
		echo "bench: no figure for $1 $2 (run $3): '$4'" >&2
	fi
}

# Start SERVER in the background, wait for PORT, then run the client (its
# stdout to a file), then stop the server if it is still there.
with_server() {                           # with_server PORT CLIENT_OUT -- server... -- client...
	local port=$1 out=$2
	shift 3
	local server=()
	while [ "$1" != -- ]; do server+=("$1"); shift; done
	shift
	"${server[@]}" >"$WORK/server.out" 2>&1 &
	local pid=$!
	if wait_listen "$port" "$pid"; then
		timeout 120 "$@" >"$out" 2>"$WORK/client.err" || echo "bench: $1 failed: $(tail -2 "$WORK/client.err")" >&2
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# ---- msglayer: one server with two listeners for the whole run ----
"$BIN/ml-perf" server --listen tcp://127.0.0.1:0 --listen tcp://127.0.0.2:0 \
	--port-file "$WORK/ports" 2>"$WORK/mlserver.log" &
SERVERS+=($!)
for (( i = 0; i < 1000; i++ )); do [ -s "$WORK/ports" ] && break; sleep 0.01; done
[ -s "$WORK/ports" ] || { echo "bench: ml-perf server wrote no port file" >&2; exit 2; }
URL1="tcp://127.0.0.1:$(sed -n 1p "$WORK/ports")"
URL2="$URL1,tcp://127.0.0.2:$(sed -n 2p "$WORK/ports")"

ours() {                                  # ours FIGURE IMPL RUN JQ-EXPR ml-perf-options...
	local fig=$1 impl=$2 run=$3 expr=$4
	shift 4
	if "$BIN/ml-perf" client --interval 0 --json --duration "$SECS" "$@" >"$WORK/ours.json" \
		2>"$WORK/ours.err"; then
		record "$fig" "$impl" "$run" "$(jq -r "$expr" "$WORK/ours.json")"
	else
		echo "bench: ml-perf $* failed: $(tail -2 "$WORK/ours.err")" >&2
	fi
}

one_round() {                             # one_round RUN
	local r=$1 f

	# 64 B request/response round trip, p50 (us)
	ours rr64 ours1 "$r" .p50_us --peer "$URL1" --test rr --size 64
	ours rr64 ours2 "$r" .p50_us --peer "$URL2" --test rr --size 64
	next_port
	with_server $PORT "$WORK/c" -- sockperf sr --tcp -i 127.0.0.1 -p $PORT -- \
		sockperf pp --tcp -i 127.0.0.1 -p $PORT -m 64 -t "$SECS" --full-rtt
	record rr64 tcp "$r" "$(awk '/percentile 50.000 =/ { print $NF }' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- env UCX_TLS=tcp ucx_perftest -p $PORT -- \
		env UCX_TLS=tcp ucx_perftest 127.0.0.1 -p $PORT -t tag_lat -s 64 -n $UCX_LAT_N
	# ucx_perftest gives the one-way latency: half the round trip.
	record rr64 ucx "$r" "$(awk '/^Final:/ { print 2 * $3 }' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- fi_pingpong -p tcp -e msg -B $PORT -I $FI_N -S 64 -- \
		fi_pingpong -p tcp -e msg -P $PORT -I $FI_N -S 64 127.0.0.1
	# usec/xfer is half the mean round trip (fi_pingpong has no percentiles).
	record rr64 ofi "$r" "$(awk 'NR > 1 && NF == 8 { print 2 * $7 }' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- "$ZMQ_PERF" rr-server tcp://127.0.0.1:$PORT -- \
		"$ZMQ_PERF" rr-client tcp://127.0.0.1:$PORT 64 "$SECS"
	record rr64 zmq "$r" "$(jq -r .p50_us "$WORK/c")"

	# 64 B one-way messages per second (ours: each acknowledged by the peer)
	ours msg64 ours1 "$r" .msgs_per_s --peer "$URL1" --test stream --size 64
	ours msg64 ours2 "$r" .msgs_per_s --peer "$URL2" --test stream --size 64
	next_port
	with_server $PORT "$WORK/c" -- sockperf sr --tcp -i 127.0.0.1 -p $PORT -- \
		sockperf tp --tcp -i 127.0.0.1 -p $PORT -m 64 -t "$SECS"
	record msg64 tcp "$r" "$(awk '/Message Rate is/ { print $(NF-1) }' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- env UCX_TLS=tcp ucx_perftest -p $PORT -- \
		env UCX_TLS=tcp ucx_perftest 127.0.0.1 -p $PORT -t tag_bw -s 64 -n $UCX_MSG_N
	record msg64 ucx "$r" "$(awk '/^Final:/ { print $9 }' "$WORK/c")"
	next_port
	"$ZMQ_PERF" sink tcp://127.0.0.1:$PORT >"$WORK/sink" 2>"$WORK/sink.err" &
	f=$!
	wait_listen $PORT $f && timeout 60 "$ZMQ_PERF" source tcp://127.0.0.1:$PORT 64 "$SECS"
	timeout 30 tail --pid=$f -f /dev/null # the sink ends at the source's end marker
	kill $f 2>/dev/null                    # or it is stuck: the figure is then missing
	wait $f 2>/dev/null
	record msg64 zmq "$r" "$(jq -r .msgs_per_s "$WORK/sink")"

	# 1 MiB bandwidth, bytes per second (ours over two paths)
	ours bw1M ours2 "$r" .bytes_per_s --peer "$URL2" --test bw --size $MIB
	next_port
	with_server $PORT "$WORK/c" -- iperf3 -s -1 -p $PORT -- \
		iperf3 -c 127.0.0.1 -p $PORT -l 1M -t "$SECS" -J
	record bw1M tcp "$r" "$(jq -r '.end.sum_received.bits_per_second / 8' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- env UCX_TLS=tcp ucx_perftest -p $PORT -- \
		env UCX_TLS=tcp ucx_perftest 127.0.0.1 -p $PORT -t tag_bw -s $MIB -n $UCX_BW_N
	# ucx_perftest's MB are MiB.
	record bw1M ucx "$r" "$(awk -v m=$MIB '/^Final:/ { print $7 * m }' "$WORK/c")"
	next_port
	with_server $PORT "$WORK/c" -- fi_pingpong -p tcp -e msg -B $PORT -I $FI_BW_N -S $MIB -- \
		fi_pingpong -p tcp -e msg -P $PORT -I $FI_BW_N -S $MIB 127.0.0.1
	# A ping-pong, one message in flight; its MB/sec (1e6 bytes) counts both ways.
	record bw1M ofi "$r" "$(awk 'NR > 1 && NF == 8 { print $6 * 1e6 }' "$WORK/c")"
	next_port
	"$ZMQ_PERF" sink tcp://127.0.0.1:$PORT >"$WORK/sink" 2>"$WORK/sink.err" &
	f=$!
	wait_listen $PORT $f && timeout 60 "$ZMQ_PERF" source tcp://127.0.0.1:$PORT $MIB "$SECS"
	timeout 30 tail --pid=$f -f /dev/null # the sink ends at the source's end marker
	kill $f 2>/dev/null                    # or it is stuck: the figure is then missing
	wait $f 2>/dev/null
	record bw1M zmq "$r" "$(jq -r .bytes_per_s "$WORK/sink")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date +%s)
for (( r = 1; r <= RUNS; r++ )); do
	echo "== bench round $r of $RUNS"
	one_round "$r"
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(wc -l <"$RESULTS") figures in $(( $(date +%s) - START )) s; load average $LOAD_BEFORE before, $LOAD_AFTER after"

CMD="make bench"
[ "$QUICK" = 1 ] && CMD="BENCH_QUICK=1 make bench"
[ "$RUNS" != 3 ] && [ "$QUICK" != 1 ] && CMD="RUNS=$RUNS make bench"
tests/bench/table.sh "$RESULTS" "$CMD" "$RUNS" "$SECS" "$LOAD_BEFORE" "$LOAD_AFTER" >"$WORK/table.md" ||
	exit 1
echo "== memory (valgrind counts allocations; about a minute)"
{ echo; BIN=$BIN SHORT=$MEM_SHORT LONG=$MEM_LONG tests/bench/memory.sh; } >>"$WORK/table.md" || exit 1
tests/bench/splice.sh "$DOC" "$WORK/table.md" || exit 1
cat "$WORK/table.md"
echo "== table written to $DOC"
