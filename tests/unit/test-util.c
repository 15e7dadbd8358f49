/* Unit tests of the core's one escaping rule for human-facing output
   (mw_escape_item() and its users in mw-util.c) and mw_access_hint(). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "mw-util.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* the whole of in[len] through mw_escape_item() */
static void escape_all(const char *in, size_t len, unsigned int flags,
		       const char *extra, char *out, size_t outsize)
{
	char esc[MW_ESC_ITEM_MAX + 1];
	size_t n, esc_len, pos = 0;

	while (len > 0) {
		n = mw_escape_item(in, len, flags, extra, esc, &esc_len);
		assert_true(n >= 1 && n <= len);
		assert_true(esc_len == 0 || esc_len == n * 4);
		assert_true(pos + (esc_len > 0 ? esc_len : n) < outsize);
		memcpy(out + pos, esc_len > 0 ? esc : in,
		       esc_len > 0 ? esc_len : n);
		pos += esc_len > 0 ? esc_len : n;
		in += n;
		len -= n;
	}
	out[pos] = '\0';
}

static const struct {
	const char *name;
	const char *in;
	size_t len;		/* 0: strlen(in) */
	const char *out;	/* without MW_ESC_QUOTES */
} cases[] = {
	{ "plain", "Message <a@b.example>", 0, "Message <a@b.example>" },
	{ "quotes kept", "a\"b\\c", 0, "a\"b\\c" },
	{ "C0 NUL", "a\0b", 3, "a\\x00b" },
	{ "C0 ESC CSI", "\x1b[31m", 0, "\\x1b[31m" },
	{ "C0 TAB CR LF", "\t\r\n", 0, "\\x09\\x0d\\x0a" },
	{ "DEL", "a\x7f", 0, "a\\x7f" },
	{ "U+0080", "\xc2\x80", 0, "\\xc2\\x80" },
	{ "U+009B C1 CSI", "x\xc2\x9b" "31m", 0, "x\\xc2\\x9b" "31m" },
	{ "U+009F", "\xc2\x9f", 0, "\\xc2\\x9f" },
	{ "U+00A0 NBSP", "\xc2\xa0", 0, "\\xc2\\xa0" },
	{ "U+00A1 kept", "\xc2\xa1", 0, "\xc2\xa1" },
	{ "U+00AD SHY", "a\xc2\xad" "b", 0, "a\\xc2\\xad" "b" },
	{ "U+00E9 kept", "\xc3\xa9", 0, "\xc3\xa9" },
	{ "U+061B kept", "\xd8\x9b", 0, "\xd8\x9b" },
	{ "U+061C ALM", "\xd8\x9c", 0, "\\xd8\\x9c" },
	{ "U+180E", "\xe1\xa0\x8e", 0, "\\xe1\\xa0\\x8e" },
	{ "U+200A", "\xe2\x80\x8a", 0, "\\xe2\\x80\\x8a" },
	{ "U+3164", "\xe3\x85\xa4", 0, "\\xe3\\x85\\xa4" },
	{ "U+200B ZWSP", "\xe2\x80\x8b", 0, "\\xe2\\x80\\x8b" },
	{ "U+200E LRM", "\xe2\x80\x8e", 0, "\\xe2\\x80\\x8e" },
	{ "U+200F RLM", "\xe2\x80\x8f", 0, "\\xe2\\x80\\x8f" },
	{ "U+2010 kept", "\xe2\x80\x90", 0, "\xe2\x80\x90" },
	{ "U+2028 LS", "\xe2\x80\xa8", 0, "\\xe2\\x80\\xa8" },
	{ "U+202A LRE", "\xe2\x80\xaa", 0, "\\xe2\\x80\\xaa" },
	{ "U+202E RLO", "gpj.\xe2\x80\xae" "exe", 0,
	  "gpj.\\xe2\\x80\\xae" "exe" },
	{ "U+202F", "\xe2\x80\xaf", 0, "\\xe2\\x80\\xaf" },
	{ "U+205F", "\xe2\x81\x9f", 0, "\\xe2\\x81\\x9f" },
	{ "U+FE0F VS16", "\xef\xb8\x8f", 0, "\\xef\\xb8\\x8f" },
	{ "U+2060 WJ", "\xe2\x81\xa0", 0, "\\xe2\\x81\\xa0" },
	{ "U+2064", "\xe2\x81\xa4", 0, "\\xe2\\x81\\xa4" },
	{ "U+2066 LRI", "\xe2\x81\xa6", 0, "\\xe2\\x81\\xa6" },
	{ "U+2069 PDI", "\xe2\x81\xa9", 0, "\\xe2\\x81\\xa9" },
	{ "U+2070 kept", "\xe2\x81\xb0", 0, "\xe2\x81\xb0" },
	{ "U+FEFF BOM", "\xef\xbb\xbf", 0, "\\xef\\xbb\\xbf" },
	{ "U+FFF9", "\xef\xbf\xb9", 0, "\\xef\\xbf\\xb9" },
	{ "U+FFFD kept", "\xef\xbf\xbd", 0, "\xef\xbf\xbd" },
	{ "U+E0041 tag", "\xf3\xa0\x81\x81", 0, "\\xf3\\xa0\\x81\\x81" },
	{ "U+1F600 kept", "\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80" },
	{ "lone continuation", "a\x9b" "b", 0, "a\\x9bb" },
	{ "cut sequence", "\xe2\x80", 0, "\\xe2\\x80" },
	{ "cut by NUL", "\xe2\x80\0", 3, "\\xe2\\x80\\x00" },
	{ "overlong", "\xc0\xaf", 0, "\\xc0\\xaf" },
	{ "surrogate", "\xed\xa0\x80", 0, "\\xed\\xa0\\x80" },
	{ "above U+10FFFF", "\xf4\x90\x80\x80", 0,
	  "\\xf4\\x90\\x80\\x80" },
	{ "latin-1 byte", "caf\xe9", 0, "caf\\xe9" },
};

