/* record.c - resource records: validation, one-allocation copies, and the
 * versioned TLV codec of discovery messages (little-endian). */
#include <stdlib.h>
#include <string.h>

#include "msglayer.h"
#include "record.h"

/* ---- validation ---------------------------------------------------------- */

int mlps_name_check(const char *name, size_t len)
{
	if (len == 0 || len > MLPS_NAME_MAX) {
		mlps_set_error("resource name: %zu bytes (1..%d allowed)", len, MLPS_NAME_MAX);
		return MLPS_DE_NAME;
	}
	size_t comp = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/') {
			if (comp == 0) {
				mlps_set_error("resource name: empty component at byte %zu", i);
				return MLPS_DE_NAME;
			}
			comp = 0;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '*' || c == '?') {
			mlps_set_error("resource name: byte %zu (0x%02x) is not printable ASCII "
				       "other than '*', '?' and space", i, c);
			return MLPS_DE_NAME;
		}
		comp++;
	}
	if (comp == 0) {
		mlps_set_error("resource name: ends with '/'");
		return MLPS_DE_NAME;
	}
	return 0;
}

int mlps_attr_name_check(const char *name, size_t len)
{
	if (len == 0 || len > MLPS_ATTR_NAME_MAX) {
		mlps_set_error("attribute name: %zu bytes (1..%d allowed)", len, MLPS_ATTR_NAME_MAX);
		return MLPS_DE_ATTR_NAME;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		int other = (c >= '0' && c <= '9') || c == '.' || c == '-';
		if (!alpha && (i == 0 || !other)) {
			mlps_set_error("attribute name '%.*s': byte %zu is not allowed "
				       "([A-Za-z_] then [A-Za-z0-9_.-])", (int)len, name, i);
			return MLPS_DE_ATTR_NAME;
		}
	}
	return 0;
}

int mlps_endpoint_check(const char *url, size_t len)
{
	if (len == 0 || len > MLPS_ENDPOINT_MAX) {
		mlps_set_error("endpoint: %zu bytes (1..%d allowed)", len, MLPS_ENDPOINT_MAX);
		return MLPS_DE_ENDPOINT;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c < 0x21 || c > 0x7e) {
			mlps_set_error("endpoint: byte %zu (0x%02x) is not printable ASCII", i, c);
			return MLPS_DE_ENDPOINT;
		}
	}
	const char *sep = memmem(url, len, "://", 3);
	if (!sep || sep == url || sep + 3 == url + len) {
		mlps_set_error("endpoint '%.*s': not scheme://address", (int)len, url);
		return MLPS_DE_ENDPOINT;
	}
	return 0;
}

static int value_check(const struct mlps_attr_in *a)
{
	switch (a->type) {
	case MLPS_U64:
	case MLPS_I64:
		return 0;
	case MLPS_BOOL:
		if (a->u > 1) {
			mlps_set_error("attribute '%.*s': bool value %llu", (int)a->name_len, a->name,
				       (unsigned long long)a->u);
			return MLPS_DE_VALUE;
		}
		return 0;
	case MLPS_STR:
	case MLPS_BYTES:
		if (a->len > MLPS_VALUE_MAX) {
			mlps_set_error("attribute '%.*s': value of %zu bytes (%d at most)",
				       (int)a->name_len, a->name, a->len, MLPS_VALUE_MAX);
			return MLPS_DE_VALUE;
		}
		if (a->len && !a->data) {
			mlps_set_error("attribute '%.*s': NULL value", (int)a->name_len, a->name);
			return MLPS_DE_VALUE;
		}
		if (a->type == MLPS_STR) {
			const unsigned char *p = a->data;
			for (size_t i = 0; i < a->len; i++)
				if (p[i] < 0x20 || p[i] == 0x7f) {
					mlps_set_error("attribute '%.*s': control character in string "
						       "at byte %zu", (int)a->name_len, a->name, i);
					return MLPS_DE_VALUE;
				}
		}
		return 0;
	default:
		mlps_set_error("attribute '%.*s': unknown type %d", (int)a->name_len, a->name, a->type);
		return MLPS_DE_ATTR;
	}
}

