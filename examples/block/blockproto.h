/*
 * blockproto.h - the block service's requests and responses (version 1).
 *
 * A block request is one msglayer request; its message tag is the client's
 * tag for the I/O (any number in flight, answered in any order). The payload
 * is a request header, then the data of a WRITE. The response is a response
 * header, then the data of a READ. Every integer is little-endian on the
 * wire. doc/ml-blockd.md describes the format and its rules; the decoders
 * here enforce them and are total: any bytes give a header or a status.
 */
#ifndef BLOCKPROTO_H
#define BLOCKPROTO_H

#include <stddef.h>
#include <stdint.h>

#define BLK_PROTO_VERSION 1
#define BLK_REQ_MAGIC 0x4b424c4du /* bytes "MLBK" */
#define BLK_RSP_MAGIC 0x52424c4du /* bytes "MLBR" */
#define BLK_REQ_HDR_LEN 32        /* version 1's request header */
#define BLK_RSP_HDR_LEN 24        /* version 1's response header */
#define BLK_HDR_LEN_MAX 1024      /* a longer header (a newer sender's) is refused */

enum blk_op {
	BLK_READ = 1,    /* length bytes from offset come back in the response */
	BLK_WRITE = 2,   /* the payload (length bytes) goes to offset */
	BLK_FLUSH = 3,   /* every write answered before is durable (offset, length 0) */
	BLK_DISCARD = 4, /* the range reads as zeros afterwards; space may be freed */
};

enum blk_flag {
	BLK_F_SYNC = 1, /* WRITE, DISCARD: durable (fdatasync) before the response */
};
#define BLK_F_KNOWN BLK_F_SYNC

/* Response statuses; 0 is success. Values are part of the protocol. */
enum blk_status {
	BLK_S_OK = 0,
	BLK_S_INVAL = 1,       /* malformed request: magic, header or payload length, op */
	BLK_S_VERSION = 2,     /* request version not spoken (the response says which is) */
	BLK_S_NOVOL = 3,       /* no volume with that id */
	BLK_S_RANGE = 4,       /* not aligned to block_size, past the end, or over max_io */
	BLK_S_RDONLY = 5,      /* WRITE or DISCARD on a read-only volume */
	BLK_S_IO = 6,          /* the system call failed: sys_errno says how */
	BLK_S_NOMEM = 7,       /* the backend has no buffer for it now */
	BLK_S_SHUTDOWN = 8,    /* the backend is stopping: send it to another one */
	BLK_S_UNSUPPORTED = 9, /* a flag the backend does not know */
};

struct blk_req {
	uint8_t version;
	uint8_t op;       /* enum blk_op */
	uint16_t hdr_len; /* bytes of header before the payload */
	uint32_t volume;  /* the volume_id attribute of the volume's record */
	uint32_t flags;   /* enum blk_flag */
	uint32_t length;  /* bytes read, written or discarded */
	uint64_t offset;  /* byte offset in the volume */
};

struct blk_rsp {
	uint8_t version;
	uint8_t op;         /* the request's op (0 if it could not be read) */
	uint16_t hdr_len;
	uint32_t status;    /* enum blk_status */
	uint32_t sys_errno; /* with BLK_S_IO: the errno of the failed call */
	uint32_t length;    /* bytes of data after the header (READ) */
};

/* Write h (version, hdr_len and magic are set here) into out. */
void blk_req_encode(const struct blk_req *h, uint8_t out[BLK_REQ_HDR_LEN]);
void blk_rsp_encode(const struct blk_rsp *h, uint8_t out[BLK_RSP_HDR_LEN]);

/* Read a request message of len bytes. Returns BLK_S_OK with *h filled and
 * *payload at the WRITE data (NULL otherwise), or the status to answer
 * with; h->op is set whenever the header got that far. */
int blk_req_decode(const void *msg, size_t len, struct blk_req *h, const void **payload);
/* Read a response of len bytes. Returns 0 with *h filled and *data at the
 * h->length data bytes, or -1 with why set to a fixed text. */
int blk_rsp_decode(const void *msg, size_t len, struct blk_rsp *h, const void **data,
		   const char **why);

const char *blk_op_name(int op);         /* "read", "write", "flush", "discard", "?" */
const char *blk_status_name(int status); /* "ok", "malformed request", ... */

#endif
