/*
 * registry.h - the replicated view: every resource this process has been
 * told about, keyed by (publisher, name), and the subscriptions to it.
 *
 * Pure logic: the CPG backend feeds it what Corosync delivers, in agreed
 * order, and the membership changes; tests feed it directly. A publisher is
 * one handle: (node id, pid, incarnation). Single-threaded. Callbacks may
 * subscribe and unsubscribe, but must not change the view (the mutating
 * calls return ML_EINVAL while callbacks run).
 */
#ifndef MLPS_REGISTRY_H
#define MLPS_REGISTRY_H

#include <stdint.h>

#include "match.h"
#include "mlpubsub.h"

struct mlps_reg;

struct mlps_reg *mlps_reg_new(void);
/* Free the view and every subscription, without callbacks. */
void mlps_reg_free(struct mlps_reg *reg);
unsigned mlps_reg_count(const struct mlps_reg *reg);

/* A publisher's full record (publish, update or re-announce); the registry
 * takes rec. Newer version than the one held: stored, subscribers told
 * (nothing if only the version changed). Same or older: dropped as a
 * duplicate or stale. Returns 1 stored, 0 dropped, ML_EINVAL. */
int mlps_reg_publish(struct mlps_reg *reg, struct mlps_record *rec);
/* Withdraw (name, node_id, pid, incarnation, version of w): removed if held
 * with an older or equal version. Returns 1 removed, 0 not held or stale. */
int mlps_reg_withdraw(struct mlps_reg *reg, const struct mlps_record *w);
/* Remove everything of one publisher handle (reason WITHDRAWN), of a CPG
 * member (node, pid) with reason PUBLISHER_LEFT or NODE_LEFT, of a node
 * (NODE_LEFT), or all (reason given). Each returns how many were removed. */
int mlps_reg_bye(struct mlps_reg *reg, uint32_t node_id, uint32_t pid, uint64_t incarnation);
int mlps_reg_member_left(struct mlps_reg *reg, uint32_t node_id, uint32_t pid, int reason);
int mlps_reg_node_left(struct mlps_reg *reg, uint32_t node_id);
int mlps_reg_clear(struct mlps_reg *reg, int reason);
/* The distinct message-layer node ids (non-zero) in the records of node_id
 * (pid 0: of any of its processes), up to max into out; returns how many
 * were written. */
unsigned mlps_reg_ml_nodes(const struct mlps_reg *reg, uint32_t node_id, uint32_t pid,
			   uint32_t *out, unsigned max);

/* Called on a copy of each record before a subscriber's callback gets it
 * (owner: the subscription's), to fill in what depends on the subscriber
 * (rec->peer). May not change the view. */
typedef void (*mlps_reg_view_fn)(void *owner, int event, struct mlps_record *view);
void mlps_reg_set_view(struct mlps_reg *reg, mlps_reg_view_fn fn);

/* Subscribe with a parsed pattern and filter (copied). *out is set, then the
 * snapshot (every match, MLPS_ADDED/MLPS_R_SNAPSHOT) is delivered, then the
 * changes. owner is the caller's (the handle that made it). 0 or ML_ENOMEM. */
int mlps_reg_subscribe(struct mlps_reg *reg, const struct mlps_pattern *pattern,
		       const struct mlps_filter *filter, mlps_event_cb cb, void *arg, void *owner,
		       mlps_sub **out);
/* No callback for sub after this; safe inside callbacks. */
void mlps_reg_unsubscribe(mlps_sub *sub);
/* Unsubscribe every subscription of owner. */
void mlps_reg_unsubscribe_owner(struct mlps_reg *reg, void *owner);

#endif