int mlps_rec_in_check(const struct mlps_rec_in *in)
{
	int rc;
	if ((rc = mlps_name_check(in->name, in->name_len)))
		return rc;
	if (in->n_attrs > MLPS_ATTRS_MAX) {
		mlps_set_error("%u attributes (%d at most)", in->n_attrs, MLPS_ATTRS_MAX);
		return MLPS_DE_ATTR_MANY;
	}
	for (unsigned i = 0; i < in->n_attrs; i++) {
		const struct mlps_attr_in *a = &in->attrs[i];
		if ((rc = mlps_attr_name_check(a->name, a->name_len)))
			return rc;
		if ((rc = value_check(a)))
			return rc;
		for (unsigned j = 0; j < i; j++)
			if (in->attrs[j].name_len == a->name_len &&
			    !memcmp(in->attrs[j].name, a->name, a->name_len)) {
				mlps_set_error("attribute '%.*s' given twice", (int)a->name_len, a->name);
				return MLPS_DE_ATTR_DUP;
			}
	}
	if (in->n_endpoints > MLPS_ENDPOINTS_MAX) {
		mlps_set_error("%u endpoints (%d at most)", in->n_endpoints, MLPS_ENDPOINTS_MAX);
		return MLPS_DE_ENDPOINT_MANY;
	}
	for (unsigned i = 0; i < in->n_endpoints; i++)
		if ((rc = mlps_endpoint_check(in->endpoints[i], in->endpoint_lens[i])))
			return rc;
	return 0;
}

int mlps_rec_in_from_api(struct mlps_rec_in *in, const char *name, const struct mlps_attr *attrs,
			 unsigned n_attrs, const char *const *endpoints, unsigned n_endpoints)
{
	memset(in, 0, offsetof(struct mlps_rec_in, attrs));
	if (!name) {
		mlps_set_error("resource name: NULL");
		return MLPS_DE_NAME;
	}
	in->name = name;
	in->name_len = strnlen(name, MLPS_NAME_MAX + 1);
	if (n_attrs > MLPS_ATTRS_MAX || (n_attrs && !attrs)) {
		mlps_set_error("%u attributes (%d at most, array not NULL)", n_attrs, MLPS_ATTRS_MAX);
		return MLPS_DE_ATTR_MANY;
	}
	if (n_endpoints > MLPS_ENDPOINTS_MAX || (n_endpoints && !endpoints)) {
		mlps_set_error("%u endpoints (%d at most, array not NULL)", n_endpoints,
			       MLPS_ENDPOINTS_MAX);
		return MLPS_DE_ENDPOINT_MANY;
	}
	in->n_attrs = n_attrs;
	for (unsigned i = 0; i < n_attrs; i++) {
		const struct mlps_attr *a = &attrs[i];
		struct mlps_attr_in *o = &in->attrs[i];
		memset(o, 0, sizeof(*o));
		if (!a->name) {
			mlps_set_error("attribute %u: NULL name", i);
			return MLPS_DE_ATTR_NAME;
		}
		o->name = a->name;
		o->name_len = strnlen(a->name, MLPS_ATTR_NAME_MAX + 1);
		o->type = a->type;
		switch (a->type) {
		case MLPS_U64: o->u = a->v.u64; break;
		case MLPS_I64: o->u = (uint64_t)a->v.i64; break;
		case MLPS_BOOL: o->u = (uint64_t)(unsigned)a->v.b; break;
		case MLPS_STR:
			if (!a->v.str) {
				mlps_set_error("attribute '%.*s': NULL string", (int)o->name_len, o->name);
				return MLPS_DE_VALUE;
			}
			o->data = a->v.str;
			o->len = strnlen(a->v.str, MLPS_VALUE_MAX + 1);
			break;
		case MLPS_BYTES:
			o->data = a->v.bytes.data;
			o->len = a->v.bytes.len;
			break;
		default:
			mlps_set_error("attribute '%.*s': unknown type %d", (int)o->name_len, o->name,
				       a->type);
			return MLPS_DE_ATTR;
		}
	}
	in->n_endpoints = n_endpoints;
	for (unsigned i = 0; i < n_endpoints; i++) {
		if (!endpoints[i]) {
			mlps_set_error("endpoint %u: NULL", i);
			return MLPS_DE_ENDPOINT;
		}
		in->endpoints[i] = endpoints[i];
		in->endpoint_lens[i] = strnlen(endpoints[i], MLPS_ENDPOINT_MAX + 1);
	}
	return 0;
}

