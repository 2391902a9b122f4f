/*
 * mlpubsub.h - publish/subscribe resource discovery over Corosync CPG.
 *
 * Publishers announce resources: a hierarchical name ("block/vol0"), typed
 * attributes and the endpoints that reach them. Subscribers give a name
 * pattern and an attribute filter and are told when a matching resource is
 * added, changed or removed, always with the full record. Every process
 * keeps a replicated view of the group; Corosync's CPG orders the messages
 * (agreed order) and reports membership, so the resources of a process or
 * node that leaves are removed everywhere at once.
 *
 * Threading: a handle lives on the caller's libev loop. Call every function
 * on the thread that runs that loop. Callbacks run inside ev_run (and, for
 * the snapshot, inside mlps_subscribe) and must not block; they may call any
 * function here except mlps_destroy.
 *
 * Errors: functions return 0 or a negative status (ML_E* from msglayer.h, or
 * MLPS_E* below); mlps_strerror() gives its text and mlps_last_error() the
 * details of the last failure on this thread ("filter: column 5: ...").
 *
 * doc/discovery.md is the reference; this header is the contract.
 */
#ifndef MLPUBSUB_H
#define MLPUBSUB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes of their own (the generic ones are msglayer.h's ML_E*:
 * ML_EINVAL, ML_ENOMEM, ML_EEXIST, ML_ENOENT, ML_ETOOBIG). */
#define MLPS_ECOROSYNC (-100)  /* Corosync is not running or refused the request */
#define MLPS_EMALFORMED (-101) /* a discovery message is malformed (dropped) */
#define MLPS_EBUSY (-102)      /* the group is joined by this process on another loop */

/* Text for any status (MLPS_E* and ML_E*); never NULL. */
const char *mlps_strerror(int status);
/* Details of the last failing call on this thread (never NULL; "" if none). */
const char *mlps_last_error(void);

/* ---- limits ------------------------------------------------------------- */

#define MLPS_NAME_MAX 255      /* resource name bytes */
#define MLPS_ATTRS_MAX 32      /* attributes per record */
#define MLPS_ATTR_NAME_MAX 32  /* attribute name bytes */
#define MLPS_VALUE_MAX 1024    /* string or bytes value */
#define MLPS_ENDPOINTS_MAX 16  /* endpoints per record */
#define MLPS_ENDPOINT_MAX 255  /* endpoint URL bytes */

/* ---- records -------------------------------------------------------------- */

enum mlps_attr_type {
	MLPS_U64 = 1,
	MLPS_I64 = 2,
	MLPS_STR = 3,   /* NUL-terminated text, no control characters */
	MLPS_BOOL = 4,
	MLPS_BYTES = 5,
};

/* An attribute. name: 1..32 bytes of [A-Za-z0-9_.-], first a letter or '_';
 * names are unique within a record. */
struct mlps_attr {
	const char *name;
	int type; /* enum mlps_attr_type */
	union {
		uint64_t u64;
		int64_t i64;
		int b; /* 0 or 1 */
		const char *str;
		struct {
			const void *data;
			size_t len;
		} bytes;
	} v;
};

static inline struct mlps_attr mlps_attr_u64(const char *name, uint64_t v)
{
	struct mlps_attr a = { name, MLPS_U64, { 0 } };
	a.v.u64 = v;
	return a;
}
static inline struct mlps_attr mlps_attr_i64(const char *name, int64_t v)
{
	struct mlps_attr a = { name, MLPS_I64, { 0 } };
	a.v.i64 = v;
	return a;
}
static inline struct mlps_attr mlps_attr_str(const char *name, const char *v)
{
	struct mlps_attr a = { name, MLPS_STR, { 0 } };
	a.v.str = v;
	return a;
}
static inline struct mlps_attr mlps_attr_bool(const char *name, int v)
{
	struct mlps_attr a = { name, MLPS_BOOL, { 0 } };
	a.v.b = !!v;
	return a;
}
static inline struct mlps_attr mlps_attr_bytes(const char *name, const void *p, size_t len)
{
	struct mlps_attr a = { name, MLPS_BYTES, { 0 } };
	a.v.bytes.data = p;
	a.v.bytes.len = len;
	return a;
}

