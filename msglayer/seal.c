/* seal.c - sealed records on protected paths (seal.h). */
#include "seal.h"
#include "msglayer.h"
#include "wire.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

/* Plaintext sealed per round before the sealed bytes are written: records
 * are cut from at most this much, so the buffer is bounded. */
#define TX_CHUNK (256u * 1024)
#define TX_CAP (ML_SEAL_PLAIN_MAX + TX_CHUNK + (TX_CHUNK / ML_SEAL_RECORD_MAX + 1) * ML_SEAL_OVERHEAD)
#define RX_CAP (16 * (ML_SEAL_RECORD_MAX + ML_SEAL_OVERHEAD)) /* read as much as an unsealed path does */

struct ml_seal {
	int mode;
	EVP_CIPHER_CTX *tx, *rx; /* keyed once; each record sets its nonce */
	uint64_t tx_seq, rx_seq;
	size_t tx_plain;         /* handshake bytes still to pass in the clear */
	uint8_t *out;            /* sealed bytes taken, not yet written: [out_off, out_len) */
	size_t out_off, out_len;
	uint8_t *in;             /* sealed bytes read, not yet opened: [in_off, in_len) */
	size_t in_off, in_len, in_cap;
};

/* HKDF-SHA256 (RFC 5869) with one output block: extract with the acceptor's
 * nonce as salt, expand with a label naming the direction, the mode and the
 * connector's HELLO. A key of one path, direction or mode is useless on any
 * other. */
static int hkdf(const struct ml_key *k, const uint8_t *hello, size_t hello_len,
		const uint8_t nonce[ML_NONCE_LEN], int mode, const char *dir, uint8_t out[ML_SEAL_KEY_LEN])
{
	static const char label[] = "msglayer seal v1 ";
	uint8_t prk[EVP_MAX_MD_SIZE], info[64 + 256];
	unsigned prklen = 0, outlen = 0;
	size_t ll = sizeof(label) - 1, dl = strlen(dir), n = 0;
	if (ll + dl + 2 + hello_len + 1 > sizeof(info))
		return -1;
	if (!HMAC(EVP_sha256(), nonce, ML_NONCE_LEN, k->key, ML_KEY_LEN, prk, &prklen))
		return -1;
	memcpy(info + n, label, ll);
	n += ll;
	memcpy(info + n, dir, dl);
	n += dl;
	info[n++] = 0;
	info[n++] = (uint8_t)mode;
	memcpy(info + n, hello, hello_len);
	n += hello_len;
	info[n++] = 1; /* the block counter of HKDF-Expand */
	int ok = HMAC(EVP_sha256(), prk, (int)prklen, info, n, out, &outlen) && outlen == ML_SEAL_KEY_LEN;
	OPENSSL_cleanse(prk, sizeof(prk));
	return ok ? 0 : -1;
}

int ml_seal_derive(const struct ml_key *k, const uint8_t *hello, size_t hello_len,
		   const uint8_t nonce[ML_NONCE_LEN], int mode, uint8_t c2a[ML_SEAL_KEY_LEN],
		   uint8_t a2c[ML_SEAL_KEY_LEN])
{
	if (hkdf(k, hello, hello_len, nonce, mode, "connector to acceptor", c2a) ||
	    hkdf(k, hello, hello_len, nonce, mode, "acceptor to connector", a2c)) {
		OPENSSL_cleanse(c2a, ML_SEAL_KEY_LEN);
		OPENSSL_cleanse(a2c, ML_SEAL_KEY_LEN);
		return -1;
	}
	return 0;
}

static EVP_CIPHER_CTX *cipher(const uint8_t key[ML_SEAL_KEY_LEN], int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (c && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, NULL, enc) == 1)
		return c;
	EVP_CIPHER_CTX_free(c);
	return NULL;
}

struct ml_seal *ml_seal_new(int mode, const uint8_t tx_key[ML_SEAL_KEY_LEN],
			    const uint8_t rx_key[ML_SEAL_KEY_LEN], size_t tx_plain)
{
	struct ml_seal *s = tx_plain <= ML_SEAL_PLAIN_MAX ? calloc(1, sizeof(*s)) : NULL;
	if (!s)
		return NULL;
	s->mode = mode;
	s->tx_plain = tx_plain;
	s->tx = cipher(tx_key, 1);
	s->rx = cipher(rx_key, 0);
	s->out = malloc(TX_CAP);
	s->in = malloc(RX_CAP);
	s->in_cap = RX_CAP;
	if (!s->tx || !s->rx || !s->out || !s->in) {
		ml_seal_free(s);
		return NULL;
	}
	return s;
}