/* ---- one-allocation records ------------------------------------------------- */

struct mlps_record *mlps_rec_build(const struct mlps_rec_in *in)
{
	/* [record][attrs][endpoint pointers][strings, each NUL-terminated] */
	size_t fixed = sizeof(struct mlps_record) + in->n_attrs * sizeof(struct mlps_attr) +
		       in->n_endpoints * sizeof(char *);
	size_t size = fixed + in->name_len + 1;
	for (unsigned i = 0; i < in->n_attrs; i++)
		size += in->attrs[i].name_len + 1 + in->attrs[i].len + 1;
	for (unsigned i = 0; i < in->n_endpoints; i++)
		size += in->endpoint_lens[i] + 1;

	char *mem = malloc(size);
	if (!mem)
		return NULL;
	struct mlps_record *r = (struct mlps_record *)mem;
	struct mlps_attr *attrs = (struct mlps_attr *)(r + 1);
	const char **eps = (const char **)(attrs + in->n_attrs);
	char *s = mem + fixed;

#define COPY_STR(dst, src, n)                                                                   \
	do {                                                                                    \
		if (n)                                                                          \
			memcpy(s, (src), (n));                                                  \
		s[(n)] = '\0';                                                                  \
		(dst) = s;                                                                      \
		s += (n) + 1;                                                                   \
	} while (0)

	memset(r, 0, sizeof(*r));
	COPY_STR(r->name, in->name, in->name_len);
	r->node_id = in->node_id;
	r->pid = in->pid;
	r->ml_node_id = in->ml_node_id;
	r->incarnation = in->incarnation;
	r->version = in->version;
	r->n_attrs = in->n_attrs;
	r->attrs = in->n_attrs ? attrs : NULL;
	for (unsigned i = 0; i < in->n_attrs; i++) {
		const struct mlps_attr_in *a = &in->attrs[i];
		memset(&attrs[i], 0, sizeof(attrs[i]));
		COPY_STR(attrs[i].name, a->name, a->name_len);
		attrs[i].type = a->type;
		switch (a->type) {
		case MLPS_U64: attrs[i].v.u64 = a->u; break;
		case MLPS_I64: attrs[i].v.i64 = (int64_t)a->u; break;
		case MLPS_BOOL: attrs[i].v.b = (int)a->u; break;
		case MLPS_STR: COPY_STR(attrs[i].v.str, a->data, a->len); break;
		case MLPS_BYTES: {
			/* NUL-terminated too, so that text in bytes prints safely */
			const char *p;
			COPY_STR(p, a->data, a->len);
			attrs[i].v.bytes.data = p;
			attrs[i].v.bytes.len = a->len;
			break;
		}
		}
	}
	r->n_endpoints = in->n_endpoints;
	r->endpoints = in->n_endpoints ? (const char *const *)eps : NULL;
	for (unsigned i = 0; i < in->n_endpoints; i++)
		COPY_STR(eps[i], in->endpoints[i], in->endpoint_lens[i]);
#undef COPY_STR
	return r;
}

void mlps_rec_in_from_rec(struct mlps_rec_in *in, const struct mlps_record *rec)
{
	memset(in, 0, offsetof(struct mlps_rec_in, attrs));
	in->name = rec->name;
	in->name_len = strlen(rec->name);
	in->node_id = rec->node_id;
	in->pid = rec->pid;
	in->ml_node_id = rec->ml_node_id;
	in->incarnation = rec->incarnation;
	in->version = rec->version;
	in->n_attrs = rec->n_attrs;
	for (unsigned i = 0; i < rec->n_attrs; i++) {
		const struct mlps_attr *a = &rec->attrs[i];
		struct mlps_attr_in *o = &in->attrs[i];
		memset(o, 0, sizeof(*o));
		o->name = a->name;
		o->name_len = strlen(a->name);
		o->type = a->type;
		switch (a->type) {
		case MLPS_U64: o->u = a->v.u64; break;
		case MLPS_I64: o->u = (uint64_t)a->v.i64; break;
		case MLPS_BOOL: o->u = (uint64_t)(unsigned)a->v.b; break;
		case MLPS_STR: o->data = a->v.str; o->len = strlen(a->v.str); break;
		case MLPS_BYTES: o->data = a->v.bytes.data; o->len = a->v.bytes.len; break;
		}
	}
	in->n_endpoints = rec->n_endpoints;
	for (unsigned i = 0; i < rec->n_endpoints; i++) {
		in->endpoints[i] = rec->endpoints[i];
		in->endpoint_lens[i] = strlen(rec->endpoints[i]);
	}
}

