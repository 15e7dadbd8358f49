/* Tamper suite of the audit log: every manipulation must FAIL at the right
   seq with the right reason; a torn tail must be reported as a crash
   artefact. The fixture is a real log written by the writer with small
   epochs (6 records) and frequent checkpoints (every 4 records). */

#include "test-audit-common.h"

#include <openssl/pem.h>

static struct t_env env;
static struct t_lines fixture;
static char tlog[T_PATH_MAX + 16];

static int setup(void **state)
{
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	unsigned int i;

	(void)state;
	t_env_init(&env);
	t_opts(&env, &opts);
	opts.epoch_records = 6;
	opts.checkpoint_records = 4;
	w = t_open(&env, &opts);
	for (i = 0; i < 40; i++) {
		t_append(w, i);
		env.now += 1234;
		if (i % 9 == 0)
			t_flush(w);
	}
	t_close(w);
	t_lines_read(&fixture, env.log);
	snprintf(tlog, sizeof(tlog), "%s/t.log", env.dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	t_lines_free(&fixture);
	t_env_deinit(&env);
	return 0;
}

static void verify_lines(const struct t_lines *l,
			 struct mw_audit_verify_result *res)
{
	t_lines_write(l, tlog);
	t_verify(&env, tlog, res);
}

/* seq of line index i in the fixture (single chain from seq 1) */
#define SEQ(i) ((uint64_t)(i) + 1)

/* index of an ordinary event line in the middle of epoch 2 or later */
static size_t mid_event(size_t from)
{
	long i = t_lines_find_event(&fixture, from, "retr");

	assert_true(i >= 0);
	return (size_t)i;
}

static void test_baseline_pass(void **state)
{
	struct mw_audit_verify_result res;

	(void)state;
	verify_lines(&fixture, &res);
	t_assert_pass(&res);
	assert_int_equal(res.records, fixture.count);
	assert_true(res.seals >= 6);
	assert_true(res.checkpoints >= 10);
	assert_true(res.last_epoch >= 7);
	assert_int_equal(res.unsealed_tail, 0);
}

static void test_bit_flips(void **state)
{
	struct mw_audit_verify_result res;
	size_t size = 0, off, line_start = 0, line = 0, tested = 0;
	size_t stride = getenv("MW_TEST_EXHAUSTIVE") != NULL ? 1 : 31;
	const char *paths[1] = { tlog };
	char *orig, *data;

	(void)state;
	t_lines_write(&fixture, tlog);
	orig = t_read_file(tlog, &size);
	data = malloc(size);
	assert_non_null(data);
	for (off = 0; off < size; off++) {
		/* the line the byte belongs to (a newline ends its line) */
		while (line < fixture.count &&
		       off > line_start + fixture.len[line]) {
			line_start += fixture.len[line] + 1;
			line++;
		}
		if (off % stride != 0 && orig[off] != '\n' &&
		    off != line_start && off + 75 != line_start + fixture.len[line])
			continue;
		memcpy(data, orig, size);
		data[off] ^= (char)(1 << (off % 8));
		t_write_file(tlog, data, size);
		/* the MAC pins every flip; signatures are slow, so they are
		   checked too only in the exhaustive run */
		t_verify_ex(&env, paths, 1, true, stride == 1, NULL, 0, false,
			    &res);
		tested++;
		if (off == size - 1) {
			/* the final newline: the last line becomes a torn
			   tail, which is never counted as verified */
			assert_int_equal(res.status, MW_AUDIT_VERIFY_PASS_TORN);
			assert_int_equal(res.last_seq, fixture.count - 1);
			continue;
		}
		if (res.status != MW_AUDIT_VERIFY_FAIL ||
		    res.bad_seq != SEQ(line))
			fail_msg("flip at offset %zu (line %zu, byte 0x%02x): "
				 "status %d reason %s seq %llu", off, line,
				 (unsigned char)orig[off], res.status,
				 mw_audit_fail_reason_name(res.reason),
				 (unsigned long long)res.bad_seq);
	}
	assert_true(tested >= size / stride);
	free(orig);
	free(data);
}

static void test_edited_field(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	size_t k = mid_event(10);

	(void)state;
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, k, "\"outcome\":\"ok\"", "\"outcome\":\"no\"");
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	/* the same edit with all later prev links repaired (no key) */
	t_rechain(&l, k + 1, false, NULL, NULL);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	t_lines_free(&l);

	/* a number field */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, k, "\"size\":10", "\"size\":90");
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	t_lines_free(&l);
}

