/*
 * zcopy.c - the receiving end of zero copy: an RDESC fragment (doc/protocol.md
 * 4.8) names where its bytes lie in the sender's registered memory; we pull
 * them with an RDMA READ on the path it came on, straight into the message's
 * reassembly buffer (registered when its first READ needs it, and kept
 * registered with the buffer for the next messages), and the fragment counts
 * as received when the READ completes. The sender's ack and resend rules do
 * the rest: it keeps the fragment (and its buffer) until the message is
 * acknowledged, and resends what a failed path lost, as an RDESC on another
 * RDMA path or as DATA on TCP.
 *
 * One READ per fragment at a time: another RDESC of a fragment being read
 * (the sender resent it after the first path failed, before we noticed)
 * waits, and is issued if the first READ dies with its path. Descriptors of
 * one fragment that came on different paths all wait: arrival order across
 * paths says nothing about which the sender sent last, and the one from a
 * path the sender has already seen fail dies with that path here too. A
 * reassembly is never reused or freed while a READ writes into it
 * (ml_zc_reasm_keep).
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZC_POLL_BATCH 32

struct zc_read {
	struct cds_list_head link; /* peer->zc_reads */
	struct ml_path *path;
	struct ml_reasm *r;
	struct ml_frame_hdr h;     /* the fragment as DATA: payload_len is its length */
	uint64_t raddr;
	uint32_t rkey;
	int posted;                /* 0: waiting (the fragment is being read, or no slot) */
};

static struct zc_read *being_read(struct ml_peer *p, const struct ml_reasm *r, uint32_t offset)
{
	struct zc_read *e;
	cds_list_for_each_entry(e, &p->zc_reads, link)
		if (e->posted && e->r == r && e->h.offset == offset)
			return e;
	return NULL;
}

static void drop(struct zc_read *e)
{
	cds_list_del(&e->link);
	free(e);
}

/* 0: posted, or no slot now (it waits: tried again when a READ of its
 * path ends). -1: the path failed (a READ cannot be posted there: the
 * connection broke, or our buffer is not registered with its device), and
 * e with it. */
static int post(struct zc_read *e)
{
	struct ml_path *path = e->path;
	struct ml_reasm *r = e->r;
	if (path->ops->read(path->fd, r->mem, r->buf + e->h.offset, e->h.payload_len, e->raddr,
			    e->rkey, (uint64_t)(uintptr_t)e) != 0) {
		if (errno == EAGAIN)
			return 0;
		/* A connection that failed (a READ's error completion, the peer's
		 * DISCONNECTED) says why in its own words: errno alone says only
		 * that it failed. Copied: ml_path_fail frees the connection. */
		int err = errno;
		const char *tw = path->ops->why ? path->ops->why(path->fd) : NULL;
		char why[160];
		if (tw)
			snprintf(why, sizeof(why), "%s", tw);
		else
			snprintf(why, sizeof(why), "cannot post an RDMA READ: %s", strerror(err));
		ml_path_fail(path, ML_ESYS, why);
		return -1;
	}
	e->posted = 1;
	r->reading++;
	path->zc_posted++;
	return 0;
}

/* Issue what waits, where its fragment is not being read already. A path
 * that fails meanwhile changes the list (and kicks again itself): stop. */
static void kick(struct ml_peer *p)
{
	struct zc_read *e, *t;
	cds_list_for_each_entry_safe(e, t, &p->zc_reads, link)
		if (!e->posted && e->path->fd >= 0 && !being_read(p, e->r, e->h.offset) && post(e) != 0)
			return;
}

/* What waits to read into r at offset (ZC_ANY: anywhere), from path (NULL:
 * any path), goes. */
#define ZC_ANY UINT32_MAX /* never a fragment's offset: it is below msg_len */
static void forget_waiting(struct ml_peer *p, const struct ml_reasm *r, uint32_t offset,
			   const struct ml_path *path)
{
	struct zc_read *e, *t;
	cds_list_for_each_entry_safe(e, t, &p->zc_reads, link)
		if (!e->posted && e->r == r && (offset == ZC_ANY || e->h.offset == offset) &&
		    (!path || e->path == path))
			drop(e);
}

