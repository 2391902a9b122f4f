/* test_pubsub_match.c - subscription patterns (prefix, '*', '**', '?') and
 * attribute filters: syntax, errors that say where, and comparison rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "msglayer.h"
#include "../../pubsub/match.h"
#include "../../pubsub/record.h"

static int m(const char *pattern, const char *name)
{
	struct mlps_pattern p;
	assert_int_equal(mlps_pattern_parse(pattern, &p), 0);
	return mlps_pattern_match(&p, name);
}

static void test_prefix_and_all(void **state)
{
	(void)state;
	assert_true(m("block/", "block/vol0"));
	assert_true(m("block/", "block/a/b"));
	assert_false(m("block/", "blocker/vol0"));
	assert_false(m("block/", "block"));
	assert_true(m("", "anything/at/all"));
	assert_true(m(NULL, "x"));
	assert_true(m("**", "a/b/c"));
	assert_true(m("block/vol0", "block/vol0")); /* no wildcard: exact name */
	assert_false(m("block/vol0", "block/vol01"));
	assert_false(m("block/vol0", "block/vol"));
}

static void test_star_and_question(void **state)
{
	(void)state;
	assert_true(m("block/*", "block/vol0"));
	assert_false(m("block/*", "block/a/b")); /* '*' stays within one component */
	assert_false(m("block/*", "block"));
	assert_true(m("block/vol*", "block/vol"));
	assert_true(m("block/*0", "block/vol0"));
	assert_false(m("block/*0", "block/vol1"));
	assert_true(m("*/vol0", "block/vol0"));
	assert_true(m("block/vol?", "block/vol7"));
	assert_false(m("block/vol?", "block/vol"));
	assert_false(m("block/vol?", "block/vol12"));
	assert_false(m("a?b", "a/b")); /* '?' does not match '/' */
	assert_true(m("*a*b*c*", "xxaxxbxxc"));
	assert_false(m("*a*b*c*", "xxaxxcxxb"));
	assert_true(m("fs/*/home", "fs/export/home"));
}

static void test_double_star(void **state)
{
	(void)state;
	assert_true(m("block/**", "block/vol0"));
	assert_true(m("block/**", "block/a/b/c"));
	assert_false(m("block/**", "block"));
	assert_false(m("block/**", "blocks/x"));
	assert_true(m("**/snap", "snap"));
	assert_true(m("**/snap", "fs/home/snap"));
	assert_false(m("**/snap", "fs/home/snapx"));
	assert_true(m("fs/**/snap", "fs/snap")); /* zero components */
	assert_true(m("fs/**/snap", "fs/a/b/snap"));
	assert_false(m("fs/**/snap", "fs/a/b/snap/x"));
	assert_true(m("fs/**/s*", "fs/a/sx"));
	assert_true(m("a**b", "axxb")); /* not a whole component: like '*' */
	assert_false(m("a**b", "ax/xb"));
	/* a prefix with wildcards: everything under a match */
	assert_true(m("fs/*/", "fs/export/home"));
	assert_false(m("fs/*/", "fs/export"));
}

static void test_pathological_pattern_is_fast(void **state)
{
	(void)state;
	char name[256], pat[256];
	memset(name, 'a', 255);
	name[255] = '\0';
	for (int i = 0; i < 127; i++)
		pat[2 * i] = '*', pat[2 * i + 1] = 'a';
	pat[254] = 'b';
	pat[255] = '\0';
	/* exponential without memoisation; polynomial here */
	assert_false(m(pat, name));
}

static void test_pattern_errors(void **state)
{
	(void)state;
	struct mlps_pattern p;
	assert_int_equal(mlps_pattern_parse("/block", &p), ML_EINVAL);
	assert_true(strstr(mlps_last_error(), "column 1: empty component") != NULL);
	assert_int_equal(mlps_pattern_parse("block//x", &p), ML_EINVAL);
	assert_int_equal(mlps_pattern_parse("block x", &p), ML_EINVAL);
	assert_true(strstr(mlps_last_error(), "column 6") != NULL);
	char big[300];
	memset(big, 'a', 299);
	big[299] = '\0';
	assert_int_equal(mlps_pattern_parse(big, &p), ML_EINVAL);
}