static void test_whitespace_change(void **state)
{
	static const struct {
		const char *from, *to;
		enum mw_audit_fail_reason reason;
	} edits[] = {
		{ ",\"event\"", ", \"event\"", MW_AUDIT_BAD_JSON },
		{ "{\"seq\"", "{ \"seq\"", MW_AUDIT_BAD_JSON },
		{ "\"}", "\" }", MW_AUDIT_BAD_JSON },
		{ "\"event\":", "\"event\" :", MW_AUDIT_BAD_JSON },
		{ "\"mac\":\"", "\"mac\":\"\t", MW_AUDIT_BAD_JSON },
		{ "\"user\":\"user", "\"user\":\" user", MW_AUDIT_BAD_MAC },
		{ "\"}", "\"}\r", MW_AUDIT_BAD_JSON },	/* CRLF */
		{ "\"}", "\"} ", MW_AUDIT_BAD_JSON },
	};
	struct mw_audit_verify_result res;
	struct t_lines l;
	size_t k = mid_event(12);
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		t_lines_copy(&l, &fixture);
		t_lines_replace(&l, k, edits[i].from, edits[i].to);
		verify_lines(&l, &res);
		t_assert_fail(&res, edits[i].reason, SEQ(k));
		t_lines_free(&l);
	}
	/* an empty line inserted */
	t_lines_copy(&l, &fixture);
	t_lines_insert(&l, k, "", 0);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_JSON, SEQ(k));
	t_lines_free(&l);
}

static void test_deleted_record(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	size_t k = mid_event(15);

	(void)state;
	t_lines_copy(&l, &fixture);
	t_lines_delete(&l, k);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_SEQ_GAP, SEQ(k));
	/* renumbered and re-linked without the key */
	t_rechain(&l, k, true, NULL, NULL);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	t_lines_free(&l);

	/* the first record */
	t_lines_copy(&l, &fixture);
	t_lines_delete(&l, 0);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_START, 1);
	t_lines_free(&l);
}

static void test_duplicated_record(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	size_t k = mid_event(15);

	(void)state;
	t_lines_copy(&l, &fixture);
	t_lines_insert(&l, k + 1, fixture.line[k], fixture.len[k]);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_SEQ_REORDER, SEQ(k + 1));
	t_lines_free(&l);
}

static void test_swapped_records(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	size_t k = mid_event(15);
	long cp;
	char *tmp;
	size_t tl;

	(void)state;
	t_lines_copy(&l, &fixture);
	tmp = l.line[k]; l.line[k] = l.line[k + 1]; l.line[k + 1] = tmp;
	tl = l.len[k]; l.len[k] = l.len[k + 1]; l.len[k + 1] = tl;
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_SEQ_GAP, SEQ(k));
	/* renumbered, re-linked and re-MACed with every MAC key (even a
	   leaked verify.key): the next signed checkpoint catches it */
	memset(&kr, 0, sizeof(kr));
	t_load_key(env.verify_key, &kr.base_epoch, kr.base);
	t_rechain(&l, k, true, t_keyring_for, &kr);
	cp = t_lines_find_event(&l, k, "checkpoint");
	assert_true(cp > (long)k + 1);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	/* and without a public key this attacker would have won: that is
	   why checkpoints must be checked */
	{
		const char *paths[1] = { tlog };

		t_verify_ex(&env, paths, 1, true, false, NULL, 0, false, &res);
		t_assert_pass(&res);
	}
	OPENSSL_cleanse(kr.base, sizeof(kr.base));
	t_lines_free(&l);
}

