/* registry.c - the replicated view of resources and its subscriptions. */
#include <stdlib.h>
#include <string.h>

#include "msglayer.h"
#include "record.h"
#include "registry.h"

struct entry {
	struct mlps_record *rec;
	uint64_t hash;
	struct entry *chain;       /* next in the hash bucket */
	struct entry *prev, *next; /* all entries, oldest first */
};

struct mlps_sub {
	struct mlps_reg *reg;
	struct mlps_pattern pattern;
	struct mlps_filter filter;
	mlps_event_cb cb;
	void *arg, *owner;
	uint64_t since; /* events numbered <= since happened before: the snapshot had them */
	int dead;       /* unsubscribed while callbacks ran: freed afterwards */
	struct mlps_sub *prev, *next;
};

struct mlps_reg {
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	unsigned count;
	struct entry *head, *tail;
	struct mlps_sub *subs, *subs_tail;
	mlps_reg_view_fn view;
	uint64_t seq;  /* number of the last event */
	int depth;     /* callbacks running */
	int has_dead;
};

static uint64_t key_hash(uint32_t node, uint32_t pid, uint64_t inc, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	const uint64_t prime = 0x100000001b3ull;
	uint64_t ids[2] = { (uint64_t)node << 32 | pid, inc };
	const unsigned char *p = (const unsigned char *)ids;
	for (size_t i = 0; i < sizeof(ids); i++)
		h = (h ^ p[i]) * prime;
	for (p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * prime;
	return h;
}

static int same_key(const struct mlps_record *a, const struct mlps_record *b)
{
	return a->node_id == b->node_id && a->pid == b->pid && a->incarnation == b->incarnation &&
	       !strcmp(a->name, b->name);
}

struct mlps_reg *mlps_reg_new(void)
{
	struct mlps_reg *reg = calloc(1, sizeof(*reg));
	if (!reg)
		return NULL;
	reg->nbuckets = 64;
	reg->buckets = calloc(reg->nbuckets, sizeof(*reg->buckets));
	if (!reg->buckets) {
		free(reg);
		return NULL;
	}
	return reg;
}

void mlps_reg_free(struct mlps_reg *reg)
{
	if (!reg)
		return;
	for (struct entry *e = reg->head, *n; e; e = n) {
		n = e->next;
		mlps_rec_free(e->rec);
		free(e);
	}
	for (struct mlps_sub *s = reg->subs, *n; s; s = n) {
		n = s->next;
		free(s);
	}
	free(reg->buckets);
	free(reg);
}

unsigned mlps_reg_count(const struct mlps_reg *reg)
{
	return reg->count;
}

static struct entry *find(struct mlps_reg *reg, const struct mlps_record *key, uint64_t h)
{
	for (struct entry *e = reg->buckets[h & (reg->nbuckets - 1)]; e; e = e->chain)
		if (e->hash == h && same_key(e->rec, key))
			return e;
	return NULL;
}

static void grow(struct mlps_reg *reg)
{
	size_t n = reg->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* keep the longer chains */
	for (struct entry *e = reg->head; e; e = e->next) {
		e->chain = b[e->hash & (n - 1)];
		b[e->hash & (n - 1)] = e;
	}
	free(reg->buckets);
	reg->buckets = b;
	reg->nbuckets = n;
}

static void unlink_entry(struct mlps_reg *reg, struct entry *e)
{
	struct entry **pp = &reg->buckets[e->hash & (reg->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	if (e->prev)
		e->prev->next = e->next;
	else
		reg->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		reg->tail = e->prev;
	reg->count--;
}

static int sub_matches(const struct mlps_sub *s, const struct mlps_record *r)
{
	return mlps_pattern_match(&s->pattern, r->name) && mlps_filter_match(&s->filter, r);
}

static void sweep(struct mlps_reg *reg)
{
	if (reg->depth || !reg->has_dead)
		return;
	for (struct mlps_sub *s = reg->subs, *n; s; s = n) {
		n = s->next;
		if (!s->dead)
			continue;
		if (s->prev)
			s->prev->next = s->next;
		else
			reg->subs = s->next;
		if (s->next)
			s->next->prev = s->prev;
		else
			reg->subs_tail = s->prev;
		free(s);
	}
	reg->has_dead = 0;
}

/* One callback, through the view hook when there is one. */
static void deliver(struct mlps_reg *reg, struct mlps_sub *s, int event, int reason,
		    const struct mlps_record *rec, const struct mlps_record *old)
{
	if (!reg->view) {
		s->cb(s->arg, s, event, reason, rec, old);
		return;
	}
	struct mlps_record v = *rec, o;
	reg->view(s->owner, event, &v);
	if (old) {
		o = *old;
		o.peer = v.peer;
	}
	s->cb(s->arg, s, event, reason, &v, old ? &o : NULL);
}

/* Tell every subscription that existed before this event. old: the record
 * before (NULL if new); now: after (NULL if removed, then reason says why). */
static void notify(struct mlps_reg *reg, const struct mlps_record *old, const struct mlps_record *now,
		   int reason)
{
	uint64_t seq = ++reg->seq;
	reg->depth++;
	for (struct mlps_sub *s = reg->subs; s; s = s->next) {
		if (s->dead || s->since >= seq)
			continue;
		int om = old && sub_matches(s, old), nm = now && sub_matches(s, now);
		if (om && nm)
			deliver(reg, s, MLPS_CHANGED, MLPS_R_UPDATED, now, old);
		else if (nm)
			deliver(reg, s, MLPS_ADDED, old ? MLPS_R_NOW_MATCHES : MLPS_R_PUBLISHED, now,
				NULL);
		else if (om && now)
			deliver(reg, s, MLPS_REMOVED, MLPS_R_NO_LONGER_MATCHES, now, old);
		else if (om)
			deliver(reg, s, MLPS_REMOVED, reason, old, NULL);
	}
	reg->depth--;
	sweep(reg);
}

int mlps_reg_publish(struct mlps_reg *reg, struct mlps_record *rec)
{
	if (reg->depth) {
		mlps_rec_free(rec);
		return ML_EINVAL;
	}
	uint64_t h = key_hash(rec->node_id, rec->pid, rec->incarnation, rec->name);
	struct entry *e = find(reg, rec, h);
	if (e) {
		if (rec->version <= e->rec->version) {
			mlps_rec_free(rec); /* duplicate (re-announce) or stale */
			return 0;
		}
		struct mlps_record *old = e->rec;
		e->rec = rec;
		if (!mlps_rec_same_content(old, rec))
			notify(reg, old, rec, 0);
		mlps_rec_free(old);
		return 1;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		mlps_rec_free(rec);
		return ML_ENOMEM;
	}
	e->rec = rec;
	e->hash = h;
	if (reg->count >= reg->nbuckets)
		grow(reg);
	e->chain = reg->buckets[h & (reg->nbuckets - 1)];
	reg->buckets[h & (reg->nbuckets - 1)] = e;
	e->prev = reg->tail;
	if (reg->tail)
		reg->tail->next = e;
	else
		reg->head = e;
	reg->tail = e;
	reg->count++;
	notify(reg, NULL, rec, 0);
	return 1;
}

static void remove_entry(struct mlps_reg *reg, struct entry *e, int reason)
{
	unlink_entry(reg, e);
	notify(reg, e->rec, NULL, reason);
	mlps_rec_free(e->rec);
	free(e);
}

int mlps_reg_withdraw(struct mlps_reg *reg, const struct mlps_record *w)
{
	if (reg->depth)
		return ML_EINVAL;
	struct entry *e = find(reg, w, key_hash(w->node_id, w->pid, w->incarnation, w->name));
	if (!e || w->version < e->rec->version)
		return 0;
	remove_entry(reg, e, MLPS_R_WITHDRAWN);
	return 1;
}

enum { BY_HANDLE, BY_MEMBER, BY_NODE, BY_ALL };

static int remove_where(struct mlps_reg *reg, int by, uint32_t node, uint32_t pid, uint64_t inc,
			int reason)
{
	if (reg->depth)
		return ML_EINVAL;
	int n = 0;
	for (struct entry *e = reg->head, *next; e; e = next) {
		next = e->next;
		const struct mlps_record *r = e->rec;
		int hit = by == BY_ALL ||
			  (r->node_id == node &&
			   (by == BY_NODE || (r->pid == pid && (by == BY_MEMBER || r->incarnation == inc))));
		if (hit) {
			remove_entry(reg, e, reason);
			n++;
		}
	}
	return n;
}

int mlps_reg_bye(struct mlps_reg *reg, uint32_t node_id, uint32_t pid, uint64_t incarnation)
{
	return remove_where(reg, BY_HANDLE, node_id, pid, incarnation, MLPS_R_WITHDRAWN);
}

int mlps_reg_member_left(struct mlps_reg *reg, uint32_t node_id, uint32_t pid, int reason)
{
	return remove_where(reg, BY_MEMBER, node_id, pid, 0, reason);
}

int mlps_reg_node_left(struct mlps_reg *reg, uint32_t node_id)
{
	return remove_where(reg, BY_NODE, node_id, 0, 0, MLPS_R_NODE_LEFT);
}

int mlps_reg_clear(struct mlps_reg *reg, int reason)
{
	return remove_where(reg, BY_ALL, 0, 0, 0, reason);
}

unsigned mlps_reg_ml_nodes(const struct mlps_reg *reg, uint32_t node_id, uint32_t pid,
			   uint32_t *out, unsigned max)
{
	unsigned n = 0;
	for (const struct entry *e = reg->head; e && n < max; e = e->next) {
		const struct mlps_record *r = e->rec;
		if (r->node_id != node_id || (pid && r->pid != pid) || !r->ml_node_id)
			continue;
		unsigned i = 0;
		while (i < n && out[i] != r->ml_node_id)
			i++;
		if (i == n)
			out[n++] = r->ml_node_id;
	}
	return n;
}

void mlps_reg_set_view(struct mlps_reg *reg, mlps_reg_view_fn fn)
{
	reg->view = fn;
}

int mlps_reg_subscribe(struct mlps_reg *reg, const struct mlps_pattern *pattern,
		       const struct mlps_filter *filter, mlps_event_cb cb, void *arg, void *owner,
		       mlps_sub **out)
{
	struct mlps_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return ML_ENOMEM;
	s->reg = reg;
	s->pattern = *pattern;
	s->filter = *filter;
	s->cb = cb;
	s->arg = arg;
	s->owner = owner;
	s->since = reg->seq;
	s->prev = reg->subs_tail;
	if (reg->subs_tail)
		reg->subs_tail->next = s;
	else
		reg->subs = s;
	reg->subs_tail = s;
	*out = s;
	/* The snapshot: the view cannot change while it runs (callbacks may not
	 * mutate it), and the events after it are numbered above since. */
	reg->depth++;
	for (struct entry *e = reg->head; e && !s->dead; e = e->next)
		if (sub_matches(s, e->rec))
			deliver(reg, s, MLPS_ADDED, MLPS_R_SNAPSHOT, e->rec, NULL);
	reg->depth--;
	sweep(reg);
	return 0;
}

void mlps_reg_unsubscribe(mlps_sub *s)
{
	if (!s || s->dead)
		return;
	struct mlps_reg *reg = s->reg;
	s->dead = 1;
	reg->has_dead = 1;
	sweep(reg);
}

void mlps_reg_unsubscribe_owner(struct mlps_reg *reg, void *owner)
{
	for (struct mlps_sub *s = reg->subs; s; s = s->next)
		if (s->owner == owner && !s->dead) {
			s->dead = 1;
			reg->has_dead = 1;
		}
	sweep(reg);
}
