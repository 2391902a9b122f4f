#!/bin/bash
# memory.sh - the memory part of `make bench`, as a Markdown block on stdout:
#  1. heap allocations per message in steady state, counted by valgrind
#     (memcheck's "total heap usage", every malloc of every library in the
#     process): two runs of different lengths, and the difference in
#     allocations over the difference in messages, so that start-up and
#     shut-down cancel out;
#  2. the resident memory of a sender with 10,000 one-way messages in flight.
# Env: BIN (ml-perf; build/bin), SHORT, LONG (seconds of the two runs; 1, 3).
set -u
cd "$(dirname "$0")/../.." || exit 2
BIN=${BIN:-build/bin}
SHORT=${SHORT:-1} LONG=${LONG:-3}
PERF=$BIN/ml-perf
command -v valgrind >/dev/null || { echo "memory.sh: valgrind is missing (make deps)" >&2; exit 2; }
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

start_server() {                          # start_server [wrapper...]: sets SERVER and URL
	rm -f "$WORK/ports"
	"$@" "$PERF" server --listen tcp://127.0.0.1:0 --listen tcp://127.0.0.2:0 --max-inflight 16384 \
		--port-file "$WORK/ports" >"$WORK/server.out" 2>"$WORK/server.err" &
	SERVER=$!
	for (( i = 0; i < 3000; i++ )); do [ -s "$WORK/ports" ] && break; sleep 0.01; done
	[ -s "$WORK/ports" ] || { echo "memory.sh: the server wrote no port file" >&2; exit 2; }
	URL="tcp://127.0.0.1:$(sed -n 1p "$WORK/ports"),tcp://127.0.0.2:$(sed -n 2p "$WORK/ports")"
}

stop_server() {
	kill "$SERVER"
	wait "$SERVER"
	SERVER=
}

heap_allocs() { sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$1" | tr -d ,; }

# The client under valgrind, against a plain server: its allocations per message.
client_side() {                           # client_side TEST [options] -> "per-message allocs"
	local d n=() a=()
	for d in $SHORT $LONG; do
		valgrind --tool=memcheck "$PERF" client --peer "$URL" --json --interval 0 --duration "$d" \
			--test "$@" >"$WORK/c.json" 2>"$WORK/c.vg" || { echo "memory.sh: client $*" >&2; return 1; }
		n+=("$(jq .completed "$WORK/c.json")")
		a+=("$(heap_allocs "$WORK/c.vg")")
	done
	awk -v n1="${n[0]}" -v n2="${n[1]}" -v a1="${a[0]}" -v a2="${a[1]}" \
		'BEGIN { v = (a2 - a1) / (n2 - n1); if (v < 0.0005) v = 0; printf "%.3f (%d and %d allocations for %d and %d messages)", v, a1, a2, n1, n2 }'
}

# The server under valgrind: its allocations per request or message received.
server_side() {                           # server_side TEST [options]
	local d n=() a=()
	for d in $SHORT $LONG; do
		start_server valgrind --tool=memcheck
		"$PERF" client --peer "$URL" --json --interval 0 --duration "$d" --test "$@" >"$WORK/c.json" \
			2>"$WORK/c.err" || { echo "memory.sh: client $* against valgrind" >&2; stop_server; return 1; }
		stop_server
		n+=("$(jq .completed "$WORK/c.json")")
		a+=("$(heap_allocs "$WORK/server.err")")
	done
	awk -v n1="${n[0]}" -v n2="${n[1]}" -v a1="${a[0]}" -v a2="${a[1]}" \
		'BEGIN { v = (a2 - a1) / (n2 - n1); if (v < 0.0005) v = 0; printf "%.3f (%d and %d allocations for %d and %d messages)", v, a1, a2, n1, n2 }'
}

echo "| heap allocations per message, steady state (valgrind, runs of $SHORT and $LONG s) | allocations |"
echo "|---|---|"
start_server
echo "| sender, 64 B one-way (\`--test stream\`) | $(client_side stream) |"
echo "| requester, 64 B request/response (\`--test rr --window 16\`) | $(client_side rr --window 16) |"
echo "| requester, 1 MiB requests (\`--test bw\`) | $(client_side bw) |"
stop_server
echo "| receiver, 64 B one-way | $(server_side stream) |"
echo "| responder, 64 B request/response | $(server_side rr --window 16) |"
echo "| receiver of 1 MiB requests | $(server_side bw) |"
echo

start_server
"$PERF" client --peer "$URL" --json --interval 0 --duration "$LONG" --test stream --window 10000 \
	--max-inflight 16384 >"$WORK/m.json" 2>"$WORK/m.err" || echo "memory.sh: 10,000 in flight failed" >&2
stop_server
echo "| 10,000 one-way 64 B messages in flight (\`--window 10000 --max-inflight 16384\`, 2 paths) | value |"
echo "|---|---|"
jq -r '"| sender peak resident memory (ru_maxrss) | \(.max_rss_kb / 1024 * 10 | round / 10) MiB |",
	"| messages/s; lost, duplicated, failed | \(.msgs_per_s | round); \(.lost), \(.duplicated), \(.failed) |"' \
	"$WORK/m.json"
