/*
 * sessions.h - discovery's link to the message layer: sessions to the
 * publishers a subscriber sees, and failing them when Corosync says their
 * node or process is gone (mlps_config.msg_ctx, connect_publishers).
 */
#ifndef MLPS_SESSIONS_H
#define MLPS_SESSIONS_H

#include <stdint.h>

#include "msglayer.h"
#include "mlpubsub.h"

/* Fill view->peer for a subscriber whose handle has msg_ctx: with connect,
 * an added or changed record opens (or extends) the session over its
 * endpoints; otherwise the existing session, if any. */
void mlps_sessions_view(ml_ctx *msg, int connect, int event, struct mlps_record *view);

/* Declare the sessions to these message-layer nodes down in msg: their
 * outstanding requests fail with ML_EPEERDOWN. why goes into the log. */
void mlps_sessions_down(ml_ctx *msg, const uint32_t *ml_nodes, unsigned n, const char *why);

#endif