struct mlps_record *mlps_rec_dup(const struct mlps_record *rec)
{
	struct mlps_rec_in in;
	mlps_rec_in_from_rec(&in, rec);
	return mlps_rec_build(&in);
}

void mlps_rec_free(struct mlps_record *rec)
{
	free(rec);
}

static int attr_equal(const struct mlps_attr *a, const struct mlps_attr *b)
{
	if (a->type != b->type || strcmp(a->name, b->name))
		return 0;
	switch (a->type) {
	case MLPS_U64: return a->v.u64 == b->v.u64;
	case MLPS_I64: return a->v.i64 == b->v.i64;
	case MLPS_BOOL: return a->v.b == b->v.b;
	case MLPS_STR: return !strcmp(a->v.str, b->v.str);
	case MLPS_BYTES:
		return a->v.bytes.len == b->v.bytes.len &&
		       !memcmp(a->v.bytes.data, b->v.bytes.data, a->v.bytes.len);
	default: return 0;
	}
}

int mlps_rec_same_content(const struct mlps_record *a, const struct mlps_record *b)
{
	if (strcmp(a->name, b->name) || a->n_attrs != b->n_attrs ||
	    a->n_endpoints != b->n_endpoints)
		return 0;
	for (unsigned i = 0; i < a->n_attrs; i++)
		if (!attr_equal(&a->attrs[i], &b->attrs[i]))
			return 0;
	for (unsigned i = 0; i < a->n_endpoints; i++)
		if (strcmp(a->endpoints[i], b->endpoints[i]))
			return 0;
	return 1;
}

const struct mlps_attr *mlps_record_attr(const struct mlps_record *rec, const char *name)
{
	if (!rec || !name)
		return NULL;
	for (unsigned i = 0; i < rec->n_attrs; i++)
		if (!strcmp(rec->attrs[i].name, name))
			return &rec->attrs[i];
	return NULL;
}

/* ---- codec ------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

struct wbuf {
	uint8_t *p;
	size_t len; /* bytes needed so far (counting pass when p is NULL) */
};

static void tlv(struct wbuf *w, uint16_t type, const void *a, size_t alen, const void *b,
		size_t blen)
{
	if (w->p) {
		put16(w->p + w->len, type);
		put16(w->p + w->len + 2, (uint16_t)(alen + blen));
		if (alen)
			memcpy(w->p + w->len + 4, a, alen);
		if (blen)
			memcpy(w->p + w->len + 4 + alen, b, blen);
	}
	w->len += 4 + alen + blen;
}

static void tlv_u32(struct wbuf *w, uint16_t type, uint32_t v)
{
	uint8_t b[4];
	put32(b, v);
	tlv(w, type, b, 4, NULL, 0);
}

static void tlv_u64(struct wbuf *w, uint16_t type, uint64_t v)
{
	uint8_t b[8];
	put64(b, v);
	tlv(w, type, b, 8, NULL, 0);
}

