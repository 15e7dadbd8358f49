/* Unit tests of the state store (mw-store.h) and its LMDB backend
   (src/core/mw-store*.c), on real LMDB files in a temporary directory. Child processes (concurrency, stale
   readers) report through their exit code, never through cmocka. */

#define _GNU_SOURCE /* nftw */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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

#include <cmocka.h>
#include <lmdb.h>

#include "mw-crypto.h"
#include "mw-store.h"
#include "mw-util.h"

#define MBOX_A "0123456789abcdef0123456789abcdef"
#define MBOX_B "fedcba9876543210fedcba9876543210"
#define MBOX_C "00000000000000000000000000000001"

struct fixture {
	char dir[64];
	char store_dir[128];
};

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/mw-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->store_dir, sizeof(f->store_dir), "%s/user/mailward",
		 f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	(void)chmod(f->dir, 0700);
	(void)nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct mw_store *open_ok(const char *dir)
{
	struct mw_store *s = NULL;
	const char *error = NULL;

	if (mw_store_open(dir, &s, &error) < 0)
		fail_msg("open %s failed: %s", dir, error);
	return s;
}

/* A device id from a small number: 32 hex digits. */
static void dev_id(unsigned int n, char out[MW_DEVICE_ID_HEX_SIZE])
{
	snprintf(out, MW_DEVICE_ID_HEX_SIZE, "%08x%024x", n * 2654435761u, n);
}

static struct mw_device_rec register_ok(struct mw_store *s, unsigned int n,
					time_t now, unsigned int max,
					time_t expire, int expect)
{
	struct mw_device_rec rec;
	char id[MW_DEVICE_ID_HEX_SIZE], label[32];
	const char *error;
	int ret;

	dev_id(n, id);
	snprintf(label, sizeof(label), "device %u", n);
	ret = mw_store_device_register(s, id, label, "pop3", now, max, expire,
				       NULL, NULL, &rec, &error);
	if (ret < 0)
		fail_msg("register failed: %s", error);
	assert_int_equal(ret, expect);
	return rec;
}

static void commit_ok(struct mw_batch **batch)
{
	const char *error = NULL;

	if (mw_batch_commit(batch, &error) < 0)
		fail_msg("commit failed: %s", error);
	assert_null(*batch);
}

static int count_cb(const struct mw_msg_rec *rec, void *ctx)
{
	(void)rec;
	(*(unsigned int *)ctx)++;
	return 0;
}

static unsigned int count_msgs(struct mw_store *s, int dev_no,
			       const char *mbox)
{
	unsigned int count = 0;
	const char *error;

	if (mw_store_msg_iter(s, dev_no, mbox, count_cb, &count, &error) < 0)
		fail_msg("iter failed: %s", error);
	return count;
}

/* ---- owner ---- */

static void test_owner(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	const char *owner, *error;

	/* the first user is recorded; the same user, any ASCII case, is
	   the owner; another user is not (and is told whose it is) */
	assert_int_equal(mw_store_check_owner(s, "alice", &owner, &error), 1);
	assert_int_equal(mw_store_check_owner(s, "alice", &owner, &error), 1);
	assert_int_equal(mw_store_check_owner(s, "ALICE", &owner, &error), 1);
	assert_int_equal(mw_store_check_owner(s, "bob", &owner, &error), 0);
	assert_string_equal(owner, "alice");
	assert_int_equal(mw_store_check_owner(s, "alic", &owner, &error), 0);
	assert_int_equal(mw_store_check_owner(s, "alicex", &owner, &error), 0);
	mw_store_unref(&s);
	/* kept across opens */
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_check_owner(s, "bob", &owner, &error), 0);
	assert_string_equal(owner, "alice");
	mw_store_unref(&s);
}

/* ---- INBOX marker ---- */

static void test_inbox_mark(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	const char *error;

	/* a new store: created by this open, not marked */
	s = open_ok(f->store_dir);
	assert_true(mw_store_get_created(s));
	assert_false(mw_store_get_inbox_marked(s));
	assert_int_equal(mw_store_set_inbox_marked(s, 1000, 0, &error), 0);
	assert_true(mw_store_get_inbox_marked(s));
	assert_int_equal(mw_store_get_reset_time(s), 0);
	mw_store_unref(&s);
	/* kept across opens; the store is no longer new */
	s = open_ok(f->store_dir);
	assert_false(mw_store_get_created(s));
	assert_true(mw_store_get_inbox_marked(s));
	assert_int_equal(mw_store_get_reset_time(s), 0);
	/* a found marker records the reset time, once */
	assert_int_equal(mw_store_set_inbox_marked(s, 2000, 1500, &error), 0);
	assert_int_equal(mw_store_get_reset_time(s), 1500);
	assert_int_equal(mw_store_set_inbox_marked(s, 3000, 2500, &error), 0);
	assert_int_equal(mw_store_get_reset_time(s), 1500);
	mw_store_unref(&s);
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_get_reset_time(s), 1500);
	assert_true(mw_store_get_inbox_marked(s));
	mw_store_unref(&s);
}

/* ---- legal hold mark ---- */

/* LMDB's last committed transaction id of the store at dir (no mailward
   handle may be open) */
static size_t raw_last_txnid(const char *dir)
{
	MDB_env *env;
	MDB_envinfo info;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_env_info(env, &info), 0);
	mdb_env_close(env);
	return info.me_last_txnid;
}

static void test_hold_mark(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	const char *error;
	time_t since = 1;
	size_t txnid;
	pid_t pid;
	int status;

	/* a new store has no mark */
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 0);
	assert_int_equal(since, 0);
	/* clearing an absent mark writes nothing */
	mw_store_unref(&s);
	txnid = raw_last_txnid(f->store_dir);
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_hold_mark_set(s, false, 500, &error), 0);
	mw_store_unref(&s);
	assert_int_equal(raw_last_txnid(f->store_dir), txnid);

	/* a mark set by another process (its own handle) is read by a
	   handle opened before it */
	s = open_ok(f->store_dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct mw_store *c = NULL;

		_exit(mw_store_open(f->store_dir, &c, &error) == 0 &&
		      mw_store_hold_mark_set(c, true, 1000, &error) == 1 ?
		      0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 1);
	assert_int_equal(since, 1000);
	/* setting it again keeps its time and writes nothing */
	mw_store_unref(&s);
	txnid = raw_last_txnid(f->store_dir);
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_hold_mark_set(s, true, 2000, &error), 0);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 1);
	assert_int_equal(since, 1000);
	mw_store_unref(&s);
	assert_int_equal(raw_last_txnid(f->store_dir), txnid);

	/* kept across opens; cleared in one write transaction */
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 1);
	assert_int_equal(mw_store_hold_mark_set(s, false, 3000, &error), 1);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 0);
	assert_int_equal(since, 0);
	mw_store_unref(&s);
	assert_int_equal(raw_last_txnid(f->store_dir), txnid + 1);
	/* set again: the new time */
	s = open_ok(f->store_dir);
	assert_int_equal(mw_store_hold_mark_set(s, true, 4000, &error), 1);
	assert_int_equal(mw_store_hold_mark_get(s, &since, &error), 1);
	assert_int_equal(since, 4000);
	mw_store_unref(&s);
}

/* ---- open / refcount ---- */

static void test_open_refcount(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s1, *s2, *s3;
	char other[256], real[PATH_MAX], alias[300], data[300];
	struct stat st;

	s1 = open_ok(f->store_dir);
	assert_int_equal(mw_store_get_refcount(s1), 1);
	assert_null(mw_store_get_reset(s1));
	assert_int_equal(mw_store_get_reset_time(s1), 0);
	/* the same directory through another spelling: same handle */
	snprintf(alias, sizeof(alias), "%s/user/../user/./mailward/", f->dir);
	s2 = open_ok(alias);
	assert_ptr_equal(s1, s2);
	assert_int_equal(mw_store_get_refcount(s1), 2);
	assert_non_null(realpath(f->store_dir, real));
	assert_string_equal(mw_store_get_path(s1), real);

	snprintf(other, sizeof(other), "%s/other", f->dir);
	s3 = open_ok(other);
	assert_ptr_not_equal(s1, s3);
	assert_int_equal(mw_store_get_refcount(s3), 1);

	/* modes: directory 0700, files 0600 (umask permitting) */
	assert_int_equal(stat(f->store_dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	snprintf(data, sizeof(data), "%s/data.mdb", f->store_dir);
	assert_int_equal(stat(data, &st), 0);
	assert_int_equal(st.st_mode & 077, 0);

	mw_store_unref(&s2);
	assert_null(s2);
	assert_int_equal(mw_store_get_refcount(s1), 1);
	mw_store_unref(&s1);
	mw_store_unref(&s3);
	mw_store_unref(&s3); /* NULL: no-op */

	/* reopen after close: a new handle that sees the same data */
	s1 = open_ok(f->store_dir);
	assert_int_equal(mw_store_get_refcount(s1), 1);
	mw_store_unref(&s1);
}

/* ---- devices ---- */

struct event_log {
	unsigned int count;
	enum mw_device_event events[16];
	struct mw_device_rec recs[16];
};

static void event_cb(enum mw_device_event event,
		     const struct mw_device_rec *rec, void *ctx)
{
	struct event_log *log = ctx;

	if (log->count < 16) {
		log->events[log->count] = event;
		log->recs[log->count] = *rec;
	}
	log->count++;
}

static void test_device_register(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec rec, rec2;
	struct event_log log;
	char id[MW_DEVICE_ID_HEX_SIZE];
	const char *error;

	dev_id(1, id);
	assert_int_equal(mw_store_device_get(s, id, &rec, &error), 0);

	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_register(s, id, "pho\x01ne \"x\"",
						  "pop3", 1000, 10, 0,
						  event_cb, &log, &rec,
						  &error), 1);
	assert_int_equal(log.count, 1);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_REGISTERED);
	assert_int_equal(rec.dev_no, 1);
	assert_string_equal(rec.id_hex, id);
	/* sanitized, not escaped: quotes stay, control bytes do not */
	assert_string_equal(rec.label, "pho\\x01ne \"x\"");
	assert_string_equal(rec.protocol, "pop3");
	assert_int_equal(rec.first_seen, 1000);
	assert_int_equal(rec.last_seen, 1000);

	/* known, seen < 60 s ago: read-only, nothing changes */
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_register(s, id, "new label", "imap",
						  1059, 10, 0, event_cb,
						  &log, &rec2, &error), 0);
	assert_int_equal(log.count, 0);
	assert_int_equal(rec2.last_seen, 1000);
	assert_string_equal(rec2.label, rec.label);

	/* known, seen >= 60 s ago: last_seen and label updated */
	assert_int_equal(mw_store_device_register(s, id, "new label", "imap",
						  1060, 10, 0, event_cb,
						  &log, &rec2, &error), 0);
	assert_int_equal(log.count, 0);
	assert_int_equal(rec2.dev_no, 1);
	assert_int_equal(rec2.first_seen, 1000);
	assert_int_equal(rec2.last_seen, 1060);
	assert_string_equal(rec2.label, "new label");
	assert_int_equal(mw_store_device_get(s, id, &rec, &error), 1);
	assert_int_equal(rec.last_seen, 1060);
	assert_string_equal(rec.protocol, "imap");

	/* second device gets the next number; uppercase hex is accepted */
	dev_id(2, id);
	for (char *p = id; *p != '\0'; p++) {
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	}
	assert_int_equal(mw_store_device_register(s, id, "b", "pop3", 2000,
						  10, 0, NULL, NULL, &rec,
						  &error), 1);
	assert_int_equal(rec.dev_no, 2);

	/* malformed ids */
	assert_int_equal(mw_store_device_get(s, "xyz", &rec, &error), -1);
	assert_non_null(strstr(error, "invalid device id"));
	assert_non_null(strstr(error, mw_store_get_path(s)));
	assert_int_equal(mw_store_device_register(s, NULL, "", "", 1, 1, 0,
						  NULL, NULL, NULL, &error),
			 -1);

	/* overlong label is truncated to MW_LABEL_MAX */
	{
		char longlabel[1000];

		memset(longlabel, 'L', sizeof(longlabel) - 1);
		longlabel[sizeof(longlabel) - 1] = '\0';
		dev_id(3, id);
		assert_int_equal(mw_store_device_register(
			s, id, longlabel, "a-protocol-name-that-is-long",
			3000, 10, 0, NULL, NULL, &rec, &error), 1);
		assert_int_equal(strlen(rec.label), MW_LABEL_MAX);
		assert_int_equal(strlen(rec.protocol), MW_PROTOCOL_MAX);
		assert_int_equal(mw_store_device_get(s, id, &rec2, &error), 1);
		assert_string_equal(rec2.label, rec.label);
	}
	mw_store_unref(&s);
}

