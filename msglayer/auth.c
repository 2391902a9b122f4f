/* auth.c - cluster keys and the handshake's MACs (auth.h). */
#include "auth.h"
#include "msglayer.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static void key_id(struct ml_key *k)
{
	static const char label[] = "msglayer key id";
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	/* A failure leaves an all-zero id: the key then matches nobody's. */
	memset(k->id, 0, sizeof(k->id));
	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(c, label, sizeof(label) - 1) &&
	    EVP_DigestUpdate(c, k->key, sizeof(k->key)) && EVP_DigestFinal_ex(c, md, &mdlen))
		memcpy(k->id, md, sizeof(k->id));
	EVP_MD_CTX_free(c);
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

/* One line: 64 hex digits, surrounded by blanks. 1 parsed, 0 blank or comment, -1 bad. */
static int parse_line(const char *line, struct ml_key *k)
{
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '#' || *line == '\n' || *line == '\r' || *line == 0)
		return 0;
	for (unsigned i = 0; i < ML_KEY_LEN; i++) {
		int hi = hexval((unsigned char)line[2 * i]), lo = hi < 0 ? -1 : hexval((unsigned char)line[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		k->key[i] = (uint8_t)(hi << 4 | lo);
	}
	for (line += 2 * ML_KEY_LEN; *line; line++)
		if (!isspace((unsigned char)*line))
			return -1;
	key_id(k);
	return 1;
}

int ml_key_file_read(const char *path, struct ml_key *keys, unsigned *n, char *err, size_t errlen)
{
	*n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(err, errlen, "cluster key file %s: %s", path, strerror(errno));
		return ML_EKEY;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cluster key file %s: not a regular file", path);
		close(fd);
		return ML_EKEY;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "cluster key file %s: mode %04o lets others read or change it (chmod 600 it)",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return ML_EKEY;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		snprintf(err, errlen, "cluster key file %s: %s", path, strerror(errno));
		close(fd);
		return ML_EKEY;
	}
	char line[256];
	unsigned lineno = 0;
	int rc = 0;
	while (!rc && fgets(line, sizeof(line), f)) {
		lineno++;
		struct ml_key k;
		int r = parse_line(line, &k);
		if (r < 0) {
			snprintf(err, errlen, "cluster key file %s, line %u: not 64 hex digits", path,
				 lineno);
			rc = ML_EKEY;
		} else if (r > 0 && *n == ML_KEYS_MAX) {
			snprintf(err, errlen, "cluster key file %s: more than %d keys", path,
				 ML_KEYS_MAX);
			rc = ML_EKEY;
		} else if (r > 0) {
			keys[(*n)++] = k;
		}
		OPENSSL_cleanse(&k, sizeof(k));
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	if (!rc && *n == 0) {
		snprintf(err, errlen, "cluster key file %s: no key in it (ml-keygen writes one)", path);
		rc = ML_EKEY;
	}
	if (rc) {
		OPENSSL_cleanse(keys, sizeof(*keys) * ML_KEYS_MAX);
		*n = 0;
	}
	return rc;
}

void ml_key_id_hex(const uint8_t id[ML_KEY_ID_LEN], char out[2 * ML_KEY_ID_LEN + 1])
{
	for (unsigned i = 0; i < ML_KEY_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

int ml_key_file_check(const char *key_file, char *text, size_t len)
{
	if (!key_file || !text || !len)
		return ML_EINVAL;
	struct ml_key keys[ML_KEYS_MAX];
	unsigned n;
	int rc = ml_key_file_read(key_file, keys, &n, text, len);
	if (rc)
		return rc;
	char id[2 * ML_KEY_ID_LEN + 1];
	ml_key_id_hex(keys[0].id, id);
	snprintf(text, len, "%s%s", id, n > 1 ? " (and one more key accepted)" : "");
	OPENSSL_cleanse(keys, sizeof(keys));
	return 0;
}

void ml_keyring_init(struct ml_keyring *kr)
{
	memset(kr, 0, sizeof(*kr));
	pthread_mutex_init(&kr->lock, NULL);
}

void ml_keyring_destroy(struct ml_keyring *kr)
{
	OPENSSL_cleanse(kr->keys, sizeof(kr->keys));
	pthread_mutex_destroy(&kr->lock);
}

void ml_keyring_set(struct ml_keyring *kr, const struct ml_key *keys, unsigned n)
{
	pthread_mutex_lock(&kr->lock);
	OPENSSL_cleanse(kr->keys, sizeof(kr->keys));
	memcpy(kr->keys, keys, n * sizeof(*keys));
	kr->n = n;
	pthread_mutex_unlock(&kr->lock);
}

int ml_keyring_offer(struct ml_keyring *kr, struct ml_key *out)
{
	pthread_mutex_lock(&kr->lock);
	int have = kr->n > 0;
	if (have)
		*out = kr->keys[0];
	pthread_mutex_unlock(&kr->lock);
	return have;
}

int ml_keyring_find(struct ml_keyring *kr, const uint8_t id[ML_KEY_ID_LEN], struct ml_key *out)
{
	int found = 0;
	pthread_mutex_lock(&kr->lock);
	for (unsigned i = 0; i < kr->n && !found; i++)
		if (!memcmp(kr->keys[i].id, id, ML_KEY_ID_LEN)) {
			*out = kr->keys[i];
			found = 1;
		}
	pthread_mutex_unlock(&kr->lock);
	return found;
}

int ml_keyring_enabled(struct ml_keyring *kr)
{
	pthread_mutex_lock(&kr->lock);
	int on = kr->n > 0;
	pthread_mutex_unlock(&kr->lock);
	return on;
}

int ml_auth_mac(const struct ml_key *k, const char *label, const uint8_t *hello, size_t hello_len,
		const uint8_t nonce[ML_NONCE_LEN], int protect, uint8_t out[ML_MAC_LEN])
{
	static const char domain[] = "msglayer-auth-v1 ";
	uint8_t msg[64 + 256];
	size_t dl = sizeof(domain) - 1, ll = strlen(label), n = 0;
	unsigned outlen = 0;
	/* Callers pass a HELLO payload of at most 128 bytes and short labels. */
	if (dl + ll + 1 + hello_len + ML_NONCE_LEN + 1 > sizeof(msg))
		return -1;
	memcpy(msg + n, domain, dl);
	n += dl;
	memcpy(msg + n, label, ll);
	n += ll;
	msg[n++] = 0; /* the label ends here, whatever follows */
	memcpy(msg + n, hello, hello_len);
	n += hello_len;
	memcpy(msg + n, nonce, ML_NONCE_LEN);
	n += ML_NONCE_LEN;
	msg[n++] = (uint8_t)protect;
	if (!HMAC(EVP_sha256(), k->key, ML_KEY_LEN, msg, n, out, &outlen) || outlen != ML_MAC_LEN)
		return -1;
	return 0;
}

int ml_auth_mac_equal(const uint8_t a[ML_MAC_LEN], const uint8_t b[ML_MAC_LEN])
{
	return CRYPTO_memcmp(a, b, ML_MAC_LEN) == 0;
}

int ml_auth_nonce(uint8_t out[ML_NONCE_LEN])
{
	size_t got = 0;
	while (got < ML_NONCE_LEN) {
		ssize_t r = getrandom(out + got, ML_NONCE_LEN - got, 0);
		if (r > 0)
			got += (size_t)r;
		else if (errno != EINTR)
			break;
	}
	if (got < ML_NONCE_LEN && RAND_bytes(out, ML_NONCE_LEN) != 1)
		return -1;
	return 0;
}
