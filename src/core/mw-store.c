/* mailward core: per-user device state in LMDB (see mw-store.h).

   On-disk layout, format 1 (all integers big-endian):

   DB "meta":        "format" -> u32 (1); "next_mailbox_no" -> u32
   DB "devices":     id[16] -> dev_no u16, reserved u16, first_seen u64,
                     last_seen u64, sessions u32, retrieved u32, deleted u32,
                     protocol_len u8, label_len u8, protocol, label
   DB "messages":    MDB_DUPSORT|MDB_DUPFIXED
                     dev_no u16 + mailbox_no u32 (6 bytes) ->
                     one 24-byte duplicate per message:
                     msg key[8], retrieved u32, deleted u32, due u32, uid u32
                     Duplicates sort by their first 8 bytes (memcmp, the key
                     is unique per device+mailbox), so a message is found
                     with MDB_GET_BOTH_RANGE. DUPFIXED stores them packed
                     (no per-record node header), which keeps a record at
                     about 24-35 bytes of file instead of ~40-80 for a plain
                     14-byte key + 16-byte value (node header, page index
                     and 50-70 % page fill).
   DB "mailboxes":   mailbox GUID[16] -> mailbox_no u32
   DB "mailbox_nos": mailbox_no u32 -> mailbox GUID[16]
   DB "summaries":   dev_no u16 + mailbox_no u32 -> uidvalidity u32,
                     highest_uid u32, highestmodseq u64, time u64
   Mailbox names (in "meta"): "mbname:" + name -> mailbox GUID[16], the
                     GUID last seen for the name, so that records follow a
                     mailbox whose GUID was regenerated (lost index). */

#include "mw-store.h"
#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <lmdb.h>

/* error already formatted into store->error */
#define MW_RC_FAILED (-1)
/* a write transaction body changed nothing: abort it, nothing is written
   or synced, the call succeeds */
#define MW_RC_NOCHANGE (-2)

#define MAPSIZE_ROUND (64 * 1024)
#define DEV_FIXED_SIZE 34
#define DEV_VALUE_MAX (DEV_FIXED_SIZE + MW_PROTOCOL_MAX + MW_LABEL_MAX)
#define MSG_DBKEY_SIZE 6
#define MSG_DATA_SIZE 24
#define SUMMARY_SIZE 24
#define GUID_SIZE 16
#define MAX_DEV_NO 65535

struct mw_store {
	struct mw_store *next;
	unsigned int refcount;
	pid_t pid;
	char *path;
	MDB_env *env;
	MDB_dbi dbi_meta, dbi_devices, dbi_messages, dbi_mailboxes;
	MDB_dbi dbi_mailbox_nos, dbi_summaries;
	unsigned int map_grows;
	bool txn_active;
	MDB_txn *cur_txn;	/* the active transaction, for a fault */
	bool cur_txn_write;
	/* LMDB reported damage, or a decoder found a malformed record */
	bool corrupt;
	/* moved aside as corrupt: the handle only returns errors */
	bool dead;
	/* data.mdb as opened (a quarantine renames only this file) */
	dev_t data_dev;
	ino_t data_ino;
	/* the directory: handles are shared per directory */
	dev_t dir_dev;
	ino_t dir_ino;
	/* where a corrupt store was moved (this handle's doing), or NULL */
	char *reset_path;
	/* meta "reset_time": this store replaced a damaged one then */
	time_t reset_time;
	/* at open, an earlier store's lock file was there without its data
	   file (missing or empty): the state was lost, not new */
	bool data_lost;
	/* meta "inbox_mark": the user's INBOX carries this store's marker
	   (mw_store_set_inbox_marked()) */
	bool inbox_marked;
	/* this handle's open initialized the store (wrote its format) */
	bool created;
	char error[PATH_MAX + 512];
};

struct batch_op {
	enum {
		OP_MSG_UPDATE,
		OP_MSG_PRUNE,
		OP_MAILBOX_FORGET,
		OP_DEVICE_TOUCH,
		OP_SUMMARY_SET,
	} type;
	enum mw_msg_field field;
	uint16_t dev_no;
	unsigned char guid[GUID_SIZE];	/* mailbox GUID or device id */
	unsigned char key[MW_MSG_KEY_SIZE];
	uint32_t uid, a, b, c;
	uint64_t t, modseq;
	bool deferred;	/* device touch left for the end of the attempt */
};

struct mw_batch {
	struct mw_store *store;
	struct batch_op *ops;
	unsigned int count, alloc;
	bool failed;
	char error[256];

	/* mw_batch_bind_device(): the device that made the dev_no ops */
	bool bound;
	uint16_t bound_dev_no;
	unsigned char bound_id[MW_DEVICE_ID_SIZE];
	unsigned int *bound_dropped_r;
	unsigned int bound_dropped;
	bool bound_gone;

	/* state of one apply attempt */
	uint16_t *dev_nos;
	unsigned int dev_count;
	unsigned char devmap[(MAX_DEV_NO + 1) / 8];
	bool mbox_cached;
	unsigned char mbox_guid[GUID_SIZE];
	uint32_t mbox_no;
	bool changed;	/* something was put or deleted */
	uint64_t touch_secs;	/* mw_batch_set_touch_secs() */
};

static struct mw_store *stores = NULL;
static pid_t stores_pid = 0;
/* getpid() is a system call: cached, forgotten in a fork()ed child */
static pid_t cached_pid = 0;
static bool cached_pid_atfork = false;
static char open_error[PATH_MAX + 512];

static const char *const db_names[] = {
	"meta", "devices", "messages", "mailboxes", "mailbox_nos", "summaries"
};
#define DB_COUNT (sizeof(db_names) / sizeof(db_names[0]))

static MDB_dbi *store_dbi(struct mw_store *s, unsigned int i)
{
	MDB_dbi *const dbis[DB_COUNT] = {
		&s->dbi_meta, &s->dbi_devices, &s->dbi_messages,
		&s->dbi_mailboxes, &s->dbi_mailbox_nos, &s->dbi_summaries
	};
	return dbis[i];
}

static unsigned int db_flags(unsigned int i)
{
	return i == 2 ? (MDB_DUPSORT | MDB_DUPFIXED) : 0;
}

static void MW_ATTR_FORMAT(2, 3)
store_set_error(struct mw_store *s, const char *fmt, ...)
{
	char tmp[512];
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(tmp, sizeof(tmp), fmt, args);
	va_end(args);
	(void)snprintf(s->error, sizeof(s->error), "mailward store %s: %s",
		       s->path, tmp);
}

static void MW_ATTR_FORMAT(1, 2) set_open_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(open_error, sizeof(open_error), fmt, args);
	va_end(args);
}

static int store_fail(struct mw_store *s, const char **error_r)
{
	*error_r = s->error;
	return -1;
}

/* A damaged store: the error is set and the store will be moved aside
   when the public call returns. */
static void MW_ATTR_FORMAT(2, 3)
store_set_corrupt(struct mw_store *s, const char *fmt, ...)
{
	char tmp[512];
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(tmp, sizeof(tmp), fmt, args);
	va_end(args);
	store_set_error(s, "%s", tmp);
	s->corrupt = true;
}

static bool lmdb_rc_is_corrupt(int rc)
{
	return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
		rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
		/* a read transaction whose page fetch failed */
		rc == MDB_BAD_TXN;
}

/* ---- fault guard ----

   LMDB trusts page contents: a damaged data page (disk corruption, a bad
   restore) can make it read outside the map (SIGSEGV), beyond the end of
   the file (SIGBUS) or fail an assertion (abort). Every public function
   that touches the environment runs under a guard: such a fault while
   the guard is active jumps back to the public function, which moves the
   store aside (store_quarantine) and returns an error, so a damaged store
   never crashes the process, let alone every login of its user.

   The handlers are installed once per process while a handle exists (no
   system call per store call); a fault outside a guard (another bug, or
   a callback of the caller) restores the previous disposition and
   re-executes, so it crashes as it would have without mailward.
   Callbacks of the caller run with the guard suspended. */

static sigjmp_buf *guard_jmp = NULL;
static volatile sig_atomic_t guard_signo = 0;
static unsigned int guard_handlers = 0;
static struct sigaction guard_old_segv, guard_old_bus;

static void store_fault_handler(int signo, siginfo_t *si, void *uctx)
{
	sigjmp_buf *jmp = guard_jmp;

	(void)si;
	(void)uctx;
	if (jmp != NULL) {
		guard_jmp = NULL;
		guard_signo = signo;
		siglongjmp(*jmp, 1);
	}
	/* not inside the store: let the fault happen as without us */
	(void)sigaction(signo, signo == SIGBUS ? &guard_old_bus :
			&guard_old_segv, NULL);
}

static void store_assert_handler(MDB_env *env, const char *msg)
{
	sigjmp_buf *jmp = guard_jmp;

	(void)env;
	(void)msg;
	if (jmp != NULL) {
		guard_jmp = NULL;
		guard_signo = SIGABRT;
		siglongjmp(*jmp, 1);
	}
	/* LMDB calls abort() after this returns */
}

static void guard_handlers_ref(void)
{
	struct sigaction sa;

	if (guard_handlers++ > 0)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = store_fault_handler;
	/* NODEFER: the jump out leaves the signal unblocked */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGSEGV, &sa, &guard_old_segv);
	(void)sigaction(SIGBUS, &sa, &guard_old_bus);
}

static void guard_handlers_unref(void)
{
	if (guard_handlers == 0 || --guard_handlers > 0)
		return;
	(void)sigaction(SIGSEGV, &guard_old_segv, NULL);
	(void)sigaction(SIGBUS, &guard_old_bus, NULL);
}

/* Around callbacks of the caller: their faults are not the store's. */
#define GUARD_SUSPEND(saved) \
	do { (saved) = guard_jmp; guard_jmp = NULL; } while (0)
#define GUARD_RESUME(saved) \
	do { guard_jmp = (saved); } while (0)

static int store_quarantine(struct mw_store *s, bool faulted,
			    const char *why);

/* Runs expr (an int-returning call on store s) under the fault guard and
   returns its result from the enclosing function; nested use runs expr
   directly. A fault or a detected corruption moves the store aside. */
#define STORE_GUARDED(s, error_r, expr) do { \
	sigjmp_buf guard_buf_; \
	volatile int guard_ret_; \
	if (guard_jmp != NULL) \
		return (expr); \
	if ((s)->dead) \
		return store_fail((s), (error_r)); \
	if (sigsetjmp(guard_buf_, 0) != 0) { \
		(void)store_quarantine((s), true, guard_signo == SIGBUS ? \
			"bus error reading it" : guard_signo == SIGABRT ? \
			"LMDB assertion failed" : \
			"segmentation fault reading it"); \
		return store_fail((s), (error_r)); \
	} \
	guard_jmp = &guard_buf_; \
	guard_ret_ = (expr); \
	guard_jmp = NULL; \
	if (guard_ret_ < 0 && (s)->corrupt && !(s)->dead) { \
		(void)store_quarantine((s), false, NULL); \
		*(error_r) = (s)->error; \
	} \
	return guard_ret_; \
} while (0)

static void store_pid_atfork_child(void)
{
	cached_pid = 0;
}

static pid_t store_getpid(void)
{
	if (!cached_pid_atfork) {
		/* (handlers of a plugin are removed when it is unloaded) */
		if (pthread_atfork(NULL, NULL, store_pid_atfork_child) != 0)
			return getpid();	/* no handler: no cache */
		cached_pid_atfork = true;
	}
	if (cached_pid == 0)
		cached_pid = getpid();
	return cached_pid;
}

/* ---- transactions ---- */

static int store_txn_begin(struct mw_store *s, unsigned int flags,
			   MDB_txn **txn_r)
{
	unsigned int attempt;
	int rc;

	if (s->pid != store_getpid()) {
		store_set_error(s, "handle inherited over fork() used");
		return -1;
	}
	if (s->txn_active) {
		store_set_error(s, "nested store call (from an iteration "
				"callback?)");
		return -1;
	}
	for (attempt = 0;; attempt++) {
		rc = mdb_txn_begin(s->env, NULL, flags, txn_r);
		if (rc != MDB_MAP_RESIZED || attempt >= 3)
			break;
		/* another process grew the map: adopt its size */
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc != 0)
			break;
	}
	if (rc != 0) {
		store_set_error(s, "mdb_txn_begin() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	s->txn_active = true;
	s->cur_txn = *txn_r;
	s->cur_txn_write = (flags & MDB_RDONLY) == 0;
	return 0;
}

static void store_txn_abort(struct mw_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	s->txn_active = false;
	s->cur_txn = NULL;
}

static int store_txn_commit(struct mw_store *s, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn); /* frees txn even on failure */

	s->txn_active = false;
	s->cur_txn = NULL;
	if (lmdb_rc_is_corrupt(rc))
		s->corrupt = true;
	return rc;
}

