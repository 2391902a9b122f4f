/* report.c - ml-blockcli's progress lines and summary (report.h). */
#include "report.h"

#include <inttypes.h>
#include <string.h>

#define SAMPLE_S 0.02      /* fault-window sampling */
#define AFTERMATH_S 1.0    /* stalls this soon after a fault begins or ends are its doing */

static const char *fmt_us(double us, char *buf, size_t n)
{
	if (us < 10e3)
		snprintf(buf, n, "%.2f ms", us / 1e3);
	else if (us < 1e6)
		snprintf(buf, n, "%.1f ms", us / 1e3);
	else
		snprintf(buf, n, "%.2f s", us / 1e6);
	return buf;
}

static const char *fmt_bytes(double b, char *buf, size_t n)
{
	if (b < 1e6)
		snprintf(buf, n, "%.1f kB", b / 1e3);
	else if (b < 1e9)
		snprintf(buf, n, "%.1f MB", b / 1e6);
	else
		snprintf(buf, n, "%.2f GB", b / 1e9);
	return buf;
}

/* A stall's length; the engine keeps none shorter than ENGINE_STALL_MIN_S. */
static const char *fmt_stall(const struct engine_stall *s, char *buf, size_t n)
{
	if (s->length <= 0) {
		snprintf(buf, n, "none over %.0f ms", ENGINE_STALL_MIN_S * 1e3);
		return buf;
	}
	return fmt_us(s->length * 1e6, buf, n);
}

/* Each path's bytes sent + received; the number of paths (0: no peer). */
static unsigned read_paths(struct report *r, uint64_t bytes[REPORT_PATHS],
			   struct ml_path_stats ps[REPORT_PATHS], struct ml_peer_stats *st)
{
	unsigned n = REPORT_PATHS;
	if (!r->peer || ml_peer_stats_get(r->peer, st, ps, &n))
		return 0;
	n = n < REPORT_PATHS ? n : REPORT_PATHS;
	for (unsigned i = 0; i < n; i++) {
		bytes[i] = ps[i].bytes_sent + ps[i].bytes_recv;
		memcpy(r->url[i], ps[i].url, ML_URL_MAX);
	}
	for (unsigned i = n; i < REPORT_PATHS; i++)
		bytes[i] = 0;
	r->npaths = n;
	return n;
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct report *r = w->data;
	struct engine *e = r->e;
	struct ml_path_stats ps[REPORT_PATHS];
	struct ml_peer_stats st = { 0 };
	uint64_t bytes[REPORT_PATHS], delta[REPORT_PATHS], total = 0;
	unsigned n = read_paths(r, bytes, ps, &st);
	for (unsigned i = 0; i < n; i++) {
		delta[i] = bytes[i] - r->last_tick[i];
		r->last_tick[i] = bytes[i];
		total += delta[i];
	}
	char p50[32], p99[32];
	fprintf(r->out, "t=%5.1fs %7.0f IOPS %8.1f MB/s  p50 %9s  p99 %9s  paths",
		ev_time() - r->t0, e->interval_ops / r->interval,
		e->interval_bytes / r->interval / 1e6,
		fmt_us(hist_quantile(&e->interval, 0.5), p50, sizeof(p50)),
		fmt_us(hist_quantile(&e->interval, 0.99), p99, sizeof(p99)));
	for (unsigned i = 0; i < n; i++) {
		fprintf(r->out, " %u:%3.0f%%", i, total ? 100.0 * delta[i] / total : 0.0);
		if (ps[i].state != ML_PATH_UP)
			fprintf(r->out, "(%s)", ml_path_state_name(ps[i].state));
	}
	fprintf(r->out, "  resent %" PRIu64, st.frames_resent);
	for (unsigned i = 0; i < n; i++)
		if (ps[i].fault)
			fprintf(r->out, "  [path %u: %s]", i, ml_fault_name((int)ps[i].fault));
	if (e->nheld)
		fprintf(r->out, "  held %u (no backend)", e->nheld);
	fprintf(r->out, "\n");
	fflush(r->out);
	hist_clear(&e->interval);
	e->interval_ops = e->interval_bytes = 0;
}

static void enter_phase(struct report *r, int phase, const uint64_t bytes[REPORT_PATHS])
{
	double t = ev_time() - r->t0;
	r->phase = phase;
	memcpy(r->phase_start[phase], bytes, sizeof(r->phase_start[phase]));
	if (phase == 1)
		r->win_start = r->window == WINDOW_AUTO ? t : r->win_start;
	else
		r->win_end = r->window == WINDOW_AUTO ? t : r->win_end;
	fprintf(r->out, "t=%5.1fs --- fault window %s%s\n", t, phase == 1 ? "begins" : "ends",
		phase == 1 && r->fault[0] ? r->fault : "");
	fflush(r->out);
}