/* A resource as a subscriber sees it. Valid only during the callback that
 * passes it (copy what you keep). String values are NUL-terminated. */
struct mlps_record {
	const char *name;       /* "block/vol0": components of printable ASCII without
	                           '*' and '?', separated by single '/' */
	uint32_t node_id;       /* publisher's Corosync node id */
	uint32_t pid;           /* publisher's process id (its CPG member) */
	uint64_t incarnation;   /* the publishing handle: random, drawn at mlps_create */
	uint64_t version;       /* publisher's counter: grows with every change it makes */
	unsigned n_attrs;
	const struct mlps_attr *attrs;
	unsigned n_endpoints;
	const char *const *endpoints; /* "tcp://10.0.1.5:7400", ... */
	uint32_t ml_node_id;    /* the publisher's message-layer node id (its
	                           mlps_config.msg_ctx), 0 if it gave none */
	struct ml_peer *peer;   /* our session to the publisher, in our msg_ctx:
	                           opened for us with connect_publishers, else the
	                           one that exists; NULL if none */
};

/* The attribute called name, or NULL. */
const struct mlps_attr *mlps_record_attr(const struct mlps_record *rec, const char *name);

/* ---- handle --------------------------------------------------------------- */

typedef struct mlps mlps;
typedef struct mlps_sub mlps_sub;

struct ev_loop;
struct ml_ctx;

struct mlps_config {
	const char *group;       /* CPG group name (1..127 bytes); default "msglayer" */
	int wait_for_corosync;   /* 0 (default): mlps_create fails with MLPS_ECOROSYNC when
	                            Corosync does not answer; 1: it succeeds and connects in
	                            the background, with backoff */
	double retry_min_s;      /* first retry / reconnect delay (0.01 s) */
	double retry_max_s;      /* backoff cap (1 s) */

	/* The message layer (optional). With msg_ctx set, our records carry its
	 * node id, and the sessions in it to publishers whose node or process
	 * fails (Corosync: node down, process down; not a clean leave) are
	 * declared down (ml_peer_declare_down: their outstanding requests fail
	 * with ML_EPEERDOWN at once). */
	struct ml_ctx *msg_ctx;
	/* With msg_ctx: before a subscriber of this handle sees a record added
	 * or changed, a session to its publisher is opened (or extended) over
	 * the record's endpoints (ml_peer_add), and rec->peer is it. */
	int connect_publishers;

	/* A node left the membership (Corosync saw it fail or stop): its
	 * resources are already removed and the subscribers told. */
	void (*on_node_left)(void *arg, uint32_t node_id);
	/* The connection to Corosync went down (up 0: status and text say why;
	 * the view is emptied, with MLPS_R_DISCONNECTED removals, and
	 * reconnection starts) or the group was joined (up 1: at start and
	 * after every reconnection; our resources are being (re-)published). */
	void (*on_corosync)(void *arg, int up, int status, const char *text);
	void *cb_arg;
	/* Log (level as msglayer's enum ml_log_level); default: stderr, warnings and errors. */
	void (*log)(void *arg, int level, const char *text);
	void *log_arg;
};

void mlps_config_init(struct mlps_config *cfg);

/* Connect to the local Corosync, join the group, watch the CPG fd on loop.
 * Several handles of one process on one group share a CPG member (Corosync
 * allows one per process and group): they must use the same loop.
 * Errors: ML_EINVAL, ML_ENOMEM, MLPS_ECOROSYNC (not running, see
 * mlps_last_error), MLPS_EBUSY. cfg may be NULL (defaults). */
int mlps_create(struct ev_loop *loop, const struct mlps_config *cfg, mlps **out);

/* Withdraw everything this handle published (other members are told: by
 * CPG leave when this was the process's last handle on the group),
 * unsubscribe its subscriptions without callbacks, free it. */