static void test_truncation_below_checkpoint(void **state)
{
	struct mw_audit_verify_result res;
	struct mw_audit_verify_options vo;
	struct t_lines l;
	char kept[T_PATH_MAX + 16];
	const char *paths[1] = { tlog }, *kept_files[1], *err;
	long cp = -1, i;

	(void)state;
	/* the auditor exported the last-but-one checkpoint earlier */
	for (i = 0; (i = t_lines_find_event(&fixture, (size_t)i,
					     "checkpoint")) >= 0; i++) {
		if (t_lines_find_event(&fixture, (size_t)i + 1,
				       "checkpoint") >= 0)
			cp = i;
	}
	assert_true(cp > 10);
	snprintf(kept, sizeof(kept), "%s/kept.jsonl", env.dir);
	t_write_file(kept, fixture.line[cp], fixture.len[cp]);

	/* cut 3 records below the checkpoint: verifies as far as it goes */
	t_lines_copy(&l, &fixture);
	while (l.count > (size_t)cp - 3)
		t_lines_delete(&l, l.count - 1);
	verify_lines(&l, &res);
	t_assert_pass(&res);
	assert_int_equal(res.last_seq, SEQ(cp - 4));
	assert_true(res.unsealed_tail > 0);
	/* with the kept checkpoint: truncation detected */
	t_verify_ex(&env, paths, 1, true, true, kept, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_TRUNCATED, SEQ(cp - 3));
	/* or with the known final seq */
	t_verify_ex(&env, paths, 1, true, true, NULL, SEQ(cp), false, &res);
	t_assert_fail(&res, MW_AUDIT_TRUNCATED, SEQ(cp - 3));
	t_lines_free(&l);

	/* cut just after the checkpoint: the kept one matches */
	t_lines_copy(&l, &fixture);
	while (l.count > (size_t)cp + 1)
		t_lines_delete(&l, l.count - 1);
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, true, true, kept, 0, false, &res);
	t_assert_pass(&res);
	assert_int_equal(res.kept_checkpoints_matched, 1);
	assert_int_equal(res.unsealed_tail, 0);
	t_lines_free(&l);

	/* history rewritten with all MAC keys and the checkpoint re-signed
	   by another key: the kept (genuine) checkpoint differs */
	{
		struct t_keyring kr;
		size_t k = mid_event(3);

		t_lines_copy(&l, &fixture);
		memset(&kr, 0, sizeof(kr));
		t_load_key(env.verify_key, &kr.base_epoch, kr.base);
		t_lines_replace(&l, k, "\"outcome\":\"ok\"", "\"outcome\":\"no\"");
		t_rechain(&l, k, false, t_keyring_for, &kr);
		t_lines_write(&l, tlog);
		memset(&vo, 0, sizeof(vo));
		vo.key_path = env.verify_key;
		kept_files[0] = kept;
		vo.checkpoint_files = kept_files;
		vo.checkpoint_file_count = 1;
		assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res,
						       &err), 0);
		t_assert_fail(&res, MW_AUDIT_CHECKPOINT_MISMATCH, SEQ(cp));
		OPENSSL_cleanse(kr.base, sizeof(kr.base));
		t_lines_free(&l);
	}
	/* a kept file that is not a genuine checkpoint is an input error */
	t_write_file(kept, fixture.line[3], fixture.len[3]);
	memset(&vo, 0, sizeof(vo));
	vo.pubkey_path = env.pub;
	kept_files[0] = kept;
	vo.checkpoint_files = kept_files;
	vo.checkpoint_file_count = 1;
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), -1);
}

/* the writer's key file as a thief finds it after the log was written */
static void stolen_key(uint32_t *epoch_r, uint8_t key[32])
{
	t_load_key(env.writer_key, epoch_r, key);
}

static void test_rewrite_with_later_epoch_key(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	char epoch_field[32];
	size_t k = mid_event(8);
	uint32_t stolen_epoch;

	(void)state;
	memset(&kr, 0, sizeof(kr));
	stolen_key(&stolen_epoch, kr.fixed_key);
	kr.fixed = true;
	assert_true(strstr(fixture.line[k], "\"epoch\":1,") != NULL ||
		    strstr(fixture.line[k], "\"epoch\":2,") != NULL);

	/* edit an early record, re-MAC it with the stolen key */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, k, "\"outcome\":\"ok\"", "\"outcome\":\"no\"");
	t_rechain(&l, k, false, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	t_lines_free(&l);

	/* ... and claim the record belongs to the stolen key's epoch */
	t_lines_copy(&l, &fixture);
	snprintf(epoch_field, sizeof(epoch_field), "\"epoch\":%u,",
		 stolen_epoch);
	if (strstr(l.line[k], "\"epoch\":1,") != NULL)
		t_lines_replace(&l, k, "\"epoch\":1,", epoch_field);
	else
		t_lines_replace(&l, k, "\"epoch\":2,", epoch_field);
	t_rechain(&l, k, false, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_EPOCH_SKIPPED, SEQ(k));
	t_lines_free(&l);
	OPENSSL_cleanse(kr.fixed_key, sizeof(kr.fixed_key));
}

