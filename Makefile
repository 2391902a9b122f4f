# msglayer - one GNU Makefile for the library, tools, tests and docs.
#   make                 library (build/lib) and tools (build/bin)
#   make check           every test (installs missing Debian packages first)
#   make check SANITIZE=address,undefined   same, built with sanitizers (build-san/...)
#   make demo            the main job: a live failover demo
#   make valgrind        unit tests, session, requests and admin tests under valgrind
#   make bench-failover  what a dead or slow link costs, between namespaces (root)
#   make rdma-vm-test    real RDMA (soft-RoCE) in a QEMU VM: RDMA-only, RDMA+TCP failover,
#                        ml-perf figures (root; about 80 s, 20 s more on a first run;
#                        RDMA_VM_QUICK=1: the short version CI runs)
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

# ThreadSanitizer is ~10x slower and liburcu is not instrumented (see the file).
ifneq ($(findstring thread,$(SANITIZE)),)
export TSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/sanitizers/tsan.supp halt_on_error=1
export ML_TEST_REQUESTS ?= 5000
endif
export UBSAN_OPTIONS ?= print_stacktrace=1

PKGS := liburcu-bp liburcu-cds libisal libcrypto
DEPS_DEBIAN := gcc make pkg-config libev-dev liburcu-dev libisal-dev libssl-dev libcmocka-dev valgrind \
	corosync libcpg-dev libquorum-dev libcmap-dev libcorosync-common-dev iproute2 iptables jq \
	libibverbs-dev librdmacm-dev

CFLAGS := -std=gnu11 -g $(OPT) -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wno-missing-field-initializers -fPIC -D_GNU_SOURCE \
	$(filter-out -I/usr/include%,$(shell pkg-config --cflags $(PKGS) 2>/dev/null)) \
	$(EXTRA_CFLAGS)
LDFLAGS := $(filter -fsanitize=%,$(OPT)) $(EXTRA_LDFLAGS)
# Corosync: cs_strerror lives in libcorosync_common, which libcpg.pc does not pull in.
COROSYNC_PKGS := libcpg libcorosync_common
# rdma-core: the RDMA transport; on a host without a device it says so and TCP works.
LIBS := $(shell pkg-config --libs $(PKGS) $(COROSYNC_PKGS) 2>/dev/null) -lrdmacm -libverbs -lev -lpthread -lm

LIB_SRC := $(wildcard msglayer/*.c) $(wildcard transports/*.c) $(wildcard failover/*.c) \
	$(wildcard pubsub/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
TOOLS := $(patsubst tools/%.c,$(BUILD)/bin/%,$(wildcard tools/*.c))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/bin/%,$(wildcard examples/*.c))
UNIT := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEG := $(patsubst tests/integ/%.c,$(BUILD)/tests/%,$(wildcard tests/integ/test_*.c))

# test_pubsub needs a private Corosync: tests/corosync/test_pubsub.sh starts one.
INTEG_PLAIN := $(filter-out %/test_pubsub,$(INTEG))

.PHONY: all deps check unit integ corosync tooltests netns valgrind demo bench-failover rdma-vm-test \
	install clean
.DEFAULT_GOAL := all

all: $(BUILD)/lib/libmsglayer.a $(BUILD)/lib/libmsglayer.so $(TOOLS) $(EXAMPLES)

deps:
	@./.ci/deps.sh $(DEPS_DEBIAN)

# pubsub/ sits on the public API: it includes msglayer.h like an application.
$(BUILD)/obj/pubsub/%.o: CFLAGS += -Imsglayer

$(BUILD)/obj/%.o: %.c $(wildcard msglayer/*.h transports/*.h failover/*.h pubsub/*.h) Makefile
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

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/lib/libmsglayer.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Imsglayer -Ipubsub $(LDFLAGS) -o $@ $< $(BUILD)/lib/libmsglayer.a $(LIBS) -lcmocka

$(BUILD)/tests/%: tests/integ/%.c $(wildcard tests/integ/*.h) $(BUILD)/lib/libmsglayer.a
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
		$(MAKE) --no-print-directory netns || fail=1; exit $$fail

unit:
	@fail=0; for t in $(UNIT); do echo "== $$t"; $$t || fail=1; done; exit $$fail

integ:
	@fail=0; for t in $(INTEG_PLAIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# Discovery against a single-node Corosync in a network namespace (root;
# prints SKIP otherwise). MLPS_TEST_WRAP="valgrind ..." runs it under a tool.
corosync: $(BUILD)/tests/test_pubsub
	@echo "== $< (tests/corosync/test_pubsub.sh)"; tests/corosync/test_pubsub.sh $<

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

# Not part of `make check`: it downloads a kernel (about 75 MB, cached in
# build/rdmavm) and runs a VM under software emulation. doc/rdma.md.
rdma-vm-test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/test_rdma
	BIN=$(BUILD)/bin TESTS=$(BUILD)/tests tests/rdma/vm-test.sh

bench-failover: deps
	@$(MAKE) --no-print-directory all
	BIN=$(BUILD)/bin tests/netns/bench-failover.sh

# Under valgrind's memcheck: the unit tests, the embedded-mode tests and the
# admin socket's (valgrind sees writes inside uninstrumented libev, which ASan
# does not; the loopback load test runs under the sanitizers instead).
# test_failover is time-driven (about 20 s, under valgrind too).
VALGRIND_TESTS := $(UNIT) $(BUILD)/tests/test_session $(BUILD)/tests/test_requests \
	$(BUILD)/tests/test_admin $(BUILD)/tests/test_failover $(BUILD)/tests/test_auth
valgrind: deps
	@$(MAKE) --no-print-directory $(VALGRIND_TESTS)
	@fail=0; for t in $(VALGRIND_TESTS); do echo "== valgrind $$t"; \
		valgrind -q --error-exitcode=99 --leak-check=full $$t >/dev/null || fail=1; done; exit $$fail

demo: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/bin/ml-demo

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 msglayer/msglayer.h pubsub/mlpubsub.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/lib/libmsglayer.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/lib/libmsglayer.so $(DESTDIR)$(PREFIX)/lib/libmsglayer.so.0
	ln -sf libmsglayer.so.0 $(DESTDIR)$(PREFIX)/lib/libmsglayer.so
	$(if $(TOOLS)$(EXAMPLES),install -m 755 $(TOOLS) $(EXAMPLES) $(DESTDIR)$(PREFIX)/bin/)
	sed -e 's|@PREFIX@|$(PREFIX)|' msglayer/msglayer.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/msglayer.pc

clean:
	rm -rf build build-san
