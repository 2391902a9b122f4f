#!/bin/bash
# dissector.sh - the Wireshark dissector (tools/wireshark/msglayer.lua) on real
# traffic: dumpcap records loopback while ml-perf runs a known workload (plain
# requests, fragmented requests, one-way messages, a keyed run with AUTH, a
# frame of another version that the acceptor answers with CLOSE), then tshark
# decodes the capture and the decoded fields must be the ones the workload
# sent: every request frame with its tag and length (as many as ml-perf
# completed), the fragments, the HELLO node ids, AUTH's challenge and proof,
# ACK cum values that never go back, the CLOSE status and reason, good CRCs,
# and no malformed packet or Lua error. Capturing needs root (SKIP otherwise).
# Env: BIN (directory of ml-perf and ml-keygen; default build/bin), LUA (the
# dissector; default tools/wireshark/msglayer.lua).
set -u
cd "$(dirname "$0")/../.." || exit 1
BIN=${BIN:-build/bin}
LUA=${LUA:-tools/wireshark/msglayer.lua}
WORK=$(mktemp -d)
FAILED=0
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT
for tool in tshark dumpcap jq; do
	command -v $tool >/dev/null || { echo "FAIL: $tool not installed (make deps)"; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP tests/tools/dissector.sh: capturing on loopback needs root"
	exit 0
fi

fail() { echo "  FAIL: $*"; FAILED=$(( FAILED + 1 )); }
# Compare a figure with what it must be: same NAME GOT WANT.
same() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }
# A count of frames: exact, unless a path failed under load and frames went
# out again (then at least as many).
DISTURBED=0
frames() {
	if [ $DISTURBED -eq 0 ]; then
		same "$@"
	else
		[ "$2" -ge "$3" ] || fail "$1: got $2, want at least $3 (paths failed during the run)"
	fi
}

wait_file() {                                # wait_file FILE: until it is non-empty (10 s)
	for (( i = 0; i < 1000; i++ )); do [ -s "$1" ] && return 0; sleep 0.01; done
	return 1
}

server() {                                    # server NAME [ml-perf server options]
	local name=$1
	shift
	"$BIN/ml-perf" server --listen tcp://127.0.0.1:0 --port-file "$WORK/$name.port" "$@" \
		2>"$WORK/$name.log" &
	PIDS+=("$!")
	wait_file "$WORK/$name.port" || { echo "FAIL: server $name wrote no port file"; exit 1; }
}

client() {                                    # client NAME PORT [ml-perf client options]
	local name=$1 port=$2
	shift 2
	echo "== ml-perf $name"
	"$BIN/ml-perf" client --peer "tcp://127.0.0.1:$port" --interval 0 --json "$@" \
		>"$WORK/$name.json" 2>"$WORK/$name.log" || fail "ml-perf $name: $(tail -2 "$WORK/$name.log")"
	jq -e '.completed > 0 and .lost == 0 and .failed == 0' "$WORK/$name.json" >/dev/null ||
		fail "ml-perf $name did not complete cleanly: $(cat "$WORK/$name.json")"
	jq -e '.resent == 0 and all(.paths[]; .failures == 0 and .connects == 1)' "$WORK/$name.json" \
		>/dev/null || { DISTURBED=1; echo "  (a path failed: frame counts become lower bounds)"; }
}

"$BIN/ml-keygen" "$WORK/key" >/dev/null || { echo "FAIL: ml-keygen"; exit 1; }
server plain                                  # node 1
server keyed --node 5 --key-file "$WORK/key"
PA=$(cat "$WORK/plain.port")
PB=$(cat "$WORK/keyed.port")

