/*
 * admin_cmd.c - the admin socket's commands: one request line in, one JSON
 * answer out (doc/mlctl.md). Runs on the admin thread and uses only the
 * public, thread-safe API: ml_ctx_peers, ml_peer_stats_get, ml_peer_find,
 * ml_fault_set. admin.c owns the socket and the thread.
 */
#include "internal.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 8
#define ECHO_MAX 64 /* bytes of a bad word quoted back in "detail" */

static char *finish(struct ml_json *j, size_t *len)
{
	ml_json_raw(j, "\n");
	return ml_json_take(j, len);
}

char *ml_admin_error(int code, const char *error, const char *detail, size_t *len)
{
	struct ml_json j;
	ml_json_init(&j);
	ml_json_open(&j, NULL, '{');
	ml_json_bool(&j, "ok", 0);
	ml_json_i64(&j, "code", code);
	ml_json_str(&j, "error", error);
	ml_json_str(&j, "detail", detail);
	ml_json_close(&j, '}');
	return finish(&j, len);
}

/* An error with a formatted detail; a word quoted there is cut to ECHO_MAX. */
static char *fail(size_t *len, int code, const char *error, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static char *fail(size_t *len, int code, const char *error, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return ml_admin_error(code, error ? error : ml_strerror(code), detail, len);
}

/* ---- argument parsing ---- */

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1; /* no sign, no space, not empty */
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/* ---- status ---- */

static int by_node(const void *a, const void *b)
{
	uint32_t x = ml_peer_node_id(*(ml_peer *const *)a), y = ml_peer_node_id(*(ml_peer *const *)b);
	return x < y ? -1 : x > y;
}

static void path_json(struct ml_json *j, unsigned idx, const struct ml_path_stats *s)
{
	ml_json_open(j, NULL, '{');
	ml_json_u64(j, "index", idx);
	ml_json_strn(j, "url", s->url, sizeof(s->url));
	ml_json_str(j, "state", ml_path_state_name(s->state));
	ml_json_bool(j, "outbound", s->outbound);
	ml_json_u64(j, "frames_sent", s->frames_sent);
	ml_json_u64(j, "bytes_sent", s->bytes_sent);
	ml_json_u64(j, "frames_recv", s->frames_recv);
	ml_json_u64(j, "bytes_recv", s->bytes_recv);
	ml_json_u64(j, "frames_resent", s->frames_resent);
	ml_json_u64(j, "frames_failed_inflight", s->frames_failed_inflight);
	ml_json_u64(j, "frames_acked", s->frames_acked);
	ml_json_u64(j, "bytes_acked", s->bytes_acked);
	ml_json_u64(j, "bytes_copied", s->bytes_copied);
	ml_json_u64(j, "bytes_zcopy", s->bytes_zcopy);
	ml_json_u64(j, "inflight_frames", s->inflight_frames);
	ml_json_u64(j, "inflight_bytes", s->inflight_bytes);
	ml_json_u64(j, "connects", s->connects);
	ml_json_u64(j, "failures", s->failures);
	ml_json_u64(j, "suspects", s->suspects);
	ml_json_u64(j, "recoveries", s->recoveries);
	ml_json_u64(j, "probations", s->probations);
	ml_json_u64(j, "flaps", s->flaps);
	ml_json_u64(j, "silent_ms", s->silent_ms);
	if (s->fault)
		ml_json_str(j, "fault", ml_fault_name((int)s->fault));
	else
		ml_json_null(j, "fault");
	ml_json_double(j, "rtt_us", s->rtt_us, 1);
	ml_json_double(j, "rate_bps", s->rate_bps, 0);
	ml_json_str(j, "protect", ml_protect_name(s->protect));
	ml_json_strn(j, "reason", s->reason, sizeof(s->reason));
	ml_json_close(j, '}');
}

static void peer_json(struct ml_json *j, ml_peer *peer, struct ml_path_stats *ps)
{
	struct ml_peer_stats st;
	unsigned n = ML_MAX_PATHS;
	if (ml_peer_stats_get(peer, &st, ps, &n) != 0)
		return;
	if (n > ML_MAX_PATHS)
		n = ML_MAX_PATHS;
	ml_json_open(j, NULL, '{');
	ml_json_u64(j, "node_id", st.node_id);
	ml_json_u64(j, "incarnation", st.peer_incarnation);
	ml_json_u64(j, "paths_up", st.paths_up);
	ml_json_u64(j, "msgs_sent", st.msgs_sent);
	ml_json_u64(j, "bytes_sent", st.bytes_sent);
	ml_json_u64(j, "msgs_acked", st.msgs_acked);
	ml_json_u64(j, "msgs_recv", st.msgs_recv);
	ml_json_u64(j, "bytes_recv", st.bytes_recv);
	ml_json_u64(j, "frames_resent", st.frames_resent);
	ml_json_u64(j, "dup_frames", st.dup_frames);
	ml_json_u64(j, "inflight_msgs", st.inflight_msgs);
	ml_json_u64(j, "inflight_bytes", st.inflight_bytes);
	ml_json_u64(j, "queued_msgs", st.queued_msgs);
	ml_json_u64(j, "requests_pending", st.requests_pending);
	ml_json_u64(j, "refused", st.refused);
	ml_json_u64(j, "failed", st.failed);
	ml_json_u64(j, "restarts", st.restarts);
	ml_json_u64(j, "declared_down", st.declared_down);
	ml_json_u64(j, "limits_hit", st.limits_hit);
	ml_json_u64(j, "compressed_msgs", st.compressed_msgs);
	ml_json_u64(j, "compressed_in", st.compressed_in);
	ml_json_u64(j, "compressed_out", st.compressed_out);
	ml_json_u64(j, "expanded_msgs", st.expanded_msgs);
	ml_json_u64(j, "streams_open", st.streams_open);
	ml_json_u64(j, "streams_done", st.streams_done);
	ml_json_u64(j, "streams_failed", st.streams_failed);
	ml_json_u64(j, "streams_refused", st.streams_refused);
	ml_json_u64(j, "stream_chunks_sent", st.stream_chunks_sent);
	ml_json_u64(j, "stream_bytes_sent", st.stream_bytes_sent);
	ml_json_u64(j, "stream_chunks_recv", st.stream_chunks_recv);
	ml_json_u64(j, "stream_bytes_recv", st.stream_bytes_recv);
	ml_json_open(j, "paths", '[');
	for (unsigned i = 0; i < n; i++)
		path_json(j, i, &ps[i]);
	ml_json_close(j, ']');
	ml_json_close(j, '}');
}

static char *cmd_status(struct ml_ctx *ctx, size_t *len)
{
	/* Peers only come, never go, before ml_ctx_destroy: ask until the
	 * array holds them all. */
	ml_peer **peers = NULL;
	unsigned n = ml_ctx_peers(ctx, NULL, 0), cap = 0;
	while (n > cap) {
		cap = n + 8;
		ml_peer **p = realloc(peers, cap * sizeof(*p));
		if (!p) {
			free(peers);
			return NULL;
		}
		peers = p;
		n = ml_ctx_peers(ctx, peers, cap);
	}
	if (n > 1) /* (qsort wants an array even for none) */
		qsort(peers, n, sizeof(*peers), by_node);
	struct ml_path_stats *ps = malloc(ML_MAX_PATHS * sizeof(*ps));
	if (!ps) {
		free(peers);
		return NULL;
	}
	struct ml_json j;
	ml_json_init(&j);
	ml_json_open(&j, NULL, '{');
	ml_json_bool(&j, "ok", 1);
	ml_json_u64(&j, "node_id", ml_ctx_node_id(ctx));
	ml_json_u64(&j, "incarnation", ml_ctx_incarnation(ctx));
	ml_json_open(&j, "peers", '[');
	for (unsigned i = 0; i < n; i++)
		peer_json(&j, peers[i], ps);
	ml_json_close(&j, ']');
	ml_json_close(&j, '}');
	free(ps);
	free(peers);
	return finish(&j, len);
}

/* ---- fault, clear ---- */

static char *cmd_fault(struct ml_ctx *ctx, char **w, int nw, int clear, size_t *len)
{
	static const char usage_fault[] = "usage: fault NODE PATH|all KIND [VALUE [DURATION_S]]";
	static const char usage_clear[] = "usage: clear NODE PATH|all";
	struct ml_fault_spec spec = { .fault = ML_FAULT_CLEAR };
	uint32_t node, path_idx = 0;
	int all;

	if (clear ? nw != 3 : nw < 4 || nw > 6)
		return fail(len, ML_EINVAL, NULL, "%s", clear ? usage_clear : usage_fault);
	if (parse_u32(w[1], &node) != 0)
		return fail(len, ML_EINVAL, NULL, "bad node id '%.*s'", ECHO_MAX, w[1]);
	all = !strcmp(w[2], "all");
	if (!all && parse_u32(w[2], &path_idx) != 0)
		return fail(len, ML_EINVAL, NULL, "bad path index '%.*s' (a number or all)", ECHO_MAX,
			    w[2]);
	if (!clear) {
		spec.fault = ml_fault_parse(w[3]);
		if (!spec.fault)
			return fail(len, ML_EINVAL, NULL,
				    "unknown fault '%.*s' (shutdown, reset, blackhole, blackhole-tx, "
				    "blackhole-rx, drop, delay, clear, bad-key)", ECHO_MAX, w[3]);
		if (nw > 4 && parse_double(w[4], &spec.value) != 0)
			return fail(len, ML_EINVAL, NULL, "bad value '%.*s'", ECHO_MAX, w[4]);
		if (nw > 5 && parse_double(w[5], &spec.duration_s) != 0)
			return fail(len, ML_EINVAL, NULL, "bad duration '%.*s'", ECHO_MAX, w[5]);
	}
	ml_peer *peer = node ? ml_peer_find(ctx, node) : NULL;
	if (!peer)
		return fail(len, ML_ENOENT, NULL, "no peer with node id %u", node);
	struct ml_peer_stats st;
	unsigned npaths = 0;
	ml_peer_stats_get(peer, &st, NULL, &npaths);
	if (all && npaths == 0)
		return fail(len, ML_ENOENT, NULL, "peer %u has no paths", node);
	unsigned first = all ? 0 : path_idx, count = all ? npaths : 1;
	for (unsigned i = first; i - first < count; i++) {
		int rc = ml_fault_set(peer, i, &spec);
		if (rc == ML_ENOENT)
			return fail(len, rc, NULL, "peer %u has %u path%s (index 0..%u)", node, npaths,
				    npaths == 1 ? "" : "s", npaths ? npaths - 1 : 0);
		if (rc == ML_EINVAL)
			return fail(len, rc, NULL,
				    "value or duration out of range for %s (drop: 0..1, delay: 0..60 s; "
				    "duration >= 0 s)", ml_fault_name(spec.fault));
		if (rc)
			return fail(len, rc, NULL, "fault %s on peer %u path %u", ml_fault_name(spec.fault),
				    node, i);
	}
	struct ml_json j;
	ml_json_init(&j);
	ml_json_open(&j, NULL, '{');
	ml_json_bool(&j, "ok", 1);
	ml_json_u64(&j, "node_id", node);
	ml_json_open(&j, "paths", '[');
	for (unsigned i = first; i - first < count; i++)
		ml_json_u64(&j, NULL, i);
	ml_json_close(&j, ']');
	ml_json_str(&j, "fault", ml_fault_name(spec.fault));
	ml_json_double(&j, "value", spec.value, 6);
	ml_json_double(&j, "duration_s", spec.duration_s, 3);
	ml_json_close(&j, '}');
	return finish(&j, len);
}

/* ---- version ---- */

static char *cmd_version(size_t *len)
{
	char v[32];
	struct ml_json j;
	snprintf(v, sizeof(v), "%d.%d", ML_VERSION_MAJOR, ML_VERSION_MINOR);
	ml_json_init(&j);
	ml_json_open(&j, NULL, '{');
	ml_json_bool(&j, "ok", 1);
	ml_json_str(&j, "version", v);
	ml_json_u64(&j, "protocol", ML_ADMIN_PROTOCOL);
	ml_json_u64(&j, "wire_protocol", ML_WIRE_VERSION);
	ml_json_close(&j, '}');
	return finish(&j, len);
}

char *ml_admin_run(struct ml_ctx *ctx, char *line, size_t *len)
{
	char *w[MAX_WORDS];
	int nw = 0;
	for (char *s = line;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (nw == MAX_WORDS)
			return ml_admin_error(ML_EINVAL, "bad request", "too many words", len);
		w[nw++] = s;
		while (*s && *s != ' ' && *s != '\t')
			s++;
		if (*s)
			*s++ = 0;
	}
	if (nw == 0)
		return ml_admin_error(ML_EINVAL, "bad request", "empty request", len);
	if (!strcmp(w[0], "status")) {
		if (nw != 1)
			return fail(len, ML_EINVAL, NULL, "usage: status");
		return cmd_status(ctx, len);
	}
	if (!strcmp(w[0], "fault"))
		return cmd_fault(ctx, w, nw, 0, len);
	if (!strcmp(w[0], "clear"))
		return cmd_fault(ctx, w, nw, 1, len);
	if (!strcmp(w[0], "version")) {
		if (nw != 1)
			return fail(len, ML_EINVAL, NULL, "usage: version");
		return cmd_version(len);
	}
	return fail(len, ML_EINVAL, "unknown command",
		    "'%.*s'; commands: status, fault, clear, version", ECHO_MAX, w[0]);
}
