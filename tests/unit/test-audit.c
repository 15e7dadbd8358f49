/* Unit tests of the audit record builder, body validator, writer (chain,
   epochs, checkpoints, group commit, rotation, crash recovery) and the
   verifier's PASS paths (mw-audit-writer.c, mw-audit-verify.c). The tamper
   suite is in test-audit-tamper.c. */

#include "test-audit-common.h"

#include <fcntl.h>

#include "mw-audit-writer-private.h"
#include "mw-util.h"

/* --- builder --- */

static void test_body_build(void **state)
{
	struct mw_audit_event ev;
	struct mw_json_buf b;
	const char *err = NULL;

	(void)state;
	mw_json_buf_init(&b);
	mw_audit_event_init(&ev);
	/* set out of order: the output is in canonical order */
	mw_audit_event_set_num(&ev, MW_AF_UID, 42);
	mw_audit_event_set_str(&ev, MW_AF_USER, "b\"ob\n");
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "dele");
	mw_audit_event_set_str(&ev, MW_AF_SERVICE, "pop3");
	mw_audit_event_set_num(&ev, MW_AF_RETRIEVED, 0);
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), 0);
	assert_string_equal(b.data, "\"service\":\"pop3\",\"event\":\"dele\","
			    "\"user\":\"b\\\"ob\\n\",\"uid\":42,"
			    "\"retrieved\":0");
	assert_int_equal(mw_audit_body_validate(b.data, b.len, &err), 0);
	mw_json_buf_free(&b);
}

static void test_body_build_truncates(void **state)
{
	struct mw_audit_event ev;
	struct mw_json_buf b;
	struct mw_json_obj obj;
	const struct mw_json_member *m;
	const char *err = NULL;
	char longval[600], braces[700];
	size_t i;

	(void)state;
	/* 255 ASCII bytes then a 2-byte character: cut before it */
	memset(longval, 'a', 255);
	memcpy(longval + 255, "\xc3\xbc", 2);
	memset(longval + 257, 'z', 100);
	longval[357] = '\0';
	mw_json_buf_init(&b);
	mw_json_obj_init(&obj);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "fetch");
	mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL, longval);
	mw_audit_event_set_str(&ev, MW_AF_MESSAGE_ID, longval);
	mw_audit_event_set_str(&ev, MW_AF_USER, "short");
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), 0);
	assert_int_equal(mw_audit_body_validate(b.data, b.len, &err), 0);
	snprintf(braces, sizeof(braces), "{%s}", b.data);
	assert_true(b.len + 2 < sizeof(braces));
	assert_int_equal(mw_json_parse_object(&obj, braces, b.len + 2, &err), 0);
	m = mw_json_obj_get(&obj, "device_label");
	assert_int_equal(m->str_len, 255);
	m = mw_json_obj_get(&obj, "message_id");
	assert_int_equal(m->str_len, 255);
	m = mw_json_obj_get(&obj, "truncated");
	assert_non_null(m);
	assert_string_equal(m->str, "device_label,message_id");
	/* exactly MW_AUDIT_STR_MAX is not truncated */
	for (i = 0; i < MW_AUDIT_STR_MAX; i++)
		longval[i] = 'x';
	longval[MW_AUDIT_STR_MAX] = '\0';
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "fetch");
	mw_audit_event_set_str(&ev, MW_AF_USER, longval);
	mw_json_buf_reset(&b);
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), 0);
	assert_null(strstr(b.data, "truncated"));
	mw_json_obj_free(&obj);
	mw_json_buf_free(&b);
}

static void test_body_build_rejects(void **state)
{
	static const char *const events[] = {
		NULL, "", "Retr", "1retr", "re tr", "seal", "epoch",
		"checkpoint", "recovered", "writer_start", "writer_stop",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct mw_audit_event ev;
	struct mw_json_buf b;
	const char *err = NULL;
	unsigned int i;

	(void)state;
	mw_json_buf_init(&b);
	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		mw_audit_event_init(&ev);
		mw_audit_event_set_str(&ev, MW_AF_EVENT, events[i]);
		assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	}
	/* fields a mail process may not set */
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_num(&ev, MW_AF_SEQ, 5);
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_str(&ev, MW_AF_MAC, "00");
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_str(&ev, MW_AF_TRUNCATED, "user");
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_str(&ev, MW_AF_UID, "5");
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_num(&ev, MW_AF_USER, 5);
	assert_int_equal(mw_audit_body_build(&ev, &b, &err), -1);
	mw_json_buf_free(&b);
}

