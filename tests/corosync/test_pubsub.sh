#!/bin/sh
# test_pubsub.sh BINARY - run the discovery integration test (tests/integ/
# test_pubsub.c) next to a private single-node Corosync: cs.sh up1 in a
# network namespace of its own, the test via cs.sh exec, then cs.sh down.
# Prints SKIP and succeeds when not root or Corosync is not installed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: test_pubsub.sh path/to/test_pubsub}
if [ "$(id -u)" != 0 ]; then echo "SKIP test_pubsub: needs root (network namespaces)"; exit 0; fi
if ! command -v corosync >/dev/null || ! command -v ip >/dev/null; then
	echo "SKIP test_pubsub: corosync or ip not installed"; exit 0
fi
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
CS_PREFIX=mlps$$
CS_DIR=$(mktemp -d /tmp/mlps-test.XXXXXX)
export CS_PREFIX CS_DIR
cs=$here/cs.sh
cleanup() {
	d0=$(date +%s%N)
	"$cs" down
	echo "corosync stopped and namespace removed in $(( ($(date +%s%N) - d0) / 1000000 )) ms"
	rm -rf "$CS_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t0=$(date +%s%N)
"$cs" up1 || { echo "FAIL test_pubsub: corosync did not start"; cat "$CS_DIR/n0/corosync.log"; exit 1; }
t1=$(date +%s%N)
echo "corosync single node ready in $(( (t1 - t0) / 1000000 )) ms (netns, config, start, quorum)"
MLPS_TEST_CS=$cs MLPS_TEST_COROSYNC_PID=$(cat "$CS_DIR/n0/corosync.pid") \
	"$cs" exec 0 ${MLPS_TEST_WRAP:-} "$bin"
rc=$?
[ $rc = 0 ] || { echo "FAIL test_pubsub (rc $rc); corosync log:"; tail -20 "$CS_DIR/n0/corosync.log"; }
exit $rc
