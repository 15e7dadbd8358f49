/* Helpers shared by the audit unit tests (test-audit.c,
   test-audit-tamper.c): temporary directories, a fake clock, line-level
   log editing and an attacker's re-chaining tool. Header-only. */

#ifndef TEST_AUDIT_COMMON_H
#define TEST_AUDIT_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/crypto.h>

#include "mw-json.h"
#include "mw-audit-writer.h"
#include "mw-audit-verify.h"
#include "mw-merkle.h"

#define T_PATH_MAX 512

struct t_env {
	char dir[128];
	char log[T_PATH_MAX];
	char writer_key[T_PATH_MAX];
	char verify_key[T_PATH_MAX];
	char sign_key[T_PATH_MAX];
	char pub[T_PATH_MAX];
	int64_t now;
};

static inline int64_t t_clock(void *context)
{
	struct t_env *env = context;

	return env->now;
}

static inline void t_env_init(struct t_env *env)
{
	const char *err = NULL;

	memset(env, 0, sizeof(*env));
	snprintf(env->dir, sizeof(env->dir), "/tmp/mw-audit-test.XXXXXX");
	assert_non_null(mkdtemp(env->dir));
	snprintf(env->log, sizeof(env->log), "%s/audit.log", env->dir);
	snprintf(env->writer_key, sizeof(env->writer_key), "%s/writer.key",
		 env->dir);
	snprintf(env->verify_key, sizeof(env->verify_key), "%s/verify.key",
		 env->dir);
	snprintf(env->sign_key, sizeof(env->sign_key), "%s/checkpoint.key",
		 env->dir);
	snprintf(env->pub, sizeof(env->pub), "%s/checkpoint.pub", env->dir);
	if (mw_audit_keygen(env->dir, false, &err) < 0)
		fail_msg("keygen: %s", err);
	/* 2026-11-28T13:58:16.123456Z */
	env->now = INT64_C(1795874296123456);
}

static inline void t_env_deinit(struct t_env *env)
{
	char cmd[T_PATH_MAX + 32];

	if (getenv("MW_TEST_KEEP") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env->dir);
	if (system(cmd) != 0)
		print_error("cleanup of %s failed\n", env->dir);
}

static inline void t_opts(struct t_env *env, struct mw_audit_writer_options *opts)
{
	mw_audit_writer_options_init(opts);
	opts->host = "mx1.example.org";
	opts->epoch_seconds = 0;
	opts->epoch_records = 0;
	opts->checkpoint_seconds = 0;
	opts->checkpoint_records = 0;
	opts->now_usec = t_clock;
	opts->now_context = env;
}

static inline struct mw_audit_writer *
t_open(struct t_env *env, const struct mw_audit_writer_options *opts)
{
	struct mw_audit_writer *w = NULL;
	const char *err = NULL;

	if (mw_audit_writer_open(env->log, env->writer_key, env->sign_key,
				 opts, &w, &err) < 0)
		fail_msg("writer open: %s", err);
	return w;
}

/* appends a retrieval event for message n */
static inline void t_append(struct mw_audit_writer *w, unsigned int n)
{
	struct mw_audit_event ev;
	const char *err = NULL;
	char guid[64], msgid[64], user[32];

	snprintf(guid, sizeof(guid), "4f0c1a2b3c4d5e6f%08u", n);
	snprintf(msgid, sizeof(msgid), "<msg%u@example.org>", n);
	snprintf(user, sizeof(user), "user%u@example.org", n % 3);
	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_SERVICE, "pop3");
	mw_audit_event_set_str(&ev, MW_AF_SESSION, "sess-\"1\"\n");
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_audit_event_set_str(&ev, MW_AF_OUTCOME, "ok");
	mw_audit_event_set_str(&ev, MW_AF_USER, user);
	mw_audit_event_set_str(&ev, MW_AF_DEVICE, "d3adb33f");
	mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL,
			       "pop3 \"Th\xc3\xbcnderbird\" \xff\x01");
	mw_audit_event_set_str(&ev, MW_AF_REMOTE, "192.0.2.0/24");
	mw_audit_event_set_str(&ev, MW_AF_MAILBOX, "INBOX");
	mw_audit_event_set_num(&ev, MW_AF_UIDVALIDITY, 1700000000);
	mw_audit_event_set_num(&ev, MW_AF_UID, n);
	mw_audit_event_set_str(&ev, MW_AF_MSG_GUID, guid);
	mw_audit_event_set_str(&ev, MW_AF_MESSAGE_ID, msgid);
	mw_audit_event_set_num(&ev, MW_AF_SIZE, 1000 + n);
	mw_audit_event_set_str(&ev, MW_AF_POLICY, "leave-on-server");
	mw_audit_event_set_str(&ev, MW_AF_POLICY_SOURCE, "userdb");
	mw_audit_event_set_str(&ev, MW_AF_CAUSE, "client");
	if (mw_audit_writer_append(w, &ev, &err) < 0)
		fail_msg("append: %s", err);
}

