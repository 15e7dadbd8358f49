/* Unit tests of the one-pass body check (mw-audit-body.c): it accepts the
   builder's bodies, and never a body the full check (parse, field checks,
   canonical re-serialisation) rejects: hostile bodies, every one-byte
   change, insertion, deletion and truncation of valid bodies, and random
   bytes. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mw-json.h"
#include "mw-audit.h"
#include "mw-audit-private.h"

static unsigned long t_quick_accepts;

/* quick ==> full, and validate == full (verdict) */
static void t_agree(const char *body, size_t len)
{
	const char *err = NULL;
	bool quick = mw_audit_body_quick_valid(body, len);
	int full = mw_audit_body_validate_full(body, len, &err);

	if (quick && full != 0)
		fail_msg("one-pass check accepts what the full check rejects "
			 "(%s): %.*s", err, (int)len, body);
	assert_int_equal(mw_audit_body_validate(body, len, &err), full);
	if (quick)
		t_quick_accepts++;
}

static const char *const valid_bodies[] = {
	"\"event\":\"retr\"",
	"\"service\":\"pop3\",\"session\":\"AbC+/=\",\"event\":\"retr\","
	"\"outcome\":\"ok\",\"user\":\"b\\\"o\\\\b\\b\\t\\n\\f\\r\","
	"\"device\":\"d\",\"remote\":\"::1\",\"mailbox\":\"Entw\xc3\xbc"
	"rfe \xe2\x82\xac \xf0\x9f\x93\xa7\",\"uidvalidity\":1700000000,"
	"\"uid\":0,\"msg_guid\":\"0123abcd\",\"message_id\":\"<a@b>\","
	"\"size\":18446744073709551615,\"policy\":\"client\"",
	"\"event\":\"dele\",\"detail\":\"\\u0000\\u0001\\u001f\\u007f\"",
	"\"event\":\"x_9\",\"detail\":\"\\udcff\\udc80\"",
	"\"event\":\"retr\",\"uid\":12345678901234567890",
	"\"event\":\"logout\",\"retrieved\":3,\"deleted\":2,\"expunged\":1,"
	"\"suppressed\":0,\"dropped\":0,\"bytes\":99,\"truncated\":\"user\"",
};

/* hostile bodies: each must be rejected, by both checks */
static const char *const bad_bodies[] = {
	"",
	",",
	"\"event\":\"retr\",",
	"\"event\":\"retr\"}",
	"\"event\":\"retr\"}{\"seq\":1",
	"\"event\":\"retr\"\n{\"seq\":9",
	"\"event\" :\"retr\"",
	"\"event\":\"retr\" ",
	"\"event\":\"Retr\"",
	"\"event\":\"9retr\"",
	"\"event\":\"\"",
	"\"event\":\"abcdefghijabcdefghijabcdefghijabc\"",
	"\"event\":\"epoch\"",
	"\"event\":\"checkpoint\"",
	"\"event\":\"writer_start\"",
	"\"event\":\"re\\u0000tr\"",
	"\"seq\":1,\"event\":\"retr\"",
	"\"event\":\"retr\",\"mac\":\"00\"",
	"\"event\":\"retr\",\"delayed\":\"x\",\"spool\":\"y\"",
	"\"event\":\"retr\",\"reason\":\"x\"",
	"\"event\":\"retr\",\"Event\":\"x\"",
	"\"event\":\"retr\",\"ev\\u0065nt\":\"x\"",
	"\"ev\\u0065nt\":\"retr\"",
	"\"event\":\"retr\",\"user\":\"a\",\"user\":\"b\"",
	"\"user\":\"a\",\"event\":\"retr\"",
	"\"event\":\"retr\",\"event\":\"retr\"",
	"\"event\":\"retr\",\"user\":\"\\u0041\"",
	"\"event\":\"retr\",\"user\":\"\\/\"",
	"\"event\":\"retr\",\"user\":\"\\u00E9\"",
	"\"event\":\"retr\",\"user\":\"\\u0008\"",
	"\"event\":\"retr\",\"user\":\"\\u000A\"",
	"\"event\":\"retr\",\"user\":\"\\u00e9\"",
	"\"event\":\"retr\",\"user\":\"\\udcc3\\udca9\"",
	"\"event\":\"retr\",\"user\":\"\\udc41\"",
	"\"event\":\"retr\",\"user\":\"\\ud800\"",
	"\"event\":\"retr\",\"user\":\"\\x41\"",
	"\"event\":\"retr\",\"user\":\"\\",
	"\"event\":\"retr\",\"user\":\"a\\u00",
	"\"event\":\"retr\",\"user\":\"a\tb\"",
	"\"event\":\"retr\",\"user\":\"a\x7f\"",
	"\"event\":\"retr\",\"user\":\"\xc3\"",
	"\"event\":\"retr\",\"user\":\"\xc0\xaf\"",
	"\"event\":\"retr\",\"user\":\"\xed\xa0\x80\"",
	"\"event\":\"retr\",\"user\":\"\xf4\x90\x80\x80\"",
	"\"event\":\"retr\",\"user\":\"\xe2\x82\"",
	"\"event\":\"retr\",\"user\":\"abc",
	"\"event\":\"retr\",\"user\":5",
	"\"event\":\"retr\",\"user\":null",
	"\"event\":\"retr\",\"user\":{}",
	"\"event\":\"retr\",\"uid\":\"5\"",
	"\"event\":\"retr\",\"uid\":-5",
	"\"event\":\"retr\",\"uid\":-0",
	"\"event\":\"retr\",\"uid\":05",
	"\"event\":\"retr\",\"uid\":5.0",
	"\"event\":\"retr\",\"uid\":5e1",
	"\"event\":\"retr\",\"uid\":18446744073709551616",
	"\"event\":\"retr\",\"uid\":true",
	"\"event\":\"retr\",\"uid\":",
	"\"event\":\"retr\",\"uid\"",
	"\"event\":\"retr\",\"\":1",
	"\"event\":retr",
	"\"user\":\"a\"",
};

