/* mailward core, LMDB state store: message records, IMAP summaries,
   mailbox names, the store's owner. */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct msg_get_ctx {
	uint16_t dev_no;
	const unsigned char *mailbox, *key;
	struct mw_msg_rec *rec;
};

static int msg_get_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct msg_get_ctx *ctx = _ctx;
	unsigned char kb[MSG_DBKEY_SIZE];
	struct mw_lmdb_owners owners;
	const unsigned char *data;
	MDB_cursor *cur;
	uint32_t mailbox_no;
	int rc;

	rc = mw_lmdb_mailbox_lookup(s, txn, ctx->mailbox, &mailbox_no);
	if (rc != 0 || (rc = mdb_cursor_open(txn, s->dbi_messages, &cur)) != 0)
		return rc;
	rc = mw_lmdb_msg_find(s, cur, ctx->dev_no, mailbox_no, ctx->key,
			      &data);
	if (rc == 0) {
		mw_lmdb_msg_dbkey(kb, ctx->dev_no, mailbox_no);
		mw_lmdb_msg_decode(kb, data, ctx->rec);
		mw_hex_encode(ctx->mailbox, MW_STORE_GUID_SIZE,
			      ctx->rec->mailbox_guid_hex);
	}
	mdb_cursor_close(cur);
	if (rc == 0 && (rc = mw_lmdb_owners_load(s, txn, &owners)) == 0) {
		mw_lmdb_owner_fill(&owners, ctx->rec);
		mw_lmdb_owners_free(&owners);
	}
	return rc;
}

int mw_lmdb_msg_get_key(struct mw_store *store, uint16_t dev_no,
			const unsigned char mailbox[MW_STORE_GUID_SIZE],
			const unsigned char key[MW_MSG_KEY_SIZE],
			struct mw_msg_rec *rec_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct msg_get_ctx ctx = { dev_no, mailbox, key, rec_r };

	return mw_lmdb_read_guarded(s, "reading message record",
				    msg_get_txn, &ctx, error_r);
}

struct msg_get_many_ctx {
	const unsigned char *mailbox;
	struct mw_msg_query *queries;
	unsigned int count;
};

static int msg_get_many_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct msg_get_many_ctx *ctx = _ctx;
	unsigned char kb[MSG_DBKEY_SIZE];
	struct mw_lmdb_owners owners;
	const unsigned char *data;
	struct mw_msg_query *q;
	MDB_cursor *cur;
	uint32_t mailbox_no;
	unsigned int i;
	int rc;

	rc = mw_lmdb_mailbox_lookup(s, txn, ctx->mailbox, &mailbox_no);
	if (rc != 0 || (rc = mw_lmdb_owners_load(s, txn, &owners)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, s->dbi_messages, &cur)) != 0) {
		mw_lmdb_owners_free(&owners);
		return rc;
	}
	for (i = 0; i < ctx->count; i++) {
		q = &ctx->queries[i];
		rc = mw_lmdb_msg_find(s, cur, q->dev_no, mailbox_no, q->key,
				      &data);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			break;
		mw_lmdb_msg_dbkey(kb, q->dev_no, mailbox_no);
		mw_lmdb_msg_decode(kb, data, &q->rec);
		mw_hex_encode(ctx->mailbox, MW_STORE_GUID_SIZE,
			      q->rec.mailbox_guid_hex);
		mw_lmdb_owner_fill(&owners, &q->rec);
		q->found = true;
	}
	mdb_cursor_close(cur);
	mw_lmdb_owners_free(&owners);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int mw_lmdb_msg_get_many(struct mw_store *store,
			 const unsigned char mailbox[MW_STORE_GUID_SIZE],
			 struct mw_msg_query *queries, unsigned int count,
			 const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct msg_get_many_ctx ctx = { mailbox, queries, count };
	int ret;

	ret = mw_lmdb_read_guarded(s, "reading message records",
				   msg_get_many_txn, &ctx, error_r);
	/* an unknown mailbox (0) has no records: nothing found */
	return ret < 0 ? -1 : 0;
}

/* The record at cur (device kdev, mailbox kmbox) is not of mailbox mbox:
   moves cur to (kdev, mbox), or past it to (kdev + 1, mbox) when every
   device's records are wanted (dev_no < 0). kb holds the key sought.
   Returns the cursor's result (MDB_NOTFOUND: no more records). */
