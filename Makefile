# msglayer - one GNU Makefile for the library, tools, tests and docs.
#   make                 library (build/lib) and tools (build/bin)
#   make check           every test (installs missing Debian packages first), with the
#                        short RDMA VM test where it can run (root; not with SANITIZE)
#   make check SANITIZE=address,undefined   same, built with sanitizers (build-san/...)
#   make demo            the main job: the block service, a path cut under load
#   make valgrind        unit tests, session, requests and admin tests under valgrind
#   make bench           ml-perf next to raw TCP, ZeroMQ, UCX and libfabric over loopback:
#                        the table in doc/performance.md (a few minutes; BENCH_QUICK=1: a
#                        smoke run whose table goes to build/bench/table.md)
#   make bench-deps      install the tools make bench compares with (not part of make deps)
#   make bench-failover  what a dead or slow link costs, between namespaces (root)
#   make bench-compress  what LZ4 and zstd give on a 1 Gbit/s link (root)
#   make bench-protect   what protect = mac / encrypt cost, over loopback
#   make bench-streams   1 GiB streams both ways next to requests: rate, request latency, cancels
#   make bench-streams-link  the same between namespaces over two 1 Gbit/s links (root)
#   make soak            SOAK_SECONDS (300) of load from 3 client processes, random link
#                        faults, a client killed and restarted; lost 0, dup 0, no growth
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (60) s (build-fuzz/...)
#   make check-rdma      real RDMA (soft-RoCE) in a QEMU VM: RDMA-only, zero copy, RDMA+TCP
#                        failover, ml-perf figures (root; about 100 s, 20 s more on a first
#                        run; RDMA_VM_QUICK=1: the short version make check runs).
#                        make rdma-vm-test is the same target under its first name.
#   make install PREFIX=/usr/local
#   make deps            install the Debian packages the build needs

PREFIX ?= /usr/local
CC ?= cc
SANITIZE ?=

ifeq ($(SANITIZE),)
BUILD := build
OPT := -O2
else
comma := ,
BUILD := build-san/$(subst $(comma),-,$(SANITIZE))
OPT := -O1 -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

# ThreadSanitizer is ~10x slower and liburcu is not instrumented (see the file);
# the block service's fault test does a tenth of its I/O there.
ifneq ($(findstring thread,$(SANITIZE)),)
export TSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/sanitizers/tsan.supp halt_on_error=1
export ML_TEST_REQUESTS ?= 5000
export ML_TEST_PATH_DOWN_S ?= 0.5
export ML_TEST_STREAM_BYTES ?= 16777216
export BLOCK_TEST_IOS ?= 30000
endif
export UBSAN_OPTIONS ?= print_stacktrace=1

PKGS := liburcu-bp liburcu-cds libisal libcrypto liblz4 libzstd
# clang and its runtimes (libFuzzer is in libclang-rt, only recommended by clang)
# are for make fuzz; tshark (with dumpcap, text2pcap) tests tools/wireshark/.
DEPS_DEBIAN := gcc make pkg-config libev-dev liburcu-dev libisal-dev libssl-dev libcmocka-dev valgrind \
	corosync libcpg-dev libquorum-dev libcmap-dev libcorosync-common-dev iproute2 iptables jq \
	clang libclang-rt-14-dev libibverbs-dev librdmacm-dev liblz4-dev libzstd-dev tshark

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-missing-field-initializers
PKG_CFLAGS := $(filter-out -I/usr/include%,$(shell pkg-config --cflags $(PKGS) 2>/dev/null))
CFLAGS := -std=gnu11 -g $(OPT) $(WARNINGS) -fPIC -D_GNU_SOURCE $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(filter -fsanitize=%,$(OPT)) $(EXTRA_LDFLAGS)
# Corosync: cs_strerror lives in libcorosync_common, which libcpg.pc does not pull in.
COROSYNC_PKGS := libcpg libcorosync_common
# rdma-core: the RDMA transport; on a host without a device it says so and TCP works.
LIBS := $(shell pkg-config --libs $(PKGS) $(COROSYNC_PKGS) 2>/dev/null) -lrdmacm -libverbs -lev -lpthread -lm

