/* Unit tests of device identity (src/core/mw-device.c) and the escaping
   helpers it relies on (src/core/mw-util.c). Real OpenSSL, real files. */

#define _GNU_SOURCE /* nftw */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-util.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* The invariant of every label/value: bounded, valid UTF-8, no control
   characters (C0, DEL, C1), no bidi controls. */
static void assert_clean_text(const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;
	size_t n;

	if (strlen(s) > max)
		fail_msg("'%s' longer than %zu", s, max);
	while (*p != '\0') {
		if (*p >= 0x20 && *p < 0x7f) {
			p++;
			continue;
		}
		n = mw_utf8_seq_len(p, &cp);
		if (n == 0)
			fail_msg("invalid UTF-8 or control byte 0x%02x in '%s'",
				 *p, s);
		if (cp <= 0x9f || (cp >= 0x2028 && cp <= 0x202e) ||
		    (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff)
			fail_msg("unsafe code point U+%04X in '%s'", cp, s);
		p += n;
	}
}

/* ---- network prefixes ---- */

static void test_network_prefix(void **state)
{
	static const struct {
		const char *ip;
		unsigned int v4, v6;
		int ret;
		const char *out;
	} cases[] = {
		{ "192.0.2.77", 24, 64, 0, "192.0.2.0/24" },
		{ "192.0.2.77", 16, 64, 0, "192.0.0.0/16" },
		{ "192.0.2.77", 32, 64, 0, "192.0.2.77/32" },
		{ "192.0.2.77", 0, 64, 0, "0.0.0.0/0" },
		{ "10.1.31.3", 20, 64, 0, "10.1.16.0/20" },
		{ "2001:db8:1:2:3:4:5:6", 24, 64, 0, "2001:db8:1:2::/64" },
		{ "2001:DB8:1:2::1", 24, 48, 0, "2001:db8:1::/48" },
		{ "2001:db8::1", 24, 128, 0, "2001:db8::1/128" },
		{ "2001:db8:ffff::1", 24, 36, 0, "2001:db8:f000::/36" },
		{ "::1", 24, 64, 0, "::/64" },
		{ "::ffff:192.0.2.77", 24, 64, 0, "192.0.2.0/24" },
		{ "[2001:db8::1]", 24, 64, 0, "2001:db8::/64" },
		{ "fe80::1%eth0", 24, 64, 0, "fe80::/64" },
		{ "[fe80::1%25eth0]", 24, 10, 0, "fe80::/10" },
		{ "192.0.2.77", 33, 64, -1, NULL },
		{ "2001:db8::1", 24, 129, -1, NULL },
		{ "", 24, 64, -1, NULL },
		{ "foo", 24, 64, -1, NULL },
		{ "192.0.2", 24, 64, -1, NULL },
		{ "192.0.2.256", 24, 64, -1, NULL },
		{ "192.0.2.1 ", 24, 64, -1, NULL },
		{ "192.0.2.1/24", 24, 64, -1, NULL },
		{ "[::1", 24, 64, -1, NULL },
		{ "[::1]x", 24, 64, -1, NULL },
		{ "::1]", 24, 64, -1, NULL },
		{ "%eth0", 24, 64, -1, NULL },
		{ "unix:/run/dovecot/login", 24, 64, -1, NULL },
	};
	char buf[MW_PREFIX_BUF_SIZE], big[10240];
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		int ret = mw_network_prefix(cases[i].ip, cases[i].v4,
					    cases[i].v6, buf, sizeof(buf));
		if (ret != cases[i].ret)
			fail_msg("case %u '%s': ret %d", i, cases[i].ip, ret);
		if (ret == 0 && strcmp(buf, cases[i].out) != 0)
			fail_msg("case %u '%s': got '%s', expected '%s'", i,
				 cases[i].ip, buf, cases[i].out);
	}
	assert_int_equal(mw_network_prefix(NULL, 24, 64, buf, sizeof(buf)),
			 -1);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(mw_network_prefix(big, 24, 64, buf, sizeof(buf)), -1);
	/* buffer too small */
	assert_int_equal(mw_network_prefix("192.0.2.77", 24, 64, buf, 12), -1);
	assert_int_equal(mw_network_prefix("192.0.2.77", 24, 64, buf, 13), 0);
	assert_string_equal(buf, "192.0.2.0/24");
}