static void add_msgs(struct mw_store *s, uint16_t dev_no, const char *mbox,
		     unsigned int count, time_t t)
{
	struct mw_batch *b = mw_batch_begin(s);
	char guid[64];
	unsigned int i;

	assert_non_null(b);
	for (i = 0; i < count; i++) {
		snprintf(guid, sizeof(guid), "msg-%u", i);
		mw_batch_msg_update(b, dev_no, mbox, guid, i + 1,
				    MW_MSG_RETRIEVED, t);
	}
	mw_batch_summary_set(b, dev_no, mbox, 42, count, 7, t);
	commit_ok(&b);
}

/* mw_store_msg_get_many() answers as mw_store_msg_get_key() does, query
   by query: found and not found, several devices, another mailbox's
   records, an unknown mailbox, many queries. */
static void test_msg_get_many(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, d2;
	struct mw_msg_query q[600];
	struct mw_msg_rec rec;
	const char *error;
	char guid[64];
	unsigned int i, n = 0, found = 0;
	int ret;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	add_msgs(s, d1.dev_no, MBOX_A, 200, 1000);
	add_msgs(s, d2.dev_no, MBOX_A, 50, 2000);
	add_msgs(s, d2.dev_no, MBOX_B, 300, 3000);
	/* msg-0 .. msg-299 for both devices in MBOX_A */
	for (i = 0; i < 300; i++) {
		snprintf(guid, sizeof(guid), "msg-%u", i);
		q[n].dev_no = d1.dev_no;
		mw_msg_key(guid, q[n++].key);
		q[n].dev_no = d2.dev_no;
		mw_msg_key(guid, q[n++].key);
	}
	q[0].found = true; /* reset by the call */
	assert_int_equal(mw_store_msg_get_many(s, MBOX_A, q, n, &error), 0);
	for (i = 0; i < n; i++) {
		ret = mw_store_msg_get_key(s, q[i].dev_no, MBOX_A, q[i].key,
					   &rec, &error);
		assert_int_equal(ret, q[i].found ? 1 : 0);
		if (!q[i].found)
			continue;
		found++;
		assert_memory_equal(&rec, &q[i].rec, sizeof(rec));
	}
	assert_int_equal(found, 200 + 50);
	assert_true(q[0].found && q[0].rec.retrieved == 1000);
	assert_true(q[1].found && q[1].rec.retrieved == 2000);
	assert_int_equal(q[1].rec.uid, 1);
	assert_string_equal(q[1].rec.mailbox_guid_hex, MBOX_A);
	assert_false(q[2 * 200].found);	/* msg-200 of d1 */
	/* an unknown mailbox has none; no query is nothing */
	assert_int_equal(mw_store_msg_get_many(
		s, "00000000000000000000000000000001", q, n, &error), 0);
	for (i = 0; i < n; i++)
		assert_false(q[i].found);
	assert_int_equal(mw_store_msg_get_many(s, MBOX_B, q, 0, &error), 0);
	/* a malformed GUID is an error */
	assert_int_equal(mw_store_msg_get_many(s, "xyz", q, n, &error), -1);
	assert_non_null(strstr(error, "invalid mailbox GUID 'xyz'"));
	mw_store_unref(&s);
}

static int collect_dev_cb(const struct mw_device_rec *rec, void *ctx);

static int register_limits(struct mw_store *s, unsigned int n, time_t now,
			   const struct mw_device_limits *limits,
			   struct event_log *log, struct mw_device_rec *rec_r)
{
	char id[MW_DEVICE_ID_HEX_SIZE], label[32];
	const char *error;
	int ret;

	dev_id(n, id);
	snprintf(label, sizeof(label), "device %u", n);
	if (log != NULL)
		memset(log, 0, sizeof(*log));
	ret = mw_store_device_register_limits(s, id, label, "pop3", now,
					      limits, log == NULL ? NULL :
					      event_cb, log, rec_r, &error);
	if (ret < 0)
		fail_msg("register failed: %s", error);
	return ret;
}

static unsigned int count_devices(struct mw_store *s)
{
	struct event_log log;
	const char *error;

	memset(&log, 0, sizeof(log));
	if (mw_store_device_iter(s, collect_dev_cb, &log, &error) < 0)
		fail_msg("iter failed: %s", error);
	return log.count;
}

static bool protect_dev_no_3(const struct mw_device_rec *rec, void *ctx)
{
	(*(unsigned int *)ctx)++;
	return rec->dev_no == 3;
}

/* A device table full of protected devices refuses a new device instead
   of evicting one; unprotected ones are evicted least recently seen
   first; expiry still removes idle devices. */
static void test_device_protection(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_limits limits;
	struct mw_device_rec rec;
	struct event_log log;
	unsigned int calls = 0;
	char id[MW_DEVICE_ID_HEX_SIZE];

	memset(&limits, 0, sizeof(limits));
	limits.max_devices = 3;
	limits.protect_secs = 100;
	assert_int_equal(register_limits(s, 1, 1000, &limits, NULL, &rec), 1);
	assert_int_equal(register_limits(s, 2, 1001, &limits, NULL, &rec), 1);
	assert_int_equal(register_limits(s, 3, 1002, &limits, NULL, &rec), 1);
	add_msgs(s, 1, MBOX_A, 4, 1000);
	/* all seen within 100 s: refused, nothing removed or stored */
	assert_int_equal(register_limits(s, 4, 1050, &limits, &log, &rec),
			 MW_DEVICE_REFUSED_FULL);
	assert_int_equal(log.count, 0);
	assert_int_equal(rec.dev_no, 0);
	dev_id(4, id);
	assert_string_equal(rec.id_hex, id);
	assert_string_equal(rec.label, "device 4");
	assert_int_equal(count_devices(s), 3);
	assert_int_equal(count_msgs(s, 1, NULL), 4);
	/* a known device is not refused */
	assert_int_equal(register_limits(s, 1, 1090, &limits, NULL, &rec), 0);
	/* at 1101: device 2 (100 s ago) may go, device 1 (11 s) and 3
	   (99 s) may not */
	assert_int_equal(register_limits(s, 4, 1101, &limits, &log, &rec), 1);
	assert_int_equal(log.count, 2);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_EVICTED);
	assert_int_equal(log.recs[0].dev_no, 2);
	assert_int_equal(rec.dev_no, 4);
	assert_int_equal(count_msgs(s, 1, NULL), 4);

	/* protected_cb (device 3): with every device old, the least
	   recently seen unprotected one goes (1, not 3) */
	limits.protect_secs = 0;
	limits.protected_cb = protect_dev_no_3;
	limits.protected_ctx = &calls;
	assert_int_equal(register_limits(s, 5, 5000, &limits, &log, &rec), 1);
	assert_true(calls > 0);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_EVICTED);
	assert_int_equal(log.recs[0].dev_no, 1);
	assert_int_equal(count_msgs(s, 1, NULL), 0);
	/* expiry removes even a protected device (an expired device no
	   longer counts), and stays when the new device is refused */
	limits.protect_secs = 1000000;
	limits.expire_secs = 4000;
	limits.max_devices = 1;
	assert_int_equal(register_limits(s, 6, 8200, &limits, &log, &rec),
			 MW_DEVICE_REFUSED_FULL);
	assert_int_equal(log.count, 2);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_EXPIRED);
	assert_int_equal(log.events[1], MW_DEVICE_EVENT_EXPIRED);
	assert_int_equal(count_devices(s), 1);
	limits.max_devices = 3;
	assert_int_equal(register_limits(s, 6, 8201, &limits, &log, &rec), 1);
	assert_int_equal(log.count, 1);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_REGISTERED);
	mw_store_unref(&s);
}

/* At most new_per_day new devices per UTC day; known ones always pass */
static void test_device_new_per_day(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_limits limits;
	struct mw_device_rec rec;
	struct event_log log;
	time_t day = 20000 * 86400;

	memset(&limits, 0, sizeof(limits));
	limits.max_devices = 10;
	limits.new_per_day = 2;
	assert_int_equal(register_limits(s, 1, day + 10, &limits, NULL, &rec), 1);
	assert_int_equal(register_limits(s, 2, day + 20, &limits, NULL, &rec), 1);
	assert_int_equal(register_limits(s, 3, day + 30, &limits, &log, &rec),
			 MW_DEVICE_REFUSED_RATE);
	assert_int_equal(log.count, 0);
	assert_int_equal(rec.dev_no, 0);
	assert_int_equal(register_limits(s, 1, day + 86399, &limits, NULL,
					 &rec), 0);
	assert_int_equal(count_devices(s), 2);
	/* the next UTC day */
	assert_int_equal(register_limits(s, 3, day + 86400, &limits, NULL,
					 &rec), 1);
	assert_int_equal(register_limits(s, 4, day + 86401, &limits, NULL,
					 &rec), 1);
	assert_int_equal(register_limits(s, 5, day + 86402, &limits, NULL,
					 &rec), MW_DEVICE_REFUSED_RATE);
	/* 0: unlimited */
	limits.new_per_day = 0;
	assert_int_equal(register_limits(s, 5, day + 86403, &limits, NULL,
					 &rec), 1);
	mw_store_unref(&s);
}

static void test_device_eviction(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, d2, d3, d4, rec;
	struct mw_summary_rec sum;
	struct event_log log;
	char id[MW_DEVICE_ID_HEX_SIZE];
	const char *error;

	d1 = register_ok(s, 1, 100, 3, 0, 1);
	d2 = register_ok(s, 2, 200, 3, 0, 1);
	d3 = register_ok(s, 3, 300, 3, 0, 1);
	assert_int_equal(d3.dev_no, 3);
	add_msgs(s, d2.dev_no, MBOX_A, 10, 250);
	add_msgs(s, d1.dev_no, MBOX_A, 5, 250);
	/* d1 seen again: now d2 is the least recently seen */
	(void)register_ok(s, 1, 400, 3, 0, 0);

	dev_id(4, id);
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_register(s, id, "four", "imap", 500,
						  3, 0, event_cb, &log, &d4,
						  &error), 1);
	assert_int_equal(log.count, 2);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_EVICTED);
	assert_string_equal(log.recs[0].id_hex, d2.id_hex);
	assert_int_equal(log.events[1], MW_DEVICE_EVENT_REGISTERED);
	assert_string_equal(log.recs[1].id_hex, id);
	/* the freed number is not reused: numbers only go up */
	assert_int_equal(d4.dev_no, 4);
	assert_int_equal(mw_store_device_get(s, d2.id_hex, &rec, &error), 0);
	/* the evicted device's records went with it, d1's stayed */
	assert_int_equal(count_msgs(s, d2.dev_no, NULL), 0);
	assert_int_equal(mw_store_summary_get(s, d2.dev_no, MBOX_A, &sum,
					      &error), 0);
	assert_int_equal(count_msgs(s, d4.dev_no, NULL), 0);
	assert_int_equal(count_msgs(s, d1.dev_no, NULL), 5);
	assert_int_equal(mw_store_device_get(s, d1.id_hex, &rec, &error), 1);
	assert_int_equal(mw_store_device_get(s, d3.id_hex, &rec, &error), 1);

	/* ties on last_seen: the lowest dev_no goes; max 1 keeps one */
	memset(&log, 0, sizeof(log));
	dev_id(5, id);
	assert_int_equal(mw_store_device_register(s, id, "five", "imap", 600,
						  1, 0, event_cb, &log, &rec,
						  &error), 1);
	assert_int_equal(log.count, 4); /* 3 evicted + registered */
	assert_string_equal(log.recs[0].id_hex, d3.id_hex); /* 300 */
	assert_string_equal(log.recs[1].id_hex, d1.id_hex); /* 400 */
	assert_string_equal(log.recs[2].id_hex, d4.id_hex); /* 500 */
	assert_int_equal(rec.dev_no, 5);
	assert_int_equal(count_msgs(s, -1, NULL), 0);
	mw_store_unref(&s);
}