static int store_grow(struct mw_store *s)
{
	MDB_envinfo info;
	size_t newsize;
	int rc;

	rc = mdb_env_info(s->env, &info);
	if (rc != 0) {
		store_set_error(s, "mdb_env_info() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if ((uint64_t)info.me_mapsize >= MW_STORE_MAX_MAPSIZE) {
		store_set_error(s, "store full: map size reached the limit "
				"of %llu bytes",
				(unsigned long long)MW_STORE_MAX_MAPSIZE);
		return -1;
	}
	newsize = info.me_mapsize * 2;
	if ((uint64_t)newsize > MW_STORE_MAX_MAPSIZE)
		newsize = (size_t)MW_STORE_MAX_MAPSIZE;
	rc = mdb_env_set_mapsize(s->env, newsize);
	if (rc != 0) {
		store_set_error(s, "mdb_env_set_mapsize(%zu) failed: %s",
				newsize, mdb_strerror(rc));
		return -1;
	}
	s->map_grows++;
	return 0;
}

/* A write transaction body: returns 0, an LMDB/errno code, or
   MW_RC_FAILED with store->error set. Must be repeatable: it may run
   again from scratch after MDB_MAP_FULL. */
typedef int store_txn_fn(struct mw_store *s, MDB_txn *txn, void *ctx);

static int store_write(struct mw_store *s, const char *what,
		       store_txn_fn *fn, void *ctx)
{
	MDB_txn *txn;
	int rc;

	for (;;) {
		if (store_txn_begin(s, 0, &txn) < 0)
			return -1;
		rc = fn(s, txn, ctx);
		if (rc == MW_RC_NOCHANGE) {
			/* read-only in effect: no page written, no sync */
			store_txn_abort(s, txn);
			return 0;
		}
		if (rc == 0)
			rc = store_txn_commit(s, txn);
		else
			store_txn_abort(s, txn);
		if (rc == 0)
			return 0;
		if (rc == MDB_MAP_FULL) {
			if (store_grow(s) < 0)
				return -1;
			continue;
		}
		if (rc != MW_RC_FAILED) {
			store_set_error(s, "%s failed: %s", what,
					mdb_strerror(rc));
			if (lmdb_rc_is_corrupt(rc))
				s->corrupt = true;
		}
		return -1;
	}
}

/* Reports an LMDB error of a read operation. */
static int store_read_error(struct mw_store *s, const char *what, int rc)
{
	if (rc != MW_RC_FAILED) {
		store_set_error(s, "%s failed: %s", what, mdb_strerror(rc));
		if (lmdb_rc_is_corrupt(rc))
			s->corrupt = true;
	}
	return -1;
}

/* ---- encoding ---- */

static void msg_dbkey(unsigned char k[MSG_DBKEY_SIZE], uint16_t dev_no,
		      uint32_t mailbox_no)
{
	mw_put_be16(k, dev_no);
	mw_put_be32(k + 2, mailbox_no);
}

static void dev_rec_set_id(struct mw_device_rec *rec, const unsigned char *id)
{
	memcpy(rec->id, id, MW_DEVICE_ID_SIZE);
	mw_hex_encode(id, MW_DEVICE_ID_SIZE, rec->id_hex);
}

static size_t dev_encode(const struct mw_device_rec *rec,
			 unsigned char buf[DEV_VALUE_MAX])
{
	size_t plen = strlen(rec->protocol), llen = strlen(rec->label);

	mw_put_be16(buf, rec->dev_no);
	mw_put_be16(buf + 2, 0);
	mw_put_be64(buf + 4, mw_time_to_u64(rec->first_seen));
	mw_put_be64(buf + 12, mw_time_to_u64(rec->last_seen));
	mw_put_be32(buf + 20, rec->sessions);
	mw_put_be32(buf + 24, rec->retrieved);
	mw_put_be32(buf + 28, rec->deleted);
	buf[32] = (unsigned char)plen;
	buf[33] = (unsigned char)llen;
	memcpy(buf + DEV_FIXED_SIZE, rec->protocol, plen);
	memcpy(buf + DEV_FIXED_SIZE + plen, rec->label, llen);
	return DEV_FIXED_SIZE + plen + llen;
}

static int dev_decode(struct mw_store *s, const MDB_val *key,
		      const MDB_val *val, struct mw_device_rec *rec)
{
	const unsigned char *p = val->mv_data;
	size_t plen, llen;

	memset(rec, 0, sizeof(*rec));
	if (key->mv_size != MW_DEVICE_ID_SIZE ||
	    val->mv_size < DEV_FIXED_SIZE) {
		store_set_corrupt(s, "corrupt device record (key %zu, value %zu "
				"bytes)", key->mv_size, val->mv_size);
		return MW_RC_FAILED;
	}
	plen = p[32];
	llen = p[33];
	if (plen > MW_PROTOCOL_MAX || llen > MW_LABEL_MAX ||
	    val->mv_size != DEV_FIXED_SIZE + plen + llen ||
	    mw_get_be16(p) == 0) {
		store_set_corrupt(s, "corrupt device record (value %zu bytes)",
				val->mv_size);
		return MW_RC_FAILED;
	}
	dev_rec_set_id(rec, key->mv_data);
	rec->dev_no = mw_get_be16(p);
	rec->first_seen = mw_time_from_u64(mw_get_be64(p + 4));
	rec->last_seen = mw_time_from_u64(mw_get_be64(p + 12));
	rec->sessions = mw_get_be32(p + 20);
	rec->retrieved = mw_get_be32(p + 24);
	rec->deleted = mw_get_be32(p + 28);
	/* stored strings were sanitized when written; sanitizing again is
	   a no-op on clean data and keeps a tampered file harmless */
	{
		char tmp[MW_LABEL_MAX + 1];

		memcpy(tmp, p + DEV_FIXED_SIZE, plen);
		tmp[plen] = '\0';
		(void)mw_sanitize(tmp, rec->protocol, sizeof(rec->protocol));
		memcpy(tmp, p + DEV_FIXED_SIZE + plen, llen);
		tmp[llen] = '\0';
		(void)mw_sanitize(tmp, rec->label, sizeof(rec->label));
	}
	return 0;
}

static void msg_decode(const unsigned char *k, const unsigned char *d,
		       struct mw_msg_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->dev_no = mw_get_be16(k);
	rec->mailbox_no = mw_get_be32(k + 2);
	memcpy(rec->key, d, MW_MSG_KEY_SIZE);
	rec->retrieved = (time_t)mw_get_be32(d + 8);
	rec->deleted = (time_t)mw_get_be32(d + 12);
	rec->expunge_due = (time_t)mw_get_be32(d + 16);
	rec->uid = mw_get_be32(d + 20);
}

/* ---- small DB helpers (return 0, MDB_NOTFOUND, error code) ---- */

static int mailbox_lookup(struct mw_store *s, MDB_txn *txn,
			  const unsigned char guid[GUID_SIZE],
			  uint32_t *no_r)
{
	MDB_val k = { GUID_SIZE, (void *)guid }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_mailboxes, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4 || mw_get_be32(v.mv_data) == 0) {
		store_set_corrupt(s, "corrupt mailbox record (%zu bytes)",
				v.mv_size);
		return MW_RC_FAILED;
	}
	*no_r = mw_get_be32(v.mv_data);
	return 0;
}

static int meta_get_u32(struct mw_store *s, MDB_txn *txn, const char *name,
			uint32_t *value_r)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != 4) {
		store_set_corrupt(s, "corrupt meta record %s (%zu bytes)",
				name, v.mv_size);
		return MW_RC_FAILED;
	}
	*value_r = mw_get_be32(v.mv_data);
	return 0;
}

static int meta_put_u32(struct mw_store *s, MDB_txn *txn, const char *name,
			uint32_t value)
{
	unsigned char buf[4];
	MDB_val k = { strlen(name), (void *)name }, v = { 4, buf };

	mw_put_be32(buf, value);
	return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

static int mailbox_lookup_or_create(struct mw_store *s, MDB_txn *txn,
				    const unsigned char guid[GUID_SIZE],
				    uint32_t *no_r)
{
	unsigned char nobuf[4];
	MDB_val k = { GUID_SIZE, (void *)guid }, v = { 4, nobuf };
	MDB_val k2 = { 4, nobuf }, v2 = { GUID_SIZE, (void *)guid };
	uint32_t next;
	int rc;

	rc = mailbox_lookup(s, txn, guid, no_r);
	if (rc != MDB_NOTFOUND)
		return rc;
	rc = meta_get_u32(s, txn, "next_mailbox_no", &next);
	if (rc == MDB_NOTFOUND)
		next = 1;
	else if (rc != 0)
		return rc;
	if (next == 0 || next == UINT32_MAX) {
		store_set_error(s, "mailbox numbers exhausted");
		return MW_RC_FAILED;
	}
	mw_put_be32(nobuf, next);
	if ((rc = mdb_put(txn, s->dbi_mailboxes, &k, &v, 0)) != 0 ||
	    (rc = mdb_put(txn, s->dbi_mailbox_nos, &k2, &v2, 0)) != 0 ||
	    (rc = meta_put_u32(s, txn, "next_mailbox_no", next + 1)) != 0)
		return rc;
	*no_r = next;
	return 0;
}

/* Deletes every record with the 2-byte dev_no prefix from dbi. */
static int delete_dev_prefix(MDB_txn *txn, MDB_dbi dbi, uint16_t dev_no,
			     unsigned int del_flags)
{
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return rc;
	for (;;) {
		msg_dbkey(kb, dev_no, 0);
		k.mv_size = sizeof(kb);
		k.mv_data = kb;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (k.mv_size < 2 || mw_get_be16(k.mv_data) != dev_no)
			break;
		rc = mdb_cursor_del(cur, del_flags);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	return rc;
}

static int device_delete_all(struct mw_store *s, MDB_txn *txn,
			     const struct mw_device_rec *rec)
{
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)rec->id };
	int rc;

	rc = mdb_del(txn, s->dbi_devices, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	rc = delete_dev_prefix(txn, s->dbi_messages, rec->dev_no,
			       MDB_NODUPDATA);
	if (rc != 0)
		return rc;
	return delete_dev_prefix(txn, s->dbi_summaries, rec->dev_no, 0);
}

/* Reads all devices (dev_no order is not guaranteed: id order). *recs_r
   is malloc()ed (may be NULL when count is 0). */
static int devices_load(struct mw_store *s, MDB_txn *txn,
			struct mw_device_rec **recs_r, unsigned int *count_r)
{
	struct mw_device_rec *recs = NULL, *tmp;
	unsigned int count = 0, alloc = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*recs_r = NULL;
	*count_r = 0;
	rc = mdb_cursor_open(txn, s->dbi_devices, &cur);
	if (rc != 0)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (count == alloc) {
			alloc = alloc == 0 ? 16 : alloc * 2;
			tmp = realloc(recs, alloc * sizeof(*recs));
			if (tmp == NULL) {
				rc = ENOMEM;
				break;
			}
			recs = tmp;
		}
		rc = dev_decode(s, &k, &v, &recs[count]);
		if (rc != 0)
			break;
		count++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		free(recs);
		return rc;
	}
	*recs_r = recs;
	*count_r = count;
	return 0;
}

/* ---- open / close ---- */

/* LMDB maps its lock file after ftruncate(), which leaves it sparse: on
   a full filesystem the first write to the map is a SIGBUS. Allocate the
   blocks first, so a full disk is an error instead of a crash. */
#define LOCK_FILE_PREALLOC (32 * 1024)
static int store_prealloc_lock(struct mw_store *s, const char *dir)
{
	char path[PATH_MAX + 16];
	struct stat st;
	off_t len = LOCK_FILE_PREALLOC;
	int fd, ret;

	if ((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) >=
	    sizeof(path)) {
		store_set_error(s, "lock file path too long");
		return -1;
	}
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= len &&
	    (off_t)st.st_blocks * 512 >= st.st_size) {
		/* allocated already (every open but the first) */
		return 0;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int err = errno;
		char hint[MW_HINT_MAX];

		store_set_error(s, "open(%s) failed: %s%s", path,
				strerror(err), mw_access_hint(path, err, hint,
							      sizeof(hint)));
		return -1;
	}
	if (fstat(fd, &st) == 0 && st.st_size > len)
		len = st.st_size;
	ret = posix_fallocate(fd, 0, len);
	close(fd);
	if (ret != 0 && ret != EOPNOTSUPP && ret != EINVAL) {
		store_set_error(s, "allocating %s failed: %s", path,
				strerror(ret));
		return -1;
	}
	return 0;
}

/* Creates dir with its missing parents (0700) unless it exists; *st_r
   gets the directory's stat. */
static int mkdir_parents(const char *dir, struct stat *st_r)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir), i;

	if (len == 0 || len >= sizeof(path)) {
		set_open_error("mailward store %s: invalid path", dir);
		return -1;
	}
	/* the usual case: it exists (one stat, no mkdir per component) */
	if (stat(dir, st_r) == 0 && S_ISDIR(st_r->st_mode))
		return 0;
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int err = errno;
			char hint[MW_HINT_MAX];

			set_open_error("mailward store %s: mkdir(%s) failed: "
				       "%s%s", dir, path, strerror(err),
				       mw_access_hint(path, err, hint,
						      sizeof(hint)));
			return -1;
		}
		path[i] = i == len ? '\0' : '/';
	}
	if (stat(dir, &st) < 0) {
		int err = errno;
		char hint[MW_HINT_MAX];

		set_open_error("mailward store %s: stat() failed: %s%s", dir,
			       strerror(err), mw_access_hint(dir, err, hint,
							     sizeof(hint)));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_open_error("mailward store %s: not a directory", dir);
		return -1;
	}
	*st_r = st;
	return 0;
}

