/* Unit tests of JSON escaping and the strict record parser (mw-json.c) */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mw-json.h"
#include "mw-util.h"

static void escape(const char *in, size_t len, struct mw_json_buf *out)
{
	mw_json_buf_reset(out);
	mw_json_append_string(out, in, len);
	assert_false(out->failed);
}

/* parses {"k":<string>} and returns the decoded value */
static void roundtrip(const char *in, size_t len)
{
	struct mw_json_buf b, b2;
	struct mw_json_obj obj;
	const char *err = NULL;

	mw_json_buf_init(&b);
	mw_json_buf_init(&b2);
	mw_json_obj_init(&obj);
	mw_json_buf_append_str(&b, "{\"k\":");
	mw_json_append_string(&b, in, len);
	mw_json_buf_append_str(&b, "}");
	assert_false(b.failed);
	if (mw_json_parse_object(&obj, b.data, b.len, &err) < 0)
		fail_msg("parse of %s failed: %s", b.data, err);
	assert_int_equal(obj.count, 1);
	assert_int_equal(obj.members[0].type, MW_JSON_STRING);
	assert_int_equal(obj.members[0].str_len, len);
	assert_memory_equal(obj.members[0].str, in, len);
	/* canonical: re-serialising gives the same bytes */
	mw_json_obj_serialize(&obj, &b2);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(b2.data, b.data, b.len);
	mw_json_obj_free(&obj);
	mw_json_buf_free(&b);
	mw_json_buf_free(&b2);
}

static void test_escape_table(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} tests[] = {
		{ "", 0, "\"\"" },
		{ "plain", 5, "\"plain\"" },
		{ "a\"b\\c", 5, "\"a\\\"b\\\\c\"" },
		{ "\b\t\n\f\r", 5, "\"\\b\\t\\n\\f\\r\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
		{ "\0x", 2, "\"\\u0000x\"" },
		{ "/</script>", 10, "\"/</script>\"" },
		/* valid UTF-8 copied */
		{ "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", 15,
		  "\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"" },
		/* U+2028 copied */
		{ "\xe2\x80\xa8", 3, "\"\xe2\x80\xa8\"" },
		/* direction characters (RLO, RLI, RLM, ALM) are valid UTF-8:
		   copied (the display escapes them, not the log) */
		{ "a\xe2\x80\xae" "b\xe2\x81\xa7\xe2\x80\x8f\xd8\x9c", 13,
		  "\"a\xe2\x80\xae" "b\xe2\x81\xa7\xe2\x80\x8f\xd8\x9c\"" },
		/* invalid: lone continuation, overlong, surrogate, > U+10FFFF,
		   truncated sequence, 0xff */
		{ "\x80", 1, "\"\\udc80\"" },
		{ "\xc0\xaf", 2, "\"\\udcc0\\udcaf\"" },
		{ "\xed\xa0\x80", 3, "\"\\udced\\udca0\\udc80\"" },
		{ "\xf4\x90\x80\x80", 4, "\"\\udcf4\\udc90\\udc80\\udc80\"" },
		{ "a\xe2\x82", 3, "\"a\\udce2\\udc82\"" },
		{ "\xff", 1, "\"\\udcff\"" },
		{ "\xc3\xbc\xc3", 3, "\"\xc3\xbc\\udcc3\"" },
	};
	struct mw_json_buf b;
	unsigned int i;

	(void)state;
	mw_json_buf_init(&b);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		escape(tests[i].in, tests[i].len, &b);
		assert_string_equal(b.data, tests[i].out);
		roundtrip(tests[i].in, tests[i].len);
	}
	mw_json_buf_free(&b);
}

static void test_roundtrip_all_bytes(void **state)
{
	char buf[4];
	unsigned int i, j;
	uint32_t x = 12345;

	(void)state;
	/* every single byte and every byte pair */
	for (i = 0; i < 256; i++) {
		buf[0] = (char)i;
		roundtrip(buf, 1);
		for (j = 0; j < 256; j++) {
			buf[1] = (char)j;
			roundtrip(buf, 2);
		}
	}
	/* pseudo-random strings biased to high bytes */
	for (i = 0; i < 3000; i++) {
		char s[40];
		size_t n;

		x = x * 1103515245 + 12345;
		n = (x >> 16) % sizeof(s);
		for (j = 0; j < n; j++) {
			x = x * 1103515245 + 12345;
			s[j] = (char)((x >> 16) & 0xff);
			if ((x >> 8) % 4 == 0)
				s[j] = (char)(0x80 | (s[j] & 0x3f));
		}
		roundtrip(s, n);
	}
}