/* ---- ID parameters ---- */

struct id_expect {
	const char *name, *version, *os, *os_version, *vendor;
};

static void check_id(const char *what, const struct mw_id_params *id,
		     const struct id_expect *e)
{
	const char *got[] = { id->name, id->version, id->os, id->os_version,
			      id->vendor };
	const char *exp[] = { e->name, e->version, e->os, e->os_version,
			      e->vendor };
	unsigned int i;

	for (i = 0; i < N_ELEMENTS(got); i++) {
		assert_clean_text(got[i], MW_ID_VALUE_MAX);
		if (strcmp(got[i], exp[i] == NULL ? "" : exp[i]) != 0)
			fail_msg("%s: field %u: got '%s', expected '%s'", what,
				 i, got[i], exp[i] == NULL ? "" : exp[i]);
	}
}

static void test_id_params_table(void **state)
{
	static const char *const basic[] = {
		"name", "Thunderbird", "version", "128.3", "os", "Linux",
		"os-version", "6.1", "vendor", "Mozilla", "support-url",
		"https://x", "date", "2024"
	};
	static const char *const upper[] = {
		"NAME", "K-9", "Os-Version", "14", "VeNdOr", "k9"
	};
	static const char *const dup[] = {
		"name", "first", "Name", "second", "os", NULL, "os", "later"
	};
	static const char *const nullname[] = {
		NULL, "x", "name", "y", "vendor", NULL
	};
	static const char *const controls[] = {
		"name", "a\tb\nc\x01\x7f", "version", "q\"b\\s"
	};
	static const char *const utf8[] = {
		"name", "caf\xc3\xa9 \xf0\x9f\x93\xa7",	/* valid: kept */
		"version", "caf\xc3",			/* truncated seq */
		"os", "\xc0\xaf\xed\xa0\x80",		/* overlong, surrogate */
		"os-version", "a\xc2\x85" "b",		/* C1 NEL */
		"vendor", "x\xe2\x80\xaey",		/* RLO bidi override */
	};
	static const char *const notparams[] = {
		"names", "x", "nam", "y", "os-versio", "z", "", "w"
	};
	static const struct {
		const char *what;
		const char *const *pairs;
		unsigned int count;
		struct id_expect e;
	} cases[] = {
		{ "basic", basic, N_ELEMENTS(basic) / 2,
		  { "Thunderbird", "128.3", "Linux", "6.1", "Mozilla" } },
		{ "case", upper, N_ELEMENTS(upper) / 2,
		  { "K-9", NULL, NULL, "14", "k9" } },
		{ "dup", dup, N_ELEMENTS(dup) / 2,
		  { "first", NULL, NULL, NULL, NULL } },
		{ "nullname", nullname, N_ELEMENTS(nullname) / 2,
		  { "y", NULL, NULL, NULL, NULL } },
		{ "controls", controls, N_ELEMENTS(controls) / 2,
		  { "a\\x09b\\x0ac\\x01\\x7f", "q\\x22b\\x5cs", NULL, NULL,
		    NULL } },
		{ "utf8", utf8, N_ELEMENTS(utf8) / 2,
		  { "caf\xc3\xa9 \xf0\x9f\x93\xa7", "caf\\xc3",
		    "\\xc0\\xaf\\xed\\xa0\\x80", "a\\xc2\\x85b",
		    "x\\xe2\\x80\\xaey" } },
		{ "not params", notparams, N_ELEMENTS(notparams) / 2,
		  { NULL, NULL, NULL, NULL, NULL } },
		{ "count 0", basic, 0, { NULL, NULL, NULL, NULL, NULL } },
		{ "count 1", basic, 1,
		  { "Thunderbird", NULL, NULL, NULL, NULL } },
		{ "NULL pairs", NULL, 0, { NULL, NULL, NULL, NULL, NULL } },
	};
	struct mw_id_params id;
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		memset(&id, 'X', sizeof(id)); /* parse must reset it */
		mw_id_params_parse(cases[i].pairs, cases[i].count, &id);
		check_id(cases[i].what, &id, &cases[i].e);
	}
}