static void test_escape_table(void **state)
{
	char out[256];
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		size_t len = cases[i].len != 0 ? cases[i].len :
			strlen(cases[i].in);

		escape_all(cases[i].in, len, 0, NULL, out, sizeof(out));
		if (strcmp(out, cases[i].out) != 0)
			fail_msg("%s: got '%s', want '%s'", cases[i].name, out,
				 cases[i].out);
		/* the NUL-terminated users agree where there is no NUL */
		if (memchr(cases[i].in, '\0', len) == NULL) {
			mw_sanitize(cases[i].in, out, sizeof(out));
			if (strcmp(out, cases[i].out) != 0)
				fail_msg("%s: mw_sanitize gave '%s'",
					 cases[i].name, out);
			/* idempotent */
			char again[256];
			mw_sanitize(out, again, sizeof(again));
			assert_string_equal(again, out);
		}
	}
}

static void test_escape_quotes_extra(void **state)
{
	char out[64];
	bool truncated;

	(void)state;
	escape_all("a\"b\\c", 5, MW_ESC_QUOTES, NULL, out, sizeof(out));
	assert_string_equal(out, "a\\x22b\\x5cc");
	escape_all("a\\b\"", 4, 0, "\\", out, sizeof(out));
	assert_string_equal(out, "a\\x5cb\"");
	(void)mw_escape("\xc2\x9b\"", "/", out, sizeof(out), &truncated);
	assert_string_equal(out, "\\xc2\\x9b\\x22");
	assert_false(truncated);
	/* an escape is never cut: the 2-byte C1 escape needs 8 bytes */
	(void)mw_escape("ab\xc2\x9b", NULL, out, 10, &truncated);
	assert_string_equal(out, "ab");
	assert_true(truncated);
}

static void test_cp_is_unsafe(void **state)
{
	/* every range of the table in mw-util.c (Unicode White_Space other
	   than U+0020, Default_Ignorable_Code_Point, controls, U+FFF9..FFFB):
	   its first and last code point are unsafe, the code points just
	   outside it are safe (where they are not in a neighbouring range) */
	static const struct {
		uint32_t first, last;
	} ranges[] = {
		{ 0x00, 0x1f }, { 0x7f, 0xa0 }, { 0xad, 0xad },
		{ 0x34f, 0x34f }, { 0x61c, 0x61c }, { 0x115f, 0x1160 },
		{ 0x1680, 0x1680 }, { 0x17b4, 0x17b5 }, { 0x180b, 0x180f },
		{ 0x2000, 0x200f }, { 0x2028, 0x202f }, { 0x205f, 0x206f },
		{ 0x3000, 0x3000 }, { 0x3164, 0x3164 }, { 0xfe00, 0xfe0f },
		{ 0xfeff, 0xfeff }, { 0xffa0, 0xffa0 }, { 0xfff0, 0xfffb },
		{ 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a },
		{ 0xe0000, 0xe0fff },
	};
	/* inside ranges, for the record: */
	static const uint32_t unsafe[] = {
		0x85, 0x9b, 0x2007, 0x200b, 0x2029, 0x202e, 0x2064, 0x2066,
		0xfe0e, 0xe0001, 0xe007f, 0xe0100, 0xe01ef,
	};
	/* visible characters that stay raw */
	static const uint32_t safe[] = {
		0x20, 0x7e, 0xa1, 0xe9, 0x61b, 0x2010, 0x2027, 0x2070,
		0xac00, 0xfefe, 0xfffd, 0x10000, 0x1f600, 0xe1000, 0x10ffff,
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(ranges); i++) {
		if (!mw_cp_is_unsafe(ranges[i].first))
			fail_msg("U+%04X should be unsafe", ranges[i].first);
		if (!mw_cp_is_unsafe(ranges[i].last))
			fail_msg("U+%04X should be unsafe", ranges[i].last);
		if (ranges[i].first > 0 &&
		    mw_cp_is_unsafe(ranges[i].first - 1) &&
		    (i == 0 || ranges[i - 1].last != ranges[i].first - 1))
			fail_msg("U+%04X should be safe", ranges[i].first - 1);
		if (mw_cp_is_unsafe(ranges[i].last + 1))
			fail_msg("U+%04X should be safe", ranges[i].last + 1);
	}
	for (i = 0; i < N_ELEMENTS(unsafe); i++) {
		if (!mw_cp_is_unsafe(unsafe[i]))
			fail_msg("U+%04X should be unsafe", unsafe[i]);
	}
	for (i = 0; i < N_ELEMENTS(safe); i++) {
		if (mw_cp_is_unsafe(safe[i]))
			fail_msg("U+%04X should be safe", safe[i]);
	}
}