static void test_escape_output_is_clean(void **state)
{
	struct mw_json_buf b;
	unsigned int i;
	char all[256];

	(void)state;
	for (i = 0; i < 256; i++)
		all[i] = (char)i;
	mw_json_buf_init(&b);
	escape(all, sizeof(all), &b);
	/* no raw control bytes, no raw newline, valid UTF-8 throughout */
	for (i = 0; i < b.len; ) {
		size_t n = mw_utf8_char_len((const unsigned char *)b.data + i,
						b.len - i);

		assert_true(n > 0);
		assert_true((unsigned char)b.data[i] >= 0x20);
		assert_true((unsigned char)b.data[i] != 0x7f);
		i += n;
	}
	mw_json_buf_free(&b);
}

/* The escaping rule of docs/audit-log.md §2 one byte at a time: the
   reference the escaper's run copying must match byte for byte. */
static void ref_escape(const unsigned char *p, size_t len, struct mw_json_buf *out)
{
	static const char named[] = "\"\\\b\t\n\f\r", esc[] = "\"\\btnfr";
	const char *s;
	char e[8];
	size_t pos = 0, n;

	while (pos < len) {
		unsigned char c = p[pos];

		n = c >= 0x80 ? mw_utf8_char_len(p + pos, len - pos) : 0;
		if (n > 0) {
			mw_json_buf_append(out, p + pos, n);
			pos += n;
			continue;
		}
		pos++;
		s = c == 0 ? NULL : strchr(named, c);
		if (s != NULL) {
			e[0] = '\\';
			e[1] = esc[s - named];
			mw_json_buf_append(out, e, 2);
		} else if (c >= 0x20 && c < 0x7f) {
			mw_json_buf_append(out, &c, 1);
		} else {
			snprintf(e, sizeof(e), "\\u%s%02x",
				 c < 0x80 ? "00" : "dc", c);
			mw_json_buf_append(out, e, 6);
		}
	}
}

/* long strings and strings appended at every offset of a growing buffer
   (runs that cross the buffer's growth), with control, bidi and invalid
   UTF-8 bytes mixed in: the same bytes as the one-byte-at-a-time rule */
static void test_escape_long_and_growth(void **state)
{
	static const char *const pieces[] = {
		"plain ascii text ", "\"", "\\", "\t", "\x01", "\x7f", "\0",
		"\xe2\x80\xae", "\xe2\x81\xa6", "\xe2\x80\x8f", "\xd8\x9c",
		"\xef\xbb\xbf", "\xc3\xbc", "\xf0\x9f\x98\x80", "\x80", "\xff",
		"\xe2\x82", "\xc0\xaf", "\xed\xa0\x80",
	};
	static unsigned char s[70000];
	struct mw_json_buf got, want;
	size_t n, k, plen, prefix;
	uint32_t x = 777;
	unsigned int i;

	(void)state;
	mw_json_buf_init(&got);
	mw_json_buf_init(&want);
	for (i = 0; i < 400; i++) {
		/* lengths 0..~600, and a few long ones */
		size_t max = i % 50 == 0 ? sizeof(s) - 8 : 600;

		n = 0;
		x = x * 1103515245 + 12345;
		while (n < (x >> 8) % max) {
			x = x * 1103515245 + 12345;
			k = (x >> 16) % (sizeof(pieces) / sizeof(pieces[0]));
			plen = k == 6 ? 1 : strlen(pieces[k]);
			memcpy(s + n, pieces[k], plen);
			n += plen;
		}
		/* start with i bytes in the buffer (a fresh one each time
		   every other round, a reused one otherwise) */
		if (i % 2 == 0) {
			mw_json_buf_free(&got);
			mw_json_buf_init(&got);
		}
		mw_json_buf_reset(&got);
		mw_json_buf_reset(&want);
		for (prefix = 0; prefix < i % 300; prefix++) {
			mw_json_buf_append(&got, "p", 1);
			mw_json_buf_append(&want, "p", 1);
		}
		mw_json_append_escaped(&got, s, n);
		ref_escape(s, n, &want);
		assert_false(got.failed);
		assert_int_equal(got.len, want.len);
		assert_memory_equal(got.data, want.data, want.len);
		assert_int_equal(got.data[got.len], '\0');
	}
	mw_json_buf_free(&got);
	mw_json_buf_free(&want);
}