/* An absolute path without empty, "." or ".." components: used as it is
   (realpath() costs a readlink() per component). */
static bool path_is_plain(const char *dir)
{
	const char *p;

	if (dir[0] != '/')
		return false;
	for (p = dir; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		if (p[1] == '/' || p[1] == '\0' ||
		    (p[1] == '.' && (p[2] == '/' || p[2] == '\0')) ||
		    (p[1] == '.' && p[2] == '.' &&
		     (p[3] == '/' || p[3] == '\0')))
			return false;
	}
	return strlen(dir) < PATH_MAX;
}

/* A data file shorter than its used pages would make LMDB touch mapped
   memory beyond the end of the file (SIGBUS): refuse it. */
static int store_check_size(struct mw_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	uint64_t need;
	int fd, rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0 ||
	    (rc = mdb_env_get_fd(s->env, &fd)) != 0) {
		store_set_error(s, "reading environment info failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if (fstat(fd, &fst) < 0) {
		store_set_error(s, "fstat(data.mdb) failed: %s",
				strerror(errno));
		return -1;
	}
	need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if ((uint64_t)fst.st_size < need) {
		store_set_corrupt(s, "corrupt store: data.mdb is %llu bytes but "
				"its pages need %llu (truncated?)",
				(unsigned long long)fst.st_size,
				(unsigned long long)need);
		return -1;
	}
	return 0;
}

static int store_check_format(struct mw_store *s, MDB_txn *txn)
{
	uint32_t format;
	int rc;

	rc = meta_get_u32(s, txn, "format", &format);
	if (rc != 0)
		return rc;
	if (format != MW_STORE_FORMAT) {
		store_set_error(s, "unsupported store format %u (this "
				"version reads %u)", format, MW_STORE_FORMAT);
		return MW_RC_FAILED;
	}
	/* read here, in the open's own transaction: no extra cost */
	rc = meta_get_u32(s, txn, "inbox_mark", &format);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	s->inbox_marked = rc == 0;
	rc = meta_get_u32(s, txn, "reset_time", &format);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0)
		s->reset_time = (time_t)format;
	return rc;
}

static int store_init_txn(struct mw_store *s, MDB_txn *txn,
			  void *ctx __attribute__((unused)))
{
	unsigned int i;
	int rc;

	for (i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], db_flags(i) | MDB_CREATE,
				  store_dbi(s, i));
		if (rc != 0) {
			store_set_error(s, "mdb_dbi_open(%s) failed: %s",
					db_names[i], mdb_strerror(rc));
			if (lmdb_rc_is_corrupt(rc))
				s->corrupt = true;
			return MW_RC_FAILED;
		}
	}
	rc = store_check_format(s, txn);
	if (rc == MDB_NOTFOUND) {
		rc = meta_put_u32(s, txn, "format", MW_STORE_FORMAT);
		s->created = rc == 0;
	}
	if (rc == 0 && s->data_lost && s->reset_time == 0) {
		/* with the format, atomically: the next open finds a data
		   file that is no longer empty but still knows the reset */
		time_t now = time(NULL);

		rc = meta_put_u32(s, txn, "reset_time", mw_time_to_u32(now));
		if (rc == 0)
			s->reset_time = now;
	}
	return rc;
}

static int store_init(struct mw_store *s)
{
	MDB_txn *txn;
	unsigned int i;
	int rc = 0;

	/* the common case: everything exists, a read transaction suffices
	   (DBI handles opened in it stay valid after mdb_txn_commit()) */
	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return -1;
	for (i = 0; i < DB_COUNT && rc == 0; i++)
		rc = mdb_dbi_open(txn, db_names[i], db_flags(i),
				  store_dbi(s, i));
	if (rc == 0)
		rc = store_check_format(s, txn);
	if (rc == 0) {
		rc = store_txn_commit(s, txn);
		return rc == 0 ? 0 : store_read_error(s, "mdb_txn_commit()", rc);
	}
	store_txn_abort(s, txn);
	if (rc != MDB_NOTFOUND)
		return store_read_error(s, "opening databases", rc);
	return store_write(s, "creating databases", store_init_txn, NULL);
}

static void store_free(struct mw_store *s)
{
	sigjmp_buf buf, *saved;

	if (s->env != NULL && s->pid == store_getpid()) {
		/* closing reads no data pages; guarded all the same */
		saved = guard_jmp;
		if (sigsetjmp(buf, 0) == 0) {
			guard_jmp = &buf;
			mdb_env_close(s->env);
		}
		guard_jmp = saved;
	}
	if (s->pid == store_getpid())
		guard_handlers_unref();
	free(s->reset_path);
	free(s->path);
	free(s);
}

static void store_create_fresh(const char *path, time_t now);

/* snprintf() into a buffer that may truncate (paths in messages). */
static void MW_ATTR_FORMAT(3, 4)
fmt_buf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(buf, size, fmt, args);
	va_end(args);
}

static void stores_unlink(struct mw_store *s)
{
	struct mw_store **p;

	for (p = &stores; *p != NULL; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	s->next = NULL;
}

/* Moves the damaged data.mdb of s aside as data.mdb.corrupt.<UTC time>
   (kept for forensics, never deleted) and removes its lock file, unless
   another process did so already (the path no longer is the file this
   handle opened). The handle is closed and dead afterwards: every call
   fails, and the next mw_store_open() of the directory creates a fresh
   store. faulted: LMDB faulted inside a call (its state is unknown).
   why: what went wrong (NULL: the error already set). Returns 0
   moved (s->reset_path set), -1 not moved. */
static int store_quarantine(struct mw_store *s, bool faulted,
			    const char *why)
{
	char data[PATH_MAX + 16], lock[PATH_MAX + 16];
	char target[PATH_MAX + 64], stamp[32], reason[600];
	sigjmp_buf buf;
	struct stat st;
	struct tm tm;
	time_t now = time(NULL);

	if (why != NULL) {
		fmt_buf(reason, sizeof(reason), "corrupt store (%s)",
			       why);
	} else {
		/* the error set by the failing call, without its prefix */
		const char *p = strstr(s->error, ": ");

		fmt_buf(reason, sizeof(reason), "%s",
			       p != NULL ? p + 2 : s->error);
	}
	/* let go of the environment. After a fault LMDB's state is unknown
	   (a transaction may link cursors on the stack frames the jump
	   left): it is abandoned, never touched again (its memory, map and
	   descriptors stay until the process ends; a write transaction's
	   lock too, which only processes still using the moved file wait
	   for). An error LMDB returned left it consistent: close it. */
	if (!faulted && sigsetjmp(buf, 0) == 0) {
		guard_jmp = &buf;
		if (s->cur_txn != NULL && s->cur_txn_write)
			mdb_txn_abort(s->cur_txn);
		s->cur_txn = NULL;
		if (s->env != NULL)
			mdb_env_close(s->env);
	}
	guard_jmp = NULL;
	s->env = NULL;
	s->cur_txn = NULL;
	s->txn_active = false;
	s->dead = true;
	stores_unlink(s);

	fmt_buf(data, sizeof(data), "%s/data.mdb", s->path);
	fmt_buf(lock, sizeof(lock), "%s/lock.mdb", s->path);
	(void)gmtime_r(&now, &tm);
	(void)strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	fmt_buf(target, sizeof(target), "%s.corrupt.%s", data, stamp);
	if (stat(data, &st) < 0 || st.st_dev != s->data_dev ||
	    st.st_ino != s->data_ino) {
		fmt_buf(s->error, sizeof(s->error),
			       "mailward store %s: %s; already moved aside by "
			       "another process", s->path, reason);
		return -1;
	}
	if (access(target, F_OK) == 0) {
		fmt_buf(target, sizeof(target), "%s.corrupt.%s.%ld",
			       data, stamp, (long)getpid());
	}
	if (rename(data, target) < 0) {
		fmt_buf(s->error, sizeof(s->error),
			       "mailward store %s: %s; moving %s aside to %s "
			       "failed: %s", s->path, reason, data, target,
			       strerror(errno));
		return -1;
	}
	(void)unlink(lock);
	store_create_fresh(s->path, now);
	free(s->reset_path);
	s->reset_path = strdup(target);
	fmt_buf(s->error, sizeof(s->error),
		       "mailward store %s: %s: moved aside to %s; the next "
		       "session starts with a fresh store", s->path, reason,
		       target);
	return 0;
}

static int reset_time_txn(struct mw_store *s, MDB_txn *txn, void *ctx)
{
	return meta_put_u32(s, txn, "reset_time",
			    mw_time_to_u32(*(const time_t *)ctx));
}

static int reset_time_write(struct mw_store *s, time_t now)
{
	return store_write(s, "recording the reset", reset_time_txn, &now);
}

static int reset_time_write_guarded(struct mw_store *s, time_t now)
{
	const char *error;

	STORE_GUARDED(s, &error, reset_time_write(s, now));
}

/* TRUE if dir holds an earlier store's lock file but its data file is
   missing or empty (truncated, deleted, a restore without it). A new
   store gets its lock file and a data file with meta pages in one open;
   a crash in between, or a second process opening a new store at that
   moment, is taken as a loss too (which only keeps mail longer). */
static bool store_data_lost(const char *dir)
{
	char path[PATH_MAX + 16];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) >=
	    sizeof(path) || stat(path, &st) < 0)
		return false;
	(void)snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) < 0)
		return errno == ENOENT;
	return S_ISREG(st.st_mode) && st.st_size == 0;
}

/* Creates and opens the environment of s and its databases. */
static int store_env_open(struct mw_store *s, size_t mapsize)
{
	struct stat st;
	int rc, dead, fd;

	if ((rc = mdb_env_create(&s->env)) != 0) {
		store_set_error(s, "mdb_env_create() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	(void)mdb_env_set_assert(s->env, store_assert_handler);
	if ((rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 2)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, mapsize)) != 0) {
		store_set_error(s, "setting up the environment failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	s->data_lost = store_data_lost(s->path);
	if (store_prealloc_lock(s, s->path) < 0)
		return -1;
	/* MDB_NOMETASYNC: one fdatasync per commit instead of two; a system
	   crash may undo the last transaction but never breaks integrity
	   (the state is advisory: losing the last session's records means
	   a device sees a message again, never that mail is lost) */
	if ((rc = mdb_env_open(s->env, s->path, MDB_NOMETASYNC, 0600)) != 0) {
		char hint[MW_HINT_MAX];

		store_set_error(s, "mdb_env_open() failed: %s%s",
				mdb_strerror(rc),
				lmdb_rc_is_corrupt(rc) ? " (corrupt store)" :
				mw_access_hint(s->path, rc, hint,
					       sizeof(hint)));
		if (lmdb_rc_is_corrupt(rc)) {
			/* LMDB closed nothing: remember the file to move */
			char data[PATH_MAX + 16];

			(void)snprintf(data, sizeof(data), "%s/data.mdb",
				       s->path);
			if (stat(data, &st) == 0) {
				s->data_dev = st.st_dev;
				s->data_ino = st.st_ino;
				s->corrupt = true;
			}
		}
		return -1;
	}
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0) {
		s->data_dev = st.st_dev;
		s->data_ino = st.st_ino;
	}
	if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
		store_set_error(s, "mdb_reader_check() failed: %s",
				mdb_strerror(rc));
		return -1;
	}
	if (store_check_size(s) < 0 || store_init(s) < 0)
		return -1;
	return 0;
}

static int store_env_open_guarded(struct mw_store *s, size_t mapsize)
{
	const char *error;

	STORE_GUARDED(s, &error, store_env_open(s, mapsize));
}

static struct mw_store *store_alloc(const char *real)
{
	struct mw_store *s = calloc(1, sizeof(*s));

	if (s == NULL || (s->path = strdup(real)) == NULL) {
		free(s);
		set_open_error("mailward store %s: out of memory", real);
		return NULL;
	}
	s->pid = store_getpid();
	s->refcount = 1;
	guard_handlers_ref();
	return s;
}

/* Creates the store that replaces a damaged one at path, recording when
   (meta "reset_time"): what devices had before is lost, which callers
   must take into account (mw_store_get_reset_time()). Done by the process
   that moved the damaged file aside, so whichever process opens the
   directory next finds it. */
static void store_create_fresh(const char *path, time_t now)
{
	static bool creating = false;
	struct mw_store *t;

	if (creating || (t = store_alloc(path)) == NULL)
		return;
	creating = true;
	if (store_env_open_guarded(t, (size_t)MW_STORE_DEFAULT_MAPSIZE) == 0)
		(void)reset_time_write_guarded(t, now);
	store_free(t);
	creating = false;
}

