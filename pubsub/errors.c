/* errors.c - discovery status texts and the per-thread detail of the last error. */
#include <stdarg.h>
#include <stdio.h>

#include "msglayer.h"
#include "mlpubsub.h"
#include "record.h"

static __thread char last_error[256];

void mlps_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

const char *mlps_last_error(void)
{
	return last_error;
}

const char *mlps_strerror(int status)
{
	switch (status) {
	case MLPS_ECOROSYNC: return "Corosync is not running or refused the request";
	case MLPS_EMALFORMED: return "malformed discovery message";
	case MLPS_EBUSY: return "the discovery group is joined by this process on another loop";
	default: return ml_strerror(status);
	}
}

const char *mlps_reason_name(int reason)
{
	switch (reason) {
	case MLPS_R_SNAPSHOT: return "snapshot";
	case MLPS_R_PUBLISHED: return "published";
	case MLPS_R_UPDATED: return "updated";
	case MLPS_R_NOW_MATCHES: return "now-matches";
	case MLPS_R_NO_LONGER_MATCHES: return "no-longer-matches";
	case MLPS_R_WITHDRAWN: return "withdrawn";
	case MLPS_R_PUBLISHER_LEFT: return "publisher-left";
	case MLPS_R_NODE_LEFT: return "node-left";
	case MLPS_R_DISCONNECTED: return "disconnected";
	default: return "unknown";
	}
}

const char *mlps_decode_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case MLPS_DE_SHORT: return "message shorter than its header";
	case MLPS_DE_MAGIC: return "not a discovery message (bad magic)";
	case MLPS_DE_VERSION: return "message version 0";
	case MLPS_DE_TYPE: return "unknown message type";
	case MLPS_DE_HDRLEN: return "header length out of range";
	case MLPS_DE_LENGTH: return "header and body lengths do not add up to the message length";
	case MLPS_DE_TOOBIG: return "message longer than the maximum";
	case MLPS_DE_TLV_TRUNC: return "a field runs past the end of the message";
	case MLPS_DE_TLV_LEN: return "wrong length for a fixed-size field";
	case MLPS_DE_TLV_DUP: return "a single-valued field appears twice";
	case MLPS_DE_CRITICAL: return "unknown field marked critical";
	case MLPS_DE_MISSING: return "a required field is missing";
	case MLPS_DE_NAME: return "invalid resource name";
	case MLPS_DE_ATTR: return "malformed attribute";
	case MLPS_DE_ATTR_NAME: return "invalid attribute name";
	case MLPS_DE_ATTR_DUP: return "duplicate attribute name";
	case MLPS_DE_ATTR_MANY: return "too many attributes";
	case MLPS_DE_VALUE: return "invalid attribute value";
	case MLPS_DE_ENDPOINT: return "invalid endpoint";
	case MLPS_DE_ENDPOINT_MANY: return "too many endpoints";
	case MLPS_DE_NOMEM: return "out of memory";
	case MLPS_DE_NODE: return "node id 0";
	default: return "unknown decode error";
	}
}