static void body(struct wbuf *w, int type, const struct mlps_record *r)
{
	if (type != MLPS_MSG_BYE)
		tlv(w, MLPS_TLV_NAME, r->name, strlen(r->name), NULL, 0);
	tlv_u32(w, MLPS_TLV_NODE, r->node_id);
	tlv_u64(w, MLPS_TLV_INCARNATION, r->incarnation);
	if (type == MLPS_MSG_BYE)
		return;
	tlv_u64(w, MLPS_TLV_VERSION, r->version);
	if (type != MLPS_MSG_PUBLISH)
		return;
	if (r->ml_node_id)
		tlv_u32(w, MLPS_TLV_ML_NODE, r->ml_node_id);
	for (unsigned i = 0; i < r->n_attrs; i++) {
		const struct mlps_attr *a = &r->attrs[i];
		uint8_t head[2 + MLPS_ATTR_NAME_MAX + 8];
		size_t nl = strlen(a->name), hl = 2 + nl;
		const void *val = NULL;
		size_t vl = 0;
		head[0] = (uint8_t)a->type;
		head[1] = (uint8_t)nl;
		memcpy(head + 2, a->name, nl);
		switch (a->type) {
		case MLPS_U64: put64(head + hl, a->v.u64); hl += 8; break;
		case MLPS_I64: put64(head + hl, (uint64_t)a->v.i64); hl += 8; break;
		case MLPS_BOOL: head[hl++] = (uint8_t)a->v.b; break;
		case MLPS_STR: val = a->v.str; vl = strlen(a->v.str); break;
		case MLPS_BYTES: val = a->v.bytes.data; vl = a->v.bytes.len; break;
		}
		tlv(w, MLPS_TLV_ATTR, head, hl, val, vl);
	}
	for (unsigned i = 0; i < r->n_endpoints; i++)
		tlv(w, MLPS_TLV_ENDPOINT, r->endpoints[i], strlen(r->endpoints[i]), NULL, 0);
}

int mlps_msg_encode(int type, const struct mlps_record *rec, uint8_t **out, size_t *len)
{
	struct wbuf w = { NULL, 0 };
	body(&w, type, rec); /* counting pass: every TLV is < 64 KiB by the record limits */
	size_t total = MLPS_HDR_LEN + w.len;
	if (total > MLPS_MSG_MAX)
		return ML_ETOOBIG;
	uint8_t *p = malloc(total);
	if (!p)
		return ML_ENOMEM;
	put32(p, MLPS_MAGIC);
	p[4] = MLPS_MSG_VERSION;
	p[5] = (uint8_t)type;
	put16(p + 6, MLPS_HDR_LEN);
	put32(p + 8, (uint32_t)w.len);
	put32(p + 12, 0);
	w.p = p + MLPS_HDR_LEN;
	w.len = 0;
	body(&w, type, rec);
	*out = p;
	*len = total;
	return 0;
}

/* Parse an ATTR TLV value. A type this reader does not know is skipped
 * (returns 1): a newer sender may add attribute types. */
static int attr_parse(const uint8_t *v, size_t len, struct mlps_attr_in *a)
{
	if (len < 2)
		return MLPS_DE_ATTR;
	size_t nl = v[1];
	if (2 + nl > len)
		return MLPS_DE_ATTR;
	memset(a, 0, sizeof(*a));
	a->type = v[0];
	a->name = (const char *)v + 2;
	a->name_len = nl;
	const uint8_t *val = v + 2 + nl;
	size_t vl = len - 2 - nl;
	switch (a->type) {
	case MLPS_U64:
	case MLPS_I64:
		if (vl != 8)
			return MLPS_DE_ATTR;
		a->u = get64(val);
		return 0;
	case MLPS_BOOL:
		if (vl != 1)
			return MLPS_DE_ATTR;
		a->u = val[0];
		return 0;
	case MLPS_STR:
	case MLPS_BYTES:
		a->data = val;
		a->len = vl;
		return 0;
	case 0:
		return MLPS_DE_ATTR;
	default:
		return 1;
	}
}