static void test_id_params_bounds(void **state)
{
	static const struct {
		const char *unit;	/* repeated to fill 10 KB */
		const char *prefix;
		const char *expect;	/* NULL: just check the length */
		size_t expect_len;
	} cases[] = {
		{ "A", "", NULL, 64 },
		{ "\x01", "", NULL, 64 },		/* 16 escapes */
		{ "\xc3\xa9", "", NULL, 64 },		/* 32 x e-acute */
		{ "\xf0\x9f\x93\xa7", "", NULL, 64 },	/* 16 x 4 bytes */
		{ "\xc3\xa9", "AAA", NULL, 63 },	/* 3 + 30*2, no split */
		{ "\x01", "AA", NULL, 62 },		/* 2 + 15*4 */
		{ "\"", "", NULL, 64 },
		{ "\xff", "", NULL, 64 },
	};
	const char *pairs[2];
	struct mw_id_params id;
	char *big;
	size_t ulen, plen, pos;
	unsigned int i;

	(void)state;
	big = malloc(10240 + 8);
	assert_non_null(big);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		ulen = strlen(cases[i].unit);
		plen = strlen(cases[i].prefix);
		memcpy(big, cases[i].prefix, plen);
		for (pos = plen; pos + ulen <= 10240; pos += ulen)
			memcpy(big + pos, cases[i].unit, ulen);
		big[pos] = '\0';
		pairs[0] = "name";
		pairs[1] = big;
		mw_id_params_parse(pairs, 1, &id);
		assert_clean_text(id.name, MW_ID_VALUE_MAX);
		if (strlen(id.name) != cases[i].expect_len)
			fail_msg("case %u: length %zu, expected %zu", i,
				 strlen(id.name), cases[i].expect_len);
	}
	/* the exact cut: 63 A and a 2-byte character that does not fit */
	memset(big, 'A', 63);
	strcpy(big + 63, "\xc3\xa9" "tail");
	pairs[1] = big;
	mw_id_params_parse(pairs, 1, &id);
	assert_int_equal(strlen(id.name), 63);
	assert_int_equal(id.name[62], 'A');
	free(big);
}

static void test_id_params_many(void **state)
{
	/* 100 pairs: only the first 30 count */
	const char *pairs[200];
	char names[100][16];
	struct mw_id_params id;
	unsigned int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		snprintf(names[i], sizeof(names[i]), "x-junk-%u", i);
		pairs[i * 2] = names[i];
		pairs[i * 2 + 1] = "v";
	}
	pairs[29 * 2] = "os";
	pairs[29 * 2 + 1] = "in";	/* pair 30: counted */
	pairs[30 * 2] = "name";
	pairs[30 * 2 + 1] = "out";	/* pair 31: ignored */
	pairs[99 * 2] = "vendor";
	pairs[99 * 2 + 1] = "out";
	mw_id_params_parse(pairs, 100, &id);
	assert_string_equal(id.os, "in");
	assert_string_equal(id.name, "");
	assert_string_equal(id.vendor, "");
}

/* ---- describe ---- */

