#ifndef MW_STORE_PRIVATE_H
#define MW_STORE_PRIVATE_H

/* The state store behind mw-store.h: the backend-neutral handle and batch
   (mw-store.c, mw-store-batch.c) and the interface a backend implements.
   The one backend is LMDB (mw-store-lmdb*.c); a shared backend for sites
   with several mail servers would be a second struct mw_store_backend,
   chosen at mw_store_open*(), without a change to the callers of
   mw-store.h (policy, glue, doveadm, CLI). Only store files include this. */

#include "mw-store.h"
#include "mw-util.h"

#include <limits.h>
#include <stdarg.h>

/* internal to the store: not exported from a plugin that links the core */
#pragma GCC visibility push(hidden)

#define MW_STORE_GUID_SIZE 16
#define MW_STORE_MAX_DEV_NO 65535
#define MW_STORE_OWNER_MAX 255

/* The part of a handle every backend has; a backend's handle embeds it as
   its first member. */
struct mw_store {
	const struct mw_store_backend *backend;
	unsigned int refcount;
	/* the realpath of the directory */
	char *path;
	/* where a damaged store was moved (this handle's doing), or NULL */
	char *reset_path;
	/* this store replaced a damaged or lost one then (0: never) */
	time_t reset_time;
	/* at open, an earlier store's data was missing: lost, not new */
	bool data_lost;
	/* the user's INBOX carries this store's marker */
	bool inbox_marked;
	/* this handle's open initialized the store */
	bool created;
	/* the last error, "mailward store <path>: ..." */
	char error[PATH_MAX + 512];
};

struct mw_batch_op {
	enum {
		MW_BATCH_OP_MSG_UPDATE,
		MW_BATCH_OP_MSG_PRUNE,
		MW_BATCH_OP_MAILBOX_FORGET,
		MW_BATCH_OP_DEVICE_TOUCH,
		MW_BATCH_OP_SUMMARY_SET,
	} type;
	enum mw_msg_field field;
	uint16_t dev_no;
	/* mailbox GUID or device id */
	unsigned char guid[MW_STORE_GUID_SIZE];
	unsigned char key[MW_MSG_KEY_SIZE];
	/* DEVICE_TOUCH: a = sessions, b = retrieved, c = deleted to add;
	   SUMMARY_SET: a = uidvalidity, b = highest_uid */
	uint32_t uid, a, b, c;
	uint64_t t, modseq;
	/* backend's use while applying: a touch left for the end */
	bool deferred;
};

/* mw_batch_expect_device(): dev_no's operations mean device id */
struct mw_batch_expect {
	uint16_t dev_no;
	unsigned char id[MW_DEVICE_ID_SIZE];
};

/* The operations queued by mw_batch_*(), applied by the backend. */

struct mw_batch {
	struct mw_store *store;
	struct mw_batch_op *ops;
	unsigned int count, alloc;
	bool failed;
	char error[256];
	/* mw_batch_set_touch_secs() */
	uint64_t touch_secs;

	/* mw_batch_bind_device(): the device that made the dev_no ops */
	bool bound;
	uint16_t bound_dev_no;
	unsigned char bound_id[MW_DEVICE_ID_SIZE];
	unsigned int *bound_dropped_r;
	/* mw_batch_expect_device() */
	struct mw_batch_expect *expects;
	unsigned int expect_count, expect_alloc;
};


/* A backend's operations. Arguments are checked (ids and GUIDs decoded,
   names bounded) by mw-store.c before these are called. Each int
   function returns as the mw-store.h function of the same name, with the
   error in store->error (error_r points there, or at an open error for
   open). */
typedef int mw_store_open_fn(const char *dir, size_t mapsize,
			     struct mw_store **store_r, const char **error_r);
/* the last reference was dropped */
typedef void mw_store_close_fn(struct mw_store *store);
typedef int mw_store_set_inbox_marked_fn(struct mw_store *store, time_t now,
					 time_t reset_time,
					 const char **error_r);
/* owner_r: MW_STORE_OWNER_MAX + 1 bytes of the caller */
typedef int mw_store_check_owner_fn(struct mw_store *store, const char *user,
				    char *owner_r, const char **error_r);
typedef int mw_store_hold_mark_get_fn(struct mw_store *store,
				      time_t *since_r, const char **error_r);
typedef int mw_store_hold_mark_set_fn(struct mw_store *store, bool hold,
				      time_t now, const char **error_r);
typedef int mw_store_get_stat_fn(struct mw_store *store,
				 struct mw_store_stat *stat_r,
				 const char **error_r);
/* reader_check: *count_r gets the slots cleared; reader_count_others:
   the slots of other processes */
typedef int mw_store_readers_fn(struct mw_store *store, unsigned int *count_r,
				const char **error_r);
typedef int mw_store_device_get_fn(struct mw_store *store,
				   const unsigned char id[MW_DEVICE_ID_SIZE],
				   struct mw_device_rec *rec_r,
				   const char **error_r);
