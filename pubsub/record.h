/*
 * record.h - resource records and the discovery message codec
 * (doc/discovery.md, "Wire format", is the specification).
 *
 * Pure functions: no I/O. The decoder is total: any bytes give a message or
 * one specific error, and it allocates at most a few times the input size.
 */
#ifndef MLPS_RECORD_H
#define MLPS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "mlpubsub.h"

#define MLPS_MAGIC 0x53504c4du /* bytes "MLPS" on the wire */
#define MLPS_MSG_VERSION 1     /* written by this code; any version >= 1 is read */
#define MLPS_HDR_LEN 16        /* header written by version 1 */
#define MLPS_HDR_MAX 1024      /* longest header accepted */
#define MLPS_MSG_MAX 65536     /* longest message sent or accepted */

enum mlps_msg_type {
	MLPS_MSG_PUBLISH = 1,  /* a full record: publish, update or re-announce */
	MLPS_MSG_WITHDRAW = 2, /* name, node, incarnation, version */
	MLPS_MSG_BYE = 3,      /* node, incarnation: the handle is gone, drop all of it */
};

/* TLV types. Bit 15 marks a TLV a reader must understand: an unknown one
 * makes the message invalid; other unknown TLVs are skipped. */
#define MLPS_TLV_CRITICAL 0x8000u
enum mlps_tlv_type {
	MLPS_TLV_NAME = 1,        /* resource name bytes */
	MLPS_TLV_NODE = 2,        /* u32 publisher node id */
	MLPS_TLV_INCARNATION = 3, /* u64 publisher handle incarnation */
	MLPS_TLV_VERSION = 4,     /* u64 publisher's version counter */
	MLPS_TLV_ATTR = 5,        /* u8 type, u8 name_len, name, value */
	MLPS_TLV_ENDPOINT = 6,    /* endpoint URL bytes */
	MLPS_TLV_ML_NODE = 7,     /* u32 publisher's message-layer node id (PUBLISH; optional) */
};

/* Decode and validation errors (negative); mlps_decode_strerror() texts. */
enum mlps_decode_err {
	MLPS_DE_SHORT = -1,        /* shorter than the header */
	MLPS_DE_MAGIC = -2,        /* not a discovery message */
	MLPS_DE_VERSION = -3,      /* version 0 */
	MLPS_DE_TYPE = -4,         /* unknown message type (a newer sender: skip quietly) */
	MLPS_DE_HDRLEN = -5,       /* header length out of range or past the end */
	MLPS_DE_LENGTH = -6,       /* header + body length is not the message length */
	MLPS_DE_TOOBIG = -7,       /* longer than MLPS_MSG_MAX */
	MLPS_DE_TLV_TRUNC = -8,    /* a TLV runs past the end of the body */
	MLPS_DE_TLV_LEN = -9,      /* wrong length for a fixed-size TLV */
	MLPS_DE_TLV_DUP = -10,     /* a single-valued TLV appears twice */
	MLPS_DE_CRITICAL = -11,    /* unknown TLV marked critical */
	MLPS_DE_MISSING = -12,     /* a required TLV is missing */
	MLPS_DE_NAME = -13,        /* invalid resource name */
	MLPS_DE_ATTR = -14,        /* malformed attribute TLV */
	MLPS_DE_ATTR_NAME = -15,   /* invalid attribute name */
	MLPS_DE_ATTR_DUP = -16,    /* two attributes with one name */
	MLPS_DE_ATTR_MANY = -17,   /* more than MLPS_ATTRS_MAX attributes */
	MLPS_DE_VALUE = -18,       /* invalid attribute value */
	MLPS_DE_ENDPOINT = -19,    /* invalid endpoint */
	MLPS_DE_ENDPOINT_MANY = -20, /* more than MLPS_ENDPOINTS_MAX endpoints */
	MLPS_DE_NOMEM = -21,
	MLPS_DE_NODE = -22,        /* node id 0 */
};
const char *mlps_decode_strerror(int err);

/* An attribute as the validators and the builder see it: lengths, no NULs. */
struct mlps_attr_in {
	const char *name;
	size_t name_len;
	int type;
	uint64_t u;        /* U64, I64 (two's complement), BOOL (0/1) */
	const void *data;  /* STR, BYTES */
	size_t len;
};

struct mlps_rec_in {
	const char *name;
	size_t name_len;
	uint32_t node_id, pid, ml_node_id;
	uint64_t incarnation, version;
	unsigned n_attrs, n_endpoints; /* before the arrays: zeroing up to attrs clears them */
	struct mlps_attr_in attrs[MLPS_ATTRS_MAX];
	const char *endpoints[MLPS_ENDPOINTS_MAX];
	size_t endpoint_lens[MLPS_ENDPOINTS_MAX];
};

/* Validators: 0 or an MLPS_DE_* code; they also set mlps_last_error(). */
int mlps_name_check(const char *name, size_t len);
int mlps_attr_name_check(const char *name, size_t len);
int mlps_endpoint_check(const char *url, size_t len);
int mlps_rec_in_check(const struct mlps_rec_in *in);

/* Fill in from the public arguments (no copy; checks the counts and the
 * attribute types). 0 or an MLPS_DE_* code. */
int mlps_rec_in_from_api(struct mlps_rec_in *in, const char *name, const struct mlps_attr *attrs,
			 unsigned n_attrs, const char *const *endpoints, unsigned n_endpoints);

/* One allocation holding the record and copies of all it points to (free()
 * it, or mlps_rec_free). in must have passed mlps_rec_in_check. NULL: ENOMEM. */
struct mlps_record *mlps_rec_build(const struct mlps_rec_in *in);
struct mlps_record *mlps_rec_dup(const struct mlps_record *rec);
void mlps_rec_in_from_rec(struct mlps_rec_in *in, const struct mlps_record *rec);
void mlps_rec_free(struct mlps_record *rec);
/* 1 if both hold the same name, attributes and endpoints (ids and version aside). */
int mlps_rec_same_content(const struct mlps_record *a, const struct mlps_record *b);

/* Encode a message of type (PUBLISH: the whole record; WITHDRAW: name, node,
 * incarnation, version; BYE: node, incarnation) into a malloc'd buffer.
 * 0, ML_ETOOBIG (over MLPS_MSG_MAX) or ML_ENOMEM. */
int mlps_msg_encode(int type, const struct mlps_record *rec, uint8_t **out, size_t *len);
/* Decode one message. On success *type and *out (a record to free; BYE:
 * empty name) are set; else an MLPS_DE_* code and nothing to free. */
int mlps_msg_decode(const void *buf, size_t len, int *type, struct mlps_record **out);

/* Set the thread's mlps_last_error() text (printf format). */
void mlps_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