static void test_describe(void **state)
{
	static const char *const tb[] = {
		"name", "Thunderbird", "version", "128.3", "os", "linux",
		"vendor", "Mozilla"
	};
	static const char *const tb_new[] = {
		"name", "Thunderbird", "version", "140.0", "os", "linux",
		"vendor", "Mozilla"
	};
	static const char *const k9[] = { "name", "K-9" };
	static const char *const slash[] = { "name", "a/b", "os", "c:d" };
	static const char *const noname[] = { "os", "iOS", "vendor", "Apple" };
	static const char *const hostile[] = {
		"name", "\"evil\"\n\x1b[31m", "version", "1\r\n2", "os",
		"\xe2\x80\xae" "gro"
	};
	struct mw_id_params p_tb, p_tb_new, p_k9, p_slash, p_noname, p_hostile;
	const struct {
		const char *what;
		struct mw_device_source src;
		const char *identity, *label;
	} cases[] = {
		{ "explicit", { "Phone of Bob", "pop3", &p_tb, "192.0.2.77",
				24, 64 },
		  "explicit:Phone of Bob", "Phone of Bob" },
		{ "explicit hostile", { "a\"b\n/c", "imap", NULL, NULL, 24,
					64 },
		  "explicit:a\\x22b\\x0a/c", "a\\x22b\\x0a/c" },
		{ "empty explicit -> id", { "", "imap", &p_tb, "192.0.2.77",
					    24, 64 },
		  "id:imap:Thunderbird/linux/Mozilla",
		  "imap \"Thunderbird 128.3\" linux from 192.0.2.0/24" },
		{ "upgrade: same identity", { NULL, "imap", &p_tb_new,
					      "192.0.2.1", 24, 64 },
		  "id:imap:Thunderbird/linux/Mozilla",
		  "imap \"Thunderbird 140.0\" linux from 192.0.2.0/24" },
		{ "id no ip", { NULL, "imap", &p_k9, NULL, 24, 64 },
		  "id:imap:K-9//", "imap \"K-9\"" },
		{ "id separators", { NULL, "imap", &p_slash, "2001:db8::1",
				     24, 64 },
		  "id:imap:a\\x2fb/c\\x3ad/",
		  "imap \"a/b\" c:d from 2001:db8::/64" },
		{ "id hostile", { NULL, "imap", &p_hostile, NULL, 24, 64 },
		  "id:imap:\\x5cx22evil\\x5cx22\\x5cx0a\\x5cx1b[31m/"
		  "\\x5cxe2\\x5cx80\\x5cxaegro/",
		  "imap \"\\x22evil\\x22\\x0a\\x1b[31m 1\\x0d\\x0a2\" "
		  "\\xe2\\x80\\xaegro" },
		{ "id without name -> net", { NULL, "imap", &p_noname,
					      "192.0.2.77", 24, 64 },
		  "net:imap:192.0.2.0/24", "imap from 192.0.2.0/24" },
		{ "net v4", { NULL, "pop3", NULL, "198.51.100.200", 16, 64 },
		  "net:pop3:198.51.0.0/16", "pop3 from 198.51.0.0/16" },
		{ "net v6", { NULL, "pop3", NULL, "2001:db8:1:2:3::9", 24,
			      64 },
		  "net:pop3:2001:db8:1:2::/64", "pop3 from 2001:db8:1:2::/64" },
		{ "net mapped", { NULL, "pop3", NULL, "::ffff:192.0.2.77", 24,
				  64 },
		  "net:pop3:192.0.2.0/24", "pop3 from 192.0.2.0/24" },
		{ "clamped bits", { NULL, "pop3", NULL, "192.0.2.77", 99,
				    999 },
		  "net:pop3:192.0.2.77/32", "pop3 from 192.0.2.77/32" },
		{ "local", { NULL, "pop3", NULL, NULL, 24, 64 },
		  "net:pop3:local", "pop3 (no remote address)" },
		{ "unparseable ip", { NULL, "pop3", NULL, "garbage", 24, 64 },
		  "net:pop3:local", "pop3 (no remote address)" },
		{ "no protocol", { NULL, NULL, NULL, NULL, 24, 64 },
		  "net:unknown:local", "unknown (no remote address)" },
		{ "hostile protocol", { NULL, "po:p/3\n", NULL, NULL, 24, 64 },
		  "net:po\\x3ap\\x2f3\\x0a:local",
		  "po:p/3\\x0a (no remote address)" },
	};
	char identity[MW_IDENTITY_BUF_SIZE], label[MW_LABEL_BUF_SIZE];
	unsigned int i;

	(void)state;
	mw_id_params_parse(tb, N_ELEMENTS(tb) / 2, &p_tb);
	mw_id_params_parse(tb_new, N_ELEMENTS(tb_new) / 2, &p_tb_new);
	mw_id_params_parse(k9, N_ELEMENTS(k9) / 2, &p_k9);
	mw_id_params_parse(slash, N_ELEMENTS(slash) / 2, &p_slash);
	mw_id_params_parse(noname, N_ELEMENTS(noname) / 2, &p_noname);
	mw_id_params_parse(hostile, N_ELEMENTS(hostile) / 2, &p_hostile);
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		mw_device_describe(&cases[i].src, identity, sizeof(identity),
				   label, sizeof(label));
		assert_clean_text(identity, MW_IDENTITY_BUF_SIZE - 1);
		assert_clean_text(label, MW_LABEL_MAX);
		if (strcmp(identity, cases[i].identity) != 0)
			fail_msg("%s: identity '%s', expected '%s'",
				 cases[i].what, identity, cases[i].identity);
		if (strcmp(label, cases[i].label) != 0)
			fail_msg("%s: label '%s', expected '%s'",
				 cases[i].what, label, cases[i].label);
	}
}

