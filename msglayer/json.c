/* json.c - the JSON writer of json.h (the admin socket's answers). */
#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ml_json_init(struct ml_json *j)
{
	memset(j, 0, sizeof(*j));
}

void ml_json_free(struct ml_json *j)
{
	free(j->buf);
	ml_json_init(j);
}

char *ml_json_take(struct ml_json *j, size_t *len)
{
	char *s = j->oom ? NULL : j->buf;
	if (s && len)
		*len = j->len;
	if (!s)
		free(j->buf);
	ml_json_init(j);
	return s;
}

static void put(struct ml_json *j, const char *s, size_t n)
{
	if (j->oom)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 1024;
		while (cap < j->len + n + 1)
			cap *= 2;
		char *b = realloc(j->buf, cap);
		if (!b) {
			j->oom = 1;
			return;
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = 0;
}

static void putc1(struct ml_json *j, char c)
{
	put(j, &c, 1);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, or a surrogate */
	return len;
}

static void put_string(struct ml_json *j, const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	putc1(j, '"');
	size_t i = 0;
	while (i < n && s[i]) {
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\')
			run++;
		put(j, (const char *)s + i, run - i);
		i = run;
		if (i >= n || !s[i])
			break;
		unsigned char c = s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(j, esc, 2);
			i++;
		} else if (c == '\n') {
			put(j, "\\n", 2);
			i++;
		} else if (c == '\r') {
			put(j, "\\r", 2);
			i++;
		} else if (c == '\t') {
			put(j, "\\t", 2);
			i++;
		} else if (c < 0x80) { /* other control characters and DEL */
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(j, esc, 6);
			i++;
		} else {
			size_t k = utf8_len(s + i, n - i);
			if (k) {
				put(j, (const char *)s + i, k);
				i += k;
			} else {
				put(j, "\\ufffd", 6);
				i++;
			}
		}
	}
	putc1(j, '"');
}

/* Comma and key before a member. */
static void member(struct ml_json *j, const char *key)
{
	uint32_t bit = 1u << (j->depth < 32 ? j->depth : 31);
	if (j->nonempty & bit)
		putc1(j, ',');
	j->nonempty |= bit;
	if (key) {
		put_string(j, key, strlen(key));
		putc1(j, ':');
	}
}

void ml_json_open(struct ml_json *j, const char *key, char bracket)
{
	member(j, key);
	putc1(j, bracket);
	if (j->depth + 1 >= ML_JSON_DEPTH) {
		j->oom = 1; /* deeper than any answer we write: a bug, fail loudly */
		return;
	}
	j->depth++;
	j->nonempty &= ~(1u << j->depth);
}

void ml_json_close(struct ml_json *j, char bracket)
{
	if (j->depth)
		j->depth--;
	putc1(j, bracket);
}

static void number(struct ml_json *j, const char *key, const char *text)
{
	member(j, key);
	put(j, text, strlen(text));
}

void ml_json_u64(struct ml_json *j, const char *key, uint64_t v)
{
	char t[24];
	snprintf(t, sizeof(t), "%" PRIu64, v);
	number(j, key, t);
}

void ml_json_i64(struct ml_json *j, const char *key, int64_t v)
{
	char t[24];
	snprintf(t, sizeof(t), "%" PRId64, v);
	number(j, key, t);
}

void ml_json_double(struct ml_json *j, const char *key, double v, int decimals)
{
	char t[400]; /* |v| < 1e300: at most 301 digits, a sign, a point, 9 decimals */
	if (decimals < 0 || decimals > 9)
		decimals = 3;
	if (!isfinite(v) || fabs(v) >= 1e300) {
		number(j, key, "null");
		return;
	}
	snprintf(t, sizeof(t), "%.*f", decimals, v);
	number(j, key, t);
}

void ml_json_bool(struct ml_json *j, const char *key, int v)
{
	number(j, key, v ? "true" : "false");
}

void ml_json_null(struct ml_json *j, const char *key)
{
	number(j, key, "null");
}

void ml_json_strn(struct ml_json *j, const char *key, const char *s, size_t n)
{
	member(j, key);
	if (s)
		put_string(j, s, n);
	else
		put(j, "null", 4);
}

void ml_json_str(struct ml_json *j, const char *key, const char *s)
{
	ml_json_strn(j, key, s, s ? strlen(s) : 0);
}

void ml_json_raw(struct ml_json *j, const char *text)
{
	put(j, text, strlen(text));
}
