/* endpoint.c - URL parsing and transport selection by scheme. */
#include "transport.h"
#include "../msglayer/msglayer.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ml_transport_ops *const transports[] = { &ml_tcp_ops, &ml_rdma_ops };

static int resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return ML_EADDR;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* "src=ADDR" (IPv4, [IPv6] or a name), the only option so far. */
static int parse_options(const char *opt, struct ml_endpoint *ep)
{
	char host[256];
	if (strncmp(opt, "src=", 4) != 0)
		return ML_EINVAL;
	const char *hs = opt + 4;
	size_t n = strlen(hs);
	if (n >= 2 && hs[0] == '[' && hs[n - 1] == ']') {
		hs++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(host))
		return ML_EINVAL;
	memcpy(host, hs, n);
	host[n] = 0;
	if (resolve(host, "0", &ep->src, &ep->srclen) != 0) {
		ep->why = "the src= address does not resolve";
		return ML_EADDR;
	}
	if (ep->src.ss_family != ep->addr.ss_family) {
		ep->why = "src= and the host are of different address families";
		return ML_EINVAL;
	}
	return 0;
}

int ml_endpoint_parse(const char *url, struct ml_endpoint *ep)
{
	char host[256], spec[sizeof(ep->url)];
	const char *sep, *hs, *he, *port;

	if (ep)
		memset(ep, 0, sizeof(*ep));
	if (!url || !ep || strlen(url) >= sizeof(ep->url))
		return ML_EINVAL;
	/* The options (after '?') are parsed once the address is known. */
	snprintf(spec, sizeof(spec), "%s", url);
	char *opt = strchr(spec, '?');
	if (opt)
		*opt++ = 0;
	sep = strstr(spec, "://");
	if (!sep)
		return ML_EINVAL;
	for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		size_t n = strlen(transports[i]->scheme);
		if ((size_t)(sep - spec) == n && !strncmp(spec, transports[i]->scheme, n))
			ep->ops = transports[i];
	}
	if (!ep->ops)
		return ML_EINVAL;
	hs = sep + 3;
	if (*hs == '[') { /* [v6addr]:port */
		he = strchr(hs, ']');
		if (!he || he[1] != ':')
			return ML_EINVAL;
		port = he + 2;
		hs++;
	} else {
		he = strrchr(hs, ':');
		if (!he)
			return ML_EINVAL;
		port = he + 1;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(host) || !*port)
		return ML_EINVAL;
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (*end || p > 65535)
		return ML_EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = 0;
	if (resolve(host, port, &ep->addr, &ep->addrlen) != 0)
		return ML_EADDR;
	if (opt) {
		int rc = parse_options(opt, ep);
		if (rc)
			return rc;
	}
	/* Last: a URL that is wrong anyway says so first. */
	if (ep->ops->unavailable && (ep->why = ep->ops->unavailable()) != NULL)
		return ML_EADDR;
	snprintf(ep->url, sizeof(ep->url), "%s", url);
	return 0;
}