static void test_describe_bounds(void **state)
{
	struct mw_id_params id;
	struct mw_device_source src;
	const char *pairs[10];
	char identity[MW_IDENTITY_BUF_SIZE], label[MW_LABEL_BUF_SIZE];
	char big[10240], small[10];
	unsigned int i;

	(void)state;
	memset(big, 0, sizeof(big));
	for (i = 0; i + 2 < sizeof(big); i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	for (i = 0; i < 5; i++)
		pairs[i * 2 + 1] = big;
	pairs[0] = "name"; pairs[2] = "version"; pairs[4] = "os";
	pairs[6] = "os-version"; pairs[8] = "vendor";
	mw_id_params_parse(pairs, 5, &id);

	memset(&src, 0, sizeof(src));
	src.protocol = "imap";
	src.id = &id;
	src.remote_ip = "2001:db8:1234:5678:9abc:def0:1234:5678";
	src.v4_prefix_bits = 24;
	src.v6_prefix_bits = 128;
	mw_device_describe(&src, identity, sizeof(identity), label,
			   sizeof(label));
	assert_clean_text(label, MW_LABEL_MAX);
	assert_clean_text(identity, MW_IDENTITY_BUF_SIZE - 1);
	assert_true(strlen(label) >= MW_LABEL_MAX - 1);
	/* a larger label buffer is still capped at MW_LABEL_MAX */
	{
		char biglabel[1000];

		mw_device_describe(&src, identity, sizeof(identity), biglabel,
				   sizeof(biglabel));
		assert_true(strlen(biglabel) <= MW_LABEL_MAX);
		assert_clean_text(biglabel, MW_LABEL_MAX);
	}
	/* tiny buffers: truncated, terminated, clean */
	mw_device_describe(&src, small, sizeof(small), label, 1);
	assert_string_equal(label, "");
	assert_true(strlen(small) <= 9);
	assert_clean_text(small, 9);
	src.explicit_device = big;
	mw_device_describe(&src, identity, sizeof(identity), small,
			   sizeof(small));
	assert_clean_text(small, 9);
	assert_int_equal(strlen(small), 8); /* 4 x 2-byte, no split */
}

/* ---- device ids ---- */

static void test_device_id(void **state)
{
	unsigned char key[MW_DEVICE_KEY_SIZE], key2[MW_DEVICE_KEY_SIZE];
	unsigned char raw[MW_DEVICE_ID_SIZE];
	char hex[MW_DEVICE_ID_HEX_SIZE], hex2[MW_DEVICE_ID_HEX_SIZE];
	char rawhex[MW_DEVICE_ID_HEX_SIZE];
	static const struct {
		const char *identity, *id;
	} vectors[] = {
		/* HMAC-SHA-256 with key 00 01 .. 1f, first 16 bytes */
		{ "net:pop3:192.0.2.0/24", "5c2531fb58ca45a2adefac22b96c5d53" },
		{ "id:imap:Thunderbird/linux/Mozilla",
		  "964769ae90a0f1a94a69a5b946cd1bb7" },
	};
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	for (i = 0; i < N_ELEMENTS(vectors); i++) {
		assert_int_equal(mw_device_id(key, vectors[i].identity, raw,
					      hex), 0);
		assert_string_equal(hex, vectors[i].id);
		mw_hex_encode(raw, sizeof(raw), rawhex);
		assert_string_equal(rawhex, hex);
	}
	/* deterministic */
	assert_int_equal(mw_device_id(key, "net:pop3:local", NULL, hex), 0);
	assert_int_equal(mw_device_id(key, "net:pop3:local", NULL, hex2), 0);
	assert_string_equal(hex, hex2);
	/* another identity, another id */
	assert_int_equal(mw_device_id(key, "net:imap:local", NULL, hex2), 0);
	assert_string_not_equal(hex, hex2);
	/* another key, another id */
	memcpy(key2, key, sizeof(key));
	key2[31] ^= 1;
	assert_int_equal(mw_device_id(key2, "net:pop3:local", raw, hex2), 0);
	assert_string_not_equal(hex, hex2);
	assert_int_equal(strlen(hex2), 32);
	mw_device_key_cleanse(key2, sizeof(key2));
	for (i = 0; i < sizeof(key2); i++)
		assert_int_equal(key2[i], 0);
}

static void test_key_from_hex(void **state)
{
	static const struct {
		const char *hex;
		int ret;
	} cases[] = {
		{ "000102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1f", 0 },
		{ "000102030405060708090A0B0C0D0E0F"
		  "101112131415161718191A1B1C1D1E1F", 0 },
		{ "000102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1", -1 },
		{ "000102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1f0", -1 },
		{ "000102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1f\n", -1 },
		{ "g00102030405060708090a0b0c0d0e0f"
		  "101112131415161718191a1b1c1d1e1f", -1 },
		{ "", -1 },
		{ NULL, -1 },
	};
	unsigned char key[MW_DEVICE_KEY_SIZE];
	const char *error;
	unsigned int i, j;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		error = NULL;
		memset(key, 0xee, sizeof(key));
		if (mw_device_key_from_hex(cases[i].hex, key, &error) !=
		    cases[i].ret)
			fail_msg("case %u: unexpected result", i);
		if (cases[i].ret == 0) {
			for (j = 0; j < sizeof(key); j++)
				assert_int_equal(key[j], j);
		} else {
			assert_non_null(error);
			for (j = 0; j < sizeof(key); j++)
				assert_int_equal(key[j], 0); /* cleansed */
		}
	}
}

