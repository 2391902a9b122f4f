/*
 * json.h - a small JSON writer into a growing buffer (the admin socket's
 * answers). Not installed.
 *
 * Commas are placed by the writer: open a container, add members (with a key
 * inside objects, key NULL inside arrays), close it. Strings are escaped and
 * made valid UTF-8 (invalid bytes become U+FFFD); numbers that are not
 * finite are written as null. Out of memory is sticky: the writer stops and
 * ml_json_take() returns NULL.
 */
#ifndef ML_JSON_H
#define ML_JSON_H

#include <stddef.h>
#include <stdint.h>

#define ML_JSON_DEPTH 16

struct ml_json {
	char *buf;
	size_t len, cap;
	int oom;
	unsigned depth;
	uint32_t nonempty; /* bit d: the container at depth d has a member already */
};

void ml_json_init(struct ml_json *j);
void ml_json_free(struct ml_json *j);
/* The text, NUL-terminated (its length in *len if len is set); the caller
 * frees it. NULL if memory ran out. The writer is empty afterwards. */
char *ml_json_take(struct ml_json *j, size_t *len);

void ml_json_open(struct ml_json *j, const char *key, char bracket);  /* '{' or '[' */
void ml_json_close(struct ml_json *j, char bracket);                  /* '}' or ']' */
void ml_json_u64(struct ml_json *j, const char *key, uint64_t v);
void ml_json_i64(struct ml_json *j, const char *key, int64_t v);
void ml_json_double(struct ml_json *j, const char *key, double v, int decimals);
void ml_json_bool(struct ml_json *j, const char *key, int v);
void ml_json_null(struct ml_json *j, const char *key);
/* s NULL: null. The string form takes at most n bytes of s (stops at a NUL). */
void ml_json_str(struct ml_json *j, const char *key, const char *s);
void ml_json_strn(struct ml_json *j, const char *key, const char *s, size_t n);
/* Raw text, outside of any member logic (a final newline, for instance). */
void ml_json_raw(struct ml_json *j, const char *text);

#endif