static void test_body_validate(void **state)
{
	static const struct {
		const char *body;
		int ret;
	} tests[] = {
		{ "\"event\":\"retr\"", 0 },
		{ "\"service\":\"imap\",\"event\":\"fetch\",\"uid\":7", 0 },
		{ "\"event\":\"retr\",\"user\":\"\\udcff\\u0001\"", 0 },
		{ "", -1 },
		{ "\"service\":\"imap\"", -1 },		/* no event */
		{ "\"event\":\"seal\",\"records\":1", -1 },
		{ "\"event\":\"checkpoint\"", -1 },
		{ "\"event\":\"epoch\"", -1 },
		{ "\"event\":\"recovered\"", -1 },
		{ "\"event\":\"writer_stop\"", -1 },
		{ "\"event\":\"Retr\"", -1 },
		{ "\"seq\":1,\"event\":\"retr\"", -1 },
		{ "\"time\":\"x\",\"event\":\"retr\"", -1 },
		{ "\"host\":\"x\",\"event\":\"retr\"", -1 },
		{ "\"event\":\"retr\",\"epoch\":1", -1 },
		{ "\"event\":\"retr\",\"prev\":\"00\"", -1 },
		{ "\"event\":\"retr\",\"mac\":\"00\"", -1 },
		{ "\"event\":\"retr\",\"sig\":\"00\"", -1 },
		{ "\"event\":\"retr\",\"records\":1", -1 },
		{ "\"event\":\"retr\",\"bogus\":1", -1 },
		{ "\"event\":\"retr\",\"event\":\"dele\"", -1 },
		{ "\"user\":\"a\",\"event\":\"retr\"", -1 },	/* order */
		{ "\"event\":\"retr\",\"user\":\"a\",\"user\":\"b\"", -1 },
		{ "\"event\":\"retr\" ", -1 },
		{ "\"event\": \"retr\"", -1 },
		{ "\"event\":\"retr\"\n", -1 },
		{ "\"event\":\"retr\"\n{\"seq\":9", -1 },
		{ "\"event\":\"retr\"},{\"seq\":9", -1 },
		{ "\"event\":\"retr\",\"user\":\"a\nb\"", -1 },
		{ "\"event\":\"retr\",\"user\":\"\\u0041\"", -1 },
		{ "\"event\":\"retr\",\"user\":\"\\/\"", -1 },
		{ "\"event\":\"retr\",\"user\":{}", -1 },
		{ "\"event\":\"retr\",\"user\":null", -1 },
		{ "\"event\":\"retr\",\"user\":5", -1 },
		{ "\"event\":\"retr\",\"uid\":\"5\"", -1 },
		{ "\"event\":\"retr\",\"uid\":-5", -1 },
		{ "\"event\":\"retr\",\"uid\":true", -1 },
		{ "\"event\":\"re\\u0000tr\"", -1 },
	};
	const char *err = NULL;
	unsigned int i;
	char big[MW_AUDIT_BODY_MAX + 64];

	(void)state;
	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int ret = mw_audit_body_validate(tests[i].body,
						 strlen(tests[i].body), &err);
		if (ret != tests[i].ret)
			fail_msg("body #%u (%s): got %d", i, tests[i].body, ret);
	}
	/* a string over MW_AUDIT_STR_MAX */
	snprintf(big, sizeof(big), "\"event\":\"retr\",\"user\":\"%0*d\"",
		 MW_AUDIT_STR_MAX + 1, 0);
	assert_int_equal(mw_audit_body_validate(big, strlen(big), &err), -1);
	/* a body over MW_AUDIT_BODY_MAX */
	memset(big, 'a', sizeof(big));
	assert_int_equal(mw_audit_body_validate(big, MW_AUDIT_BODY_MAX + 1,
						&err), -1);
}

/* the writer's cached record time is mw_audit_format_time()'s text */
static void test_record_time_cached_same(void **state)
{
	static const int64_t starts[] = {
		0, INT64_C(951782400000000) /* 2000-02-29 */,
		INT64_C(1798761599000000) /* 2026-12-31T23:59:59 */,
		INT64_C(253402300799999999) - 5000 * INT64_C(999983),
	};
	struct mw_utc_stamp_cache cache;
	char a[32], b[MW_UTC_STAMP_LEN + 1];
	unsigned int i, j;
	int64_t t;

	(void)state;
	memset(&cache, 0, sizeof(cache));
	for (i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		for (j = 0; j < 5000; j++) {
			t = starts[i] + (int64_t)j * 999983;
			mw_audit_format_time(t, a);
			assert_int_equal(mw_utc_stamp_usec(&cache,
				(time_t)(t / 1000000), (long)(t % 1000000),
				b), 0);
			assert_string_equal(a, b);
		}
	}
}

/* --- crypto primitives --- */

static void t_line_mac(const uint8_t key[MW_AUDIT_KEY_LEN],
		       const char *data, size_t len, const char *expect)
{
	char line[1100], mac[65];

	assert_true(len + MW_AUDIT_MAC_SUFFIX_LEN <= sizeof(line));
	memcpy(line, data, len);
	memset(line + len, '#', MW_AUDIT_MAC_SUFFIX_LEN);
	assert_int_equal(mw_audit_line_mac_hex(key, line,
					       len + MW_AUDIT_MAC_SUFFIX_LEN,
					       mac), 0);
	assert_string_equal(mac, expect);
}