static void test_append_u64(void **state)
{
	static const uint64_t values[] = {
		0, 1, 9, 10, 99, 100, 4294967295ULL, 4294967296ULL,
		999999999999ULL, 10000000000000000000ULL, UINT64_MAX - 1,
		UINT64_MAX,
	};
	struct mw_json_buf b;
	char want[32];
	unsigned int i;

	(void)state;
	mw_json_buf_init(&b);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		mw_json_buf_reset(&b);
		mw_json_buf_append(&b, "x", 1);
		mw_json_buf_append_u64(&b, values[i]);
		snprintf(want, sizeof(want), "x%llu",
			 (unsigned long long)values[i]);
		assert_string_equal(b.data, want);
		assert_int_equal(b.len, strlen(want));
	}
	mw_json_buf_free(&b);
}

static void test_utf8_cut(void **state)
{
	static const struct {
		const char *in;
		size_t max, want;
	} tests[] = {
		{ "abcdef", 3, 3 },
		{ "abc", 10, 3 },
		{ "a\xc3\xbc", 2, 1 },
		{ "a\xc3\xbc", 3, 3 },
		{ "\xe2\x82\xac\xe2\x82\xac", 4, 3 },
		{ "\xe2\x82\xac\xe2\x82\xac", 5, 3 },
		{ "\xf0\x9f\x98\x80x", 3, 0 },
		{ "\xff\xfe\xfd", 2, 2 },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		assert_int_equal(mw_utf8_cut(tests[i].in,
						  strlen(tests[i].in),
						  tests[i].max), tests[i].want);
	}
}

static void test_parse_ok(void **state)
{
	static const char text[] =
		"{\"a\":\"x\",\"n\":18446744073709551615,\"neg\":-5,"
		"\"t\":true,\"f\":false,\"z\":null,\"e\":\"\\u00e9\\ud83d\\ude00"
		"\\/\\udcff\"}";
	struct mw_json_obj obj;
	const struct mw_json_member *m;
	const char *err;

	(void)state;
	mw_json_obj_init(&obj);
	assert_int_equal(mw_json_parse_object(&obj, text, strlen(text), &err), 0);
	assert_int_equal(obj.count, 7);
	m = mw_json_obj_get(&obj, "n");
	assert_non_null(m);
	assert_int_equal(m->type, MW_JSON_INT);
	assert_true(m->num == UINT64_MAX);
	m = mw_json_obj_get(&obj, "neg");
	assert_true(m->negative && m->num == 5);
	assert_true(mw_json_obj_get(&obj, "t")->boolean);
	assert_false(mw_json_obj_get(&obj, "f")->boolean);
	assert_int_equal(mw_json_obj_get(&obj, "z")->type, MW_JSON_NULL);
	m = mw_json_obj_get(&obj, "e");
	assert_int_equal(m->str_len, 8);
	assert_memory_equal(m->str, "\xc3\xa9\xf0\x9f\x98\x80/\xff", 8);
	/* raw offsets */
	m = mw_json_obj_get(&obj, "a");
	assert_int_equal(m->raw_start, 1);
	assert_int_equal(m->raw_end, 8);
	assert_null(mw_json_obj_get(&obj, "missing"));
	assert_int_equal(mw_json_parse_object(&obj, "{}", 2, &err), 0);
	assert_int_equal(obj.count, 0);
	mw_json_obj_free(&obj);
}