static void sign_with(const char *pem_path, struct t_lines *l, size_t i)
{
	struct mw_json_obj obj;
	struct mw_json_buf msg;
	const struct mw_json_member *host;
	unsigned char sig[64];
	char sighex[129], *old;
	size_t siglen = sizeof(sig), j;
	EVP_PKEY *pkey;
	EVP_MD_CTX *ctx;
	FILE *f;
	const char *err;

	f = fopen(pem_path, "r");
	assert_non_null(f);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(pkey);
	mw_json_obj_init(&obj);
	mw_json_buf_init(&msg);
	assert_int_equal(mw_json_parse_object(&obj, l->line[i], l->len[i],
					      &err), 0);
	host = mw_json_obj_get(&obj, "host");
	mw_audit_checkpoint_message(&msg, host->str, host->str_len,
				    mw_json_obj_get(&obj, "seq")->num,
				    mw_json_obj_get(&obj, "prev")->str,
				    mw_json_obj_get(&obj, "time")->str,
				    mw_json_obj_get(&obj, "root") == NULL ? NULL :
				    mw_json_obj_get(&obj, "root")->str);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &siglen,
					(const unsigned char *)msg.data,
					msg.len), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	for (j = 0; j < 64; j++)
		snprintf(sighex + 2 * j, 3, "%02x", sig[j]);
	old = strdup(mw_json_obj_get(&obj, "sig")->str);
	mw_json_obj_free(&obj);
	mw_json_buf_free(&msg);
	t_lines_replace(l, i, old, sighex);
	free(old);
}

static void test_forged_checkpoint(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	char other[T_PATH_MAX], other_key[T_PATH_MAX + 32];
	const char *err;
	long cp;

	(void)state;
	snprintf(other, sizeof(other), "%s/forger", env.dir);
	assert_int_equal(mkdir(other, 0700), 0);
	assert_int_equal(mw_audit_keygen(other, false, &err), 0);
	snprintf(other_key, sizeof(other_key), "%s/checkpoint.key", other);

	memset(&kr, 0, sizeof(kr));
	t_load_key(env.verify_key, &kr.base_epoch, kr.base);
	cp = t_lines_find_event(&fixture, 20, "checkpoint");
	assert_true(cp > 0);

	/* re-signed by another key, MAC and chain repaired with the real
	   MAC keys: only the signature is wrong */
	t_lines_copy(&l, &fixture);
	sign_with(other_key, &l, (size_t)cp);
	t_rechain(&l, (size_t)cp, false, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_lines_free(&l);

	/* the genuine key re-signing the same content verifies (the test's
	   signing path is right) */
	t_lines_copy(&l, &fixture);
	sign_with(env.sign_key, &l, (size_t)cp);
	verify_lines(&l, &res);
	t_assert_pass(&res);
	t_lines_free(&l);
	OPENSSL_cleanse(kr.base, sizeof(kr.base));
}

static void test_missing_epoch_seal(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	long s = t_lines_find_event(&fixture, 10, "seal");

	(void)state;
	assert_true(s > 0);
	memset(&kr, 0, sizeof(kr));
	t_load_key(env.verify_key, &kr.base_epoch, kr.base);

	/* plain deletion: a gap */
	t_lines_copy(&l, &fixture);
	t_lines_delete(&l, (size_t)s);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_SEQ_GAP, SEQ(s));
	/* deletion hidden by renumbering and re-MACing with every key */
	t_rechain(&l, (size_t)s, true, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_MISSING_SEAL, SEQ(s));
	t_lines_free(&l);

	/* a seal that lies about its epoch's record count */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, (size_t)s, "\"records\":", "\"records\":1");
	t_rechain(&l, (size_t)s, false, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SEAL, SEQ(s));
	t_lines_free(&l);

	/* a record slipped in after a seal, in the sealed epoch */
	t_lines_copy(&l, &fixture);
	t_lines_insert(&l, (size_t)s + 1, fixture.line[s - 2],
		       fixture.len[s - 2]);
	t_rechain(&l, (size_t)s + 1, true, t_keyring_for, &kr);
	verify_lines(&l, &res);
	if (strstr(l.line[s + 1], "\"event\":\"checkpoint\"") != NULL ||
	    strstr(l.line[s + 1], "\"event\":\"retr\"") != NULL)
		t_assert_fail(&res, MW_AUDIT_BAD_EPOCH, SEQ(s + 1));
	t_lines_free(&l);
	OPENSSL_cleanse(kr.base, sizeof(kr.base));
}

