/* detector.c - see detector.h. */
#include "detector.h"

#include <stdio.h>

#define MIN_BUDGET_S 0.03

double ml_detector_budget(const struct ml_detector_cfg *c, double srtt_s)
{
	if (c->down_s > 0)
		return c->down_s;
	double b = 3 * c->heartbeat_s + 4 * srtt_s;
	if (b < MIN_BUDGET_S)
		b = MIN_BUDGET_S;
	return b < c->all_silent_s ? b : c->all_silent_s;
}

enum ml_verdict ml_detector_judge(const struct ml_detector_cfg *c, const struct ml_path_view *v,
				  char *why, size_t why_len)
{
	double budget = ml_detector_budget(c, v->srtt_s);
	int others_heard = v->behind_s >= budget / 2;

	if (v->silent_s >= c->all_silent_s) {
		snprintf(why, why_len, "nothing received for %.0f ms", v->silent_s * 1e3);
		return ML_DEAD;
	}
	if (v->silent_s >= budget && others_heard) {
		snprintf(why, why_len, "nothing received for %.0f ms, %.0f ms behind the other paths",
			 v->silent_s * 1e3, v->behind_s * 1e3);
		return ML_DEAD;
	}
	/* Data written on the path and not acknowledged for a whole budget is
	 * evidence too: with data at stake, less silence is enough. (Not alone:
	 * a message split over a slow and a fast path leaves the fast path's
	 * part unacknowledged until the slow part arrives.) */
	if (others_heard && v->silent_s >= 0.75 * budget && v->oldest_data_s >= budget + v->drain_s) {
		snprintf(why, why_len, "silent for %.0f ms with data unacknowledged for %.0f ms",
			 v->silent_s * 1e3, v->oldest_data_s * 1e3);
		return ML_DEAD;
	}
	if (v->silent_s >= budget / 2 && v->silent_s >= 1.5 * c->heartbeat_s) {
		snprintf(why, why_len, "heartbeat missed (%.0f ms silent)", v->silent_s * 1e3);
		return ML_SUSPECT;
	}
	return ML_ALIVE;
}