static void on_sample(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct report *r = w->data;
	struct ml_path_stats ps[REPORT_PATHS];
	struct ml_peer_stats st;
	uint64_t bytes[REPORT_PATHS];
	unsigned n = read_paths(r, bytes, ps, &st);
	int active = 0;
	if (r->window == WINDOW_AUTO) {
		for (unsigned i = 0; i < n && !active; i++)
			if (ps[i].fault) {
				active = 1;
				if (r->phase == 0)
					snprintf(r->fault, sizeof(r->fault), ": path %u (%s) %s", i,
						 ps[i].url, ml_fault_name((int)ps[i].fault));
			}
	} else {
		double t = ev_time() - r->t0;
		active = t >= r->win_start && t < r->win_end;
	}
	if (r->phase == 0 && active)
		enter_phase(r, 1, bytes);
	else if (r->phase == 1 && !active)
		enter_phase(r, 2, bytes);
}

void report_init(struct report *r, struct engine *e, FILE *out, double interval, int window,
		 double win_start, double win_end)
{
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->out = out;
	r->interval = interval;
	r->window = window;
	r->win_start = window == WINDOW_FIXED ? win_start : -1;
	r->win_end = window == WINDOW_FIXED ? win_end : -1;
}

void report_set_peer(struct report *r, ml_peer *peer)
{
	struct ml_path_stats ps[REPORT_PATHS];
	struct ml_peer_stats st;
	uint64_t bytes[REPORT_PATHS];
	r->peer = peer;
	read_paths(r, bytes, ps, &st);
	for (int p = 0; p <= r->phase; p++)
		memcpy(r->phase_start[p], bytes, sizeof(bytes));
	memcpy(r->last_tick, bytes, sizeof(bytes));
}

void report_start(struct report *r, struct ev_loop *loop, ml_peer *peer)
{
	r->t0 = ev_time();
	report_set_peer(r, peer);
	if (r->interval > 0) {
		ev_timer_init(&r->tick, on_tick, r->interval, r->interval);
		r->tick.data = r;
		ev_timer_start(loop, &r->tick);
	}
	if (r->window != WINDOW_NONE) {
		ev_timer_init(&r->sample, on_sample, SAMPLE_S, SAMPLE_S);
		r->sample.data = r;
		ev_timer_start(loop, &r->sample);
	}
}

void report_stop(struct report *r, struct ev_loop *loop)
{
	ev_timer_stop(loop, &r->tick);
	ev_timer_stop(loop, &r->sample);
}

/* The longest stall that overlaps [from, to] (times since t0). */
static struct engine_stall stall_between(const struct report *r, double from, double to)
{
	struct engine_stall best = { 0, 0 };
	for (unsigned i = 0; i < r->e->nstalls; i++) {
		const struct engine_stall *s = &r->e->stalls[i];
		double end = s->end - r->t0;
		if (end >= from && end - s->length <= to && s->length > best.length)
			best = *s;
	}
	return best;
}

static void print_paths(struct report *r, int switched)
{
	struct ml_path_stats ps[REPORT_PATHS];
	struct ml_peer_stats st;
	uint64_t now[REPORT_PATHS], per[3][REPORT_PATHS] = { { 0 } }, tot[3] = { 0 };
	unsigned n = read_paths(r, now, ps, &st);
	int phases = r->window == WINDOW_NONE ? 1 : r->phase + 1;
	for (int p = 0; p < phases; p++)
		for (unsigned i = 0; i < n; i++) {
			uint64_t end = p < r->phase ? r->phase_start[p + 1][i] : now[i];
			per[p][i] = end - r->phase_start[p][i];
			tot[p] += per[p][i];
		}
	static const char *const names[] = { "before", "during", "after" };
	fprintf(r->out, "  traffic per path (bytes sent + received, share%s):\n",
		switched ? "; of the backend in use at the end, since it took over" : "");
	fprintf(r->out, "    path %-26s", "");
	for (int p = 0; p < 3; p++)
		if (r->window != WINDOW_NONE || p == 0)
			fprintf(r->out, " %18s", r->window == WINDOW_NONE ? "whole run" : names[p]);
	fprintf(r->out, "\n");
	for (unsigned i = 0; i < n; i++) {
		fprintf(r->out, "    %-4u %-26s", i, ps[i].url);
		for (int p = 0; p < 3; p++) {
			char b[32], cell[40];
			if (r->window == WINDOW_NONE && p > 0)
				break;
			if (p >= phases) {
				fprintf(r->out, " %18s", "-");
				continue;
			}
			snprintf(cell, sizeof(cell), "%s %3.0f%%", fmt_bytes((double)per[p][i], b, sizeof(b)),
				 tot[p] ? 100.0 * per[p][i] / tot[p] : 0.0);
			fprintf(r->out, " %18s", cell);
		}
		fprintf(r->out, "\n");
	}
}

