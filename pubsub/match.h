/*
 * match.h - which records a subscription wants: a name pattern and an
 * attribute filter (doc/discovery.md, "Subscriptions"). Pure functions.
 */
#ifndef MLPS_MATCH_H
#define MLPS_MATCH_H

#include <stdint.h>

#include "mlpubsub.h"

#define MLPS_FILTER_MAX 16 /* conditions per filter */

/* Pattern: "" matches everything; "a/b/" (ends with '/', no wildcards) is a
 * prefix (with wildcards: the glob followed by any components); otherwise a glob over the whole name: '?' one character and '*'
 * any run within one component, "**" as a whole component any number of
 * components (zero included). */
struct mlps_pattern {
	char text[MLPS_NAME_MAX + 3]; /* + 2: a glob prefix gets "**" appended */
	size_t len;
	int prefix; /* 1: text is a prefix */
	int all;    /* 1: matches every name */
};

enum mlps_op { MLPS_OP_EQ = 1, MLPS_OP_NE, MLPS_OP_LT, MLPS_OP_LE, MLPS_OP_GT, MLPS_OP_GE, MLPS_OP_EXISTS };

struct mlps_cond {
	char attr[MLPS_ATTR_NAME_MAX + 1];
	int op;
	/* the literal, as every type it can be read as */
	int is_int, is_bool;
	int neg;          /* is_int: negative */
	uint64_t mag;     /* is_int: magnitude */
	int b;            /* is_bool */
	char text[MLPS_VALUE_MAX + 1];
	size_t text_len;
};

struct mlps_filter {
	unsigned n;
	struct mlps_cond c[MLPS_FILTER_MAX];
};

/* 0, or ML_EINVAL with mlps_last_error() saying what and where. */
int mlps_pattern_parse(const char *text, struct mlps_pattern *p);
int mlps_filter_parse(const char *text, struct mlps_filter *f);

int mlps_pattern_match(const struct mlps_pattern *p, const char *name);
/* Every condition holds. A condition on a missing attribute, or whose value
 * cannot be compared with the attribute's type, does not hold (except that
 * != holds for a different type's literal). */
int mlps_filter_match(const struct mlps_filter *f, const struct mlps_record *rec);

#endif