static void test_foreign_chain(void **state)
{
	struct t_env env2;
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	struct mw_audit_verify_result res;
	const char *paths[1];
	unsigned int i;
	long cp;
	struct t_lines l;

	(void)state;
	/* a complete, self-consistent log made with the attacker's keys */
	t_env_init(&env2);
	t_opts(&env2, &opts);
	opts.checkpoint_records = 4;
	w = t_open(&env2, &opts);
	for (i = 0; i < 10; i++)
		t_append(w, i);
	t_close(w);
	paths[0] = env2.log;
	t_verify_ex(&env, paths, 1, true, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, 1);
	t_lines_read(&l, env2.log);
	cp = t_lines_find_event(&l, 0, "checkpoint");
	t_lines_free(&l);
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_env_deinit(&env2);
}

static void test_inserted_record(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	size_t k = mid_event(20);

	(void)state;
	/* a forged record with the right seq and prev, but no key */
	t_lines_copy(&l, &fixture);
	t_lines_insert(&l, k, fixture.line[k], fixture.len[k]);
	t_lines_replace(&l, k, "\"event\":\"retr\"", "\"event\":\"dele\"");
	t_rechain(&l, k, true, NULL, NULL);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_MAC, SEQ(k));
	t_lines_free(&l);
}

static void test_keyless_detection(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	const char *paths[1] = { tlog };
	size_t k = mid_event(12);
	long cp;

	(void)state;
	/* no keys: an edit breaks the next prev link */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, k, "\"outcome\":\"ok\"", "\"outcome\":\"no\"");
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, false, false, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_PREV, SEQ(k + 1));
	/* links repaired: only the signed checkpoint catches it */
	t_rechain(&l, k + 1, false, NULL, NULL);
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, false, false, NULL, 0, false, &res);
	t_assert_pass(&res);
	cp = t_lines_find_event(&l, k, "checkpoint");
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_lines_free(&l);
}

static void test_torn_tail_is_crash_artefact(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	char rotated[T_PATH_MAX + 16];
	const char *paths[2];
	size_t half;

	(void)state;
	/* the last line written only in part */
	t_lines_copy(&l, &fixture);
	half = l.len[l.count - 1] / 2;
	l.tail = malloc(half);
	memcpy(l.tail, l.line[l.count - 1], half);
	l.tail_len = half;
	t_lines_delete(&l, l.count - 1);
	verify_lines(&l, &res);
	assert_int_equal(res.status, MW_AUDIT_VERIFY_PASS_TORN);
	assert_true(res.torn);
	assert_int_equal(res.torn_bytes, half);
	assert_int_equal(res.last_seq, fixture.count - 1);

	/* a torn line in a file that is not the last is not a crash
	   artefact of the running writer */
	snprintf(rotated, sizeof(rotated), "%s/rotated.log", env.dir);
	t_lines_write(&l, rotated);
	paths[0] = rotated;
	paths[1] = tlog;
	t_verify_ex(&env, paths, 2, true, true, NULL, 0, false, &res);
	assert_int_equal(res.status, MW_AUDIT_VERIFY_FAIL);
	assert_int_equal(res.reason, MW_AUDIT_TORN_INSIDE);
	assert_int_equal(res.bad_seq, fixture.count);
	t_lines_free(&l);
}

/* a copy of the root value of checkpoint line i (64 hex) */
static void root_of(const struct t_lines *l, size_t i, char out[65])
{
	const char *p = strstr(l->line[i], ",\"root\":\"");

	assert_non_null(p);
	memcpy(out, p + 9, 64);
	out[64] = '\0';
}

static void sig_of(const struct t_lines *l, size_t i, char out[129])
{
	const char *p = strstr(l->line[i], ",\"sig\":\"");

	assert_non_null(p);
	memcpy(out, p + 8, 128);
	out[128] = '\0';
}

/* Merkle roots of checkpoints: forged (and re-signed by a thief of the
   signing key), removed (a downgrade to v1), or taken from another
   checkpoint with its signature */