int report_summary(struct report *r, const struct report_end *end)
{
	struct engine *e = r->e;
	struct ml_peer_stats st = { 0 };
	if (r->peer)
		ml_peer_stats_get(r->peer, &st, NULL, NULL);
	double el = ev_time() - r->t0;
	/* The final flush is the run's epilogue, not one of its I/Os. */
	uint64_t ios = e->ops_done[BLK_READ] + e->ops_done[BLK_WRITE] + e->ops_done[BLK_DISCARD];
	uint64_t data = e->bytes_done[BLK_READ] + e->bytes_done[BLK_WRITE];
	uint64_t lost = e->failed + end->never_completed;
	char a[32], b[32], c[32], d[32];
	FILE *o = r->out;

	fprintf(o, "\nsummary (%s):\n", end->what);
	fprintf(o, "  I/Os       %" PRIu64 " done in %.1f s: %.0f IOPS, %s/s (%" PRIu64 " reads, %"
		PRIu64 " writes, %" PRIu64 " discards; %" PRIu64 " flushes)\n", ios, el, ios / el,
		fmt_bytes(data / el, a, sizeof(a)), e->ops_done[BLK_READ], e->ops_done[BLK_WRITE],
		e->ops_done[BLK_DISCARD], e->ops_done[BLK_FLUSH]);
	if (end->copied || strcmp(end->what, "I/Os"))
		fprintf(o, "  copied     %" PRIu64 " bytes\n", end->copied);
	fprintf(o, "  latency    p50 %s, p99 %s, p99.9 %s, max %s\n",
		fmt_us(hist_quantile(&e->all, 0.5), a, sizeof(a)),
		fmt_us(hist_quantile(&e->all, 0.99), b, sizeof(b)),
		fmt_us(hist_quantile(&e->all, 0.999), c, sizeof(c)), fmt_us(e->all.max_us, d, sizeof(d)));
	if (end->vc && end->vc->enabled)
		fprintf(o, "  verified   %" PRIu64 " reads, %" PRIu64 " blocks: %" PRIu64 " mismatches (%"
			PRIu64 " blocks read before this run wrote them: not checked)\n",
			end->vc->reads_verified, end->vc->blocks_verified, end->vc->mismatches,
			end->vc->blocks_unknown);
	fprintf(o, "  lost %" PRIu64 " (failed %" PRIu64 ", never completed %" PRIu64 "), duplicated %"
		PRIu64 ", re-issued %" PRIu64 ", backend switches %" PRIu64 ", frames resent %" PRIu64
		"\n", lost, e->failed, end->never_completed, e->duplicated, e->reissued, end->switches,
		st.frames_resent);
	for (int i = 1; i < 32; i++)
		if (e->ml_errors[i])
			fprintf(o, "    failed with \"%s\": %" PRIu64 "\n", ml_strerror(-i), e->ml_errors[i]);
	for (int i = 1; i < 16; i++)
		if (e->blk_errors[i])
			fprintf(o, "    failed with \"%s\": %" PRIu64 "\n", blk_status_name(i),
				e->blk_errors[i]);
	if (end->flush_status)
		fprintf(o, "  final flush failed: %s\n", engine_status_text(end->flush_status));
	fprintf(o, "  stall      longest %s", fmt_stall(&e->longest, a, sizeof(a)));
	if (e->longest.length > 0)
		fprintf(o, " (at t=%.2f s)", e->longest.end - r->t0);
	fprintf(o, "\n");
	if (r->window != WINDOW_NONE && r->phase > 0) {
		/* The failover is what follows the fault's start: the second after
		 * it (seen up to one sample late: look that much earlier). Later
		 * stalls in a long window are not its doing; the longest above. */
		struct engine_stall f = stall_between(r, r->win_start - SAMPLE_S,
						      r->win_start + AFTERMATH_S);
		fprintf(o, "  failover   longest stall in the second after the fault began: %s",
			fmt_stall(&f, b, sizeof(b)));
		if (r->phase == 2) {
			struct engine_stall g = stall_between(r, r->win_end, r->win_end + AFTERMATH_S);
			fprintf(o, "; after it ended: %s", fmt_stall(&g, c, sizeof(c)));
		}
		fprintf(o, "\n");
	}
	if (r->window != WINDOW_NONE) {
		if (r->phase == 0)
			fprintf(o, "  fault      no fault window seen\n");
		else if (r->phase == 1)
			fprintf(o, "  fault      window from t=%.1f s, still open at the end%s\n",
				r->win_start, r->fault);
		else
			fprintf(o, "  fault      window t=%.1f s .. t=%.1f s%s\n", r->win_start, r->win_end,
				r->fault);
	}
	print_paths(r, end->switches > 0);
	int ok = !lost && !e->duplicated && !end->flush_status &&
		 !(end->vc && end->vc->mismatches);
	if (ok && end->vc && end->vc->enabled)
		fprintf(o, "result: OK: %" PRIu64 " I/Os, %" PRIu64 " blocks verified, 0 mismatches, "
			"lost 0, duplicated 0\n", ios, end->vc->blocks_verified);
	else if (ok)
		fprintf(o, "result: OK: %" PRIu64 " I/Os, lost 0, duplicated 0\n", ios);
	else
		fprintf(o, "result: FAILED: %" PRIu64 " I/Os, %" PRIu64 " mismatches, lost %" PRIu64
			", duplicated %" PRIu64 "%s\n", ios, end->vc ? end->vc->mismatches : 0, lost,
			e->duplicated, end->flush_status ? ", final flush failed" : "");
	fflush(o);
	return ok;
}