static int collect_dev_cb(const struct mw_device_rec *rec, void *ctx)
{
	struct event_log *log = ctx;

	if (log->count < 16)
		log->recs[log->count] = *rec;
	log->count++;
	return 0;
}

static void test_device_expiry(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, d2, d3, d4;
	struct event_log log;
	char id[MW_DEVICE_ID_HEX_SIZE];
	const char *error;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 4000, 0, 0, 1);
	add_msgs(s, d1.dev_no, MBOX_A, 3, 100);

	/* registering d3 at 5000 with expiry 1000 s expires d1 (idle 4900 s)
	   but not d2 (idle 1000 s, not more) */
	dev_id(3, id);
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_register(s, id, "three", "pop3", 5000,
						  0, 1000, event_cb, &log, &d3,
						  &error), 1);
	assert_int_equal(log.count, 2);
	assert_int_equal(log.events[0], MW_DEVICE_EVENT_EXPIRED);
	assert_string_equal(log.recs[0].id_hex, d1.id_hex);
	assert_int_equal(d3.dev_no, 3);
	assert_int_equal(count_msgs(s, -1, NULL), 0);

	/* periodic expiry */
	d4 = register_ok(s, 4, 5500, 0, 0, 1);
	assert_int_equal(mw_store_device_expire(s, 5200, 0, NULL, NULL,
						&error), 0);
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_expire(s, 6400, 1000, event_cb, &log,
						&error), 2);
	assert_int_equal(log.count, 2); /* d2 (4000), d3 (5000) */
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_iter(s, collect_dev_cb, &log,
					      &error), 0);
	assert_int_equal(log.count, 1);
	assert_string_equal(log.recs[0].id_hex, d4.id_hex);
	(void)d2;
	mw_store_unref(&s);
}

static int stop_cb(const struct mw_device_rec *rec, void *ctx)
{
	(void)rec;
	(*(unsigned int *)ctx)++;
	return 1;
}

static void test_device_iter_forget(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec rec, removed;
	struct event_log log;
	const char *error;
	unsigned int n = 0, i;
	static const char *const ids[] = {
		"aaaaaa00000000000000000000000001",
		"aaaaaa11000000000000000000000002",
		"bbbbbb00000000000000000000000003",
	};

	for (i = 0; i < 3; i++) {
		assert_int_equal(mw_store_device_register(s, ids[i], "x",
							  "pop3", 100 + i, 0,
							  0, NULL, NULL, &rec,
							  &error), 1);
		add_msgs(s, rec.dev_no, MBOX_A, 4, 100);
		add_msgs(s, rec.dev_no, MBOX_B, 2, 100);
	}
	memset(&log, 0, sizeof(log));
	assert_int_equal(mw_store_device_iter(s, collect_dev_cb, &log,
					      &error), 0);
	assert_int_equal(log.count, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(log.recs[i].dev_no, i + 1);
	assert_int_equal(mw_store_device_iter(s, stop_cb, &n, &error), 1);
	assert_int_equal(n, 1);

	struct {
		const char *arg;
		int ret;
		const char *err; /* substring for -1 */
		uint16_t dev_no; /* removed */
	} cases[] = {
		{ "aaaaaa", -1, "ambiguous", 0 },
		{ "aaaaa", -1, "6 to 32", 0 },
		{ "aaaaaa1g", -1, "invalid", 0 },
		{ "cccccc", 0, NULL, 0 },
		{ "AAAAAA11", 1, NULL, 2 },
		{ "aaaaaa11", 0, NULL, 0 },
		{ "bbbbbb00000000000000000000000003", 1, NULL, 3 },
		{ "aaaaaa", 1, NULL, 1 },
		{ "bbbbbb00000000000000000000000003x", -1, "invalid", 0 },
		{ NULL, -1, "invalid", 0 },
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = mw_store_device_forget(s, cases[i].arg, &removed,
						 &error);

		if (ret != cases[i].ret)
			fail_msg("case %u (%s): got %d", i,
				 cases[i].arg == NULL ? "NULL" : cases[i].arg,
				 ret);
		if (ret < 0)
			assert_non_null(strstr(error, cases[i].err));
		if (ret == 1) {
			assert_int_equal(removed.dev_no, cases[i].dev_no);
			assert_int_equal(count_msgs(s, removed.dev_no, NULL),
					 0);
		}
	}
	assert_int_equal(count_msgs(s, -1, NULL), 0);
	mw_store_unref(&s);
}

/* ---- messages ---- */

static void test_msg_update_get(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, d2;
	struct mw_msg_rec rec;
	const char *error;
	unsigned int i;
	static const struct {
		int dev; /* 1 or 2 */
		const char *mbox, *guid;
		enum mw_msg_field field;
		time_t t;
		uint32_t uid;
	} ops[] = {
		{ 1, MBOX_A, "g1", MW_MSG_RETRIEVED, 100, 1 },
		{ 1, MBOX_A, "g1", MW_MSG_RETRIEVED, 200, 0 }, /* keeps 100 */
		{ 1, MBOX_A, "g1", MW_MSG_DELETED, 300, 0 },
		{ 1, MBOX_A, "g1", MW_MSG_DUE, 900, 5 },
		{ 1, MBOX_A, "g1", MW_MSG_DUE, 800, 0 },       /* overwrites */
		{ 2, MBOX_A, "g1", MW_MSG_DELETED, 50, 1 },
		{ 1, MBOX_B, "g1", MW_MSG_RETRIEVED, 70, 9 },  /* same GUID */
		{ 1, MBOX_A, "g2", MW_MSG_DUE, 0, 0 },         /* no record */
		{ 2, MBOX_B, "g3", MW_MSG_DUE, 10, 3 },
		{ 2, MBOX_B, "g3", MW_MSG_DUE, 0, 0 },         /* cleared */
	};
	static const struct {
		int dev;
		const char *mbox, *guid;
		int found;
		time_t retrieved, deleted, due;
		uint32_t uid;
	} expect[] = {
		{ 1, MBOX_A, "g1", 1, 100, 300, 800, 5 },
		{ 2, MBOX_A, "g1", 1, 0, 50, 0, 1 },
		{ 1, MBOX_B, "g1", 1, 70, 0, 0, 9 },
		{ 2, MBOX_B, "g1", 0, 0, 0, 0, 0 },
		{ 1, MBOX_A, "g2", 0, 0, 0, 0, 0 },
		{ 2, MBOX_B, "g3", 1, 0, 0, 0, 3 },
		{ 1, MBOX_C, "g1", 0, 0, 0, 0, 0 }, /* unknown mailbox */
	};

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		/* one batch per op, so "first time wins" crosses commits */
		struct mw_batch *b = mw_batch_begin(s);

		mw_batch_msg_update(b, ops[i].dev == 1 ? d1.dev_no : d2.dev_no,
				    ops[i].mbox, ops[i].guid, ops[i].uid,
				    ops[i].field, ops[i].t);
		assert_int_equal(mw_batch_count(b), 1);
		commit_ok(&b);
	}
	for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		unsigned char key[MW_MSG_KEY_SIZE];
		int ret = mw_store_msg_get(s, expect[i].dev == 1 ? d1.dev_no :
					   d2.dev_no, expect[i].mbox,
					   expect[i].guid, &rec, &error);

		if (ret != expect[i].found)
			fail_msg("expect[%u]: got %d (%s)", i, ret,
				 ret < 0 ? error : "");
		if (ret == 0)
			continue;
		assert_int_equal(rec.retrieved, expect[i].retrieved);
		assert_int_equal(rec.deleted, expect[i].deleted);
		assert_int_equal(rec.expunge_due, expect[i].due);
		assert_int_equal(rec.uid, expect[i].uid);
		assert_string_equal(rec.mailbox_guid_hex, expect[i].mbox);
		mw_msg_key(expect[i].guid, key);
		assert_memory_equal(rec.key, key, MW_MSG_KEY_SIZE);
	}
	/* same in one batch: first time wins within a batch too */
	{
		struct mw_batch *b = mw_batch_begin(s);

		mw_batch_msg_update(b, d2.dev_no, MBOX_C, "g9",
				    1, MW_MSG_RETRIEVED, 10);
		mw_batch_msg_update(b, d2.dev_no, MBOX_C, "g9",
				    2, MW_MSG_RETRIEVED, 20);
		commit_ok(&b);
		assert_int_equal(mw_store_msg_get(s, d2.dev_no, MBOX_C, "g9",
						  &rec, &error), 1);
		assert_int_equal(rec.retrieved, 10);
		assert_int_equal(rec.uid, 2);
	}
	/* bad mailbox GUID in a read */
	assert_int_equal(mw_store_msg_get(s, 1, "nothex", "g1", &rec, &error),
			 -1);
	assert_non_null(strstr(error, "invalid mailbox GUID"));
	mw_store_unref(&s);
}

struct iter_check {
	struct mw_store *store;
	unsigned int count, stop_after;
	int last_dev;
	uint32_t last_mbox;
	int nested_ret;
	const char *nested_error;
};

static int iter_check_cb(const struct mw_msg_rec *rec, void *ctx)
{
	struct iter_check *c = ctx;

	/* order: dev_no, mailbox_no */
	if (rec->dev_no < c->last_dev ||
	    (rec->dev_no == c->last_dev && rec->mailbox_no < c->last_mbox))
		c->last_dev = 99999; /* flag disorder */
	else {
		c->last_dev = rec->dev_no;
		c->last_mbox = rec->mailbox_no;
	}
	if (c->count == 0) {
		struct mw_device_rec drec;

		/* calls into the store from inside the read txn are refused */
		c->nested_ret = mw_store_device_get(
			c->store, "00000000000000000000000000000000", &drec,
			&c->nested_error);
	}
	c->count++;
	return c->stop_after != 0 && c->count >= c->stop_after;
}

static void test_msg_iter(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d[3];
	struct iter_check c;
	const char *error;
	unsigned int i;

	for (i = 0; i < 3; i++)
		d[i] = register_ok(s, i + 1, 100, 0, 0, 1);
	/* dev1: A 10, B 5; dev2: B 7; dev3: A 3, C 4 */
	add_msgs(s, d[0].dev_no, MBOX_A, 10, 100);
	add_msgs(s, d[0].dev_no, MBOX_B, 5, 100);
	add_msgs(s, d[1].dev_no, MBOX_B, 7, 100);
	add_msgs(s, d[2].dev_no, MBOX_C, 4, 100);
	add_msgs(s, d[2].dev_no, MBOX_A, 3, 100);

	static const struct {
		int dev; /* index into d, -1 = all */
		const char *mbox;
		unsigned int count;
	} cases[] = {
		{ -1, NULL, 29 },
		{ 0, NULL, 15 }, { 1, NULL, 7 }, { 2, NULL, 7 },
		{ -1, MBOX_A, 13 }, { -1, MBOX_B, 12 }, { -1, MBOX_C, 4 },
		{ 0, MBOX_A, 10 }, { 0, MBOX_C, 0 }, { 1, MBOX_A, 0 },
		{ 1, MBOX_B, 7 }, { 2, MBOX_C, 4 },
		{ -1, "99999999999999999999999999999999", 0 },
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned int n = count_msgs(s, cases[i].dev < 0 ? -1 :
					    d[cases[i].dev].dev_no,
					    cases[i].mbox);
		if (n != cases[i].count)
			fail_msg("case %u: %u records, expected %u", i, n,
				 cases[i].count);
	}
	assert_int_equal(count_msgs(s, 77, NULL), 0);

	memset(&c, 0, sizeof(c));
	c.store = s;
	assert_int_equal(mw_store_msg_iter(s, -1, NULL, iter_check_cb, &c,
					   &error), 0);
	assert_int_equal(c.count, 29);
	assert_int_not_equal(c.last_dev, 99999);
	assert_int_equal(c.nested_ret, -1);
	assert_non_null(strstr(c.nested_error, "nested"));
	/* the store works again after the iteration */
	assert_int_equal(count_msgs(s, -1, MBOX_A), 13);

	memset(&c, 0, sizeof(c));
	c.store = s;
	c.stop_after = 4;
	assert_int_equal(mw_store_msg_iter(s, -1, NULL, iter_check_cb, &c,
					   &error), 1);
	assert_int_equal(c.count, 4);

	assert_int_equal(mw_store_msg_iter(s, 70000, NULL, count_cb, &i,
					   &error), -1);
	mw_store_unref(&s);
}