static inline void t_flush(struct mw_audit_writer *w)
{
	const char *err = NULL;

	if (mw_audit_writer_flush(w, &err) < 0)
		fail_msg("flush: %s", err);
}

static inline void t_close(struct mw_audit_writer *w)
{
	const char *err = NULL;

	if (mw_audit_writer_close(&w, &err) < 0)
		fail_msg("close: %s", err);
}

/* --- line-level editing --- */

struct t_lines {
	char **line;	/* without newline, NUL-terminated */
	size_t *len;
	size_t count;
	/* bytes after the last newline (torn), or NULL */
	char *tail;
	size_t tail_len;
};

static inline char *t_read_file(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *data;
	long size;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	size = ftell(f);
	assert_true(size >= 0);
	rewind(f);
	data = malloc((size_t)size + 1);
	assert_non_null(data);
	assert_int_equal(fread(data, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	data[size] = '\0';
	*len_r = (size_t)size;
	return data;
}

static inline void t_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static inline void t_lines_add(struct t_lines *l, const char *data, size_t len)
{
	l->line = realloc(l->line, (l->count + 1) * sizeof(*l->line));
	l->len = realloc(l->len, (l->count + 1) * sizeof(*l->len));
	assert_non_null(l->line);
	assert_non_null(l->len);
	l->line[l->count] = malloc(len + 1);
	assert_non_null(l->line[l->count]);
	memcpy(l->line[l->count], data, len);
	l->line[l->count][len] = '\0';
	l->len[l->count] = len;
	l->count++;
}

static inline void t_lines_read(struct t_lines *l, const char *path)
{
	size_t size, pos = 0;
	char *data = t_read_file(path, &size), *nl;

	memset(l, 0, sizeof(*l));
	while (pos < size) {
		nl = memchr(data + pos, '\n', size - pos);
		if (nl == NULL) {
			l->tail_len = size - pos;
			l->tail = malloc(l->tail_len + 1);
			memcpy(l->tail, data + pos, l->tail_len);
			break;
		}
		t_lines_add(l, data + pos, (size_t)(nl - (data + pos)));
		pos = (size_t)(nl - data) + 1;
	}
	free(data);
}

static inline void t_lines_copy(struct t_lines *dst, const struct t_lines *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < src->count; i++)
		t_lines_add(dst, src->line[i], src->len[i]);
}

static inline void t_lines_write(const struct t_lines *l, const char *path)
{
	FILE *f = fopen(path, "wb");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < l->count; i++) {
		assert_int_equal(fwrite(l->line[i], 1, l->len[i], f), l->len[i]);
		putc('\n', f);
	}
	if (l->tail != NULL)
		assert_int_equal(fwrite(l->tail, 1, l->tail_len, f), l->tail_len);
	assert_int_equal(fclose(f), 0);
}

static inline void t_lines_free(struct t_lines *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->line[i]);
	free(l->line);
	free(l->len);
	free(l->tail);
	memset(l, 0, sizeof(*l));
}

/* inserts a copy of data[len] as line i (0 <= i <= count) */
static inline void t_lines_insert(struct t_lines *l, size_t i, const char *data,
				  size_t len)
{
	char *copy;

	t_lines_add(l, data, len);
	copy = l->line[l->count - 1];
	memmove(l->line + i + 1, l->line + i,
		(l->count - 1 - i) * sizeof(*l->line));
	memmove(l->len + i + 1, l->len + i,
		(l->count - 1 - i) * sizeof(*l->len));
	l->line[i] = copy;
	l->len[i] = len;
}

static inline void t_lines_set(struct t_lines *l, size_t i, const char *data,
			size_t len)
{
	free(l->line[i]);
	l->line[i] = malloc(len + 1);
	memcpy(l->line[i], data, len);
	l->line[i][len] = '\0';
	l->len[i] = len;
}

