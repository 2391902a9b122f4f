-- msglayer.lua - Wireshark dissector for the msglayer wire protocol, version 1.
--
-- doc/protocol.md is the specification and msglayer/wire.c the codec; the
-- section numbers below are the document's. tools/wireshark/README.md says
-- how to load this file and how to extend it.
--
-- Frames sit back to back in a TCP stream and may span segments, so the
-- dissector hands the stream to dissect_tcp_pdus, which finds each frame's
-- end from its header (hdr_len + payload_len) and reassembles across segments.
--
-- Runs on every Lua that Wireshark 3.x/4.x links (5.1 to 5.4): 64-bit fields
-- are UInt64 objects, and bit operations are those of BitOp (the global `bit`
-- that Wireshark always provides), since Lua 5.4 has no bit32. BitOp's
-- results are signed 32-bit numbers: u32() makes them comparable with a field.

local ml = Proto("msglayer", "msglayer wire protocol")

local MAGIC = "MLFS"    -- the u32 0x53464c4d, little-endian
local HDR_V1 = 64       -- header length a v1 sender writes
local HDR_MAX = 1024    -- longest header a receiver accepts
local CTRL_MAX = 4096   -- longest payload of every type but DATA
local SACK_MAX = 64     -- ranges in one ACK
local PREFIX = 20       -- header bytes that tell a frame's length (payload_len ends at 20)

local T = { HELLO = 1, HELLO_ACK = 2, DATA = 3, ACK = 4, PING = 5, PONG = 6, CLOSE = 7, AUTH = 8,
	RDESC = 9 }
local TYPE_NAMES = {}
for name, v in pairs(T) do TYPE_NAMES[v] = name end

local KIND_NAMES = { [0] = "invalid (0)", [1] = "request", [2] = "response", [3] = "one-way" }
local KIND_MASK, FLAG_ABORT, FLAG_CANCEL = 0x3, 0x4, 0x8
-- STREAM (bit 6): the bulk streams' messages (doc/streams.md, on the
-- integration branch when this was written).
local FLAG_CODEC, FLAG_STREAM, FLAGS_UNKNOWN = 0x30, 0x40, 0xff80
local CODEC_NAMES = { [0] = "none", [1] = "lz4", [2] = "zstd", [3] = "invalid (3)" }
local HELLO_F_AUTH, HELLO_F_PROTECT, HELLO_F_LZ4, HELLO_F_ZSTD = 0x1, 0x6, 0x8, 0x10
local HELLO_F_RDMA_READ = 0x20   -- this end can pull RDESC fragments (4.1, 4.8)
local HELLO_F_UNKNOWN = 0xffc0
local RDESC_LEN = 16
local PROTECT_NAMES = { [0] = "none", [1] = "mac", [2] = "encrypt", [3] = "invalid (3)" }
local AUTH_CHALLENGE, AUTH_PROOF = 52, 32
local RECORD_MAX, TAG_LEN = 16384, 16   -- sealed records (5.2)

-- msglayer.h's enum ml_status: CLOSE carries one of them (4.5).
local STATUS_NAMES = {
	[0] = "ML_OK", [-1] = "ML_EINVAL", [-2] = "ML_ENOMEM", [-3] = "ML_EAGAIN",
	[-4] = "ML_ETOOBIG", [-5] = "ML_ETIMEDOUT", [-6] = "ML_EPEERRESTART",
	[-7] = "ML_EPEERDOWN", [-8] = "ML_ECANCELED", [-9] = "ML_EPROTO",
	[-10] = "ML_EVERSION", [-11] = "ML_EADDR", [-12] = "ML_ESYS", [-13] = "ML_EEXIST",
	[-14] = "ML_ENOENT", [-15] = "ML_ENOTCONN", [-16] = "ML_ENODE", [-17] = "ML_EABORTED",
	[-18] = "ML_EDEADLINE", [-19] = "ML_EAUTH", [-20] = "ML_EKEY", [-21] = "ML_ELIMIT",
}

---------------------------------------------------------------------------
-- Fields. Filter names follow doc/protocol.md's field names.

