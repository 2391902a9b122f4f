/*
 * backends.h - ml-blockcli's view of the backends: it subscribes to
 * the names block/NAME (with connect_publishers, so every record comes with a session
 * over all its endpoints), keeps the records of the volume it uses, and says
 * which backend to use: the first that publishes the volume, then, when that
 * one's record goes, another that publishes the same name with the same
 * geometry (a replica).
 */
#ifndef BACKENDS_H
#define BACKENDS_H

#include <stdint.h>

#include "mlpubsub.h"
#include "msglayer.h"

#define BACKENDS_MAX 16

struct backend {
	uint32_t node_id, pid; /* the publisher (Corosync node, process) */
	uint64_t incarnation;
	uint32_t ml_node;      /* its message-layer node id */
	ml_peer *peer;         /* our session to it */
	uint64_t size;
	uint32_t block_size, volume_id, max_io;
	int ro;
	unsigned n_endpoints;
	char endpoints[2][64]; /* the first two, for messages */
};

/* The backend to use changed: now (NULL: none for now); reason is the
 * enum mlps_reason of the event that made the change. */
typedef void (*backends_cb)(void *arg, const struct backend *now, int reason);

struct backends {
	mlps *ps;
	mlps_sub *sub;
	char name[MLPS_NAME_MAX + 1]; /* "block/NAME" in use; "" until chosen */
	struct backend list[BACKENDS_MAX];
	unsigned n;
	int cur;                      /* index in list, -1: none */
	int used;                     /* a backend was chosen once: first is set */
	struct backend first;         /* the first one used: replicas must match its geometry */
	uint64_t switches;            /* changes from one backend to another */
	backends_cb cb;
	void *arg;
};

/* Subscribe through ps (which has msg_ctx and connect_publishers set).
 * volume: the name after "block/", or NULL for the first volume seen.
 * Returns 0 or a status (mlps_strerror). */
int backends_start(struct backends *b, mlps *ps, const char *volume, backends_cb cb, void *arg);
void backends_stop(struct backends *b);

#endif