static inline void t_lines_delete(struct t_lines *l, size_t i)
{
	free(l->line[i]);
	memmove(l->line + i, l->line + i + 1,
		(l->count - i - 1) * sizeof(*l->line));
	memmove(l->len + i, l->len + i + 1,
		(l->count - i - 1) * sizeof(*l->len));
	l->count--;
}

/* replaces the first occurrence of from by to in line i */
static inline void t_lines_replace(struct t_lines *l, size_t i, const char *from,
			    const char *to)
{
	char *p = strstr(l->line[i], from), *n;
	size_t flen = strlen(from), tlen = strlen(to), len;

	assert_non_null(p);
	len = l->len[i] - flen + tlen;
	n = malloc(len + 1);
	memcpy(n, l->line[i], (size_t)(p - l->line[i]));
	memcpy(n + (p - l->line[i]), to, tlen);
	memcpy(n + (p - l->line[i]) + tlen, p + flen,
	       l->len[i] - (size_t)(p - l->line[i]) - flen);
	n[len] = '\0';
	free(l->line[i]);
	l->line[i] = n;
	l->len[i] = len;
}

/* index of the first line (from start) whose event is event, or -1 */
static inline long t_lines_find_event(const struct t_lines *l, size_t start,
			       const char *event)
{
	char pat[64];
	size_t i;

	snprintf(pat, sizeof(pat), "\"event\":\"%s\"", event);
	for (i = start; i < l->count; i++) {
		if (strstr(l->line[i], pat) != NULL)
			return (long)i;
	}
	return -1;
}

/* --- keys --- */

static inline void t_load_key(const char *path, uint32_t *epoch_r, uint8_t key[32])
{
	const char *err = NULL;

	if (mw_audit_key_load(path, epoch_r, key, &err) < 0)
		fail_msg("key load: %s", err);
}

/* K_epoch from (base_epoch, base_key) */
static inline void t_epoch_key(uint32_t base_epoch, const uint8_t base[32],
			uint32_t epoch, uint8_t out[32])
{
	memcpy(out, base, 32);
	assert_true(epoch >= base_epoch);
	while (base_epoch < epoch) {
		base_epoch++;
		assert_int_equal(mw_audit_key_next(out, base_epoch, out), 0);
	}
}

