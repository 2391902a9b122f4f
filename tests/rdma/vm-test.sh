#!/bin/bash
# vm-test.sh - `make rdma-vm-test`: boot the soft-RoCE VM (rdmavm.sh) with the
# freshly built test_rdma and ml-perf, run vm-inner.sh inside, and pass its
# output and exit status back. Root (it may install qemu-system-x86 and cpio).
#   BIN, TESTS  where ml-perf and test_rdma are (build/bin, build/tests)
#   RDMAVM_WORK the download and image cache (build/rdmavm)
set -euo pipefail
here=$(dirname "$0")
BIN=${BIN:-build/bin} TESTS=${TESTS:-build/tests}
start=$(date +%s)
rc=0
"$here/rdmavm.sh" -q -t "${RDMAVM_TIME_LIMIT:-480}" -b "$TESTS/test_rdma" -b "$BIN/ml-perf" \
	-f "$here/vm-inner.sh:/root/vm-inner.sh" -- 'sh /root/vm-inner.sh' || rc=$?
work=$(realpath -m "${RDMAVM_WORK:-build/rdmavm}")
# The VM's console, from the moment it was ready: the tests' own output.
sed -n '/^RDMAVM_READY/,$p' "$work/last-console.log" | tr -d '\r'
echo "rdma-vm-test: exit $rc after $(($(date +%s) - start)) s (console: $work/last-console.log)"
exit "$rc"
