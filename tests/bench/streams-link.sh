#!/bin/bash
# streams-link.sh - make bench-streams over a shaped link instead of bare
# loopback (make bench-streams-link; root).
#
# On bare loopback the "link" is the CPU: two workers moving a GB/s between
# them keep this machine's cores busy, and a request's latency next to the
# streams mostly measures the scheduler. A cluster link is slower than the
# CPUs, and what a request waits for there is the bulk queued ahead of it,
# which is what the library controls. So: bench_streams in a network namespace
# of its own whose loopback is limited by tc tbf to RATE (both paths and both
# directions share it, as on one NIC), with the MTU of an Ethernet jumbo frame.
# Each row is one run of bench_streams with settings given as
# "CHUNK FRAG PATH_MAX WINDOW" (bytes, bytes, bytes, chunks).
#
# Not a pass/fail test of speed: bench_streams fails only on wrong content,
# counts or statuses. Env: RATE (5gbit), BYTES (512 MiB per stream), RUNS (3),
# SETTINGS (the defaults, then 16 KiB chunks and path cap).
set -eu
cd "$(dirname "$0")/../.."
BENCH=$(realpath build/tests/bench_streams)
RATE=${RATE:-5gbit}
BYTES=${BYTES:-$((512 << 20))}
RUNS=${RUNS:-3}
SETTINGS=${SETTINGS:-"default;16384 65536 16384 32"}
[ "$(id -u)" = 0 ] || { echo "streams-link: needs root (unshare -n, tc)" >&2; exit 2; }

echo "bench_streams over loopback shaped to $RATE (tbf, MTU 9000), streams of $((BYTES >> 20)) MiB each way"
IFS=';' read -ra rows <<<"$SETTINGS"
for run in $(seq "$RUNS"); do
	for row in "${rows[@]}"; do
		env=()
		if [ "$row" != default ]; then
			read -r chunk frag pmax window <<<"$row"
			env=(ML_BENCH_CHUNK=$chunk ML_BENCH_FRAG=$frag ML_BENCH_PATH_MAX=$pmax ML_BENCH_WINDOW=$window)
		fi
		echo "== run $run, settings: $row"
		env "${env[@]}" ML_BENCH_STREAM_BYTES="$BYTES" ML_BENCH_CANCELS=5 ML_BENCH_SECONDS=2 \
			unshare -n sh -c "ip link set lo up && ip link set lo mtu 9000 &&
				tc qdisc add dev lo root tbf rate $RATE burst 256k latency 2ms && exec $BENCH" |
			grep -E '^(bench_streams|streams|request|cancel)'
	done
done