static int msg_iter_skip(MDB_cursor *cur, MDB_val *k, MDB_val *d,
			 unsigned char kb[MSG_DBKEY_SIZE], int dev_no,
			 uint16_t kdev, uint32_t kmbox, uint32_t mbox)
{
	if (kmbox > mbox) {
		if (dev_no >= 0 || kdev == MW_STORE_MAX_DEV_NO)
			return MDB_NOTFOUND;
		kdev++;
	}
	mw_lmdb_msg_dbkey(kb, kdev, mbox);
	k->mv_size = MSG_DBKEY_SIZE;
	k->mv_data = kb;
	return mdb_cursor_get(cur, k, d, MDB_SET_RANGE);
}

static int msg_iter_txn(struct lmdb_store *s, MDB_txn *txn, int dev_no,
			bool have_mbox, uint32_t mbox,
			int (*cb)(const struct mw_msg_rec *rec, void *ctx),
			void *ctx, int *ret_r)
{
	unsigned char kb[MSG_DBKEY_SIZE];
	struct mw_lmdb_owners owners;
	uint32_t guid_no = 0;
	int owner_dev = -1;
	struct mw_msg_rec rec;
	MDB_cursor *cur;
	MDB_val k, d;
	uint16_t kdev;
	uint32_t kmbox;
	sigjmp_buf *saved;
	bool stop;
	int rc;

	if ((rc = mw_lmdb_owners_load(s, txn, &owners)) != 0)
		return rc;
	memset(&rec, 0, sizeof(rec));
	rc = mdb_cursor_open(txn, s->dbi_messages, &cur);
	if (rc != 0) {
		mw_lmdb_owners_free(&owners);
		return rc;
	}
	mw_lmdb_msg_dbkey(kb, dev_no < 0 ? 0 : (uint16_t)dev_no, have_mbox ? mbox : 0);
	k.mv_size = sizeof(kb);
	k.mv_data = kb;
	rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != MSG_DBKEY_SIZE ||
		    d.mv_size != MSG_DATA_SIZE) {
			mw_lmdb_set_corrupt(s, "corrupt message record (key %zu, "
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
			rc = msg_iter_skip(cur, &k, &d, kb, dev_no, kdev,
					   kmbox, mbox);
			continue;
		}
		/* rec is reused: its mailbox GUID and device id are set
		   again only when the record's mailbox or device changes */
		mw_lmdb_msg_decode_fields(k.mv_data, d.mv_data, &rec);
		if (guid_no != kmbox) {
			rc = mw_lmdb_mailbox_guid_of(s, txn, kmbox,
						     rec.mailbox_guid_hex);
			if (rc != 0)
				break;
			guid_no = kmbox;
		}
		if (owner_dev != (int)rec.dev_no) {
			mw_lmdb_owner_fill(&owners, &rec);
			owner_dev = rec.dev_no;
		}
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
	mw_lmdb_owners_free(&owners);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int store_msg_iter(struct lmdb_store *s, int dev_no,
			  const unsigned char *mailbox,
			  int (*cb)(const struct mw_msg_rec *rec, void *ctx),
			  void *ctx, const char **error_r)
{
	uint32_t mbox = 0;
	MDB_txn *txn;
	int rc, ret = 0;

	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mailbox == NULL ? 0 :
		mw_lmdb_mailbox_lookup(s, txn, mailbox, &mbox);
	if (rc == 0) {
		/* txn_active stays set: nested calls from cb are refused */
		rc = msg_iter_txn(s, txn, dev_no, mailbox != NULL, mbox, cb,
				  ctx, &ret);
	}
	mw_lmdb_txn_abort(s, txn);
	rc = mw_lmdb_read_result(s, "iterating message records", rc, error_r);
	return rc < 0 ? -1 : ret;
}

int mw_lmdb_msg_iter(struct mw_store *store, int dev_no,
		     const unsigned char *mailbox,
		     int (*cb)(const struct mw_msg_rec *rec, void *ctx),
		     void *ctx, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_msg_iter(s, dev_no, mailbox, cb, ctx,
						 error_r));
}

struct summary_get_ctx {
	uint16_t dev_no;
	const unsigned char *mailbox;
	struct mw_summary_rec *rec;
};

static int summary_get_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct summary_get_ctx *ctx = _ctx;
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_val k = { sizeof(kb), kb }, v;
	const unsigned char *p;
	uint32_t mbox;
	int rc;

	rc = mw_lmdb_mailbox_lookup(s, txn, ctx->mailbox, &mbox);
	if (rc != 0)
		return rc;
	mw_lmdb_msg_dbkey(kb, ctx->dev_no, mbox);
	rc = mdb_get(txn, s->dbi_summaries, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != SUMMARY_SIZE) {
		mw_lmdb_set_corrupt(s, "corrupt summary record (%zu bytes)",
				    v.mv_size);
		return MW_RC_FAILED;
	}
	p = v.mv_data;
	ctx->rec->uidvalidity = mw_get_be32(p);
	ctx->rec->highest_uid = mw_get_be32(p + 4);
	ctx->rec->highestmodseq = mw_get_be64(p + 8);
	ctx->rec->time = mw_time_from_u64(mw_get_be64(p + 16));
	return 0;
}