local f = {
	magic = ProtoField.string("msglayer.magic", "Magic"),
	version = ProtoField.uint8("msglayer.version", "Version"),
	type = ProtoField.uint8("msglayer.type", "Type", base.DEC, TYPE_NAMES),
	flags = ProtoField.uint16("msglayer.flags", "Flags", base.HEX),
	flags_kind = ProtoField.uint16("msglayer.flags.kind", "Kind", base.DEC, KIND_NAMES, KIND_MASK),
	flags_abort = ProtoField.bool("msglayer.flags.abort", "ABORT", 16, nil, FLAG_ABORT),
	flags_cancel = ProtoField.bool("msglayer.flags.cancel", "CANCEL", 16, nil, FLAG_CANCEL),
	flags_codec = ProtoField.uint16("msglayer.flags.codec", "Codec", base.DEC, CODEC_NAMES, FLAG_CODEC),
	flags_stream = ProtoField.bool("msglayer.flags.stream", "STREAM", 16, nil, FLAG_STREAM),
	flags_unknown = ProtoField.uint16("msglayer.flags.unknown", "Unknown flags", base.HEX, nil,
		FLAGS_UNKNOWN),
	hdr_len = ProtoField.uint16("msglayer.hdr_len", "Header length"),
	reserved = ProtoField.uint16("msglayer.reserved", "Reserved", base.HEX),
	hdr_crc = ProtoField.uint32("msglayer.hdr_crc", "Header CRC32C", base.HEX),
	hdr_crc_status = ProtoField.uint8("msglayer.hdr_crc.status", "Header CRC status", base.DEC,
		{ [0] = "Bad", [1] = "Good" }),
	hdr_crc_computed = ProtoField.uint32("msglayer.hdr_crc.computed", "Computed CRC32C", base.HEX),
	payload_len = ProtoField.uint32("msglayer.payload_len", "Payload length"),
	offset = ProtoField.uint32("msglayer.offset", "Offset"),
	session = ProtoField.uint64("msglayer.session", "Session", base.HEX),
	seq = ProtoField.uint64("msglayer.seq", "Sequence number"),
	tag = ProtoField.uint64("msglayer.tag", "Tag"),
	ref = ProtoField.uint64("msglayer.ref", "Ref"),
	msg_len = ProtoField.uint32("msglayer.msg_len", "Message length"),
	deadline_us = ProtoField.uint32("msglayer.deadline_us", "Deadline (us)"),
	hdr_ext = ProtoField.bytes("msglayer.hdr_ext", "Header extension (newer version)"),

	-- DATA (4.2)
	fragment_of = ProtoField.uint64("msglayer.fragment_of", "Fragment of message seq"),
	request_in = ProtoField.framenum("msglayer.request_in", "Request in frame", base.NONE,
		frametype.REQUEST),
	response_in = ProtoField.framenum("msglayer.response_in", "Response in frame", base.NONE,
		frametype.RESPONSE),
	response_time = ProtoField.relative_time("msglayer.response_time", "Time since the request"),
	payload = ProtoField.bytes("msglayer.payload", "Payload"),
	orig_len = ProtoField.uint32("msglayer.orig_len", "Original length (before compression)"),
	abort_reason = ProtoField.string("msglayer.abort_reason", "Abort reason"),

	-- RDESC (4.8): where the fragment's bytes are, for an RDMA READ
	rdesc_addr = ProtoField.uint64("msglayer.rdesc.addr", "Sender's address", base.HEX),
	rdesc_rkey = ProtoField.uint32("msglayer.rdesc.rkey", "Remote key", base.HEX),
	rdesc_len = ProtoField.uint32("msglayer.rdesc.len", "Fragment length"),

	-- HELLO, HELLO_ACK (4.1)
	hello_node_id = ProtoField.uint32("msglayer.hello.node_id", "Node id"),
	hello_dest_node_id = ProtoField.uint32("msglayer.hello.dest_node_id", "Destination node id"),
	hello_incarnation = ProtoField.uint64("msglayer.hello.incarnation", "Incarnation", base.HEX),
	hello_dest_incarnation = ProtoField.uint64("msglayer.hello.dest_incarnation",
		"Destination incarnation", base.HEX),
	hello_min_version = ProtoField.uint16("msglayer.hello.min_version", "Min version"),
	hello_max_version = ProtoField.uint16("msglayer.hello.max_version", "Max version"),
	hello_path_idx = ProtoField.uint16("msglayer.hello.path_idx", "Path index"),
	hello_flags = ProtoField.uint16("msglayer.hello.flags", "Flags", base.HEX),
	hello_flags_auth = ProtoField.bool("msglayer.hello.flags.auth", "AUTH", 16, nil, HELLO_F_AUTH),
	hello_flags_protect = ProtoField.uint16("msglayer.hello.flags.protect", "PROTECT", base.DEC,
		PROTECT_NAMES, HELLO_F_PROTECT),
	hello_flags_lz4 = ProtoField.bool("msglayer.hello.flags.lz4", "CODECS: LZ4", 16, nil, HELLO_F_LZ4),
	hello_flags_zstd = ProtoField.bool("msglayer.hello.flags.zstd", "CODECS: zstd", 16, nil, HELLO_F_ZSTD),
	hello_flags_rdma_read = ProtoField.bool("msglayer.hello.flags.rdma_read", "RDMA_READ", 16, nil,
		HELLO_F_RDMA_READ),
	hello_flags_unknown = ProtoField.uint16("msglayer.hello.flags.unknown", "Unknown flags", base.HEX,
		nil, HELLO_F_UNKNOWN),
	hello_max_frag = ProtoField.uint32("msglayer.hello.max_frag_payload", "Max fragment payload"),
	hello_max_msg = ProtoField.uint32("msglayer.hello.max_msg_size", "Max message size"),
	hello_window = ProtoField.uint32("msglayer.hello.window", "Window"),
	hello_reserved = ProtoField.uint32("msglayer.hello.reserved", "Reserved", base.HEX),
	hello_key_id = ProtoField.bytes("msglayer.hello.key_id", "Key id"),
	hello_nonce = ProtoField.bytes("msglayer.hello.nonce", "Connector nonce"),
	hello_extra = ProtoField.bytes("msglayer.hello.extra", "Extension (newer version)"),

	-- AUTH (4.6)
	auth_role = ProtoField.string("msglayer.auth.role", "Role"),
	auth_nonce = ProtoField.bytes("msglayer.auth.nonce", "Acceptor nonce"),
	auth_mac = ProtoField.bytes("msglayer.auth.mac", "HMAC-SHA256"),
	auth_protect = ProtoField.uint8("msglayer.auth.protect", "Protection chosen", base.DEC, PROTECT_NAMES),
	auth_reserved = ProtoField.bytes("msglayer.auth.reserved", "Reserved"),

	-- Sealed records of a protected path (5.2)
	record = ProtoField.none("msglayer.record", "Sealed record"),
	record_len = ProtoField.uint32("msglayer.record.len", "Body length"),
	record_body = ProtoField.bytes("msglayer.record.body", "Body (frame bytes, authenticated)"),
	record_ciphertext = ProtoField.bytes("msglayer.record.ciphertext", "Body (encrypted frame bytes)"),
	record_tag = ProtoField.bytes("msglayer.record.tag", "GCM tag"),

	-- ACK (4.3)
	ack_cum = ProtoField.uint64("msglayer.ack.cum", "Cumulative"),
	ack_nranges = ProtoField.uint32("msglayer.ack.nranges", "Ranges"),
	ack_reserved = ProtoField.uint32("msglayer.ack.reserved", "Reserved", base.HEX),
	ack_range = ProtoField.none("msglayer.ack.range", "Range"),
	ack_start = ProtoField.uint64("msglayer.ack.range.start", "Start"),
	ack_end = ProtoField.uint64("msglayer.ack.range.end", "End"),

	-- PING, PONG (4.4)
	timestamp_ns = ProtoField.uint64("msglayer.timestamp_ns", "Sender's monotonic time (ns)"),
	ping_frame = ProtoField.framenum("msglayer.ping_frame", "PING in frame", base.NONE,
		frametype.RESPONSE),
	rtt = ProtoField.relative_time("msglayer.rtt", "RTT seen in the capture"),

	-- CLOSE (4.5)
	close_status = ProtoField.int32("msglayer.close.status", "Status", base.DEC, STATUS_NAMES),
	close_reason = ProtoField.string("msglayer.close.reason", "Reason"),

	trailing = ProtoField.bytes("msglayer.trailing", "Bytes past the frame's body"),
}
local fields = {}
for _, pf in pairs(f) do fields[#fields + 1] = pf end
ml.fields = fields

-- One expert per check of section 3 (the receiver's error name in brackets)
-- and per malformed body: what a receiver would close the path for.
local e = {
	magic = ProtoExpert.new("msglayer.bad_magic", "Not a msglayer frame (EMAGIC)",
		expert.group.MALFORMED, expert.severity.ERROR),
	version = ProtoExpert.new("msglayer.bad_version", "Frame version not 1 (EVERSION)",
		expert.group.PROTOCOL, expert.severity.ERROR),
	type = ProtoExpert.new("msglayer.bad_type", "Unknown frame type (ETYPE)",
		expert.group.MALFORMED, expert.severity.ERROR),
	hdr_len = ProtoExpert.new("msglayer.bad_hdr_len", "Header length outside 64..1024 (EHDRLEN)",
		expert.group.MALFORMED, expert.severity.ERROR),
	crc = ProtoExpert.new("msglayer.bad_crc", "Header CRC32C does not match (ECRC)",
		expert.group.CHECKSUM, expert.severity.ERROR),
	flags = ProtoExpert.new("msglayer.bad_flags", "Flags invalid for this frame (EFLAGS)",
		expert.group.PROTOCOL, expert.severity.ERROR),
	payload = ProtoExpert.new("msglayer.bad_payload_len", "Payload over the limit (EPAYLOAD)",
		expert.group.PROTOCOL, expert.severity.ERROR),
	fragment = ProtoExpert.new("msglayer.bad_fragment",
		"Fragment outside its message (EFRAGMENT)", expert.group.PROTOCOL, expert.severity.ERROR),
	body = ProtoExpert.new("msglayer.bad_body", "Malformed control payload (EBODY)",
		expert.group.MALFORMED, expert.severity.ERROR),
	unused = ProtoExpert.new("msglayer.unused_not_zero",
		"Field unused by this frame type is not 0 (receivers ignore it)",
		expert.group.PROTOCOL, expert.severity.NOTE),
	close = ProtoExpert.new("msglayer.close", "Path closed by its sender",
		expert.group.SEQUENCE, expert.severity.NOTE),
}
ml.experts = { e.magic, e.version, e.type, e.hdr_len, e.crc, e.flags, e.payload, e.fragment,
	e.body, e.unused, e.close }

local tcp_stream = Field.new("tcp.stream")

---------------------------------------------------------------------------
-- CRC32C (Castagnoli, reflected 0x82F63B78), bytewise with a table: a
-- header is 64 bytes, so this costs nothing next to the rest of dissection.

local CRC_TABLE = {}
for i = 0, 255 do
	local c = i
	for _ = 1, 8 do
		if bit.band(c, 1) ~= 0 then
			c = bit.bxor(bit.rshift(c, 1), 0x82F63B78)
		else
			c = bit.rshift(c, 1)
		end
	end
	CRC_TABLE[i] = c
end

local function u32(x)
	return x % 4294967296
end

-- Section 2: the first hdr_len bytes with the 4 hdr_crc bytes (12..15) as zero.
-- Every frame goes through here: the bytes are taken in one call and the bit
-- functions are locals, which halves its time.
local band, bxor, rshift = bit.band, bit.bxor, bit.rshift
local function header_crc(raw)
	local bytes = { raw:byte(1, #raw) }
	bytes[13], bytes[14], bytes[15], bytes[16] = 0, 0, 0, 0
	local crc = 0xffffffff
	for i = 1, #bytes do
		crc = bxor(CRC_TABLE[band(bxor(crc, bytes[i]), 0xff)], rshift(crc, 8))
	end
	return u32(bit.bnot(crc))
end

---------------------------------------------------------------------------
-- State filled on the first pass, in capture order:
-- - per TCP stream, which side connected (the sender of HELLO), so that
--   AUTH's challenge and proof, which have no field of their own to tell them
--   apart, can be named;
-- - per endpoint (address:port), the node id its HELLO or HELLO_ACK gave:
--   both nodes number their messages from 1 in a session, so a request is
--   known by session, sender node and seq. Its response may come on another
--   path (another stream), hence keys that do not name the stream;
-- - the frames of PINGs and requests, for the PONGs and responses;
-- - per stream, the protection the AUTH challenge chose, and per endpoint,
--   from which frame on what it sends is sealed (5.2), with the frame bytes
--   of mac records not yet made into frames (below, "Sealed records").

local streams, nodes, pings, requests, responses, record_frames_of

local function reset_state()
	streams, nodes, pings, requests, responses, record_frames_of = {}, {}, {}, {}, {}, {}
end
ml.init = reset_state
reset_state()

local function endpoint(pinfo)
	return tostring(pinfo.src) .. ":" .. pinfo.src_port
end

local function peer_endpoint(pinfo)
	return tostring(pinfo.dst) .. ":" .. pinfo.dst_port
end

-- The capture time from an earlier frame's to this one's.
local function since(pinfo, abs_ts)
	local d = pinfo.abs_ts - abs_ts
	local secs = math.floor(d)
	return NSTime(secs, math.floor((d - secs) * 1e9 + 0.5))
end

local function stream_state(pinfo)
	local s = tcp_stream()
	local key = s and s.value or -1
	streams[key] = streams[key] or { sealed_from = {}, plain = {} }
	return streams[key], key
end

---------------------------------------------------------------------------
-- Header (section 2). The first 16 bytes are the same in every version
-- (section 9) and dissect_header reads them itself; the rest is this table:
-- offset, size, field and the frame types whose meaning uses it (nil: all).
-- Others send 0: a field unused by the type is shown only when it is not.
-- A field added by a newer version goes here with its offset (>= 64): it is
-- shown when the frame's hdr_len holds it.

local DATA_ONLY = { [T.DATA] = true, [T.RDESC] = true }   -- DATA's header fields
local HDR_FIELDS = {
	{ off = 16, len = 4, pf = f.payload_len },
	{ off = 20, len = 4, pf = f.offset, types = DATA_ONLY },
	{ off = 24, len = 8, pf = f.session },
	{ off = 32, len = 8, pf = f.seq, types = DATA_ONLY },
	{ off = 40, len = 8, pf = f.tag, types = DATA_ONLY },
	{ off = 48, len = 8, pf = f.ref, types = DATA_ONLY },
	{ off = 56, len = 4, pf = f.msg_len, types = DATA_ONLY },
	{ off = 60, len = 4, pf = f.deadline_us, types = DATA_ONLY },
}

local function is_zero(r)
	return not r:raw():find("[^\0]")
end

-- The decoded header, as a table of numbers (UInt64 for the 64-bit fields).
local function read_header(tvb)
	local h = {
		version = tvb(4, 1):uint(), type = tvb(5, 1):uint(), flags = tvb(6, 2):le_uint(),
		hdr_len = tvb(8, 2):le_uint(), payload_len = tvb(16, 4):le_uint(),
	}
	if h.hdr_len >= HDR_V1 then
		h.offset = tvb(20, 4):le_uint()
		h.session = tvb(24, 8):le_uint64()
		h.seq = tvb(32, 8):le_uint64()
		h.tag = tvb(40, 8):le_uint64()
		h.ref = tvb(48, 8):le_uint64()
		h.msg_len = tvb(56, 4):le_uint()
		h.deadline_us = tvb(60, 4):le_uint()
	end
	return h
end

local function dissect_data_flags(tvb, ht, h)
	local ft = ht:add_le(f.flags, tvb(6, 2))
	ft:add_le(f.flags_kind, tvb(6, 2))
	ft:add_le(f.flags_abort, tvb(6, 2))
	ft:add_le(f.flags_cancel, tvb(6, 2))
	ft:add_le(f.flags_codec, tvb(6, 2))
	ft:add_le(f.flags_stream, tvb(6, 2))
	ft:add_le(f.flags_unknown, tvb(6, 2))
	-- Check 9 and 4.2: the rules of wire.c's check_data.
	local kind = bit.band(h.flags, KIND_MASK)
	local bad = kind == 0 or bit.band(h.flags, FLAGS_UNKNOWN) ~= 0
		or bit.band(h.flags, FLAG_CODEC) == FLAG_CODEC
		or (bit.band(h.flags, FLAG_ABORT) ~= 0 and kind ~= 2)
		or (bit.band(h.flags, FLAG_CANCEL) ~= 0
			and (kind ~= 3 or h.msg_len ~= 0 or h.ref == UInt64(0)
				or bit.band(h.flags, FLAG_STREAM) ~= 0))
		or (h.deadline_us ~= 0 and kind ~= 1)
	if bad then ft:add_proto_expert_info(e.flags) end
end

local function dissect_header(tvb, ht, h)
	ht:add(f.magic, tvb(0, 4))
	local vt = ht:add(f.version, tvb(4, 1))
	if h.version ~= 1 then vt:add_proto_expert_info(e.version) end
	local tt = ht:add(f.type, tvb(5, 1))
	if not TYPE_NAMES[h.type] then tt:add_proto_expert_info(e.type) end
	if DATA_ONLY[h.type] then
		dissect_data_flags(tvb, ht, h)
	else
		local ft = ht:add_le(f.flags, tvb(6, 2))
		if h.flags ~= 0 then ft:add_proto_expert_info(e.flags, "Flags must be 0 for this type (EFLAGS)") end
	end
	local lt = ht:add_le(f.hdr_len, tvb(8, 2))
	if h.hdr_len < HDR_V1 or h.hdr_len > HDR_MAX then
		lt:add_proto_expert_info(e.hdr_len)
		return false
	end
	ht:add_le(f.reserved, tvb(10, 2))

	local crc = tvb(12, 4):le_uint()
	local computed = header_crc(tvb:raw(0, h.hdr_len))
	local ct = ht:add_le(f.hdr_crc, tvb(12, 4))
	ct:append_text(crc == computed and " [good]" or " [bad]")
	ct:add(f.hdr_crc_status, tvb(12, 4), crc == computed and 1 or 0):set_generated()
	if crc ~= computed then
		ct:add(f.hdr_crc_computed, tvb(12, 4), computed):set_generated()
		ct:add_proto_expert_info(e.crc)
	end

	for _, hf in ipairs(HDR_FIELDS) do
		if hf.off + hf.len <= h.hdr_len then
			local r = tvb(hf.off, hf.len)
			if not hf.types or hf.types[h.type] then
				ht:add_le(hf.pf, r)
			elseif not is_zero(r) then
				ht:add_le(hf.pf, r):add_proto_expert_info(e.unused)
			end
		end
	end
	if not DATA_ONLY[h.type] and h.deadline_us ~= 0 then
		ht:add_proto_expert_info(e.flags, "deadline_us must be 0 outside a DATA request (EFLAGS)")
	end
	if h.hdr_len > HDR_V1 then ht:add(f.hdr_ext, tvb(HDR_V1, h.hdr_len - HDR_V1)) end
	return true
end

---------------------------------------------------------------------------
-- Payloads, one function per frame type: (payload tvb range, subtree,
-- header, pinfo) -> text for the Info column.

local function body_error(t, msg)
	t:add_proto_expert_info(e.body, "Malformed control payload (EBODY): " .. msg)
end

-- 4.1. Also records which side connected, for AUTH.
local function dissect_hello(p, t, h, pinfo)
	if p:len() < 48 then
		body_error(t, "HELLO payload shorter than 48 bytes")
		return "(short)"
	end
	local st = stream_state(pinfo)
	if h.type == T.HELLO then st.connector = st.connector or endpoint(pinfo) end
	local node, dest = p(0, 4):le_uint(), p(4, 4):le_uint()
	if not pinfo.visited then nodes[endpoint(pinfo)] = node end
	local flags = p(30, 2):le_uint()
	t:add_le(f.hello_node_id, p(0, 4))
	t:add_le(f.hello_dest_node_id, p(4, 4))
	t:add_le(f.hello_incarnation, p(8, 8))
	t:add_le(f.hello_dest_incarnation, p(16, 8))
	t:add_le(f.hello_min_version, p(24, 2))
	t:add_le(f.hello_max_version, p(26, 2))
	t:add_le(f.hello_path_idx, p(28, 2))
	local ft = t:add_le(f.hello_flags, p(30, 2))
	ft:add_le(f.hello_flags_auth, p(30, 2))
	ft:add_le(f.hello_flags_protect, p(30, 2))
	ft:add_le(f.hello_flags_lz4, p(30, 2))
	ft:add_le(f.hello_flags_zstd, p(30, 2))
	ft:add_le(f.hello_flags_rdma_read, p(30, 2))
	ft:add_le(f.hello_flags_unknown, p(30, 2))
	t:add_le(f.hello_max_frag, p(32, 4))
	t:add_le(f.hello_max_msg, p(36, 4))
	t:add_le(f.hello_window, p(40, 4))
	t:add_le(f.hello_reserved, p(44, 4))
	local used = 48
	local auth = bit.band(flags, HELLO_F_AUTH) ~= 0
	if auth then
		if p:len() < 72 then
			body_error(t, "AUTH flag set but the payload is shorter than 72 bytes")
		else
			t:add(f.hello_key_id, p(48, 8))
			t:add(f.hello_nonce, p(56, 16))
			used = 72
		end
	end
	if p:len() > used then t:add(f.hello_extra, p(used)) end

	local minv, maxv = p(24, 2):le_uint(), p(26, 2):le_uint()
	local protect = bit.rshift(bit.band(flags, HELLO_F_PROTECT), 1)
	if protect == 3 then body_error(ft, "PROTECT is 3") end
	if protect ~= 0 and not auth then body_error(ft, "PROTECT without AUTH") end
	-- The acceptor seals what it sends after HELLO_ACK (5.1 step 2).
	if h.type == T.HELLO_ACK and (st.protect or 0) > 0 and not pinfo.visited then
		st.sealed_from[endpoint(pinfo)] = pinfo.number
	end
	if node == 0 then body_error(t, "node_id is 0") end
	if p(8, 8):le_uint64() == UInt64(0) then body_error(t, "incarnation is 0") end
	if minv == 0 or minv > maxv then body_error(t, "bad version range") end
	if p(40, 4):le_uint() == 0 then body_error(t, "window is 0") end
	return string.format("node %d -> %d path %d%s%s", node, dest, p(28, 2):le_uint(),
		auth and " AUTH" or "", protect ~= 0 and " protect=" .. PROTECT_NAMES[protect] or "")
end

-- Request and response point at each other (6.4: a response's ref is its
-- request's seq), when the capture has the HELLOs that name both nodes.
local function link_request(t, h, pinfo, kind)
	local from, to = nodes[endpoint(pinfo)], nodes[peer_endpoint(pinfo)]
	if not (from and to) then return end
	if kind == 1 then
		local key = tostring(h.session) .. "/" .. from .. "/" .. tostring(h.seq)
		-- The frame that completes the request: its last fragment.
		if not pinfo.visited then requests[key] = { frame = pinfo.number, time = pinfo.abs_ts } end
		if responses[key] then t:add(f.response_in, responses[key]):set_generated() end
	elseif kind == 2 then
		local key = tostring(h.session) .. "/" .. to .. "/" .. tostring(h.ref)
		local req = requests[key]
		if not req then return end
		if not pinfo.visited then responses[key] = pinfo.number end
		t:add(f.request_in, req.frame):set_generated()
		t:add(f.response_time, since(pinfo, req.time)):set_generated()
	end
end

-- 4.2. A response with ABORT carries the reason as text.
local function dissect_data(p, t, h, pinfo)
	local kind = bit.band(h.flags, KIND_MASK)
	local whole = h.payload_len == h.msg_len
	if h.offset + h.payload_len > h.msg_len or (h.payload_len == 0 and h.msg_len ~= 0) then
		t:add_proto_expert_info(e.fragment)
	end
	if not whole then
		t:add(f.fragment_of, h.seq):set_generated():append_text(string.format(
			" (bytes %d..%d of %d)", h.offset, h.offset + h.payload_len - 1, h.msg_len))
	end
	-- A compressed message starts with its original length (4.2).
	local codec = bit.rshift(bit.band(h.flags, FLAG_CODEC), 4)
	local body = p
	if codec ~= 0 and h.offset == 0 and p:len() >= 4 then
		t:add_le(f.orig_len, p(0, 4))
		body = p:len() > 4 and p(4) or nil
	end
	if body and body:len() > 0 then
		if bit.band(h.flags, FLAG_ABORT) ~= 0 and codec == 0 then
			t:add(f.abort_reason, body)
		else
			t:add(f.payload, body)
		end
	end
	link_request(t, h, pinfo, kind)
	local info = string.format("%s seq=%s tag=%s", KIND_NAMES[kind], tostring(h.seq), tostring(h.tag))
	if kind == 2 or bit.band(h.flags, FLAG_CANCEL) ~= 0 then
		info = info .. " ref=" .. tostring(h.ref)
	end
	if bit.band(h.flags, FLAG_ABORT) ~= 0 then info = info .. " ABORT" end
	if bit.band(h.flags, FLAG_CANCEL) ~= 0 then info = info .. " CANCEL" end
	if codec ~= 0 then info = info .. " " .. CODEC_NAMES[codec] end
	if bit.band(h.flags, FLAG_STREAM) ~= 0 then
		-- A one-way STREAM message is a chunk (ref: its number) or a control record.
		info = info .. " STREAM"
		if kind == 3 then
			info = info .. (h.ref == UInt64(0) and " control" or " chunk=" .. tostring(h.ref))
		end
	end
	if whole then
		return info .. " len=" .. h.msg_len
	end
	return info .. string.format(" frag %d+%d/%d", h.offset, h.payload_len, h.msg_len)
end

-- 4.8: a DATA fragment whose bytes the receiver pulls with RDMA READ; the
-- fragment it describes is checked as DATA's payload is.
local function dissect_rdesc(p, t, h, pinfo)
	if h.payload_len ~= RDESC_LEN then
		t:add_proto_expert_info(e.payload, "An RDESC payload is 16 bytes (EPAYLOAD)")
		return "(not a descriptor)"
	end
	t:add_le(f.rdesc_addr, p(0, 8))
	t:add_le(f.rdesc_rkey, p(8, 4))
	t:add_le(f.rdesc_len, p(12, 4))
	local d = {}   -- the header as DATA's, with the described fragment's length
	for k, v in pairs(h) do d[k] = v end
	d.payload_len = p(12, 4):le_uint()
	return dissect_data(p(0, 0), t, d, pinfo) .. string.format(" rkey=0x%x", p(8, 4):le_uint())
end

-- 4.3, with the decoder's range rules.
local function dissect_ack(p, t)
	if p:len() < 16 then
		body_error(t, "ACK payload shorter than 16 bytes")
		return "(short)"
	end
	local cum = p(0, 8):le_uint64()
	local n = p(8, 4):le_uint()
	t:add_le(f.ack_cum, p(0, 8))
	local nt = t:add_le(f.ack_nranges, p(8, 4))
	t:add_le(f.ack_reserved, p(12, 4))
	if n > SACK_MAX then
		body_error(nt, "more than 64 ranges")
		return "cum=" .. tostring(cum) .. " (bad)"
	end
	if p:len() < 16 + 16 * n then
		body_error(nt, "payload shorter than its ranges")
		return "cum=" .. tostring(cum) .. " (short)"
	end
	local last, ranges = cum, {}
	for i = 0, n - 1 do
		local r = p(16 + 16 * i, 16)
		local s, en = r(0, 8):le_uint64(), r(8, 8):le_uint64()
		local rt = t:add(f.ack_range, r)
		rt:append_text(string.format(" %d: %s..%s", i, tostring(s), tostring(en)))
		rt:add_le(f.ack_start, r(0, 8))
		rt:add_le(f.ack_end, r(8, 8))
		-- start >= last + 2, written as a difference so that it cannot wrap.
		if s <= last or s - last < UInt64(2) then
			body_error(rt, "range does not start 2 or more above the previous one")
		end
		if en < s then body_error(rt, "range ends before it starts") end
		last = en
		ranges[#ranges + 1] = tostring(s) .. ".." .. tostring(en)
	end
	if p:len() > 16 + 16 * n then t:add(f.trailing, p(16 + 16 * n)) end
	local info = "cum=" .. tostring(cum)
	if n > 0 then info = info .. " sack=" .. table.concat(ranges, ",") end
	return info
end

-- 4.4. A PONG echoes its PING's payload: the first pass remembers each PING
-- by stream and timestamp so that the PONG can point back at it.
local function dissect_ping(p, t, h, pinfo)
	if p:len() < 8 then
		-- A PING of any length is answered; a PONG under 8 bytes is ignored.
		if h.type == T.PONG then t:add_expert_info(expert.group.PROTOCOL, expert.severity.NOTE,
			"PONG shorter than 8 bytes: its receiver ignores it") end
		if p:len() > 0 then t:add(f.payload, p()) end
		return ""
	end
	local ts = p(0, 8):le_uint64()
	t:add_le(f.timestamp_ns, p(0, 8))
	if p:len() > 8 then t:add(f.trailing, p(8)) end
	local _, key = stream_state(pinfo)
	local id = key .. "/" .. tostring(ts)
	if h.type == T.PING then
		if not pinfo.visited then pings[id] = { frame = pinfo.number, time = pinfo.abs_ts } end
	elseif pings[id] then
		t:add(f.ping_frame, pings[id].frame):set_generated()
		t:add(f.rtt, since(pinfo, pings[id].time)):set_generated()
	end
	return "t=" .. tostring(ts)
end

-- 4.5. Fewer than 4 bytes mean ML_EPROTO without a reason.
local function dissect_close(p, t, h, pinfo)
	t:add_proto_expert_info(e.close)
	if p:len() < 4 then return "ML_EPROTO (no status)" end
	local status = p(0, 4):le_int()
	t:add_le(f.close_status, p(0, 4))
	local reason = ""
	if p:len() > 4 then
		reason = p(4):string(ENC_UTF_8)
		t:add(f.close_reason, p(4), reason)
	end
	return string.format("%s (%d) %s", STATUS_NAMES[status] or "?", status, reason)
end

-- 4.6. The acceptor's challenge (nonce, MAC, protection chosen) or the
-- connector's proof (MAC): told apart by who sent HELLO on this stream, else
-- by length. With a protection, the connector seals what follows its proof.
local function dissect_auth(p, t, h, pinfo)
	local st = stream_state(pinfo)
	local challenge
	if st.connector then
		challenge = st.connector ~= endpoint(pinfo)
	else
		challenge = p:len() >= AUTH_CHALLENGE
	end
	local role = challenge and "challenge" or "proof"
	local need = challenge and AUTH_CHALLENGE or AUTH_PROOF
	t:add(f.auth_role, challenge and "challenge (acceptor)" or "proof (connector)"):set_generated()
	if p:len() < need then
		body_error(t, string.format("AUTH %s shorter than %d bytes", role, need))
		return role
	end
	if challenge then
		t:add(f.auth_nonce, p(0, 16))
		t:add(f.auth_mac, p(16, 32))
		local protect = p(48, 1):uint()
		local pt = t:add(f.auth_protect, p(48, 1))
		if protect > 2 then body_error(pt, "protection above 2 (the connector fails the path: ML_EAUTH)") end
		t:add(f.auth_reserved, p(49, 3))
		if not pinfo.visited then st.protect = protect end
		role = role .. " protect=" .. (PROTECT_NAMES[protect] or protect)
	else
		t:add(f.auth_mac, p(0, 32))
		if (st.protect or 0) > 0 and not pinfo.visited then
			st.sealed_from[endpoint(pinfo)] = pinfo.number
		end
	end
	if p:len() > need then t:add(f.trailing, p(need)) end
	return role
end

-- Frame types (section 4; names in TYPE_NAMES): payload dissector and payload
-- limit (check 10; DATA's is the receiver's setting, which no frame tells).
local TYPES = {
	[T.HELLO] = { body = dissect_hello, max = CTRL_MAX },
	[T.HELLO_ACK] = { body = dissect_hello, max = CTRL_MAX },
	[T.DATA] = { body = dissect_data },
	[T.ACK] = { body = dissect_ack, max = CTRL_MAX },
	[T.PING] = { body = dissect_ping, max = CTRL_MAX },
	[T.PONG] = { body = dissect_ping, max = CTRL_MAX },
	[T.CLOSE] = { body = dissect_close, max = CTRL_MAX },
	[T.AUTH] = { body = dissect_auth, max = CTRL_MAX },
	[T.RDESC] = { body = dissect_rdesc },
}

---------------------------------------------------------------------------
-- One frame.

-- Several frames often share a segment: the first sets the Info column, the
-- others append to it. pinfo.private lives as long as one dissection of the
-- packet, so a packet dissected again (Wireshark does) starts afresh.
local function add_info(pinfo, text)
	if not pinfo.private.msglayer_info then
		pinfo.private.msglayer_info = "set"
		pinfo.cols.info:set(text)
	else
		pinfo.cols.info:append(" | " .. text)
	end
end

-- Bytes that are not a frame (a capture that starts inside a path, a stray
-- client) have no length to read: they are one undecodable piece up to the
-- next magic in the segment, where decoding picks up again.
local function junk_len(tvb, offset)
	local next_magic = tvb:raw(offset):find(MAGIC, 2, true)
	return next_magic and next_magic - 1 or tvb:len() - offset
end

-- The protection of what the sender of this packet sends from now on (5.2),
-- and the stream's state; nil before its sealed records start.
local function sealed_mode(pinfo)
	local st = stream_state(pinfo)
	local from = st.sealed_from[endpoint(pinfo)]
	if from and pinfo.number >= from then return st.protect, st end
end

-- Where the PDU ends: a frame's header tells (hdr_len + payload_len), a
-- sealed record's its length field. A record never starts with the magic (its
-- length is at most 16384), so the first 4 bytes tell which it is.
local function frame_len(tvb, pinfo, offset)
	if tvb:raw(offset, 4) ~= MAGIC then
		local n = tvb(offset, 4):le_uint()
		if n >= 1 and n <= RECORD_MAX and sealed_mode(pinfo) then return 4 + n + TAG_LEN end
		return junk_len(tvb, offset)
	end
	local hdr_len = tvb(offset + 8, 2):le_uint()
	if hdr_len < HDR_V1 or hdr_len > HDR_MAX then return junk_len(tvb, offset) end
	return hdr_len + tvb(offset + 16, 4):le_uint()
end

local function dissect_frame(tvb, pinfo, tree)
	pinfo.cols.protocol = "msglayer"
	local len = tvb:len()
	local ft = tree:add(ml, tvb())
	if len < PREFIX or tvb:raw(0, 4) ~= MAGIC then
		ft:add_proto_expert_info(e.magic)
		add_info(pinfo, "not a msglayer frame")
		return len
	end
	local h = read_header(tvb)
	local name = TYPE_NAMES[h.type] or ("type " .. h.type)
	ft:append_text(", " .. name)
	local ht = ft:add(tvb(0, math.min(h.hdr_len, len)), "Header")
	if not dissect_header(tvb, ht, h) then
		add_info(pinfo, name .. " (bad header length)")
		return len
	end
	ht:set_len(h.hdr_len)

	local ty = TYPES[h.type]
	local p = tvb(h.hdr_len, h.payload_len)   -- an empty range when payload_len is 0
	local bt = ft:add(p, name .. " payload (" .. h.payload_len .. " bytes)")
	if ty and ty.max and h.payload_len > ty.max then bt:add_proto_expert_info(e.payload) end
	local info = ty and ty.body(p, bt, h, pinfo) or ""
	add_info(pinfo, name .. (info ~= "" and " " .. info or ""))
	return len
end

---------------------------------------------------------------------------
-- Sealed records (5.2). An encrypted body cannot be read without the keys. A
-- mac record's body is frame bytes in the clear, cut anywhere: the first pass
-- joins the bodies of each direction and cuts frames out of them, keeping per
-- record the frames it completed, which every pass then dissects from a tvb
-- of their own.

local function le_at(str, i, n)
	local v = 0
	for k = n - 1, 0, -1 do v = v * 256 + str:byte(i + k) end
	return v
end

local function frames_completed(st, pinfo, key, body)
	if pinfo.visited then return record_frames_of[key] or {} end
	local src = endpoint(pinfo)
	local buf, out = (st.plain[src] or "") .. body, {}
	while #buf >= PREFIX do
		if buf:sub(1, 4) ~= MAGIC then
			local at = buf:find(MAGIC, 2, true)   -- out of step: skip to a frame
			buf = at and buf:sub(at) or ""
		else
			local hdr_len = le_at(buf, 9, 2)
			local n = hdr_len + le_at(buf, 17, 4)
			if hdr_len < HDR_V1 or hdr_len > HDR_MAX then
				out[#out + 1], buf = buf, ""          -- shown as a bad header
			elseif #buf < n then
				break
			else
				out[#out + 1], buf = buf:sub(1, n), buf:sub(n + 1)
			end
		end
	end
	st.plain[src] = buf
	record_frames_of[key] = out
	return out
end

local function dissect_record(tvb, pinfo, tree, st, mode)
	local n = tvb(0, 4):le_uint()
	local rt = tree:add(f.record, tvb())
	rt:append_text(string.format(" (%d bytes, %s)", n, PROTECT_NAMES[mode] or mode))
	rt:add_le(f.record_len, tvb(0, 4))
	rt:add(mode == 1 and f.record_body or f.record_ciphertext, tvb(4, n))
	rt:add(f.record_tag, tvb(4 + n, TAG_LEN))
	if mode ~= 1 then
		add_info(pinfo, "sealed record (" .. n .. " bytes, encrypted)")
		return tvb:len()
	end
	-- Records of one packet are numbered in the order of this dissection,
	-- which every pass repeats.
	local idx = (tonumber(pinfo.private.msglayer_records) or 0) + 1
	pinfo.private.msglayer_records = tostring(idx)
	for i, bytes in ipairs(frames_completed(st, pinfo, pinfo.number .. "/" .. idx, tvb:raw(4, n))) do
		dissect_frame(ByteArray.new(bytes, true):tvb(string.format("Frame %d of record %d", i, idx)),
			pinfo, tree)
	end
	return tvb:len()
end

local function dissect_pdu(tvb, pinfo, tree)
	if tvb:len() >= 4 and tvb:raw(0, 4) ~= MAGIC then
		local mode, st = sealed_mode(pinfo)
		local n = tvb(0, 4):le_uint()
		if mode and n >= 1 and n <= RECORD_MAX and tvb:len() == 4 + n + TAG_LEN then
			return dissect_record(tvb, pinfo, tree, st, mode)
		end
	end
	return dissect_frame(tvb, pinfo, tree)
end

function ml.dissector(tvb, pinfo, tree)
	return dissect_tcp_pdus(tvb, tree, PREFIX, frame_len, dissect_pdu)
end

---------------------------------------------------------------------------
-- Registration: the TCP ports of the preference, plus a heuristic on the
-- magic so that any port works (paths listen where they are told to).

ml.prefs.ports = Pref.range("TCP ports", "7400",
	"TCP ports decoded as msglayer (any other port: recognised by the MLFS magic)", 65535)

local tcp_port = DissectorTable.get("tcp.port")
local registered_ports = ""
local function register_ports()
	if registered_ports ~= "" then tcp_port:remove(registered_ports, ml) end
	registered_ports = ml.prefs.ports
	if registered_ports ~= "" then tcp_port:add(registered_ports, ml) end
end
ml.prefs_changed = register_ports
register_ports()

-- A path's first frame (HELLO, or the acceptor's AUTH, HELLO_ACK or CLOSE)
-- starts its stream: on the magic, the whole TCP conversation becomes
-- msglayer, so later segments that start inside a frame are decoded too.
local function heuristic(tvb, pinfo, tree)
	if tvb:len() < 4 or tvb:raw(0, 4) ~= MAGIC then return false end
	pinfo.conversation = ml
	ml.dissector(tvb, pinfo, tree)
	return true
end
ml:register_heuristic("tcp", heuristic)
