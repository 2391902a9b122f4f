#!/bin/bash
# soak.sh - one server under load from three client processes for
# SOAK_SECONDS (default 300), with random link faults injected in the
# clients' library (ml_fault_set: reset, shutdown, blackhole, one-way
# blackhole, drop, delay) and one client killed (SIGKILL) and started again
# every quarter of the run. At the end: nothing lost, nothing duplicated,
# nothing failed in any run that was not killed; the server saw no
# duplicate; its resident memory is back within 10 % of its level after the
# warm-up; it exits cleanly (under ASan/LSan a leak makes that fail).
#
# The server and the clients are ml-perf (doc/ml-perf.md): its server keeps a
# bitmap of the request numbers of every client run, so a request delivered
# twice is seen where it happens, and its client injects the faults and
# counts what completed, failed or never completed.
#
# Env: BIN (default build/bin), SOAK_SECONDS, SOAK_SEED (default: the time).
set -u
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
PERF=$BIN/ml-perf
SECS=${SOAK_SECONDS:-300}
SEED=${SOAK_SEED:-$(date +%s)}
RANDOM=$SEED
# A small quarantine: ASan's default (256 MiB) would grow the resident set
# for as long as it fills, which is no leak of ours.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=8}
WORK=$(mktemp -d)
SERVER=
PIDS=()
cleanup() {
	for p in "${PIDS[@]}" $SERVER; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
command -v jq >/dev/null || { echo "FAIL: jq not installed (make deps)"; exit 1; }
[ "$SECS" -ge 20 ] 2>/dev/null || { echo "SOAK_SECONDS must be a number >= 20"; exit 2; }

FAILED=0
fail() { echo "FAIL: $*"; FAILED=$(( FAILED + 1 )); }
now() { date +%s.%N; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

"$PERF" server --listen tcp://127.0.0.1:0 --listen tcp://127.0.0.2:0 --port-file "$WORK/ports" \
	2>"$WORK/server.log" &
SERVER=$!
for (( i = 0; i < 1000; i++ )); do [ -s "$WORK/ports" ] && break; sleep 0.01; done
[ -s "$WORK/ports" ] || { echo "FAIL: the server wrote no port file"; cat "$WORK/server.log"; exit 1; }
URLS="tcp://127.0.0.1:$(sed -n 1p "$WORK/ports"),tcp://127.0.0.2:$(sed -n 2p "$WORK/ports")"

# Random faults for a run of $1 seconds: one every 8 s or so (ml-perf takes 16 at most), each on
# a random path, some for a while; never in the last 5 s, so that the run ends with both paths up.
FAULTS=0
faults() {
	local d=$1 n=$(( $1 / 8 )) i at args=()
	(( n > 16 )) && n=16
	(( n < 1 )) && n=1
	for (( i = 0; i < n; i++ )); do
		at=$(( 1 + RANDOM % (d - 6) )).$(( RANDOM % 10 ))
		local path=$(( RANDOM % 2 )) tenths=$(( 3 + RANDOM % 18 ))
		local dur=$(( tenths / 10 )).$(( tenths % 10 ))  # 0.3 to 2.0 s
		case $(( RANDOM % 6 )) in
		0) args+=(--fault "at=$at,path=$path,kind=reset") ;;
		1) args+=(--fault "at=$at,path=$path,kind=shutdown") ;;
		2) args+=(--fault "at=$at,path=$path,kind=blackhole,for=$dur") ;;
		3) args+=(--fault "at=$at,path=$path,kind=blackhole-tx,for=$dur") ;;
		4) args+=(--fault "at=$at,path=$path,kind=drop,value=0.05,for=2") ;;
		5) args+=(--fault "at=$at,path=$path,kind=delay,value=0.02,for=2") ;;
		esac
	done
	FAULTS=$(( FAULTS + n ))
	FAULT_ARGS=("${args[@]}")
}

# Three loads: small requests, 4 KiB ones, 300 KiB ones (cut into two fragments, which may take
# different paths). Client 0 is the one killed and started again.
LOAD=("--size 256 --window 32 --rate 1500"
      "--size 4096 --window 32 --rate 1000"
      "--size 300000 --resp-size 64 --window 4 --rate 40")
start_client() {                              # start_client INDEX RUN DURATION
	local i=$1 run=$2 d=$3
	faults "$d"
	# shellcheck disable=SC2086
	"$PERF" client --peer "$URLS" --node $(( 2 + i )) --test rr ${LOAD[$i]} --duration "$d" \
		--drain 40 --interval 0 --json "${FAULT_ARGS[@]}" >"$WORK/c$i.$run.json" \
		2>"$WORK/c$i.$run.log" &
	PIDS[i]=$!
}

T0=$(now)
elapsed() { awk -v a="$(now)" -v b="$T0" 'BEGIN { printf "%.3f", a - b }'; }
for i in 0 1 2; do start_client "$i" 0 "$SECS"; done

# Samples of the server's resident set, "seconds kB", twice a second. The
# warm-up level is the highest from an eighth to a quarter of the run: under
# full load, before the first kill (a single sample may catch the allocator
# between two highs, and the end would then look like growth).
( while kill -0 "$SERVER" 2>/dev/null; do echo "$(elapsed) $(rss_kb "$SERVER")"; sleep 0.5; done ) \
	>"$WORK/rss" &
RSS_SAMPLER=$!
PIDS+=("$RSS_SAMPLER")

