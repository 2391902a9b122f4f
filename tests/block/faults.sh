#!/bin/bash
# faults.sh - the block service end to end, next to a private single-node
# Corosync (tests/corosync/cs.sh up1, everything in its network namespace):
#
#  1. ml-blockd and ml-blockcli in verify mode for a fixed number of I/Os
#     over two paths, while random faults (blackhole both ways or one way,
#     drop, delay, reset; on a random path, from the client's or the
#     backend's side) are injected through both admin sockets with mlctl:
#     every block read must verify, nothing be lost or duplicated;
#  2. sync writes (BLK_F_SYNC) verify too;
#  3. two backends publish the same file as block/rep; the one in use is
#     killed with -9: the client switches to the other, re-issues what
#     failed with ML_EPEERDOWN, and still verifies everything;
#  4. put then get of a file that is not block-aligned gives it back;
#  5. ml-hello answers, and the README shows examples/hello/hello.c as it is;
#  6. bad usage exits with 2, no volume with 3; ml-blockd exits 0 on SIGTERM.
#
# Prints SKIP and succeeds when not root or Corosync is not installed.
# Env: BIN (build/bin), BLOCK_TEST_IOS (300000: I/Os of step 1).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-build/bin}
case $BIN in /*) ;; *) BIN=$root/$BIN ;; esac
IOS=${BLOCK_TEST_IOS:-300000}
if [ "$(id -u)" != 0 ]; then echo "SKIP tests/block/faults.sh: needs root (network namespaces)"; exit 0; fi
if ! command -v corosync >/dev/null || ! command -v ip >/dev/null; then
	echo "SKIP tests/block/faults.sh: corosync or ip not installed"; exit 0
fi
command -v jq >/dev/null || { echo "FAIL tests/block/faults.sh: jq not installed (make deps)"; exit 1; }

W=$(mktemp -d /tmp/ml-blocktest.XXXXXX)
export CS_PREFIX=mlbk$$ CS_DIR=$W/corosync
cs=$root/tests/corosync/cs.sh
declare -A PIDS=() # name -> pid of what runs in the background
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	wait
	"$cs" down >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
FAILED=0
fail() { echo "  FAIL: $*"; FAILED=$((FAILED + 1)); }
ns() { "$cs" exec 0 "$@"; }
# expect FILE REGEX WHAT: the output has a line matching REGEX.
expect() { grep -Eq -- "$2" "$1" || fail "$3 (no /$2/ in $(basename "$1"); it ends: $(tail -4 "$1" | tr '\n' '|'))"; }
field() { sed -n "s|.*$2 \([0-9][0-9]*\).*|\1|p" "$1" | head -1; } # field FILE WORD: the number after WORD

# backend NAME NODE VOLUME-SPEC: start ml-blockd on two loopback addresses.
backend() {
	"$cs" exec 0 "$BIN/ml-blockd" --node "$2" --volume "$3" --listen tcp://127.0.0.1:0 \
		--listen tcp://127.0.0.2:0 --admin-socket "$W/$1.sock" 2>"$W/$1.log" &
	PIDS[$1]=$!
}
# stop NAME: SIGTERM, which must end it cleanly.
stop() {
	kill -TERM "${PIDS[$1]}"
	wait "${PIDS[$1]}"
	local rc=$?
	unset "PIDS[$1]"
	[ $rc = 0 ] || fail "ml-blockd $1 exited with $rc on SIGTERM ($(tail -2 "$W/$1.log" | tr '\n' '|'))"
	expect "$W/$1.log" "^ml-blockd: stopped" "ml-blockd $1 said it stopped"
}
# client NAME ARGS...: start ml-blockcli; returns once its workload runs
# (it writes a line into a FIFO we hold open), with the line in $READY.
client() {
	local name=$1
	shift
	mkfifo "$W/$name.ready"
	exec 5<>"$W/$name.ready"
	"$cs" exec 0 "$BIN/ml-blockcli" --node 2 --admin-socket "$W/$name.sock" \
		--ready-file "$W/$name.ready" --interval 0 "$@" >"$W/$name.out" 2>&1 &
	PIDS[$name]=$!
	READY=
	read -r -t 30 READY <&5 || fail "$name did not start: $(tail -3 "$W/$name.out" | tr '\n' '|')"
	exec 5<&-
}
# finish NAME: wait for a client; its exit status in $RC.
finish() {
	wait "${PIDS[$1]}"
	RC=$?
	unset "PIDS[$1]"
}

t0=$(date +%s%N)
"$cs" up1 >"$W/cs.log" 2>&1 || { echo "FAIL: corosync did not start"; cat "$W/cs.log"; exit 1; }
echo "corosync single node ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# ---- 1. verify under random faults ---------------------------------------------
echo "== block: $IOS verified I/Os under random faults on both sides"
backend d1 1 name=t0,size=32M
client c1 --volume t0 --verify --rw randrw --discard-pct 5 --bs 8k --qd 32 --ios "$IOS"
kinds=0 injected=0 refused=0
declare -A seen=()
t_start=$(date +%s%N)
while kill -0 "${PIDS[c1]}" 2>/dev/null; do
	# Which side, path and fault: the client's session (peer 1) or the
	# backend's (peer 2); durations short enough to keep I/O flowing.
	if ((RANDOM % 2)); then sock=$W/c1.sock peer=1; else sock=$W/d1.sock peer=2; fi
	case $((RANDOM % 6)) in
	0) f="blackhole 0 $((2 + RANDOM % 7))" ;; 1) f="blackhole-tx 0 $((2 + RANDOM % 7))" ;;
	2) f="blackhole-rx 0 $((2 + RANDOM % 7))" ;; 3) f="drop 0.$((10 + RANDOM % 20)) 10" ;;
	4) f="delay 0.0$((1 + RANDOM % 3)) 10" ;; 5) f="reset" ;;
	esac
	set -- $f
	kind=$1 value=${2:-} tenths=${3:-}
	args=("$kind")
	[ -n "$value" ] && args+=("$value" --for "0.$tenths")
	[ "$tenths" = 10 ] && args=("$kind" "$value" --for 1)
	if ns "$BIN/mlctl" --socket "$sock" fault "$peer" $((RANDOM % 2)) "${args[@]}" >>"$W/faults.log" 2>&1; then
		injected=$((injected + 1))
		seen[$kind]=1
	elif kill -0 "${PIDS[c1]}" 2>/dev/null; then
		refused=$((refused + 1)) # not just the client's socket gone with its end
	fi
	sleep 0.3 # the pace of the faults, not a wait for anything
done
secs=$(( ($(date +%s%N) - t_start) / 1000000 ))
finish c1
[ $RC = 0 ] || fail "ml-blockcli exited with $RC"
expect "$W/c1.out" "^result: OK: " "the run verified clean"
expect "$W/c1.out" "lost 0 \(failed 0, never completed 0\), duplicated 0" "nothing lost or duplicated"
expect "$W/c1.out" "verified +[0-9]+ reads, [0-9]+ blocks: 0 mismatches" "no mismatch"
ios=$(field "$W/c1.out" "I/Os      ")
verified=$(sed -n 's/.*verified *[0-9]* reads, \([0-9]*\) blocks.*/\1/p' "$W/c1.out")
[ "${ios:-0}" -ge "$IOS" ] || fail "only ${ios:-0} of $IOS I/Os done"
[ "${verified:-0}" -gt $((IOS / 10)) ] || fail "only ${verified:-0} blocks verified"
[ "$injected" -ge 5 ] || fail "only $injected faults injected"
[ "$refused" = 0 ] || fail "mlctl refused $refused faults: $(grep -v '^node' "$W/faults.log" | tail -3 | tr '\n' '|')"
echo "  $injected faults (${!seen[*]}) in $secs ms; $(grep -o 'frames resent [0-9]*' "$W/c1.out")" \
	"at the client; $(grep '^result' "$W/c1.out")"