static void test_line_mac_known_answers(void **state)
{
	/* HMAC-SHA-256 (Python's hmac module) of the same and of another
	   key in turn: the context kept for the last key (issue 14) must
	   give what a fresh one gives */
	static const char k1_abc[] =
		"f0133729c4163dede81e21cd47839256da58171238c8a0d874397c73b14e1e47";
	static const char k2_abc[] =
		"3e03ceb816ef30e07bd35997162111fcbff457ed8013fa282d736fb2417c9672";
	static const char k1_x1000[] =
		"2ab4ed3956f17094c9b1878953e91ac9eb42cfa0059df2bfbf832bee29eef5c2";
	uint8_t k1[MW_AUDIT_KEY_LEN], k2[MW_AUDIT_KEY_LEN];
	char x[1000];
	unsigned int i;

	(void)state;
	for (i = 0; i < MW_AUDIT_KEY_LEN; i++) {
		k1[i] = i;
		k2[i] = 32 + i;
	}
	memset(x, 'x', sizeof(x));
	t_line_mac(k1, "abc", 3, k1_abc);
	t_line_mac(k1, "abc", 3, k1_abc);
	t_line_mac(k2, "abc", 3, k2_abc);
	t_line_mac(k1, x, sizeof(x), k1_x1000);
	t_line_mac(k1, "abc", 3, k1_abc);
	mw_audit_hmac_free();
	t_line_mac(k2, "abc", 3, k2_abc);
	mw_audit_hmac_free();
}

static void test_key_derivation(void **state)
{
	/* independent computation of the documented schedule (RFC 5869):
	   PRK = HMAC(salt = 32 zero bytes, K); K' = HMAC(PRK, info || 0x01)
	   with info = "mailward epoch" || uint32be(e) */
	uint8_t k[32], a[32], b[32], zero[32], prk[32], t1[32];
	unsigned char info[14 + 4 + 1];
	size_t n;
	unsigned int i;

	(void)state;
	for (i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	memset(zero, 0, sizeof(zero));
	assert_int_equal(mw_audit_key_next(k, 0x01020304, a), 0);
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, zero, 32,
				  k, 32, prk, 32, &n));
	memcpy(info, "mailward epoch", 14);
	info[14] = 1; info[15] = 2; info[16] = 3; info[17] = 4;
	info[18] = 1;
	assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, prk, 32,
				  info, sizeof(info), t1, 32, &n));
	assert_memory_equal(a, t1, 32);

	assert_int_equal(mw_audit_key_next(k, 1, a), 0);
	assert_int_equal(mw_audit_key_next(k, 2, b), 0);
	assert_memory_not_equal(a, b, 32);
	assert_memory_not_equal(a, k, 32);
	/* in place */
	memcpy(b, k, 32);
	assert_int_equal(mw_audit_key_next(b, 1, b), 0);
	assert_memory_equal(a, b, 32);
}