static void test_merkle_root_tamper(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	const char *paths[1] = { tlog };
	char root[65], root2[65], sig[129], sig2[129], field[80];
	long cp, cp2;

	(void)state;
	memset(&kr, 0, sizeof(kr));
	t_load_key(env.verify_key, &kr.base_epoch, kr.base);
	cp = t_lines_find_event(&fixture, 20, "checkpoint");
	cp2 = t_lines_find_event(&fixture, 1, "checkpoint");
	assert_true(cp > 0 && cp2 > 0 && cp2 < cp);
	root_of(&fixture, (size_t)cp, root);
	root_of(&fixture, (size_t)cp2, root2);
	sig_of(&fixture, (size_t)cp, sig);
	sig_of(&fixture, (size_t)cp2, sig2);

	/* the baseline verifies every root */
	verify_lines(&fixture, &res);
	t_assert_pass(&res);
	assert_true(res.roots_checked >= 5);
	assert_int_equal(res.roots_checked, res.checkpoints);

	/* forged root, re-signed with the genuine signing key, later links
	   repaired (no MAC key): the recomputed root differs */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, (size_t)cp, root, root2);
	sign_with(env.sign_key, &l, (size_t)cp);
	t_rechain(&l, (size_t)cp + 1, false, NULL, NULL);
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_ROOT, SEQ(cp));
	/* without any key the roots are still recomputed */
	t_verify_ex(&env, paths, 1, false, false, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_ROOT, SEQ(cp));
	t_lines_free(&l);

	/* forged root without re-signing: the signature covers it */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, (size_t)cp, root, root2);
	t_rechain(&l, (size_t)cp + 1, false, NULL, NULL);
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_lines_free(&l);

	/* root and signature of another checkpoint */
	t_lines_copy(&l, &fixture);
	t_lines_replace(&l, (size_t)cp, root, root2);
	t_lines_replace(&l, (size_t)cp, sig, sig2);
	t_rechain(&l, (size_t)cp + 1, false, NULL, NULL);
	t_lines_write(&l, tlog);
	t_verify_ex(&env, paths, 1, false, true, NULL, 0, false, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_lines_free(&l);

	/* root removed (downgrade to a v1 checkpoint), chain and MACs
	   repaired with every MAC key: the v2 signature does not cover a v1
	   message */
	t_lines_copy(&l, &fixture);
	snprintf(field, sizeof(field), ",\"root\":\"%s\"", root);
	t_lines_replace(&l, (size_t)cp, field, "");
	t_rechain(&l, (size_t)cp, false, t_keyring_for, &kr);
	verify_lines(&l, &res);
	t_assert_fail(&res, MW_AUDIT_BAD_SIGNATURE, SEQ(cp));
	t_lines_free(&l);
	OPENSSL_cleanse(kr.base, sizeof(kr.base));
}

/* --consistency against a kept checkpoint: PASS for the genuine log and
   its growth; truncated below it; inconsistent for a history rewritten
   below it by a thief of every key (MACs, chain, roots and signatures
   all re-made, so that the plain verification passes) */
static void verify_consistency(const char *kept_line,
			       struct mw_audit_verify_result *res)
{
	struct mw_audit_verify_options vo;
	const char *paths[1] = { tlog }, *cons[1] = { kept_line }, *err;

	memset(&vo, 0, sizeof(vo));
	vo.pubkey_path = env.pub;
	vo.consistency = cons;
	vo.consistency_count = 1;
	if (mw_audit_verify_files(paths, 1, &vo, res, &err) < 0)
		fail_msg("verify: %s", err);
}

