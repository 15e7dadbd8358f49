#ifndef MW_STORE_LMDB_H
#define MW_STORE_LMDB_H

/* The LMDB backend of the state store (mw-store-private.h), shared by its
   files only:
   mw-store-lmdb-txn.c     errors, the fault guard, transactions, moving a
                           damaged store aside
   mw-store-lmdb-open.c    the per-directory handle cache, open, close,
                           the backend's operations table
   mw-store-lmdb-record.c  on-disk record formats and small DB helpers
   mw-store-lmdb-device.c  devices
   mw-store-lmdb-msg.c     message records, summaries, mailbox names, owner
   mw-store-lmdb-batch.c   applying a batch in one write transaction
   mw-store-lmdb-stat.c    reader slots and statistics
   mw-store-lmdb-hold.c    the legal hold mark

   Internal functions returning int return 0, an LMDB or errno code, or
   MW_RC_FAILED with the store's error set (see mw_lmdb_write()). */

#include "mw-store-private.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/types.h>

#include <lmdb.h>

/* internal to the store: not exported from a plugin that links the core */
#pragma GCC visibility push(hidden)

/* error already formatted into store->error */
#define MW_RC_FAILED (-1)
/* a write transaction body changed nothing: abort it, nothing is written
   or synced, the call succeeds */
#define MW_RC_NOCHANGE (-2)

#define DEV_FIXED_SIZE 34
#define DEV_VALUE_MAX (DEV_FIXED_SIZE + MW_PROTOCOL_MAX + MW_LABEL_MAX)
#define MSG_DBKEY_SIZE 6
#define MSG_DATA_SIZE 28
/* a message record of store format 1 (no noted field) */
#define MSG_DATA_SIZE_V1 24
#define SUMMARY_SIZE 24

struct lmdb_store {
	struct mw_store base;
	/* the process' handles (one per directory) */
	struct lmdb_store *next;
	pid_t pid;
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
};

#define LMDB_STORE(store) ((struct lmdb_store *)(store))

/* ---- errors (mw-store-lmdb-txn.c) ---- */

#define store_set_error(s, ...) mw_store_set_error(&(s)->base, __VA_ARGS__)

static inline int store_fail(struct lmdb_store *s, const char **error_r)
{
	*error_r = s->base.error;
	return -1;
}

/* A damaged store: the error is set and the store will be moved aside
   when the guarded call returns. */
void mw_lmdb_set_corrupt(struct lmdb_store *s, const char *fmt, ...)
	MW_ATTR_FORMAT(2, 3);
/* TRUE for the LMDB codes that mean a damaged file. */
bool mw_lmdb_rc_is_corrupt(int rc);
/* Sets the error of a failed read for an LMDB code (MW_RC_FAILED: set
   already). Returns -1. */
int mw_lmdb_read_error(struct lmdb_store *s, const char *what, int rc);
/* Sets the error of a failed read unless rc is 0 or MDB_NOTFOUND.
   Returns 1 (rc 0), 0 (MDB_NOTFOUND) or -1 with *error_r. */
int mw_lmdb_read_result(struct lmdb_store *s, const char *what, int rc,
			const char **error_r);

/* ---- fault guard (mw-store-lmdb-txn.c) ----

   LMDB trusts page contents: a damaged data page (disk corruption, a bad
   restore) can make it read outside the map (SIGSEGV), beyond the end of
   the file (SIGBUS) or fail an assertion (abort). Every backend operation
   runs under a guard: such a fault while the guard is active jumps back
   to the operation, which moves the store aside (mw_lmdb_quarantine())
   and returns an error, so a damaged store never crashes the process,
   let alone every login of its user.

   The handlers are installed once per process while a handle exists (no
   system call per store call); a fault outside a guard (another bug, or
   a callback of the caller) restores the previous disposition and
   re-executes, so it crashes as it would have without mailward.
   Callbacks of the caller run with the guard suspended. */

