#!/bin/bash
# vm-test.sh - `make check-rdma`: boot the soft-RoCE VM (rdmavm.sh) with the
# freshly built test_rdma and ml-perf, run vm-inner.sh inside, and pass its
# output and exit status back. Root (it may install qemu-system-x86 and cpio).
#   BIN, TESTS  where ml-perf and test_rdma are (build/bin, build/tests)
#   RDMAVM_WORK the download and image cache (build/rdmavm)
#   RDMA_VM_QUICK=1  the short version (CI): no ml-perf figures, fewer requests
# A VM that reports no exit status (it hit its time limit, or its kernel
# stalled or locked up: the emulated machine is at the mercy of a busy host,
# and soft-RoCE's kernel code is not at its best under TCG) is booted once
# more; a test that failed is not.
set -euo pipefail
here=$(dirname "$0")
BIN=${BIN:-build/bin} TESTS=${TESTS:-build/tests}
mode=$([ "${RDMA_VM_QUICK:-0}" = 1 ] && echo quick || true)
work=$(realpath -m "${RDMAVM_WORK:-build/rdmavm}")
start=$(date +%s)
for try in 1 2; do
	rc=0
	"$here/rdmavm.sh" -q -t "${RDMAVM_TIME_LIMIT:-480}" -b "$TESTS/test_rdma" -b "$BIN/ml-perf" \
		-f "$here/vm-inner.sh:/root/vm-inner.sh" -- "sh /root/vm-inner.sh $mode" || rc=$?
	# The VM's console, from the moment it was ready: the tests' own output.
	sed -n '/^RDMAVM_READY/,$p' "$work/last-console.log" 2>/dev/null | tr -d '\r' || true
	[ "$rc" = 124 ] || [ "$rc" = 125 ] || break
	echo "rdma-vm-test: the VM gave no exit status (rc $rc, try $try)"
done
echo "rdma-vm-test: exit $rc after $(($(date +%s) - start)) s (console: $work/last-console.log)"
exit "$rc"
