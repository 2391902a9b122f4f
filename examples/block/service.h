/*
 * service.h - ml-blockd's request handling: a block request arrives on the
 * loop thread (the context's on_request), is checked there, and runs on an
 * I/O thread, which answers it (ml_respond is thread-safe). The response
 * header and READ data are sent from the job's own memory, without a copy;
 * the job is recycled when the requester has acknowledged the response.
 */
#ifndef SERVICE_H
#define SERVICE_H

#include <stdint.h>

#include "msglayer.h"
#include "volume.h"

struct service_stats {
	uint64_t ops[5];      /* answered with success, by enum blk_op */
	uint64_t bytes_read, bytes_written;
	uint64_t errors;      /* answered with a failure status */
	uint64_t send_failed; /* responses the requester never acknowledged */
};

struct service;

/* vols (nvols of them) must outlive the service. Returns 0, or -1 with
 * errno set. */
int service_create(struct volume *vols, unsigned nvols, uint32_t max_io, unsigned io_threads,
		   struct service **out);
/* ml_config.on_request, with ml_config.cb_arg the service. */
void service_on_request(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg);
/* From now on, requests are answered with BLK_S_SHUTDOWN (loop thread). */
void service_refuse_new(struct service *svc);
/* Requests taken and not yet acknowledged by their requester. */
unsigned service_outstanding(struct service *svc);
/* Finish the queued I/O and stop the I/O threads (before ml_ctx_destroy:
 * they call ml_respond). */
void service_stop_io(struct service *svc);
void service_stats_get(struct service *svc, struct service_stats *st);
/* After ml_ctx_destroy (which completes the responses still in flight). */
void service_destroy(struct service *svc);

#endif
