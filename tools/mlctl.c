/*
 * mlctl - look at and poke a running msglayer process through its admin
 * socket (cfg.admin_socket). Protocol and output: doc/mlctl.md.
 *
 *   mlctl [--socket PATH] [--json] status
 *   mlctl [--socket PATH] [--json] fault NODE PATH|all KIND [VALUE] [--for SECONDS]
 *   mlctl [--socket PATH] [--json] clear NODE PATH|all
 *   mlctl [--socket PATH] [--json] version
 *
 * The socket defaults to $ML_ADMIN_SOCKET. Exit status: 0 done, 1 the command
 * failed (the answer says ok:false, or cannot be read), 2 usage error, 3 the
 * socket cannot be reached (or does not answer).
 *
 * The answer is JSON; --json prints it as it came, otherwise a small parser
 * below turns it into tables.
 */
#include "msglayer.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3

#define ANSWER_TIMEOUT_S 5
#define ANSWER_MAX (64u << 20)
#define REQUEST_MAX 4096

static const char usage_text[] =
	"usage: mlctl [--socket PATH] [--json] COMMAND\n"
	"  status                                      peers and paths of the process\n"
	"  fault NODE PATH|all KIND [VALUE] [--for S]  inject a fault on a path to peer NODE\n"
	"  clear NODE PATH|all                         end the fault\n"
	"  version                                     library and protocol versions\n"
	"KIND: shutdown, reset, blackhole, blackhole-tx, blackhole-rx, drop (VALUE: fraction\n"
	"0..1), delay (VALUE: seconds), clear. --for S: the fault ends by itself after S s.\n"
	"The socket defaults to $ML_ADMIN_SOCKET. --json prints the answer as it came.\n"
	"Exit: 0 done, 1 the command failed, 2 usage error, 3 cannot reach the socket.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mlctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see mlctl --help)\n", stderr);
	exit(EXIT_USAGE);
}

/* ---- a small, tolerant JSON reader ---- */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	int type;
	int b;            /* J_BOOL */
	double num;       /* J_NUM */
	char *str;        /* J_STR: the decoded text; J_NUM: the number as written */
	size_t n;         /* J_ARR, J_OBJ: members */
	struct jv *items;
	char **keys;      /* J_OBJ */
};

struct jparser {
	const char *s;
	int depth;
};

static void jfree(struct jv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		jfree(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
	memset(v, 0, sizeof(*v));
}

static void jws(struct jparser *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static void put_utf8(char **o, unsigned cp)
{
	unsigned char *u = (unsigned char *)*o;
	if (cp < 0x80) {
		*u++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*u++ = (unsigned char)(0xc0 | cp >> 6);
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*u++ = (unsigned char)(0xe0 | cp >> 12);
		*u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		*u++ = (unsigned char)(0xf0 | cp >> 18);
		*u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		*u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	}
	*o = (char *)u;
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* Control characters become '?': nothing the server echoes back from a
 * request can drive the terminal. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* A string at p->s (at its opening quote) into a new NUL-terminated text. */
static char *jstring(struct jparser *p)
{
	const char *s = p->s + 1;
	const char *end = s;
	while (*end && *end != '"')
		end += (*end == '\\' && end[1]) ? 2 : 1;
	if (*end != '"')
		return NULL;
	char *out = malloc((size_t)(end - s) + 1), *o = out; /* escapes only shrink */
	if (!out)
		return NULL;
	while (s < end) {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		s++;
		char c = *s++;
		unsigned cp;
		switch (c) {
		case 'n': *o++ = '\n'; break;
		case 't': *o++ = '\t'; break;
		case 'r': *o++ = '\r'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'u':
			if (end - s < 4 || hex4(s, &cp) != 0) {
				free(out);
				return NULL;
			}
			s += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && end - s >= 6 && s[0] == '\\' && s[1] == 'u') {
				unsigned lo;
				if (hex4(s + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					s += 6;
				}
			}
			if ((cp >= 0xd800 && cp <= 0xdfff) || cp == 0)
				cp = 0xfffd; /* lone surrogate, or a NUL our strings cannot hold */
			put_utf8(&o, cp); /* at most 4 bytes for 6 or 12 read */
			break;
		default: *o++ = c; break; /* \" \\ \/ and, tolerantly, anything else */
		}
	}
	*o = 0;
	p->s = end + 1;
	printable(out); /* only ever shown on a terminal */
	return out;
}

static int jparse(struct jparser *p, struct jv *v)
{
	memset(v, 0, sizeof(*v));
	jws(p);
	char c = *p->s;
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		v->type = c == '{' ? J_OBJ : J_ARR;
		if (++p->depth > 64)
			return -1;
		p->s++;
		jws(p);
		if (*p->s == close) {
			p->s++;
			p->depth--;
			return 0;
		}
		size_t cap = 0;
		for (;;) {
			if (v->n == cap) {
				cap = cap ? cap * 2 : 8;
				struct jv *items = realloc(v->items, cap * sizeof(*items));
				char **keys = v->type == J_OBJ ? realloc(v->keys, cap * sizeof(*keys)) : NULL;
				if (items)
					v->items = items;
				if (keys)
					v->keys = keys;
				if (!items || (v->type == J_OBJ && !keys))
					return -1;
			}
			if (v->type == J_OBJ) {
				jws(p);
				char *key = *p->s == '"' ? jstring(p) : NULL;
				if (!key)
					return -1;
				v->keys[v->n] = key;
				jws(p);
				if (*p->s++ != ':') {
					free(key);
					return -1;
				}
			}
			if (jparse(p, &v->items[v->n]) != 0) {
				jfree(&v->items[v->n]);
				if (v->keys)
					free(v->keys[v->n]);
				return -1;
			}
			v->n++;
			jws(p);
			if (*p->s == close) {
				p->s++;
				p->depth--;
				return 0;
			}
			if (*p->s++ != ',')
				return -1;
		}
	}
	if (c == '"') {
		v->type = J_STR;
		v->str = jstring(p);
		return v->str ? 0 : -1;
	}
	if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "false", 5)) {
		v->type = J_BOOL;
		v->b = c == 't';
		p->s += v->b ? 4 : 5;
		return 0;
	}
	if (!strncmp(p->s, "null", 4)) {
		p->s += 4;
		return 0;
	}
	char *end;
	v->num = strtod(p->s, &end);
	if (end == p->s)
		return -1;
	v->type = J_NUM;
	v->str = strndup(p->s, (size_t)(end - p->s));
	p->s = end;
	return v->str ? 0 : -1;
}