static void test_prune(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, d2;
	struct mw_msg_rec rec;
	struct mw_summary_rec sum;
	struct mw_batch *b;
	unsigned char key[MW_MSG_KEY_SIZE];
	const char *error;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	add_msgs(s, d1.dev_no, MBOX_A, 10, 100);
	add_msgs(s, d2.dev_no, MBOX_A, 10, 100);
	add_msgs(s, d2.dev_no, MBOX_B, 10, 100);

	b = mw_batch_begin(s);
	mw_batch_msg_prune(b, MBOX_A, "msg-3");	/* both devices */
	mw_msg_key("msg-4", key);
	mw_batch_msg_prune_key(b, MBOX_A, key);
	mw_batch_msg_prune(b, MBOX_B, "msg-3");
	mw_batch_msg_prune(b, MBOX_A, "no-such-msg");
	mw_batch_msg_prune(b, MBOX_C, "msg-1");	/* unknown mailbox */
	commit_ok(&b);
	assert_int_equal(mw_store_msg_get(s, d1.dev_no, MBOX_A, "msg-3", &rec,
					  &error), 0);
	assert_int_equal(mw_store_msg_get(s, d2.dev_no, MBOX_A, "msg-3", &rec,
					  &error), 0);
	assert_int_equal(mw_store_msg_get(s, d2.dev_no, MBOX_A, "msg-4", &rec,
					  &error), 0);
	assert_int_equal(mw_store_msg_get(s, d2.dev_no, MBOX_A, "msg-5", &rec,
					  &error), 1);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 16);
	assert_int_equal(count_msgs(s, -1, MBOX_B), 9);

	/* mailbox deleted: all its records and summaries go */
	b = mw_batch_begin(s);
	mw_batch_mailbox_forget(b, MBOX_A);
	commit_ok(&b);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 0);
	assert_int_equal(count_msgs(s, -1, NULL), 9);
	assert_int_equal(mw_store_summary_get(s, d1.dev_no, MBOX_A, &sum,
					      &error), 0);
	assert_int_equal(mw_store_summary_get(s, d2.dev_no, MBOX_B, &sum,
					      &error), 1);
	/* and the mailbox can come back (gets a new number) */
	add_msgs(s, d1.dev_no, MBOX_A, 2, 100);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 2);
	mw_store_unref(&s);
}

static int mailbox_iter_cb(const char *guid_hex, void *ctx)
{
	char *seen = ctx;

	strcat(seen, guid_hex);
	strcat(seen, " ");
	return 0;
}

/* a mailbox whose GUID was regenerated keeps its records */
static void test_mailbox_name_rebind(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1;
	struct mw_summary_rec sum;
	struct mw_batch *b;
	char hex[MW_MAILBOX_GUID_HEX_SIZE], longname[MW_MAILBOX_NAME_MAX + 2];
	unsigned char k1[MW_MSG_KEY_SIZE], k2[MW_MSG_KEY_SIZE];
	const char *error;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	assert_int_equal(mw_store_mailbox_name_get(s, "INBOX", hex, &error), 0);
	assert_int_equal(mw_store_mailbox_name_set(s, "INBOX", NULL, MBOX_A,
						   &error), 0);
	assert_int_equal(mw_store_mailbox_name_get(s, "INBOX", hex, &error), 1);
	assert_string_equal(hex, MBOX_A);
	add_msgs(s, d1.dev_no, MBOX_A, 5, 100);
	b = mw_batch_begin(s);
	mw_batch_summary_set(b, d1.dev_no, MBOX_A, 7, 5, 0, 100);
	commit_ok(&b);

	/* INBOX is MBOX_B now and MBOX_A is gone: the records follow */
	assert_int_equal(mw_store_mailbox_name_set(s, "INBOX", MBOX_A, MBOX_B,
						   &error), 1);
	assert_int_equal(mw_store_mailbox_name_get(s, "INBOX", hex, &error), 1);
	assert_string_equal(hex, MBOX_B);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 0);
	assert_int_equal(count_msgs(s, -1, MBOX_B), 5);
	assert_int_equal(mw_store_summary_get(s, d1.dev_no, MBOX_B, &sum,
					      &error), 1);
	assert_int_equal(sum.uidvalidity, 7);
	/* again: nothing left to move */
	assert_int_equal(mw_store_mailbox_name_set(s, "INBOX", MBOX_A, MBOX_B,
						   &error), 0);

	/* the new GUID has records of its own: the old ones go */
	add_msgs(s, d1.dev_no, MBOX_C, 2, 100);
	assert_int_equal(mw_store_mailbox_name_set(s, "INBOX", MBOX_B, MBOX_C,
						   &error), 0);
	assert_int_equal(count_msgs(s, -1, MBOX_B), 0);
	assert_int_equal(count_msgs(s, -1, MBOX_C), 2);
	assert_int_equal(count_msgs(s, -1, NULL), 2);
	/* the store's mailboxes: MBOX_C only */
	{
		char seen[256] = "";

		assert_int_equal(mw_store_mailbox_iter(s, mailbox_iter_cb,
						       seen, &error), 0);
		assert_string_equal(seen, MBOX_C " ");
	}

	/* names out of range are errors, not crashes */
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(mw_store_mailbox_name_get(s, longname, hex, &error),
			 -1);
	assert_int_equal(mw_store_mailbox_name_set(s, "", NULL, MBOX_A,
						   &error), -1);
	assert_int_equal(mw_store_mailbox_name_set(s, "INBOX", NULL, "xyz",
						   &error), -1);

	/* "GUID/hash" keys share their first bytes with the GUID's key */
	mw_msg_key("abc", k1);
	mw_msg_key("abc/0123", k2);
	assert_memory_equal(k1, k2, MW_MSG_KEY_GUID_PART);
	mw_msg_key("abc/4567", k1);
	assert_memory_not_equal(k1, k2, MW_MSG_KEY_SIZE);
	mw_store_unref(&s);
}

static void test_summary_and_touch(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1, rec;
	struct mw_summary_rec sum;
	struct mw_batch *b;
	const char *error;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	assert_int_equal(mw_store_summary_get(s, d1.dev_no, MBOX_A, &sum,
					      &error), 0);
	b = mw_batch_begin(s);
	mw_batch_summary_set(b, d1.dev_no, MBOX_A, 1234, 99,
			     0x123456789abcULL, 5000);
	mw_batch_summary_set(b, 200, MBOX_A, 1, 1, 1, 1); /* no device */
	mw_batch_device_touch(b, d1.id_hex, 6000, 1, 10, 3);
	mw_batch_device_touch(b, d1.id_hex, 5500, 1, UINT32_MAX, 0);
	mw_batch_device_touch(b, "0000000000000000000000000000abcd", 1, 1,
			      1, 1); /* unknown device: ignored */
	commit_ok(&b);
	assert_int_equal(mw_store_summary_get(s, d1.dev_no, MBOX_A, &sum,
					      &error), 1);
	assert_int_equal(sum.uidvalidity, 1234);
	assert_int_equal(sum.highest_uid, 99);
	assert_true(sum.highestmodseq == 0x123456789abcULL);
	assert_int_equal(sum.time, 5000);
	assert_int_equal(mw_store_summary_get(s, 200, MBOX_A, &sum, &error),
			 0);

	assert_int_equal(mw_store_device_get(s, d1.id_hex, &rec, &error), 1);
	assert_int_equal(rec.last_seen, 6000); /* never lowered */
	assert_int_equal(rec.sessions, 2);
	assert_int_equal(rec.retrieved, UINT32_MAX); /* saturated */
	assert_int_equal(rec.deleted, 3);

	b = mw_batch_begin(s);
	mw_batch_summary_set(b, d1.dev_no, MBOX_A, 1235, 1, 2, 7000);
	commit_ok(&b);
	assert_int_equal(mw_store_summary_get(s, d1.dev_no, MBOX_A, &sum,
					      &error), 1);
	assert_int_equal(sum.uidvalidity, 1235);
	mw_store_unref(&s);
}

static void raw_put(const char *dir, const char *dbname,
		    const void *key, size_t klen,
		    const void *val, size_t vlen);

/* Deletes a raw key with plain LMDB (no mailward handle may be open). */
static void raw_del(const char *dir, const char *dbname,
		    const void *key, size_t klen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A session's records go to its own device only: the batch is bound to
   the device (id + number) that registered at session start; if that
   device is removed before the commit, its operations are dropped and
   counted, never given to a device that took its place. */
enum removal { RM_NONE, RM_EVICT, RM_EXPIRE, RM_FORGET, RM_FORGET_REREG };

static void test_batch_bound_device(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum removal removal;
		unsigned int dropped;	/* 3 records + summary + touch */
	} cases[] = {
		{ RM_NONE, 0 },
		{ RM_EVICT, 5 },
		{ RM_EXPIRE, 5 },
		{ RM_FORGET, 5 },
		{ RM_FORGET_REREG, 5 },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dir[300];
		struct mw_store *s;
		struct mw_device_rec phone, laptop, tablet, rec;
		struct mw_summary_rec sum;
		struct mw_batch *b;
		const char *error;
		unsigned int dropped = 99, max = 0;
		time_t expire = 0;

		snprintf(dir, sizeof(dir), "%s/case%u", f->dir, i);
		s = open_ok(dir);
		phone = register_ok(s, 1, 100, 2, 0, 1);
		laptop = register_ok(s, 2, 200, 2, 0, 1);

		/* the phone's session queues its records... */
		b = mw_batch_begin(s);
		mw_batch_bind_device(b, phone.id_hex, phone.dev_no, &dropped);
		assert_int_equal(dropped, 0);
		mw_batch_msg_update(b, phone.dev_no, MBOX_A, "m1", 1,
				    MW_MSG_RETRIEVED, 300);
		mw_batch_msg_update(b, phone.dev_no, MBOX_A, "m2", 2,
				    MW_MSG_RETRIEVED, 300);
		mw_batch_msg_update(b, phone.dev_no, MBOX_A, "m3", 3,
				    MW_MSG_DELETED, 300);
		mw_batch_summary_set(b, phone.dev_no, MBOX_A, 1, 3, 3, 300);
		mw_batch_device_touch(b, phone.id_hex, 300, 1, 2, 1);
		/* ...another device's record in the same batch is unbound */
		mw_batch_msg_update(b, laptop.dev_no, MBOX_A, "m1", 1,
				    MW_MSG_RETRIEVED, 300);

		/* ...while another session or doveadm removes the phone */
		switch (cases[i].removal) {
		case RM_NONE:
			break;
		case RM_EVICT:
			max = 2;
			break;
		case RM_EXPIRE:
			expire = 1000;
			(void)register_ok(s, 2, 1250, 0, 0, 0);
			break;
		case RM_FORGET:
		case RM_FORGET_REREG:
			assert_int_equal(mw_store_device_forget(
				s, phone.id_hex, NULL, &error), 1);
			break;
		}
		if (cases[i].removal == RM_FORGET_REREG) {
			/* the same id registers again: a new number */
			rec = register_ok(s, 1, 1200, 0, 0, 1);
			assert_int_equal(rec.dev_no, 3);
		}
		tablet = register_ok(s, 3, 1200, max, expire, 1);
		assert_true(tablet.dev_no != phone.dev_no);
		commit_ok(&b);
		assert_int_equal(dropped, cases[i].dropped);

		/* the tablet never has the phone's records */
		assert_int_equal(count_msgs(s, tablet.dev_no, NULL), 0);
		assert_int_equal(mw_store_summary_get(s, tablet.dev_no, MBOX_A,
						      &sum, &error), 0);
		assert_int_equal(mw_store_device_get(s, tablet.id_hex, &rec,
						     &error), 1);
		assert_int_equal(rec.sessions, 0);
		assert_int_equal(rec.retrieved, 0);
		assert_int_equal(count_msgs(s, laptop.dev_no, NULL), 1);
		if (cases[i].removal == RM_NONE) {
			assert_int_equal(count_msgs(s, phone.dev_no, NULL), 3);
			assert_int_equal(mw_store_device_get(
				s, phone.id_hex, &rec, &error), 1);
			assert_int_equal(rec.sessions, 1);
			assert_int_equal(rec.retrieved, 2);
		} else {
			/* nothing under the old number; a new registration
			   of the phone's id starts empty */
			assert_int_equal(count_msgs(s, phone.dev_no, NULL), 0);
			if (mw_store_device_get(s, phone.id_hex, &rec,
						&error) == 1) {
				assert_int_equal(rec.sessions, 0);
				assert_int_equal(rec.retrieved, 0);
				assert_int_equal(count_msgs(s, rec.dev_no,
							    NULL), 0);
			}
		}
		mw_store_unref(&s);
	}
}

