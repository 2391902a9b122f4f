/*
 * parse.h - command-line values of the block tools, checked whole: a value
 * with trailing garbage, out of range or empty is an error, never a silent 0.
 */
#ifndef BLOCK_PARSE_H
#define BLOCK_PARSE_H

#include <stdint.h>

/* "4096", "4k", "64M", "1G", "2T" (binary units, case-insensitive, optional
 * trailing "iB" or "B"). Returns 0 and sets *out, or -1. */
int parse_size(const char *s, uint64_t *out);
/* A decimal (or 0x hex) integer in [min, max]. Returns 0 or -1. */
int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A finite decimal number in [min, max]. Returns 0 or -1. */
int parse_double(const char *s, double min, double max, double *out);

/* "adaptive" or "round-robin": an enum ml_sched_policy, or -1. */
int parse_sched(const char *s);

/* The message-layer node id when --node is not given: random, 1..2^31-1
 * (unique in practice; give --node when another tool must name it). */
uint32_t default_node_id(void);

/* Prints "PROG: MESSAGE\n(PROG --help shows the options)" and exits with 2. */
void usage_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