static void test_quick_accepts_builder_bodies(void **state)
{
	struct mw_audit_event ev;
	struct mw_json_buf b;
	const char *err = NULL;
	char longval[300];
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(valid_bodies) / sizeof(valid_bodies[0]); i++) {
		const char *body = valid_bodies[i];
		bool want_quick = strstr(body, "\\udc") == NULL &&
			strstr(body, "12345678901234567890") == NULL &&
			strstr(body, "18446744073709551615") == NULL;

		if (mw_audit_body_validate_full(body, strlen(body), &err) != 0)
			fail_msg("body #%u invalid: %s", i, err);
		if (mw_audit_body_quick_valid(body, strlen(body)) != want_quick)
			fail_msg("body #%u: one-pass check %s it", i,
				 want_quick ? "does not vouch for" : "accepts");
	}
	/* a built body with a string of exactly MW_AUDIT_STR_MAX bytes */
	memset(longval, 'a', MW_AUDIT_STR_MAX - 2);
	memcpy(longval + MW_AUDIT_STR_MAX - 2, "\xc3\xbc", 3);
	mw_json_buf_init(&b);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "fetch");
	mw_audit_event_set_str(&ev, MW_AF_USER, "u\"\\\x01");
	mw_audit_event_set_str(&ev, MW_AF_MESSAGE_ID, longval);
	mw_audit_event_set_num(&ev, MW_AF_UID, 7);
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), 0);
	assert_true(mw_audit_body_quick_valid(b.data, b.len));
	mw_json_buf_free(&b);
}

/* "event":"retr" and nfields string fields of MW_AUDIT_STR_MAX bytes
   0x01 each, escaped (\u0001) */
static size_t t_huge_body(char *out, size_t size, unsigned int nfields)
{
	static const char *const names[] = {
		"outcome", "user", "actor", "device", "device_label",
		"remote", "mailbox", "mailbox_guid", "msg_guid", "message_id",
		"policy", "policy_source",
	};
	size_t n;
	unsigned int i, j;

	assert_true(nfields <= sizeof(names) / sizeof(names[0]));
	assert_true(size > 40 + nfields * (MW_AUDIT_STR_MAX * 6 + 40));
	n = (size_t)snprintf(out, size, "\"event\":\"retr\"");
	for (i = 0; i < nfields; i++) {
		n += (size_t)snprintf(out + n, size - n, ",\"%s\":\"",
				      names[i]);
		for (j = 0; j < MW_AUDIT_STR_MAX; j++) {
			memcpy(out + n, "\\u0001", 6);
			n += 6;
		}
		out[n++] = '"';
	}
	return n;
}