static int first_rec_cb(const struct mw_msg_rec *rec, void *ctx)
{
	*(struct mw_msg_rec *)ctx = *rec;
	return 1;
}

/* After 65535 registrations device numbers are handed out again: a
   session that still holds a removed device's number reads the records
   of the device that holds it now, and every read says whose they are
   (dev_id), so that they are never taken as the removed device's; writes
   meant for the removed device are dropped (mw_batch_expect_device). */
static void test_dev_no_wrap_reads(void **state)
{
	struct fixture *f = *state;
	static const unsigned char next_65535[4] = { 0, 0, 0xff, 0xff };
	struct mw_device_rec phone, tablet;
	struct mw_msg_query q;
	struct mw_msg_rec rec;
	struct mw_store *s;
	struct mw_batch *b;
	const char *error;
	unsigned char key[MW_MSG_KEY_SIZE];

	s = open_ok(f->store_dir);
	phone = register_ok(s, 1, 100, 0, 0, 1);
	assert_int_equal(phone.dev_no, 1);
	add_msgs(s, phone.dev_no, MBOX_A, 2, 100);
	assert_int_equal(mw_store_msg_iter(s, phone.dev_no, MBOX_A,
					   first_rec_cb, &rec, &error), 1);
	assert_memory_equal(rec.dev_id, phone.id, MW_DEVICE_ID_SIZE);
	mw_store_unref(&s);

	/* 65534 registrations later (the counter as they leave it)... */
	raw_put(f->store_dir, "meta", "next_dev_no", 11, next_65535, 4);
	s = open_ok(f->store_dir);
	assert_int_equal(register_ok(s, 2, 200, 0, 0, 1).dev_no, 65535);
	/* ...the phone is removed while a session of it is open, and the
	   tablet gets its number */
	assert_int_equal(mw_store_device_forget(s, phone.id_hex, NULL,
						&error), 1);
	tablet = register_ok(s, 3, 300, 0, 0, 1);
	assert_int_equal(tablet.dev_no, phone.dev_no);
	b = mw_batch_begin(s);
	mw_batch_bind_device(b, tablet.id_hex, tablet.dev_no, NULL);
	mw_batch_msg_update(b, tablet.dev_no, MBOX_A, "t1", 7,
			    MW_MSG_RETRIEVED, 300);
	commit_ok(&b);

	/* the phone's session reads its number: the tablet's records */
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(mw_store_msg_iter(s, phone.dev_no, MBOX_A,
					   first_rec_cb, &rec, &error), 1);
	assert_memory_equal(rec.dev_id, tablet.id, MW_DEVICE_ID_SIZE);
	assert_memory_not_equal(rec.dev_id, phone.id, MW_DEVICE_ID_SIZE);
	assert_int_equal(mw_store_msg_iter(s, -1, NULL, first_rec_cb, &rec,
					   &error), 1);
	assert_memory_equal(rec.dev_id, tablet.id, MW_DEVICE_ID_SIZE);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(mw_store_msg_get(s, phone.dev_no, MBOX_A, "t1",
					  &rec, &error), 1);
	assert_memory_equal(rec.dev_id, tablet.id, MW_DEVICE_ID_SIZE);
	memset(&q, 0, sizeof(q));
	q.dev_no = phone.dev_no;
	mw_msg_key("t1", q.key);
	assert_int_equal(mw_store_msg_get_many(s, MBOX_A, &q, 1, &error), 0);
	assert_true(q.found);
	assert_memory_equal(q.rec.dev_id, tablet.id, MW_DEVICE_ID_SIZE);

	/* a write meant for the phone is dropped, one for the tablet not */
	b = mw_batch_begin(s);
	mw_batch_expect_device(b, phone.dev_no, phone.id);
	mw_batch_msg_update(b, phone.dev_no, MBOX_A, "p1", 8,
			    MW_MSG_RETRIEVED, 400);
	commit_ok(&b);
	assert_int_equal(count_msgs(s, tablet.dev_no, NULL), 1);
	b = mw_batch_begin(s);
	mw_batch_expect_device(b, tablet.dev_no, tablet.id);
	mw_msg_key("t1", key);
	mw_batch_msg_update_key(b, tablet.dev_no, MBOX_A, key, 7, MW_MSG_DUE,
				500);
	commit_ok(&b);
	assert_int_equal(mw_store_msg_get(s, tablet.dev_no, MBOX_A, "t1",
					  &rec, &error), 1);
	assert_int_equal(rec.expunge_due, 500);

	mw_store_unref(&s);
}

/* Device numbers: handed out in increasing order, never the number of a
   device removed since (also in stores written before the counter
   existed), wrapping after 65535 and skipping numbers in use. */
static void test_dev_no_allocation(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_device_rec d1, d2, d3, rec;
	static const unsigned char next_65534[4] = { 0, 0, 0xff, 0xfe };
	static const unsigned char next_bad[4] = { 0, 0x01, 0, 0 };
	char dir[300];
	const char *error;

	/* forget the highest number: the next device does not get it */
	s = open_ok(f->store_dir);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	assert_int_equal(mw_store_device_forget(s, d2.id_hex, NULL, &error),
			 1);
	d3 = register_ok(s, 3, 100, 0, 0, 1);
	assert_int_equal(d3.dev_no, 3);
	mw_store_unref(&s);

	/* near the top: 65534, 65535, then wraps to the lowest free one
	   (1 is in use by d1) */
	raw_put(f->store_dir, "meta", "next_dev_no", 11, next_65534, 4);
	s = open_ok(f->store_dir);
	assert_int_equal(register_ok(s, 4, 100, 0, 0, 1).dev_no, 65534);
	assert_int_equal(register_ok(s, 5, 100, 0, 0, 1).dev_no, 65535);
	assert_int_equal(register_ok(s, 6, 100, 0, 0, 1).dev_no, 2);
	assert_int_equal(register_ok(s, 7, 100, 0, 0, 1).dev_no, 4);
	(void)d1;
	mw_store_unref(&s);

	/* a counter out of range starts again at 1, skipping used ones */
	raw_put(f->store_dir, "meta", "next_dev_no", 11, next_bad, 4);
	s = open_ok(f->store_dir);
	assert_int_equal(register_ok(s, 8, 100, 0, 0, 1).dev_no, 5);
	mw_store_unref(&s);

	/* a store without the counter (older version): removing a device
	   first records max + 1, so its number is not the next one */
	snprintf(dir, sizeof(dir), "%s/old", f->dir);
	s = open_ok(dir);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	mw_store_unref(&s);
	raw_del(dir, "meta", "next_dev_no", 11);
	s = open_ok(dir);
	assert_int_equal(mw_store_device_forget(s, d2.id_hex, NULL, &error),
			 1);
	rec = register_ok(s, 3, 100, 0, 0, 1);
	assert_int_equal(rec.dev_no, 3);
	mw_store_unref(&s);
	/* eviction by the registration itself: the same (devices 1 and 3
	   seen at once: 1 is evicted, the new one gets 4) */
	raw_del(dir, "meta", "next_dev_no", 11);
	s = open_ok(dir);
	rec = register_ok(s, 4, 50, 2, 0, 1);
	assert_int_equal(rec.dev_no, 4);
	assert_int_equal(mw_store_device_get(s, d1.id_hex, &rec, &error), 0);
	mw_store_unref(&s);
}

static void test_batch_errors(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d1;
	struct mw_batch *b;
	const char *error;

	d1 = register_ok(s, 1, 100, 0, 0, 1);
	/* one bad argument rejects the whole batch */
	b = mw_batch_begin(s);
	mw_batch_msg_update(b, d1.dev_no, MBOX_A, "ok", 1, MW_MSG_RETRIEVED,
			    1);
	mw_batch_msg_update(b, d1.dev_no, "abc\"\n", "bad", 1,
			    MW_MSG_RETRIEVED, 1);
	mw_batch_device_touch(b, "zz", 1, 1, 1, 1);
	assert_int_equal(mw_batch_commit(&b, &error), -1);
	assert_null(b);
	assert_non_null(strstr(error, "invalid mailbox GUID 'abc\\x22\\x0a'"));
	assert_non_null(strstr(error, mw_store_get_path(s)));
	assert_int_equal(count_msgs(s, -1, NULL), 0);

	/* updates for devices that do not exist are dropped */
	b = mw_batch_begin(s);
	mw_batch_msg_update(b, 999, MBOX_A, "x", 1, MW_MSG_RETRIEVED, 1);
	mw_batch_msg_update(b, d1.dev_no, MBOX_A, "y", 1, MW_MSG_RETRIEVED, 1);
	commit_ok(&b);
	assert_int_equal(count_msgs(s, -1, NULL), 1);

	/* abort writes nothing; empty commit is fine */
	b = mw_batch_begin(s);
	mw_batch_msg_update(b, d1.dev_no, MBOX_A, "z", 1, MW_MSG_RETRIEVED, 1);
	mw_batch_abort(&b);
	assert_null(b);
	mw_batch_abort(&b);
	assert_int_equal(count_msgs(s, -1, NULL), 1);
	b = mw_batch_begin(s);
	commit_ok(&b);
	mw_store_unref(&s);
}

/* ---- map growth, size ---- */

static void test_map_growth(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_store_stat st;
	struct mw_device_rec d1, d2;
	struct mw_msg_rec rec;
	const char *error;
	char guid[64];
	unsigned int i, j;

	/* 64 KiB: not even enough for the databases at first */
	assert_int_equal(mw_store_open_mapsize(f->store_dir, 1, &s, &error),
			 0);
	assert_int_equal(mw_store_get_stat(s, &st, &error), 0);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	for (i = 0; i < 40; i++) {
		struct mw_batch *b = mw_batch_begin(s);

		for (j = 0; j < 1000; j++) {
			snprintf(guid, sizeof(guid), "grow-%u-%u", i, j);
			mw_batch_msg_update(b, (j & 1) ? d1.dev_no : d2.dev_no,
					    (i & 1) ? MBOX_A : MBOX_B, guid,
					    j, MW_MSG_RETRIEVED, 100 + i);
		}
		commit_ok(&b);
	}
	assert_int_equal(mw_store_get_stat(s, &st, &error), 0);
	print_message("map growth: %u grows, map now %zu bytes, %llu "
		      "records\n", st.map_grows, st.map_size,
		      (unsigned long long)st.msg_records);
	assert_true(st.map_grows >= 3);
	assert_true(st.map_size >= 512 * 1024);
	assert_int_equal(st.msg_records, 40000);
	assert_int_equal(count_msgs(s, -1, NULL), 40000);
	assert_int_equal(mw_store_msg_get(s, d2.dev_no, MBOX_B, "grow-38-500",
					  &rec, &error), 1);
	assert_int_equal(rec.retrieved, 138);
	mw_store_unref(&s);

	/* reopening with the default size sees everything */
	s = open_ok(f->store_dir);
	assert_int_equal(count_msgs(s, -1, NULL), 40000);
	mw_store_unref(&s);
}