extern sigjmp_buf *mw_lmdb_guard_jmp;
extern volatile sig_atomic_t mw_lmdb_guard_signo;
/* Installs the handlers with the first handle, removes them with the
   last. */
void mw_lmdb_guard_ref(void);
void mw_lmdb_guard_unref(void);
/* LMDB's assertion callback (mdb_env_set_assert()). */
void mw_lmdb_assert_handler(MDB_env *env, const char *msg);

/* Around callbacks of the caller: their faults are not the store's. */
#define GUARD_SUSPEND(saved) \
	do { (saved) = mw_lmdb_guard_jmp; mw_lmdb_guard_jmp = NULL; } while (0)
#define GUARD_RESUME(saved) \
	do { mw_lmdb_guard_jmp = (saved); } while (0)

/* Moves the damaged data.mdb of s aside as data.mdb.corrupt.<UTC time>
   (kept, never deleted) and removes its lock file, unless another process
   did so already. The handle is closed and dead afterwards: every call
   fails, and the next open of the directory creates a fresh store.
   faulted: LMDB faulted inside a call (its state is unknown). why: what
   went wrong (NULL: the error already set). Returns 0 moved
   (reset_path set), -1 not moved. */
int mw_lmdb_quarantine(struct lmdb_store *s, bool faulted, const char *why);

/* Runs expr (an int-returning call on store s) under the fault guard and
   returns its result from the enclosing function; nested use runs expr
   directly. A fault or a detected corruption moves the store aside. */
#define STORE_GUARDED(s, error_r, expr) do { \
	sigjmp_buf guard_buf_; \
	volatile int guard_ret_; \
	if (mw_lmdb_guard_jmp != NULL) \
		return (expr); \
	if ((s)->dead) \
		return store_fail((s), (error_r)); \
	if (sigsetjmp(guard_buf_, 0) != 0) { \
		(void)mw_lmdb_quarantine((s), true, \
			mw_lmdb_guard_signo == SIGBUS ? \
			"bus error reading it" : \
			mw_lmdb_guard_signo == SIGABRT ? \
			"LMDB assertion failed" : \
			"segmentation fault reading it"); \
		return store_fail((s), (error_r)); \
	} \
	mw_lmdb_guard_jmp = &guard_buf_; \
	guard_ret_ = (expr); \
	mw_lmdb_guard_jmp = NULL; \
	if (guard_ret_ < 0 && (s)->corrupt && !(s)->dead) { \
		(void)mw_lmdb_quarantine((s), false, NULL); \
		*(error_r) = (s)->base.error; \
	} \
	return guard_ret_; \
} while (0)

/* getpid(), cached (forgotten in a fork()ed child). */
pid_t mw_lmdb_getpid(void);

/* ---- transactions (mw-store-lmdb-txn.c) ---- */

/* Begins a transaction (flags: MDB_RDONLY or 0), adopting a map grown by
   another process. Returns 0 or -1 with the error set (also for a nested
   call or a handle inherited over fork()). */
int mw_lmdb_txn_begin(struct lmdb_store *s, unsigned int flags,
		      MDB_txn **txn_r);
void mw_lmdb_txn_abort(struct lmdb_store *s, MDB_txn *txn);
/* Commits (LMDB frees txn even on failure); returns LMDB's code. */
int mw_lmdb_txn_commit(struct lmdb_store *s, MDB_txn *txn);

/* A write transaction body: returns 0, MW_RC_NOCHANGE, an LMDB/errno
   code, or MW_RC_FAILED with the error set. Must be repeatable: it may
   run again from scratch after MDB_MAP_FULL. */
typedef int mw_lmdb_txn_fn(struct lmdb_store *s, MDB_txn *txn, void *ctx);
/* Runs fn in a write transaction and commits it, growing the map and
   running fn again on MDB_MAP_FULL. Returns 0 or -1 with the error set
   (naming what). */
