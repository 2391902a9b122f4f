#!/bin/bash
# rdmavm.sh - run a command inside a throw-away QEMU/TCG VM that boots Debian 12's
# stock 6.1 kernel with soft-RoCE (rdma_rxe), so real libibverbs/librdmacm RC
# traffic can be tested on a host whose own kernel has no RDMA support.
# Adapted from the measured recipe of ../shared/reference/rdma-vm.md (the
# project's own): what changed is the work dir (under build/), a leaner
# package set (no perftest) and `make check-rdma` as its caller
# (tests/rdma/vm-test.sh). doc/rdma.md says how to use it.
#
#   rdmavm.sh [options] [--] 'shell command to run inside the VM'
#
#   -w DIR    work/cache dir (default: $RDMAVM_WORK or build/rdmavm)
#   -b FILE   extra ELF binary -> /usr/local/bin/ in the VM, with its shared
#             libraries (found with ldd); repeatable
#   -f SRC[:DST]  extra file or directory copied to DST (default /root/<name>);
#             repeatable
#   -t SECS   hard time limit for the whole VM run (default 600)
#   -m MB     guest RAM (default 1024)
#   -s N      guest vCPUs (default 2)
#   -n MODE   network preset: veth (default), virtio, none (see below)
#   -k ARGS   extra kernel command line arguments
#   -q        do not echo the serial console live (it is still saved in the log)
#   -B        only build the initramfs (no boot)
#
# Network presets ("paths"); nothing is connected to the host or any outside
# network in any preset (QEMU runs with -nic none or with QEMU-internal hubs):
#   veth:   path A = veth pair vA0 (192.0.2.1/30)   <-> vA1 (192.0.2.2/30)
#           path B = veth pair vB0 (198.51.100.1/30) <-> vB1 (198.51.100.2/30)
#   virtio: the same names/addresses, but every endpoint is its own virtio-net
#           NIC and each pair is wired through a QEMU-internal hub, so link
#           down on one end is one-sided like a real cable.
#   none:   no NICs, no rxe devices (create your own in the command).
#   rxe devices rxe_vA0 rxe_vA1 rxe_vB0 rxe_vB1 sit on those netdevs.  A client
#   that binds its source address (rdma_resolve_addr with src = X0's IP, e.g.
#   rping -I, ib_send_bw without -R, ibv_rc_pingpong -g 1) really crosses the
#   wire to a server on X1; accept_local=1 is what makes that work (without it
#   ARP between two local addresses fails: RDMA_CM_EVENT_ADDR_ERROR -110).  A
#   client that does not bind a source address gets the kernel's loopback
#   route and both ends end up on the server's rxe device.
#   Inside the command, /etc/rdmavm/lib.sh is sourced (rdmavm_wire NAME IP0
#   IP1 PREF builds another pair on existing netdevs NAME0/NAME1).
#
# Exit status: the inner command's exit status; 137 = inner command killed by
# the inner time limit (SECS-60, or 2/3 of SECS when SECS <= 90); 124 = the
# whole VM hit SECS; 125 = the VM reported no exit status (crash/panic, or a
# soft lockup in its kernel, which stops it at once);
# 126/127 = usage/setup error of this script.  Serial log: $WORK/last-console.log
set -euo pipefail

WORK=${RDMAVM_WORK:-build/rdmavm}
TLIMIT=600 MEM=1024 SMP=2 NET=veth KAPPEND="" QUIET=0 BUILD_ONLY=0
EXTRA_BINS=() EXTRA_FILES=()
while getopts "w:b:f:t:m:s:n:k:qBh" o; do
	case $o in
	w) WORK=$OPTARG ;;
	b) EXTRA_BINS+=("$OPTARG") ;;
	f) EXTRA_FILES+=("$OPTARG") ;;
	t) TLIMIT=$OPTARG ;;
	m) MEM=$OPTARG ;;
	s) SMP=$OPTARG ;;
	n) NET=$OPTARG ;;
	k) KAPPEND=$OPTARG ;;
	q) QUIET=1 ;;
	B) BUILD_ONLY=1 ;;
	*) sed -n '2,46p' "$0"; exit 126 ;;
	esac