static const struct jv *jget(const struct jv *o, const char *key)
{
	if (!o || o->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return &o->items[i];
	return NULL;
}

static double jnum(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);
	return v && v->type == J_NUM ? v->num : 0;
}

/* A number as the server wrote it (64-bit counters stay exact), or "?". */
static const char *jint(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);
	return v && v->type == J_NUM ? v->str : "?";
}

static const char *jstr(const struct jv *o, const char *key)
{
	const struct jv *v = jget(o, key);
	return v && v->type == J_STR ? v->str : NULL;
}

/* ---- talking to the socket ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Send one request line; return the whole answer (NUL-terminated). */
static char *ask(const char *path, const char *request)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked by the caller */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "mlctl: cannot connect to %s: %s\n", path, strerror(errno));
		exit(EXIT_CONNECT);
	}
	size_t len = strlen(request), off = 0;
	while (off < len) {
		ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "mlctl: cannot send to %s: %s\n", path, strerror(errno));
			exit(EXIT_CONNECT);
		}
		off += (size_t)n;
	}
	size_t have = 0, cap = 16384;
	char *buf = malloc(cap);
	double deadline = now_s() + ANSWER_TIMEOUT_S;
	for (;;) {
		if (!buf) {
			fprintf(stderr, "mlctl: out of memory\n");
			exit(EXIT_FAILED);
		}
		if (have + 1 == cap) {
			if (cap >= ANSWER_MAX) {
				fprintf(stderr, "mlctl: answer from %s larger than %u bytes\n", path,
					ANSWER_MAX);
				exit(EXIT_FAILED);
			}
			cap *= 2;
			char *b = realloc(buf, cap);
			if (!b)
				free(buf);
			buf = b;
			continue;
		}
		double left = deadline - now_s();
		struct pollfd pf = { fd, POLLIN, 0 };
		int r = left > 0 ? poll(&pf, 1, (int)(left * 1000) + 1) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			fprintf(stderr, "mlctl: no answer from %s within %d s\n", path, ANSWER_TIMEOUT_S);
			exit(EXIT_CONNECT);
		}
		ssize_t n = recv(fd, buf + have, cap - have - 1, 0);
		if (n > 0) {
			have += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* The end, or a reset after the answer (the server closes before
		 * reading all of an overlong request). */
		if (n < 0 && !(errno == ECONNRESET && have)) {
			fprintf(stderr, "mlctl: reading from %s: %s\n", path, strerror(errno));
			exit(EXIT_CONNECT);
		}
		break;
	}
	close(fd);
	buf[have] = 0;
	if (!have) {
		fprintf(stderr, "mlctl: %s closed the connection without answering\n", path);
		exit(EXIT_CONNECT);
	}
	return buf;
}

/* ---- human output ---- */

static void fmt_rtt(char *out, size_t n, double us)
{
	if (!(us > 0))
		snprintf(out, n, "-");
	else if (us < 1000)
		snprintf(out, n, "%.0f us", us);
	else if (us < 1e6)
		snprintf(out, n, "%.1f ms", us / 1e3);
	else
		snprintf(out, n, "%.2f s", us / 1e6);
}

