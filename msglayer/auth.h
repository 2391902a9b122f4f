/*
 * auth.h - cluster keys and the handshake's challenge-response
 * (doc/security.md is the reference, doc/protocol.md the wire format).
 *
 * A key file holds one or two keys, 32 bytes each, as 64 hex digits per
 * line ('#' starts a comment). The first key is the one this node offers
 * when it connects; every key in the file is accepted from connectors, so
 * that keys can be rotated without dropping a session (doc/security.md).
 */
#ifndef ML_AUTH_H
#define ML_AUTH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define ML_KEY_LEN 32
#define ML_KEY_ID_LEN 8
#define ML_NONCE_LEN 16
#define ML_MAC_LEN 32
#define ML_KEYS_MAX 2

struct ml_key {
	uint8_t key[ML_KEY_LEN];
	uint8_t id[ML_KEY_ID_LEN]; /* names the key on the wire without revealing it */
};

struct ml_keyring {
	pthread_mutex_t lock; /* reloads come from any thread, handshakes from workers */
	unsigned n;           /* 0: authentication off */
	struct ml_key keys[ML_KEYS_MAX];
};

/* Read a key file into keys (at most ML_KEYS_MAX). Refuses a file that
 * others or the group may read or write. 0, or ML_EKEY with the reason in
 * err. */
int ml_key_file_read(const char *path, struct ml_key *keys, unsigned *n, char *err, size_t errlen);

/* A key id as the logs and ml-keygen show it: 16 hex digits. */
void ml_key_id_hex(const uint8_t id[ML_KEY_ID_LEN], char out[2 * ML_KEY_ID_LEN + 1]);

void ml_keyring_init(struct ml_keyring *kr);
void ml_keyring_destroy(struct ml_keyring *kr);
void ml_keyring_set(struct ml_keyring *kr, const struct ml_key *keys, unsigned n);
/* The key we offer: 1 and *out set, or 0 when authentication is off. */
int ml_keyring_offer(struct ml_keyring *kr, struct ml_key *out);
/* The key with this id: 1 and *out set; 0 if we have none such. */
int ml_keyring_find(struct ml_keyring *kr, const uint8_t id[ML_KEY_ID_LEN], struct ml_key *out);
int ml_keyring_enabled(struct ml_keyring *kr);

/* HMAC-SHA256 over label, the connector's HELLO payload, the acceptor's
 * nonce and the protection the acceptor chose: the acceptor proves its key
 * with label "acceptor", then the connector with "connector". Everything a
 * HELLO names (node ids, incarnations, path, the connector's nonce, the
 * protection it asks for) is bound, and so is the choice, so nobody in
 * between can weaken it; the acceptor's fresh nonce makes a recorded answer
 * useless on another connection.
 * 0, or -1 if it could not be computed (the handshake must then fail). */
int ml_auth_mac(const struct ml_key *k, const char *label, const uint8_t *hello, size_t hello_len,
		const uint8_t nonce[ML_NONCE_LEN], int protect, uint8_t out[ML_MAC_LEN]);
/* Constant-time comparison of two MACs: 1 if equal. */
int ml_auth_mac_equal(const uint8_t a[ML_MAC_LEN], const uint8_t b[ML_MAC_LEN]);
/* 0, or -1 when no random bytes could be had. */
int ml_auth_nonce(uint8_t out[ML_NONCE_LEN]);

#endif