/* ---- key files ---- */

static char tmpdir[64];

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int setup_dir(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/mw-test-device-XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	return nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static unsigned int count_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	}
	closedir(d);
	return n;
}

static void write_file(const char *path, const char *content)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
}

static void test_key_file(void **state)
{
	unsigned char key1[MW_DEVICE_KEY_SIZE], key2[MW_DEVICE_KEY_SIZE];
	unsigned char zero[MW_DEVICE_KEY_SIZE];
	char path[256], content[100], hex[65];
	const char *error;
	struct stat st;
	FILE *fp;
	size_t n;

	(void)state;
	snprintf(path, sizeof(path), "%s/device.key", tmpdir);
	assert_int_equal(mw_device_key_load_or_create(path, key1, &error), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 65);
	memset(zero, 0, sizeof(zero));
	assert_memory_not_equal(key1, zero, sizeof(zero));
	/* the file holds the key as hex */
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(content, 1, sizeof(content) - 1, fp);
	fclose(fp);
	content[n] = '\0';
	mw_hex_encode(key1, sizeof(key1), hex);
	assert_int_equal(n, 65);
	assert_memory_equal(content, hex, 64);
	assert_int_equal(content[64], '\n');
	/* read back: same key; no temporary files left */
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), 0);
	assert_memory_equal(key1, key2, sizeof(key1));
	assert_int_equal(count_dir_entries(tmpdir), 1);

	/* a configured key file without newline works too */
	snprintf(path, sizeof(path), "%s/nonl.key", tmpdir);
	write_file(path, "000102030405060708090a0b0c0d0e0f"
		   "101112131415161718191a1b1c1d1e1f");
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), 0);
	assert_int_equal(key2[31], 31);

	/* bad files: errors name the path, never crash */
	static const char *const bad[] = {
		"", "short\n", "zz0102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f\n",
		"000102030405060708090a0b0c0d0e0f"
		"101112131415161718191a1b1c1d1e1f\n\n",
	};
	for (unsigned int i = 0; i < N_ELEMENTS(bad); i++) {
		snprintf(path, sizeof(path), "%s/bad%u.key", tmpdir, i);
		write_file(path, bad[i]);
		assert_int_equal(mw_device_key_load_or_create(path, key2,
							      &error), -1);
		assert_non_null(strstr(error, path));
		assert_non_null(strstr(error, "invalid content"));
		assert_memory_equal(key2, zero, sizeof(zero)); /* cleansed */
	}
	snprintf(path, sizeof(path), "%s/missing-dir/device.key", tmpdir);
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), -1);
	assert_non_null(strstr(error, path));
	snprintf(path, sizeof(path), "%s", tmpdir); /* a directory */
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), -1);
	assert_non_null(strstr(error, path));
	assert_int_equal(mw_device_key_load_or_create("", key2, &error), -1);
}