static void print_peer(const struct jv *peer)
{
	const struct jv *paths = jget(peer, "paths");
	size_t np = paths && paths->type == J_ARR ? paths->n : 0;
	double total = 0;
	int urlw = 3;
	for (size_t i = 0; i < np; i++) {
		const char *url = jstr(&paths->items[i], "url");
		total += jnum(&paths->items[i], "bytes_sent");
		if (url && (int)strlen(url) > urlw)
			urlw = (int)strlen(url);
	}
	printf("\npeer %s  incarnation %s  paths up %s/%zu\n", jint(peer, "node_id"),
	       jint(peer, "incarnation"), jint(peer, "paths_up"), np);
	printf("  messages sent %s, acked %s, received %s; in flight %s, queued %s, "
	       "requests pending %s\n",
	       jint(peer, "msgs_sent"), jint(peer, "msgs_acked"), jint(peer, "msgs_recv"),
	       jint(peer, "inflight_msgs"), jint(peer, "queued_msgs"), jint(peer, "requests_pending"));
	printf("  frames resent %s, duplicates dropped %s; sends failed %s, refused %s; "
	       "restarts %s\n",
	       jint(peer, "frames_resent"), jint(peer, "dup_frames"), jint(peer, "failed"),
	       jint(peer, "refused"), jint(peer, "restarts"));
	if (!np) {
		printf("  no paths\n");
		return;
	}
	printf("  %2s  %-*s  %-10s  %8s  %8s  %6s  %8s  %6s  %10s  %-12s  %s\n", "#", urlw, "url",
	       "state", "rtt", "silent", "sent", "inflight", "resent", "susp/flaps", "fault", "reason");
	for (size_t i = 0; i < np; i++) {
		const struct jv *p = &paths->items[i];
		const char *url = jstr(p, "url"), *state = jstr(p, "state"), *fault = jstr(p, "fault");
		const char *reason = jstr(p, "reason");
		char rtt[32], silent[32], share[16], sf[48];
		fmt_rtt(rtt, sizeof(rtt), jnum(p, "rtt_us"));
		/* silence means something on connected paths only */
		if (state && (!strcmp(state, "up") || !strcmp(state, "suspect") ||
			      !strcmp(state, "probation")))
			snprintf(silent, sizeof(silent), "%s ms", jint(p, "silent_ms"));
		else
			snprintf(silent, sizeof(silent), "-");
		if (total > 0)
			snprintf(share, sizeof(share), "%.1f%%", 100 * jnum(p, "bytes_sent") / total);
		else
			snprintf(share, sizeof(share), "-");
		snprintf(sf, sizeof(sf), "%s/%s", jint(p, "suspects"), jint(p, "flaps"));
		printf("  %2s  %-*s  %-10s  %8s  %8s  %6s  %8s  %6s  %10s  %-12s  %s\n", jint(p, "index"),
		       urlw, url ? url : "?", state ? state : "?", rtt, silent, share,
		       jint(p, "inflight_frames"),
		       jint(p, "frames_resent"), sf, fault ? fault : "-", reason ? reason : "");
	}
}

static void print_status(const struct jv *a)
{
	const struct jv *peers = jget(a, "peers");
	size_t n = peers && peers->type == J_ARR ? peers->n : 0;
	printf("node %s  incarnation %s  %zu peer%s\n", jint(a, "node_id"), jint(a, "incarnation"), n,
	       n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++)
		print_peer(&peers->items[i]);
}

static void print_fault(const struct jv *a)
{
	const struct jv *paths = jget(a, "paths");
	const char *fault = jstr(a, "fault");
	char list[256] = "";
	size_t np = paths && paths->type == J_ARR ? paths->n : 0;
	for (size_t i = 0, at = 0; i < np && at < sizeof(list); i++)
		at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%s", i ? "," : "",
				       paths->items[i].type == J_NUM ? paths->items[i].str : "?");
	printf("node %s path%s %s: ", jint(a, "node_id"), np == 1 ? "" : "s", list);
	if (!fault || !strcmp(fault, "clear")) {
		printf("fault cleared\n");
		return;
	}
	printf("%s", fault);
	double value = jnum(a, "value"), dur = jnum(a, "duration_s");
	if (!strcmp(fault, "shutdown") || !strcmp(fault, "reset")) {
		printf(" (once)\n");
		return;
	}
	if (!strcmp(fault, "drop"))
		printf(" %g%% of received segments", 100 * value);
	else if (!strcmp(fault, "delay"))
		printf(" %g s", value);
	if (dur > 0)
		printf(" for %g s\n", dur);
	else
		printf(" until cleared\n");
}

