#!/bin/sh
# run.sh BUILD SECONDS TARGET... - what make fuzz runs (doc/testing.md).
#
# For each target in turn: replay its crash inputs (tests/fuzz/regressions/T,
# each must now pass), then fuzz it for SECONDS on the committed seeds
# (tests/fuzz/corpus/T) plus its working corpus (BUILD/corpus/T, which gets
# what it finds; never committed). One at a time: libFuzzer is one process
# per target, and the machine is shared.
# Prints executions and coverage per target, appends them to
# BUILD/fuzz-history.tsv (to sum up fuzzing time), and fails if any target
# crashed; the input that did it is kept in BUILD/artifacts/T/.
set -u
build=$1
seconds=$2
shift 2
fail=0
table=$(printf '%-10s %8s %12s %8s %6s %6s %7s  %s' target seconds executions exec/s cov ft corpus result)
for t in "$@"; do
	bin=$build/fuzz_$t
	log=$build/logs/$t.log
	mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$build/logs"
	result=ok
	if [ -n "$(ls tests/fuzz/regressions/$t 2>/dev/null)" ]; then
		echo "== $t: replaying tests/fuzz/regressions/$t"
		if ! "$bin" -artifact_prefix="$build/artifacts/$t/" tests/fuzz/regressions/$t/* \
			>"$log" 2>&1; then
			tail -40 "$log"
			result="REGRESSION (see $log)"
			fail=1
		fi
	fi
	if [ "$result" = ok ]; then
		echo "== $t: fuzzing for $seconds s"
		start=$(date +%s)
		"$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
			-artifact_prefix="$build/artifacts/$t/" "$build/corpus/$t" "tests/fuzz/corpus/$t" \
			>"$log" 2>&1
		rc=$?
		took=$(($(date +%s) - start))
		if [ $rc -ne 0 ]; then
			tail -60 "$log"
			result="CRASH (input in $build/artifacts/$t/, log $log)"
			fail=1
		fi
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	# The last status line: "#N  DONE  cov: C ft: F corp: K/..."
	last=$(grep -E '^#[0-9]+' "$log" | tail -1)
	cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
	table=$(printf '%s\n%-10s %8s %12s %8s %6s %6s %7s  %s' "$table" "$t" "${took:-0}" \
		"${runs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "${corp:--}" "$result")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "${took:-0}" "${runs:-0}" \
		"$cov" "$ft" "$result" >>"$build/fuzz-history.tsv"
	took=
done
echo
echo "$table"
exit $fail