static void test_quick_rejects_hostile_bodies(void **state)
{
	const char *err = NULL;
	char big[MW_AUDIT_BODY_MAX + 64];
	unsigned int i, k;
	size_t n;

	(void)state;
	for (i = 0; i < sizeof(bad_bodies) / sizeof(bad_bodies[0]); i++) {
		const char *body = bad_bodies[i];

		if (mw_audit_body_quick_valid(body, strlen(body)))
			fail_msg("bad body #%u accepted: %s", i, body);
		if (mw_audit_body_validate(body, strlen(body), &err) != -1)
			fail_msg("bad body #%u valid: %s", i, body);
	}
	/* a string of MW_AUDIT_STR_MAX + 1 decoded bytes, escapes counted
	   as one byte each */
	n = (size_t)snprintf(big, sizeof(big), "\"event\":\"retr\",\"user\":\"");
	for (i = 0; i < MW_AUDIT_STR_MAX + 1; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s",
				      i % 2 == 0 ? "\\n" : "a");
	big[n++] = '"';
	assert_false(mw_audit_body_quick_valid(big, n));
	assert_int_equal(mw_audit_body_validate(big, n, &err), -1);
	/* MW_AUDIT_STR_MAX exactly: valid */
	memmove(big + n - 3, big + n - 1, 1);
	n -= 2;
	assert_true(mw_audit_body_quick_valid(big, n));
	assert_int_equal(mw_audit_body_validate_full(big, n, &err), 0);
	/* over MW_AUDIT_BODY_MAX, though valid otherwise: strings of
	   MW_AUDIT_STR_MAX escaped bytes (6 bytes each) in many fields */
	for (k = 9; k <= 11; k++) {
		static char huge[MW_AUDIT_BODY_MAX * 2];

		n = t_huge_body(huge, sizeof(huge), k);
		assert_true(mw_audit_body_quick_valid(huge, n) ==
			    (n <= MW_AUDIT_BODY_MAX));
		assert_int_equal(mw_audit_body_validate(huge, n, &err),
				 n <= MW_AUDIT_BODY_MAX ? 0 : -1);
		if (k == 11)
			assert_true(n > MW_AUDIT_BODY_MAX);
		if (k == 9)
			assert_true(n <= MW_AUDIT_BODY_MAX);
	}
	/* the length is what counts: a NUL inside is a byte like others */
	assert_false(mw_audit_body_quick_valid("\"event\":\"retr\"\0", 15));
	assert_false(mw_audit_body_quick_valid("\"event\":\"re\0r\"", 14));
}

/* every one-byte change, insertion, deletion and truncation of the valid
   bodies: the one-pass check never accepts what the full check
   rejects */
static void test_quick_mutations_agree(void **state)
{
	static const unsigned char bytes[] = {
		0x00, 0x01, 0x08, 0x0a, 0x1f, ' ', '"', ',', '-', '.', '/',
		'0', '1', '9', ':', 'A', 'E', '\\', '_', 'a', 'e', 'f', 'n',
		'r', 't', 'u', 'z', '{', '}', 0x7f, 0x80, 0xa9, 0xbf, 0xc3,
		0xe2, 0xed, 0xf0, 0xf4, 0xff,
	};
	char buf[1200];
	unsigned int i, k;
	size_t pos, len;

	(void)state;
	t_quick_accepts = 0;
	for (i = 0; i < sizeof(valid_bodies) / sizeof(valid_bodies[0]); i++) {
		const char *body = valid_bodies[i];

		len = strlen(body);
		assert_true(len + 1 < sizeof(buf));
		for (pos = 0; pos <= len; pos++) {
			t_agree(body, pos);	/* truncation */
			if (pos == len)
				break;
			/* deletion */
			memcpy(buf, body, pos);
			memcpy(buf + pos, body + pos + 1, len - pos - 1);
			t_agree(buf, len - 1);
			for (k = 0; k < sizeof(bytes); k++) {
				/* change */
				memcpy(buf, body, len);
				buf[pos] = (char)bytes[k];
				t_agree(buf, len);
				/* insertion */
				memcpy(buf, body, pos);
				buf[pos] = (char)bytes[k];
				memcpy(buf + pos + 1, body + pos, len - pos);
				t_agree(buf, len + 1);
			}
		}
	}
	/* the check is not vacuous: it vouched for many of them */
	assert_true(t_quick_accepts > 1000);
}

/* random bodies made of JSON-ish pieces */
static void test_quick_random_agree(void **state)
{
	static const char *const pieces[] = {
		"\"event\":", "\"retr\"", "\"user\":", "\"uid\":", "\"size\":",
		"\"detail\":", "\"seq\":", "\"epoch\"", ",", "\"", "\\", "\\u",
		"00", "1f", "dc", "\\n", "\\\"", "0", "12", "-", "\xc3\xbc",
		"\xc3", "a", ":", "}", "{", "\\/", "\"message_id\":",
		"\"service\":", "\"pop3\"", "\"truncated\":",
	};
	char buf[512];
	unsigned int round, j, npieces, seed = 12345;
	size_t len;

	(void)state;
	for (round = 0; round < 200000; round++) {
		len = 0;
		seed = seed * 1103515245 + 12345;
		npieces = 1 + (seed >> 16) % 12;
		for (j = 0; j < npieces; j++) {
			const char *p;

			seed = seed * 1103515245 + 12345;
			p = pieces[(seed >> 16) %
				   (sizeof(pieces) / sizeof(pieces[0]))];
			if (len + strlen(p) >= sizeof(buf))
				break;
			memcpy(buf + len, p, strlen(p));
			len += strlen(p);
		}
		t_agree(buf, len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quick_accepts_builder_bodies),
		cmocka_unit_test(test_quick_rejects_hostile_bodies),
		cmocka_unit_test(test_quick_mutations_agree),
		cmocka_unit_test(test_quick_random_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
