#!/bin/bash
# ml-perf.sh - ml-perf end to end over loopback (no root needed): every test
# kind completes everything exactly once over two paths, an in-library
# blackhole under paced load loses nothing, the JSON has the keys scripts rely
# on, and bad usage exits with 2.
# Env: BIN (directory of ml-perf; default build/bin).
set -u
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
PERF=$BIN/ml-perf
WORK=$(mktemp -d)
FAILED=0
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
command -v jq >/dev/null || { echo "FAIL: jq not installed (make deps)"; exit 1; }

fail() { echo "  FAIL: $*"; FAILED=$(( FAILED + 1 )); }
expect() { jq -e "$1" "$2" >/dev/null || fail "$3 ($1; got $(jq -c "${4:-.}" "$2"))"; }

"$PERF" server --listen tcp://127.0.0.1:0 --listen tcp://127.0.0.2:0 --port-file "$WORK/ports" \
	2>"$WORK/server.log" &
SERVER=$!
for (( i = 0; i < 1000; i++ )); do [ -s "$WORK/ports" ] && break; sleep 0.01; done
[ -s "$WORK/ports" ] || { echo "FAIL: the server wrote no port file"; cat "$WORK/server.log"; exit 1; }
URLS="tcp://127.0.0.1:$(sed -n 1p "$WORK/ports"),tcp://127.0.0.2:$(sed -n 2p "$WORK/ports")"

run() {                                       # run NAME [ml-perf client options]
	local name=$1
	shift
	echo "== ml-perf $name"
	"$PERF" client --peer "$URLS" --interval 0 --json "$@" >"$WORK/$name.json" 2>"$WORK/$name.log"
	local rc=$?
	[ $rc -eq 0 ] || fail "exit status $rc ($(tail -2 "$WORK/$name.log"))"
	expect '.lost == 0 and .duplicated == 0 and .failed == 0' "$WORK/$name.json" \
		"nothing lost, duplicated or failed" '{lost, duplicated, failed, errors}'
	expect '.completed > 0' "$WORK/$name.json" "requests completed" .completed
	expect '.paths | length == 2' "$WORK/$name.json" "two paths reported" .paths
	expect '[.p50_us, .p99_us, .p999_us, .max_us, .msgs_per_s, .bytes_per_s, .resent, .stall_ms, .max_rss_kb]
		| all(type == "number")' "$WORK/$name.json" "the stable keys are numbers" .
	expect '.p50_us <= .p99_us and .p99_us <= .p999_us and .p999_us <= .max_us' \
		"$WORK/$name.json" "percentiles are ordered" '[.p50_us, .p99_us, .p999_us, .max_us]'
}

run rr --test rr --duration 1
run stream --test stream --duration 1
run bw --test bw --duration 1
run blackhole --test rr --size 4096 --window 64 --rate 2000 --duration 2 \
	--fault at=0.5,path=0,kind=blackhole,for=0.5
expect '.paths[0].failures >= 1' "$WORK/blackhole.json" "the blackholed path failed" '.paths[0]'
expect '.paths[1].failures == 0' "$WORK/blackhole.json" "the other did not" '.paths[1]'
expect '.inflight_at_fault >= 0 and .time_to_recover_s >= 0' "$WORK/blackhole.json" \
	"fault figures reported" '{inflight_at_fault, time_to_recover_s}'

echo "== ml-perf with a cluster key"
"$BIN/ml-keygen" "$WORK/key" >/dev/null || fail "ml-keygen"
"$PERF" server --listen tcp://127.0.0.1:0 --port-file "$WORK/kports" --key-file "$WORK/key" \
	--node 5 2>"$WORK/kserver.log" &
KSERVER=$!
for (( i = 0; i < 1000; i++ )); do [ -s "$WORK/kports" ] && break; sleep 0.01; done
"$PERF" client --peer "tcp://127.0.0.1:$(cat "$WORK/kports")" --server-node 5 --key-file "$WORK/key" \
	--interval 0 --json --duration 0.5 >"$WORK/keyed.json" 2>"$WORK/keyed.log" ||
	fail "keyed run: $(tail -2 "$WORK/keyed.log")"
expect '.completed > 0 and .lost == 0' "$WORK/keyed.json" "authenticated run completes" .completed
kill "$KSERVER"
wait "$KSERVER"

echo "== ml-perf usage errors"
chmod 644 "$WORK/key"
for args in "client" "client --peer $URLS --test nope" "client --peer $URLS --fault at=1,kind=bogus" \
	"client --peer $URLS --window 0" "client --peer $URLS --max-inflight 0" "bogus" "client --peer $URLS --key-file $WORK/key" \
	"client --peer $URLS --key-file $WORK/none"; do
	# shellcheck disable=SC2086  # word splitting wanted
	"$PERF" $args >/dev/null 2>&1
	rc=$?
	[ $rc -eq 2 ] || fail "'ml-perf $args' exited with $rc, not 2"
done

kill "$SERVER"
wait "$SERVER"
rc=$?
[ $rc -eq 0 ] || fail "the server exited with $rc on SIGTERM"
grep -q " 0 duplicates" "$WORK/server.log" || fail "server saw duplicates: $(tail -1 "$WORK/server.log")"
if [ "$FAILED" -ne 0 ]; then
	echo "ml-perf: $FAILED check(s) failed"
	exit 1
fi
echo "ml-perf: all checks passed"
