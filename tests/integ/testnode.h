/* testnode.h - a context under test that keeps what it logged, and the
 * waits built on it: the integration tests' common harness (worker mode).
 * Every callback signals cv; the test thread waits on it with a deadline
 * of TEST_WAIT_S (define it before including to change it). */
#ifndef ML_TEST_NODE_H
#define ML_TEST_NODE_H

#include "check.h"
#include "msglayer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_WAIT_S
#define TEST_WAIT_S 10.0
#endif

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static inline void wake(void)
{
	pthread_mutex_lock(&mu);
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Waits until pred(arg) holds (checked after every callback, and every
 * 50 ms); fails the test after TEST_WAIT_S. */
static inline void wait_for(int (*pred)(void *), void *arg, const char *what)
{
	pthread_mutex_lock(&mu);
	int reached = check_wait(&mu, &cv, pred, arg, TEST_WAIT_S);
	pthread_mutex_unlock(&mu);
	CHECK(reached, "timed out waiting for %s", what);
}

struct node {
	ml_ctx *ctx;
	char log[16384]; /* under mu */
	size_t log_len;
	int delivered;   /* requests (and messages) its application was given */
};

static inline void node_log(void *arg, int level, const char *text)
{
	struct node *n = arg;
	pthread_mutex_lock(&mu);
	int w = snprintf(n->log + n->log_len, sizeof(n->log) - n->log_len, "%d %s\n", level, text);
	if (w > 0 && n->log_len + (size_t)w < sizeof(n->log))
		n->log_len += (size_t)w;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	if (getenv("ML_TEST_VERBOSE"))
		fprintf(stderr, "  (log %d: %s)\n", level, text);
}

/* on_request: echo the request, copied. */
static inline void node_echo(void *arg, ml_peer *from, ml_request *req, const struct ml_msg *msg)
{
	struct node *n = arg;
	(void)from;
	__atomic_fetch_add(&n->delivered, 1, __ATOMIC_RELAXED);
	struct ml_buf b = ml_buf_plain(msg->data, msg->len);
	ml_respond(req, &b, 1, ML_SEND_COPY, NULL, NULL);
}

/* on_path_event: wake the waits (path counts changed). */
static inline void node_on_path(void *arg, ml_peer *peer, unsigned idx, int old_state,
				int new_state, const char *reason)
{
	(void)arg;
	(void)peer;
	(void)idx;
	(void)old_state;
	(void)new_state;
	(void)reason;
	wake();
}

struct log_goal {
	struct node *n;
	const char *text;
};

static inline int logged(void *arg) /* called under mu */
{
	struct log_goal *g = arg;
	return strstr(g->n->log, g->text) != NULL;
}

static inline void wait_log(struct node *n, const char *text)
{
	struct log_goal g = { n, text };
	char what[256];
	snprintf(what, sizeof(what), "\"%s\" in the log of node %u", text, ml_ctx_node_id(n->ctx));
	wait_for(logged, &g, what);
}

static inline int has_log(struct node *n, const char *text)
{
	pthread_mutex_lock(&mu);
	int yes = strstr(n->log, text) != NULL;
	pthread_mutex_unlock(&mu);
	return yes;
}

struct up_goal {
	ml_peer *peer;
	unsigned paths;
};

static inline int paths_up(void *arg)
{
	struct up_goal *g = arg;
	struct ml_peer_stats st;
	return ml_peer_stats_get(g->peer, &st, NULL, NULL) == 0 && st.paths_up >= g->paths;
}

static inline void wait_up(ml_peer *peer, unsigned n, const char *what)
{
	struct up_goal g = { peer, n };
	wait_for(paths_up, &g, what);
}

#endif
