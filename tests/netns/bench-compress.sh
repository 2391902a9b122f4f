#!/bin/bash
# bench-compress.sh - what compression gives on a 1 Gbit/s link: two
# namespaces joined by one veth link limited with tc tbf, ml-perf bw with
# 1 MiB requests (8 in flight), for a compressible (text) and an
# incompressible (random) payload, without compression, with LZ4 and with
# zstd. Reports the application's bytes per second (what crossed the link is
# less when compressed) and the request latency. Medians of RUNS runs.
#
# Not a pass/fail test: it prints a Markdown table (also written to OUT) for
# doc/performance.md. Usage: make bench-compress (root).
# Env: BIN (build/bin), RUNS (3), SECONDS_PER_RUN (5), RATE (1gbit),
# OUT (build/bench-compress.md).
set -u
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
net_require

BIN=${BIN:-build/bin}
PERF=$(realpath "$BIN/ml-perf")
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-5}
RATE=${RATE:-1gbit}
OUT=${OUT:-build/bench-compress.md}
PORT=7500
WORK=$(mktemp -d)
trap 'net_cleanup; rm -rf "$WORK"' EXIT

net_up 2 1
for n in 1 2; do
	other=$(( 3 - n ))
	nsx $n tc qdisc replace dev "$(ifname $n $other 0)" root tbf rate "$RATE" burst 256kb latency 50ms
done
spawn 1 "$PERF" server --listen "tcp://0.0.0.0:$PORT" --port-file "$WORK/ports" >"$WORK/server.log" 2>&1
wait_file "$WORK/ports" 10 || exit 1

median() {                                    # median FIELD FILES...
	local f=$1
	shift
	jq -s "[.[] | $f] | sort | .[length / 2 | floor]" "$@"
}

{
	echo "| payload | codec | MB/s (application) | vs none | p50 ms | p99 ms |"
	echo "|---|---|---:|---:|---:|---:|"
} >"$OUT"
for payload in text random; do
	base=""
	for codec in none lz4 zstd; do
		files=()
		for (( r = 1; r <= RUNS; r++ )); do
			f="$WORK/$payload-$codec-$r.json"
			nsx 2 "$PERF" client --node 2 --server-node 1 --peer "$(urls 1 2 $PORT)" \
				--test bw --size 1048576 --window 8 --duration "$SECS" --interval 0 \
				--payload "$payload" --compress "$codec" --json >"$f" 2>"$f.log" ||
				{ echo "ml-perf failed:"; cat "$f.log" "$WORK/server.log"; exit 1; }
			files+=("$f")
		done
		bps=$(median .bytes_per_s "${files[@]}")
		p50=$(median .p50_us "${files[@]}")
		p99=$(median .p99_us "${files[@]}")
		[ -z "$base" ] && base=$bps
		printf "| %s | %s | %.1f | %.2fx | %.1f | %.1f |\n" "$payload" "$codec" \
			"$(echo "$bps / 1000000" | bc -l)" "$(echo "$bps / $base" | bc -l)" \
			"$(echo "$p50 / 1000" | bc -l)" "$(echo "$p99 / 1000" | bc -l)" >>"$OUT"
		echo "  $payload $codec: $(echo "$bps / 1000000" | bc -l | cut -c1-7) MB/s" >&2
	done
done
echo "link: one veth, tc tbf rate $RATE; ml-perf --test bw --size 1048576 --window 8, $SECS s," \
	"median of $RUNS runs; $(date -u +%Y-%m-%d)" >>"$OUT"
cat "$OUT"