# ---- 2. sync writes -------------------------------------------------------------
echo "== block: sync writes and discards (fdatasync before each answer)"
client c2 --volume t0 --verify --rw randwrite --discard-pct 10 --sync --qd 8 --ios 300 --region 1M
finish c2
[ $RC = 0 ] || fail "sync run exited with $RC ($(tail -2 "$W/c2.out" | tr '\n' '|'))"
expect "$W/c2.out" "^result: OK: 300 I/Os" "300 sync writes and discards acknowledged"

# ---- 4. put and get ---------------------------------------------------------------
echo "== block: put and get of a file that is not block-aligned"
head -c $((3 * 1024 * 1024 + 1234)) /dev/urandom >"$W/in.bin"
client put --volume t0 --qd 8 put "$W/in.bin"
finish put
[ $RC = 0 ] || fail "put exited with $RC ($(tail -2 "$W/put.out" | tr '\n' '|'))"
client get --volume t0 --qd 8 --length "$(stat -c %s "$W/in.bin")" get "$W/out.bin"
finish get
[ $RC = 0 ] || fail "get exited with $RC ($(tail -2 "$W/get.out" | tr '\n' '|'))"
cmp -s "$W/in.bin" "$W/out.bin" || fail "the file came back different"
stop d1
expect "$W/d1.log" "served [0-9]+ reads .* [0-9]+ flushes, [1-9][0-9]* discards" "the backend counted its work"