static int store_check_cached(struct mw_store *s)
{
	unsigned int cleared;
	const char *error;

	if (mw_store_reader_check(s, &cleared, &error) < 0)
		return -1;
	STORE_GUARDED(s, &error, store_check_size(s));
}

int mw_store_open_mapsize(const char *dir, size_t mapsize,
			  struct mw_store **store_r, const char **error_r)
{
	char real[PATH_MAX], *reset_path = NULL;
	struct mw_store *s;
	struct stat dir_st;
	unsigned int attempt;

	*store_r = NULL;
	*error_r = open_error;
	if (stores_pid != store_getpid()) {
		/* forked: handles of the parent must not be used or closed
		   here (closing would drop this process' own fcntl locks);
		   forget them */
		stores = NULL;
		stores_pid = store_getpid();
	}
	if (dir == NULL || mkdir_parents(dir, &dir_st) < 0) {
		if (dir == NULL)
			set_open_error("mailward store: no directory given");
		return -1;
	}
	if (path_is_plain(dir))
		memcpy(real, dir, strlen(dir) + 1);
	else if (realpath(dir, real) == NULL) {
		set_open_error("mailward store %s: realpath() failed: %s",
			       dir, strerror(errno));
		return -1;
	}
	/* one handle per directory, whatever the spelling (LMDB must not
	   open one environment twice in a process) */
	for (s = stores; s != NULL; s = s->next) {
		if (s->dir_dev == dir_st.st_dev &&
		    s->dir_ino == dir_st.st_ino)
			break;
	}
	if (s != NULL) {
		if (store_check_cached(s) < 0) {
			set_open_error("%s", s->error);
			if (!s->dead)
				return -1;
			/* moved aside: the old handle stays with its
			   holders; open a fresh one below */
			reset_path = s->reset_path == NULL ? NULL :
				strdup(s->reset_path);
		} else {
			s->refcount++;
			*store_r = s;
			return 0;
		}
	}

	if (mapsize == 0)
		mapsize = (size_t)MW_STORE_DEFAULT_MAPSIZE;
	mapsize = (mapsize + MAPSIZE_ROUND - 1) / MAPSIZE_ROUND * MAPSIZE_ROUND;
	/* a damaged store is moved aside and opened again, once */
	for (attempt = 0;; attempt++) {
		if ((s = store_alloc(real)) == NULL) {
			free(reset_path);
			return -1;
		}
		s->dir_dev = dir_st.st_dev;
		s->dir_ino = dir_st.st_ino;
		if (store_env_open_guarded(s, mapsize) == 0)
			break;
		set_open_error("%s", s->error);
		if (attempt > 0 || !s->dead || s->reset_path == NULL) {
			free(reset_path);
			store_free(s);
			return -1;
		}
		free(reset_path);
		reset_path = s->reset_path;
		s->reset_path = NULL;
		store_free(s);
	}
	if (reset_path == NULL && s->data_lost) {
		/* nothing to move aside: the data file itself is named */
		size_t len = strlen(real) + sizeof("/data.mdb");

		reset_path = malloc(len);
		if (reset_path != NULL)
			(void)snprintf(reset_path, len, "%s/data.mdb", real);
	}
	s->reset_path = reset_path;
	s->next = stores;
	stores = s;
	*store_r = s;
	return 0;
}

int mw_store_open(const char *dir, struct mw_store **store_r,
		  const char **error_r)
{
	return mw_store_open_mapsize(dir, 0, store_r, error_r);
}

void mw_store_unref(struct mw_store **_store)
{
	struct mw_store *s = *_store;

	if (s == NULL)
		return;
	*_store = NULL;
	if (--s->refcount > 0)
		return;
	stores_unlink(s);
	store_free(s);
}

const char *mw_store_get_reset(struct mw_store *store)
{
	return store->reset_path;
}

bool mw_store_get_reset_lost(struct mw_store *store)
{
	return store->reset_path != NULL && store->data_lost;
}

time_t mw_store_get_reset_time(struct mw_store *store)
{
	return store->reset_time;
}

bool mw_store_get_created(struct mw_store *store)
{
	return store->created;
}

bool mw_store_get_inbox_marked(struct mw_store *store)
{
	return store->inbox_marked;
}

struct inbox_mark_ctx {
	time_t now, reset_time;
};

static int inbox_mark_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	const struct inbox_mark_ctx *ctx = _ctx;
	uint32_t old;
	int rc;

	if (ctx->reset_time != 0) {
		rc = meta_get_u32(s, txn, "reset_time", &old);
		if (rc == MDB_NOTFOUND)
			rc = meta_put_u32(s, txn, "reset_time",
					  mw_time_to_u32(ctx->reset_time));
		if (rc != 0)
			return rc;
	}
	return meta_put_u32(s, txn, "inbox_mark", mw_time_to_u32(ctx->now));
}

static int store_set_inbox_marked(struct mw_store *s, time_t now,
				  time_t reset_time, const char **error_r)
{
	struct inbox_mark_ctx ctx = { now, reset_time };

	if (store_write(s, "recording the INBOX marker", inbox_mark_txn,
			&ctx) < 0)
		return store_fail(s, error_r);
	s->inbox_marked = true;
	if (reset_time != 0 && s->reset_time == 0)
		s->reset_time = reset_time;
	return 0;
}

int mw_store_set_inbox_marked(struct mw_store *store, time_t now,
			      time_t reset_time, const char **error_r)
{
	STORE_GUARDED(store, error_r, store_set_inbox_marked(store, now,
							     reset_time,
							     error_r));
}

const char *mw_store_get_path(struct mw_store *store)
{
	return store->path;
}

unsigned int mw_store_get_refcount(struct mw_store *store)
{
	return store->refcount;
}

static int store_reader_check(struct mw_store *s, unsigned int *cleared_r,
			  const char **error_r)
{
	int rc, dead = 0;

	rc = mdb_reader_check(s->env, &dead);
	if (rc != 0) {
		store_set_error(s, "mdb_reader_check() failed: %s",
				mdb_strerror(rc));
		return store_fail(s, error_r);
	}
	if (cleared_r != NULL)
		*cleared_r = dead < 0 ? 0 : (unsigned int)dead;
	return 0;
}

int mw_store_reader_check(struct mw_store *s, unsigned int *cleared_r,
			  const char **error_r)
{
	STORE_GUARDED(s, error_r, store_reader_check(s, cleared_r, error_r));
}

struct reader_count_ctx {
	pid_t self;
	unsigned int count;
};

static int reader_list_cb(const char *msg, void *context)
{
	struct reader_count_ctx *ctx = context;
	char *end;
	long pid;

	/* lines: "%10d %zx %s\n"; the header line does not parse */
	pid = strtol(msg, &end, 10);
	if (end != msg && pid > 0 && (pid_t)pid != ctx->self)
		ctx->count++;
	return 0;
}

static int store_reader_count_others(struct mw_store *s, unsigned int *count_r,
				 const char **error_r)
{
	struct reader_count_ctx ctx = { getpid(), 0 };
	int rc;

	rc = mdb_reader_list(s->env, reader_list_cb, &ctx);
	if (rc < 0) {
		store_set_error(s, "mdb_reader_list() failed: %s",
				mdb_strerror(rc));
		return store_fail(s, error_r);
	}
	*count_r = ctx.count;
	return 0;
}

int mw_store_reader_count_others(struct mw_store *s, unsigned int *count_r,
				 const char **error_r)
{
	STORE_GUARDED(s, error_r, store_reader_count_others(s, count_r, error_r));
}

/* Pages on LMDB's freelist (DBI 0): each value is an ID list whose first
   element is its length, as mdb_stat -f reads it. */
static int count_free_pages(MDB_txn *txn, uint64_t *count_r)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n;
	int rc;

	*count_r = 0;
	rc = mdb_cursor_open(txn, 0, &cur);
	if (rc != 0)
		return rc;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (v.mv_size < sizeof(size_t))
			continue;
		memcpy(&n, v.mv_data, sizeof(n));
		*count_r += n;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_get_stat(struct mw_store *s, struct mw_store_stat *stat_r,
		      const char **error_r)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	MDB_txn *txn;
	int fd, rc;

	memset(stat_r, 0, sizeof(*stat_r));
	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0 ||
	    (rc = mdb_env_get_fd(s->env, &fd)) != 0) {
		store_read_error(s, "reading environment info", rc);
		return store_fail(s, error_r);
	}
	stat_r->page_size = st.ms_psize;
	stat_r->map_size = info.me_mapsize;
	stat_r->used_pages = (uint64_t)info.me_last_pgno + 1;
	stat_r->file_size = fstat(fd, &fst) == 0 ? (uint64_t)fst.st_size : 0;
	stat_r->map_grows = s->map_grows;

	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = count_free_pages(txn, &stat_r->free_pages);
	if (rc == 0 && (rc = mdb_stat(txn, s->dbi_messages, &st)) == 0) {
		stat_r->msg_records = st.ms_entries;
		if ((rc = mdb_stat(txn, s->dbi_devices, &st)) == 0) {
			stat_r->devices = st.ms_entries;
			if ((rc = mdb_stat(txn, s->dbi_mailboxes, &st)) == 0)
				stat_r->mailboxes = st.ms_entries;
		}
	}
	store_txn_abort(s, txn);
	if (rc != 0) {
		store_read_error(s, "mdb_stat()", rc);
		return store_fail(s, error_r);
	}
	return 0;
}

int mw_store_get_stat(struct mw_store *s, struct mw_store_stat *stat_r,
		      const char **error_r)
{
	STORE_GUARDED(s, error_r, store_get_stat(s, stat_r, error_r));
}

/* ---- devices ---- */

static int parse_id(struct mw_store *s, const char *id_hex,
		    unsigned char id[MW_DEVICE_ID_SIZE])
{
	if (mw_hex_decode(id_hex, id, MW_DEVICE_ID_SIZE) < 0) {
		char esc[80];

		(void)mw_escape(id_hex == NULL ? "(null)" : id_hex, NULL,
				esc, sizeof(esc), NULL);
		store_set_error(s, "invalid device id '%s'", esc);
		return -1;
	}
	return 0;
}

static int parse_mailbox_guid(struct mw_store *s, const char *guid_hex,
			      unsigned char guid[GUID_SIZE])
{
	if (mw_hex_decode(guid_hex, guid, GUID_SIZE) < 0) {
		char esc[80];

		(void)mw_escape(guid_hex == NULL ? "(null)" : guid_hex, NULL,
				esc, sizeof(esc), NULL);
		store_set_error(s, "invalid mailbox GUID '%s'", esc);
		return -1;
	}
	return 0;
}

static int device_get_txn(struct mw_store *s, MDB_txn *txn,
			  const unsigned char id[MW_DEVICE_ID_SIZE],
			  struct mw_device_rec *rec_r)
{
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)id }, v;
	int rc;

	rc = mdb_get(txn, s->dbi_devices, &k, &v);
	if (rc != 0)
		return rc;
	return dev_decode(s, &k, &v, rec_r);
}

static int device_put(struct mw_store *s, MDB_txn *txn,
		      const struct mw_device_rec *rec)
{
	unsigned char buf[DEV_VALUE_MAX];
	MDB_val k = { MW_DEVICE_ID_SIZE, (void *)rec->id }, v;

	v.mv_data = buf;
	v.mv_size = dev_encode(rec, buf);
	return mdb_put(txn, s->dbi_devices, &k, &v, 0);
}

static int store_device_get(struct mw_store *s, const char *id_hex,
			struct mw_device_rec *rec_r, const char **error_r)
{
	unsigned char id[MW_DEVICE_ID_SIZE];
	MDB_txn *txn;
	int rc;

	if (parse_id(s, id_hex, id) < 0 ||
	    store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = device_get_txn(s, txn, id, rec_r);
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_read_error(s, "reading device", rc);
		return store_fail(s, error_r);
	}
	return 1;
}

int mw_store_device_get(struct mw_store *s, const char *id_hex,
			struct mw_device_rec *rec_r, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_device_get(s, id_hex, rec_r, error_r));
}

struct dev_event {
	enum mw_device_event event;
	struct mw_device_rec rec;
};

struct dev_events {
	struct dev_event *events;
	unsigned int count, alloc;
};

static int dev_events_add(struct dev_events *ev, enum mw_device_event event,
			  const struct mw_device_rec *rec)
{
	struct dev_event *tmp;

	if (ev->count == ev->alloc) {
		unsigned int alloc = ev->alloc == 0 ? 4 : ev->alloc * 2;

		tmp = realloc(ev->events, alloc * sizeof(*tmp));
		if (tmp == NULL)
			return ENOMEM;
		ev->events = tmp;
		ev->alloc = alloc;
	}
	ev->events[ev->count].event = event;
	ev->events[ev->count].rec = *rec;
	ev->count++;
	return 0;
}

static void dev_events_emit(struct dev_events *ev, mw_device_event_cb *cb,
			    void *ctx)
{
	sigjmp_buf *saved;
	unsigned int i;

	GUARD_SUSPEND(saved);
	if (cb != NULL) {
		for (i = 0; i < ev->count; i++)
			cb(ev->events[i].event, &ev->events[i].rec, ctx);
	}
	GUARD_RESUME(saved);
	free(ev->events);
	memset(ev, 0, sizeof(*ev));
}

