/* errors.c - ml_strerror: one sentence per status, stable for logs and tools. */
#include "msglayer.h"

#include <string.h>

const char *ml_strerror(int status)
{
	switch (status) {
	case ML_OK: return "success";
	case ML_EINVAL: return "invalid argument";
	case ML_ENOMEM: return "out of memory";
	case ML_EAGAIN: return "send queue full, retry when there is room";
	case ML_ETOOBIG: return "message larger than the allowed maximum";
	case ML_ETIMEDOUT: return "timed out: no path to the peer within the session timeout";
	case ML_EPEERRESTART: return "peer restarted (new incarnation); outstanding message failed";
	case ML_EPEERDOWN: return "peer declared down";
	case ML_ECANCELED: return "canceled: the context is closing";
	case ML_EPROTO: return "protocol error from the peer";
	case ML_EVERSION: return "no protocol version in common with the peer";
	case ML_EADDR: return "address cannot be resolved, bound or connected";
	case ML_ESYS: return "system call failed";
	case ML_EEXIST: return "already exists";
	case ML_ENOENT: return "no such peer or path";
	case ML_ENOTCONN: return "path not connected";
	case ML_ENODE: return "peer answered with an unexpected node id";
	case ML_EABORTED: return "the peer's handler aborted the request";
	case ML_EDEADLINE: return "the request's deadline passed before its response came";
	case ML_EAUTH: return "authentication failed: the peer has no, another or a wrong cluster key";
	case ML_EKEY: return "cluster key file missing, malformed or readable by others";
	case ML_ELIMIT: return "a configured limit is reached";
	default: return "unknown msglayer status";
	}
}

const char *ml_status_name(int status)
{
	static const char *const names[] = {
		"ML_OK", "ML_EINVAL", "ML_ENOMEM", "ML_EAGAIN", "ML_ETOOBIG", "ML_ETIMEDOUT",
		"ML_EPEERRESTART", "ML_EPEERDOWN", "ML_ECANCELED", "ML_EPROTO", "ML_EVERSION",
		"ML_EADDR", "ML_ESYS", "ML_EEXIST", "ML_ENOENT", "ML_ENOTCONN", "ML_ENODE",
		"ML_EABORTED", "ML_EDEADLINE", "ML_EAUTH", "ML_EKEY", "ML_ELIMIT",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) == 1 - ML_ELIMIT,
		       "a name for every status, in order");
	return status <= 0 && -status < (int)(sizeof(names) / sizeof(names[0])) ? names[-status]
										 : "ML_EUNKNOWN";
}

const char *ml_path_state_name(int state)
{
	switch (state) {
	case ML_PATH_DOWN: return "down";
	case ML_PATH_CONNECTING: return "connecting";
	case ML_PATH_UP: return "up";
	case ML_PATH_CLOSED: return "closed";
	case ML_PATH_SUSPECT: return "suspect";
	case ML_PATH_PROBATION: return "probation";
	default: return "unknown";
	}
}

const char *ml_protect_name(int protect)
{
	switch (protect) {
	case ML_PROTECT_NONE: return "none";
	case ML_PROTECT_MAC: return "mac";
	case ML_PROTECT_ENCRYPT: return "encrypt";
	default: return "unknown";
	}
}

int ml_protect_parse(const char *name)
{
	for (int m = ML_PROTECT_NONE; m <= ML_PROTECT_ENCRYPT; m++)
		if (name && !strcmp(name, ml_protect_name(m)))
			return m;
	return ML_EINVAL;
}