int mw_lmdb_write(struct lmdb_store *s, const char *what, mw_lmdb_txn_fn *fn,
		  void *ctx);
/* Runs fn in a read transaction. Returns what mw_lmdb_read_result()
   returns for fn's code (what names the read). */
int mw_lmdb_read(struct lmdb_store *s, const char *what, mw_lmdb_txn_fn *fn,
		 void *ctx, const char **error_r);
/* Same under the fault guard (for a backend operation). */
int mw_lmdb_read_guarded(struct lmdb_store *s, const char *what,
			 mw_lmdb_txn_fn *fn, void *ctx, const char **error_r);

/* ---- the handle cache (mw-store-lmdb-open.c) ---- */

/* Removes s from the process' handles: the next open of its directory
   opens another. */
void mw_lmdb_stores_unlink(struct lmdb_store *s);
/* Creates the store that replaces a damaged one at path, recording when
   (meta "reset_time"). */
void mw_lmdb_create_fresh(const char *path, time_t now);

/* ---- records (mw-store-lmdb-record.c) ---- */

void mw_lmdb_msg_dbkey(unsigned char k[MSG_DBKEY_SIZE], uint16_t dev_no,
		       uint32_t mailbox_no);
void mw_lmdb_dev_rec_set_id(struct mw_device_rec *rec,
			    const unsigned char *id);
int mw_lmdb_dev_decode(struct lmdb_store *s, const MDB_val *key,
		       const MDB_val *val, struct mw_device_rec *rec);
/* Decodes a message record (key k: MSG_DBKEY_SIZE bytes, data d:
   MSG_DATA_SIZE bytes) into rec, cleared first (dev_id and
   mailbox_guid_hex stay zero: the caller fills them). */
void mw_lmdb_msg_decode(const unsigned char *k, const unsigned char *d,
			struct mw_msg_rec *rec);
/* The same without clearing rec first: sets every field but dev_id and
   mailbox_guid_hex (an iteration sets those when they change). */
void mw_lmdb_msg_decode_fields(const unsigned char *k, const unsigned char *d,
			       struct mw_msg_rec *rec);
int mw_lmdb_mailbox_lookup(struct lmdb_store *s, MDB_txn *txn,
			   const unsigned char guid[MW_STORE_GUID_SIZE],
			   uint32_t *no_r);
int mw_lmdb_mailbox_lookup_or_create(struct lmdb_store *s, MDB_txn *txn,
				     const unsigned char guid[MW_STORE_GUID_SIZE],
				     uint32_t *no_r);
/* The GUID of mailbox_no (missing: corrupt). */
int mw_lmdb_mailbox_guid_of(struct lmdb_store *s, MDB_txn *txn,
			    uint32_t mailbox_no,
			    char guid_hex[MW_MAILBOX_GUID_HEX_SIZE]);
int mw_lmdb_meta_get_u32(struct lmdb_store *s, MDB_txn *txn,
			 const char *name, uint32_t *value_r);
int mw_lmdb_meta_put_u32(struct lmdb_store *s, MDB_txn *txn,
			 const char *name, uint32_t value);
/* Deletes every record with the 2-byte dev_no prefix from dbi. */
int mw_lmdb_delete_dev_prefix(MDB_txn *txn, MDB_dbi dbi, uint16_t dev_no,
			      unsigned int del_flags);
/* Deletes the device with its message records and summaries. */
int mw_lmdb_device_delete_all(struct lmdb_store *s, MDB_txn *txn,
			      const struct mw_device_rec *rec);
/* Makes room in arr, a malloc()ed array of *alloc elements of elem_size
   bytes with count used, for one more element. Returns the array (moved
   or not; *alloc updated), or NULL when out of memory (arr unchanged and
   still the caller's). */
void *mw_lmdb_array_room(void *arr, unsigned int *alloc, unsigned int count,
			 size_t elem_size);
/* Reads all devices (id order). *recs_r is malloc()ed (may be NULL when
   count is 0). */