/* Expires idle devices, then evicts least recently seen ones while
   max_devices or more remain. Removed entries are flagged by dev_no = 0 in
   recs (after being reported in ev). */
static int devices_expire_evict(struct mw_store *s, MDB_txn *txn,
				struct mw_device_rec *recs,
				unsigned int count, time_t now,
				time_t expire_secs, unsigned int max_devices,
				struct dev_events *ev)
{
	unsigned int i, remaining = count, victim;
	int rc;

	for (i = 0; i < count && expire_secs > 0; i++) {
		if (recs[i].last_seen >= now ||
		    now - recs[i].last_seen <= expire_secs)
			continue;
		if ((rc = device_delete_all(s, txn, &recs[i])) != 0 ||
		    (rc = dev_events_add(ev, MW_DEVICE_EVENT_EXPIRED,
					 &recs[i])) != 0)
			return rc;
		recs[i].dev_no = 0;
		remaining--;
	}
	while (max_devices > 0 && remaining >= max_devices) {
		victim = count;
		for (i = 0; i < count; i++) {
			if (recs[i].dev_no == 0)
				continue;
			if (victim == count ||
			    recs[i].last_seen < recs[victim].last_seen ||
			    (recs[i].last_seen == recs[victim].last_seen &&
			     recs[i].dev_no < recs[victim].dev_no))
				victim = i;
		}
		if ((rc = device_delete_all(s, txn, &recs[victim])) != 0 ||
		    (rc = dev_events_add(ev, MW_DEVICE_EVENT_EVICTED,
					 &recs[victim])) != 0)
			return rc;
		recs[victim].dev_no = 0;
		remaining--;
	}
	return 0;
}

/* Hands out device numbers in increasing order from meta "next_dev_no"
   (wrapping after MAX_DEV_NO, skipping numbers in use): a removed
   device's number is not given to the next device, so a session that
   still holds it cannot be mistaken for the new one (mw_batch_bind_device
   checks the device id as well, for the wrap). A store without the
   counter (older versions) starts after max_used, the highest number seen
   in this transaction. Leftover records under the chosen number are
   removed, so a new device always starts empty. */
static int dev_no_allocate(struct mw_store *s, MDB_txn *txn,
			   const unsigned char *used, unsigned int max_used,
			   unsigned int *dev_no_r)
{
	uint32_t next;
	unsigned int i, dev_no;
	int rc;

	rc = meta_get_u32(s, txn, "next_dev_no", &next);
	if (rc == MDB_NOTFOUND)
		next = max_used + 1;
	else if (rc != 0)
		return rc;
	if (next == 0 || next > MAX_DEV_NO)
		next = 1;
	for (i = 0, dev_no = next; i < MAX_DEV_NO; i++) {
		if ((used[dev_no / 8] & (1 << (dev_no % 8))) == 0)
			break;
		dev_no = dev_no == MAX_DEV_NO ? 1 : dev_no + 1;
	}
	if (i == MAX_DEV_NO) {
		store_set_error(s, "too many devices");
		return MW_RC_FAILED;
	}
	if ((rc = delete_dev_prefix(txn, s->dbi_messages, (uint16_t)dev_no,
				    MDB_NODUPDATA)) != 0 ||
	    (rc = delete_dev_prefix(txn, s->dbi_summaries, (uint16_t)dev_no,
				    0)) != 0 ||
	    (rc = meta_put_u32(s, txn, "next_dev_no",
			       dev_no == MAX_DEV_NO ? 1 : dev_no + 1)) != 0)
		return rc;
	*dev_no_r = dev_no;
	return 0;
}

/* Stores without "next_dev_no" (older versions) get it before a device is
   removed, so the removed number is not handed out next. */
static int dev_no_counter_ensure(struct mw_store *s, MDB_txn *txn,
				 const struct mw_device_rec *recs,
				 unsigned int count)
{
	unsigned int i, max_used = 0;
	uint32_t next;
	int rc;

	rc = meta_get_u32(s, txn, "next_dev_no", &next);
	if (rc != MDB_NOTFOUND)
		return rc;
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no > max_used)
			max_used = recs[i].dev_no;
	}
	return meta_put_u32(s, txn, "next_dev_no",
			    max_used >= MAX_DEV_NO ? 1 : max_used + 1);
}

struct register_ctx {
	unsigned char id[MW_DEVICE_ID_SIZE];
	const char *label, *protocol;
	time_t now, expire_secs;
	unsigned int max_devices;
	struct dev_events ev;
	struct mw_device_rec rec;
	bool created;
};

static int device_register_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	struct register_ctx *ctx = _ctx;
	struct mw_device_rec *recs;
	unsigned char used[(MAX_DEV_NO + 1) / 8];
	unsigned int count, i, dev_no, max_used = 0;
	int rc;

	ctx->ev.count = 0;
	ctx->created = false;
	rc = device_get_txn(s, txn, ctx->id, &ctx->rec);
	if (rc == 0) {
		/* known device (maybe created by a concurrent session) */
		if (ctx->now > ctx->rec.last_seen)
			ctx->rec.last_seen = ctx->now;
		(void)mw_sanitize(ctx->label, ctx->rec.label,
				  sizeof(ctx->rec.label));
		(void)mw_sanitize(ctx->protocol, ctx->rec.protocol,
				  sizeof(ctx->rec.protocol));
		return device_put(s, txn, &ctx->rec);
	}
	if (rc != MDB_NOTFOUND)
		return rc;

	rc = devices_load(s, txn, &recs, &count);
	if (rc != 0)
		return rc;
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no > max_used)
			max_used = recs[i].dev_no;
	}
	rc = devices_expire_evict(s, txn, recs, count, ctx->now,
				  ctx->expire_secs, ctx->max_devices,
				  &ctx->ev);
	memset(used, 0, sizeof(used));
	for (i = 0; i < count; i++) {
		if (recs[i].dev_no != 0)
			used[recs[i].dev_no / 8] |= 1 << (recs[i].dev_no % 8);
	}
	free(recs);
	if (rc != 0)
		return rc;
	rc = dev_no_allocate(s, txn, used, max_used, &dev_no);
	if (rc != 0)
		return rc;
	memset(&ctx->rec, 0, sizeof(ctx->rec));
	dev_rec_set_id(&ctx->rec, ctx->id);
	ctx->rec.dev_no = (uint16_t)dev_no;
	ctx->rec.first_seen = ctx->rec.last_seen = ctx->now;
	(void)mw_sanitize(ctx->label, ctx->rec.label, sizeof(ctx->rec.label));
	(void)mw_sanitize(ctx->protocol, ctx->rec.protocol,
			  sizeof(ctx->rec.protocol));
	rc = device_put(s, txn, &ctx->rec);
	if (rc == 0)
		rc = dev_events_add(&ctx->ev, MW_DEVICE_EVENT_REGISTERED,
				    &ctx->rec);
	ctx->created = rc == 0;
	return rc;
}

static int store_device_register(struct mw_store *s, const char *id_hex,
			     const char *label, const char *protocol,
			     time_t now, unsigned int max_devices,
			     time_t expire_secs, mw_device_event_cb *cb,
			     void *cb_ctx, struct mw_device_rec *rec_r,
			     const char **error_r)
{
	struct register_ctx ctx;
	MDB_txn *txn;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	if (parse_id(s, id_hex, ctx.id) < 0)
		return store_fail(s, error_r);
	ctx.label = label != NULL ? label : "";
	ctx.protocol = protocol != NULL ? protocol : "";
	ctx.now = now;
	ctx.max_devices = max_devices;
	ctx.expire_secs = expire_secs;

	/* read-only fast path for devices seen recently */
	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = device_get_txn(s, txn, ctx.id, &ctx.rec);
	store_txn_abort(s, txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		store_read_error(s, "reading device", rc);
		return store_fail(s, error_r);
	}
	if (rc == 0 && (now < ctx.rec.last_seen ||
			now - ctx.rec.last_seen < MW_DEVICE_TOUCH_SECS)) {
		if (rec_r != NULL)
			*rec_r = ctx.rec;
		return 0;
	}

	if (store_write(s, "registering device", device_register_txn,
			&ctx) < 0) {
		free(ctx.ev.events);
		return store_fail(s, error_r);
	}
	if (rec_r != NULL)
		*rec_r = ctx.rec;
	dev_events_emit(&ctx.ev, cb, cb_ctx);
	return ctx.created ? 1 : 0;
}

int mw_store_device_register(struct mw_store *s, const char *id_hex,
			     const char *label, const char *protocol,
			     time_t now, unsigned int max_devices,
			     time_t expire_secs, mw_device_event_cb *cb,
			     void *cb_ctx, struct mw_device_rec *rec_r,
			     const char **error_r)
{
	STORE_GUARDED(s, error_r, store_device_register(s, id_hex, label, protocol, now, max_devices, expire_secs, cb, cb_ctx, rec_r, error_r));
}

struct expire_ctx {
	time_t now, expire_secs;
	struct dev_events ev;
};

static int device_expire_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	struct expire_ctx *ctx = _ctx;
	struct mw_device_rec *recs;
	unsigned int count;
	int rc;

	ctx->ev.count = 0;
	rc = devices_load(s, txn, &recs, &count);
	if (rc == 0)
		rc = dev_no_counter_ensure(s, txn, recs, count);
	if (rc != 0) {
		free(recs);
		return rc;
	}
	rc = devices_expire_evict(s, txn, recs, count, ctx->now,
				  ctx->expire_secs, 0, &ctx->ev);
	free(recs);
	return rc;
}

static int store_device_expire(struct mw_store *s, time_t now,
			   time_t expire_secs, mw_device_event_cb *cb,
			   void *cb_ctx, const char **error_r)
{
	struct expire_ctx ctx;
	int count;

	memset(&ctx, 0, sizeof(ctx));
	ctx.now = now;
	ctx.expire_secs = expire_secs;
	if (expire_secs <= 0)
		return 0;
	if (store_write(s, "expiring devices", device_expire_txn, &ctx) < 0) {
		free(ctx.ev.events);
		return store_fail(s, error_r);
	}
	count = (int)ctx.ev.count;
	dev_events_emit(&ctx.ev, cb, cb_ctx);
	return count;
}

int mw_store_device_expire(struct mw_store *s, time_t now,
			   time_t expire_secs, mw_device_event_cb *cb,
			   void *cb_ctx, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_device_expire(s, now, expire_secs, cb, cb_ctx, error_r));
}

static int dev_rec_cmp(const void *a, const void *b)
{
	const struct mw_device_rec *ra = a, *rb = b;

	return (int)ra->dev_no - (int)rb->dev_no;
}

static int store_device_iter(struct mw_store *s,
			 int (*cb)(const struct mw_device_rec *rec, void *ctx),
			 void *ctx, const char **error_r)
{
	struct mw_device_rec *recs;
	unsigned int count, i;
	sigjmp_buf *saved;
	MDB_txn *txn;
	int rc, ret = 0;

	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = devices_load(s, txn, &recs, &count);
	store_txn_abort(s, txn);
	if (rc != 0) {
		store_read_error(s, "reading devices", rc);
		return store_fail(s, error_r);
	}
	if (count > 0)
		qsort(recs, count, sizeof(*recs), dev_rec_cmp);
	GUARD_SUSPEND(saved);
	for (i = 0; i < count; i++) {
		if (cb(&recs[i], ctx) != 0) {
			ret = 1;
			break;
		}
	}
	GUARD_RESUME(saved);
	free(recs);
	return ret;
}

int mw_store_device_iter(struct mw_store *s,
			 int (*cb)(const struct mw_device_rec *rec, void *ctx),
			 void *ctx, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_device_iter(s, cb, ctx, error_r));
}

struct forget_ctx {
	const char *prefix;
	size_t prefix_len;
	struct mw_device_rec rec;
	bool found;
};

static int device_forget_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	struct forget_ctx *ctx = _ctx;
	struct mw_device_rec *recs;
	unsigned int count, i, match = 0;
	int rc;

	ctx->found = false;
	rc = devices_load(s, txn, &recs, &count);
	if (rc == 0)
		rc = dev_no_counter_ensure(s, txn, recs, count);
	if (rc != 0) {
		free(recs);
		return rc;
	}
	for (i = 0; i < count; i++) {
		if (strncmp(recs[i].id_hex, ctx->prefix,
			    ctx->prefix_len) != 0)
			continue;
		if (match++ == 0)
			ctx->rec = recs[i];
	}
	free(recs);
	if (match == 0)
		return 0;
	if (match > 1) {
		store_set_error(s, "device id prefix %s is ambiguous "
				"(%u devices)", ctx->prefix, match);
		return MW_RC_FAILED;
	}
	ctx->found = true;
	return device_delete_all(s, txn, &ctx->rec);
}

static int store_device_forget(struct mw_store *s, const char *id_prefix,
			   struct mw_device_rec *rec_r, const char **error_r)
{
	char prefix[MW_DEVICE_ID_HEX_SIZE];
	struct forget_ctx ctx;
	size_t len, i;