LIB_SRC := $(wildcard msglayer/*.c) $(wildcard transports/*.c) $(wildcard failover/*.c) \
	$(wildcard pubsub/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_HDRS := $(wildcard msglayer/*.h transports/*.h failover/*.h pubsub/*.h)
TOOLS := $(patsubst tools/%.c,$(BUILD)/bin/%,$(wildcard tools/*.c))
# examples/block: ml-blockd (backend) and ml-blockcli (frontend) share the
# block protocol, the I/O buffers and option parsing.
BLOCK_COMMON := blockproto iobuf parse
BLOCKD_OBJ := $(patsubst %,$(BUILD)/obj/examples/block/%.o,blockd volume service ioqueue \
	$(BLOCK_COMMON))
BLOCKCLI_OBJ := $(patsubst %,$(BUILD)/obj/examples/block/%.o,blockcli cli_options backends \
	engine workload pattern copy report $(BLOCK_COMMON))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/bin/%,$(wildcard examples/*.c)) \
	$(BUILD)/bin/ml-blockd $(BUILD)/bin/ml-blockcli $(BUILD)/bin/ml-hello
UNIT := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG := $(patsubst tests/integ/%.c,$(BUILD)/tests/%,$(wildcard tests/integ/test_*.c))

# test_pubsub needs a private Corosync: tests/corosync/test_pubsub.sh starts one.
INTEG_PLAIN := $(filter-out %/test_pubsub,$(INTEG))

.PHONY: all deps check unit integ corosync block tooltests netns valgrind demo bench bench-deps \
	bench-failover bench-compress bench-protect bench-streams bench-streams-link rdma-vm-test check-rdma check-rdma-quick install clean fuzz \
	fuzz-build fuzz-seeds soak
.DEFAULT_GOAL := all

all: $(BUILD)/lib/libmsglayer.a $(BUILD)/lib/libmsglayer.so $(TOOLS) $(EXAMPLES)

deps:
	@./.ci/deps.sh $(DEPS_DEBIAN)

# pubsub/ sits on the public API: it includes msglayer.h like an application.
$(BUILD)/obj/pubsub/%.o: CFLAGS += -Imsglayer

$(BUILD)/obj/%.o: %.c $(LIB_HDRS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/libmsglayer.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/lib/libmsglayer.so: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libmsglayer.so.0 $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/bin/%: tools/%.c $(wildcard tools/*.h) $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

$(BUILD)/bin/%: examples/%.c $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

# Examples use the public headers only (and ml-perf's latency histogram).
$(BUILD)/obj/examples/%.o: examples/%.c $(wildcard examples/block/*.h) msglayer/msglayer.h \
		pubsub/mlpubsub.h tools/perf_hist.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer -Ipubsub -Itools -c $< -o $@

$(BUILD)/bin/ml-blockd: $(BLOCKD_OBJ) $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BLOCKD_OBJ) $(BUILD)/lib/libmsglayer.a $(LIBS)

$(BUILD)/bin/ml-blockcli: $(BLOCKCLI_OBJ) $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(BLOCKCLI_OBJ) $(BUILD)/lib/libmsglayer.a $(LIBS)

$(BUILD)/bin/ml-hello: examples/hello/hello.c $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer -Ipubsub $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

# The block example's protocol, verify pattern and volume checks: their objects.
BLOCK_UNIT_OBJ := $(patsubst %,$(BUILD)/obj/examples/block/%.o,blockproto pattern volume parse)
$(BUILD)/tests/test_blockproto: tests/unit/test_blockproto.c $(BLOCK_UNIT_OBJ) \
		$(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer -Iexamples/block $(LDFLAGS) -o $@ $< $(BLOCK_UNIT_OBJ) \
		$(BUILD)/lib/libmsglayer.a $(LIBS) -lcmocka

# zcopy.c alone, with the session around it played by the test (its doubles
# would clash with peer.c and path.c, which the whole library would bring).
ZCOPY_UNIT_OBJ := $(patsubst %,$(BUILD)/obj/msglayer/%.o,zcopy reasm wire)
$(BUILD)/tests/test_zcopy: tests/unit/test_zcopy.c $(ZCOPY_UNIT_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(ZCOPY_UNIT_OBJ) $(LIBS) -lcmocka

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer -Ipubsub $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS) -lcmocka

$(BUILD)/tests/%: tests/integ/%.c $(wildcard tests/integ/*.h) $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

$(BUILD)/tests/%: tests/corosync/%.c $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

$(BUILD)/tests/%: tests/rdma/%.c tests/integ/check.h $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS)

# Every test runs even when one fails; the target fails if any did.
check: deps
	@$(MAKE) --no-print-directory all $(UNIT) $(INTEG)
	@fail=0; $(MAKE) --no-print-directory -k unit integ tooltests || fail=1; \
		$(MAKE) --no-print-directory corosync || fail=1; \
		$(MAKE) --no-print-directory block || fail=1; \
		$(MAKE) --no-print-directory netns || fail=1; \
		$(MAKE) --no-print-directory check-rdma-quick || fail=1; exit $$fail

unit:
	@fail=0; for t in $(UNIT); do echo "== $$t"; $$t || fail=1; done; exit $$fail

integ:
	@fail=0; for t in $(INTEG_PLAIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# Discovery against a single-node Corosync in a network namespace, then
# across three nodes (root; each prints SKIP otherwise). MLPS_TEST_WRAP=
# "valgrind ..." runs the single-node test under a tool.
corosync: $(BUILD)/tests/test_pubsub $(BUILD)/tests/mlps_node
	@fail=0; echo "== $< (tests/corosync/test_pubsub.sh)"; tests/corosync/test_pubsub.sh $< || fail=1; \
		echo "== tests/corosync/test_pubsub3.sh"; \
		tests/corosync/test_pubsub3.sh $(BUILD)/tests/mlps_node || fail=1; exit $$fail

# The block service under random faults, a replica taking over, copies, and
# the demo shortened (root, a private Corosync; each prints SKIP otherwise).
block: all
	@fail=0; BIN=$(BUILD)/bin tests/block/faults.sh || fail=1; \
		BIN=$(BUILD)/bin tests/block/demo.sh || fail=1; exit $$fail

# The tools end to end, over loopback.
tooltests:
	@fail=0; for t in $(wildcard tests/tools/*.sh); do BIN=$(BUILD)/bin $$t || fail=1; done; exit $$fail

# Real network faults between namespaces (root; skips with a message otherwise).
# Not under ThreadSanitizer: at a tenth of the speed the load it paces is not
# the load the scenarios assert on.
netns:
ifeq ($(findstring thread,$(SANITIZE)),)
	@BIN=$(BUILD)/bin tests/netns/failover.sh
else
	@echo "SKIP tests/netns/failover.sh under ThreadSanitizer"
endif

# Real RDMA: it downloads a kernel (about 75 MB, cached in build/rdmavm),
# installs QEMU if needed and runs a VM under software emulation. doc/rdma.md.
check-rdma rdma-vm-test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/test_rdma
	BIN=$(BUILD)/bin TESTS=$(BUILD)/tests tests/rdma/vm-test.sh

# make check's part: the short version, where it can run. Root only (QEMU and
# the kernel come from apt); not with SANITIZE (instrumented binaries on an
# emulated CPU: minutes of CI for what the sanitizer builds check on the host).
check-rdma-quick:
ifeq ($(SANITIZE),)
	@if [ "$$(id -u)" = 0 ]; then RDMA_VM_QUICK=1 $(MAKE) --no-print-directory check-rdma; \
	else echo "SKIP check-rdma: needs root (QEMU and a kernel from apt)"; fi
else
	@echo "SKIP check-rdma under SANITIZE=$(SANITIZE)"
endif

# The peers make bench compares with, from Debian 12. Not in make deps: CI
# never runs the benchmark. (Debian packages sockperf; fabtests, libfabric's
# streaming tests, it does not: fi_pingpong is what libfabric-bin has.)
BENCH_DEBIAN := sockperf iperf3 ucx-utils libfabric-bin libzmq3-dev
bench-deps: deps
	@./.ci/deps.sh $(BENCH_DEBIAN)

$(BUILD)/bench/zmq-perf: tests/bench/zmq-perf.c tools/perf_hist.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< -lzmq -lm

bench: bench-deps
	@$(MAKE) --no-print-directory all $(BUILD)/bench/zmq-perf
	BIN=$(BUILD)/bin ZMQ_PERF=$(BUILD)/bench/zmq-perf OUT=$(BUILD)/bench tests/bench/bench.sh

bench-failover: deps
	@$(MAKE) --no-print-directory all
	BIN=$(BUILD)/bin tests/netns/bench-failover.sh

bench-compress: deps
	@$(MAKE) --no-print-directory all
	BIN=$(BUILD)/bin tests/netns/bench-compress.sh

bench-protect: deps
	@$(MAKE) --no-print-directory all
	BIN=$(BUILD)/bin tests/bench/bench-protect.sh

# Streams of 1 GiB each way over 2 loopback paths: throughput, what they cost
# the requests next to them, how soon a cancel ends the other end. Not root.
# ML_BENCH_STREAM_BYTES, ML_BENCH_SECONDS, ML_BENCH_CANCELS change it.
bench-streams: deps
	@$(MAKE) --no-print-directory $(BUILD)/tests/bench_streams
	$(BUILD)/tests/bench_streams

# The same between two namespaces over two links shaped by tc tbf, where the
# links, not the CPU, limit the streams (root; RATE, BYTES, RUNS, SETTINGS).
bench-streams-link: deps
	@$(MAKE) --no-print-directory $(BUILD)/tests/bench_streams
	tests/bench/streams-link.sh

# Not part of `make check`: minutes of load with faults and restarts
# (doc/testing.md). CI runs a minute of it built with ASan/LSan.
SOAK_SECONDS ?= 300
soak: deps
	@$(MAKE) --no-print-directory all
	@BIN=$(BUILD)/bin SOAK_SECONDS=$(SOAK_SECONDS) tests/soak/soak.sh

# Under valgrind's memcheck: the unit tests, the embedded-mode tests and the
# admin socket's (valgrind sees writes inside uninstrumented libev, which ASan
# does not; the loopback load test runs under the sanitizers instead).
# test_failover is time-driven (about 20 s, under valgrind too).
VALGRIND_TESTS := $(UNIT) $(BUILD)/tests/test_session $(BUILD)/tests/test_requests \
	$(BUILD)/tests/test_admin $(BUILD)/tests/test_failover $(BUILD)/tests/test_auth \
	$(BUILD)/tests/test_streams $(BUILD)/tests/test_hostile $(BUILD)/tests/test_shutdown \
	$(BUILD)/tests/test_priority
valgrind: deps
	@$(MAKE) --no-print-directory $(VALGRIND_TESTS)
	@fail=0; for t in $(VALGRIND_TESTS); do echo "== valgrind $$t"; \
		ML_TEST_STREAM_BYTES=4194304 valgrind -q --error-exitcode=99 --leak-check=full $$t >/dev/null \
		|| fail=1; done; exit $$fail

# The block service on a private Corosync, one path cut under load (root;
# DEMO_SECONDS=6 shortens it). examples/block/demo.sh does the work.
demo: deps
	@$(MAKE) --no-print-directory all
	@BIN=$(BUILD)/bin examples/block/demo.sh

# ---- fuzzing (tests/fuzz, doc/testing.md) ----
# Everything lives in build-fuzz/: the library again, built by clang with
# libFuzzer's coverage hooks, the targets, and the corpora they grow (the
# committed seeds stay in tests/fuzz/corpus/).
FUZZ_CC := clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -g -O1 $(FUZZ_SAN) $(WARNINGS) -D_GNU_SOURCE $(PKG_CFLAGS) \
	-Imsglayer -Ipubsub
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB := $(FUZZ_BUILD)/lib/libmsglayer.a
FUZZ_COMMON_OBJ := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,tests/fuzz/frames.c tests/fuzz/mutate.c)
FUZZ_COMMON := $(FUZZ_BUILD)/lib/libfuzzcommon.a
FUZZ_HDRS := $(LIB_HDRS) $(wildcard tests/fuzz/*.h)

$(FUZZ_BUILD)/obj/%.o: %.c $(LIB_HDRS) Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_COMMON_OBJ): $(FUZZ_HDRS)

# Archives: a target links only the objects it uses (and counts only their coverage).
$(FUZZ_LIB): $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_COMMON): $(FUZZ_COMMON_OBJ)
$(FUZZ_LIB) $(FUZZ_COMMON):
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_HDRS) $(FUZZ_COMMON) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_COMMON) $(FUZZ_LIB) $(LIBS)

# The seed generator writes with the library's own encoders; no libFuzzer main.
$(FUZZ_BUILD)/seeds: tests/fuzz/seeds.c tests/fuzz/capture.c $(FUZZ_HDRS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< tests/fuzz/capture.c $(FUZZ_LIB) $(LIBS)

fuzz-build: $(FUZZ_BINS)

# Regenerate the committed seed corpora (tests/fuzz/corpus/<target>/).
fuzz-seeds: $(FUZZ_BUILD)/seeds
	rm -rf tests/fuzz/corpus
	$(FUZZ_BUILD)/seeds tests/fuzz/corpus

# Replays tests/fuzz/regressions/, then fuzzes each target in turn; fails if
# any crashed (the input is kept under build-fuzz/artifacts/).
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 msglayer/msglayer.h pubsub/mlpubsub.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/lib/libmsglayer.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/lib/libmsglayer.so $(DESTDIR)$(PREFIX)/lib/libmsglayer.so.0
	ln -sf libmsglayer.so.0 $(DESTDIR)$(PREFIX)/lib/libmsglayer.so
	$(if $(TOOLS)$(EXAMPLES),install -m 755 $(TOOLS) $(EXAMPLES) $(DESTDIR)$(PREFIX)/bin/)
	sed -e 's|@PREFIX@|$(PREFIX)|' msglayer/msglayer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/msglayer.pc

clean:
	rm -rf build build-san build-fuzz
