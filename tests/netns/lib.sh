# lib.sh - network namespaces as cluster nodes, and the faults a real network has.
#
# Sourced by tests/netns/*.sh (bash). Node i is the namespace "${NS_PREFIX}i";
# every pair of nodes gets LINKS point-to-point veth links, each its own
# subnet, so one link can be broken without touching the others:
#
#   node a <-- link l --> node b    (a < b)
#   interface in a: "n${b}l${l}", in b: "n${a}l${l}"
#   addresses: 10.(l+1).(a)(b).a and 10.(l+1).(a)(b).b, /24
#
# Every fault only acts inside our own namespaces, on our own interfaces.
# net_cleanup (run from the EXIT trap that net_up installs) kills what the
# script started and deletes the namespaces, also after a failure or Ctrl-C.

NS_PREFIX=${NS_PREFIX:-mlt$$-}
NET_NODES=0
NET_LINKS=0
NET_PIDS=()

net_require() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP $(basename "$0"): needs root (network namespaces, iptables, tc)"
		exit 0
	fi
	local tool
	for tool in ip tc iptables jq; do
		command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed (make deps)"; exit 1; }
	done
}

ns() { echo "${NS_PREFIX}$1"; }
# nsx NODE CMD...: run CMD inside node NODE.
nsx() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }

ifname() { echo "n${2}l${3}"; }               # ifname A B L: A's end of link L to B
addr() {                                      # addr A B L: A's address on that link
	local lo=$(( $1 < $2 ? $1 : $2 )) hi=$(( $1 < $2 ? $2 : $1 ))
	echo "10.$(( $3 + 1 )).${lo}${hi}.$1"
}
# urls A B PORT: A's addresses towards B as a comma list of tcp:// URLs (link order).
urls() {
	local l out=""
	for (( l = 0; l < NET_LINKS; l++ )); do
		out+="${out:+,}tcp://$(addr "$1" "$2" $l):$3"
	done
	echo "$out"
}

net_up() {                                    # net_up NODES LINKS
	NET_NODES=$1 NET_LINKS=$2
	trap net_cleanup EXIT
	trap 'exit 130' INT TERM
	local a b l
	for (( a = 1; a <= NET_NODES; a++ )); do
		ip netns add "$(ns $a)"
		nsx $a ip link set lo up
	done
	for (( a = 1; a <= NET_NODES; a++ )); do
		for (( b = a + 1; b <= NET_NODES; b++ )); do
			for (( l = 0; l < NET_LINKS; l++ )); do
				ip link add "$(ifname $a $b $l)" netns "$(ns $a)" type veth \
					peer name "$(ifname $b $a $l)" netns "$(ns $b)"
				nsx $a ip addr add "$(addr $a $b $l)/24" dev "$(ifname $a $b $l)"
				nsx $b ip addr add "$(addr $b $a $l)/24" dev "$(ifname $b $a $l)"
				nsx $a ip link set "$(ifname $a $b $l)" up
				nsx $b ip link set "$(ifname $b $a $l)" up
			done
		done
	done
}

net_cleanup() {
	local pid n
	for pid in "${NET_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for pid in "${NET_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
	for (( n = 1; n <= NET_NODES; n++ )); do ip netns del "$(ns $n)" 2>/dev/null; done
	NET_PIDS=()
	return 0
}

# spawn NODE CMD...: start CMD in the background inside NODE; killed at cleanup.
# Not through nsx: a function in the background is a subshell, and its PID
# is not the command's. `ip netns exec` execs the command, so $! is its PID.
spawn() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@" & NET_PIDS+=($!); }

# ---- faults (A B L: the link; DIR relative to A: both, tx (A's sends lost), rx) ----

fault_blackhole() {                           # silently drop, as a dead switch would
	local a=$1 b=$2 l=$3 dir=${4:-both} ifc
	ifc=$(ifname "$a" "$b" "$l")
	case $dir in
	both | tx) nsx "$a" iptables -A OUTPUT -o "$ifc" -j DROP ;;&
	both | rx) nsx "$a" iptables -A INPUT -i "$ifc" -j DROP ;;
	esac
}

fault_reset() {                               # every TCP segment answered by a reset
	local a=$1 b=$2 l=$3
	nsx "$a" iptables -A INPUT -i "$(ifname "$a" "$b" "$l")" -p tcp -j REJECT --reject-with tcp-reset
	nsx "$b" iptables -A INPUT -i "$(ifname "$b" "$a" "$l")" -p tcp -j REJECT --reject-with tcp-reset
}

# Remove every iptables rule on the link's interfaces, at both ends.
fault_clear() {
	local a=$1 b=$2 l=$3 n m
	for n in "$a" "$b"; do
		m=$([ "$n" = "$a" ] && echo "$b" || echo "$a")
		nsx "$n" iptables -S | grep -E -- "-[io] $(ifname "$n" "$m" "$l")( |$)" |
			sed 's/^-A /-D /' | while read -r rule; do
				# shellcheck disable=SC2086  # a rule is a list of words
				nsx "$n" iptables $rule
			done
	done
}

link_down() { nsx "$1" ip link set "$(ifname "$1" "$2" "$3")" down; }
link_up() {
	nsx "$1" ip link set "$(ifname "$1" "$2" "$3")" up
	# Link-down flushed the address's routes; bringing it up restores them.
}

# link_slow A B L RATE: token bucket at both ends (e.g. 10mbit), as a congested link.
link_slow() {
	local a=$1 b=$2 l=$3 rate=$4
	nsx "$a" tc qdisc replace dev "$(ifname "$a" "$b" "$l")" root tbf rate "$rate" burst 32kbit latency 400ms
	nsx "$b" tc qdisc replace dev "$(ifname "$b" "$a" "$l")" root tbf rate "$rate" burst 32kbit latency 400ms
}
link_fast() {
	nsx "$1" tc qdisc del dev "$(ifname "$1" "$2" "$3")" root 2>/dev/null
	nsx "$2" tc qdisc del dev "$(ifname "$2" "$1" "$3")" root 2>/dev/null
	return 0
}

# link_flap A B L SECONDS [SEED]: down/up every 50-500 ms (random) for SECONDS,
# in the foreground; prints how many times the link went down.
link_flap() {
	local a=$1 b=$2 l=$3 secs=$4 end downs=0
	RANDOM=${5:-42}
	end=$(( $(date +%s%N) + secs * 1000000000 ))
	while [ "$(date +%s%N)" -lt "$end" ]; do
		link_down "$a" "$b" "$l"
		downs=$(( downs + 1 ))
		sleep "0.$(printf %03d $(( 50 + RANDOM % 451 )))"
		link_up "$a" "$b" "$l"
		sleep "0.$(printf %03d $(( 50 + RANDOM % 451 )))"
	done
	echo "$downs"
}

# wait_file FILE SECONDS: until FILE exists and is not empty (a server's port file).
wait_file() {
	local i
	for (( i = 0; i < $2 * 100; i++ )); do
		[ -s "$1" ] && return 0
		sleep 0.01
	done
	echo "FAIL: $1 did not appear within $2 s"
	return 1
}