	len = id_prefix == NULL ? 0 :
		strnlen(id_prefix, MW_DEVICE_ID_HEX_SIZE);
	for (i = 0; i < len && i < MW_DEVICE_ID_HEX_SIZE - 1; i++) {
		char c = id_prefix[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			break;
		prefix[i] = c;
	}
	if (len < 6 || len > MW_DEVICE_ID_HEX_SIZE - 1 || i != len) {
		char esc[80];

		(void)mw_escape(id_prefix == NULL ? "(null)" : id_prefix,
				NULL, esc, sizeof(esc), NULL);
		store_set_error(s, "invalid device id (prefix) '%s': need 6 "
				"to 32 hex digits", esc);
		return store_fail(s, error_r);
	}
	prefix[len] = '\0';
	memset(&ctx, 0, sizeof(ctx));
	ctx.prefix = prefix;
	ctx.prefix_len = len;
	if (store_write(s, "forgetting device", device_forget_txn, &ctx) < 0)
		return store_fail(s, error_r);
	if (ctx.found && rec_r != NULL)
		*rec_r = ctx.rec;
	return ctx.found ? 1 : 0;
}

int mw_store_device_forget(struct mw_store *s, const char *id_prefix,
			   struct mw_device_rec *rec_r, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_device_forget(s, id_prefix, rec_r, error_r));
}

/* ---- message reads ---- */

static int mailbox_guid_of(struct mw_store *s, MDB_txn *txn,
			   uint32_t mailbox_no,
			   char guid_hex[MW_MAILBOX_GUID_HEX_SIZE])
{
	unsigned char nobuf[4];
	MDB_val k = { 4, nobuf }, v;
	int rc;

	mw_put_be32(nobuf, mailbox_no);
	rc = mdb_get(txn, s->dbi_mailbox_nos, &k, &v);
	if (rc == MDB_NOTFOUND) {
		store_set_corrupt(s, "corrupt store: mailbox number %u has no "
				"GUID", mailbox_no);
		return MW_RC_FAILED;
	}
	if (rc != 0)
		return rc;
	if (v.mv_size != GUID_SIZE) {
		store_set_corrupt(s, "corrupt mailbox number record (%zu bytes)",
				v.mv_size);
		return MW_RC_FAILED;
	}
	mw_hex_encode(v.mv_data, GUID_SIZE, guid_hex);
	return 0;
}

/* Positions cur at the record of key in (dev_no, mailbox_no).
   Returns 0 (data_r set), MDB_NOTFOUND or an error. */
static int msg_find(struct mw_store *s, MDB_cursor *cur, uint16_t dev_no,
		    uint32_t mailbox_no,
		    const unsigned char key[MW_MSG_KEY_SIZE],
		    const unsigned char **data_r)
{
	unsigned char kb[MSG_DBKEY_SIZE], db[MSG_DATA_SIZE];
	MDB_val k = { sizeof(kb), kb }, d = { sizeof(db), db };
	int rc;

	msg_dbkey(kb, dev_no, mailbox_no);
	memset(db, 0, sizeof(db));
	memcpy(db, key, MW_MSG_KEY_SIZE);
	rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH_RANGE);
	if (rc != 0)
		return rc;
	if (d.mv_size != MSG_DATA_SIZE) {
		store_set_corrupt(s, "corrupt message record (%zu bytes)",
				d.mv_size);
		return MW_RC_FAILED;
	}
	if (memcmp(d.mv_data, key, MW_MSG_KEY_SIZE) != 0)
		return MDB_NOTFOUND;
	*data_r = d.mv_data;
	return 0;
}

static int store_msg_get_key(struct mw_store *s, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 const unsigned char key[MW_MSG_KEY_SIZE],
			 struct mw_msg_rec *rec_r, const char **error_r)
{
	unsigned char guid[GUID_SIZE], kb[MSG_DBKEY_SIZE];
	const unsigned char *data;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint32_t mailbox_no;
	int rc;

	if (parse_mailbox_guid(s, mailbox_guid_hex, guid) < 0 ||
	    store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mailbox_lookup(s, txn, guid, &mailbox_no);
	if (rc == 0 && (rc = mdb_cursor_open(txn, s->dbi_messages, &cur)) == 0) {
		rc = msg_find(s, cur, dev_no, mailbox_no, key, &data);
		if (rc == 0) {
			msg_dbkey(kb, dev_no, mailbox_no);
			msg_decode(kb, data, rec_r);
			mw_hex_encode(guid, GUID_SIZE,
				      rec_r->mailbox_guid_hex);
		}
		mdb_cursor_close(cur);
	}
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_read_error(s, "reading message record", rc);
		return store_fail(s, error_r);
	}
	return 1;
}

int mw_store_msg_get_key(struct mw_store *s, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 const unsigned char key[MW_MSG_KEY_SIZE],
			 struct mw_msg_rec *rec_r, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_msg_get_key(s, dev_no, mailbox_guid_hex, key, rec_r, error_r));
}

int mw_store_msg_get(struct mw_store *s, uint16_t dev_no,
		     const char *mailbox_guid_hex, const char *msg_guid,
		     struct mw_msg_rec *rec_r, const char **error_r)
{
	unsigned char key[MW_MSG_KEY_SIZE];

	mw_msg_key(msg_guid, key);
	return mw_store_msg_get_key(s, dev_no, mailbox_guid_hex, key, rec_r,
				    error_r);
}

static int msg_iter_txn(struct mw_store *s, MDB_txn *txn, int dev_no,
			bool have_mbox, uint32_t mbox,
			int (*cb)(const struct mw_msg_rec *rec, void *ctx),
			void *ctx, int *ret_r)
{
	unsigned char kb[MSG_DBKEY_SIZE];
	char guid_hex[MW_MAILBOX_GUID_HEX_SIZE];
	uint32_t guid_no = 0;
	struct mw_msg_rec rec;
	MDB_cursor *cur;
	MDB_val k, d;
	uint16_t kdev;
	uint32_t kmbox;
	sigjmp_buf *saved;
	bool stop;
	int rc;

	rc = mdb_cursor_open(txn, s->dbi_messages, &cur);
	if (rc != 0)
		return rc;
	msg_dbkey(kb, dev_no < 0 ? 0 : (uint16_t)dev_no, have_mbox ? mbox : 0);
	k.mv_size = sizeof(kb);
	k.mv_data = kb;
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != MSG_DBKEY_SIZE ||
		    d.mv_size != MSG_DATA_SIZE) {
			store_set_corrupt(s, "corrupt message record (key %zu, "
					"value %zu bytes)", k.mv_size,
					d.mv_size);
			rc = MW_RC_FAILED;
			break;
		}
		kdev = mw_get_be16(k.mv_data);
		kmbox = mw_get_be32((const unsigned char *)k.mv_data + 2);
		if (dev_no >= 0 && kdev != dev_no) {
			rc = MDB_NOTFOUND;
			break;
		}
		if (have_mbox && kmbox != mbox) {
			/* skip to (kdev, mbox) or (kdev + 1, mbox) */
			if (kmbox > mbox) {
				if (dev_no >= 0 || kdev == MAX_DEV_NO) {
					rc = MDB_NOTFOUND;
					break;
				}
				kdev++;
			}
			msg_dbkey(kb, kdev, mbox);
			k.mv_size = sizeof(kb);
			k.mv_data = kb;
			rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
			continue;
		}
		msg_decode(k.mv_data, d.mv_data, &rec);
		if (guid_no != kmbox) {
			rc = mailbox_guid_of(s, txn, kmbox, guid_hex);
			if (rc != 0)
				break;
			guid_no = kmbox;
		}
		memcpy(rec.mailbox_guid_hex, guid_hex, sizeof(guid_hex));
		GUARD_SUSPEND(saved);
		stop = cb(&rec, ctx) != 0;
		GUARD_RESUME(saved);
		if (stop) {
			*ret_r = 1;
			rc = MDB_NOTFOUND;
			break;
		}
		rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_msg_iter(struct mw_store *s, int dev_no,
		      const char *mailbox_guid_hex,
		      int (*cb)(const struct mw_msg_rec *rec, void *ctx),
		      void *ctx, const char **error_r)
{
	unsigned char guid[GUID_SIZE];
	uint32_t mbox = 0;
	MDB_txn *txn;
	int rc, ret = 0;

	if (dev_no > MAX_DEV_NO) {
		store_set_error(s, "invalid device number %d", dev_no);
		return store_fail(s, error_r);
	}
	if (mailbox_guid_hex != NULL &&
	    parse_mailbox_guid(s, mailbox_guid_hex, guid) < 0)
		return store_fail(s, error_r);
	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mailbox_guid_hex == NULL ? 0 :
		mailbox_lookup(s, txn, guid, &mbox);
	if (rc == 0) {
		/* txn_active stays set: nested calls from cb are refused */
		rc = msg_iter_txn(s, txn, dev_no, mailbox_guid_hex != NULL,
				  mbox, cb, ctx, &ret);
	}
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_read_error(s, "iterating message records", rc);
		return store_fail(s, error_r);
	}
	return ret;
}

int mw_store_msg_iter(struct mw_store *s, int dev_no,
		      const char *mailbox_guid_hex,
		      int (*cb)(const struct mw_msg_rec *rec, void *ctx),
		      void *ctx, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_msg_iter(s, dev_no, mailbox_guid_hex, cb, ctx, error_r));
}

static int store_summary_get(struct mw_store *s, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 struct mw_summary_rec *rec_r, const char **error_r)
{
	unsigned char guid[GUID_SIZE], kb[MSG_DBKEY_SIZE];
	MDB_val k = { sizeof(kb), kb }, v;
	const unsigned char *p;
	uint32_t mbox;
	MDB_txn *txn;
	int rc;

	if (parse_mailbox_guid(s, mailbox_guid_hex, guid) < 0 ||
	    store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mailbox_lookup(s, txn, guid, &mbox);
	if (rc == 0) {
		msg_dbkey(kb, dev_no, mbox);
		rc = mdb_get(txn, s->dbi_summaries, &k, &v);
	}
	if (rc == 0 && v.mv_size != SUMMARY_SIZE) {
		store_set_corrupt(s, "corrupt summary record (%zu bytes)",
				v.mv_size);
		rc = MW_RC_FAILED;
	}
	if (rc == 0) {
		p = v.mv_data;
		rec_r->uidvalidity = mw_get_be32(p);
		rec_r->highest_uid = mw_get_be32(p + 4);
		rec_r->highestmodseq = mw_get_be64(p + 8);
		rec_r->time = mw_time_from_u64(mw_get_be64(p + 16));
	}
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_read_error(s, "reading summary", rc);
		return store_fail(s, error_r);
	}
	return 1;
}

int mw_store_summary_get(struct mw_store *s, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 struct mw_summary_rec *rec_r, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_summary_get(s, dev_no, mailbox_guid_hex, rec_r, error_r));
}

/* ---- mailbox names ---- */

#define MBNAME_PREFIX "mbname:"

static int mbname_key(struct mw_store *s, const char *name,
		      char buf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX])
{
	size_t len = strlen(name);

	if (len == 0 || len > MW_MAILBOX_NAME_MAX) {
		store_set_error(s, "mailbox name of %zu bytes not supported",
				len);
		return -1;
	}
	memcpy(buf, MBNAME_PREFIX, strlen(MBNAME_PREFIX));
	memcpy(buf + strlen(MBNAME_PREFIX), name, len + 1);
	return 0;
}

static int store_mailbox_name_get(struct mw_store *s, const char *name,
			      char guid_hex_r[MW_MAILBOX_GUID_HEX_SIZE],
			      const char **error_r)
{
	char kbuf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX];
	MDB_val k, v;
	MDB_txn *txn;
	int rc;

	if (mbname_key(s, name, kbuf) < 0 ||
	    store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	k.mv_size = strlen(kbuf);
	k.mv_data = kbuf;
	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc == 0 && v.mv_size != GUID_SIZE) {
		store_set_corrupt(s, "corrupt mailbox name record (%zu bytes)",
				v.mv_size);
		rc = MW_RC_FAILED;
	}
	if (rc == 0)
		mw_hex_encode(v.mv_data, GUID_SIZE, guid_hex_r);
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0) {
		store_read_error(s, "reading mailbox name", rc);
		return store_fail(s, error_r);
	}
	return 1;
}

#define STORE_OWNER_MAX 255

struct owner_ctx {
	const char *user;
	char found[STORE_OWNER_MAX + 1];
	bool mine;
};

/* reads meta "owner" into ctx (found, mine) */
static int owner_read(struct mw_store *s, MDB_txn *txn, struct owner_ctx *ctx)
{
	MDB_val k = { 5, (void *)"owner" }, v;
	size_t len;
	int rc;

	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc != 0)
		return rc;
	len = v.mv_size > STORE_OWNER_MAX ? STORE_OWNER_MAX : v.mv_size;
	memcpy(ctx->found, v.mv_data, len);
	ctx->found[len] = '\0';
	/* ignoring ASCII case: a case-insensitive userdb may hand out a
	   login name as typed (auth_username_format without %L) */
	ctx->mine = v.mv_size == strlen(ctx->user) &&
		strncasecmp(ctx->found, ctx->user, v.mv_size) == 0 &&
		v.mv_size <= STORE_OWNER_MAX;
	return 0;
}