#define RACERS 8

static void test_key_file_race(void **state)
{
	char path[256], results[RACERS][65];
	int go[2], out[RACERS][2], status;
	pid_t pids[RACERS];
	unsigned int i, round;

	(void)state;
	for (round = 0; round < 5; round++) {
		snprintf(path, sizeof(path), "%s/race%u.key", tmpdir, round);
		assert_int_equal(pipe(go), 0);
		for (i = 0; i < RACERS; i++) {
			assert_int_equal(pipe(out[i]), 0);
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				unsigned char key[MW_DEVICE_KEY_SIZE];
				const char *error;
				char hex[65], c;

				close(go[1]);
				/* all start when the parent closes the pipe */
				if (read(go[0], &c, 1) < 0)
					_exit(3);
				if (mw_device_key_load_or_create(path, key,
								 &error) < 0)
					_exit(1);
				mw_hex_encode(key, sizeof(key), hex);
				_exit(write(out[i][1], hex, 64) == 64 ? 0 : 2);
			}
			close(out[i][1]);
		}
		close(go[0]);
		close(go[1]);
		for (i = 0; i < RACERS; i++) {
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status));
			assert_int_equal(WEXITSTATUS(status), 0);
			assert_int_equal(read(out[i][0], results[i], 64), 64);
			results[i][64] = '\0';
			close(out[i][0]);
		}
		/* everyone got the one key that is in the file */
		for (i = 1; i < RACERS; i++)
			assert_string_equal(results[i], results[0]);
		{
			unsigned char key[MW_DEVICE_KEY_SIZE];
			char hex[65];
			const char *error;

			assert_int_equal(mw_device_key_load_or_create(
				path, key, &error), 0);
			mw_hex_encode(key, sizeof(key), hex);
			assert_string_equal(hex, results[0]);
		}
	}
	/* no temporary files left behind: 5 key files only */
	assert_int_equal(count_dir_entries(tmpdir), 5);
}