# "port X" also takes the UDP datagrams that mark the workload's start and end.
dumpcap -q -i lo -f "port $PA or port $PB" -w "$WORK/cap.pcapng" 2>"$WORK/dumpcap.log" &
DUMPCAP=$!
PIDS+=("$DUMPCAP")
for (( i = 0; i < 1000; i++ )); do grep -qs "^Capturing on" "$WORK/dumpcap.log" && break; sleep 0.01; done
grep -q "^Capturing on" "$WORK/dumpcap.log" || { echo "FAIL: dumpcap: $(cat "$WORK/dumpcap.log")"; exit 1; }
# UDP datagrams to a captured port mark the start and the end of the workload.
captured() { [ -n "$(tshark -r "$WORK/cap.pcapng" -Y "udp contains \"$1\"" -T fields -e frame.number 2>/dev/null)" ]; }
# "Capturing on" can come before the filter is in place (a loaded machine
# once lost the first request): the capture is live once a start marker is in it.
for (( end = SECONDS + 20; SECONDS < end; )); do
	echo start >"/dev/udp/127.0.0.1/$PA"
	sleep 0.05
	captured start && break
done
captured start || { echo "FAIL: no start marker captured within 20 s"; exit 1; }

# The workload. ml-perf's tags: 1 request, 2 its statistics request at the
# end of a run, 3 one-way message. 100000 bytes is two fragments
# (F = 64 KiB, the default max_frag_payload).
client rr "$PA" --test rr --size 1234 --rate 50 --duration 0.2
client frag "$PA" --test rr --size 100000 --resp-size 100 --rate 20 --duration 0.1
client oneway "$PA" --test stream --size 77 --rate 50 --duration 0.1
client keyed "$PB" --server-node 5 --key-file "$WORK/key" --test rr --size 99 --rate 50 --duration 0.1
# Protected paths (5.2): mac records carry the frames in the clear, so they
# decode; encrypted ones do not.
client mac "$PB" --server-node 5 --key-file "$WORK/key" --protect mac --test rr --size 98 --rate 50 \
	--duration 0.1
client encrypt "$PB" --server-node 5 --key-file "$WORK/key" --protect encrypt --test rr --size 97 \
	--rate 50 --duration 0.1
# Compressed requests: LZ4, of 3000 bytes of text.
client lz4 "$PA" --compress lz4 --payload text --test rr --size 3000 --rate 50 --duration 0.1
echo "== a header of version 2: the acceptor answers with CLOSE"
# One write of a 64-byte PING header, version 2, CRC left at 0.
BOGUS="MLFS\\002\\005\\000\\000\\100$(printf '\\000%.0s' {1..55})"
exec 3<>"/dev/tcp/127.0.0.1/$PA"
# shellcheck disable=SC2059  # the format is the frame
printf "$BOGUS" >&3
timeout 10 od -An -c <&3 | tr -d ' \n' | grep -q "unsupportedframeversion" || fail "no CLOSE read back"
exec 3>&-
# The end marker: once dumpcap has written it, it has written all before it.
echo end >"/dev/udp/127.0.0.1/$PA"
for (( end = SECONDS + 20; SECONDS < end; )); do captured end && break; sleep 0.05; done
captured end || fail "the end marker was not captured within 20 s"
kill -INT $DUMPCAP
wait $DUMPCAP

# HOME: no personal preferences or plugins (a copy of this dissector installed
# in the plugin folder would be loaded twice). The servers' ports and the
# clients' are random: if one of them were a port that another dissector has
# registered, TCP would try that one first, so the heuristic (the magic) goes
# first and no port is configured; dissector-frames.sh tests the port table.
dec() {
	HOME=$WORK tshark -r "$WORK/cap.pcapng" -X "lua_script:$LUA" -o "msglayer.ports:" \
		-o tcp.try_heuristic_first:TRUE "$@" 2>>"$WORK/tshark.err"
}
fields() {                                    # fields FILTER FIELD...: one line per frame
	local filter=$1
	shift
	dec -Y "$filter" -T fields -E occurrence=a -E separator=' ' "${@/#/-e}" | sed 's/ *$//'
}
count() { fields "$1" frame.number | wc -l; }
# tuples FILTER FIELD...: one line per msglayer frame. tshark puts the values
# of all frames of a packet in one line, each field's joined by ","; fields
# that frames of one type all have (the DATA header's) line up again.
tuples() {
	fields "$@" | awk '{ n = split($1, v, ",")
		for (j = 2; j <= NF; j++) if (split($j, v, ",") != n) { print "MISALIGNED: " $0; next }
		for (i = 1; i <= n; i++) { line = ""
			for (j = 1; j <= NF; j++) { split($j, v, ","); line = line (j > 1 ? " " : "") v[i] }
			print line } }'
}

