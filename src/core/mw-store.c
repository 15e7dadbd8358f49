/* mailward core: the state store's backend-neutral front (see mw-store.h
   and mw-store-private.h): it checks the arguments, holds what every
   backend's handle has, and hands the rest to the handle's backend. */

#include "mw-store-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mw_store_set_errorv(struct mw_store *store, const char *fmt,
			 va_list args)
{
	char tmp[512];

	(void)vsnprintf(tmp, sizeof(tmp), fmt, args);
	(void)snprintf(store->error, sizeof(store->error),
		       "mailward store %s: %s", store->path, tmp);
}

void mw_store_set_error(struct mw_store *store, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	mw_store_set_errorv(store, fmt, args);
	va_end(args);
}

int mw_store_parse_hex(const char *hex, unsigned char *out, size_t size,
		       const char *what, char *err, size_t err_size)
{
	char esc[80];

	if (mw_hex_decode(hex, out, size) == 0)
		return 0;
	(void)mw_escape(hex == NULL ? "(null)" : hex, NULL, esc, sizeof(esc),
			NULL);
	(void)snprintf(err, err_size, "invalid %s '%s'", what, esc);
	return -1;
}

/* Decodes an argument of store (a device id or mailbox GUID); sets the
   store's error for a malformed one. */
static int store_arg_hex(struct mw_store *store, const char *hex,
			 unsigned char *out, size_t size, const char *what,
			 const char **error_r)
{
	char err[128];

	if (mw_store_parse_hex(hex, out, size, what, err, sizeof(err)) == 0)
		return 0;
	mw_store_set_error(store, "%s", err);
	*error_r = store->error;
	return -1;
}

static int store_arg_mailbox(struct mw_store *store, const char *guid_hex,
			     unsigned char guid[MW_STORE_GUID_SIZE],
			     const char **error_r)
{
	return store_arg_hex(store, guid_hex, guid, MW_STORE_GUID_SIZE,
			     "mailbox GUID", error_r);
}

static int store_arg_name(struct mw_store *store, const char *name,
			  const char **error_r)
{
	size_t len = strlen(name);

	if (len > 0 && len <= MW_MAILBOX_NAME_MAX)
		return 0;
	mw_store_set_error(store, "mailbox name of %zu bytes not supported",
			   len);
	*error_r = store->error;
	return -1;
}

int mw_store_open_mapsize(const char *dir, size_t mapsize,
			  struct mw_store **store_r, const char **error_r)
{
	/* the one backend; another would be chosen here (by dir or by a
	   setting), its callers unchanged */
	return mw_store_backend_lmdb.open(dir, mapsize, store_r, error_r);
}

int mw_store_open(const char *dir, struct mw_store **store_r,
		  const char **error_r)
{
	return mw_store_open_mapsize(dir, 0, store_r, error_r);
}