static int owner_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	struct owner_ctx *ctx = _ctx;
	MDB_val k = { 5, (void *)"owner" };
	MDB_val v = { strlen(ctx->user), (void *)ctx->user };
	int rc;

	/* (another process may have recorded it since the read) */
	rc = owner_read(s, txn, ctx);
	if (rc != MDB_NOTFOUND)
		return rc;
	ctx->mine = true;
	return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

static int store_check_owner(struct mw_store *s, struct owner_ctx *ctx,
			     const char **error_r)
{
	MDB_txn *txn;
	int rc;

	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = owner_read(s, txn, ctx);
	store_txn_abort(s, txn);
	if (rc == MDB_NOTFOUND) {
		if (store_write(s, "recording the store's user", owner_txn,
				ctx) < 0)
			return store_fail(s, error_r);
		rc = 0;
	}
	if (rc != 0) {
		(void)store_read_error(s, "reading the store's user", rc);
		return store_fail(s, error_r);
	}
	return ctx->mine ? 1 : 0;
}

int mw_store_check_owner(struct mw_store *s, const char *user,
			 const char **owner_r, const char **error_r)
{
	static struct owner_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.user = user;
	*owner_r = ctx.found;
	STORE_GUARDED(s, error_r, store_check_owner(s, &ctx, error_r));
}

int mw_store_mailbox_name_get(struct mw_store *s, const char *name,
			      char guid_hex_r[MW_MAILBOX_GUID_HEX_SIZE],
			      const char **error_r)
{
	STORE_GUARDED(s, error_r, store_mailbox_name_get(s, name, guid_hex_r,
							 error_r));
}

struct mbname_ctx {
	const char *key;
	unsigned char old_guid[GUID_SIZE], new_guid[GUID_SIZE];
	bool have_old;
	int moved;
};

/* Deletes every record and summary of mailbox_no, of every device. */
static int mailbox_records_delete(struct mw_store *s, MDB_txn *txn,
				  uint32_t mailbox_no)
{
	struct mw_device_rec *recs;
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_val k = { sizeof(kb), kb };
	unsigned int i, count;
	int rc;

	rc = devices_load(s, txn, &recs, &count);
	if (rc != 0)
		return rc;
	for (i = 0; i < count && rc == 0; i++) {
		msg_dbkey(kb, recs[i].dev_no, mailbox_no);
		rc = mdb_del(txn, s->dbi_messages, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		if (rc == 0)
			rc = mdb_del(txn, s->dbi_summaries, &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	free(recs);
	return rc;
}

static int mailbox_name_set_txn(struct mw_store *s, MDB_txn *txn, void *_ctx)
{
	struct mbname_ctx *ctx = _ctx;
	MDB_val k = { strlen(ctx->key), (void *)ctx->key };
	MDB_val v = { GUID_SIZE, ctx->new_guid };
	MDB_val ok = { GUID_SIZE, ctx->old_guid }, nk;
	unsigned char nobuf[4];
	uint32_t old_no, new_no;
	int rc;

	ctx->moved = 0;
	if (ctx->have_old &&
	    memcmp(ctx->old_guid, ctx->new_guid, GUID_SIZE) != 0 &&
	    (rc = mailbox_lookup(s, txn, ctx->old_guid, &old_no)) !=
	    MDB_NOTFOUND) {
		if (rc != 0)
			return rc;
		rc = mailbox_lookup(s, txn, ctx->new_guid, &new_no);
		if (rc == MDB_NOTFOUND) {
			/* the records stay under their number, which now
			   belongs to the new GUID */
			MDB_val nv = { 4, nobuf }, gv = { GUID_SIZE,
							  ctx->new_guid };

			mw_put_be32(nobuf, old_no);
			nk.mv_size = 4;
			nk.mv_data = nobuf;
			if ((rc = mdb_del(txn, s->dbi_mailboxes, &ok,
					  NULL)) != 0 ||
			    (rc = mdb_put(txn, s->dbi_mailboxes, &v, &nv,
					  0)) != 0 ||
			    (rc = mdb_put(txn, s->dbi_mailbox_nos, &nk, &gv,
					  0)) != 0)
				return rc;
			ctx->moved = 1;
		} else if (rc == 0) {
			/* the new GUID has records of its own already: the
			   old mailbox's go (it no longer exists) */
			if ((rc = mailbox_records_delete(s, txn, old_no)) != 0)
				return rc;
			mw_put_be32(nobuf, old_no);
			nk.mv_size = 4;
			nk.mv_data = nobuf;
			if ((rc = mdb_del(txn, s->dbi_mailboxes, &ok,
					  NULL)) != 0 ||
			    (rc = mdb_del(txn, s->dbi_mailbox_nos, &nk,
					  NULL)) != 0)
				return rc;
		} else {
			return rc;
		}
	}
	return mdb_put(txn, s->dbi_meta, &k, &v, 0);
}

static int store_mailbox_name_set(struct mw_store *s, const char *name,
			      const char *old_guid_hex,
			      const char *new_guid_hex, const char **error_r)
{
	char kbuf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX];
	struct mbname_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	if (mbname_key(s, name, kbuf) < 0 ||
	    parse_mailbox_guid(s, new_guid_hex, ctx.new_guid) < 0 ||
	    (old_guid_hex != NULL &&
	     parse_mailbox_guid(s, old_guid_hex, ctx.old_guid) < 0))
		return store_fail(s, error_r);
	ctx.key = kbuf;
	ctx.have_old = old_guid_hex != NULL;
	if (store_write(s, "recording mailbox name", mailbox_name_set_txn,
			&ctx) < 0)
		return store_fail(s, error_r);
	return ctx.moved;
}

int mw_store_mailbox_name_set(struct mw_store *s, const char *name,
			      const char *old_guid_hex,
			      const char *new_guid_hex, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_mailbox_name_set(s, name, old_guid_hex,
							 new_guid_hex,
							 error_r));
}

static int store_mailbox_iter(struct mw_store *s,
			      int (*cb)(const char *guid_hex, void *ctx),
			      void *ctx, const char **error_r)
{
	char (*guids)[MW_MAILBOX_GUID_HEX_SIZE] = NULL;
	char (*tmp)[MW_MAILBOX_GUID_HEX_SIZE];
	unsigned int i, count = 0, alloc = 0;
	sigjmp_buf *saved;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, ret = 0;

	if (store_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mdb_cursor_open(txn, s->dbi_mailboxes, &cur);
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != GUID_SIZE) {
				store_set_corrupt(s, "corrupt mailbox key "
						  "(%zu bytes)", k.mv_size);
				rc = MW_RC_FAILED;
				break;
			}
			if (count == alloc) {
				alloc = alloc == 0 ? 16 : alloc * 2;
				tmp = realloc(guids, alloc * sizeof(*guids));
				if (tmp == NULL) {
					rc = ENOMEM;
					break;
				}
				guids = tmp;
			}
			mw_hex_encode(k.mv_data, GUID_SIZE, guids[count++]);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	store_txn_abort(s, txn);
	if (rc != 0) {
		free(guids);
		store_read_error(s, "reading mailboxes", rc);
		return store_fail(s, error_r);
	}
	GUARD_SUSPEND(saved);
	for (i = 0; i < count && ret == 0; i++)
		ret = cb(guids[i], ctx) != 0 ? 1 : 0;
	GUARD_RESUME(saved);
	free(guids);
	return ret;
}

int mw_store_mailbox_iter(struct mw_store *s,
			  int (*cb)(const char *guid_hex, void *ctx),
			  void *ctx, const char **error_r)
{
	STORE_GUARDED(s, error_r, store_mailbox_iter(s, cb, ctx, error_r));
}

/* ---- batches ---- */

static void MW_ATTR_FORMAT(2, 3)
batch_set_error(struct mw_batch *b, const char *fmt, ...)
{
	va_list args;

	if (b->failed)
		return; /* keep the first error */
	b->failed = true;
	va_start(args, fmt);
	(void)vsnprintf(b->error, sizeof(b->error), fmt, args);
	va_end(args);
}

struct mw_batch *mw_batch_begin(struct mw_store *store)
{
	struct mw_batch *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->store = store;
		b->touch_secs = MW_DEVICE_TOUCH_SECS;
	}
	return b;
}

void mw_batch_set_touch_secs(struct mw_batch *batch, unsigned int secs)
{
	batch->touch_secs = secs;
}

unsigned int mw_batch_count(const struct mw_batch *batch)
{
	return batch->count;
}

static struct batch_op *batch_add(struct mw_batch *b, int type)
{
	struct batch_op *tmp;

	if (b->failed)
		return NULL;
	if (b->count == b->alloc) {
		unsigned int alloc = b->alloc == 0 ? 64 : b->alloc * 2;

		tmp = alloc <= b->alloc ? NULL :
			realloc(b->ops, (size_t)alloc * sizeof(*tmp));
		if (tmp == NULL) {
			batch_set_error(b, "out of memory");
			return NULL;
		}
		b->ops = tmp;
		b->alloc = alloc;
	}
	tmp = &b->ops[b->count++];
	memset(tmp, 0, sizeof(*tmp));
	tmp->type = type;
	return tmp;
}

static bool batch_guid(struct mw_batch *b, const char *hex,
		       unsigned char guid[GUID_SIZE], const char *what)
{
	char esc[80];

	if (mw_hex_decode(hex, guid, GUID_SIZE) == 0)
		return true;
	(void)mw_escape(hex == NULL ? "(null)" : hex, NULL, esc, sizeof(esc),
			NULL);
	batch_set_error(b, "invalid %s '%s'", what, esc);
	return false;
}

void mw_batch_bind_device(struct mw_batch *b, const char *id_hex,
			  uint16_t dev_no, unsigned int *dropped_r)
{
	unsigned char id[MW_DEVICE_ID_SIZE];

	if (dropped_r != NULL)
		*dropped_r = 0;
	if (!batch_guid(b, id_hex, id, "device id"))
		return;
	if (dev_no == 0) {
		batch_set_error(b, "invalid device number 0");
		return;
	}
	b->bound = true;
	b->bound_dev_no = dev_no;
	memcpy(b->bound_id, id, sizeof(id));
	b->bound_dropped_r = dropped_r;
}

void mw_batch_msg_update_key(struct mw_batch *b, uint16_t dev_no,
			     const char *mailbox_guid_hex,
			     const unsigned char key[MW_MSG_KEY_SIZE],
			     uint32_t uid, enum mw_msg_field field, time_t t)
{
	unsigned char guid[GUID_SIZE];
	struct batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID"))
		return;
	if (field != MW_MSG_RETRIEVED && field != MW_MSG_DELETED &&
	    field != MW_MSG_DUE) {
		batch_set_error(b, "invalid message field %d", (int)field);
		return;
	}
	if ((op = batch_add(b, OP_MSG_UPDATE)) == NULL)
		return;
	op->dev_no = dev_no;
	memcpy(op->guid, guid, GUID_SIZE);
	memcpy(op->key, key, MW_MSG_KEY_SIZE);
	op->uid = uid;
	op->field = field;
	op->t = mw_time_to_u32(t);
}

void mw_batch_msg_update(struct mw_batch *b, uint16_t dev_no,
			 const char *mailbox_guid_hex, const char *msg_guid,
			 uint32_t uid, enum mw_msg_field field, time_t t)
{
	unsigned char key[MW_MSG_KEY_SIZE];

	mw_msg_key(msg_guid, key);
	mw_batch_msg_update_key(b, dev_no, mailbox_guid_hex, key, uid,
				field, t);
}

void mw_batch_msg_prune_key(struct mw_batch *b, const char *mailbox_guid_hex,
			    const unsigned char key[MW_MSG_KEY_SIZE])
{
	unsigned char guid[GUID_SIZE];
	struct batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, OP_MSG_PRUNE)) == NULL)
		return;
	memcpy(op->guid, guid, GUID_SIZE);
	memcpy(op->key, key, MW_MSG_KEY_SIZE);
}

void mw_batch_msg_prune(struct mw_batch *b, const char *mailbox_guid_hex,
			const char *msg_guid)
{
	unsigned char key[MW_MSG_KEY_SIZE];

	mw_msg_key(msg_guid, key);
	mw_batch_msg_prune_key(b, mailbox_guid_hex, key);
}

void mw_batch_mailbox_forget(struct mw_batch *b, const char *mailbox_guid_hex)
{
	unsigned char guid[GUID_SIZE];
	struct batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, OP_MAILBOX_FORGET)) == NULL)
		return;
	memcpy(op->guid, guid, GUID_SIZE);
}

void mw_batch_device_touch(struct mw_batch *b, const char *id_hex, time_t t,
			   unsigned int add_sessions,
			   unsigned int add_retrieved,
			   unsigned int add_deleted)
{
	unsigned char id[MW_DEVICE_ID_SIZE];
	struct batch_op *op;

	if (!batch_guid(b, id_hex, id, "device id") ||
	    (op = batch_add(b, OP_DEVICE_TOUCH)) == NULL)
		return;
	memcpy(op->guid, id, MW_DEVICE_ID_SIZE);
	op->t = mw_time_to_u64(t);
	op->a = add_sessions;
	op->b = add_retrieved;
	op->c = add_deleted;
}

