/* endpoint.c - URL parsing and transport selection by scheme. */
#include "transport.h"
#include "../msglayer/msglayer.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct ml_transport_ops *const transports[] = { &ml_tcp_ops };

int ml_endpoint_parse(const char *url, struct ml_endpoint *ep)
{
	char host[256];
	const char *sep, *hs, *he, *port;

	if (!url || strlen(url) >= sizeof(ep->url))
		return ML_EINVAL;
	memset(ep, 0, sizeof(*ep));
	sep = strstr(url, "://");
	if (!sep)
		return ML_EINVAL;
	for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		size_t n = strlen(transports[i]->scheme);
		if ((size_t)(sep - url) == n && !strncmp(url, transports[i]->scheme, n))
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

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return ML_EADDR;
	memcpy(&ep->addr, res->ai_addr, res->ai_addrlen);
	ep->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(ep->url, sizeof(ep->url), "%s", url);
	return 0;
}