static void test_parse_errors(void **state)
{
	static const char *const bad[] = {
		"",
		"{",
		"}",
		"[]",
		"{} ",
		" {}",
		"{\"a\":1}x",
		"{\"a\":1}\n",
		"{\"a\": 1}",
		"{ \"a\":1}",
		"{\"a\":1,}",
		"{,}",
		"{\"a\"}",
		"{\"a\":}",
		"{a:1}",
		"{\"a\":'x'}",
		"{\"a\":1,\"a\":2}",
		"{\"a\":{}}",
		"{\"a\":[1]}",
		"{\"a\":01}",
		"{\"a\":-0}",
		"{\"a\":-}",
		"{\"a\":1.5}",
		"{\"a\":1e3}",
		"{\"a\":18446744073709551616}",
		"{\"a\":+1}",
		"{\"a\":tru}",
		"{\"a\":nul}",
		"{\"a\":\"x}",
		"{\"a\":\"\t\"}",
		"{\"a\":\"\x7f\"}",
		"{\"a\":\"\\x41\"}",
		"{\"a\":\"\\u12\"}",
		"{\"a\":\"\\u12g4\"}",
		"{\"a\":\"\\ud800\"}",
		"{\"a\":\"\\ud800\\u0041\"}",
		"{\"a\":\"\\udc00\"}",
		"{\"a\":\"\\udc7f\"}",
		"{\"a\":\"\\ude00\"}",
		"{\"a\":\"\xff\"}",
		"{\"a\":\"\xc0\xaf\"}",
		"{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\\u0000\":1}",
		"{\"a\":\"x\"\"b\":1}",
	};
	struct mw_json_obj obj;
	const char *err;
	unsigned int i;

	(void)state;
	mw_json_obj_init(&obj);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		if (mw_json_parse_object(&obj, bad[i], strlen(bad[i]), &err) == 0)
			fail_msg("accepted bad input #%u: %s", i, bad[i]);
		assert_non_null(err);
	}
	mw_json_obj_free(&obj);
}

static void test_parse_too_many_members(void **state)
{
	struct mw_json_buf b;
	struct mw_json_obj obj;
	const char *err;
	unsigned int i;
	char key[16];

	(void)state;
	mw_json_buf_init(&b);
	mw_json_obj_init(&obj);
	mw_json_buf_append_str(&b, "{");
	for (i = 0; i <= MW_JSON_MAX_MEMBERS; i++) {
		snprintf(key, sizeof(key), "%s\"k%u\":1", i > 0 ? "," : "", i);
		mw_json_buf_append_str(&b, key);
		if (i + 1 == MW_JSON_MAX_MEMBERS) {
			mw_json_buf_append_str(&b, "}");
			assert_int_equal(mw_json_parse_object(&obj, b.data,
							      b.len, &err), 0);
			b.len--;
		}
	}
	mw_json_buf_append_str(&b, "}");
	assert_int_equal(mw_json_parse_object(&obj, b.data, b.len, &err), -1);
	mw_json_obj_free(&obj);
	mw_json_buf_free(&b);
}

static void test_noncanonical_detected(void **state)
{
	/* parse fine, but do not re-serialise to the same bytes */
	static const char *const tests[] = {
		"{\"a\":\"\\u0041\"}",
		"{\"a\":\"\\/\"}",
		"{\"a\":\"\\u00E9\"}",
		"{\"a\":\"\\u000a\"}",
		"{\"a\":\"\\uDCFF\"}",
		"{\"a\":\"\\ud83d\\ude00\"}",
	};
	struct mw_json_obj obj;
	struct mw_json_buf b;
	const char *err;
	unsigned int i;

	(void)state;
	mw_json_obj_init(&obj);
	mw_json_buf_init(&b);
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		assert_int_equal(mw_json_parse_object(&obj, tests[i],
						      strlen(tests[i]), &err), 0);
		mw_json_buf_reset(&b);
		mw_json_obj_serialize(&obj, &b);
		assert_false(b.len == strlen(tests[i]) &&
			     memcmp(b.data, tests[i], b.len) == 0);
	}
	mw_json_buf_free(&b);
	mw_json_obj_free(&obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_roundtrip_all_bytes),
		cmocka_unit_test(test_escape_output_is_clean),
		cmocka_unit_test(test_escape_long_and_growth),
		cmocka_unit_test(test_append_u64),
		cmocka_unit_test(test_utf8_cut),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_too_many_members),
		cmocka_unit_test(test_noncanonical_detected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
