/*
 * detector.h - is a path alive? Pure decisions from timestamps, no I/O.
 *
 * Evidence is "anything received on the path" (every peer sends a heartbeat
 * on every connected path each interval, and data counts as well), so a
 * loaded path never needs its heartbeat to overtake its data. Silence alone
 * is not enough: it is judged against the peer's heartbeats on its other
 * paths, by the peer's own clock (each heartbeat carries its send time).
 * When the peer has since sent heartbeats that arrived on other paths, this
 * path lost its own: it is dead (a short budget). When no newer heartbeat
 * came anywhere, the peer or this process is slow, or a backlog is being
 * read; moving traffic to another path would gain nothing, and a much
 * longer budget applies.
 */
#ifndef ML_DETECTOR_H
#define ML_DETECTOR_H

#include <stddef.h>

struct ml_detector_cfg {
	double heartbeat_s;   /* heartbeat interval */
	double down_s;        /* fixed silence budget; 0: derived from the RTT */
	double all_silent_s;  /* budget when no path of the peer is heard */
};

struct ml_path_view {
	double silent_s;       /* time since anything was received on the path */
	double behind_s;       /* how much older (by the peer's clock) the last heartbeat
	                          received here is than the newest from the peer on any path */
	double srtt_s;         /* smoothed RTT (0: not measured) */
	double oldest_data_s;  /* age of the oldest data written on it and not acked (0: none) */
	double drain_s;        /* time its outstanding bytes need at its measured rate */
};

enum ml_verdict {
	ML_ALIVE = 0,
	ML_SUSPECT = 1, /* stop giving it new data, keep it connected */
	ML_DEAD = 2,    /* fail it: resend what it holds elsewhere */
};

/* Silence that declares a path down: the configured budget, or 3 heartbeats
 * + 4 RTT (at least 30 ms, at most all_silent_s). */
double ml_detector_budget(const struct ml_detector_cfg *c, double srtt_s);

/* The verdict for one path, with the reason in why (for the log):
 * dead after all_silent_s of silence; dead after the budget of silence when
 * it is also behind the peer's heartbeats on other paths by half the budget
 * (or after 3/4 of the budget of silence when data written on it has waited
 * a whole budget plus its drain time for its ack); suspect after half the
 * budget (and at least 1.5 heartbeats) of silence. */
enum ml_verdict ml_detector_judge(const struct ml_detector_cfg *c, const struct ml_path_view *v,
				  char *why, size_t why_len);

#endif