static void test_consistency_proof(void **state)
{
	struct mw_audit_verify_result res;
	struct t_lines l;
	struct t_keyring kr;
	char *kept;
	size_t k;
	long cp, i;

	(void)state;
	cp = t_lines_find_event(&fixture, 15, "checkpoint");
	assert_true(cp > 0 && t_lines_find_event(&fixture, (size_t)cp + 1,
						 "checkpoint") > 0);
	kept = strdup(fixture.line[cp]);

	t_lines_copy(&l, &fixture);
	t_lines_write(&l, tlog);
	verify_consistency(kept, &res);
	t_assert_pass(&res);
	assert_int_equal(res.consistency_checked, 1);
	assert_int_equal(res.consistency_old_size, SEQ(cp) - 1);
	assert_true(res.consistency_new_seq > SEQ(cp));
	assert_true(res.consistency_hashes > 0);
	/* the kept checkpoint is the newest: equal trees, empty proof */
	while (l.count > (size_t)cp + 1)
		t_lines_delete(&l, l.count - 1);
	t_lines_write(&l, tlog);
	verify_consistency(kept, &res);
	t_assert_pass(&res);
	assert_int_equal(res.consistency_hashes, 0);
	/* truncated below it */
	t_lines_delete(&l, l.count - 1);
	t_lines_write(&l, tlog);
	verify_consistency(kept, &res);
	t_assert_fail(&res, MW_AUDIT_TRUNCATED, SEQ(cp));
	assert_non_null(strstr(res.message, "records were removed"));
	t_lines_free(&l);

	/* one record below it rewritten, everything re-made */
	memset(&kr, 0, sizeof(kr));
	t_load_key(env.verify_key, &kr.base_epoch, kr.base);
	t_lines_copy(&l, &fixture);
	k = mid_event(3);
	assert_true(k < (size_t)cp);
	t_lines_replace(&l, k, "\"uid\":", "\"uid\":9");
	t_rechain(&l, k, false, t_keyring_for, &kr);
	for (i = (long)k; (i = t_lines_find_event(&l, (size_t)i,
						 "checkpoint")) >= 0; i++) {
		sign_with(env.sign_key, &l, (size_t)i);
		t_rechain(&l, (size_t)i, false, t_keyring_for, &kr);
	}
	verify_lines(&l, &res);
	t_assert_pass(&res);
	verify_consistency(kept, &res);
	t_assert_fail(&res, MW_AUDIT_INCONSISTENT, SEQ(cp));
	t_lines_free(&l);
	OPENSSL_cleanse(kr.base, sizeof(kr.base));
	free(kept);
}

/* --consistency FILE: a checkpoint line of the file that does not hold
   (here: its signature) stops the verification with an error naming the
   line, as --checkpoint-file does; before, the lines from that one on
   were left out and the log passed */
static void test_consistency_file_bad_line(void **state)
{
	struct mw_audit_verify_options vo;
	struct mw_audit_verify_result res;
	char path[sizeof(tlog) + 8], *bad, *sig;
	const char *paths[1] = { tlog }, *cons[1] = { path }, *err;
	long cp, cp2;
	FILE *f;

	(void)state;
	cp = t_lines_find_event(&fixture, 15, "checkpoint");
	assert_true(cp > 0);
	cp2 = t_lines_find_event(&fixture, (size_t)cp + 1, "checkpoint");
	assert_true(cp2 > cp);
	t_lines_write(&fixture, tlog);
	bad = strdup(fixture.line[cp2]);
	sig = strstr(bad, "\"sig\":\"");
	assert_non_null(sig);
	sig += 7;
	*sig = *sig == 'a' ? 'b' : 'a';
	snprintf(path, sizeof(path), "%s.cons", tlog);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n%s\n", fixture.line[cp], bad);
	assert_int_equal(fclose(f), 0);

	memset(&vo, 0, sizeof(vo));
	vo.pubkey_path = env.pub;
	vo.consistency = cons;
	vo.consistency_count = 1;
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), -1);
	assert_non_null(strstr(err, "line 2: kept checkpoint's signature "
			       "does not verify"));
	/* the good line alone proves */
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", fixture.line[cp]);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(mw_audit_verify_files(paths, 1, &vo, &res, &err), 0);
	t_assert_pass(&res);
	assert_int_equal(res.consistency_checked, 1);
	unlink(path);
	free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_baseline_pass),
		cmocka_unit_test(test_bit_flips),
		cmocka_unit_test(test_edited_field),
		cmocka_unit_test(test_whitespace_change),
		cmocka_unit_test(test_deleted_record),
		cmocka_unit_test(test_duplicated_record),
		cmocka_unit_test(test_swapped_records),
		cmocka_unit_test(test_truncation_below_checkpoint),
		cmocka_unit_test(test_rewrite_with_later_epoch_key),
		cmocka_unit_test(test_forged_checkpoint),
		cmocka_unit_test(test_merkle_root_tamper),
		cmocka_unit_test(test_consistency_proof),
		cmocka_unit_test(test_consistency_file_bad_line),
		cmocka_unit_test(test_missing_epoch_seal),
		cmocka_unit_test(test_foreign_chain),
		cmocka_unit_test(test_inserted_record),
		cmocka_unit_test(test_keyless_detection),
		cmocka_unit_test(test_torn_tail_is_crash_artefact),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