int mw_lmdb_summary_get(struct mw_store *store, uint16_t dev_no,
			const unsigned char mailbox[MW_STORE_GUID_SIZE],
			struct mw_summary_rec *rec_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct summary_get_ctx ctx = { dev_no, mailbox, rec_r };

	return mw_lmdb_read_guarded(s, "reading summary", summary_get_txn,
				    &ctx, error_r);
}

/* ---- mailbox names ---- */

#define MBNAME_PREFIX "mbname:"

/* name: 1 to MW_MAILBOX_NAME_MAX bytes (checked by mw-store.c) */
static void mbname_key(const char *name,
		       char buf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX])
{
	memcpy(buf, MBNAME_PREFIX, strlen(MBNAME_PREFIX));
	memcpy(buf + strlen(MBNAME_PREFIX), name, strlen(name) + 1);
}

struct mbname_get_ctx {
	const char *name;
	unsigned char *guid;
};

static int mailbox_name_get_txn(struct lmdb_store *s, MDB_txn *txn,
				void *_ctx)
{
	struct mbname_get_ctx *ctx = _ctx;
	char kbuf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX];
	MDB_val k, v;
	int rc;

	mbname_key(ctx->name, kbuf);
	k.mv_size = strlen(kbuf);
	k.mv_data = kbuf;
	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc != 0)
		return rc;
	if (v.mv_size != MW_STORE_GUID_SIZE) {
		mw_lmdb_set_corrupt(s, "corrupt mailbox name record (%zu "
				    "bytes)", v.mv_size);
		return MW_RC_FAILED;
	}
	memcpy(ctx->guid, v.mv_data, MW_STORE_GUID_SIZE);
	return 0;
}

int mw_lmdb_mailbox_name_get(struct mw_store *store, const char *name,
			     unsigned char guid_r[MW_STORE_GUID_SIZE],
			     const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct mbname_get_ctx ctx = { name, guid_r };

	return mw_lmdb_read_guarded(s, "reading mailbox name",
				    mailbox_name_get_txn, &ctx, error_r);
}

struct owner_ctx {
	const char *user;
	/* MW_STORE_OWNER_MAX + 1 bytes */
	char *found;
	bool mine;
};

/* reads meta "owner" into ctx (found, mine) */
static int owner_read(struct lmdb_store *s, MDB_txn *txn, struct owner_ctx *ctx)
{
	MDB_val k = { 5, (void *)"owner" }, v;
	size_t len;
	int rc;

	rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc != 0)
		return rc;
	len = v.mv_size > MW_STORE_OWNER_MAX ? MW_STORE_OWNER_MAX : v.mv_size;
	memcpy(ctx->found, v.mv_data, len);
	ctx->found[len] = '\0';
	/* ignoring ASCII case: a case-insensitive userdb may hand out a
	   login name as typed (auth_username_format without %L) */
	ctx->mine = v.mv_size == strlen(ctx->user) &&
		strncasecmp(ctx->found, ctx->user, v.mv_size) == 0 &&
		v.mv_size <= MW_STORE_OWNER_MAX;
	return 0;
}

static int owner_read_txn(struct lmdb_store *s, MDB_txn *txn, void *ctx)
{
	return owner_read(s, txn, ctx);
}

static int owner_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
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

static int store_check_owner(struct lmdb_store *s, struct owner_ctx *ctx,
			     const char **error_r)
{
	int ret;

	ret = mw_lmdb_read(s, "reading the store's user", owner_read_txn, ctx,
			   error_r);
	if (ret < 0)
		return -1;
	if (ret == 0 && mw_lmdb_write(s, "recording the store's user",
				      owner_txn, ctx) < 0)
		return store_fail(s, error_r);
	return ctx->mine ? 1 : 0;
}

int mw_lmdb_check_owner(struct mw_store *store, const char *user,
			char *owner_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct owner_ctx ctx = { user, owner_r, false };

	owner_r[0] = '\0';
	STORE_GUARDED(s, error_r, store_check_owner(s, &ctx, error_r));
}

struct mbname_ctx {
	const char *key;
	unsigned char old_guid[MW_STORE_GUID_SIZE], new_guid[MW_STORE_GUID_SIZE];
	bool have_old;
	int moved;
};

