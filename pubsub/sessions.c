/* sessions.c - discovery's link to the message layer (sessions.h). */
#include "sessions.h"

void mlps_sessions_view(ml_ctx *msg, int connect, int event, struct mlps_record *view)
{
	view->peer = NULL;
	/* Our own records: no session to ourselves (ml_peer_add refuses it). */
	if (!msg || !view->ml_node_id || view->ml_node_id == ml_ctx_node_id(msg))
		return;
	if (connect && event != MLPS_REMOVED && view->n_endpoints) {
		ml_peer *peer = NULL;
		/* Endpoints already there are skipped; a bad one (the publisher's
		 * mistake) is logged by ml_peer_add and the record still passed. */
		if (ml_peer_add(msg, view->ml_node_id, view->endpoints, view->n_endpoints, &peer) ==
		    ML_OK) {
			view->peer = peer;
			return;
		}
	}
	view->peer = ml_peer_find(msg, view->ml_node_id);
}

void mlps_sessions_down(ml_ctx *msg, const uint32_t *ml_nodes, unsigned n, const char *why)
{
	for (unsigned i = 0; msg && i < n; i++) {
		ml_peer *peer = ml_peer_find(msg, ml_nodes[i]);
		if (peer)
			ml_peer_declare_down(peer, why);
	}
}