struct bpr {
	double file;	/* used pages (file high-water mark) per record */
	double live;	/* used minus free pages per record */
	uint64_t used_pages;
};

static struct bpr bytes_per_record(struct mw_store *s, uint64_t records,
				   const char *what)
{
	struct mw_store_stat st;
	const char *error;
	struct bpr r;

	assert_int_equal(mw_store_get_stat(s, &st, &error), 0);
	assert_int_equal(st.msg_records, records);
	r.used_pages = st.used_pages;
	r.file = (double)(st.used_pages * st.page_size) / (double)records;
	r.live = (double)((st.used_pages - st.free_pages) * st.page_size) /
		(double)records;
	print_message("%s: %llu records, %llu pages of %zu bytes used "
		      "(%llu free), data.mdb %llu bytes: %.1f bytes/record "
		      "(%.1f live)\n", what, (unsigned long long)records,
		      (unsigned long long)st.used_pages, st.page_size,
		      (unsigned long long)st.free_pages,
		      (unsigned long long)st.file_size, r.file, r.live);
	return r;
}

static void update_all_deleted(struct mw_store *s, uint16_t dev1,
			       uint16_t dev2, time_t t)
{
	struct mw_batch *b;
	char guid[64];
	unsigned int i, j;

	for (i = 0; i < 100; i++) {
		b = mw_batch_begin(s);
		for (j = 0; j < 100; j++) {
			unsigned int n = i * 100 + j;

			snprintf(guid, sizeof(guid), "%08x%08x%016x",
				 n * 7919u, n, n);
			mw_batch_msg_update(b, dev1, MBOX_A, guid, 0,
					    MW_MSG_DUE, t);
			mw_batch_msg_update(b, dev2, MBOX_A, guid, 0,
					    MW_MSG_DUE, t);
		}
		commit_ok(&b);
	}
}

static void test_bytes_per_record(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_device_rec d1, d2;
	struct mw_batch *b;
	struct bpr r1, r2, r3;
	char guid[64], dir2[256];
	unsigned int i, j;

	/* 20000 records for 2 devices in one transaction */
	s = open_ok(f->store_dir);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	b = mw_batch_begin(s);
	for (i = 0; i < 10000; i++) {
		snprintf(guid, sizeof(guid), "%08x%08x%016x", i * 7919u,
			 i, i);
		mw_batch_msg_update(b, d1.dev_no, MBOX_A, guid, i + 1,
				    MW_MSG_RETRIEVED, 1000 + i);
		mw_batch_msg_update(b, d2.dev_no, MBOX_A, guid, i + 1,
				    MW_MSG_RETRIEVED, 1000 + i);
	}
	commit_ok(&b);
	r1 = bytes_per_record(s, 20000, "one transaction");
	assert_true(r1.file <= 64.0);

	/* then every record is rewritten in 100 transactions of 200, twice:
	   copy-on-write leaves freed pages in the file (reused, not lost),
	   so the file reaches a steady state, and the live data stays
	   within the target */
	update_all_deleted(s, d1.dev_no, d2.dev_no, 5000);
	r2 = bytes_per_record(s, 20000, "after 100 rewrite transactions");
	update_all_deleted(s, d1.dev_no, d2.dev_no, 6000);
	r3 = bytes_per_record(s, 20000, "after 200 rewrite transactions");
	assert_true(r2.live <= 64.0);
	assert_true(r3.live <= 64.0);
	assert_true(r3.file <= 128.0);
	assert_true(r3.used_pages <= r2.used_pages + r2.used_pages / 10);
	mw_store_unref(&s);

	/* realistic arrival: 200 sessions of 50 new messages, 2 devices,
	   5 mailboxes */
	snprintf(dir2, sizeof(dir2), "%s/sessions", f->dir);
	s = open_ok(dir2);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	d2 = register_ok(s, 2, 100, 0, 0, 1);
	for (i = 0; i < 200; i++) {
		static const char *const mboxes[] = {
			MBOX_A, MBOX_B, MBOX_C,
			"11111111111111111111111111111111",
			"22222222222222222222222222222222"
		};
		b = mw_batch_begin(s);
		for (j = 0; j < 50; j++) {
			unsigned int n = i * 50 + j;

			snprintf(guid, sizeof(guid), "sess-%u", n);
			mw_batch_msg_update(b, d1.dev_no, mboxes[n % 5], guid,
					    n, MW_MSG_RETRIEVED, 1000 + i);
			mw_batch_msg_update(b, d2.dev_no, mboxes[n % 5], guid,
					    n, MW_MSG_RETRIEVED, 1000 + i);
		}
		commit_ok(&b);
	}
	r1 = bytes_per_record(s, 20000, "200 session transactions");
	assert_true(r1.live <= 64.0);
	mw_store_unref(&s);
}

/* ---- corruption and unusable paths ---- */

static void make_populated_store(const char *dir, unsigned int count)
{
	struct mw_store *s = open_ok(dir);
	struct mw_device_rec d1 = register_ok(s, 1, 100, 0, 0, 1);

	add_msgs(s, d1.dev_no, MBOX_A, count, 100);
	mw_store_unref(&s);
}

/* A sound store whose data file ends before LMDB's last page number (a
   page handed out and freed in the same transaction is never written,
   as after a transaction that prunes many records) is not "truncated":
   opening it again moves nothing aside. */
static void test_store_size_high_water(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_device_rec d1;
	struct mw_batch *b;
	MDB_env *env;
	MDB_envinfo info;
	struct stat st;
	char data[340], guid[64];
	unsigned int i, round;
	bool shorter = false;
	pid_t pid;
	int status;

	s = open_ok(f->store_dir);
	d1 = register_ok(s, 1, 100, 0, 0, 1);
	for (round = 0; round < 4 && !shorter; round++) {
		add_msgs(s, d1.dev_no, MBOX_A, 1005, 100);
		b = mw_batch_begin(s);
		for (i = 0; i < 1005; i++) {
			snprintf(guid, sizeof(guid), "msg-%u", i);
			mw_batch_msg_prune(b, MBOX_A, guid);
		}
		mw_batch_device_touch(b, d1.id_hex, 1000 + round, 1, 0, 0);
		commit_ok(&b);
		snprintf(data, sizeof(data), "%s/data.mdb", f->store_dir);
		assert_int_equal(stat(data, &st), 0);
		assert_int_equal(mdb_env_create(&env), 0);
		assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
		assert_int_equal(mdb_env_open(env, f->store_dir, MDB_RDONLY,
					      0600), 0);
		assert_int_equal(mdb_env_info(env, &info), 0);
		mdb_env_close(env);
		shorter = (uint64_t)st.st_size <
			((uint64_t)info.me_last_pgno + 1) * 4096;
	}
	mw_store_unref(&s);
	/* (the case this test is about) */
	assert_true(shorter);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* (no cmocka failure in the child: it would go on running
		   the other tests) */
		const char *error;
		int ret = 1;

		if (mw_store_open(f->store_dir, &s, &error) < 0) {
			fprintf(stderr, "open failed: %s\n", error);
			_exit(1);
		}
		if (mw_store_get_reset(s) != NULL) {
			fprintf(stderr, "sound store moved aside: %s\n",
				mw_store_get_reset(s));
		} else if (mw_store_device_get(s, d1.id_hex, &d1,
					       &error) == 1) {
			ret = 0;
		}
		mw_store_unref(&s);
		_exit(ret);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void expect_open_error(const char *dir, const char *substr)
{
	struct mw_store *s = NULL;
	const char *error = NULL;

	if (mw_store_open(dir, &s, &error) == 0) {
		mw_store_unref(&s);
		fail_msg("open %s unexpectedly succeeded", dir);
	}
	assert_null(s);
	assert_non_null(error);
	print_message("expected error: %s\n", error);
	assert_non_null(strstr(error, dir));
	if (substr != NULL && strstr(error, substr) == NULL)
		fail_msg("error '%s' lacks '%s'", error, substr);
}

/* Opens dir, which holds a damaged store: the open moves the damaged
   data.mdb aside (kept, named data.mdb.corrupt.<UTC time>) and returns a
   fresh, working store. */
static void expect_reset_open(const char *dir, const char *substr)
{
	struct mw_store *s = NULL;
	struct mw_device_rec rec;
	const char *error = NULL, *moved;
	char data[300];
	struct stat st;

	if (mw_store_open(dir, &s, &error) < 0)
		fail_msg("open %s failed: %s", dir, error);
	moved = mw_store_get_reset(s);
	if (moved == NULL) {
		fail_msg("open %s: damage not detected", dir);
		return;
	}
	print_message("moved aside: %s\n", moved);
	assert_true(strlen(dir) + 20 < sizeof(data));
	strcpy(data, dir);
	strcat(data, "/data.mdb.corrupt.");
	assert_true(strncmp(moved, data, strlen(data)) == 0);
	assert_int_equal(stat(moved, &st), 0);	/* kept for forensics */
	if (substr != NULL)
		assert_non_null(strstr(moved, substr));
	/* fresh and working, and it says since when */
	assert_true(mw_store_get_reset_time(s) > 0);
	assert_int_equal(count_msgs(s, -1, NULL), 0);
	rec = register_ok(s, 7, 100, 0, 0, 1);
	assert_int_equal(rec.dev_no, 1);
	mw_store_unref(&s);
	/* the next open finds a sound store, which remembers the reset */
	s = open_ok(dir);
	assert_null(mw_store_get_reset(s));
	assert_true(mw_store_get_reset_time(s) > 0);
	mw_store_unref(&s);
}

static void overwrite(const char *path, off_t offset, size_t len, int byte,
		      unsigned int seed)
{
	unsigned char *buf = malloc(len);
	size_t i;
	int fd;

	assert_non_null(buf);
	for (i = 0; i < len; i++)
		buf[i] = byte >= 0 ? (unsigned char)byte :
			(unsigned char)(rand_r(&seed) >> 7);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, offset), (ssize_t)len);
	close(fd);
	free(buf);
}

/* Damage at open: every kind is detected, moved aside, replaced. Random
   bytes over the pages past the two meta pages make LMDB fault (SIGBUS,
   SIGSEGV) or report corruption; each case runs in a child process that
   must exit normally (never killed by a signal). */
static void test_corrupt_reset_at_open(void **state)
{
	struct fixture *f = *state;
	enum { TRUNCATE, WHOLE, META_ZERO, DATA_ZERO, DATA_RANDOM };
	static const struct {
		int kind;
		unsigned int seed;
	} cases[] = {
		{ TRUNCATE, 0 }, { WHOLE, 1 }, { META_ZERO, 0 },
		{ DATA_ZERO, 0 }, { DATA_RANDOM, 1 }, { DATA_RANDOM, 2 },
		{ DATA_RANDOM, 3 }, { DATA_RANDOM, 4 }, { DATA_RANDOM, 5 },
		{ DATA_RANDOM, 6 }, { DATA_RANDOM, 7 }, { DATA_RANDOM, 8 },
	};
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char dir[300], data[340];
		struct stat st;
		pid_t pid;
		int status;

		snprintf(dir, sizeof(dir), "%s/case%u", f->dir, i);
		snprintf(data, sizeof(data), "%s/data.mdb", dir);
		make_populated_store(dir, 2000);
		assert_int_equal(stat(data, &st), 0);
		switch (cases[i].kind) {
		case TRUNCATE:
			assert_int_equal(truncate(data, st.st_size / 2), 0);
			break;
		case WHOLE:
			overwrite(data, 0, (size_t)st.st_size, -1,
				  cases[i].seed);
			break;
		case META_ZERO:
			overwrite(data, 0, 8192, 0, 0);
			break;
		case DATA_ZERO:
			overwrite(data, 8192, (size_t)st.st_size - 8192, 0, 0);
			break;
		case DATA_RANDOM:
			overwrite(data, 8192, (size_t)st.st_size - 8192, -1,
				  cases[i].seed);
			break;
		}
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			expect_reset_open(dir, NULL);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status))
			fail_msg("case %u: child killed by signal %d", i,
				 WTERMSIG(status));
		if (WEXITSTATUS(status) != 0)
			fail_msg("case %u: child failed", i);
	}
}

