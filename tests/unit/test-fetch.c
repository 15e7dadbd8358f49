/* Unit tests of whole-message IMAP fetches and partial coverage
   (mw-fetch.c) */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mw-fetch.h"

#define NONE UINT64_MAX

static void test_parse_table(void **state)
{
	static const struct {
		const char *name;
		bool whole, binary, partial;
		uint64_t offset, size;
	} tests[] = {
		/* the whole message's section */
		{ "RFC822", true, false, false, 0, NONE },
		{ "BODY[]", true, false, false, 0, NONE },
		{ "BODY.PEEK[]", true, false, false, 0, NONE },
		{ "BINARY[]", true, true, false, 0, NONE },
		{ "BINARY.PEEK[]", true, true, false, 0, NONE },
		{ "BODY.PEEK[]<0.65536>", true, false, true, 0, 65536 },
		{ "BODY[]<65536.65536>", true, false, true, 65536, 65536 },
		{ "BODY.PEEK[]<10>", true, false, true, 10, NONE },
		{ "BINARY.PEEK[]<0.10>", true, true, true, 0, 10 },
		{ "BODY[]<0.0>", true, false, true, 0, 0 },
		{ "BODY[]<18446744073709551615.1>", true, false, true,
		  UINT64_MAX, 1 },
		/* parts, headers, text, sizes: never the whole message */
		{ "RFC822.TEXT", false, false, false, 0, NONE },
		{ "RFC822.HEADER", false, false, false, 0, NONE },
		{ "RFC822.SIZE", false, false, false, 0, NONE },
		{ "BODY", false, false, false, 0, NONE },
		{ "BODYSTRUCTURE", false, false, false, 0, NONE },
		{ "BODY[TEXT]", false, false, false, 0, NONE },
		{ "BODY.PEEK[TEXT]<0.5>", false, false, false, 0, NONE },
		{ "BODY[HEADER]", false, false, false, 0, NONE },
		{ "BODY[HEADER.FIELDS", false, false, false, 0, NONE },
		{ "BODY[1]", false, false, false, 0, NONE },
		{ "BODY.PEEK[1.MIME]", false, false, false, 0, NONE },
		{ "BINARY[1]", false, false, false, 0, NONE },
		{ "BINARY.SIZE[]", false, false, false, 0, NONE },
		{ "BINARY.PEEK[1]<0.10>", false, false, false, 0, NONE },
		/* not understood: not counted */
		{ "BODY[]<>", false, false, false, 0, NONE },
		{ "BODY[]<0.>", false, false, false, 0, NONE },
		{ "BODY[]<.5>", false, false, false, 0, NONE },
		{ "BODY[]<0.5", false, false, false, 0, NONE },
		{ "BODY[]<0.5>x", false, false, false, 0, NONE },
		{ "BODY[]x", false, false, false, 0, NONE },
		{ "BODY[]<18446744073709551616.1>", false, false, false,
		  0, NONE },
		{ "BODY[]<0.-1>", false, false, false, 0, NONE },
		{ "body[]", false, false, false, 0, NONE },
		{ "RFC822X", false, false, false, 0, NONE },
		{ "", false, false, false, 0, NONE },
		{ NULL, false, false, false, 0, NONE },
	};
	struct mw_fetch_att att;
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		bool whole = mw_fetch_att_parse(tests[i].name, &att);

		assert_int_equal(whole, tests[i].whole);
		if (!whole)
			continue;
		assert_int_equal(att.binary, tests[i].binary);
		assert_int_equal(att.partial, tests[i].partial);
		assert_true(att.offset == tests[i].offset);
		assert_true(att.size == tests[i].size);
	}
}

static const unsigned char box_a[16] = { 1, 2, 3 };
static const unsigned char box_b[16] = { 9, 8, 7 };

/* one range of the message (box, uid) of size bytes */
static bool add(struct mw_fetch_cover *cover, const unsigned char *box,
		uint32_t uid, const char *name, uint64_t size)
{
	struct mw_fetch_att att;

	assert_true(mw_fetch_att_parse(name, &att));
	return mw_fetch_cover_add(cover, box, uid, &att, size);
}

static void test_cover_whole_at_once(void **state)
{
	struct mw_fetch_cover cover;

	(void)state;
	memset(&cover, 0, sizeof(cover));
	/* not partial: always whole, with or without a table */
	assert_true(add(NULL, box_a, 1, "BODY[]", 3000));
	assert_true(add(&cover, box_a, 1, "RFC822", 3000));
	assert_true(add(&cover, box_a, 1, "BINARY.PEEK[]", 3000));
	/* one range from 0 reaching the end */
	assert_true(add(NULL, box_a, 1, "BODY.PEEK[]<0.3000>", 3000));
	assert_true(add(&cover, box_a, 1, "BODY.PEEK[]<0.5000>", 3000));
	assert_true(add(&cover, box_a, 1, "BODY.PEEK[]<0>", 3000));
	assert_true(add(&cover, box_a, 2, "BODY.PEEK[]<0.0>", 0));
	/* none of these took a slot */
	assert_true(cover.clock == 0);
	/* short of the end, or not from 0 */
	assert_false(add(NULL, box_a, 1, "BODY.PEEK[]<0.2999>", 3000));
	assert_false(add(NULL, box_a, 1, "BODY.PEEK[]<1>", 3000));
	assert_false(add(&cover, box_a, 3, "BODY.PEEK[]<1>", 3000));
	assert_false(add(&cover, box_a, 3, "BODY.PEEK[]<0.1>", 3000));
}