void ml_seal_free(struct ml_seal *s)
{
	if (!s)
		return;
	EVP_CIPHER_CTX_free(s->tx); /* cleanses the key schedule */
	EVP_CIPHER_CTX_free(s->rx);
	free(s->out);
	free(s->in);
	free(s);
}

int ml_seal_mode(const struct ml_seal *s)
{
	return s->mode;
}

/* The 12-byte GCM nonce of record seq: 4 zero bytes, then seq (LE). */
static void record_iv(uint64_t seq, uint8_t iv[12])
{
	memset(iv, 0, 4);
	ml_put64(iv + 4, seq);
}

/* Cursor over an iovec array. */
struct cursor {
	const struct iovec *iov;
	int n, i;
	size_t off;
};

static size_t cursor_left(const struct cursor *c)
{
	size_t left = 0;
	for (int i = c->i; i < c->n; i++)
		left += c->iov[i].iov_len - (i == c->i ? c->off : 0);
	return left;
}

/* The next contiguous piece of at most max bytes, and step over it. */
static const uint8_t *cursor_take(struct cursor *c, size_t max, size_t *len)
{
	while (c->i < c->n && c->off == c->iov[c->i].iov_len) {
		c->i++;
		c->off = 0;
	}
	if (c->i == c->n) {
		*len = 0;
		return NULL;
	}
	size_t l = c->iov[c->i].iov_len - c->off;
	*len = l < max ? l : max;
	const uint8_t *p = (const uint8_t *)c->iov[c->i].iov_base + c->off;
	c->off += *len;
	return p;
}