void mw_store_unref(struct mw_store **_store)
{
	struct mw_store *store = *_store;

	if (store == NULL)
		return;
	*_store = NULL;
	if (--store->refcount > 0)
		return;
	store->backend->close(store);
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

int mw_store_set_inbox_marked(struct mw_store *store, time_t now,
			      time_t reset_time, const char **error_r)
{
	return store->backend->set_inbox_marked(store, now, reset_time,
						error_r);
}

int mw_store_hold_mark_get(struct mw_store *store, time_t *since_r,
			   const char **error_r)
{
	return store->backend->hold_mark_get(store, since_r, error_r);
}

int mw_store_hold_mark_set(struct mw_store *store, bool hold, time_t now,
			   const char **error_r)
{
	return store->backend->hold_mark_set(store, hold, now, error_r);
}

const char *mw_store_get_path(struct mw_store *store)
{
	return store->path;
}

unsigned int mw_store_get_refcount(struct mw_store *store)
{
	return store->refcount;
}

int mw_store_check_owner(struct mw_store *store, const char *user,
			 const char **owner_r, const char **error_r)
{
	static char owner[MW_STORE_OWNER_MAX + 1];

	owner[0] = '\0';
	*owner_r = owner;
	return store->backend->check_owner(store, user, owner, error_r);
}

int mw_store_get_stat(struct mw_store *store, struct mw_store_stat *stat_r,
		      const char **error_r)
{
	return store->backend->get_stat(store, stat_r, error_r);
}

int mw_store_reader_check(struct mw_store *store, unsigned int *cleared_r,
			  const char **error_r)
{
	return store->backend->reader_check(store, cleared_r, error_r);
}

int mw_store_reader_count_others(struct mw_store *store,
				 unsigned int *count_r, const char **error_r)
{
	return store->backend->reader_count_others(store, count_r, error_r);
}

/* ---- devices ---- */

int mw_store_device_get(struct mw_store *store, const char *id_hex,
			struct mw_device_rec *rec_r, const char **error_r)
{
	unsigned char id[MW_DEVICE_ID_SIZE];

	if (store_arg_hex(store, id_hex, id, sizeof(id), "device id",
			  error_r) < 0)
		return -1;
	return store->backend->device_get(store, id, rec_r, error_r);
}

int mw_store_device_register(struct mw_store *store, const char *id_hex,
			     const char *label, const char *protocol,
			     time_t now, unsigned int max_devices,
			     time_t expire_secs, mw_device_event_cb *cb,
			     void *ctx, struct mw_device_rec *rec_r,
			     const char **error_r)
{
	struct mw_device_limits limits;

	memset(&limits, 0, sizeof(limits));
	limits.max_devices = max_devices;
	limits.expire_secs = expire_secs;
	return mw_store_device_register_limits(store, id_hex, label,
					       protocol, now, &limits, cb,
					       ctx, rec_r, error_r);
}

int mw_store_device_register_limits(struct mw_store *store,
				    const char *id_hex, const char *label,
				    const char *protocol, time_t now,
				    const struct mw_device_limits *limits,
				    mw_device_event_cb *cb, void *ctx,
				    struct mw_device_rec *rec_r,
				    const char **error_r)
{
	unsigned char id[MW_DEVICE_ID_SIZE];

	if (store_arg_hex(store, id_hex, id, sizeof(id), "device id",
			  error_r) < 0)
		return -1;
	return store->backend->device_register(
		store, id, label != NULL ? label : "",
		protocol != NULL ? protocol : "", now, limits, cb, ctx,
		rec_r, error_r);
}


int mw_store_device_expire(struct mw_store *store, time_t now,
			   time_t expire_secs, mw_device_event_cb *cb,
			   void *ctx, const char **error_r)
{
	return store->backend->device_expire(store, now, expire_secs, cb, ctx,
					     error_r);
}

int mw_store_device_iter(struct mw_store *store,
			 int (*cb)(const struct mw_device_rec *rec, void *ctx),
			 void *ctx, const char **error_r)
{
	return store->backend->device_iter(store, cb, ctx, error_r);
}

int mw_store_device_forget(struct mw_store *store, const char *id_prefix,
			   struct mw_device_rec *rec_r, const char **error_r)
{
	char prefix[MW_DEVICE_ID_HEX_SIZE], esc[80];
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
		(void)mw_escape(id_prefix == NULL ? "(null)" : id_prefix,
				NULL, esc, sizeof(esc), NULL);
		mw_store_set_error(store, "invalid device id (prefix) '%s': "
				   "need 6 to 32 hex digits", esc);
		*error_r = store->error;
		return -1;
	}
	prefix[len] = '\0';
	return store->backend->device_forget(store, prefix, rec_r, error_r);
}

/* ---- messages, summaries, mailboxes ---- */

int mw_store_msg_get_key(struct mw_store *store, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 const unsigned char key[MW_MSG_KEY_SIZE],
			 struct mw_msg_rec *rec_r, const char **error_r)
{
	unsigned char guid[MW_STORE_GUID_SIZE];

	if (store_arg_mailbox(store, mailbox_guid_hex, guid, error_r) < 0)
		return -1;
	return store->backend->msg_get_key(store, dev_no, guid, key, rec_r,
					   error_r);
}

