#!/bin/bash
# dissector-frames.sh - the Wireshark dissector (tools/wireshark/msglayer.lua)
# on frames made byte by byte from doc/protocol.md, as text2pcap TCP streams:
# the worked example of section 10 (its CRCs, split across two segments), a
# keyed handshake, an ACK with ranges, a fragment, CANCEL, ABORT, PING/PONG, a
# longer header of a newer version and a CLOSE must decode to their fields with
# no error; then one frame for each check of sections 3 and 4 that a receiver
# closes the path for must carry that check's expert info, and only it.
# tests/tools/dissector.sh does the same on captured traffic; this one needs
# neither root nor a network. Env: LUA (default tools/wireshark/msglayer.lua).
set -u
cd "$(dirname "$0")/../.." || exit 1
LUA=${LUA:-tools/wireshark/msglayer.lua}
WORK=$(mktemp -d)
FAILED=0
trap 'rm -rf "$WORK"' EXIT
for tool in tshark text2pcap mergecap; do
	command -v $tool >/dev/null || { echo "FAIL: $tool not installed (make deps)"; exit 1; }
done

fail() { echo "  FAIL: $*"; FAILED=$(( FAILED + 1 )); }
same() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

# ---- frames as hex bytes ----

le() {                                        # le VALUE N: N bytes, little-endian
	local i
	for (( i = 0; i < $2; i++ )); do printf '%02x ' $(( ($1 >> (8 * i)) & 255 )); done
}
hexof() { printf '%s' "$1" | od -An -tx1 -v | tr -s ' \n' ' '; }
zeros() { local i; for (( i = 0; i < $1; i++ )); do printf '00 '; done; }

CRC_TABLE=()                                  # CRC32C, reflected polynomial 0x82F63B78
for (( i = 0; i < 256; i++ )); do
	c=$i
	for (( k = 0; k < 8; k++ )); do (( c = c & 1 ? (c >> 1) ^ 0x82F63B78 : c >> 1 )); done
	CRC_TABLE[i]=$c
done
crc32c() {                                    # crc32c HEXBYTE...
	local c=0xffffffff b
	for b in "$@"; do (( c = CRC_TABLE[(c ^ 0x$b) & 0xff] ^ (c >> 8) )); done
	echo $(( c ^ 0xffffffff ))
}