int mlps_msg_decode(const void *buf, size_t len, int *type, struct mlps_record **out)
{
	const uint8_t *p = buf;
	if (!p || len < MLPS_HDR_LEN)
		return MLPS_DE_SHORT;
	if (get32(p) != MLPS_MAGIC)
		return MLPS_DE_MAGIC;
	if (p[4] == 0)
		return MLPS_DE_VERSION;
	if (len > MLPS_MSG_MAX)
		return MLPS_DE_TOOBIG;
	int t = p[5];
	size_t hl = get16(p + 6);
	size_t bl = get32(p + 8);
	if (hl < MLPS_HDR_LEN || hl > MLPS_HDR_MAX || hl > len)
		return MLPS_DE_HDRLEN;
	if (bl != len - hl)
		return MLPS_DE_LENGTH;
	if (t != MLPS_MSG_PUBLISH && t != MLPS_MSG_WITHDRAW && t != MLPS_MSG_BYE)
		return MLPS_DE_TYPE;

	struct mlps_rec_in *in = malloc(sizeof(*in));
	if (!in)
		return MLPS_DE_NOMEM;
	memset(in, 0, offsetof(struct mlps_rec_in, attrs));
	unsigned seen = 0; /* bit per single-valued TLV type */
	int rc = 0;
	const uint8_t *b = p + hl, *end = p + len;
	while (b < end) {
		if (end - b < 4) {
			rc = MLPS_DE_TLV_TRUNC;
			goto out;
		}
		unsigned tt = get16(b);
		size_t tl = get16(b + 2);
		const uint8_t *v = b + 4;
		if ((size_t)(end - v) < tl) {
			rc = MLPS_DE_TLV_TRUNC;
			goto out;
		}
		b = v + tl;
		unsigned bit = tt < 16 ? 1u << tt : 0;
		switch (tt) {
		case MLPS_TLV_NAME:
		case MLPS_TLV_NODE:
		case MLPS_TLV_INCARNATION:
		case MLPS_TLV_VERSION:
		case MLPS_TLV_ML_NODE:
			if (seen & bit) {
				rc = MLPS_DE_TLV_DUP;
				goto out;
			}
			seen |= bit;
			break;
		}
		switch (tt) {
		case MLPS_TLV_NAME:
			in->name = (const char *)v;
			in->name_len = tl;
			break;
		case MLPS_TLV_NODE:
			if (tl != 4) {
				rc = MLPS_DE_TLV_LEN;
				goto out;
			}
			in->node_id = get32(v);
			break;
		case MLPS_TLV_ML_NODE:
			if (tl != 4) {
				rc = MLPS_DE_TLV_LEN;
				goto out;
			}
			if (t == MLPS_MSG_PUBLISH)
				in->ml_node_id = get32(v);
			break;
		case MLPS_TLV_INCARNATION:
		case MLPS_TLV_VERSION:
			if (tl != 8) {
				rc = MLPS_DE_TLV_LEN;
				goto out;
			}
			*(tt == MLPS_TLV_VERSION ? &in->version : &in->incarnation) = get64(v);
			break;
		case MLPS_TLV_ATTR: {
			if (t != MLPS_MSG_PUBLISH)
				break; /* not part of this message type: ignore */
			struct mlps_attr_in a;
			int r = attr_parse(v, tl, &a);
			if (r < 0) {
				rc = r;
				goto out;
			}
			if (r > 0)
				break; /* newer attribute type */
			if (in->n_attrs == MLPS_ATTRS_MAX) {
				rc = MLPS_DE_ATTR_MANY;
				goto out;
			}
			in->attrs[in->n_attrs++] = a;
			break;
		}
		case MLPS_TLV_ENDPOINT:
			if (t != MLPS_MSG_PUBLISH)
				break;
			if (in->n_endpoints == MLPS_ENDPOINTS_MAX) {
				rc = MLPS_DE_ENDPOINT_MANY;
				goto out;
			}
			in->endpoints[in->n_endpoints] = (const char *)v;
			in->endpoint_lens[in->n_endpoints++] = tl;
			break;
		default:
			if (tt & MLPS_TLV_CRITICAL) {
				rc = MLPS_DE_CRITICAL;
				goto out;
			}
			break; /* newer field: skipped */
		}
	}

	unsigned need = 1u << MLPS_TLV_NODE | 1u << MLPS_TLV_INCARNATION;
	if (t != MLPS_MSG_BYE)
		need |= 1u << MLPS_TLV_NAME | 1u << MLPS_TLV_VERSION;
	if ((seen & need) != need) {
		rc = MLPS_DE_MISSING;
		goto out;
	}
	if (in->node_id == 0) {
		rc = MLPS_DE_NODE;
		goto out;
	}
	if (t == MLPS_MSG_BYE) {
		in->name = "";
		in->name_len = 0;
	} else if ((rc = mlps_rec_in_check(in))) {
		goto out;
	}
	struct mlps_record *r = mlps_rec_build(in);
	if (!r) {
		rc = MLPS_DE_NOMEM;
		goto out;
	}
	*type = t;
	*out = r;
out:
	free(in);
	return rc;
}