static void test_key_files(void **state)
{
	struct t_env env;
	char path[T_PATH_MAX], *data;
	uint8_t k0[32], k1[32], kd[32], k[32];
	uint32_t e0, e1, e;
	const char *err;
	struct stat st;
	size_t len;

	(void)state;
	t_env_init(&env);
	t_load_key(env.verify_key, &e0, k0);
	t_load_key(env.writer_key, &e1, k1);
	assert_int_equal(e0, 0);
	assert_int_equal(e1, 1);
	t_epoch_key(0, k0, 1, kd);
	assert_memory_equal(kd, k1, 32);
	assert_int_equal(stat(env.writer_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(env.verify_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(env.sign_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* keygen refuses to overwrite */
	assert_int_equal(mw_audit_keygen(env.dir, false, &err), -1);
	/* store + load */
	snprintf(path, sizeof(path), "%s/k", env.dir);
	assert_int_equal(mw_audit_key_store(path, 77, k1, &err), 0);
	t_load_key(path, &e, k);
	assert_int_equal(e, 77);
	assert_memory_equal(k, k1, 32);
	data = t_read_file(path, &len);
	assert_true(strncmp(data, "mailward-audit-key v1 epoch=77 key=", 35) == 0);
	free(data);
	/* malformed key files */
	t_write_file(path, "mailward-audit-key v1 epoch=1 key=00\n", 37);
	assert_int_equal(mw_audit_key_load(path, &e, k, &err), -1);
	t_write_file(path, "garbage", 7);
	assert_int_equal(mw_audit_key_load(path, &e, k, &err), -1);
	t_env_deinit(&env);
}

/* --- writer --- */

static void test_writer_basic(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct mw_json_obj obj;
	const struct mw_json_member *m;
	const char *err;
	uint8_t k[32];
	uint32_t e;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	assert_int_equal(mw_audit_writer_seq(w), 2); /* epoch, writer_start */
	assert_int_equal(mw_audit_writer_epoch(w), 1);
	for (i = 0; i < 10; i++)
		t_append(w, i);
	t_flush(w);
	t_close(w);

	/* the writer's key moved forward and K_1 is gone from the file */
	t_load_key(env.writer_key, &e, k);
	assert_int_equal(e, 2);

	t_lines_read(&l, env.log);
	assert_null(l.tail);
	/* epoch, writer_start, 10 events, writer_stop, checkpoint, seal */
	assert_int_equal(l.count, 15);
	mw_json_obj_init(&obj);
	assert_int_equal(mw_json_parse_object(&obj, l.line[0], l.len[0], &err), 0);
	assert_string_equal(mw_json_obj_get(&obj, "event")->str, "epoch");
	assert_string_equal(mw_json_obj_get(&obj, "reason")->str, "new-chain");
	assert_int_equal(mw_json_obj_get(&obj, "seq")->num, 1);
	assert_int_equal(mw_json_obj_get(&obj, "epoch")->num, 1);
	assert_string_equal(mw_json_obj_get(&obj, "time")->str,
			    "2026-11-28T13:58:16.123456Z");
	assert_string_equal(mw_json_obj_get(&obj, "prev")->str,
			    "0000000000000000000000000000000000000000000000000000000000000000");
	/* a retrieval record, field by field */
	assert_int_equal(mw_json_parse_object(&obj, l.line[3], l.len[3], &err), 0);
	m = mw_json_obj_get(&obj, "device_label");
	assert_int_equal(m->str_len, 22);
	assert_memory_equal(m->str, "pop3 \"Th\xc3\xbcnderbird\" \xff\x01", 22);
	assert_string_equal(mw_json_obj_get(&obj, "session")->str, "sess-\"1\"\n");
	assert_int_equal(mw_json_obj_get(&obj, "uid")->num, 1);
	assert_int_equal(mw_json_obj_get(&obj, "seq")->num, 4);
	assert_string_equal(mw_json_obj_get(&obj, "host")->str, "mx1.example.org");
	assert_string_equal(mw_json_obj_get(&obj, "message_id")->str,
			    "<msg1@example.org>");
	assert_non_null(strstr(l.line[3], "\\udcff\\u0001"));
	assert_string_equal(mw_json_obj_get(&obj, "event")->str, "retr");
	/* ends sealed */
	assert_int_equal(mw_json_parse_object(&obj, l.line[14], l.len[14], &err), 0);
	assert_string_equal(mw_json_obj_get(&obj, "event")->str, "seal");
	assert_int_equal(mw_json_obj_get(&obj, "records")->num, 14);
	assert_string_equal(mw_json_obj_get(&obj, "reason")->str, "stop");
	assert_int_equal(mw_json_parse_object(&obj, l.line[13], l.len[13], &err), 0);
	assert_string_equal(mw_json_obj_get(&obj, "event")->str, "checkpoint");
	mw_json_obj_free(&obj);
	t_lines_free(&l);

	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_int_equal(res.records, 15);
	assert_int_equal(res.last_seq, 15);
	assert_int_equal(res.seals, 1);
	assert_int_equal(res.checkpoints, 1);
	assert_int_equal(res.unsealed_tail, 0);
	assert_true(res.last_epoch_sealed);
	assert_true(res.macs_checked && res.signatures_checked);
	t_env_deinit(&env);
}

static void test_writer_reopen_continues(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w, *w2;
	struct mw_audit_verify_result res;
	const char *err;
	const char *paths[1];
	unsigned int round, i;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	for (round = 0; round < 4; round++) {
		w = t_open(&env, &opts);
		assert_int_equal(mw_audit_writer_epoch(w), round + 1);
		/* a second writer on the same log is refused */
		assert_int_equal(mw_audit_writer_open(env.log, env.writer_key,
						      env.sign_key, &opts, &w2,
						      &err), -1);
		assert_null(w2);
		for (i = 0; i < 3; i++)
			t_append(w, i);
		env.now += 1000000;
		t_close(w);
	}
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_int_equal(res.first_epoch, 1);
	assert_int_equal(res.last_epoch, 4);
	assert_int_equal(res.seals, 4);
	/* without keys: chain only */
	paths[0] = env.log;
	t_verify_ex(&env, paths, 1, false, false, NULL, 0, false, &res);
	t_assert_pass(&res);
	assert_false(res.macs_checked);
	assert_int_equal(res.unsealed_tail, res.records);
	/* with the pubkey only: the last checkpoint anchors */
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	assert_int_equal(res.unsealed_tail, 1);
	/* a later key cannot verify epoch 1 */
	{
		struct mw_audit_verify_options vo;

		memset(&vo, 0, sizeof(vo));
		vo.key_path = env.writer_key;
		assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res,
						       &err), 0);
		t_assert_fail(&res, MW_AUDIT_BAD_EPOCH, 1);
	}
	t_env_deinit(&env);
}

static void test_writer_epochs_and_checkpoints(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	struct t_lines l;
	const char *err;
	unsigned int i;
	long idx;
	uint32_t e;
	uint8_t k[32];

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	opts.epoch_records = 7;
	opts.checkpoint_records = 5;
	opts.epoch_seconds = 60;
	w = t_open(&env, &opts);
	for (i = 0; i < 30; i++)
		t_append(w, i);
	t_flush(w);
	assert_true(mw_audit_writer_epoch(w) >= 5);
	/* time based: an idle epoch is sealed by tick() */
	e = mw_audit_writer_epoch(w);
	assert_true(mw_audit_writer_next_due(w) <= env.now + 60000000);
	env.now += 61 * 1000000;
	assert_int_equal(mw_audit_writer_tick(w, &err), 0);
	assert_int_equal(mw_audit_writer_epoch(w), e + 1);
	env.now += 61 * 1000000;
	assert_int_equal(mw_audit_writer_tick(w, &err), 0);
	assert_int_equal(mw_audit_writer_epoch(w), e + 2);
	/* nothing due: tick writes nothing */
	i = (unsigned int)mw_audit_writer_seq(w);
	assert_int_equal(mw_audit_writer_tick(w, &err), 0);
	assert_int_equal(mw_audit_writer_seq(w), i);
	e = mw_audit_writer_epoch(w);
	t_close(w);
	/* close sealed the epoch and advanced the key */
	{
		uint32_t ke;

		t_load_key(env.writer_key, &ke, k);
		assert_int_equal(ke, e + 1);
	}

	t_lines_read(&l, env.log);
	/* the idle epoch: epoch record, checkpoint, seal */
	idx = t_lines_find_event(&l, 0, "seal");
	assert_true(idx > 0);
	for (i = 0; i + 2 < l.count; i++) {
		if (strstr(l.line[i], "\"reason\":\"time\"") != NULL &&
		    strstr(l.line[i], "\"event\":\"epoch\"") != NULL &&
		    strstr(l.line[i + 2], "\"event\":\"seal\"") != NULL) {
			assert_non_null(strstr(l.line[i + 1],
					       "\"event\":\"checkpoint\""));
			assert_non_null(strstr(l.line[i + 2],
					       "\"records\":2"));
			break;
		}
	}
	assert_true(i + 2 < l.count);
	t_lines_free(&l);

	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_true(res.seals >= 7);
	assert_true(res.checkpoints >= 8);
	t_env_deinit(&env);
}

static void test_writer_group_commit(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct stat st1, st2;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	assert_int_equal(stat(env.log, &st1), 0);
	for (i = 0; i < 50; i++)
		t_append(w, i);
	assert_int_equal(mw_audit_writer_pending(w), 50);
	assert_int_equal(mw_audit_writer_next_due(w), 0);
	assert_int_equal(stat(env.log, &st2), 0);
	assert_int_equal(st1.st_size, st2.st_size);
	t_flush(w);
	assert_int_equal(mw_audit_writer_pending(w), 0);
	assert_int_equal(stat(env.log, &st2), 0);
	assert_true(st2.st_size > st1.st_size + 50 * 300);
	t_close(w);
	t_env_deinit(&env);
}

static void test_writer_rejects_bad_body(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	const char *err;
	static const char *const bodies[] = {
		"\"event\":\"seal\",\"records\":0",
		"\"event\":\"retr\"}\n{\"seq\":99",
		"\"event\":\"retr\",\"mac\":\"x\"",
		"\"event\":\"retr\",\"user\":\"a\",\"user\":\"b\"",
	};
	unsigned int i;
	uint64_t seq;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	seq = mw_audit_writer_seq(w);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(mw_audit_writer_append_body(w, bodies[i],
				strlen(bodies[i]), &err), -1);
		assert_int_equal(mw_audit_writer_seq(w), seq);
	}
	assert_int_equal(mw_audit_writer_append_body(w,
			"\"service\":\"imap\",\"event\":\"fetch\"", 32, &err), 0);
	t_close(w);
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	t_env_deinit(&env);
}

static void test_writer_append_delayed(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	const char *err;
	static const char body[] = "\"service\":\"pop3\",\"event\":\"retr\"";
	static const char orig[] = "2026-01-02T03:04:05.123456Z";
	/* a mail process cannot claim a spool record itself */
	static const char forged[] = "\"event\":\"retr\",\"delayed\":"
		"\"2026-01-02T03:04:05.123456Z\",\"spool\":\"f:2\"";
	char *data;
	size_t len;
	uint64_t seq;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	seq = mw_audit_writer_seq(w);
	assert_int_equal(mw_audit_writer_append_body(w, forged,
			strlen(forged), &err), -1);
	assert_int_equal(mw_audit_writer_append_delayed(w, body,
			strlen(body), "2026-01-02 03:04:05", "f:2", &err), -1);
	assert_int_equal(mw_audit_writer_append_delayed(w, body,
			strlen(body), orig, "", &err), -1);
	assert_int_equal(mw_audit_writer_append_delayed(w, forged,
			strlen(forged), orig, "f:2", &err), -1);
	assert_int_equal(mw_audit_writer_seq(w), seq);
	assert_int_equal(mw_audit_writer_append_delayed(w, body,
			strlen(body), orig, "20260102T030405.1Z.7.ab:2", &err), 0);
	assert_int_equal(mw_audit_writer_seq(w), seq + 1);
	t_close(w);
	data = t_read_file(env.log, &len);
	assert_non_null(strstr(data, "\"event\":\"retr\",\"delayed\":"
		"\"2026-01-02T03:04:05.123456Z\",\"spool\":"
		"\"20260102T030405.1Z.7.ab:2\",\"epoch\":"));
	free(data);
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	t_env_deinit(&env);
}

static void test_writer_rotate(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	char rotated[T_PATH_MAX + 8], rotated2[T_PATH_MAX + 8];
	const char *paths[3], *err;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	snprintf(rotated, sizeof(rotated), "%s.1", env.log);
	snprintf(rotated2, sizeof(rotated2), "%s.2", env.log);
	t_opts(&env, &opts);
	opts.checkpoint_records = 4;
	w = t_open(&env, &opts);
	for (i = 0; i < 5; i++)
		t_append(w, i);
	assert_int_equal(mw_audit_writer_rotate(w, rotated2, &err), 0);
	for (i = 0; i < 5; i++)
		t_append(w, i);
	assert_int_equal(mw_audit_writer_rotate(w, rotated, &err), 0);
	for (i = 0; i < 5; i++)
		t_append(w, i);
	t_flush(w);
	mw_audit_writer_abort(&w);
	/* reopen after a crash in the third file: resumes there */
	w = t_open(&env, &opts);
	t_append(w, 99);
	t_close(w);

	paths[0] = rotated2;
	paths[1] = rotated;
	paths[2] = env.log;
	t_verify_ex(&env, paths, 3, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	assert_int_equal(res.first_seq, 1);
	/* the newest file alone: earlier files missing */
	t_verify_ex(&env, paths + 2, 1, true, true, NULL, 0, false, &res);
	assert_int_equal(res.status, MW_AUDIT_VERIFY_FAIL);
	assert_int_equal(res.reason, MW_AUDIT_BAD_START);
	t_verify_ex(&env, paths + 1, 2, true, true, NULL, 0, true, &res);
	t_assert_pass(&res);
	assert_true(res.first_seq > 1);
	/* files in the wrong order */
	paths[0] = rotated;
	paths[1] = rotated2;
	t_verify_ex(&env, paths, 3, true, true, NULL, 0, false, &res);
	assert_int_equal(res.status, MW_AUDIT_VERIFY_FAIL);
	t_env_deinit(&env);
}

/* crash: torn tail is a crash artefact; reopen recovers it */
static void test_writer_torn_tail_recovery(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct mw_json_obj obj;
	char torn_path[T_PATH_MAX], sha[65], *saved;
	const char *err;
	size_t saved_len, n_before;
	long idx;
	unsigned int i;
	static const char partial[] =
		"{\"seq\":13,\"time\":\"2026-11-28T13:58:16.123456Z\",\"host\":\"mx";

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	for (i = 0; i < 10; i++)
		t_append(w, i);
	t_flush(w);
	mw_audit_writer_abort(&w);	/* killed */
	/* a partial write of the next group */
	{
		int fd = open(env.log, O_WRONLY | O_APPEND);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, partial, sizeof(partial) - 1),
				 (ssize_t)sizeof(partial) - 1);
		close(fd);
	}
	t_verify(&env, env.log, &res);
	assert_int_equal(res.status, MW_AUDIT_VERIFY_PASS_TORN);
	assert_true(res.torn);
	assert_int_equal(res.torn_bytes, sizeof(partial) - 1);
	assert_int_equal(res.last_seq, 12);
	assert_int_equal(res.unsealed_tail, 12);
	assert_false(res.last_epoch_sealed);

	t_lines_read(&l, env.log);
	n_before = l.count;
	t_lines_free(&l);

	w = t_open(&env, &opts);
	t_append(w, 100);
	t_close(w);

	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_int_equal(res.recovered, 1);

	t_lines_read(&l, env.log);
	assert_null(l.tail);
	/* after the surviving records: checkpoint + seal (restart), epoch,
	   recovered, writer_start */
	assert_non_null(strstr(l.line[n_before], "\"event\":\"checkpoint\""));
	assert_non_null(strstr(l.line[n_before + 1], "\"event\":\"seal\""));
	assert_non_null(strstr(l.line[n_before + 1], "\"reason\":\"restart\""));
	assert_non_null(strstr(l.line[n_before + 1], "\"records\":13"));
	assert_non_null(strstr(l.line[n_before + 2], "\"event\":\"epoch\""));
	idx = t_lines_find_event(&l, 0, "recovered");
	assert_int_equal(idx, (long)n_before + 3);
	mw_json_obj_init(&obj);
	assert_int_equal(mw_json_parse_object(&obj, l.line[idx], l.len[idx],
					      &err), 0);
	assert_int_equal(mw_json_obj_get(&obj, "torn_bytes")->num,
			 sizeof(partial) - 1);
	assert_int_equal(mw_audit_sha256_hex(partial, sizeof(partial) - 1,
					     sha), 0);
	assert_string_equal(mw_json_obj_get(&obj, "torn_sha256")->str, sha);
	snprintf(torn_path, sizeof(torn_path), "%s/%s", env.dir,
		 mw_json_obj_get(&obj, "torn_file")->str);
	assert_int_equal(strncmp(mw_json_obj_get(&obj, "torn_file")->str,
				 "audit.log.torn.", 15), 0);
	saved = t_read_file(torn_path, &saved_len);
	assert_int_equal(saved_len, sizeof(partial) - 1);
	assert_memory_equal(saved, partial, saved_len);
	free(saved);
	mw_json_obj_free(&obj);
	t_lines_free(&l);
	t_env_deinit(&env);
}