# frame KEY=VALUE...: one frame (section 2). Keys: the header's fields by their
# names (default 0; version 1, hdr_len 64, payload_len the payload's length),
# payload (hex bytes), crc=bad (the right CRC with its low bit flipped).
# Header bytes past 64 (up to hdr_len) are ee.
# shellcheck disable=SC2206,SC2207  # hex bytes, split on purpose
frame() {
	local -A f=([version]=1 [type]=0 [flags]=0 [hdr_len]=64 [offset]=0 [session]=0 [seq]=0 [tag]=0
		[ref]=0 [msg_len]=0 [deadline_us]=0 [payload]="" [crc]=good)
	local kv
	for kv in "$@"; do f[${kv%%=*}]=${kv#*=}; done
	local -a p=(${f[payload]})
	local -a h=(4d 4c 46 53 $(le "${f[version]}" 1) $(le "${f[type]}" 1) $(le "${f[flags]}" 2)
		$(le "${f[hdr_len]}" 2) 00 00 00 00 00 00 $(le "${f[payload_len]:-${#p[@]}}" 4)
		$(le "${f[offset]}" 4) $(le "${f[session]}" 8) $(le "${f[seq]}" 8) $(le "${f[tag]}" 8)
		$(le "${f[ref]}" 8) $(le "${f[msg_len]}" 4) $(le "${f[deadline_us]}" 4))
	while (( ${#h[@]} < f[hdr_len] )); do h+=(ee); done
	local crc
	crc=$(crc32c "${h[@]}")
	[ "${f[crc]}" = bad ] && (( crc ^= 1 ))
	local -a c=($(le "$crc" 4))
	h[12]=${c[0]} h[13]=${c[1]} h[14]=${c[2]} h[15]=${c[3]}
	echo "${h[*]} ${p[*]}"
}

# hello NODE DEST INCARNATION PATH FLAGS [KEY_ID NONCE]: a HELLO payload (4.1).
hello() {
	echo "$(le "$1" 4) $(le "$2" 4) $(le "$3" 8) $(zeros 8) $(le 1 2) $(le 1 2) $(le "$4" 2)" \
		"$(le "$5" 2) $(le 262144 4) $(le 67108864 4) $(le 1024 4) $(zeros 4) ${6:-} ${7:-}"
}
# challenge PROTECT: the acceptor's AUTH payload (4.6): nonce, MAC, protection.
challenge() { echo "$(zeros 16) $(zeros 31) aa $(le "$1" 1) 00 00 00"; }
# record HEXBYTE...: a sealed record (5.2) around those body bytes, tag ff...
# shellcheck disable=SC2206  # hex bytes, split on purpose
record() { local -a b=($*); echo "$(le ${#b[@]} 4) ${b[*]} ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff"; }

# pkt FILE I|O HEXBYTE...: one TCP segment, I from the connector, O to it.
pkt() { local file=$1 dir=$2; shift 2; echo "$dir 000000 $*" >>"$WORK/$file"; }

read -ra DIGITS <<<"$(hexof 123456789)"
same "CRC32C test vector of section 2" "$(printf '%x' "$(crc32c "${DIGITS[@]}")")" e3069283

# ---- good frames, on the default port 7400 ----
S=0x0123456789abcdef                           # section 10's session
KEY_ID="01 02 03 04 05 06 07 08"
pkt good I "$(frame type=1 payload="$(hello 2 1 0x1111 3 1 "$KEY_ID" "$(zeros 15) 99")")"
pkt good O "$(frame type=8 payload="$(challenge 0)")"
pkt good I "$(frame type=8 payload="$(zeros 31) bb")"
pkt good O "$(frame type=2 payload="$(hello 1 2 0x2222 3 0x38)")"   # LZ4, zstd, RDMA_READ
# Section 10's request, in two segments.
read -ra REQ <<<"$(frame type=3 flags=1 session=$S seq=1 tag=42 msg_len=5 payload="$(hexof hello)")"
pkt good I "${REQ[@]:0:40}"
pkt good I "${REQ[@]:40}"
# An ACK (cum 1, ranges 3..4 and 7..7) and section 10's response in one segment.
pkt good O "$(frame type=4 session=$S payload="$(le 1 8) $(le 2 4) $(zeros 4) $(le 3 8) $(le 4 8) $(le 7 8) $(le 7 8)")" \
	"$(frame type=3 flags=2 session=$S seq=1 tag=42 ref=1 msg_len=2 payload="$(hexof ok)")"
pkt good I "$(frame type=3 flags=1 session=$S seq=2 tag=7 offset=4096 msg_len=4106 deadline_us=5000 \
	payload="$(zeros 10)")"
pkt good I "$(frame type=3 flags=11 session=$S seq=3 ref=2)"
pkt good O "$(frame type=3 flags=6 session=$S seq=2 tag=7 ref=2 msg_len=4 payload="$(hexof busy)")"
pkt good I "$(frame type=5 session=$S payload="$(le 1000000 8)")"
pkt good O "$(frame type=6 session=$S payload="$(le 1000000 8)")"
pkt good I "$(frame type=5 session=$S hdr_len=80 payload="$(le 2000000 8)")"
pkt good O "$(frame type=7 payload="$(le -16 4) $(hexof 'wrong node')")"
pkt good I "$(frame type=3 flags=0x43 session=$S seq=4 ref=2 msg_len=3 payload="$(hexof abc)")"
# An RDESC (4.8): the second fragment of a one-way message, to be pulled by RDMA READ.
pkt good I "$(frame type=9 flags=3 session=$S seq=5 tag=11 offset=262144 msg_len=300000 \
	payload="$(le 0x7f0012340000 8) $(le 0xa1b2 4) $(le 37856 4)")"

# ---- one broken frame per segment, on port 45678 (found by the heuristic);
# the session field names the case ----
pkt bad I "$(frame type=4 session=0xb1 payload="$(le 5 8) $(le 1 4) $(zeros 4) $(le 6 8) $(le 9 8)")"
pkt bad I "$(frame type=3 flags=9 session=0xb2 seq=1 ref=1)"
pkt bad I "$(frame type=3 flags=1 session=0xb3 seq=1 offset=8 msg_len=10 payload="$(zeros 4)")"
pkt bad I "$(frame type=5 flags=1 session=0xb4 payload="$(zeros 8)")"
pkt bad I "$(frame type=5 session=0xb5 crc=bad payload="$(zeros 8)")"
pkt bad I "$(frame type=7 session=0xb6 payload="$(le -9 4) $(zeros 4996)")"
pkt bad I "$(frame type=1 session=0xb7 payload="$(hello 0 1 0x1111 0 0)")"
pkt bad I "$(frame type=10 session=0xb8)"
pkt bad I "$(frame type=3 flags=3 session=0xb9 seq=1 deadline_us=10)"
pkt bad I "$(frame type=4 session=0xba payload="$(le 5 8) $(le 65 4) $(zeros 4)")"
pkt bad I "$(frame type=5 version=2 session=0xbb payload="$(zeros 8)")"
pkt bad I "$(frame type=5 session=0xbc hdr_len=40)"
pkt bad I "$(frame type=5 session=0xbd seq=5 payload="$(zeros 8)")"  # only a note: ignored
pkt bad I "$(frame type=3 flags=0x31 session=0xbe seq=1 msg_len=8 payload="$(zeros 8)")"
pkt bad I "$(frame type=1 session=0xbf payload="$(hello 2 1 0x1111 0 2)")"
pkt bad I "$(frame type=3 flags=0x4b session=0xc0 seq=1 ref=1)"   # STREAM with CANCEL
pkt bad I "$(frame type=3 flags=0x83 session=0xc1 seq=1)"         # bit 7
pkt bad I "$(frame type=9 flags=3 session=0xc2 seq=1 msg_len=100 payload="$(zeros 15)")"  # RDESC of 15 bytes
# ---- a path protected with mac (5.2): after the handshake, records whose
# bodies are frames in the clear, cut anywhere; and one with encrypt ----
pkt mac I "$(frame type=1 payload="$(hello 2 1 0x3333 0 0x1b "$KEY_ID" "$(zeros 16)")")"
pkt mac O "$(frame type=8 payload="$(challenge 1)")"
pkt mac I "$(frame type=8 payload="$(zeros 32)")"
pkt mac O "$(frame type=2 payload="$(hello 1 2 0x4444 0 0x18)")"
# A request compressed with LZ4 (its original length, 100, then 6 bytes),
# over two records; the second also holds a PING.
read -ra LZ4REQ <<<"$(frame type=3 flags=0x11 session=0x77 seq=1 tag=9 msg_len=10 \
	payload="$(le 100 4) 01 02 03 04 05 06")"
pkt mac I "$(record "${LZ4REQ[@]:0:50}")"
pkt mac I "$(record "${LZ4REQ[@]:50}" "$(frame type=5 session=0x77 payload="$(le 5 8)")")"
pkt mac O "$(record "$(frame type=3 flags=2 session=0x77 seq=1 tag=9 ref=1 msg_len=2 payload="$(hexof ok)")" \
	"$(frame type=4 session=0x77 payload="$(le 1 8) $(zeros 8)")")"
pkt enc I "$(frame type=1 payload="$(hello 2 1 0x5555 1 0x05 "$KEY_ID" "$(zeros 16)")")"
pkt enc O "$(frame type=8 payload="$(challenge 2)")"
pkt enc I "$(frame type=8 payload="$(zeros 32)")"
pkt enc O "$(frame type=2 payload="$(hello 1 2 0x6666 1 0)")"
pkt enc I "$(record "$(zeros 30)")"
pkt enc O "$(record "$(zeros 20)")"

# Bytes that are no frame at all, on a port of the preference, then a frame in
# the same segment (as when a capture starts inside a path).
pkt junk I "$(hexof 'GET /index.html HTTP/1.0')" "$(frame type=5 session=$S payload="$(le 3000000 8)")"

# -D: I and O segments go in opposite directions, each with its own TCP sequence.
# No other dissector of Wireshark 4.0 has these ports (TCP would try it first).
for s in good:45679,7400 bad:45680,45678 junk:45681,7401 mac:45682,7400 enc:45683,7400; do
	text2pcap -q -D -T "${s#*:}" "$WORK/${s%%:*}" "$WORK/${s%%:*}.pcap" >/dev/null 2>"$WORK/text2pcap.log" ||
		{ echo "FAIL: text2pcap: $(cat "$WORK/text2pcap.log")"; exit 1; }
done
mergecap -a -w "$WORK/all.pcap" "$WORK"/{good,bad,junk,mac,enc}.pcap ||
	{ echo "FAIL: mergecap"; exit 1; }

dec() {                                       # no personal preferences or plugins
	HOME=$WORK tshark -r "$WORK/all.pcap" -X "lua_script:$LUA" -o "msglayer.ports:7400-7401" "$@" \
		2>>"$WORK/tshark.err"
}
fields() {                                    # fields FILTER FIELD...
	local filter=$1
	shift
	dec -Y "$filter" -T fields -E occurrence=a -E separator=' ' "${@/#/-e}" | sed 's/ *$//'
}
info() { dec -Y "$1" -o 'gui.column.format:"Info","%i"'; }  # the Info column

echo "== good frames"
dec -O msglayer >"$WORK/decoded.txt"
if grep -q "Lua Error" "$WORK/decoded.txt" "$WORK/tshark.err"; then
	fail "Lua error: $(grep -h -m1 "Lua Error" "$WORK/decoded.txt" "$WORK/tshark.err")"
fi
G="tcp.port == 45679"
same "frames with expert errors or warnings" "$(fields "$G && _ws.expert.severity >= warning" frame.number)" ""
same "types in order" "$(fields "$G && msglayer" msglayer.type | tr '\n' ' ')" "1 8 8 2 3 4,3 3 3 3 5 6 5 7 3 9 "
same "CRCs good" "$(fields "$G && msglayer" msglayer.hdr_crc.status | tr ',' '\n' | sort | uniq -c | tr -s ' ')" " 16 1"
same "stream chunk" "$(info "$G && msglayer.flags.stream == 1")" "DATA one-way seq=4 tag=0 STREAM chunk=2 len=3"
same "RDESC" "$(fields "$G && msglayer.type == 9" msglayer.rdesc.addr msglayer.rdesc.rkey msglayer.rdesc.len \
	msglayer.fragment_of)" "0x00007f0012340000 0x0000a1b2 37856 5"
same "RDESC info" "$(info "$G && msglayer.type == 9")" \
	"RDESC one-way seq=5 tag=11 frag 262144+37856/300000 rkey=0xa1b2"
same "section 10's CRCs" "$(fields "$G && msglayer.tag == 42" msglayer.hdr_crc | tr ',' '\n' |
	grep -c -e '^0xe98bde60$' -e '^0x6f73906b$')" 2
same "section 10's request, reassembled" "$(fields "$G && msglayer.flags.kind == 1 && msglayer.tag == 42" \
	msglayer.session msglayer.seq msglayer.tag msglayer.msg_len msglayer.payload tcp.reassembled.length)" \
	"0x0123456789abcdef 1 42 5 68656c6c6f 69"
same "HELLO" "$(fields "$G && msglayer.type == 1" msglayer.hello.node_id msglayer.hello.dest_node_id \
	msglayer.hello.incarnation msglayer.hello.path_idx msglayer.hello.flags.auth msglayer.hello.key_id \
	msglayer.hello.window)" "2 1 0x0000000000001111 3 1 0102030405060708 1024"
same "HELLO_ACK" "$(fields "$G && msglayer.type == 2" msglayer.hello.node_id msglayer.hello.dest_node_id \
	msglayer.hello.flags.auth msglayer.hello.flags.protect msglayer.hello.flags.lz4 msglayer.hello.flags.zstd \
	msglayer.hello.flags.rdma_read msglayer.hello.key_id)" "1 2 0 0 1 1 1"
same "AUTH" "$(fields "$G && msglayer.type == 8" msglayer.auth.role msglayer.auth.protect msglayer.auth.nonce)" \
	"challenge (acceptor) 0 00000000000000000000000000000000
proof (connector)"
same "ACK" "$(fields "$G && msglayer.type == 4" msglayer.ack.cum msglayer.ack.nranges \
	msglayer.ack.range.start msglayer.ack.range.end)" "1 2 3,7 4,7"
same "response" "$(fields "$G && msglayer.flags.kind == 2 && msglayer.flags.abort == 0" msglayer.ref \
	msglayer.msg_len msglayer.payload)" "1 2 6f6b"
same "fragment" "$(fields "$G && msglayer.fragment_of && msglayer.type == 3" msglayer.fragment_of msglayer.offset \
	msglayer.deadline_us)" "2 4096 5000"
grep -q "Fragment of message seq: 2 (bytes 4096..4105 of 4106)" "$WORK/decoded.txt" ||
	fail "the fragment is not described"
same "CANCEL" "$(fields "$G && msglayer.flags.cancel == 1" msglayer.flags.kind msglayer.ref msglayer.msg_len)" "3 2 0"
same "ABORT" "$(fields "$G && msglayer.flags.abort == 1" msglayer.ref msglayer.abort_reason)" "2 busy"
same "PONG" "$(fields "$G && msglayer.type == 6" msglayer.timestamp_ns msglayer.ping_frame)" "1000000 11"
same "newer header" "$(fields "$G && msglayer.hdr_len == 80" msglayer.hdr_ext msglayer.timestamp_ns)" \
	"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee 2000000"
same "responses and their requests" "$(fields "$G && msglayer.request_in" msglayer.request_in | tr '\n' ' ')" \
	"6 8 "
same "requests and their responses (two passes)" "$(HOME=$WORK tshark -2 -r "$WORK/all.pcap" \
	-X "lua_script:$LUA" -Y "$G && msglayer.response_in" -T fields -e frame.number -e msglayer.response_in \
	2>>"$WORK/tshark.err" | tr '\t\n' ': ')" "6:7 8:10 "
same "CLOSE" "$(fields "$G && msglayer.type == 7" msglayer.close.status msglayer.close.reason)" "-16 wrong node"
grep -q "Status: ML_ENODE (-16)" "$WORK/decoded.txt" || fail "CLOSE status not named ML_ENODE"
same "Info of the ACK + response segment" "$(info "$G && msglayer.type == 4")" \
	"ACK cum=1 sack=3..4,7..7 | DATA response seq=1 tag=42 ref=1 len=2"

echo "== broken frames"
# expert FIELD: the sessions of the broken frames that carry it.
expert() { fields "tcp.port == 45678 && $1" msglayer.session | tr '\n' ' '; }
same "EBODY" "$(expert msglayer.bad_body)" \
	"0x00000000000000b1 0x00000000000000b7 0x00000000000000ba 0x00000000000000bf "
same "EFLAGS" "$(expert msglayer.bad_flags)" \
	"0x00000000000000b2 0x00000000000000b4 0x00000000000000b9 0x00000000000000be 0x00000000000000c0 0x00000000000000c1 "
same "EFRAGMENT" "$(expert msglayer.bad_fragment)" "0x00000000000000b3 "
same "ECRC" "$(expert msglayer.bad_crc)" "0x00000000000000b5 "
same "EPAYLOAD" "$(expert msglayer.bad_payload_len)" "0x00000000000000b6 0x00000000000000c2 "
same "ETYPE" "$(expert msglayer.bad_type)" "0x00000000000000b8 "
same "EVERSION" "$(expert msglayer.bad_version)" "0x00000000000000bb "
same "unused field not 0" "$(fields "tcp.port == 45678 && msglayer.unused_not_zero" msglayer.session \
	msglayer.seq)" "0x00000000000000bd 5"
same "EHDRLEN" "$(fields "tcp.port == 45678 && msglayer.bad_hdr_len" msglayer.hdr_len)" "40"
same "broken frames with an error" "$(fields "tcp.port == 45678 && _ws.expert.severity == error" \
	frame.number | wc -l)" 17
same "junk, then a frame" "$(info "tcp.port == 7401 && msglayer.bad_magic")" \
	"not a msglayer frame | PING t=3000000"

echo "== protected paths"
M="tcp.port == 45682"
same "mac: errors or warnings" "$(fields "$M && _ws.expert.severity >= warning" frame.number)" ""
same "mac: HELLO" "$(fields "$M && msglayer.type == 1" msglayer.hello.flags.auth msglayer.hello.flags.protect \
	msglayer.hello.flags.lz4 msglayer.hello.flags.zstd)" "1 1 1 1"
same "mac: protection chosen" "$(fields "$M && msglayer.type == 8" msglayer.auth.protect)" "1"
same "mac: records" "$(fields "$M && msglayer.record" msglayer.record.len | tr '\n' ' ')" "50 96 146 "
same "mac: frames in the records" "$(info "$M && msglayer.record && msglayer.type")" \
	"DATA request seq=1 tag=9 lz4 len=10 | PING t=5
DATA response seq=1 tag=9 ref=1 len=2 | ACK cum=1"
same "mac: the compressed request" "$(fields "$M && msglayer.flags.codec == 1" msglayer.orig_len msglayer.payload \
	msglayer.msg_len)" "100 010203040506 10"
same "mac: the response points at it" "$(fields "$M && msglayer.request_in" msglayer.request_in | wc -l)" 1
E="tcp.port == 45683"
same "encrypt: errors or warnings" "$(fields "$E && _ws.expert.severity >= warning" frame.number)" ""
same "encrypt: records" "$(info "$E && msglayer.record")" "sealed record (30 bytes, encrypted)
sealed record (20 bytes, encrypted)"

if [ "$FAILED" -ne 0 ]; then
	echo "dissector-frames: $FAILED check(s) failed"
	exit 1
fi
echo "dissector-frames: all checks passed"