# ---- 3. a replica takes over ---------------------------------------------------------
echo "== block: the backend in use is killed with -9, a replica of block/rep takes over"
backend r1 11 name=rep,file=$W/rep.img,size=16M
backend r2 12 name=rep,file=$W/rep.img,size=16M
client c3 --volume rep --verify --rw randrw --qd 16 --duration 4 --failover-wait 5
victim=$(echo "$READY" | awk '{print $4}') # "node N pid P ml_node M"
sleep 1 # let it run on the first one, then:
for r in r1 r2; do [ "${PIDS[$r]}" = "$victim" ] && dead=$r; done
if [ -z "${dead:-}" ]; then
	fail "the client uses pid $victim, which is no backend of ours ($READY)"
else
	kill -KILL "$victim"
	wait "$victim" 2>/dev/null
	unset "PIDS[$dead]"
fi
finish c3
[ $RC = 0 ] || fail "ml-blockcli exited with $RC across the failover"
expect "$W/c3.out" "^ml-blockcli: switching to node" "the client switched"
expect "$W/c3.out" "backend switches 1," "one switch counted"
expect "$W/c3.out" "^result: OK: " "verified clean across the failover"
reissued=$(field "$W/c3.out" "re-issued")
[ "${reissued:-0}" -ge 1 ] || fail "nothing re-issued (the killed backend held none of 16 in flight?)"
echo "  $dead killed; $(grep -o 're-issued [0-9]*' "$W/c3.out"), longest stall" \
	"$(sed -n 's/^  stall *longest \([^(]*[^ (]\).*/\1/p' "$W/c3.out")"
for r in r1 r2; do [ -n "${PIDS[$r]:-}" ] && stop $r; done

# ---- 5. hello, and the README shows it ------------------------------------------------
echo "== block: ml-hello, and the README's copy of it"
ns timeout 20 "$BIN/ml-hello" >"$W/hello.out" 2>&1 || fail "ml-hello failed: $(cat "$W/hello.out")"
expect "$W/hello.out" '^client: answer "hello, world"$' "ml-hello got its answer"
awk '/^```c$/ { n++; if (n == 1) { on = 1; next } } /^```$/ { on = 0 } on' "$root/README.md" >"$W/readme.c"
diff -q "$W/readme.c" "$root/examples/hello/hello.c" >/dev/null ||
	fail "README.md's first C example differs from examples/hello/hello.c"
[ "$(wc -l <"$root/examples/hello/hello.c")" -lt 80 ] || fail "hello.c is not under 80 lines"

# ---- 6. usage ---------------------------------------------------------------------------
echo "== block: usage errors and a volume nobody publishes"
for args in "--qd 0" "--rw sideways" "--bs 3x" "--read-pct 30 --rw read" "frobnicate" "put"; do
	# shellcheck disable=SC2086 # word splitting wanted
	"$BIN/ml-blockcli" $args >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] || fail "'ml-blockcli $args' exited with $rc, not 2"
done
for args in "" "--listen tcp://127.0.0.1:0" "--volume name=x --listen tcp://127.0.0.1:0" \
	"--volume size=1M --listen tcp://127.0.0.1:0" "--volume name=x,size=1000 --listen tcp://127.0.0.1:0" \
	"--volume name=x,size=1M"; do
	# shellcheck disable=SC2086
	"$BIN/ml-blockd" $args >/dev/null 2>&1
	rc=$?
	[ $rc = 2 ] || fail "'ml-blockd $args' exited with $rc, not 2"
done
ns "$BIN/ml-blockcli" --volume nobody --wait 0.5 >"$W/none.out" 2>&1
rc=$?
[ $rc = 3 ] || fail "a volume nobody publishes: exit $rc, not 3"
expect "$W/none.out" "no block/nobody published" "the error names the volume"

if [ "$FAILED" -ne 0 ]; then
	echo "block: $FAILED check(s) failed"
	exit 1
fi
echo "block: all checks passed"