/* label and protocol are not NULL */
typedef int mw_store_device_register_fn(
	struct mw_store *store, const unsigned char id[MW_DEVICE_ID_SIZE],
	const char *label, const char *protocol, time_t now,
	const struct mw_device_limits *limits, mw_device_event_cb *cb,
	void *ctx, struct mw_device_rec *rec_r, const char **error_r);
typedef int mw_store_device_expire_fn(struct mw_store *store, time_t now,
				      time_t expire_secs,
				      mw_device_event_cb *cb, void *ctx,
				      const char **error_r);
typedef int mw_store_device_iter_fn(
	struct mw_store *store,
	int (*cb)(const struct mw_device_rec *rec, void *ctx), void *ctx,
	const char **error_r);
/* prefix: 6 to 32 lower-case hex digits */
typedef int mw_store_device_forget_fn(struct mw_store *store,
				      const char *prefix,
				      struct mw_device_rec *rec_r,
				      const char **error_r);
typedef int mw_store_msg_get_key_fn(
	struct mw_store *store, uint16_t dev_no,
	const unsigned char mailbox[MW_STORE_GUID_SIZE],
	const unsigned char key[MW_MSG_KEY_SIZE], struct mw_msg_rec *rec_r,
	const char **error_r);
/* count > 0; found is FALSE in every query on entry */
typedef int mw_store_msg_get_many_fn(
	struct mw_store *store,
	const unsigned char mailbox[MW_STORE_GUID_SIZE],
	struct mw_msg_query *queries, unsigned int count,
	const char **error_r);
/* mailbox NULL: all mailboxes */
typedef int mw_store_msg_iter_fn(
	struct mw_store *store, int dev_no, const unsigned char *mailbox,
	int (*cb)(const struct mw_msg_rec *rec, void *ctx), void *ctx,
	const char **error_r);
typedef int mw_store_summary_get_fn(
	struct mw_store *store, uint16_t dev_no,
	const unsigned char mailbox[MW_STORE_GUID_SIZE],
	struct mw_summary_rec *rec_r, const char **error_r);
/* name: 1 to MW_MAILBOX_NAME_MAX bytes */
typedef int mw_store_mailbox_name_get_fn(
	struct mw_store *store, const char *name,
	unsigned char guid_r[MW_STORE_GUID_SIZE], const char **error_r);
/* old_guid NULL: none */
typedef int mw_store_mailbox_name_set_fn(
	struct mw_store *store, const char *name,
	const unsigned char *old_guid,
	const unsigned char new_guid[MW_STORE_GUID_SIZE],
	const char **error_r);
typedef int mw_store_mailbox_iter_fn(
	struct mw_store *store, int (*cb)(const char *guid_hex, void *ctx),
	void *ctx, const char **error_r);
/* Applies batch (not failed, count > 0) all or nothing; *dropped_r gets
   the number of operations of the bound device dropped. */
typedef int mw_store_batch_apply_fn(struct mw_store *store,
				    struct mw_batch *batch,
				    unsigned int *dropped_r,
				    const char **error_r);

struct mw_store_backend {
	const char *name;
	mw_store_open_fn *open;
	mw_store_close_fn *close;
	mw_store_set_inbox_marked_fn *set_inbox_marked;
	mw_store_check_owner_fn *check_owner;
	mw_store_hold_mark_get_fn *hold_mark_get;
	mw_store_hold_mark_set_fn *hold_mark_set;
	mw_store_get_stat_fn *get_stat;
	mw_store_readers_fn *reader_check;
	mw_store_readers_fn *reader_count_others;
	mw_store_device_get_fn *device_get;
	mw_store_device_register_fn *device_register;
	mw_store_device_expire_fn *device_expire;
	mw_store_device_iter_fn *device_iter;
	mw_store_device_forget_fn *device_forget;
	mw_store_msg_get_key_fn *msg_get_key;
	mw_store_msg_get_many_fn *msg_get_many;
	mw_store_msg_iter_fn *msg_iter;
	mw_store_summary_get_fn *summary_get;
	mw_store_mailbox_name_get_fn *mailbox_name_get;
	mw_store_mailbox_name_set_fn *mailbox_name_set;
	mw_store_mailbox_iter_fn *mailbox_iter;
	mw_store_batch_apply_fn *batch_apply;
};

/* The LMDB backend (mw-store-lmdb*.c). */
extern const struct mw_store_backend mw_store_backend_lmdb;

/* Sets store->error to "mailward store <path>: " and the message. */
void mw_store_set_error(struct mw_store *store, const char *fmt, ...)
	MW_ATTR_FORMAT(2, 3);
void mw_store_set_errorv(struct mw_store *store, const char *fmt,
			 va_list args) MW_ATTR_FORMAT(2, 0);
/* Decodes exactly size bytes of hex (either case) into out. Returns 0, or
   -1 with "invalid <what> '<escaped hex>'" in err (err_size bytes). */
int mw_store_parse_hex(const char *hex, unsigned char *out, size_t size,
		       const char *what, char *err, size_t err_size);

#pragma GCC visibility pop

#endif
