/* fault.c - the public fault-injection calls: names, checks, and the command
 * that carries a fault to the worker owning the path (path.c applies it). */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const fault_names[] = {
	[ML_FAULT_SHUTDOWN] = "shutdown",
	[ML_FAULT_RESET] = "reset",
	[ML_FAULT_BLACKHOLE] = "blackhole",
	[ML_FAULT_BLACKHOLE_TX] = "blackhole-tx",
	[ML_FAULT_BLACKHOLE_RX] = "blackhole-rx",
	[ML_FAULT_DROP] = "drop",
	[ML_FAULT_DELAY] = "delay",
	[ML_FAULT_CLEAR] = "clear",
	[ML_FAULT_BAD_KEY] = "bad-key",
};
#define NFAULTS (sizeof(fault_names) / sizeof(fault_names[0]))

const char *ml_fault_name(int fault)
{
	if (fault > 0 && (unsigned)fault < NFAULTS && fault_names[fault])
		return fault_names[fault];
	return fault == 0 ? "none" : "unknown";
}

int ml_fault_parse(const char *name)
{
	for (unsigned i = 1; name && i < NFAULTS; i++)
		if (fault_names[i] && !strcmp(name, fault_names[i]))
			return (int)i;
	return 0;
}

int ml_fault_set(ml_peer *peer, unsigned path_idx, const struct ml_fault_spec *spec)
{
	if (!peer || !spec || spec->fault < ML_FAULT_SHUTDOWN || (unsigned)spec->fault >= NFAULTS ||
	    !(spec->duration_s >= 0) || !isfinite(spec->duration_s))
		return ML_EINVAL;
	if (spec->fault == ML_FAULT_DROP && !(spec->value >= 0 && spec->value <= 1))
		return ML_EINVAL;
	if (spec->fault == ML_FAULT_DELAY && !(spec->value >= 0 && spec->value <= 60))
		return ML_EINVAL;
	if (path_idx >= __atomic_load_n(&peer->npaths, __ATOMIC_ACQUIRE))
		return ML_ENOENT;
	struct ml_cmd_fault *cf = calloc(1, sizeof(*cf));
	if (!cf)
		return ML_ENOMEM;
	cf->cmd.type = ML_CMD_FAULT;
	cf->peer = peer;
	cf->path_idx = path_idx;
	cf->spec = *spec;
	ml_worker_post(peer->w, &cf->cmd);
	return 0;
}

int ml_fault_inject(ml_peer *peer, unsigned path_idx, int fault)
{
	struct ml_fault_spec spec = { .fault = fault };
	return ml_fault_set(peer, path_idx, &spec);
}