echo "== decoding $(capinfos -c -M "$WORK/cap.pcapng" | awk '/packets/ {print $NF}') packets"
dec -O msglayer >"$WORK/decoded.txt"
grep -q "Lua Error" "$WORK/decoded.txt" "$WORK/tshark.err" && fail "Lua error: $(grep -h -m1 "Lua Error" "$WORK/decoded.txt" "$WORK/tshark.err")"
for name in HELLO HELLO_ACK DATA ACK PING PONG CLOSE AUTH; do
	grep -qE "Type: $name \([1-8]\)" "$WORK/decoded.txt" || fail "no $name frame decoded"
done
same "malformed packets" "$(count _ws.malformed)" 0
same "frames with an error (only the version 2 one)" \
	"$(fields '_ws.expert.severity == error' msglayer.version msglayer.type msglayer.hdr_crc.status)" "2 5 0"
same "frames with a bad CRC" "$(count 'msglayer.hdr_crc.status == 0')" 1

echo "== requests"
req() { tuples "tcp.dstport == $1 && msglayer.type == 3" msglayer.flags.kind msglayer.tag msglayer.msg_len |
	grep -c "^$2 $3 $4\$"; }
rr=$(jq .completed "$WORK/rr.json")
frames "requests tag 1, 1234 bytes" "$(req "$PA" 1 1 1234)" "$rr"
frames "responses tag 1, 1234 bytes" "$(tuples "tcp.srcport == $PA && msglayer.type == 3" \
	msglayer.flags.kind msglayer.tag msglayer.msg_len | grep -c '^2 1 1234$')" "$rr"
frames "statistics requests (tag 2), one per run" "$(req "$PA" 1 2 24)" 4
frames "one-way messages tag 3, 77 bytes" "$(req "$PA" 3 3 77)" "$(jq .completed "$WORK/oneway.json")"
frames "keyed requests tag 1, 99 bytes" "$(req "$PB" 1 1 99)" "$(jq .completed "$WORK/keyed.json")"
frames "requests in mac records, 98 bytes" "$(req "$PB" 1 1 98)" "$(jq .completed "$WORK/mac.json")"
same "requests seen through encryption" "$(req "$PB" 1 1 97)" 0
[ "$(fields "tcp.dstport == $PB && msglayer.record.ciphertext" frame.number | wc -l)" -gt 0 ] ||
	fail "no encrypted record"
# A request that goes out before the handshake told the server's codecs is
# not compressed: count both kinds.
lz4=$(tuples "tcp.dstport == $PA && msglayer.flags.codec == 1" msglayer.flags.kind msglayer.tag \
	msglayer.orig_len | grep -c '^1 1 3000$')
[ "$lz4" -gt 0 ] || fail "no LZ4 request with its original length"
frames "requests of 3000 bytes, LZ4 or not" $(( lz4 + $(req "$PA" 1 1 3000) )) "$(jq .completed "$WORK/lz4.json")"

same "responses linked to their request" "$(fields msglayer.request_in msglayer.request_in | tr ',' '\n' |
	wc -l)" "$(fields 'msglayer.flags.kind == 2' msglayer.flags.kind | tr ',' '\n' | grep -c '^2$')"

echo "== fragments"
frag=$(jq .completed "$WORK/frag.json")
# DATA frames of 100000-byte messages: offsets 0 and 65536, once per request
# and once per number; each is a "fragment of message seq" its own seq.
tuples "msglayer.msg_len == 100000" msglayer.flags.kind msglayer.seq msglayer.offset msglayer.msg_len |
	grep " 100000\$" | cut -d" " -f1-3 >"$WORK/frags"
