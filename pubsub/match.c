/* match.c - subscription patterns (prefix, glob) and attribute filters. */
#include <ctype.h>
#include <string.h>

#include "msglayer.h"
#include "match.h"
#include "record.h"

/* ---- patterns ----------------------------------------------------------- */

int mlps_pattern_parse(const char *text, struct mlps_pattern *p)
{
	memset(p, 0, sizeof(*p));
	if (!text || !*text || !strcmp(text, "**")) {
		p->all = 1;
		return 0;
	}
	size_t n = strnlen(text, MLPS_NAME_MAX + 2);
	if (n > MLPS_NAME_MAX + 1) {
		mlps_set_error("pattern: longer than %d bytes", MLPS_NAME_MAX + 1);
		return ML_EINVAL;
	}
	int wild = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x21 || c > 0x7e) {
			mlps_set_error("pattern: column %zu: byte 0x%02x is not printable ASCII", i + 1, c);
			return ML_EINVAL;
		}
		if (c == '/' && (i == 0 || text[i - 1] == '/')) {
			mlps_set_error("pattern: column %zu: empty component", i + 1);
			return ML_EINVAL;
		}
		wild |= c == '*' || c == '?';
	}
	memcpy(p->text, text, n);
	p->len = n;
	if (text[n - 1] == '/') {
		if (!wild) {
			p->prefix = 1;
			return 0;
		}
		memcpy(p->text + n, "**", 3); /* a glob ending in '/': everything under its matches */
		p->len = n + 2;
	}
	return 0;
}

#define GSTRIDE (MLPS_NAME_MAX + 4)

struct glob {
	const char *p, *s;
	size_t pn, sn;
	/* (pattern index, name index) pairs known to fail: keeps the matcher
	 * polynomial whatever the stars */
	uint8_t fail[(GSTRIDE * GSTRIDE + 7) / 8];
};

static int glob_at(struct glob *g, size_t pi, size_t si);

static int glob_run(struct glob *g, size_t pi, size_t si)
{
	const char *p = g->p, *s = g->s;
	while (pi < g->pn) {
		char pc = p[pi];
		if (pc == '*' && pi + 1 < g->pn && p[pi + 1] == '*' && (pi == 0 || p[pi - 1] == '/') &&
		    (pi + 2 == g->pn || p[pi + 2] == '/')) {
			/* "**" component: any number of components */
			if (pi + 2 == g->pn)
				return si < g->sn || pi == 0;
			if (glob_at(g, pi + 3, si))
				return 1;
			for (size_t j = si; j < g->sn; j++)
				if (s[j] == '/' && glob_at(g, pi + 3, j + 1))
					return 1;
			return 0;
		}
		if (pc == '*') {
			for (size_t j = si;; j++) {
				if (glob_at(g, pi + 1, j))
					return 1;
				if (j >= g->sn || s[j] == '/')
					return 0;
			}
		}
		if (si >= g->sn)
			return 0;
		if (pc == '?' ? s[si] == '/' : pc != s[si])
			return 0;
		pi++;
		si++;
	}
	return si == g->sn;
}

static int glob_at(struct glob *g, size_t pi, size_t si)
{
	size_t key = pi * GSTRIDE + si;
	if (g->fail[key >> 3] & (1u << (key & 7)))
		return 0;
	int r = glob_run(g, pi, si);
	if (!r)
		g->fail[key >> 3] |= (uint8_t)(1u << (key & 7));
	return r;
}

int mlps_pattern_match(const struct mlps_pattern *p, const char *name)
{
	if (p->all)
		return 1;
	size_t n = strnlen(name, MLPS_NAME_MAX + 1);
	if (p->prefix)
		return n >= p->len && !memcmp(name, p->text, p->len);
	if (n > MLPS_NAME_MAX)
		return 0;
	struct glob g;
	g.p = p->text;
	g.pn = p->len;
	g.s = name;
	g.sn = n;
	memset(g.fail, 0, sizeof(g.fail));
	return glob_at(&g, 0, 0);
}

/* ---- filters ------------------------------------------------------------- */

struct lex {
	const char *s;
	size_t i;
};

static void skip_ws(struct lex *l)
{
	while (l->s[l->i] == ' ' || l->s[l->i] == '\t' || l->s[l->i] == '\n')
		l->i++;
}

static int is_name_start(char c)
{
	return isalpha((unsigned char)c) || c == '_';
}

