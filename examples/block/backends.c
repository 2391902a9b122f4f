/* backends.c - which backend ml-blockcli uses (backends.h). */
#include "backends.h"
#include "blockproto.h"

#include <stdio.h>
#include <string.h>

static int attr_u64(const struct mlps_record *rec, const char *name, uint64_t *v)
{
	const struct mlps_attr *a = mlps_record_attr(rec, name);
	if (!a || a->type != MLPS_U64)
		return -1;
	*v = a->v.u64;
	return 0;
}

/* A record we can use, or -1 with why set. */
static int from_record(const struct mlps_record *rec, struct backend *out, const char **why)
{
	uint64_t size, bs, id, max_io = 1 << 20, proto = BLK_PROTO_VERSION;
	if (attr_u64(rec, "size", &size) || attr_u64(rec, "block_size", &bs) ||
	    attr_u64(rec, "volume_id", &id)) {
		*why = "no size, block_size or volume_id attribute (u64)";
		return -1;
	}
	attr_u64(rec, "max_io", &max_io); /* optional, as proto is */
	attr_u64(rec, "proto", &proto);
	if (proto != BLK_PROTO_VERSION) {
		*why = "speaks another block protocol version";
		return -1;
	}
	if (!bs || bs > 65536 || (bs & (bs - 1)) || !size || size % bs || id > UINT32_MAX ||
	    max_io < bs || max_io > UINT32_MAX) {
		*why = "size, block_size, volume_id or max_io out of range";
		return -1;
	}
	if (!rec->peer) {
		*why = "no session to it (no message-layer node id or no endpoint in the record)";
		return -1;
	}
	const struct mlps_attr *ro = mlps_record_attr(rec, "ro");
	*out = (struct backend){
		.node_id = rec->node_id, .pid = rec->pid, .incarnation = rec->incarnation,
		.ml_node = rec->ml_node_id, .peer = rec->peer, .size = size,
		.block_size = (uint32_t)bs, .volume_id = (uint32_t)id, .max_io = (uint32_t)max_io,
		.ro = ro && ro->type == MLPS_BOOL && ro->v.b, .n_endpoints = rec->n_endpoints,
	};
	for (unsigned i = 0; i < 2 && i < rec->n_endpoints; i++)
		snprintf(out->endpoints[i], sizeof(out->endpoints[i]), "%s", rec->endpoints[i]);
	return 0;
}

static int find(const struct backends *b, const struct mlps_record *rec)
{
	for (unsigned i = 0; i < b->n; i++)
		if (b->list[i].node_id == rec->node_id && b->list[i].pid == rec->pid &&
		    b->list[i].incarnation == rec->incarnation)
			return (int)i;
	return -1;
}

/* A replacement must look like the volume we started with. */
static int same_geometry(const struct backend *x, const struct backend *y)
{
	return x->size == y->size && x->block_size == y->block_size;
}

static void choose(struct backends *b, int reason)
{
	for (unsigned i = 0; i < b->n; i++) {
		if (b->used && !same_geometry(&b->list[i], &b->first))
			continue;
		b->cur = (int)i;
		if (b->used)
			b->switches++;
		else
			b->first = b->list[i];
		b->used = 1;
		b->cb(b->arg, &b->list[i], reason);
		return;
	}
	b->cb(b->arg, NULL, reason);
}

static void on_event(void *arg, mlps_sub *sub, int event, int reason,
		     const struct mlps_record *rec, const struct mlps_record *old)
{
	(void)sub;
	(void)old;
	struct backends *b = arg;
	if (b->name[0] && strcmp(rec->name, b->name))
		return; /* another volume */
	int i = find(b, rec);
	if (event == MLPS_REMOVED) {
		if (i < 0)
			return;
		int was_cur = i == b->cur;
		memmove(&b->list[i], &b->list[i + 1], (b->n - (unsigned)i - 1) * sizeof(b->list[0]));
		b->n--;
		if (b->cur > i)
			b->cur--;
		if (was_cur) {
			b->cur = -1;
			choose(b, reason);
		}
		return;
	}
	struct backend nb;
	const char *why;
	if (from_record(rec, &nb, &why)) {
		fprintf(stderr, "ml-blockcli: %s from node %u pid %u not used: %s\n", rec->name,
			rec->node_id, rec->pid, why);
		return;
	}
	if (!b->name[0])
		snprintf(b->name, sizeof(b->name), "%s", rec->name);
	if (i >= 0) {
		b->list[i] = nb; /* an update: same session, perhaps more endpoints */
		return;
	}
	if (b->n == BACKENDS_MAX) {
		fprintf(stderr, "ml-blockcli: more than %d backends publish %s: node %u ignored\n",
			BACKENDS_MAX, rec->name, rec->node_id);
		return;
	}
	b->list[b->n++] = nb;
	if (b->cur < 0)
		choose(b, reason);
}

int backends_start(struct backends *b, mlps *ps, const char *volume, backends_cb cb, void *arg)
{
	memset(b, 0, sizeof(*b));
	b->ps = ps;
	b->cur = -1;
	b->cb = cb;
	b->arg = arg;
	char pattern[MLPS_NAME_MAX + 1] = "block/*";
	if (volume) {
		snprintf(b->name, sizeof(b->name), "block/%s", volume);
		snprintf(pattern, sizeof(pattern), "%s", b->name);
	}
	return mlps_subscribe(ps, pattern, NULL, on_event, b, &b->sub);
}

void backends_stop(struct backends *b)
{
	if (b->sub)
		mlps_unsubscribe(b->sub);
	b->sub = NULL;
}