static void test_access_hint(void **state)
{
	char path[] = "/tmp/mw-hint-XXXXXX", out[MW_HINT_MAX], want[256];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0640), 0);
	close(fd);
	errno = 1234;
	assert_string_equal(mw_access_hint(path, ENOENT, out, sizeof(out)),
			    "");
	snprintf(want, sizeof(want), " (process uid %ld gid %ld; %s owned by "
		 "uid %ld gid %ld mode 0640)", (long)geteuid(),
		 (long)getegid(), path, (long)geteuid(), (long)getegid());
	assert_string_equal(mw_access_hint(path, EACCES, out, sizeof(out)),
			    want);
	assert_int_equal(errno, 1234);
	/* bounded */
	(void)mw_access_hint(path, EPERM, out, 20);
	assert_true(strlen(out) < 20);
	unlink(path);
}

/* the one hex decoder, file writer and directory fsync of the core */
static void test_hex_and_files(void **state)
{
	unsigned char out[3];
	char dir[] = "/tmp/mw-util-XXXXXX", path[64], buf[8];
	int fd;

	(void)state;
	assert_int_equal(mw_hex_decode("00aBff", out, 3), 0);
	assert_memory_equal(out, "\x00\xab\xff", 3);
	assert_int_equal(mw_hex_decode("00abff\n", out, 3), -1);
	assert_int_equal(mw_hex_decode_n("00abff\n", out, 3), 0);
	assert_memory_equal(out, "\x00\xab\xff", 3);
	assert_int_equal(mw_hex_decode_n("00ab", out, 3), -1);
	assert_int_equal(mw_hex_decode_n("00abfg", out, 3), -1);
	assert_int_equal(mw_hex_decode_n(NULL, out, 3), -1);
	/* the canonical (lowercase) form only */
	assert_int_equal(mw_hex_lower_len("00abff", 6), 6);
	assert_int_equal(mw_hex_lower_len("00aBff", 6), 3);
	assert_int_equal(mw_hex_lower_len("0a,b", 4), 2);
	assert_int_equal(mw_hex_lower_len("0ag", 2), 2);
	assert_int_equal(mw_hex_lower_len("", 0), 0);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(mw_write_full(fd, "abcdef", 6), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(mw_fsync_parent_dir(path), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "abcdef", 6);
	/* pread of an exact range; past the end: -1 with EIO */
	assert_int_equal(mw_pread_full(fd, buf, 3, 2), 0);
	assert_memory_equal(buf, "cde", 3);
	errno = 0;
	assert_int_equal(mw_pread_full(fd, buf, 3, 4), -1);
	assert_int_equal(errno, EIO);
	/* a read-only descriptor: -1 with errno */
	errno = 0;
	assert_int_equal(mw_write_full(fd, "x", 1), -1);
	assert_int_equal(errno, EBADF);
	assert_int_equal(close(fd), 0);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/missing/f", dir);
	assert_int_equal(mw_fsync_parent_dir(path), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(rmdir(dir), 0);
}

/* mw_utc_stamp_usec() against gmtime_r()/strftime() and printf, with
   the cache kept across seconds that repeat, advance and go back */
static void test_utc_stamp(void **state)
{
	static const struct {
		time_t sec;
		long usec;
	} t[] = {
		{ 0, 0 }, { 0, 999999 }, { 59, 1 }, { 60, 10 },
		{ 951782400, 123456 },	/* 2000-02-29 */
		{ 1796601599, 500000 }, { 1796601600, 7 },
		{ 1796601600, 8 }, { 1796601599, 9 }, { 4102444800, 42 },
	};
	struct mw_utc_stamp_cache cache;
	char out[MW_UTC_STAMP_LEN + 1], want[64], date[32];
	struct tm tm;
	unsigned int i;

	(void)state;
	memset(&cache, 0, sizeof(cache));
	for (i = 0; i < N_ELEMENTS(t); i++) {
		assert_non_null(gmtime_r(&t[i].sec, &tm));
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want, sizeof(want), "%s.%06ldZ", date, t[i].usec);
		memset(out, 'x', sizeof(out));
		assert_int_equal(mw_utc_stamp_usec(&cache, t[i].sec,
						   t[i].usec, out), 0);
		assert_string_equal(out, want);
		assert_int_equal(strlen(out), MW_UTC_STAMP_LEN);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_and_files),
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_escape_quotes_extra),
		cmocka_unit_test(test_cp_is_unsafe),
		cmocka_unit_test(test_access_hint),
		cmocka_unit_test(test_utc_stamp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