int mw_store_msg_get(struct mw_store *store, uint16_t dev_no,
		     const char *mailbox_guid_hex, const char *msg_guid,
		     struct mw_msg_rec *rec_r, const char **error_r)
{
	unsigned char key[MW_MSG_KEY_SIZE];

	mw_msg_key(msg_guid, key);
	return mw_store_msg_get_key(store, dev_no, mailbox_guid_hex, key,
				    rec_r, error_r);
}

int mw_store_msg_get_many(struct mw_store *store,
			  const char *mailbox_guid_hex,
			  struct mw_msg_query *queries, unsigned int count,
			  const char **error_r)
{
	unsigned char guid[MW_STORE_GUID_SIZE];
	unsigned int i;
	int ret;

	for (i = 0; i < count; i++)
		queries[i].found = false;
	if (store_arg_mailbox(store, mailbox_guid_hex, guid, error_r) < 0)
		return -1;
	if (count == 0)
		return 0;
	ret = store->backend->msg_get_many(store, guid, queries, count,
					   error_r);
	if (ret < 0) {
		for (i = 0; i < count; i++)
			queries[i].found = false;
	}
	return ret;
}

int mw_store_msg_iter(struct mw_store *store, int dev_no,
		      const char *mailbox_guid_hex,
		      int (*cb)(const struct mw_msg_rec *rec, void *ctx),
		      void *ctx, const char **error_r)
{
	unsigned char guid[MW_STORE_GUID_SIZE];

	if (dev_no > MW_STORE_MAX_DEV_NO) {
		mw_store_set_error(store, "invalid device number %d", dev_no);
		*error_r = store->error;
		return -1;
	}
	if (mailbox_guid_hex != NULL &&
	    store_arg_mailbox(store, mailbox_guid_hex, guid, error_r) < 0)
		return -1;
	return store->backend->msg_iter(store, dev_no,
					mailbox_guid_hex == NULL ? NULL : guid,
					cb, ctx, error_r);
}

int mw_store_summary_get(struct mw_store *store, uint16_t dev_no,
			 const char *mailbox_guid_hex,
			 struct mw_summary_rec *rec_r, const char **error_r)
{
	unsigned char guid[MW_STORE_GUID_SIZE];

	if (store_arg_mailbox(store, mailbox_guid_hex, guid, error_r) < 0)
		return -1;
	return store->backend->summary_get(store, dev_no, guid, rec_r,
					   error_r);
}

int mw_store_mailbox_name_get(struct mw_store *store, const char *name,
			      char guid_hex_r[MW_MAILBOX_GUID_HEX_SIZE],
			      const char **error_r)
{
	unsigned char guid[MW_STORE_GUID_SIZE];
	int ret;

	if (store_arg_name(store, name, error_r) < 0)
		return -1;
	ret = store->backend->mailbox_name_get(store, name, guid, error_r);
	if (ret > 0)
		mw_hex_encode(guid, sizeof(guid), guid_hex_r);
	return ret;
}

int mw_store_mailbox_name_set(struct mw_store *store, const char *name,
			      const char *old_guid_hex,
			      const char *new_guid_hex, const char **error_r)
{
	unsigned char old_guid[MW_STORE_GUID_SIZE];
	unsigned char new_guid[MW_STORE_GUID_SIZE];

	if (store_arg_name(store, name, error_r) < 0 ||
	    store_arg_mailbox(store, new_guid_hex, new_guid, error_r) < 0 ||
	    (old_guid_hex != NULL &&
	     store_arg_mailbox(store, old_guid_hex, old_guid, error_r) < 0))
		return -1;
	return store->backend->mailbox_name_set(
		store, name, old_guid_hex == NULL ? NULL : old_guid,
		new_guid, error_r);
}

int mw_store_mailbox_iter(struct mw_store *store,
			  int (*cb)(const char *guid_hex, void *ctx),
			  void *ctx, const char **error_r)
{
	return store->backend->mailbox_iter(store, cb, ctx, error_r);
}