/* crash garbage: zero-filled block with a newline after a good record */
static void test_writer_recovers_garbage_lines(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	char garbage[300];
	int fd;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	t_append(w, 1);
	t_flush(w);
	mw_audit_writer_abort(&w);
	memset(garbage, 0, sizeof(garbage));
	garbage[100] = '\n';
	fd = open(env.log, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, garbage, sizeof(garbage)),
			 (ssize_t)sizeof(garbage));
	close(fd);
	/* the complete NUL line is not a record: verify FAILs on it */
	t_verify(&env, env.log, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_JSON, 4);

	w = t_open(&env, &opts);
	t_close(w);
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_int_equal(res.recovered, 1);
	t_env_deinit(&env);
}

static void test_writer_refuses_tampered_tail(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w = NULL;
	struct t_lines l;
	const char *err;
	char other[T_PATH_MAX];

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	w = t_open(&env, &opts);
	t_append(w, 1);
	t_flush(w);
	mw_audit_writer_abort(&w);
	/* edit the last record: it parses, but its MAC fails */
	t_lines_read(&l, env.log);
	t_lines_replace(&l, l.count - 1, "user1@", "user9@");
	t_lines_write(&l, env.log);
	assert_int_equal(mw_audit_writer_open(env.log, env.writer_key,
					      env.sign_key, &opts, &w, &err), -1);
	assert_non_null(strstr(err, "MAC"));
	t_lines_free(&l);

	/* a key file from another keygen does not fit the log */
	snprintf(other, sizeof(other), "%s/other", env.dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(mw_audit_keygen(other, false, &err), 0);
	snprintf(other, sizeof(other), "%s/other/writer.key", env.dir);
	t_lines_read(&l, env.log);
	t_lines_delete(&l, l.count - 1);
	t_lines_write(&l, env.log);
	t_lines_free(&l);
	assert_int_equal(mw_audit_writer_open(env.log, other, env.sign_key,
					      &opts, &w, &err), -1);
	t_env_deinit(&env);
}

static void test_verify_expectations(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	struct mw_audit_verify_options vo;
	const char *paths[1], *err;
	uint64_t last, last_cp;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	opts.checkpoint_records = 5;
	w = t_open(&env, &opts);
	for (i = 0; i < 12; i++)
		t_append(w, i);
	t_close(w);
	paths[0] = env.log;
	t_verify_ex(&env, paths, 1, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	last = res.last_seq;
	last_cp = res.last_checkpoint_seq;
	assert_true(res.checkpoints >= 3);
	t_verify_ex(&env, paths, 1, true, true, NULL, last, false, &res);
	t_assert_pass(&res);
	t_verify_ex(&env, paths, 1, true, true, NULL, last + 1, false, &res);
	t_assert_fail(&res, MW_AUDIT_TRUNCATED, last + 1);
	memset(&vo, 0, sizeof(vo));
	vo.pubkey_path = env.pub;
	vo.min_checkpoint = last_cp;
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), 0);
	t_assert_pass(&res);
	vo.min_checkpoint = last_cp + 1;
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), 0);
	t_assert_fail(&res, MW_AUDIT_TRUNCATED, last + 1);
	/* missing file is an I/O error, not a FAIL */
	paths[0] = "/nonexistent/audit.log";
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), -1);
	t_env_deinit(&env);
}