/* Deletes every record and summary of mailbox_no, of every device. */
static int mailbox_records_delete(struct lmdb_store *s, MDB_txn *txn,
				  uint32_t mailbox_no)
{
	struct mw_device_rec *recs;
	unsigned char kb[MSG_DBKEY_SIZE];
	MDB_val k = { sizeof(kb), kb };
	unsigned int i, count;
	int rc;

	rc = mw_lmdb_devices_load(s, txn, &recs, &count);
	if (rc != 0)
		return rc;
	for (i = 0; i < count && rc == 0; i++) {
		mw_lmdb_msg_dbkey(kb, recs[i].dev_no, mailbox_no);
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

static int mailbox_name_set_txn(struct lmdb_store *s, MDB_txn *txn, void *_ctx)
{
	struct mbname_ctx *ctx = _ctx;
	MDB_val k = { strlen(ctx->key), (void *)ctx->key };
	MDB_val v = { MW_STORE_GUID_SIZE, ctx->new_guid };
	MDB_val ok = { MW_STORE_GUID_SIZE, ctx->old_guid }, nk;
	unsigned char nobuf[4];
	uint32_t old_no, new_no;
	int rc;

	ctx->moved = 0;
	if (ctx->have_old &&
	    memcmp(ctx->old_guid, ctx->new_guid, MW_STORE_GUID_SIZE) != 0 &&
	    (rc = mw_lmdb_mailbox_lookup(s, txn, ctx->old_guid, &old_no)) !=
	    MDB_NOTFOUND) {
		if (rc != 0)
			return rc;
		rc = mw_lmdb_mailbox_lookup(s, txn, ctx->new_guid, &new_no);
		if (rc == MDB_NOTFOUND) {
			/* the records stay under their number, which now
			   belongs to the new GUID */
			MDB_val nv = { 4, nobuf }, gv = { MW_STORE_GUID_SIZE,
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

static int mailbox_name_set(struct lmdb_store *s, struct mbname_ctx *ctx,
			    const char **error_r)
{
	if (mw_lmdb_write(s, "recording mailbox name", mailbox_name_set_txn,
			  ctx) < 0)
		return store_fail(s, error_r);
	return ctx->moved;
}

int mw_lmdb_mailbox_name_set(struct mw_store *store, const char *name,
			     const unsigned char *old_guid,
			     const unsigned char new_guid[MW_STORE_GUID_SIZE],
			     const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	char kbuf[sizeof(MBNAME_PREFIX) + MW_MAILBOX_NAME_MAX];
	struct mbname_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	mbname_key(name, kbuf);
	ctx.key = kbuf;
	memcpy(ctx.new_guid, new_guid, MW_STORE_GUID_SIZE);
	ctx.have_old = old_guid != NULL;
	if (old_guid != NULL)
		memcpy(ctx.old_guid, old_guid, MW_STORE_GUID_SIZE);
	STORE_GUARDED(s, error_r, mailbox_name_set(s, &ctx, error_r));
}

static int store_mailbox_iter(struct lmdb_store *s,
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

	if (mw_lmdb_txn_begin(s, MDB_RDONLY, &txn) < 0)
		return store_fail(s, error_r);
	rc = mdb_cursor_open(txn, s->dbi_mailboxes, &cur);
	if (rc == 0) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size != MW_STORE_GUID_SIZE) {
				mw_lmdb_set_corrupt(s, "corrupt mailbox key "
						  "(%zu bytes)", k.mv_size);
				rc = MW_RC_FAILED;
				break;
			}
			tmp = mw_lmdb_array_room(guids, &alloc, count,
						 sizeof(*guids));
			if (tmp == NULL) {
				rc = ENOMEM;
				break;
			}
			guids = tmp;
			mw_hex_encode(k.mv_data, MW_STORE_GUID_SIZE, guids[count++]);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	mw_lmdb_txn_abort(s, txn);
	if (rc != 0) {
		free(guids);
		mw_lmdb_read_error(s, "reading mailboxes", rc);
		return store_fail(s, error_r);
	}
	GUARD_SUSPEND(saved);
	for (i = 0; i < count && ret == 0; i++)
		ret = cb(guids[i], ctx) != 0 ? 1 : 0;
	GUARD_RESUME(saved);
	free(guids);
	return ret;
}

int mw_lmdb_mailbox_iter(struct mw_store *store,
			 int (*cb)(const char *guid_hex, void *ctx),
			 void *ctx, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);

	STORE_GUARDED(s, error_r, store_mailbox_iter(s, cb, ctx, error_r));
}