void mlps_destroy(mlps *ps);

/* This node's Corosync node id (0 while not connected). */
uint32_t mlps_node_id(const mlps *ps);
/* 1 while joined to the group. */
int mlps_connected(const mlps *ps);

/* Publish a resource (name unique per handle). The record is sent now if
 * connected, else when the connection is back; subscribers (ours too) see it
 * when CPG delivers it. Errors: ML_EINVAL (bad name, attribute or endpoint;
 * see mlps_last_error), ML_EEXIST, ML_ETOOBIG, ML_ENOMEM. */
int mlps_publish(mlps *ps, const char *name, const struct mlps_attr *attrs, unsigned n_attrs,
		 const char *const *endpoints, unsigned n_endpoints);
/* Replace the attributes (and the endpoints, unless endpoints is NULL) of a
 * resource this handle published. Errors: as mlps_publish; ML_ENOENT. */
int mlps_update(mlps *ps, const char *name, const struct mlps_attr *attrs, unsigned n_attrs,
		const char *const *endpoints, unsigned n_endpoints);
/* Withdraw a resource this handle published. Errors: ML_EINVAL, ML_ENOENT. */
int mlps_withdraw(mlps *ps, const char *name);

/* ---- subscriptions ---------------------------------------------------------- */

enum mlps_event { MLPS_ADDED = 1, MLPS_CHANGED = 2, MLPS_REMOVED = 3 };

enum mlps_reason {
	MLPS_R_SNAPSHOT = 1,       /* added: it existed when you subscribed */
	MLPS_R_PUBLISHED = 2,      /* added: newly published (or first seen) */
	MLPS_R_UPDATED = 3,        /* changed: the publisher updated it */
	MLPS_R_NOW_MATCHES = 4,    /* added: an update made it match the filter */
	MLPS_R_NO_LONGER_MATCHES = 5, /* removed: an update made it fail the filter */
	MLPS_R_WITHDRAWN = 6,      /* removed: the publisher withdrew it (or its handle) */
	MLPS_R_PUBLISHER_LEFT = 7, /* removed: the publishing process left the group */
	MLPS_R_NODE_LEFT = 8,      /* removed: the publisher's node left the membership */
	MLPS_R_DISCONNECTED = 9,   /* removed: our own Corosync connection was lost */
};
const char *mlps_reason_name(int reason);

/* One callback for all events. rec: the record now (removed: as it was);
 * old: the previous record for MLPS_CHANGED, else NULL. */
typedef void (*mlps_event_cb)(void *arg, mlps_sub *sub, int event, int reason,
			      const struct mlps_record *rec, const struct mlps_record *old);

/* Subscribe. pattern (NULL or "": everything):
 *   "block/"        prefix: every name that starts with it
 *   "block/vol?"    glob: '?' one character, '*' any run of characters within
 *                   one component
 *   "**"            as a whole component: any number of components, as in
 *                   fs/ ** /snap (written without the spaces)
 * filter (NULL or "": none): conditions joined by "&&", each
 *   ATTR OP VALUE (OP one of = != < <= > >=) or ATTR exists;
 *   VALUE an integer, true/false, a word or a "quoted string".
 *   Example: "size>=1073741824 && ro=false && proto exists".
 * *out is set, then every matching resource in the view is passed to cb
 * (MLPS_ADDED, MLPS_R_SNAPSHOT) before this returns; later changes follow,
 * with no window in which one is missed or reported twice.
 * Errors: ML_EINVAL (pattern or filter syntax: see mlps_last_error), ML_ENOMEM. */
int mlps_subscribe(mlps *ps, const char *pattern, const char *filter, mlps_event_cb cb,
		   void *arg, mlps_sub **out);
/* No callback runs for sub after this returns (allowed inside cb). */
void mlps_unsubscribe(mlps_sub *sub);

#ifdef __cplusplus
}
#endif
#endif /* MLPUBSUB_H */