RESTARTS=0
run=0
echo "soak: $SECS s, seed $SEED, 3 clients ($URLS), client 0 restarted every $(( SECS / 4 )) s"
for q in 1 2 3; do
	sleep "$(awk -v s="$SECS" -v q="$q" -v e="$(elapsed)" 'BEGIN { t = s * q / 4 - e; printf "%.3f", (t > 0 ? t : 0) }')"
	[ "$q" = 1 ] && WARM_RSS=$(awk -v from="$(( SECS / 8 ))" '$1 >= from && $2 > m { m = $2 }
		END { print m + 0 }' "$WORK/rss")
	kill -9 "${PIDS[0]}" 2>/dev/null && wait "${PIDS[0]}" 2>/dev/null
	RESTARTS=$(( RESTARTS + 1 ))
	run=$(( run + 1 ))
	left=$(awk -v s="$SECS" -v e="$(elapsed)" 'BEGIN { printf "%d", s - e }')
	(( left < 10 )) && left=10
	start_client 0 "$run" "$left"
	echo "soak: $(printf '%.0f' "$(elapsed)") s: client 0 killed and started again (run $run, $left s)" \
		"server rss $(rss_kb "$SERVER") kB"
done

st=0
for i in 0 1 2; do wait "${PIDS[i]}" || st=1; done
END_RSS=$(rss_kb "$SERVER")
PEAK_RSS=$(awk '$2 > m { m = $2 } END { print m + 0 }' "$WORK/rss")
kill -TERM "$SERVER"
wait "$SERVER"
SERVER_RC=$?
SERVER=
kill "$RSS_SAMPLER" 2>/dev/null

# The runs that were not killed: client 0's last, clients 1 and 2.
COMPLETED=0 LOST=0 DUP=0 FAILS=0 RESENT=0
for f in "$WORK/c0.$run.json" "$WORK/c1.0.json" "$WORK/c2.0.json"; do
	if ! jq -e . "$f" >/dev/null 2>&1; then
		fail "$(basename "$f"): no report ($(tail -2 "${f%.json}.log"))"
		continue
	fi
	COMPLETED=$(( COMPLETED + $(jq .completed "$f") ))
	LOST=$(( LOST + $(jq .lost "$f") ))
	DUP=$(( DUP + $(jq .duplicated "$f") ))
	FAILS=$(( FAILS + $(jq .failed "$f") ))
	RESENT=$(( RESENT + $(jq .resent "$f") ))
	jq -e '.failed == 0' "$f" >/dev/null || fail "$(basename "$f"): failed: $(jq -c .errors "$f")"
done
[ $st -eq 0 ] || fail "a client exited with an error (see above)"
# "ml-perf server: stopped by signal 15; N messages, D duplicates, M malformed; answers failed:
# ML_EPEERRESTART 12, ML_ECANCELED 1" (or "none")
SRV_MSGS=$(sed -n 's/.*; \([0-9]*\) messages, .*/\1/p' "$WORK/server.log")
SRV_DUPS=$(sed -n 's/.* \([0-9]*\) duplicates.*/\1/p' "$WORK/server.log")
SRV_ANSWERS=$(sed -n 's/.*; answers failed: \(.*\)$/\1/p' "$WORK/server.log")
# The answers owed to a killed client fail when its new incarnation connects
# (ML_EPEERRESTART). A client that exits sends the acknowledgements still due
# only as far as its sockets take them (doc/api.md, ml_ctx_destroy), so an
# answer may still end with the server (ML_ECANCELED) or with the session
# timeout (ML_ETIMEDOUT). Nothing else.
for item in ${SRV_ANSWERS//,/ }; do
	case $item in
	ML_EPEERRESTART|ML_ECANCELED|ML_ETIMEDOUT|none|[0-9]*) ;;
	*) fail "server answers failed with $item: $SRV_ANSWERS" ;;
	esac
done
[ -n "$SRV_MSGS" ] || fail "the server printed no summary: $(tail -3 "$WORK/server.log")"
[ "$SERVER_RC" -eq 0 ] || fail "the server exited with $SERVER_RC: $(grep -m3 -E 'ERROR|leak' "$WORK/server.log")"
[ "$LOST" -eq 0 ] || fail "$LOST requests lost"
[ "$DUP" -eq 0 ] && [ "${SRV_DUPS:-1}" -eq 0 ] || fail "duplicates: clients $DUP, server ${SRV_DUPS:-?}"
LIMIT=$(( WARM_RSS + WARM_RSS / 10 ))
[ "$END_RSS" -le "$LIMIT" ] || fail "server rss $END_RSS kB at the end, over 110 % of $WARM_RSS kB after warm-up"

echo "soak summary: $SECS s, seed $SEED"
echo "  requests completed $COMPLETED (runs not killed), served by the server $SRV_MSGS (all runs)"
echo "  faults injected $FAULTS, client restarts $RESTARTS, frames resent $RESENT"
echo "  lost $LOST, duplicated $DUP (server: ${SRV_DUPS:-?}), failed $FAILS"
echo "  server answers that failed (their session ended first): ${SRV_ANSWERS:-?}"
echo "  server rss: after warm-up $WARM_RSS kB (highest from $(( SECS / 8 )) to $(( SECS / 4 )) s)," \
	"peak $PEAK_RSS kB, end $END_RSS kB (limit $LIMIT kB)"
if [ $FAILED -ne 0 ]; then
	for f in "$WORK"/c*.log; do echo "--- $(basename "$f")"; tail -3 "$f"; done
	echo "--- server.log"; tail -5 "$WORK/server.log"
	echo "soak: FAILED ($FAILED)"
	exit 1
fi
echo "soak: ok"