done
shift $((OPTIND - 1))
WORK=$(realpath -m "$WORK") # the image is built from inside other directories
CMD="${*:-echo hello from the VM; rdma link show}"
case $NET in veth | virtio | none) ;; *) echo "bad -n $NET" >&2; exit 126 ;; esac

log() { echo "[rdmavm $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 127; }

# ---------------------------------------------------------------- host tools
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v cpio >/dev/null || need+=(cpio)
command -v gzip >/dev/null || need+=(gzip)
command -v ldd >/dev/null || need+=(libc-bin)
if ((${#need[@]})); then
	[ "$(id -u)" = 0 ] || die "please install: ${need[*]}"
	log "installing host packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
		die "apt-get install ${need[*]} failed"
fi

# ---------------------------------------------------------------- packages
# Userspace packages (the kernel package is added below).  libc6 is taken from
# the host (same Debian release), everything else comes from the .debs.
PKGS=(busybox libibverbs1 librdmacm1 ibverbs-providers libnl-3-200
	libnl-route-3-200 rdmacm-utils ibverbs-utils iproute2 libbpf1 libelf1 libmnl0 libbsd0 libcap2 libmd0 zlib1g
	iptables libxtables12 libip4tc2 libip6tc2 libnftnl11
	libnetfilter-conntrack3 libnfnetlink0 libgcc-s1)
# tools shipped into the VM from those packages
TOOLS=(usr/bin/rping usr/bin/ucmatose usr/bin/udaddy usr/bin/rdma_server
	usr/bin/rdma_client usr/bin/ibv_devices usr/bin/ibv_devinfo
	usr/bin/ibv_rc_pingpong usr/bin/ibv_asyncwatch
	usr/bin/rdma:usr/sbin/rdma bin/ip:usr/sbin/ip sbin/tc:usr/sbin/tc
	usr/sbin/xtables-legacy-multi)
# kernel modules to load at boot (dependencies are resolved from modules.dep)
MODS=(crc32_generic crc32-pclmul rdma_rxe rdma_ucm ib_umad veth virtio_pci virtio_net ip_tables
	iptable_filter xt_tcpudp sch_netem)
VERSION_TAG=v6 # bump to force a rebuild of the cached base image
PKG_TAG=$(echo "${PKGS[*]}" | md5sum | cut -c1-8)

mkdir -p "$WORK/debs"
DEBS=$WORK/debs EXT=$WORK/ext
if [ ! -f "$WORK/.fetched-$PKG_TAG" ]; then
	kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	if [ -z "$kpkg" ]; then
		log "apt lists empty -> apt-get update"
		apt-get update -q >/dev/null || die "apt-get update failed"
		kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
	fi
	[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64"
	log "downloading $kpkg + ${#PKGS[@]} packages into $DEBS"
	rm -f "$DEBS"/*.deb
	(cd "$DEBS" && apt-get -q -o APT::Sandbox::User=root download "$kpkg" "${PKGS[@]}" >/dev/null) ||
		die "apt-get download failed"
	rm -rf "$EXT" && mkdir -p "$EXT"
	for d in "$DEBS"/*.deb; do dpkg-deb -x "$d" "$EXT"; done
	touch "$WORK/.fetched-$PKG_TAG"
fi
KVER=$(ls "$EXT/lib/modules" | head -1)
KIMG=$EXT/boot/vmlinuz-$KVER
BB=$EXT/bin/busybox
[ -f "$KIMG" ] && [ -x "$BB" ] || die "extraction incomplete (rm -rf $WORK and retry)"
LDP=$EXT/usr/lib/x86_64-linux-gnu:$EXT/lib/x86_64-linux-gnu

# copy_libs STAGE ELF: copy all shared libraries of ELF into STAGE (at their
# canonical paths), except those listed in $WORK/base-files.txt when STAGE is
# the per-run overlay
copy_libs() {
	local out
	out=$(LD_LIBRARY_PATH=$LDP ldd "$2" 2>&1) || true
	if grep -q "not found" <<<"$out"; then die "missing libs for $2: $(grep 'not found' <<<"$out" | tr -s ' \t\n' ' ')"; fi
	awk '/=> \//{print $3} /^[ \t]*\/[^ ]*ld-linux/{print $1}' <<<"$out" | while read -r lib; do
		local rel=${lib#"$EXT"}
		rel=/${rel#/}
		case $rel in /usr/lib/*) ;; /lib/*) ;; /lib64/*) ;; *) rel=/lib/x86_64-linux-gnu/$(basename "$lib") ;; esac
		[ "$1" = "$WORK/overlay" ] && grep -qxF ".$rel" "$WORK/base-files.txt" && continue
		[ -e "$1$rel" ] || { mkdir -p "$1$(dirname "$rel")" && cp -L "$lib" "$1$rel"; }
	done
}

# ---------------------------------------------------------------- base image
BASE=$WORK/base-$VERSION_TAG.cpio.gz
if [ ! -f "$BASE" ]; then
	log "building base initramfs"
	S=$WORK/stage
	rm -rf "$S"
	mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib/x86_64-linux-gnu,usr/lib/x86_64-linux-gnu,lib64,etc/rdmavm,proc,sys,dev,tmp,run,root,var,rdmavm}
	ln -s ../run "$S/var/run"
	# the dynamic busybox (not busybox-static): the static one's shell runs
	# its own applets (ip, tc, ...) in preference to the real tools in PATH
	cp "$BB" "$S/bin/busybox"
	copy_libs "$S" "$BB"
	for a in $("$BB" --list); do [ -e "$S/bin/$a" ] || ln -s busybox "$S/bin/$a"; done
	ln -s ../bin/busybox "$S/sbin/modprobe" # the kernel's request_module helper
	for t in "${TOOLS[@]}"; do
		src=${t%%:*} dst=${t#*:}
		cp -L "$EXT/$src" "$S/$dst"
		copy_libs "$S" "$EXT/$src"
	done
	for n in iptables iptables-save iptables-restore ip6tables; do ln -s xtables-legacy-multi "$S/usr/sbin/$n"; done
	# iptables extensions, the rxe userspace provider and its config (dlopen'ed: ldd can't see them)
	mkdir -p "$S/usr/lib/x86_64-linux-gnu/xtables" "$S/usr/lib/x86_64-linux-gnu/libibverbs" "$S/etc/libibverbs.d"
	cp -L "$EXT"/usr/lib/x86_64-linux-gnu/xtables/{libxt_standard,libxt_udp,libxt_tcp,libipt_REJECT,libxt_comment,libxt_multiport}.so "$S/usr/lib/x86_64-linux-gnu/xtables/"
	cp -L "$EXT/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so" "$S/usr/lib/x86_64-linux-gnu/libibverbs/"
	cp "$EXT/etc/libibverbs.d/rxe.driver" "$S/etc/libibverbs.d/"
	# glibc dlopen()s libgcc_s for pthread_exit/cancellation (rping needs it)
	cp -L "$EXT/lib/x86_64-linux-gnu/libgcc_s.so.1" "$S/lib/x86_64-linux-gnu/"
	for f in "$S"/usr/lib/x86_64-linux-gnu/xtables/*.so "$S"/usr/lib/x86_64-linux-gnu/libibverbs/*.so; do copy_libs "$S" "$f"; done
	cp -r "$EXT/etc/iproute2" "$S/etc/"
	# kernel modules: closure over modules.dep
	[ -f "$EXT/lib/modules/$KVER/modules.dep" ] || "$BB" depmod -b "$EXT" "$KVER"
	MD=$EXT/lib/modules/$KVER
	todo=() seen=" "
	for m in "${MODS[@]}"; do todo+=("$(awk -F: -v m="$m" '{n=$1; sub(/.*\//,"",n); sub(/\.ko.*/,"",n); if (n==m) {print $1; exit}}' "$MD/modules.dep")"); done
	while ((${#todo[@]})); do
		p=${todo[0]} todo=("${todo[@]:1}")
		[ -n "$p" ] || die "a module in MODS was not found in $MD"
		case $seen in *" $p "*) continue ;; esac
		seen+="$p "
		mkdir -p "$S/lib/modules/$KVER/$(dirname "$p")"
		cp "$MD/$p" "$S/lib/modules/$KVER/$p"
		for d in $(awk -F: -v p="$p" '$1==p{print $2; exit}' "$MD/modules.dep"); do todo+=("$d"); done
	done
	cp "$MD"/modules.builtin "$MD"/modules.order "$S/lib/modules/$KVER/" 2>/dev/null || true
	"$BB" depmod -b "$S" "$KVER"
	printf '%s\n' "${MODS[@]}" >"$S/etc/rdmavm/modules"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$S/etc/passwd"
	printf 'root:x:0:\n' >"$S/etc/group"
	printf '127.0.0.1 localhost\n' >"$S/etc/hosts"

	cat >"$S/etc/rdmavm/lib.sh" <<'EOF'
# rdmavm_wire NAME IP0 IP1 TABLE: make the two ends ${NAME}0 (IP0) and
# ${NAME}1 (IP1) of an existing, up "wire" reach each other over that wire,
# and put rxe devices rxe_${NAME}0 / rxe_${NAME}1 on top.
rdmavm_wire() {
	local n=$1 a=$2 b=$3 t=$4
	# both ends in one /30: the kernel's connected routes (one per end)
	# come back by themselves after a link down/up, unlike static routes.
	# (not "peer" addresses: the RoCE GID would then be the peer's IP)
	ip addr add "$a/30" dev "${n}0"
	ip addr add "$b/30" dev "${n}1"
	# lookups that carry an output interface (rxe's route lookup, rdma_cm's
	# address resolution and its validate_net_dev) skip the local table, so
	# the traffic really crosses the wire instead of the loopback shortcut
	ip rule add pref $t oif "${n}0" to "$b" lookup main
	ip rule add pref $((t + 1)) oif "${n}1" to "$a" lookup main
	for i in "${n}0" "${n}1"; do
		echo 1 >/proc/sys/net/ipv4/conf/$i/accept_local
		echo 0 >/proc/sys/net/ipv4/conf/$i/rp_filter
	done
	rdma link add "rxe_${n}0" type rxe netdev "${n}0"
	rdma link add "rxe_${n}1" type rxe netdev "${n}1"
}
rdmavm_net() {
	# the local table must come after our oif rules
	ip rule add pref 500 lookup local && ip rule del pref 0 lookup local
	echo 1 >/proc/sys/net/ipv4/conf/all/accept_local
	echo 0 >/proc/sys/net/ipv4/conf/all/rp_filter
	case $1 in
	veth)
		ip link add vA0 type veth peer name vA1
		ip link add vB0 type veth peer name vB1
		;;
	virtio)
		# rename NICs by their MAC (set on the QEMU command line)
		for nic in /sys/class/net/eth*; do
			case $(cat $nic/address) in
			52:54:00:00:0a:00) ip link set ${nic##*/} name vA0 ;;
			52:54:00:00:0a:01) ip link set ${nic##*/} name vA1 ;;
			52:54:00:00:0b:00) ip link set ${nic##*/} name vB0 ;;
			52:54:00:00:0b:01) ip link set ${nic##*/} name vB1 ;;
			esac
		done
		;;
	*) return 0 ;;
	esac
	for i in vA0 vA1 vB0 vB1; do ip link set $i up; done
	rdmavm_wire vA 192.0.2.1 192.0.2.2 100
	rdmavm_wire vB 198.51.100.1 198.51.100.2 200
}
EOF

	cat >"$S/init" <<'EOF'
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
arg() { sed -n "s/.*rdmavm\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
echo "RDMAVM_INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /etc/rdmavm/modules); do modprobe "$m" || echo "RDMAVM: modprobe $m failed"; done
ip link set lo up
. /etc/rdmavm/lib.sh
rdmavm_net "$(arg net)" || echo "RDMAVM: network setup failed"
echo "RDMAVM_READY uptime=$(cut -d' ' -f1 /proc/uptime)"
cd /root
T=$(arg timeout)
timeout -s KILL "${T:-540}" sh -c '. /etc/rdmavm/lib.sh; . /rdmavm/cmd.sh' </dev/null
rc=$?
[ $rc = 137 ] && echo "RDMAVM: inner command killed by the inner time limit (${T:-540}s)"
echo "RDMAVM_EXIT=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
echo o >/proc/sysrq-trigger
sleep 10
EOF
	chmod +x "$S/init"
	(cd "$S" && find . | LC_ALL=C sort >"$WORK/base-files.txt")
	(cd "$S" && find . -print0 | LC_ALL=C sort -z | cpio -o -H newc -0 --quiet | gzip -6) >"$BASE.tmp"
	mv "$BASE.tmp" "$BASE"
	log "base initramfs: $(du -h "$BASE" | cut -f1) ($(du -sh "$S" | cut -f1) unpacked)"
fi

# ---------------------------------------------------------------- per-run overlay
O=$WORK/overlay
rm -rf "$O" && mkdir -p "$O/rdmavm" "$O/usr/local/bin" "$O/root"
printf '%s\n' "$CMD" >"$O/rdmavm/cmd.sh"
for b in "${EXTRA_BINS[@]}"; do
	[ -f "$b" ] || die "no such binary: $b"
	cp -L "$b" "$O/usr/local/bin/"
	copy_libs "$O" "$b"
done
for f in "${EXTRA_FILES[@]}"; do
	src=${f%%:*} dst=${f#*:}
	[ "$dst" = "$f" ] && dst=/root/$(basename "$src")
	mkdir -p "$O$(dirname "$dst")"
	cp -rL "$src" "$O$dst"
done
RUNIMG=$WORK/run.cpio.gz
{ cat "$BASE"; (cd "$O" && find . -print0 | LC_ALL=C sort -z | cpio -o -H newc -0 --quiet | gzip -1); } >"$RUNIMG"
[ $BUILD_ONLY = 1 ] && { log "built $RUNIMG ($(du -h "$RUNIMG" | cut -f1))"; exit 0; }

# ---------------------------------------------------------------- boot
QNET=(-nic none)
if [ "$NET" = virtio ]; then
	QNET=()
	for p in a b; do
		for e in 0 1; do
			QNET+=(-netdev "hubport,id=n$p$e,hubid=$([ $p = a ] && echo 1 || echo 2)"
				-device "virtio-net-pci,netdev=n$p$e,mac=52:54:00:00:0$p:0$e,romfile=")
		done
	done
fi
CONSOLE=$WORK/last-console.log
: >"$CONSOLE"
INNER=$((TLIMIT > 90 ? TLIMIT - 60 : TLIMIT * 2 / 3))
log "booting $KVER under TCG (smp=$SMP mem=${MEM}M net=$NET limit=${TLIMIT}s)"
t_start=$(date +%s.%N)
set +e
timeout -k 10 "$TLIMIT" qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp "$SMP" -m "$MEM" \
	-kernel "$KIMG" -initrd "$RUNIMG" \
	-append "console=ttyS0 panic=-1 quiet loglevel=4 rdmavm.net=$NET rdmavm.timeout=$INNER $KAPPEND" \
	-display none -monitor none -serial "file:$CONSOLE" -no-reboot "${QNET[@]}" </dev/null &
qpid=$!
if [ $QUIET = 0 ]; then tail -n +1 -f --pid=$qpid "$CONSOLE" & tpid=$!; fi
# A guest kernel that reports a soft lockup (a CPU stuck in the kernel for
# over 20 s: seen in soft-RoCE under TCG, both test processes stuck after an
# iptables drop) does not come back: stop it now rather than at the limit.
while kill -0 $qpid 2>/dev/null; do
	if grep -q "soft lockup" "$CONSOLE"; then
		log "the guest kernel reports a soft lockup: stopping the VM"
		kill $qpid
		break
	fi
	sleep 1
done
wait $qpid
qrc=$?
[ $QUIET = 0 ] && { sleep 0.3; kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null; }
set -e
t_end=$(date +%s.%N)
rc=$(sed -n 's/^RDMAVM_EXIT=\([0-9]*\).*/\1/p' "$CONSOLE" | tail -1)
log "VM ran $(awk "BEGIN{printf \"%.1f\", $t_end-$t_start}")s, qemu rc=$qrc, inner rc=${rc:-none}"
if [ -z "$rc" ]; then
	[ $qrc = 124 ] || [ $qrc = 137 ] && exit 124
	exit 125
fi
exit "$rc"
