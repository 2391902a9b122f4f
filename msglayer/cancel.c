/*
 * cancel.c - request deadlines, cancellation and the peer side of both.
 *
 * Giving up on a request never breaks rule 2: a request that has a sequence
 * number stays in the send window until the peer acknowledges it (its
 * payload may still have to be resent), so its callback runs with the
 * give-up status at once when it was acknowledged already (or never sent),
 * else when the acknowledgement comes, one round trip later. The peer is
 * told with a CANCEL (a one-way message, so it is reliable like any other)
 * and its handler learns it through on_cancel.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double ml_mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void send_cancel(struct ml_peer *p, uint64_t seq)
{
	struct ml_msg_out *c = ml_msg_alloc(p);
	if (!c) {
		/* The peer then serves a request nobody waits for: a waste, not an error. */
		ml_log(p->ctx, ML_LOG_WARN, "peer %u: no memory to cancel request %llu", p->node_id,
		       (unsigned long long)seq);
		return;
	}
	c->peer = p;
	c->kind = ML_KIND_ONEWAY;
	c->wflags = ML_FLAG_CANCEL;
	c->ref = seq;
	c->iov = c->iov1;
	c->cmd.type = ML_CMD_SEND;
	__atomic_add_fetch(&p->submitted, 1, __ATOMIC_RELAXED); /* complete() takes it off */
	ml_peer_submit(p, c);
}

/* Give up on request m of ours with status (ML_ECANCELED or ML_EDEADLINE). */
static void give_up(struct ml_peer *p, struct ml_msg_out *m, int status)
{
	if (m->give_up)
		return; /* already given up; its callback comes with the ack */
	if (!m->seq) { /* never sent: the peer knows nothing of it */
		cds_list_del(&m->link);
		ML_STAT_ADD(p->st.queued_msgs, -1);
		ml_peer_complete(p, m, status, NULL);
		return;
	}
	send_cancel(p, m->seq);
	if (m->acked) { /* waiting for its response only */
		ml_peer_await_take(p, m->seq);
		ml_peer_complete(p, m, status, NULL);
		return;
	}
	m->give_up = status;
	ev_timer_stop(p->w->loop, &m->deadline_timer);
}

static void on_deadline(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ml_msg_out *m = caa_container_of(t, struct ml_msg_out, deadline_timer);
	(void)loop;
	(void)revents;
	give_up(m->peer, m, ML_EDEADLINE);
}

void ml_cancel_start_deadline(struct ml_peer *p, struct ml_msg_out *m)
{
	double left = m->deadline - ml_mono_now();
	ev_timer_init(&m->deadline_timer, on_deadline, left > 0 ? left : 0, 0);
	ev_timer_start(p->w->loop, &m->deadline_timer);
}

/* Every outstanding request with this tag, wherever it is: waiting for a
 * number, in the window, or acknowledged and waiting for its response.
 * (A scan: cancellation is rare next to sending.) */
void ml_cancel_by_tag(struct ml_peer *p, uint64_t tag)
{
	struct ml_msg_out *m, *tmp;
	cds_list_for_each_entry_safe(m, tmp, &p->waitq, link)
		if (m->kind == ML_KIND_REQUEST && m->tag == tag)
			give_up(p, m, ML_ECANCELED);
	for (uint64_t s = p->oldest_unacked; s < p->next_seq; s++) {
		m = p->txring[s & p->txmask];
		if (m && m->seq == s && m->kind == ML_KIND_REQUEST && m->tag == tag && !m->acked)
			give_up(p, m, ML_ECANCELED);
	}
	for (uint32_t i = 0; i <= p->await_mask; i++) {
		struct ml_msg_out *next;
		for (m = p->await[i]; m; m = next) {
			next = m->hnext;
			if (m->tag == tag)
				give_up(p, m, ML_ECANCELED);
		}
	}
}

/* Requester side done; now the peer's side: a CANCEL for request ref. */
void ml_cancel_received(struct ml_peer *p, uint64_t ref)
{
	struct ml_config *cfg = &p->ctx->cfg;
	struct ml_request *req;
	cds_list_for_each_entry(req, &p->open_requests, link) {
		if (req->seq == ref && req->session_id == p->session_id) {
			if (!__atomic_exchange_n(&req->canceled, 1, __ATOMIC_RELAXED) && cfg->on_cancel)
				cfg->on_cancel(cfg->cb_arg, p, req);
			return;
		}
	}
	/* Not open: answered already, or not arrived yet (the CANCEL came on a
	 * faster path). Only the second needs remembering. */
	if (ml_rxwin_check(&p->rx, ref) != ML_RXWIN_NEW)
		return;
	unsigned cap = sizeof(p->early_cancels) / sizeof(p->early_cancels[0]);
	/* A full ring forgets the oldest: that request is served, harmlessly. */
	p->early_cancels[p->n_early_cancels++ % cap] = ref;
}

int ml_cancel_arrived_early(struct ml_peer *p, uint64_t seq)
{
	unsigned cap = sizeof(p->early_cancels) / sizeof(p->early_cancels[0]);
	for (unsigned i = 0; i < cap; i++) {
		if (p->early_cancels[i] == seq) { /* (0 marks a free slot; no seq is 0) */
			p->early_cancels[i] = 0;
			return 1;
		}
	}
	return 0;
}
