#!/bin/bash
# streams-link.sh - make bench-streams over shaped links instead of bare
# loopback (make bench-streams-link; root).
#
# On bare loopback the "link" is the CPU: two workers moving hundreds of MB/s
# between them keep this machine's cores busy, and a request's latency next to
# the streams mostly measures the scheduler. A cluster link is slower than the
# CPUs, and what a request waits for there is the bulk queued ahead of it,
# which is what the library controls. So: bench_streams with the server's
# worker in one network namespace and the client's in another, joined by two
# veth links (one per path, MTU 9000), each direction of each limited by tc
# tbf to RATE with a 5 ms queue, like a full-duplex link with a switch buffer.
# Each row is one run of bench_streams with settings given as
# "CHUNK FRAG PATH_MAX WINDOW" (bytes, bytes, bytes, chunks), or "default".
#
# Not a pass/fail test of speed: bench_streams fails only on wrong content,
# counts or statuses. Env: BENCH (build/tests/bench_streams), RATE (1gbit per
# link), BYTES (256 MiB per stream), RUNS (3), SETTINGS ("default").
set -u
cd "$(dirname "$0")/../.."
. tests/netns/lib.sh
net_require

BENCH=$(realpath "${BENCH:-build/tests/bench_streams}")
RATE=${RATE:-1gbit}
BYTES=${BYTES:-$((256 << 20))}
RUNS=${RUNS:-3}
SETTINGS=${SETTINGS:-default}

net_up 2 2
for l in 0 1; do
	for n in 1 2; do
		other=$(( 3 - n ))
		nsx $n ip link set "$(ifname $n $other $l)" mtu 9000
		nsx $n tc qdisc replace dev "$(ifname $n $other $l)" root tbf rate "$RATE" burst 256kb latency 5ms
	done
done

echo "bench_streams between two namespaces, 2 links of $RATE each way (tbf, 5 ms queue, MTU 9000)," \
	"streams of $((BYTES >> 20)) MiB each way"
IFS=';' read -ra rows <<<"$SETTINGS"
status=0
for run in $(seq "$RUNS"); do
	for row in "${rows[@]}"; do
		env=()
		if [ "$row" != default ]; then
			read -r chunk frag pmax window <<<"$row"
			env=(ML_BENCH_CHUNK="$chunk" ML_BENCH_FRAG="$frag" ML_BENCH_PATH_MAX="$pmax"
			     ML_BENCH_WINDOW="$window")
		fi
		echo "== run $run, settings: $row"
		env "${env[@]}" ML_BENCH_STREAM_BYTES="$BYTES" ML_BENCH_CANCELS=5 ML_BENCH_SECONDS=2 \
			ML_TEST_SEED="$run" ML_BENCH_NETNS_SRV="/run/netns/$(ns 1)" \
			ML_BENCH_NETNS_CLI="/run/netns/$(ns 2)" \
			ML_BENCH_ADDR0="$(addr 1 2 0)" ML_BENCH_ADDR1="$(addr 1 2 1)" "$BENCH" \
			>"/tmp/streams-link.$$" 2>&1 || status=1
		grep -E '^(bench_streams|streams|request|cancel|FAIL)' "/tmp/streams-link.$$"
	done
done
rm -f "/tmp/streams-link.$$"
exit $status
