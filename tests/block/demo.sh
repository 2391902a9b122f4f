#!/bin/bash
# demo.sh - `make demo` as a test: the demo shortened to DEMO_SECONDS (6 s)
# must end with its verified summary: every I/O done once, the reads
# verified, nothing lost or duplicated, a fault window with the traffic of
# each path before, during and after it. Prints SKIP and succeeds when the
# demo cannot run here (not root, no Corosync).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(mktemp /tmp/ml-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT
echo "== block: the demo, ${DEMO_SECONDS:=6} s (examples/block/demo.sh)"
t0=$(date +%s%N)
DEMO_SECONDS=$DEMO_SECONDS "$root/examples/block/demo.sh" >"$out" 2>&1
rc=$?
if [ $rc = 77 ]; then
	echo "SKIP tests/block/demo.sh: $(head -1 "$out")"
	exit 0
fi
failed=0
check() { grep -Eq -- "$1" "$out" || { echo "  FAIL: $2 (no /$1/)"; failed=1; }; }
[ $rc = 0 ] || { echo "  FAIL: the demo exited with $rc"; failed=1; }
check "^result: OK: [0-9]+ I/Os, [1-9][0-9]* blocks verified, 0 mismatches, lost 0, duplicated 0$" \
	"the verified summary"
check "^  lost 0 \(failed 0, never completed 0\), duplicated 0," "nothing lost or duplicated"
check "^  failover   longest stall in the second after the fault began: " "the stall at failover"
check "^  fault      window t=[0-9.]+ s \.\. t=[0-9.]+ s: path 0 .* blackhole$" "a closed fault window on path 0"
check "^    path +before +during +after$" "per-path traffic before, during and after"
check "^demo: OK" "the demo's verdict"
if [ $failed != 0 ]; then
	cat "$out"
	exit 1
fi
sed -n '/^summary/,/^result/p' "$out" | sed 's/^/  /'
echo "  demo passed in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