/* hex Merkle root of lines [0, n) (RFC 9162, leaf = line bytes) */
static inline void t_merkle_root_hex(const struct t_lines *l, size_t n,
				     char out[65])
{
	struct mw_merkle_range r;
	mw_merkle_hash h;
	size_t i;

	mw_merkle_range_init(&r);
	for (i = 0; i < n; i++) {
		assert_int_equal(mw_merkle_leaf_hash(l->line[i], l->len[i], h),
				 0);
		assert_int_equal(mw_merkle_range_append(&r, h), 0);
	}
	assert_int_equal(mw_merkle_range_root(&r, h), 0);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* An attacker's re-chaining: for lines [from, count): optionally renumber
   seq (seq = index + 1 + seq_offset), recompute prev from the previous
   line, and re-MAC with key_for(epoch) if it returns true (otherwise the
   old MAC stays). */
typedef bool t_key_for_t(uint32_t epoch, uint8_t key[32], void *context);

static inline void t_rechain(struct t_lines *l, size_t from, bool renumber,
		      t_key_for_t *key_for, void *context)
{
	struct mw_json_obj obj;
	struct mw_json_buf b;
	const char *err;
	char prev[65], mac[65], root[65];
	uint8_t key[32];
	size_t i;
	unsigned int k;
	uint64_t first_seq = 0;

	mw_json_obj_init(&obj);
	mw_json_buf_init(&b);
	for (i = from; i < l->count; i++) {
		if (mw_json_parse_object(&obj, l->line[i], l->len[i], &err) < 0)
			fail_msg("rechain: line %zu: %s", i, err);
		if (i == from)
			first_seq = mw_json_obj_get(&obj, "seq")->num;
		if (i == from && i > 0) {
			/* continue from the previous line's seq */
			const char *p = strstr(l->line[i - 1], "{\"seq\":");

			assert_non_null(p);
			first_seq = strtoull(p + 7, NULL, 10) + 1;
		}
		if (i > 0)
			assert_int_equal(mw_audit_sha256_hex(l->line[i - 1],
							     l->len[i - 1],
							     prev), 0);
		else
			memset(prev, '0', 64), prev[64] = '\0';
		for (k = 0; k < obj.count; k++) {
			struct mw_json_member *m = &obj.members[k];

			if (strcmp(m->key, "seq") == 0 && renumber)
				m->num = first_seq + (i - from);
			else if (strcmp(m->key, "prev") == 0)
				m->str = prev;
			else if (strcmp(m->key, "root") == 0) {
				/* a thorough attacker recomputes the Merkle
				   root too (it is not keyed, only signed) */
				t_merkle_root_hex(l, i, root);
				m->str = root;
			}
		}
		mw_json_buf_reset(&b);
		mw_json_buf_append(&b, "{", 1);
		for (k = 0; k + 1 < obj.count; k++) {
			if (k > 0)
				mw_json_buf_append(&b, ",", 1);
			mw_json_member_serialize(&obj.members[k], &b);
		}
		if (key_for != NULL &&
		    key_for((uint32_t)mw_json_obj_get(&obj, "epoch")->num, key,
			    context)) {
			mw_json_buf_append(&b, ",\"mac\":\"0000000000000000"
					   "000000000000000000000000000000000000"
					   "000000000000\"}", 74);
			assert_int_equal(mw_audit_line_mac_hex(key, b.data,
							       b.len, mac), 0);
			OPENSSL_cleanse(key, sizeof(key));
			b.len -= 74;
		} else {
			memcpy(mac, obj.members[obj.count - 1].str, 64);
			mac[64] = '\0';
		}
		mw_json_buf_append_str(&b, ",\"mac\":\"");
		mw_json_buf_append_str(&b, mac);
		mw_json_buf_append_str(&b, "\"}");
		assert_false(b.failed);
		t_lines_set(l, i, b.data, b.len);
	}
	mw_json_buf_free(&b);
	mw_json_obj_free(&obj);
}

/* key_for: the legitimate keys of every epoch (derived from verify.key) */
struct t_keyring {
	uint32_t base_epoch;
	uint8_t base[32];
	/* if set, use this one key for every epoch (stolen later key) */
	bool fixed;
	uint8_t fixed_key[32];
};

static inline bool t_keyring_for(uint32_t epoch, uint8_t key[32], void *context)
{
	struct t_keyring *kr = context;

	if (kr->fixed) {
		memcpy(key, kr->fixed_key, 32);
		return true;
	}
	if (epoch < kr->base_epoch)
		return false;
	t_epoch_key(kr->base_epoch, kr->base, epoch, key);
	return true;
}

/* --- verification --- */

static inline void t_verify_ex(struct t_env *env, const char *const *paths,
			unsigned int count, bool with_key, bool with_pub,
			const char *kept, uint64_t expect_seq, bool partial,
			struct mw_audit_verify_result *res)
{
	struct mw_audit_verify_options opts;
	const char *err = NULL;
	const char *kept_files[1];

	memset(&opts, 0, sizeof(opts));
	opts.key_path = with_key ? env->verify_key : NULL;
	opts.pubkey_path = with_pub ? env->pub : NULL;
	if (kept != NULL) {
		kept_files[0] = kept;
		opts.checkpoint_files = kept_files;
		opts.checkpoint_file_count = 1;
	}
	opts.expect_seq = expect_seq;
	opts.partial = partial;
	if (mw_audit_verify_files(paths, count, &opts, res, &err) < 0)
		fail_msg("verify: %s", err);
}

static inline void t_verify(struct t_env *env, const char *path,
		     struct mw_audit_verify_result *res)
{
	const char *paths[1] = { path };

	t_verify_ex(env, paths, 1, true, true, NULL, 0, false, res);
}

static inline void t_assert_pass(const struct mw_audit_verify_result *res)
{
	if (res->status != MW_AUDIT_VERIFY_PASS)
		fail_msg("expected PASS, got status %d: %s at seq %llu: %s",
			 res->status, mw_audit_fail_reason_name(res->reason),
			 (unsigned long long)res->bad_seq, res->message);
}

static inline void t_assert_fail(const struct mw_audit_verify_result *res,
			  enum mw_audit_fail_reason reason, uint64_t seq)
{
	if (res->status != MW_AUDIT_VERIFY_FAIL)
		fail_msg("expected FAIL (%s at %llu), got status %d",
			 mw_audit_fail_reason_name(reason),
			 (unsigned long long)seq, res->status);
	if (res->reason != reason || res->bad_seq != seq)
		fail_msg("expected %s at seq %llu, got %s at seq %llu: %s",
			 mw_audit_fail_reason_name(reason),
			 (unsigned long long)seq,
			 mw_audit_fail_reason_name(res->reason),
			 (unsigned long long)res->bad_seq, res->message);
}

#endif