/* ---- command line ---- */

static int is_uint(const char *s)
{
	if (!*s || strlen(s) > 10)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int is_number(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	return end != s && !*end && isfinite(v);
}

int main(int argc, char **argv)
{
	const char *socket_path = getenv("ML_ADMIN_SOCKET"), *dur = NULL;
	const char *pos[8];
	int json = 0, npos = 0, opts_done = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (opts_done || a[0] != '-' || a[1] != '-') {
			if (npos == (int)(sizeof(pos) / sizeof(pos[0])))
				usage_error("too many arguments");
			pos[npos++] = a;
		} else if (!strcmp(a, "--")) {
			opts_done = 1;
		} else if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--socket") || !strcmp(a, "--for")) {
			if (i + 1 >= argc)
				usage_error("%s needs a value", a);
			*(a[2] == 's' ? &socket_path : &dur) = argv[++i];
		} else if (!strncmp(a, "--socket=", 9)) {
			socket_path = a + 9;
		} else if (!strncmp(a, "--for=", 6)) {
			dur = a + 6;
		} else {
			usage_error("unknown option %s", a);
		}
	}
	if (npos == 0)
		usage_error("no command");

	char req[REQUEST_MAX];
	const char *cmd = pos[0];
	if (!strcmp(cmd, "status") || !strcmp(cmd, "version")) {
		if (npos != 1)
			usage_error("%s takes no arguments", cmd);
		snprintf(req, sizeof(req), "%s\n", cmd);
	} else if (!strcmp(cmd, "fault") || !strcmp(cmd, "clear")) {
		int fault = !strcmp(cmd, "fault");
		if (fault ? npos < 4 || npos > 5 : npos != 3)
			usage_error(fault ? "usage: fault NODE PATH|all KIND [VALUE] [--for S]"
					  : "usage: clear NODE PATH|all");
		if (!is_uint(pos[1]))
			usage_error("bad node id '%s'", pos[1]);
		if (!is_uint(pos[2]) && strcmp(pos[2], "all"))
			usage_error("bad path '%s' (a path number, or all)", pos[2]);
		if (fault && !ml_fault_parse(pos[3]))
			usage_error("unknown fault kind '%s'", pos[3]);
		if (fault && npos == 5 && !is_number(pos[4]))
			usage_error("bad value '%s'", pos[4]);
		if (dur && (!fault || !is_number(dur)))
			usage_error(fault ? "bad duration '%s'" : "--for goes with fault only", dur);
		if (!fault)
			snprintf(req, sizeof(req), "clear %s %s\n", pos[1], pos[2]);
		else if (npos == 5 || dur)
			snprintf(req, sizeof(req), "fault %s %s %s %s%s%s\n", pos[1], pos[2], pos[3],
				 npos == 5 ? pos[4] : "0", dur ? " " : "", dur ? dur : "");
		else
			snprintf(req, sizeof(req), "fault %s %s %s\n", pos[1], pos[2], pos[3]);
	} else {
		usage_error("unknown command '%s'", cmd);
	}

	if (!socket_path || !*socket_path)
		usage_error("no admin socket: give --socket PATH or set ML_ADMIN_SOCKET");
	if (strlen(socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		usage_error("socket path too long: %s", socket_path);

	char *answer = ask(socket_path, req);
	struct jparser p = { answer, 0 };
	struct jv a;
	int parsed = jparse(&p, &a) == 0 && a.type == J_OBJ;
	const struct jv *ok = parsed ? jget(&a, "ok") : NULL;
	int success = ok && ok->type == J_BOOL && ok->b;
	int rc = success ? EXIT_OK : EXIT_FAILED;

	if (json) {
		fputs(answer, stdout);
	} else if (!parsed || !ok) {
		if (strlen(answer) > 200)
			answer[200] = 0;
		printable(answer);
		fprintf(stderr, "mlctl: unreadable answer from %s: %s\n", socket_path, answer);
	} else if (!success) {
		const char *err = jstr(&a, "error"), *detail = jstr(&a, "detail");
		fprintf(stderr, "mlctl: %s%s%s\n", err ? err : "failed", detail && *detail ? ": " : "",
			detail ? detail : "");
	} else if (!strcmp(cmd, "status")) {
		print_status(&a);
	} else if (!strcmp(cmd, "version")) {
		printf("msglayer %s, admin protocol %s, wire protocol %s (mlctl %d.%d)\n",
		       jstr(&a, "version") ? jstr(&a, "version") : "?", jint(&a, "protocol"),
		       jint(&a, "wire_protocol"), ML_VERSION_MAJOR, ML_VERSION_MINOR);
	} else {
		print_fault(&a);
	}
	jfree(&a); /* also what a failed parse built */
	free(answer);
	return rc;
}