static void test_cover_chunks(void **state)
{
	struct mw_fetch_cover cover;

	(void)state;
	memset(&cover, 0, sizeof(cover));
	/* Thunderbird's chunks: counted once, at the last one */
	assert_false(add(&cover, box_a, 7, "BODY.PEEK[]<0.1000>", 2500));
	assert_false(add(&cover, box_a, 7, "BODY.PEEK[]<1000.1000>", 2500));
	assert_true(add(&cover, box_a, 7, "BODY.PEEK[]<2000.1000>", 2500));
	assert_false(add(&cover, box_a, 7, "BODY.PEEK[]<2000.1000>", 2500));
	assert_false(add(&cover, box_a, 7, "BODY.PEEK[]<0.1000>", 2500));
	/* the end reached exactly; overlapping and repeated ranges */
	assert_false(add(&cover, box_a, 8, "BODY[]<0.100>", 300));
	assert_false(add(&cover, box_a, 8, "BODY[]<0.100>", 300));
	assert_false(add(&cover, box_a, 8, "BODY[]<50.150>", 300));
	assert_true(add(&cover, box_a, 8, "BODY[]<200.100>", 300));
	/* to the end without a size */
	assert_false(add(&cover, box_a, 9, "BODY[]<0.10>", 300));
	assert_true(add(&cover, box_a, 9, "BODY[]<10>", 300));
	/* a gap is not bridged by a later range */
	assert_false(add(&cover, box_a, 10, "BODY[]<0.100>", 300));
	assert_false(add(&cover, box_a, 10, "BODY[]<200.100>", 300));
	assert_false(add(&cover, box_a, 10, "BODY[]<101.199>", 300));
	assert_true(add(&cover, box_a, 10, "BODY[]<100.200>", 300));
	/* out of order: the later half first is not kept */
	assert_false(add(&cover, box_a, 11, "BODY[]<150.150>", 300));
	assert_false(add(&cover, box_a, 11, "BODY[]<0.150>", 300));
	assert_true(add(&cover, box_a, 11, "BODY[]<150.150>", 300));
	/* a range past UINT64_MAX saturates */
	assert_false(add(&cover, box_a, 12, "BODY[]<0.10>", 300));
	assert_true(add(&cover, box_a, 12,
			"BODY[]<5.18446744073709551615>", 300));
}

static void test_cover_keys(void **state)
{
	struct mw_fetch_cover cover;

	(void)state;
	memset(&cover, 0, sizeof(cover));
	/* the same UID in another mailbox is another message */
	assert_false(add(&cover, box_a, 1, "BODY[]<0.100>", 200));
	assert_false(add(&cover, box_b, 1, "BODY[]<100.100>", 200));
	assert_false(add(&cover, box_a, 2, "BODY[]<100.100>", 200));
	assert_true(add(&cover, box_a, 1, "BODY[]<100.100>", 200));
	/* BODY[] and BINARY[] ranges of one message count apart (their
	   offsets are in different bytes) */
	assert_false(add(&cover, box_b, 5, "BINARY[]<0.100>", 150));
	assert_false(add(&cover, box_b, 5, "BODY[]<100.100>", 150));
	assert_false(add(&cover, box_b, 5, "BODY[]<0.50>", 150));
	assert_true(add(&cover, box_b, 5, "BINARY[]<100.100>", 150));
	assert_true(add(&cover, box_b, 5, "BODY[]<50.100>", 150));
}

static void test_cover_bounded(void **state)
{
	struct mw_fetch_cover cover;
	uint32_t uid;

	(void)state;
	memset(&cover, 0, sizeof(cover));
	/* first halves of more messages than the table holds */
	for (uid = 1; uid <= MW_FETCH_COVER_MAX + 1; uid++)
		assert_false(add(&cover, box_a, uid, "BODY[]<0.100>", 200));
	/* the least recently used (uid 1) was forgotten: its second half
	   does not count; the others' do */
	assert_false(add(&cover, box_a, 1, "BODY[]<100.100>", 200));
	for (uid = 2; uid <= MW_FETCH_COVER_MAX + 1; uid++)
		assert_true(add(&cover, box_a, uid, "BODY[]<100.100>", 200));
	/* a message in use is not the one forgotten */
	memset(&cover, 0, sizeof(cover));
	assert_false(add(&cover, box_a, 1000, "BODY[]<0.100>", 300));
	for (uid = 1; uid < MW_FETCH_COVER_MAX; uid++) {
		assert_false(add(&cover, box_a, uid, "BODY[]<0.100>", 200));
		assert_false(add(&cover, box_a, 1000, "BODY[]<0.100>", 300));
	}
	assert_false(add(&cover, box_a, 5000, "BODY[]<0.100>", 200));
	assert_false(add(&cover, box_a, 1000, "BODY[]<100.100>", 300));
	assert_true(add(&cover, box_a, 1000, "BODY[]<200.100>", 300));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_cover_whole_at_once),
		cmocka_unit_test(test_cover_chunks),
		cmocka_unit_test(test_cover_keys),
		cmocka_unit_test(test_cover_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