/* Damage found while a handle is open (another process' restore, a disk
   error): the call fails naming the path the file was moved to, the
   handle stays unusable, and the next open starts afresh. */
static void test_corrupt_reset_in_use(void **state)
{
	struct fixture *f = *state;
	static const unsigned int seeds[] = { 11, 12, 13, 14 };
	unsigned int i;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char dir[300], data[340];
		struct stat st;
		pid_t pid;
		int status;

		snprintf(dir, sizeof(dir), "%s/use%u", f->dir, i);
		snprintf(data, sizeof(data), "%s/data.mdb", dir);
		make_populated_store(dir, 2000);
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct mw_store *s = open_ok(dir), *s2;
			struct mw_device_rec rec;
			const char *error = NULL;
			int ret;

			assert_null(mw_store_get_reset(s));
			assert_int_equal(stat(data, &st), 0);
			overwrite(data, 8192, (size_t)st.st_size - 8192, -1,
				  seeds[i]);
			ret = mw_store_msg_iter(s, -1, NULL, count_cb,
						&(unsigned int){ 0 }, &error);
			assert_int_equal(ret, -1);
			print_message("in use: %s\n", error);
			assert_non_null(strstr(error, "moved aside to"));
			assert_non_null(mw_store_get_reset(s));
			assert_int_equal(stat(mw_store_get_reset(s), &st), 0);
			/* dead handle: every call fails, nothing crashes */
			assert_int_equal(mw_store_device_iter(
				s, collect_dev_cb, &rec, &error), -1);
			/* a new open of the directory is a fresh store */
			s2 = open_ok(dir);
			assert_ptr_not_equal(s, s2);
			assert_null(mw_store_get_reset(s2));
			assert_true(mw_store_get_reset_time(s2) > 0);
			assert_int_equal(count_msgs(s2, -1, NULL), 0);
			mw_store_unref(&s2);
			mw_store_unref(&s);
			s = open_ok(dir);
			assert_null(mw_store_get_reset(s));
			mw_store_unref(&s);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status))
			fail_msg("seed %u: child killed by signal %d",
				 seeds[i], WTERMSIG(status));
		if (WEXITSTATUS(status) != 0)
			fail_msg("seed %u: child failed", seeds[i]);
	}
}

/* Writes raw values with plain LMDB (no mailward handle may be open). */
static void raw_put(const char *dir, const char *dbname,
		    const void *key, size_t klen,
		    const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_corrupt_values(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s, *s2;
	struct mw_device_rec rec;
	struct mw_summary_rec sum;
	struct mw_batch *b;
	unsigned char id[16], summary_key[6];
	char id_hex[33], dir[300];
	const char *error;
	static const unsigned char five[5] = { 1, 2, 3, 4, 5 };
	static const unsigned char format2[4] = { 0, 0, 0, 3 };
	char dir2[256];
	unsigned int i;
	static const char *const expect[] = {
		"corrupt device record", "corrupt device record",
		"corrupt summary", "corrupt device record",
	};

	memset(id, 0x42, sizeof(id));
	mw_hex_encode(id, sizeof(id), id_hex);
	mw_put_be16(summary_key, 1);
	mw_put_be32(summary_key + 2, 1);
	/* a malformed record: the call fails naming it and the path it was
	   moved to; the handle is dead; the next open is fresh */
	for (i = 0; i < 4; i++) {
		int ret;

		snprintf(dir, sizeof(dir), "%s/v%u", f->dir, i);
		make_populated_store(dir, 10);
		raw_put(dir, i == 2 ? "summaries" : "devices",
			i == 2 ? (const void *)summary_key : (const void *)id,
			i == 2 ? sizeof(summary_key) : sizeof(id),
			five, sizeof(five));
		s = open_ok(dir);
		switch (i) {
		case 0:
			ret = mw_store_device_get(s, id_hex, &rec, &error);
			break;
		case 1:
			ret = mw_store_device_register(s, id_hex, "x", "pop3",
						       1, 0, 0, NULL, NULL,
						       &rec, &error);
			break;
		case 2:
			ret = mw_store_summary_get(s, 1, MBOX_A, &sum,
						   &error);
			break;
		default:
			b = mw_batch_begin(s);
			mw_batch_msg_update(b, 1, MBOX_A, "new", 1,
					    MW_MSG_RETRIEVED, 1);
			ret = mw_batch_commit(&b, &error);
			break;
		}
		assert_int_equal(ret, -1);
		if (strstr(error, expect[i]) == NULL ||
		    strstr(error, "moved aside to") == NULL ||
		    strstr(error, mw_store_get_path(s)) == NULL)
			fail_msg("case %u: %s", i, error);
		assert_non_null(mw_store_get_reset(s));
		assert_int_equal(mw_store_device_iter(s, collect_dev_cb, &rec,
						      &error), -1);
		s2 = open_ok(dir);
		assert_int_equal(count_msgs(s2, -1, NULL), 0);
		mw_store_unref(&s2);
		mw_store_unref(&s);
	}

	/* unknown format version */
	snprintf(dir2, sizeof(dir2), "%s/fmt", f->dir);
	make_populated_store(dir2, 1);
	raw_put(dir2, "meta", "format", 6, format2, sizeof(format2));
	expect_open_error(dir2, "unsupported store format 3");
}

/* ---- format 1 (before the suppression mark) ---- */

/* Writes a store as mailward's format 1 wrote it, with plain LMDB and
   that format's layout (mw-store-lmdb-record.c before format 2): device
   1 (dev_no 1) and 2 (dev_no 2), mailbox MBOX_A as number 1, and per
   device n messages "msg-<i>" of 24-byte records (retrieved 100 + i,
   deleted 0 or 300, due 0 or 5000 + i, uid i + 1). */
static void write_format1_store(const char *dir, unsigned int n)
{
	static const char *const dbs[] = {
		"meta", "devices", "messages", "mailboxes", "mailbox_nos",
		"summaries"
	};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi[6];
	MDB_val k, v;
	unsigned char u32[4], dkey[6], rec[24], dev[34 + 4 + 8];
	unsigned char guid[16], id[16], mkey[MW_MSG_KEY_SIZE];
	char idhex[MW_DEVICE_ID_HEX_SIZE], msg[32];
	char parent[PATH_MAX];
	unsigned int i, d;

	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = '\0';
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	for (i = 0; i < 6; i++) {
		assert_int_equal(mdb_dbi_open(txn, dbs[i], MDB_CREATE |
			(i == 2 ? MDB_DUPSORT | MDB_DUPFIXED : 0), &dbi[i]), 0);
	}
#define PUT(db, kp, kl, vp, vl) do { \
		k.mv_data = (void *)(kp); k.mv_size = (kl); \
		v.mv_data = (void *)(vp); v.mv_size = (vl); \
		assert_int_equal(mdb_put(txn, dbi[db], &k, &v, 0), 0); \
	} while (0)
	mw_put_be32(u32, 1);
	PUT(0, "format", 6, u32, 4);
	mw_put_be32(u32, 2);
	PUT(0, "next_mailbox_no", 15, u32, 4);
	mw_put_be32(u32, 3);
	PUT(0, "next_dev_no", 11, u32, 4);
	assert_int_equal(mw_hex_decode(MBOX_A, guid, sizeof(guid)), 0);
	mw_put_be32(u32, 1);
	PUT(3, guid, 16, u32, 4);
	PUT(4, u32, 4, guid, 16);
	for (d = 1; d <= 2; d++) {
		dev_id(d, idhex);
		assert_int_equal(mw_hex_decode(idhex, id, sizeof(id)), 0);
		memset(dev, 0, sizeof(dev));
		mw_put_be16(dev, (uint16_t)d);
		mw_put_be64(dev + 4, 100);
		mw_put_be64(dev + 12, 100);
		dev[32] = 4;
		dev[33] = 8;
		memcpy(dev + 34, "pop3", 4);
		snprintf(msg, sizeof(msg), "device %u", d);
		memcpy(dev + 38, msg, 8);
		PUT(1, id, 16, dev, sizeof(dev));
		mw_put_be16(dkey, (uint16_t)d);
		mw_put_be32(dkey + 2, 1);
		for (i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "msg-%u", i);
			mw_msg_key(msg, mkey);
			memcpy(rec, mkey, sizeof(mkey));
			mw_put_be32(rec + 8, 100 + i);
			mw_put_be32(rec + 12, i % 2 == 0 ? 0 : 300);
			mw_put_be32(rec + 16, i % 3 == 0 ? 0 : 5000 + i);
			mw_put_be32(rec + 20, i + 1);
			PUT(2, dkey, 6, rec, sizeof(rec));
		}
	}
#undef PUT
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A format 1 store (written above by that layout) opens: it is upgraded
   in place to format 2 in one transaction, every record reads as it was
   written with the suppression mark absent (not noted), and the mark can
   then be set, changed and cleared (never creating a record). */