static int is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

/* Bare words end at white space, '&', quotes and operator characters. */
static int is_word_char(char c)
{
	return c && !strchr(" \t\n&\"=!<>", c);
}

static int parse_int(const char *t, size_t n, int *neg, uint64_t *mag)
{
	size_t i = 0;
	*neg = 0;
	if (n && (t[0] == '-' || t[0] == '+')) {
		*neg = t[0] == '-';
		i = 1;
	}
	unsigned base = 10;
	if (n - i > 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
		base = 16;
		i += 2;
	}
	if (i >= n)
		return -1; /* not a number */
	uint64_t v = 0;
	for (; i < n; i++) {
		unsigned d;
		char c = t[i];
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		if (v > (UINT64_MAX - d) / base)
			return -2; /* out of range */
		v = v * base + d;
	}
	if (*neg && v > (uint64_t)INT64_MAX + 1)
		return -2;
	if (v == 0)
		*neg = 0;
	*mag = v;
	return 0;
}

static int parse_value(struct lex *l, struct mlps_cond *c, const char *opname)
{
	size_t start = l->i;
	c->text_len = 0;
	if (l->s[l->i] == '"') {
		l->i++;
		for (;;) {
			char ch = l->s[l->i];
			if (!ch) {
				mlps_set_error("filter: column %zu: unterminated string", start + 1);
				return ML_EINVAL;
			}
			l->i++;
			if (ch == '"')
				break;
			if (ch == '\\') {
				ch = l->s[l->i];
				if (ch != '"' && ch != '\\') {
					mlps_set_error("filter: column %zu: only \\\" and \\\\ are escapes",
						       l->i);
					return ML_EINVAL;
				}
				l->i++;
			}
			if (c->text_len == MLPS_VALUE_MAX) {
				mlps_set_error("filter: column %zu: value longer than %d bytes",
					       start + 1, MLPS_VALUE_MAX);
				return ML_EINVAL;
			}
			c->text[c->text_len++] = ch;
		}
		c->text[c->text_len] = '\0';
		return 0;
	}
	while (is_word_char(l->s[l->i]))
		l->i++;
	size_t n = l->i - start;
	if (n == 0) {
		mlps_set_error("filter: column %zu: expected a value after '%s'", start + 1, opname);
		return ML_EINVAL;
	}
	if (n > MLPS_VALUE_MAX) {
		mlps_set_error("filter: column %zu: value longer than %d bytes", start + 1,
			       MLPS_VALUE_MAX);
		return ML_EINVAL;
	}
	memcpy(c->text, l->s + start, n);
	c->text[n] = '\0';
	c->text_len = n;
	int r = parse_int(c->text, n, &c->neg, &c->mag);
	if (r == -2) {
		mlps_set_error("filter: column %zu: integer '%s' out of range", start + 1, c->text);
		return ML_EINVAL;
	}
	c->is_int = r == 0;
	if (!strcmp(c->text, "true") || !strcmp(c->text, "false")) {
		c->is_bool = 1;
		c->b = c->text[0] == 't';
	}
	return 0;
}

static int parse_cond(struct lex *l, struct mlps_cond *c)
{
	memset(c, 0, sizeof(*c));
	skip_ws(l);
	size_t start = l->i;
	if (!is_name_start(l->s[l->i])) {
		mlps_set_error("filter: column %zu: expected an attribute name", start + 1);
		return ML_EINVAL;
	}
	while (is_name_char(l->s[l->i]))
		l->i++;
	size_t n = l->i - start;
	if (n > MLPS_ATTR_NAME_MAX) {
		mlps_set_error("filter: column %zu: attribute name longer than %d bytes", start + 1,
			       MLPS_ATTR_NAME_MAX);
		return ML_EINVAL;
	}
	memcpy(c->attr, l->s + start, n);
	c->attr[n] = '\0';
	skip_ws(l);
	static const struct {
		const char *s;
		int op;
	} ops[] = { { "==", MLPS_OP_EQ }, { "!=", MLPS_OP_NE }, { "<=", MLPS_OP_LE },
		    { ">=", MLPS_OP_GE }, { "=", MLPS_OP_EQ }, { "<", MLPS_OP_LT },
		    { ">", MLPS_OP_GT } };
	const char *s = l->s + l->i;
	if (!strncmp(s, "exists", 6) && !is_name_char(s[6])) {
		c->op = MLPS_OP_EXISTS;
		l->i += 6;
		return 0;
	}
	for (unsigned k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		size_t ol = strlen(ops[k].s);
		if (!strncmp(s, ops[k].s, ol)) {
			c->op = ops[k].op;
			l->i += ol;
			skip_ws(l);
			return parse_value(l, c, ops[k].s);
		}
	}
	mlps_set_error("filter: column %zu: expected an operator (= != < <= > >=) or 'exists' "
		       "after '%s'", l->i + 1, c->attr);
	return ML_EINVAL;
}