/* every checkpoint signs the Merkle root of the records before it; the
   writer restores the tree's right edge across restarts (from
   <log>.tree, read forward) and rotations, and recomputes it from the
   log when the state file is gone and the file starts the chain */
static unsigned int count_rooted(const char *path, unsigned int *plain_r)
{
	struct t_lines l;
	unsigned int i, n = 0, plain = 0;

	t_lines_read(&l, path);
	for (i = 0; i < l.count; i++) {
		if (strstr(l.line[i], "\"event\":\"checkpoint\"") == NULL)
			continue;
		if (strstr(l.line[i], ",\"root\":\"") != NULL)
			n++;
		else
			plain++;
	}
	t_lines_free(&l);
	if (plain_r != NULL)
		*plain_r = plain;
	return n;
}

static void test_writer_merkle_roots(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_verify_result res;
	struct mw_audit_writer *w;
	char tree[T_PATH_MAX + 8], rotated[T_PATH_MAX + 8];
	char rotated2[T_PATH_MAX + 8];
	const char *paths[2], *paths3[3], *err;
	unsigned int i, plain;

	(void)state;
	t_env_init(&env);
	snprintf(tree, sizeof(tree), "%s.tree", env.log);
	snprintf(rotated, sizeof(rotated), "%s.1", env.log);
	t_opts(&env, &opts);
	opts.checkpoint_records = 5;
	w = t_open(&env, &opts);
	for (i = 0; i < 23; i++)
		t_append(w, i);
	t_flush(w);
	assert_null(mw_audit_writer_take_warning(w));
	/* a crash: the state file is older than the log's end */
	mw_audit_writer_abort(&w);
	w = t_open(&env, &opts);
	assert_null(mw_audit_writer_take_warning(w));
	for (i = 0; i < 7; i++)
		t_append(w, i);
	t_close(w);
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_true(res.roots_checked >= 7);
	assert_int_equal(res.roots_checked, res.checkpoints);

	/* state file gone, the file starts the chain: recomputed */
	assert_int_equal(unlink(tree), 0);
	w = t_open(&env, &opts);
	assert_null(mw_audit_writer_take_warning(w));
	for (i = 0; i < 6; i++)
		t_append(w, i);
	assert_int_equal(mw_audit_writer_rotate(w, rotated, &err), 0);
	for (i = 0; i < 6; i++)
		t_append(w, i);
	t_close(w);
	/* restart after rotation: continues from the state file */
	w = t_open(&env, &opts);
	assert_null(mw_audit_writer_take_warning(w));
	for (i = 0; i < 6; i++)
		t_append(w, i);
	t_close(w);
	paths[0] = rotated;
	paths[1] = env.log;
	t_verify_ex(&env, paths, 2, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	assert_int_equal(res.roots_checked, res.checkpoints);
	assert_true(count_rooted(env.log, &plain) >= 3);
	assert_int_equal(plain, 0);

	/* a crash right after a rotation that followed a flushed
	   checkpoint: the seal's state was saved before the rename */
	opts.checkpoint_records = 1;
	w = t_open(&env, &opts);
	t_append(w, 1);
	t_flush(w);
	snprintf(rotated2, sizeof(rotated2), "%s.2", env.log);
	assert_int_equal(mw_audit_writer_rotate(w, rotated2, &err), 0);
	mw_audit_writer_abort(&w);
	w = t_open(&env, &opts);
	assert_null(mw_audit_writer_take_warning(w));
	t_append(w, 2);
	t_close(w);
	paths3[0] = rotated;
	paths3[1] = rotated2;
	paths3[2] = env.log;
	t_verify_ex(&env, paths3, 3, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	assert_int_equal(res.roots_checked, res.checkpoints);
	opts.checkpoint_records = 5;

	/* state file gone and the chain started in a rotated file: the
	   writer cannot know the tree, says so, and signs v1 checkpoints,
	   which stay valid */
	assert_int_equal(unlink(tree), 0);
	w = t_open(&env, &opts);
	err = mw_audit_writer_take_warning(w);
	assert_non_null(err);
	assert_non_null(strstr(err, "without a Merkle root"));
	for (i = 0; i < 6; i++)
		t_append(w, i);
	t_close(w);
	t_verify_ex(&env, paths3, 3, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	(void)count_rooted(env.log, &plain);
	assert_true(plain >= 2);
	assert_true(res.roots_checked < res.checkpoints);

	/* a state file that does not fit the log (another chain's) is not
	   used: recomputation from the log is not possible here either */
	t_write_file(tree, "mailward-audit-tree v1 size=1 last="
		     "00000000000000000000000000000000000000000000000000000000"
		     "00000000\n"
		     "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a306"
		     "17afa01d\n", 65 + 35 + 65);
	w = t_open(&env, &opts);
	assert_non_null(mw_audit_writer_take_warning(w));
	t_close(w);
	t_verify_ex(&env, paths3, 3, true, true, NULL, 0, false, &res);
	t_assert_pass(&res);
	t_env_deinit(&env);
}

/* <log>.tree cannot be saved (here: <log>.tree.tmp is a directory): the
   records are not affected, the fault is reported once until a save
   works again, and the next start still continues the tree */
static void test_writer_tree_save_failure(void **state)
{
	struct t_env env;
	struct mw_audit_writer_options opts;
	struct mw_audit_verify_result res;
	struct mw_audit_writer *w;
	char tmp[T_PATH_MAX + 16];
	const char *warning;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	snprintf(tmp, sizeof(tmp), "%s.tree.tmp", env.log);
	t_opts(&env, &opts);
	opts.checkpoint_records = 3;
	w = t_open(&env, &opts);
	assert_int_equal(mkdir(tmp, 0700), 0);
	for (i = 0; i < 3; i++)
		t_append(w, i);
	t_flush(w);
	warning = mw_audit_writer_take_warning(w);
	assert_non_null(warning);
	assert_non_null(strstr(warning, "cannot save the Merkle tree state"));
	for (i = 0; i < 3; i++)
		t_append(w, i);
	t_flush(w);
	/* the same fault again: not repeated */
	assert_null(mw_audit_writer_take_warning(w));
	assert_int_equal(rmdir(tmp), 0);
	for (i = 0; i < 3; i++)
		t_append(w, i);
	t_flush(w);
	assert_null(mw_audit_writer_take_warning(w));
	assert_int_equal(mkdir(tmp, 0700), 0);
	for (i = 0; i < 3; i++)
		t_append(w, i);
	t_flush(w);
	/* failing again after it worked: reported again */
	assert_non_null(mw_audit_writer_take_warning(w));
	mw_audit_writer_abort(&w);
	assert_int_equal(rmdir(tmp), 0);
	w = t_open(&env, &opts);
	assert_null(mw_audit_writer_take_warning(w));
	t_append(w, 99);
	t_close(w);
	t_verify(&env, env.log, &res);
	t_assert_pass(&res);
	assert_int_equal(res.roots_checked, res.checkpoints);
	t_env_deinit(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_build),
		cmocka_unit_test(test_body_build_truncates),
		cmocka_unit_test(test_body_build_rejects),
		cmocka_unit_test(test_body_validate),
		cmocka_unit_test(test_record_time_cached_same),
		cmocka_unit_test(test_key_derivation),
		cmocka_unit_test(test_line_mac_known_answers),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_writer_basic),
		cmocka_unit_test(test_writer_reopen_continues),
		cmocka_unit_test(test_writer_epochs_and_checkpoints),
		cmocka_unit_test(test_writer_group_commit),
		cmocka_unit_test(test_writer_rejects_bad_body),
		cmocka_unit_test(test_writer_rotate),
		cmocka_unit_test(test_writer_merkle_roots),
		cmocka_unit_test(test_writer_tree_save_failure),
		cmocka_unit_test(test_writer_torn_tail_recovery),
		cmocka_unit_test(test_writer_recovers_garbage_lines),
		cmocka_unit_test(test_writer_refuses_tampered_tail),
		cmocka_unit_test(test_verify_expectations),
		cmocka_unit_test(test_writer_append_delayed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