static void test_upgrade_format1(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_msg_rec rec;
	struct mw_batch *b;
	const char *error;
	char msg[32];
	unsigned int i, d, n = 300;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { 6, (void *)"format" }, v;

	write_format1_store(f->store_dir, n);
	s = open_ok(f->store_dir);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 2 * n);
	for (d = 1; d <= 2; d++) {
		for (i = 0; i < n; i++) {
			snprintf(msg, sizeof(msg), "msg-%u", i);
			assert_int_equal(mw_store_msg_get(s, (uint16_t)d,
				MBOX_A, msg, &rec, &error), 1);
			assert_int_equal(rec.retrieved, 100 + i);
			assert_int_equal(rec.deleted, i % 2 == 0 ? 0 : 300);
			assert_int_equal(rec.expunge_due,
					 i % 3 == 0 ? 0 : 5000 + i);
			assert_int_equal(rec.uid, i + 1);
			assert_int_equal(rec.noted, 0);
		}
	}
	/* the mark: set, changed, cleared; never a record of its own */
	b = mw_batch_begin(s);
	mw_batch_msg_update(b, 1, MBOX_A, "msg-1", 0, MW_MSG_NOTED,
			    MW_MSG_NOTED_HOLD);
	mw_batch_msg_update(b, 2, MBOX_A, "msg-2", 0, MW_MSG_NOTED,
			    MW_MSG_NOTED_HOLD);
	mw_batch_msg_update(b, 2, MBOX_A, "msg-2", 0, MW_MSG_NOTED,
			    MW_MSG_NOTED_FAIL_SAFE);
	mw_batch_msg_update(b, 1, MBOX_A, "no-such", 0, MW_MSG_NOTED,
			    MW_MSG_NOTED_HOLD);
	commit_ok(&b);
	assert_int_equal(mw_store_msg_get(s, 1, MBOX_A, "msg-1", &rec,
					  &error), 1);
	assert_int_equal(rec.noted, MW_MSG_NOTED_HOLD);
	assert_int_equal(rec.retrieved, 101);
	assert_int_equal(rec.deleted, 300);
	assert_int_equal(rec.expunge_due, 5001);
	assert_int_equal(rec.uid, 2);
	assert_int_equal(mw_store_msg_get(s, 2, MBOX_A, "msg-2", &rec,
					  &error), 1);
	assert_int_equal(rec.noted, MW_MSG_NOTED_FAIL_SAFE);
	assert_int_equal(mw_store_msg_get(s, 1, MBOX_A, "no-such", &rec,
					  &error), 0);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 2 * n);
	b = mw_batch_begin(s);
	mw_batch_msg_update(b, 1, MBOX_A, "msg-1", 0, MW_MSG_NOTED, 0);
	commit_ok(&b);
	assert_int_equal(mw_store_msg_get(s, 1, MBOX_A, "msg-1", &rec,
					  &error), 1);
	assert_int_equal(rec.noted, 0);
	assert_int_equal(rec.expunge_due, 5001);
	mw_store_unref(&s);

	/* the format is 2 now, and the store opens again as is */
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 10), 0);
	assert_int_equal(mdb_env_open(env, f->store_dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_int_equal(v.mv_size, 4);
	assert_int_equal(mw_get_be32(v.mv_data), 2);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	s = open_ok(f->store_dir);
	assert_int_equal(count_msgs(s, -1, MBOX_A), 2 * n);
	assert_int_equal(mw_store_msg_get(s, 2, MBOX_A, "msg-2", &rec,
					  &error), 1);
	assert_int_equal(rec.noted, MW_MSG_NOTED_FAIL_SAFE);
	mw_store_unref(&s);
}

static void test_unusable_paths(void **state)
{
	struct fixture *f = *state;
	char path[300];
	int fd;

	/* the directory is a regular file */
	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	expect_open_error(path, "not a directory");
	/* below a regular file */
	snprintf(path, sizeof(path), "%s/file/sub", f->dir);
	expect_open_error(path, "mkdir");
	/* data.mdb is a directory */
	snprintf(path, sizeof(path), "%s/dd", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dd/data.mdb", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/dd", f->dir);
	expect_open_error(path, "mdb_env_open");
	/* not writable even for root */
	expect_open_error("/proc/mailward-test/x", "mkdir");
	/* empty path */
	expect_open_error("", "invalid path");
}

/* ---- several processes ---- */

#define CHILD_BATCHES 200
#define CHILD_MSGS 5

static int child_writer(const char *dir, const char *id_hex, uint16_t dev_no,
			unsigned int child)
{
	struct mw_store *s;
	const char *error;
	char guid[64];
	unsigned int i, j;

	/* tiny map: both children grow it concurrently */
	if (mw_store_open_mapsize(dir, 64 * 1024, &s, &error) < 0)
		return 10;
	for (i = 0; i < CHILD_BATCHES; i++) {
		struct mw_batch *b = mw_batch_begin(s);

		if (b == NULL)
			return 11;
		for (j = 0; j < CHILD_MSGS; j++) {
			snprintf(guid, sizeof(guid), "child%u-%u-%u", child,
				 i, j);
			mw_batch_msg_update(b, dev_no, (i & 1) ? MBOX_A :
					    MBOX_B, guid, i, MW_MSG_RETRIEVED,
					    1000 + i);
		}
		mw_batch_device_touch(b, id_hex, 1000 + i, 1, CHILD_MSGS, 0);
		if (mw_batch_commit(&b, &error) < 0) {
			fprintf(stderr, "child %u: %s\n", child, error);
			return 12;
		}
	}
	mw_store_unref(&s);
	return 0;
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	struct mw_device_rec d[2], rec;
	struct mw_msg_rec mrec;
	const char *error;
	pid_t pids[2];
	unsigned int c, i, j;
	int status;
	char guid[64];

	d[0] = register_ok(s, 1, 100, 0, 0, 1);
	d[1] = register_ok(s, 2, 100, 0, 0, 1);
	/* the parent keeps its handle open across fork() */
	for (c = 0; c < 2; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0)
			_exit(child_writer(f->store_dir, d[c].id_hex,
					   d[c].dev_no, c));
	}
	for (c = 0; c < 2; c++) {
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(count_msgs(s, -1, NULL),
			 2 * CHILD_BATCHES * CHILD_MSGS);
	for (c = 0; c < 2; c++) {
		assert_int_equal(count_msgs(s, d[c].dev_no, NULL),
				 CHILD_BATCHES * CHILD_MSGS);
		assert_int_equal(mw_store_device_get(s, d[c].id_hex, &rec,
						     &error), 1);
		assert_int_equal(rec.sessions, CHILD_BATCHES);
		assert_int_equal(rec.retrieved, CHILD_BATCHES * CHILD_MSGS);
		assert_int_equal(rec.last_seen, 1000 + CHILD_BATCHES - 1);
		for (i = 0; i < CHILD_BATCHES; i += 37) {
			for (j = 0; j < CHILD_MSGS; j++) {
				snprintf(guid, sizeof(guid), "child%u-%u-%u",
					 c, i, j);
				assert_int_equal(mw_store_msg_get(
					s, d[c].dev_no, (i & 1) ? MBOX_A :
					MBOX_B, guid, &mrec, &error), 1);
				assert_int_equal(mrec.retrieved, 1000 + i);
			}
		}
	}
	mw_store_unref(&s);
}

/* One process' open and another's close of the same store, again and
   again, with no other user: LMDB 0.9.31 (Debian 13) lets the closing
   process destroy the lock file's mutexes while the other one attaches
   to them, which then failed its transactions with EINVAL ("mdb_txn_begin()
   failed: Invalid argument": a mail session in fail-safe mode). The
   bounded loop gives the race many chances; every open and read must
   work. */
#define OPEN_CLOSE_ROUNDS 2000
static int child_open_close(const char *dir)
{
	struct mw_store_stat st;
	struct mw_store *s;
	const char *error;
	unsigned int i, failed = 0;

	for (i = 0; i < OPEN_CLOSE_ROUNDS; i++) {
		if (mw_store_open(dir, &s, &error) < 0) {
			if (failed++ == 0)
				fprintf(stderr, "open: %s\n", error);
			continue;
		}
		if (mw_store_get_stat(s, &st, &error) < 0 && failed++ == 0)
			fprintf(stderr, "stat: %s\n", error);
		mw_store_unref(&s);
	}
	return failed == 0 ? 0 : 1;
}

static void test_open_close_race(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s = open_ok(f->store_dir);
	pid_t pids[2];
	unsigned int c;
	int status;

	/* created; then only the children have it open */
	mw_store_unref(&s);
	for (c = 0; c < 2; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0)
			_exit(child_open_close(f->store_dir));
	}
	for (c = 0; c < 2; c++) {
		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

static void test_map_resized_by_other(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	struct mw_store_stat st1, st2;
	struct mw_device_rec d;
	const char *error;
	pid_t pid;
	int status;

	assert_int_equal(mw_store_open_mapsize(f->store_dir, 64 * 1024, &s,
					       &error), 0);
	d = register_ok(s, 1, 100, 0, 0, 1);
	assert_int_equal(mw_store_get_stat(s, &st1, &error), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* grows the map far beyond the parent's mapping */
		int ret = 0;
		unsigned int i;

		for (i = 0; i < 20 && ret == 0; i++)
			ret = child_writer(f->store_dir, d.id_hex, d.dev_no,
					   i);
		_exit(ret);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the parent's next transaction sees MDB_MAP_RESIZED: handled */
	assert_int_equal(count_msgs(s, -1, NULL),
			 20 * CHILD_BATCHES * CHILD_MSGS);
	assert_int_equal(mw_store_get_stat(s, &st2, &error), 0);
	print_message("parent map %zu -> %zu bytes after the child grew it\n",
		      st1.map_size, st2.map_size);
	assert_true(st2.map_size > st1.map_size);
	add_msgs(s, d.dev_no, MBOX_C, 100, 5000);
	mw_store_unref(&s);
}

static int die_in_txn_cb(const struct mw_msg_rec *rec, void *ctx)
{
	(void)rec; (void)ctx;
	_exit(0); /* dies holding a read transaction */
}

static void test_stale_reader(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s, *s2;
	struct mw_device_rec d;
	const char *error;
	unsigned int others, cleared;
	pid_t pid;
	int status, round;

	s = open_ok(f->store_dir);
	d = register_ok(s, 1, 100, 0, 0, 1);
	add_msgs(s, d.dev_no, MBOX_A, 3, 100);

	for (round = 0; round < 2; round++) {
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct mw_store *cs;

			if (mw_store_open(f->store_dir, &cs, &error) < 0)
				_exit(20);
			if (cs == s) /* inherited handle must not be reused */
				_exit(21);
			(void)mw_store_msg_iter(cs, -1, NULL, die_in_txn_cb,
						NULL, &error);
			_exit(22);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);

		assert_int_equal(mw_store_reader_count_others(s, &others,
							      &error), 0);
		assert_int_equal(others, 1); /* the dead child's slot */
		if (round == 0) {
			/* opening again (cache hit) runs the reader check */
			s2 = open_ok(f->store_dir);
			assert_ptr_equal(s, s2);
			mw_store_unref(&s2);
		} else {
			assert_int_equal(mw_store_reader_check(s, &cleared,
							       &error), 0);
			assert_int_equal(cleared, 1);
		}
		assert_int_equal(mw_store_reader_count_others(s, &others,
							      &error), 0);
		assert_int_equal(others, 0);
	}
	/* and writers are fine */
	add_msgs(s, d.dev_no, MBOX_B, 3, 200);
	assert_int_equal(count_msgs(s, -1, NULL), 6);
	mw_store_unref(&s);
}

/* A child that takes every free reader slot with LMDB itself (MDB_NOTLS:
   a slot per read transaction; no reader check at open, unlike
   mw_store_open()) and dies holding them. Exits 0 when it filled the
   table (MDB_READERS_FULL after at least one slot), else 2 to 4. */
static void child_fill_reader_table(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	unsigned int n;
	int rc;

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
	    mdb_env_open(env, dir, MDB_NOMETASYNC | MDB_NOTLS, 0600) != 0)
		_exit(2);
	for (n = 0; n < 100000; n++) {
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
		if (rc != 0)
			_exit(rc == MDB_READERS_FULL && n > 0 ? 0 : 3);
	}
	_exit(4);
}

static int fork_wait(void (*fn)(const char *dir), const char *dir)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		fn(dir);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int first_device_cb(const struct mw_device_rec *rec, void *ctx)
{
	*(struct mw_device_rec *)ctx = *rec;
	return 1;
}

static void child_open_and_read(const char *dir)
{
	struct mw_device_rec d;
	struct mw_store *cs;
	const char *error;

	if (mw_store_open(dir, &cs, &error) < 0)
		_exit(10);
	_exit(mw_store_device_iter(cs, first_device_cb, &d, &error) == 1 ?
	      0 : 11);
}

/* mw-store.h: the reader slots of dead processes are recovered at open,
   also when they fill LMDB's whole reader table (MDB_READERS_FULL). */
static void test_reader_table_full_of_dead(void **state)
{
	struct fixture *f = *state;
	struct mw_store *s;
	unsigned int others;
	const char *error;

	/* kept open: the table is not reset by an exclusive open */
	s = open_ok(f->store_dir);
	(void)register_ok(s, 1, 100, 0, 0, 1);
	assert_int_equal(fork_wait(child_fill_reader_table, f->store_dir), 0);
	assert_int_equal(mw_store_reader_count_others(s, &others, &error), 0);
	assert_true(others > 100);
	/* a new process opens the store and reads */
	assert_int_equal(fork_wait(child_open_and_read, f->store_dir), 0);
	/* the filler's slots are free; the reader died holding its own */
	assert_int_equal(mw_store_reader_count_others(s, &others, &error), 0);
	assert_int_equal(others, 1);
	mw_store_unref(&s);
}

static void test_msg_key(void **state)
{
	unsigned char k1[MW_MSG_KEY_SIZE], k2[MW_MSG_KEY_SIZE];
	/* SHA-256("abc") = ba7816bf8f01cfea... */
	static const unsigned char abc[MW_MSG_KEY_SIZE] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea
	};

	(void)state;
	mw_msg_key("abc", k1);
	assert_memory_equal(k1, abc, sizeof(abc));
	mw_msg_key("abd", k2);
	assert_memory_not_equal(k1, k2, sizeof(k1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_key),
		cmocka_unit_test_setup_teardown(test_open_refcount, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_close_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inbox_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_mark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_register, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_protection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_no_wrap_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_size_high_water, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_new_per_day, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_iter_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msg_update_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msg_iter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_name_rebind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_summary_and_touch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_bound_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_no_allocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bytes_per_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_reset_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_reset_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unusable_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_resized_by_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_format1, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_msg_get_many, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reader_table_full_of_dead,
						setup, teardown),
	};

	mw_crypto_set_provider(&mw_crypto_openssl);
	return cmocka_run_group_tests(tests, NULL, NULL) == 0 ? 0 : 1;
}
