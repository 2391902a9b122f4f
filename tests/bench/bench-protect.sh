#!/bin/bash
# bench-protect.sh - what protecting the paths costs (cfg.protect, doc/security.md):
# ml-perf over loopback, two paths, with protection none, mac and encrypt
# (authenticated with the same key in all three), on three workloads: 64 B
# request/response (one in flight), 4 KiB requests (16 in flight), 1 MiB
# bandwidth (8 in flight). Medians of RUNS runs; ratios to "none" of the same
# run, so the machine's noise cancels in part.
#
# Not a pass/fail test: it prints a Markdown table (also written to OUT) for
# doc/performance.md. Usage: make bench-protect.
# Env: BIN (build/bin), RUNS (3), SECONDS_PER_RUN (3), OUT (build/bench-protect.md).
set -u
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-3}
OUT=${OUT:-build/bench-protect.md}
WORK=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT

"$BIN/ml-keygen" "$WORK/key" >/dev/null

median() {                                    # median FIELD FILES...
	local f=$1
	shift
	jq -s "[.[] | $f] | sort | .[length / 2 | floor]" "$@"
}

# run MODE NAME ml-perf-client-options...: RUNS runs against a fresh server.
run() {
	local mode=$1 name=$2
	shift 2
	rm -f "$WORK/ports"
	"$BIN/ml-perf" server --listen tcp://127.0.0.1:0 --listen tcp://127.0.0.1:0 \
		--port-file "$WORK/ports" --key-file "$WORK/key" --protect "$mode" 2>"$WORK/server.log" &
	SERVER=$!
	for (( i = 0; i < 100 && $(cat "$WORK/ports" 2>/dev/null | wc -l) < 2; i++ )); do
		sleep 0.05
	done
	local peers
	peers=$(awk '{ printf "%stcp://127.0.0.1:%s", (NR > 1 ? "," : ""), $1 }' "$WORK/ports")
	for (( r = 1; r <= RUNS; r++ )); do
		"$BIN/ml-perf" client --peer "$peers" --key-file "$WORK/key" --duration "$SECS" \
			--interval 0 --json "$@" >"$WORK/$name-$mode-$r.json" 2>"$WORK/client.log" ||
			{ echo "ml-perf failed:"; cat "$WORK/client.log"; exit 1; }
	done
	kill "$SERVER"
	wait "$SERVER" 2>/dev/null
	SERVER=
}

{
	echo "| workload | figure | none | mac | encrypt | mac / none | encrypt / none |"
	echo "|---|---|---:|---:|---:|---:|---:|"
} >"$OUT"
row() {                                       # row NAME LABEL FIELD SCALE FORMAT
	local name=$1 label=$2 field=$3 scale=$4 fmt=$5 m v=()
	for m in none mac encrypt; do
		v+=("$(median "$field" "$WORK/$name-$m-"*.json)")
	done
	printf "| %s | %s | $fmt | $fmt | $fmt | %.2f | %.2f |\n" "$name" "$label" \
		"$(echo "${v[0]} / $scale" | bc -l)" "$(echo "${v[1]} / $scale" | bc -l)" \
		"$(echo "${v[2]} / $scale" | bc -l)" "$(echo "${v[1]} / ${v[0]}" | bc -l)" \
		"$(echo "${v[2]} / ${v[0]}" | bc -l)" >>"$OUT"
}
for mode in none mac encrypt; do
	echo "  protect $mode ..." >&2
	run "$mode" rr64 --test rr --size 64 --window 1
	run "$mode" rr4k --test rr --size 4096 --window 16
	run "$mode" bw1m --test bw --size 1048576 --window 8
done
row rr64 "p50 us" .p50_us 1 "%.1f"
row rr64 "msgs/s" .msgs_per_s 1 "%.0f"
row rr4k "msgs/s" .msgs_per_s 1 "%.0f"
row rr4k "p99 us" .p99_us 1 "%.1f"
row bw1m "MB/s" .bytes_per_s 1000000 "%.0f"
echo "loopback, two paths, $SECS s per run, median of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg);" \
	"$(date -u +%Y-%m-%d)" >>"$OUT"
cat "$OUT"