int mw_lmdb_devices_load(struct lmdb_store *s, MDB_txn *txn,
			 struct mw_device_rec **recs_r,
			 unsigned int *count_r);
/* The devices of a read transaction by number, for mw_msg_rec.dev_id */
struct mw_lmdb_owners {
	struct mw_device_rec *recs;
	unsigned int count;
};
/* Loads the devices of txn into o (free with mw_lmdb_owners_free()).
   Returns 0 or an error code (o then empty). */
int mw_lmdb_owners_load(struct lmdb_store *s, MDB_txn *txn,
			struct mw_lmdb_owners *o);
/* Sets rec->dev_id to the id of the device holding rec->dev_no in o (all
   zero: none). */
void mw_lmdb_owner_fill(const struct mw_lmdb_owners *o,
			struct mw_msg_rec *rec);
void mw_lmdb_owners_free(struct mw_lmdb_owners *o);
/* Pages on LMDB's freelist in txn (mdb_stat -f). Returns 0 or an LMDB
   code. */
int mw_lmdb_count_free_pages(MDB_txn *txn, uint64_t *count_r);
int mw_lmdb_device_get_txn(struct lmdb_store *s, MDB_txn *txn,

			   const unsigned char id[MW_DEVICE_ID_SIZE],
			   struct mw_device_rec *rec_r);
int mw_lmdb_device_put(struct lmdb_store *s, MDB_txn *txn,
		       const struct mw_device_rec *rec);
/* Rewrites every message record of a format 1 store (MSG_DATA_SIZE_V1
   bytes) as a format 2 one (noted 0 = not noted), in txn (a write
   transaction; the caller sets the format). Returns 0 or an error (a
   record of neither size: corrupt). */
int mw_lmdb_upgrade_v1(struct lmdb_store *s, MDB_txn *txn);
/* Positions cur at the record of key in (dev_no, mailbox_no).
   Returns 0 (data_r set), MDB_NOTFOUND or an error. */
int mw_lmdb_msg_find(struct lmdb_store *s, MDB_cursor *cur, uint16_t dev_no,
		     uint32_t mailbox_no,
		     const unsigned char key[MW_MSG_KEY_SIZE],
		     const unsigned char **data_r);

/* ---- the backend's operations (struct mw_store_backend) ---- */

mw_store_open_fn mw_lmdb_open;
mw_store_close_fn mw_lmdb_close;
mw_store_set_inbox_marked_fn mw_lmdb_set_inbox_marked;
mw_store_check_owner_fn mw_lmdb_check_owner;
mw_store_hold_mark_get_fn mw_lmdb_hold_mark_get;
mw_store_hold_mark_set_fn mw_lmdb_hold_mark_set;
mw_store_get_stat_fn mw_lmdb_get_stat;
mw_store_readers_fn mw_lmdb_reader_check;
mw_store_readers_fn mw_lmdb_reader_count_others;
mw_store_device_get_fn mw_lmdb_device_get;
mw_store_device_register_fn mw_lmdb_device_register;
mw_store_device_expire_fn mw_lmdb_device_expire;
mw_store_device_iter_fn mw_lmdb_device_iter;
mw_store_device_forget_fn mw_lmdb_device_forget;
mw_store_msg_get_key_fn mw_lmdb_msg_get_key;
mw_store_msg_get_many_fn mw_lmdb_msg_get_many;
mw_store_msg_iter_fn mw_lmdb_msg_iter;
mw_store_summary_get_fn mw_lmdb_summary_get;
mw_store_mailbox_name_get_fn mw_lmdb_mailbox_name_get;
mw_store_mailbox_name_set_fn mw_lmdb_mailbox_name_set;
mw_store_mailbox_iter_fn mw_lmdb_mailbox_iter;
mw_store_batch_apply_fn mw_lmdb_batch_apply;

#pragma GCC visibility pop

#endif