frames "fragments at offset 0" "$(grep -c ' 0$' "$WORK/frags")" "$frag"
frames "fragments at offset 65536" "$(grep -c ' 65536$' "$WORK/frags")" "$frag"
frames "fragments of a request" "$(grep -c '^1 ' "$WORK/frags")" $(( 2 * frag ))
same "numbers of the fragments" "$(cut -d' ' -f2 "$WORK/frags" | sort -u | tr '\n' ' ')" \
	"$(seq -s ' ' 1 "$frag") "
frames "fragments shown as such" "$(fields "msglayer.fragment_of" msglayer.fragment_of | tr ',' '\n' |
	wc -l)" $(( 2 * frag ))
same "messages the fragments are of" "$(fields "msglayer.fragment_of" msglayer.fragment_of | tr ',' '\n' |
	sort -un | tr '\n' ' ')" "$(seq -s ' ' 1 "$frag") "

echo "== handshakes"
# node id, destination, AUTH, PROTECT; a reconnect would repeat a handshake:
# each kind of line once.
hello() { fields "tcp.port == $1 && msglayer.type == $2" msglayer.hello.node_id \
	msglayer.hello.dest_node_id msglayer.hello.flags.auth msglayer.hello.flags.protect | sort -u; }
same "HELLO to node 1" "$(hello "$PA" 1)" "2 1 0 0"
same "HELLO_ACK of node 1" "$(hello "$PA" 2)" "1 2 0 0"
same "HELLO to node 5, with AUTH, PROTECT none, mac, encrypt" "$(hello "$PB" 1)" "2 5 1 0
2 5 1 1
2 5 1 2"
same "HELLO_ACK of node 5" "$(hello "$PB" 2)" "5 2 0 0"
frames "HELLOs with a key id" "$(count "tcp.port == $PB && msglayer.hello.key_id")" 3
same "AUTH frames" "$(fields "msglayer.type == 8" tcp.dstport msglayer.auth.role msglayer.payload_len \
	msglayer.auth.protect | sed "s/^$PB /server /; s/^[0-9]* /client /" | sort -u)" \
	"client challenge (acceptor) 52 0
client challenge (acceptor) 52 1
client challenge (acceptor) 52 2
server proof (connector) 32"
same "frames on the plain server's port with AUTH" "$(count "tcp.port == $PA && msglayer.type == 8")" 0

echo "== ACK, PING, PONG, CLOSE"
# Per TCP stream and direction, cum never goes back and reaches the last number.
fields "msglayer.ack.cum" tcp.stream tcp.srcport msglayer.ack.cum | awk '
	{ n = split($3, c, ","); for (i = 1; i <= n; i++) {
		k = $1 " " $2; if (k in last && c[i] < last[k]) bad++; last[k] = c[i]; acks++ } }
	END { for (k in last) if (last[k] > top) top = last[k]; print (acks > 0), bad + 0, top }' >"$WORK/acks"
read -r any back top <"$WORK/acks"
same "ACKs seen" "$any" 1
same "ACK cum values that went back" "$back" 0
[ "$top" -ge "$(( rr + 1 ))" ] || fail "highest ACK cum $top, want at least $(( rr + 1 )) (requests + statistics)"
[ "$(count 'msglayer.ping_frame')" -gt 0 ] || fail "no PONG linked to its PING"
same "PINGs without their 8-byte time" "$(count 'msglayer.version == 1 && msglayer.type == 5 && !msglayer.timestamp_ns')" 0
same "CLOSE" "$(fields 'msglayer.type == 7' tcp.srcport msglayer.close.status msglayer.close.reason)" \
	"$PA -9 unsupported frame version"
grep -q "Status: ML_EPROTO (-9)" "$WORK/decoded.txt" || fail "CLOSE status not named ML_EPROTO"

if [ "$FAILED" -ne 0 ]; then
	echo "dissector: $FAILED check(s) failed (capture: tshark -r ... in $WORK, kept)"
	trap - EXIT
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	exit 1
fi
echo "dissector: all checks passed"