int ml_zc_on_desc(struct ml_peer *p, struct ml_path *path, const struct ml_frame_hdr *h,
		  const uint8_t *payload)
{
	struct ml_rdesc d;
	struct ml_frame_hdr fh = *h;
	int rc;
	ml_rdesc_decode(payload, &d);
	fh.type = ML_FT_DATA;
	fh.payload_len = d.len;
	enum ml_wire_err e = ml_wire_check_frag(&fh, d.len, &p->ctx->limits);
	if (e) {
		char why[96];
		snprintf(why, sizeof(why), "RDMA descriptor: %s", ml_wire_strerror(e));
		ml_path_fail(path, ML_EPROTO, why);
		return -1;
	}
	if ((rc = ml_peer_frag_admit(p, &fh)) <= 0)
		goto refused;
	struct ml_reasm *r = ml_peer_reasm_get(p, &fh, &rc);
	if (!r)
		goto refused;
	switch (ml_reasm_check(r, fh.msg_len, fh.offset, d.len)) {
	case ML_REASM_BAD:
		rc = -1;
		goto refused;
	case ML_REASM_DUP:
		ML_STAT_ADD(p->st.dup_frames, 1);
		return 0;
	case ML_REASM_NEW:
		break;
	}
	if (!r->mem && ml_tp_mem_add(r->buf, r->cap, &r->mem) != 0) {
		ml_path_fail(path, ML_ENOMEM, "no memory to register a buffer for RDMA READ");
		return -1;
	}
	struct zc_read *z = calloc(1, sizeof(*z));
	if (!z) {
		ml_path_fail(path, ML_ENOMEM, "no memory for an RDMA READ");
		return -1;
	}
	/* At most one waits per fragment and path (the newest: one path keeps
	 * the sender's order), so a peer repeating itself holds no more. */
	forget_waiting(p, r, fh.offset, path);
	*z = (struct zc_read){ .path = path, .r = r, .h = fh, .raddr = d.addr, .rkey = d.rkey };
	cds_list_add_tail(&z->link, &p->zc_reads);
	if (!being_read(p, r, fh.offset) && post(z) != 0)
		return -1;
	return 0;
refused:
	if (rc < 0)
		ml_path_fail(path, ML_EPROTO, "RDMA descriptor breaks the session's rules");
	return rc < 0 ? -1 : 0;
}

/* r is let go (delivered, or its session reset): what waits for it goes. */
int ml_zc_reasm_keep(struct ml_peer *p, struct ml_reasm *r)
{
	forget_waiting(p, r, ZC_ANY, NULL);
	if (!r->reading)
		return 0;
	r->orphan = 1;
	return 1;
}

/* One READ into r is over. An r let go meanwhile is freed with its last
 * READ; returns whether r was let go (nothing more is done with it). */
static int read_into_over(struct ml_peer *p, struct ml_reasm *r)
{
	r->reading--;
	if (!r->orphan)
		return 0;
	if (!r->reading) {
		r->orphan = 0;
		ml_peer_reasm_destroy(p, r);
	}
	return 1;
}

/* A READ ended (done: its bytes are in; else its path failed). */
static void read_ended(struct ml_peer *p, struct zc_read *e, int done)
{
	struct ml_reasm *r = e->r;
	struct ml_path *path = e->path;
	struct ml_frame_hdr h = e->h;
	path->zc_posted--;
	drop(e);
	if (read_into_over(p, r))
		return;
	if (!done || ml_reasm_check(r, h.msg_len, h.offset, h.payload_len) != ML_REASM_NEW)
		return; /* lost with its path, or came whole as DATA meanwhile */
	forget_waiting(p, r, h.offset, NULL);
	ML_STAT_ADD(path->st.frames_recv, 1);
	ML_STAT_ADD(path->st.bytes_recv, h.payload_len);
	ML_STAT_ADD(path->st.bytes_zcopy, h.payload_len);
	if (ml_reasm_mark(r, h.offset) && ml_peer_reasm_done(p, &h, r) != 0)
		ml_path_fail(path, ML_EPROTO, "a message read by RDMA breaks the session's rules");
}

unsigned ml_zc_poll(struct ml_path *path)
{
	struct ml_peer *p = path->peer;
	uint64_t done[ZC_POLL_BATCH];
	unsigned n, all = 0;
	while (path->fd >= 0 && path->zc_posted &&
	       (n = path->ops->reads_done(path->fd, done, ZC_POLL_BATCH)) > 0) {
		all += n;
		/* A message that breaks the rules fails the path, and the path
		 * ends the READs still listed: the rest of done[] with them. */
		for (unsigned i = 0; i < n && path->fd >= 0; i++)
			read_ended(p, (struct zc_read *)(uintptr_t)done[i], 1);
	}
	kick(p); /* slots came free, and fragments are no longer being read */
	return all;
}

void ml_zc_path_failed(struct ml_path *path)
{
	struct ml_peer *p = path->peer;
	struct zc_read *e;
again: /* ending a READ may free a reassembly and what waits for it */
	cds_list_for_each_entry(e, &p->zc_reads, link)
		if (e->path == path) {
			if (e->posted)
				read_ended(p, e, 0);
			else
				drop(e);
			goto again;
		}
	/* What another path's descriptor offers for the same fragments. */
	kick(p);
}

void ml_zc_peer_fini(struct ml_peer *p)
{
	struct zc_read *e, *t;
	cds_list_for_each_entry_safe(e, t, &p->zc_reads, link)
		if (!e->posted)
			drop(e);
	cds_list_for_each_entry_safe(e, t, &p->zc_reads, link) {
		read_into_over(p, e->r);
		drop(e);
	}
}