/* A record: size=2 GiB, ro=false, proto="nvme", prio=-3, id bytes "abc". */
static struct mlps_record *rec(void)
{
	struct mlps_attr a[] = {
		mlps_attr_u64("size", 2147483648ull), mlps_attr_bool("ro", 0),
		mlps_attr_str("proto", "nvme"),       mlps_attr_i64("prio", -3),
		mlps_attr_bytes("id", "abc", 3),
	};
	struct mlps_rec_in in;
	assert_int_equal(mlps_rec_in_from_api(&in, "block/vol0", a, 5, NULL, 0), 0);
	in.node_id = 1;
	return mlps_rec_build(&in);
}

static int f(const char *filter)
{
	struct mlps_filter fl;
	int rc = mlps_filter_parse(filter, &fl);
	if (rc)
		fail_msg("filter '%s': %s", filter, mlps_last_error());
	struct mlps_record *r = rec();
	int res = mlps_filter_match(&fl, r);
	mlps_rec_free(r);
	return res;
}

static void test_filter_semantics(void **state)
{
	(void)state;
	assert_true(f(NULL));
	assert_true(f(""));
	assert_true(f("   "));
	assert_true(f("size>=1073741824 && ro=false"));
	assert_false(f("size>=1073741824 && ro=true"));
	assert_true(f("size>1073741824"));
	assert_false(f("size<1073741824"));
	assert_true(f("size<=2147483648 && size>=2147483648 && size=2147483648"));
	assert_true(f("size==0x80000000"));
	assert_false(f("size!=2147483648"));
	assert_true(f("size>-1")); /* unsigned against a negative literal */
	assert_true(f("prio<0 && prio>=-3 && prio>-4 && prio!=3"));
	assert_false(f("prio>-3"));
	assert_true(f("proto=nvme && proto!=iscsi"));
	assert_true(f("proto=\"nvme\""));
	assert_true(f("proto>nvmd && proto<nvmf"));
	assert_true(f("id=abc"));
	assert_true(f("ro=0 && ro<true"));
	assert_true(f("proto exists && ro exists"));
	assert_false(f("missing exists"));
	assert_false(f("missing=1"));
	assert_false(f("missing!=1")); /* a condition on a missing attribute never holds */
	assert_false(f("size=big"));  /* cannot compare: false */
	assert_true(f("size!=big"));  /* ... and so "not equal" */
	assert_false(f("size<big"));
	assert_false(f("ro=2"));
	assert_true(f("  size >= 1  &&ro = false&& proto exists  "));
}

static void parse_err(const char *filter, const char *want)
{
	struct mlps_filter fl;
	assert_int_equal(mlps_filter_parse(filter, &fl), ML_EINVAL);
	if (!strstr(mlps_last_error(), want))
		fail_msg("filter '%s': error '%s' lacks '%s'", filter, mlps_last_error(), want);
}

static void test_filter_errors(void **state)
{
	(void)state;
	parse_err("size", "column 5: expected an operator");
	parse_err("size ~ 3", "column 6: expected an operator (= != < <= > >=) or 'exists' after 'size'");
	parse_err("size>=", "column 7: expected a value after '>='");
	parse_err("size>=1 ro=false", "column 9: expected '&&' or the end");
	parse_err("size>=1 &&", "column 11: expected an attribute name");
	parse_err("size>=1 & ro=1", "column 9: expected '&&'");
	parse_err("=3", "column 1: expected an attribute name");
	parse_err("proto=\"nvme", "column 7: unterminated string");
	parse_err("size>99999999999999999999", "out of range");
	parse_err("prio>-9223372036854775809", "out of range");
	parse_err("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", "longer than 32");
	char many[400] = "";
	for (int i = 0; i < 17; i++)
		strcat(many, i ? " && a=1" : "a=1");
	parse_err(many, "more than 16 conditions");
	/* a quoted value keeps its spaces and escapes; a number in quotes is text */
	struct mlps_filter fl;
	assert_int_equal(mlps_filter_parse("p=\"a \\\"b\\\\\"", &fl), 0);
	assert_string_equal(fl.c[0].text, "a \"b\\");
	assert_int_equal(mlps_filter_parse("p=\"12\"", &fl), 0);
	assert_false(fl.c[0].is_int);
	assert_int_equal(mlps_filter_parse("p>=-9223372036854775808", &fl), 0);
	assert_true(fl.c[0].is_int && fl.c[0].neg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_and_all),
		cmocka_unit_test(test_star_and_question),
		cmocka_unit_test(test_double_star),
		cmocka_unit_test(test_pathological_pattern_is_fast),
		cmocka_unit_test(test_pattern_errors),
		cmocka_unit_test(test_filter_semantics),
		cmocka_unit_test(test_filter_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