/* ---- escaping helpers ---- */

static void test_escape(void **state)
{
	static const struct {
		const char *in, *extra;
		size_t outsize;
		const char *out;
		bool truncated;
	} cases[] = {
		{ "plain text", NULL, 64, "plain text", false },
		{ "a\"b\\c", NULL, 64, "a\\x22b\\x5cc", false },
		{ "a/b:c", "/:", 64, "a\\x2fb\\x3ac", false },
		{ "tab\there", NULL, 64, "tab\\x09here", false },
		{ "abcdef", NULL, 4, "abc", true },
		{ "ab\x01", NULL, 6, "ab", true },	/* escape needs 4 */
		{ "ab\x01", NULL, 7, "ab\\x01", false },
		{ "\xc3\xa9\xc3\xa9", NULL, 4, "\xc3\xa9", true },
		{ "\xf4\x90\x80\x80", NULL, 64, "\\xf4\\x90\\x80\\x80", false },
		{ "", NULL, 1, "", false },
	};
	char out[64];
	bool truncated;
	size_t len;
	unsigned int i;

	(void)state;
	for (i = 0; i < N_ELEMENTS(cases); i++) {
		len = mw_escape(cases[i].in, cases[i].extra, out,
				cases[i].outsize, &truncated);
		if (strcmp(out, cases[i].out) != 0 ||
		    truncated != cases[i].truncated || len != strlen(out))
			fail_msg("case %u: got '%s' (%d)", i, out, truncated);
	}
	/* sanitize keeps already-escaped text and is idempotent */
	mw_sanitize("imap \"a\\x01\" \xc3\xa9\x01", out, sizeof(out));
	assert_string_equal(out, "imap \"a\\x01\" \xc3\xa9\\x01");
	{
		char again[64];

		mw_sanitize(out, again, sizeof(again));
		assert_string_equal(again, out);
	}
	/* hex */
	{
		unsigned char bin[4];

		assert_int_equal(mw_hex_decode("00aBfF10", bin, 4), 0);
		assert_int_equal(bin[1], 0xab);
		assert_int_equal(mw_hex_decode("00aBfF1", bin, 4), -1);
		assert_int_equal(mw_hex_decode("00aBfF101", bin, 4), -1);
		assert_int_equal(mw_hex_decode("00aBfF1g", bin, 4), -1);
		assert_int_equal(mw_hex_decode(NULL, bin, 4), -1);
	}
	assert_true(mw_ascii_strcaseeq("OS-Version", "os-version"));
	assert_false(mw_ascii_strcaseeq("os-versio", "os-version"));
	assert_false(mw_ascii_strcaseeq("os-version2", "os-version"));
	assert_int_equal(mw_time_to_u32(-5), 0);
	assert_int_equal(mw_add_u32_sat(UINT32_MAX - 1, 5), UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_network_prefix),
		cmocka_unit_test(test_id_params_table),
		cmocka_unit_test(test_id_params_bounds),
		cmocka_unit_test(test_id_params_many),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_describe_bounds),
		cmocka_unit_test(test_device_id),
		cmocka_unit_test(test_key_from_hex),
		cmocka_unit_test_setup_teardown(test_key_file, setup_dir,
						teardown_dir),
		cmocka_unit_test_setup_teardown(test_key_file_race, setup_dir,
						teardown_dir),
	};

	mw_crypto_set_provider(&mw_crypto_openssl);
	return cmocka_run_group_tests(tests, NULL, NULL) == 0 ? 0 : 1;
}
