/* Unit tests of IMAP ID argument splitting (mw-imapid.c) */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mw-imapid.h"

static void test_split_table(void **state)
{
	static const struct {
		const char *args;
		int ret;
		unsigned int count;
		const char *strings[6];	/* "(nil)" for NULL */
	} tests[] = {
		{ "NIL", 0, 0, { NULL } },
		{ "()", 0, 0, { NULL } },
		{ "(\"name\" \"Thunderbird\")", 0, 2, { "name", "Thunderbird" } },
		{ "(\"name\" NIL \"os\" \"linux\")", 0, 4,
		  { "name", "(nil)", "os", "linux" } },
		{ "(\"a\\\"b\" \"c\\\\d\")", 0, 2, { "a\"b", "c\\d" } },
		{ "(\"name\" {5}\r\nab\"cd)", 0, 2, { "name", "ab\"cd" } },
		{ "(name atom)", 0, 2, { "name", "atom" } },
		{ "(\"unterminated)", -1, 0, { NULL } },
		{ "(\"x\"", -1, 0, { NULL } },
		{ "\"x\"", -1, 0, { NULL } },
		{ "(\"x\") junk", -1, 0, { NULL } },
		{ "({99}\r\nshort)", -1, 0, { NULL } },
		{ "", -1, 0, { NULL } },
	};
	const char *strings[8];
	char buf[512];
	unsigned int i, j, count;

	(void)state;
	for (i = 0; i < sizeof(tests)/sizeof(tests[0]); i++) {
		int ret = mw_imap_id_split(tests[i].args, buf, sizeof(buf),
					   strings, 8, &count);
		assert_int_equal(ret, tests[i].ret);
		if (ret < 0)
			continue;
		assert_int_equal(count, tests[i].count);
		for (j = 0; j < count; j++) {
			if (strcmp(tests[i].strings[j], "(nil)") == 0)
				assert_null(strings[j]);
			else
				assert_string_equal(strings[j], tests[i].strings[j]);
		}
	}
}

static void test_split_hostile(void **state)
{
	const char *strings[60];
	char buf[2048], *big, *p;
	unsigned int count, i;
	size_t n = 10 * 1024;

	(void)state;
	/* a 10 KB value is truncated to the token bound */
	big = malloc(n + 64);
	assert_non_null(big);
	p = big;
	p += sprintf(p, "(\"name\" \"");
	memset(p, 'A', n);
	p += n;
	strcpy(p, "\")");
	assert_int_equal(mw_imap_id_split(big, buf, sizeof(buf), strings, 60,
					  &count), 0);
	assert_int_equal(count, 2);
	assert_true(strlen(strings[1]) < MW_IMAPID_TOKEN_MAX);
	free(big);

	/* 100 parameters: only max_strings kept, buffer never overrun */
	big = malloc(100 * 40 + 8);
	assert_non_null(big);
	p = big;
	*p++ = '(';
	for (i = 0; i < 100; i++)
		p += sprintf(p, "\"k%u\" \"v%u\" ", i, i);
	strcpy(p, ")");
	assert_int_equal(mw_imap_id_split(big, buf, 64, strings, 60,
					  &count), 0);
	assert_int_equal(count, 60);
	for (i = 0; i < count; i++) {
		if (strings[i] != NULL)
			assert_true(strings[i] >= buf && strings[i] < buf + 64);
	}
	free(big);

	/* control characters survive splitting (escaped later) */
	assert_int_equal(mw_imap_id_split("(\"name\" \"a\x01\x1b[31m\")", buf,
					  sizeof(buf), strings, 8, &count), 0);
	assert_string_equal(strings[1], "a\x01\x1b[31m");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_table),
		cmocka_unit_test(test_split_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
