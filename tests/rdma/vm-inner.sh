# vm-inner.sh - the RDMA tests, run inside the soft-RoCE VM by vm-test.sh
# (busybox sh, as root). Path A: vA0 192.0.2.1 <-> vA1 192.0.2.2, path B:
# vB0 198.51.100.1 <-> vB1 198.51.100.2, an rxe device on every end; clients
# bind the X0 address (?src=) so that RDMA traffic crosses the veth wire.
# Argument "quick" (CI): fewer requests in (a), no (b4), no ml-perf figures (c).
# Exit status: 0 when every test passed.
quick=${1:-}
count=400
[ "$quick" = quick ] && count=100
A1=192.0.2.2 A0=192.0.2.1 B1=198.51.100.2 B0=198.51.100.1
fail=0
t0=$(cut -d' ' -f1 /proc/uptime)
step() { echo; echo "=== $* (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }
# A hung test must not hold the VM: every one is bounded.
run() { timeout -s KILL "$@" || { echo "FAILED (exit $?): $*"; fail=1; }; }
sent() { cat /sys/class/infiniband/$1/ports/1/hw_counters/sent_pkts; }
rcvd() { cat /sys/class/infiniband/$1/ports/1/hw_counters/rcvd_pkts; }

step "(a) RDMA only: requests of 64 B..1 MiB over both rdma:// paths"
a0=$(sent rxe_vA0) b0=$(sent rxe_vB0)
run 120 test_rdma rr --count $count --listen rdma://$A1:7401 --listen rdma://$B1:7402 \
	--peer "rdma://$A1:7401?src=$A0" --peer "rdma://$B1:7402?src=$B0"
# The devices of both ends count the packets: the traffic crossed each wire.
for d in rxe_vA0 rxe_vA1 rxe_vB0 rxe_vB1; do echo "  $d sent $(sent $d) received $(rcvd $d) packets"; done
if [ $(($(sent rxe_vA0) - a0)) -lt 100 ] || [ $(($(sent rxe_vB0) - b0)) -lt 100 ]; then
	echo "FAILED: a path's RDMA traffic did not cross its wire"
	fail=1
fi

# Zero copy: registered payloads are pulled with RDMA READ (never copied),
# plain ones go through the transport's buffers (every byte copied); the
# copy counters of every path at both ends say which, and every answer is
# checked byte for byte. Then a path fails with READs outstanding: what it
# had in flight goes again on the other RDMA path (as descriptors) or on TCP
# (as DATA frames); nothing lost, nothing twice, still no copy.
zc=60 zcp=30
[ "$quick" = quick ] && zc=30 zcp=15
step "(e1) zero copy: $zc requests of 64 KiB..1 MiB from registered memory over both rdma:// paths"
run 120 test_rdma rr --count $zc --mem registered --listen rdma://$A1:7415 --listen rdma://$B1:7416 \
	--peer "rdma://$A1:7415?src=$A0" --peer "rdma://$B1:7416?src=$B0"
step "(e2) the same from plain memory: bounce buffers"
run 120 test_rdma rr --count $zcp --mem plain --listen rdma://$A1:7417 --listen rdma://$B1:7418 \
	--peer "rdma://$A1:7417?src=$A0" --peer "rdma://$B1:7418?src=$B0"
step "(e3) zero copy, 256 KiB requests: path A's RDMA connection reset with READs outstanding, path B RDMA"
run 150 test_rdma failover --mem registered --size 262144 --load 30 \
	--listen rdma://$A1:7419 --listen rdma://$B1:7420 \
	--peer "rdma://$A1:7419?src=$A0" --peer "rdma://$B1:7420?src=$B0" \
	--fault lib:reset --clear lib:clear --expect-reason "fault injected: reset"
step "(e4) zero copy, 256 KiB requests: path A's RDMA connection reset, fallback to tcp://"
run 150 test_rdma failover --mem registered --size 262144 --load 30 \
	--listen rdma://$A1:7421 --listen tcp://$B1:7422 \
	--peer "rdma://$A1:7421?src=$A0" --peer "tcp://$B1:7422" \
	--fault lib:reset --clear lib:clear --expect-reason "fault injected: reset"

# A peer's descriptors that its own device refuses (wrong remote key: a bug,
# or memory unregistered too soon): the READs fail with a remote access
# error, the reader closes the path and says why, the fragments go again on
# path B; path A fails on each reconnect until the fault is cleared.
step "(e5) zero copy: path A's descriptors carry a wrong remote key, then cleared"
run 150 test_rdma failover --mem registered --size 262144 --load 30 \
	--listen rdma://$A1:7423 --listen rdma://$B1:7424 \
	--peer "rdma://$A1:7423?src=$A0" --peer "rdma://$B1:7424?src=$B0" \
	--fault lib:bad-key --clear lib:clear --expect-server-reason "RDMA READ: remote access error"

# Drop RoCEv2 on the receiving side of both ends (INPUT, not OUTPUT: an
# OUTPUT drop leaves rxe retrying forever and rdma_destroy_id stuck).
drop="iptables -A INPUT -i vA1 -p udp --dport 4791 -j DROP && iptables -A INPUT -i vA0 -p udp --dport 4791 -j DROP"
step "(b1) RDMA + TCP under load: path A's RDMA blackholed with iptables, then cleared"
run 150 test_rdma failover --listen rdma://$A1:7403 --listen tcp://$B1:7404 \
	--peer "rdma://$A1:7403?src=$A0" --peer "tcp://$B1:7404" \
	--fault "$drop" --clear "iptables -F INPUT"

# The link goes down under load: rxe fails the QP at once (LOC_QP_OP_ERR);
# the transport holds the CM id until the port is back (doc/rdma.md: a DREQ
# sent through a down port breaks soft-RoCE's QP1 for good).
step "(b2) RDMA + TCP under load: path A's link set down, then up"
run 150 test_rdma failover --listen rdma://$A1:7405 --listen tcp://$B1:7406 \
	--peer "rdma://$A1:7405?src=$A0" --peer "tcp://$B1:7406" \
	--fault "ip link set vA0 down" --clear "ip link set vA0 up"

# A flapping link: down and up three times in six seconds. Each time rxe
# fails the QP, the path comes back after its flap hold-out and probation;
# requests keep going on path B throughout.
flap="for i in 1 2 3; do ip link set vA0 down; sleep 0.5; ip link set vA0 up; sleep 1.5; done"
step "(b5) RDMA + TCP under load: path A's link flaps three times"
run 150 test_rdma failover --listen rdma://$A1:7425 --listen tcp://$B1:7426 \
	--peer "rdma://$A1:7425?src=$A0" --peer "tcp://$B1:7426" \
	--fault "$flap" --clear "ip link set vA0 up" --min-failures 2

# The library's own faults (ml_fault_set) on the RDMA path: reset moves the
# QP to the error state; blackholes are the core's, as on TCP.
step "(b3) RDMA + TCP under load: the library resets path A's RDMA connection"
run 150 test_rdma failover --listen rdma://$A1:7409 --listen tcp://$B1:7410 \
	--peer "rdma://$A1:7409?src=$A0" --peer "tcp://$B1:7410" \
	--fault lib:reset --clear lib:clear --expect-reason "fault injected: reset"

if [ "$quick" != quick ]; then
step "(b4) RDMA + TCP under load: the library blackholes path A's RDMA connection"
run 150 test_rdma failover --listen rdma://$A1:7411 --listen tcp://$B1:7412 \
	--peer "rdma://$A1:7411?src=$A0" --peer "tcp://$B1:7412" \
	--fault lib:blackhole --clear lib:clear

step "(c) ml-perf over both rdma:// paths (TCG: indicative only)"
ml-perf server --listen rdma://$A1:7407 --listen rdma://$B1:7408 --port-file /tmp/ports >/tmp/srv.log 2>&1 &
srv=$!
i=0
while [ ! -f /tmp/ports ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
peer="rdma://$A1:7407?src=$A0,rdma://$B1:7408?src=$B0"
run 60 ml-perf client --peer "$peer" --test rr --size 64 --duration 5 --interval 0 --json
run 60 ml-perf client --peer "$peer" --test rr --size 4096 --window 16 --duration 5 --interval 0 --json
run 60 ml-perf client --peer "$peer" --test bw --duration 5 --interval 0 --json
# 1% of packets lost on every veth end: rxe retransmits, paths go suspect
# or fail and come back; nothing may be lost (ml-perf exits 1 if it is).
step "(c2) the same under 1% packet loss on both links (netem)"
for d in vA0 vA1 vB0 vB1; do tc qdisc add dev $d root netem loss 1%; done
run 60 ml-perf client --peer "$peer" --test rr --size 4096 --window 16 --duration 4 --interval 0 --json
run 60 ml-perf client --peer "$peer" --test bw --duration 4 --interval 0 --json
for d in vA0 vA1 vB0 vB1; do tc qdisc del dev $d root; done
kill $srv
wait $srv
cat /tmp/srv.log
fi

# Both ends and the listener must let go of their devices at once, librdmacm
# included (rdma link delete blocks otherwise: bounded, that fails the test);
# the path fails for DEVICE_REMOVAL and comes back on the devices made anew.
step "(d) RDMA + TCP under load: path A's rxe devices deleted, then made anew"
del="timeout -s KILL 20 rdma link delete rxe_vA0 && timeout -s KILL 20 rdma link delete rxe_vA1"
run 150 test_rdma failover --listen rdma://$A1:7413 --listen tcp://$B1:7414 \
	--peer "rdma://$A1:7413?src=$A0" --peer "tcp://$B1:7414" --fault "$del" \
	--clear "rdma link add rxe_vA0 type rxe netdev vA0 && rdma link add rxe_vA1 type rxe netdev vA1" \
	--expect-reason DEVICE_REMOVAL

echo
echo "=== RDMA tests$([ "$quick" = quick ] && echo " (quick)"): $([ $fail = 0 ] && echo PASSED || echo FAILED) in $(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime) - $t0}") s"
exit $fail