int mlps_filter_parse(const char *text, struct mlps_filter *f)
{
	f->n = 0;
	if (!text)
		return 0;
	struct lex l = { text, 0 };
	skip_ws(&l);
	if (!text[l.i])
		return 0;
	for (;;) {
		if (f->n == MLPS_FILTER_MAX) {
			mlps_set_error("filter: more than %d conditions", MLPS_FILTER_MAX);
			return ML_EINVAL;
		}
		int rc = parse_cond(&l, &f->c[f->n]);
		if (rc)
			return rc;
		f->n++;
		skip_ws(&l);
		if (!text[l.i])
			return 0;
		if (text[l.i] != '&' || text[l.i + 1] != '&') {
			mlps_set_error("filter: column %zu: expected '&&' or the end", l.i + 1);
			return ML_EINVAL;
		}
		l.i += 2;
	}
}

/* <0, 0, >0 for the signed integers (aneg, amag) and (bneg, bmag). */
static int cmp_int(int aneg, uint64_t amag, int bneg, uint64_t bmag)
{
	if (aneg != bneg)
		return aneg ? -1 : 1;
	int r = amag < bmag ? -1 : amag > bmag;
	return aneg ? -r : r;
}

static int cmp_bytes(const void *a, size_t an, const void *b, size_t bn)
{
	int r = memcmp(a, b, an < bn ? an : bn);
	if (r)
		return r;
	return an < bn ? -1 : an > bn;
}

/* Compare attribute with literal: sets *cmp and returns 1, or 0 when the
 * two cannot be compared. */
static int compare(const struct mlps_attr *a, const struct mlps_cond *c, int *cmp)
{
	switch (a->type) {
	case MLPS_U64:
		if (!c->is_int)
			return 0;
		*cmp = cmp_int(0, a->v.u64, c->neg, c->mag);
		return 1;
	case MLPS_I64:
		if (!c->is_int)
			return 0;
		if (a->v.i64 < 0)
			*cmp = cmp_int(1, (uint64_t)0 - (uint64_t)a->v.i64, c->neg, c->mag);
		else
			*cmp = cmp_int(0, (uint64_t)a->v.i64, c->neg, c->mag);
		return 1;
	case MLPS_BOOL:
		if (c->is_bool)
			*cmp = a->v.b - c->b;
		else if (c->is_int && !c->neg && c->mag <= 1)
			*cmp = a->v.b - (int)c->mag;
		else
			return 0;
		return 1;
	case MLPS_STR:
		*cmp = cmp_bytes(a->v.str, strlen(a->v.str), c->text, c->text_len);
		return 1;
	case MLPS_BYTES:
		*cmp = cmp_bytes(a->v.bytes.data, a->v.bytes.len, c->text, c->text_len);
		return 1;
	default:
		return 0;
	}
}

static int cond_holds(const struct mlps_cond *c, const struct mlps_record *rec)
{
	const struct mlps_attr *a = mlps_record_attr(rec, c->attr);
	if (!a)
		return 0;
	int cmp = 0;
	int ok = c->op == MLPS_OP_EXISTS ? 1 : compare(a, c, &cmp);
	switch (c->op) {
	case MLPS_OP_EXISTS: return 1;
	case MLPS_OP_EQ: return ok && cmp == 0;
	case MLPS_OP_NE: return !ok || cmp != 0;
	case MLPS_OP_LT: return ok && cmp < 0;
	case MLPS_OP_LE: return ok && cmp <= 0;
	case MLPS_OP_GT: return ok && cmp > 0;
	case MLPS_OP_GE: return ok && cmp >= 0;
	default: return 0;
	}
}

int mlps_filter_match(const struct mlps_filter *f, const struct mlps_record *rec)
{
	for (unsigned i = 0; i < f->n; i++)
		if (!cond_holds(&f->c[i], rec))
			return 0;
	return 1;
}