/* Seal the next len bytes of c as one record at out + out_len. */
static int seal_record(struct ml_seal *s, struct cursor *c, size_t len)
{
	uint8_t iv[12], *rec = s->out + s->out_len, *body = rec + 4;
	int l;
	ml_put32(rec, (uint32_t)len);
	record_iv(s->tx_seq++, iv);
	if (EVP_EncryptInit_ex(s->tx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(s->tx, NULL, &l, rec, 4) != 1)
		return -1;
	for (size_t done = 0; done < len;) {
		size_t pl;
		const uint8_t *p = cursor_take(c, len - done, &pl);
		if (s->mode == ML_PROTECT_ENCRYPT) {
			if (EVP_EncryptUpdate(s->tx, body + done, &l, p, (int)pl) != 1)
				return -1;
		} else {
			memcpy(body + done, p, pl);
			if (EVP_EncryptUpdate(s->tx, NULL, &l, p, (int)pl) != 1)
				return -1;
		}
		done += pl;
	}
	if (EVP_EncryptFinal_ex(s->tx, body + len, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->tx, EVP_CTRL_GCM_GET_TAG, ML_SEAL_TAG_LEN, body + len) != 1)
		return -1;
	s->out_len += len + ML_SEAL_OVERHEAD;
	return 0;
}

/* Fill the (empty) out buffer from c: handshake bytes as they are, the rest
 * in records. Returns the bytes of c taken, or -1. */
static ssize_t seal_chunk(struct ml_seal *s, struct cursor *c)
{
	size_t taken = 0;
	s->out_off = s->out_len = 0;
	while (s->tx_plain > 0) {
		size_t pl;
		const uint8_t *p = cursor_take(c, s->tx_plain, &pl);
		if (!p)
			return (ssize_t)taken;
		memcpy(s->out + s->out_len, p, pl);
		s->out_len += pl;
		s->tx_plain -= pl;
		taken += pl;
	}
	size_t left = cursor_left(c), sealed = 0;
	while (left > 0 && sealed < TX_CHUNK) {
		size_t len = left < ML_SEAL_RECORD_MAX ? left : ML_SEAL_RECORD_MAX;
		if (len > TX_CHUNK - sealed)
			len = TX_CHUNK - sealed;
		if (seal_record(s, c, len) != 0)
			return -1;
		sealed += len;
		left -= len;
	}
	taken += sealed;
	return (ssize_t)taken;
}

int ml_seal_pending(const struct ml_seal *s)
{
	return s->out_off < s->out_len;
}

int ml_seal_drain(struct ml_seal *s, const struct ml_transport_ops *ops, int fd)
{
	while (s->out_off < s->out_len) {
		struct iovec v = { s->out + s->out_off, s->out_len - s->out_off };
		ssize_t w = ops->writev(fd, &v, 1);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s->out_off += (size_t)w;
	}
	s->out_off = s->out_len = 0;
	return 0;
}

ssize_t ml_seal_writev(struct ml_seal *s, const struct ml_transport_ops *ops, int fd,
		       const struct iovec *iov, int iovcnt)
{
	struct cursor c = { iov, iovcnt, 0, 0 };
	size_t taken = 0;
	if (ml_seal_drain(s, ops, fd) != 0)
		return -1;
	for (;;) {
		ssize_t t = seal_chunk(s, &c);
		if (t < 0) {
			errno = EPROTO; /* the cipher failed: the path cannot go on */
			return -1;
		}
		if (t == 0)
			return (ssize_t)taken;
		taken += (size_t)t;
		if (ml_seal_drain(s, ops, fd) != 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? (ssize_t)taken : -1;
	}
}

struct iovec ml_seal_rx_space(struct ml_seal *s)
{
	if (s->in_off > 0) {
		memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
		s->in_len -= s->in_off;
		s->in_off = 0;
	}
	return (struct iovec){ s->in + s->in_len, s->in_cap - s->in_len };
}

size_t ml_seal_rx_room(const struct ml_seal *s)
{
	return s->in_cap - (s->in_len - s->in_off);
}

void ml_seal_rx_got(struct ml_seal *s, size_t n)
{
	s->in_len += n;
}

int ml_seal_rx_push(struct ml_seal *s, const uint8_t *p, size_t n)
{
	struct iovec v = ml_seal_rx_space(s);
	if (n > v.iov_len) { /* once, at the switch: the read before it may have been long */
		uint8_t *in = realloc(s->in, s->in_len + n);
		if (!in)
			return ML_ENOMEM;
		s->in = in;
		s->in_cap = s->in_len + n;
	}
	memcpy(s->in + s->in_len, p, n);
	s->in_len += n;
	return 0;
}

static int open_record(struct ml_seal *s, const uint8_t *rec, size_t len, uint8_t *dst)
{
	uint8_t iv[12], tag[ML_SEAL_TAG_LEN];
	const uint8_t *body = rec + 4;
	int l;
	record_iv(s->rx_seq, iv);
	memcpy(tag, body + len, sizeof(tag));
	if (EVP_DecryptInit_ex(s->rx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_DecryptUpdate(s->rx, NULL, &l, rec, 4) != 1)
		return -1;
	if (s->mode == ML_PROTECT_ENCRYPT) {
		if (EVP_DecryptUpdate(s->rx, dst, &l, body, (int)len) != 1)
			return -1;
	} else if (EVP_DecryptUpdate(s->rx, NULL, &l, body, (int)len) != 1) {
		return -1;
	}
	if (EVP_CIPHER_CTX_ctrl(s->rx, EVP_CTRL_GCM_SET_TAG, sizeof(tag), tag) != 1 ||
	    EVP_DecryptFinal_ex(s->rx, dst + len, &l) != 1)
		return -1; /* dst holds unauthenticated bytes: the caller drops them */
	if (s->mode == ML_PROTECT_MAC)
		memcpy(dst, body, len);
	s->rx_seq++;
	return 0;
}

int ml_seal_open(struct ml_seal *s, uint8_t *dst, size_t room, size_t *got, const char **why)
{
	*got = 0;
	while (s->in_len - s->in_off >= 4) {
		const uint8_t *rec = s->in + s->in_off;
		size_t len = ml_get32(rec);
		if (len == 0 || len > ML_SEAL_RECORD_MAX) {
			*why = "sealed record length out of range (not a protected path, or another mode)";
			return ML_EPROTO;
		}
		if (s->in_len - s->in_off < len + ML_SEAL_OVERHEAD || room - *got < len)
			break;
		if (open_record(s, rec, len, dst + *got) != 0) {
			*why = "a sealed record failed authentication (tampered, or another key)";
			return ML_EAUTH;
		}
		*got += len;
		s->in_off += len + ML_SEAL_OVERHEAD;
	}
	if (s->in_off == s->in_len)
		s->in_off = s->in_len = 0;
	return 0;
}