void mw_batch_summary_set(struct mw_batch *b, uint16_t dev_no,
			  const char *mailbox_guid_hex, uint32_t uidvalidity,
			  uint32_t highest_uid, uint64_t highestmodseq,
			  time_t t)
{
	unsigned char guid[GUID_SIZE];
	struct batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, OP_SUMMARY_SET)) == NULL)
		return;
	op->dev_no = dev_no;
	memcpy(op->guid, guid, GUID_SIZE);
	op->a = uidvalidity;
	op->b = highest_uid;
	op->modseq = highestmodseq;
	op->t = mw_time_to_u64(t);
}

static bool batch_dev_exists(const struct mw_batch *b, uint16_t dev_no)
{
	return (b->devmap[dev_no / 8] & (1 << (dev_no % 8))) != 0;
}

/* An op for a missing device is dropped; those of the bound device are
   counted for the caller. */
static void batch_count_dropped(struct mw_batch *b, const struct batch_op *op)
{
	if (b->bound && op->dev_no == b->bound_dev_no)
		b->bound_dropped++;
}

/* Mailbox number with a one-entry cache (reset per attempt). create=false:
   returns MDB_NOTFOUND for unknown mailboxes. */
static int batch_mailbox(struct mw_batch *b, MDB_txn *txn,
			 const unsigned char guid[GUID_SIZE], bool create,
			 uint32_t *no_r)
{
	int rc;

	if (b->mbox_cached && memcmp(b->mbox_guid, guid, GUID_SIZE) == 0) {
		*no_r = b->mbox_no;
		return 0;
	}
	rc = mailbox_lookup(b->store, txn, guid, no_r);
	if (rc == MDB_NOTFOUND && create) {
		rc = mailbox_lookup_or_create(b->store, txn, guid, no_r);
		b->changed = true;
	}
	if (rc == 0) {
		b->mbox_cached = true;
		memcpy(b->mbox_guid, guid, GUID_SIZE);
		b->mbox_no = *no_r;
	}
	return rc;
}

static int apply_msg_update(struct mw_batch *b, MDB_txn *txn,
			    MDB_cursor *cur, const struct batch_op *op)
{
	unsigned char kb[MSG_DBKEY_SIZE], nd[MSG_DATA_SIZE];
	MDB_val k = { sizeof(kb), kb }, d = { sizeof(nd), nd };
	const unsigned char *old;
	uint32_t mbox, v;
	int rc;
	size_t off = op->field == MW_MSG_RETRIEVED ? 8 :
		op->field == MW_MSG_DELETED ? 12 : 16;

	if (!batch_dev_exists(b, op->dev_no)) {
		batch_count_dropped(b, op);
		return 0;
	}
	rc = batch_mailbox(b, txn, op->guid, true, &mbox);
	if (rc != 0)
		return rc;
	rc = msg_find(b->store, cur, op->dev_no, mbox, op->key, &old);
	if (rc == 0) {
		memcpy(nd, old, sizeof(nd));
	} else if (rc == MDB_NOTFOUND) {
		memset(nd, 0, sizeof(nd));
		memcpy(nd, op->key, MW_MSG_KEY_SIZE);
	} else {
		return rc;
	}
	v = mw_get_be32(nd + off);
	if (op->field == MW_MSG_DUE || v == 0)
		mw_put_be32(nd + off, (uint32_t)op->t);
	if (op->uid != 0)
		mw_put_be32(nd + 20, op->uid);
	if (rc == 0) {
		if (memcmp(nd, old, sizeof(nd)) == 0)
			return 0; /* unchanged */
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			return rc;
	} else if (mw_get_be32(nd + 8) == 0 && mw_get_be32(nd + 12) == 0 &&
		   mw_get_be32(nd + 16) == 0) {
		return 0; /* nothing to record (e.g. DUE cleared) */
	}
	msg_dbkey(kb, op->dev_no, mbox);
	b->changed = true;
	return mdb_cursor_put(cur, &k, &d, 0);
}

static int apply_msg_prune(struct mw_batch *b, MDB_txn *txn,
			   MDB_cursor *cur, const struct batch_op *op)
{
	const unsigned char *old;
	unsigned int i;
	uint32_t mbox;
	int rc;

	rc = batch_mailbox(b, txn, op->guid, false, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	for (i = 0; i < b->dev_count; i++) {
		rc = msg_find(b->store, cur, b->dev_nos[i], mbox, op->key,
			      &old);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
			return rc;
		b->changed = true;
	}
	return 0;
}

static int apply_mailbox_forget(struct mw_batch *b, MDB_txn *txn,
				const struct batch_op *op)
{
	struct mw_store *s = b->store;
	unsigned char kb[MSG_DBKEY_SIZE], nobuf[4];
	MDB_val k = { sizeof(kb), kb };
	MDB_val gk = { GUID_SIZE, (void *)op->guid }, nk = { 4, nobuf };
	unsigned int i;
	uint32_t mbox;
	int rc;

	rc = mailbox_lookup(s, txn, op->guid, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	b->changed = true;
	for (i = 0; i < b->dev_count; i++) {
		msg_dbkey(kb, b->dev_nos[i], mbox);
		rc = mdb_del(txn, s->dbi_messages, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		rc = mdb_del(txn, s->dbi_summaries, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	mw_put_be32(nobuf, mbox);
	rc = mdb_del(txn, s->dbi_mailboxes, &gk, NULL);
	if (rc == 0)
		rc = mdb_del(txn, s->dbi_mailbox_nos, &nk, NULL);
	b->mbox_cached = false;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* final: apply whatever the time (the transaction writes anyway);
   otherwise a touch that moves last_seen by less than
   MW_DEVICE_TOUCH_SECS is only marked deferred */
static int apply_device_touch(struct mw_batch *b, MDB_txn *txn,
			      struct batch_op *op, bool final)
{
	struct mw_device_rec rec;
	time_t t = mw_time_from_u64(op->t);
	int rc;

	if (b->bound_gone &&
	    memcmp(op->guid, b->bound_id, MW_DEVICE_ID_SIZE) == 0) {
		/* the session's device was removed: a device of the same id
		   registered since is another incarnation */
		b->bound_dropped++;
		return 0;
	}
	rc = device_get_txn(b->store, txn, op->guid, &rec);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	/* (a device's first session is always counted) */
	if (!final && b->touch_secs > 0 &&
	    (rec.sessions != 0 || op->a == 0) &&
	    (t <= rec.last_seen ||
	     (uint64_t)(t - rec.last_seen) < b->touch_secs)) {
		op->deferred = true;
		return 0;
	}
	if (t > rec.last_seen)
		rec.last_seen = t;
	b->changed = true;
	rec.sessions = mw_add_u32_sat(rec.sessions, op->a);
	rec.retrieved = mw_add_u32_sat(rec.retrieved, op->b);
	rec.deleted = mw_add_u32_sat(rec.deleted, op->c);
	return device_put(b->store, txn, &rec);
}

/* final: as apply_device_touch(); a summary equal to the stored one
   but for a time less than MW_DEVICE_TOUCH_SECS later is deferred */
static int apply_summary_set(struct mw_batch *b, MDB_txn *txn,
			     struct batch_op *op, bool final)
{
	unsigned char kb[MSG_DBKEY_SIZE], vb[SUMMARY_SIZE];
	MDB_val k = { sizeof(kb), kb }, v = { sizeof(vb), vb }, old;
	uint32_t mbox;
	int rc;

	if (!batch_dev_exists(b, op->dev_no)) {
		batch_count_dropped(b, op);
		return 0;
	}
	rc = batch_mailbox(b, txn, op->guid, true, &mbox);
	if (rc != 0)
		return rc;
	msg_dbkey(kb, op->dev_no, mbox);
	mw_put_be32(vb, op->a);
	mw_put_be32(vb + 4, op->b);
	mw_put_be64(vb + 8, op->modseq);
	mw_put_be64(vb + 16, op->t);
	if (!final && b->touch_secs > 0) {
		rc = mdb_get(txn, b->store->dbi_summaries, &k, &old);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == 0 && old.mv_size == sizeof(vb) &&
		    memcmp(old.mv_data, vb, 16) == 0 &&
		    op->t >= mw_get_be64((const unsigned char *)
					 old.mv_data + 16) &&
		    op->t - mw_get_be64((const unsigned char *)
					old.mv_data + 16) < b->touch_secs) {
			op->deferred = true;
			return 0;
		}
	}
	b->changed = true;
	return mdb_put(txn, b->store->dbi_summaries, &k, &v, 0);
}

static int batch_apply_txn(struct mw_store *s, MDB_txn *txn, void *ctx)
{
	struct mw_batch *b = ctx;
	struct mw_device_rec *recs;
	MDB_cursor *cur;
	unsigned int i, count;
	int rc;

	b->mbox_cached = false;
	free(b->dev_nos);
	b->dev_nos = NULL;
	b->dev_count = 0;
	memset(b->devmap, 0, sizeof(b->devmap));
	rc = devices_load(s, txn, &recs, &count);
	if (rc != 0)
		return rc;
	if (count > 0) {
		b->dev_nos = malloc(count * sizeof(*b->dev_nos));
		if (b->dev_nos == NULL) {
			free(recs);
			return ENOMEM;
		}
	}
	for (i = 0; i < count; i++) {
		b->dev_nos[i] = recs[i].dev_no;
		b->devmap[recs[i].dev_no / 8] |= 1 << (recs[i].dev_no % 8);
	}
	b->dev_count = count;
	b->bound_gone = false;
	b->bound_dropped = 0;
	b->changed = false;
	if (b->bound) {
		/* the session's device must still exist with its number */
		for (i = 0; i < count; i++) {
			if (memcmp(recs[i].id, b->bound_id,
				   MW_DEVICE_ID_SIZE) == 0)
				break;
		}
		if (i == count || recs[i].dev_no != b->bound_dev_no) {
			b->bound_gone = true;
			b->devmap[b->bound_dev_no / 8] &=
				(unsigned char)~(1 << (b->bound_dev_no % 8));
		}
	}
	free(recs);

	rc = mdb_cursor_open(txn, s->dbi_messages, &cur);
	if (rc != 0)
		return rc;
	for (i = 0; i < b->count && rc == 0; i++) {
		struct batch_op *op = &b->ops[i];

		op->deferred = false;
		switch (op->type) {
		case OP_MSG_UPDATE:
			rc = apply_msg_update(b, txn, cur, op);
			break;
		case OP_MSG_PRUNE:
			rc = apply_msg_prune(b, txn, cur, op);
			break;
		case OP_MAILBOX_FORGET:
			rc = apply_mailbox_forget(b, txn, op);
			break;
		case OP_DEVICE_TOUCH:
			rc = apply_device_touch(b, txn, op, false);
			break;
		case OP_SUMMARY_SET:
			rc = apply_summary_set(b, txn, op, false);
			break;
		}
	}
	mdb_cursor_close(cur);
	/* touches that alone would not be worth a write go with one that
	   writes anyway; a batch that changes nothing else writes nothing
	   (their counts are not added: see mw_batch_device_touch()) */
	for (i = 0; i < b->count && rc == 0 && b->changed; i++) {
		if (!b->ops[i].deferred)
			continue;
		if (b->ops[i].type == OP_DEVICE_TOUCH)
			rc = apply_device_touch(b, txn, &b->ops[i], true);
		else if (b->ops[i].type == OP_SUMMARY_SET)
			rc = apply_summary_set(b, txn, &b->ops[i], true);
	}
	if (rc == 0 && !b->changed)
		return MW_RC_NOCHANGE;
	return rc;
}

static void batch_free(struct mw_batch *b)
{
	free(b->dev_nos);
	free(b->ops);
	free(b);
}

static int batch_write(struct mw_store *s, struct mw_batch *b)
{
	return store_write(s, "committing batch", batch_apply_txn, b);
}

static int batch_write_guarded(struct mw_store *s, struct mw_batch *b)
{
	const char *error;

	STORE_GUARDED(s, &error, batch_write(s, b));
}

int mw_batch_commit(struct mw_batch **_batch, const char **error_r)
{
	struct mw_batch *b = *_batch;
	struct mw_store *s = b->store;
	int ret = 0;

	*_batch = NULL;
	if (b->failed) {
		store_set_error(s, "batch rejected: %s", b->error);
		ret = -1;
	} else if (b->count > 0 && batch_write_guarded(s, b) < 0) {
		ret = -1;
	} else if (b->bound_dropped_r != NULL) {
		*b->bound_dropped_r = b->bound_dropped;
	}
	batch_free(b);
	if (ret < 0)
		*error_r = s->error;
	return ret;
}

void mw_batch_abort(struct mw_batch **_batch)
{
	struct mw_batch *b = *_batch;

	if (b == NULL)
		return;
	*_batch = NULL;
	batch_free(b);
}
