/* mailward core, LMDB state store: applying a batch (mw-store-batch.c
   queues it) in one write transaction. */

#include "mw-store-lmdb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The state of one attempt to apply a batch (reset when the transaction
   runs again after MDB_MAP_FULL). */
struct batch_apply {
	struct lmdb_store *s;
	struct mw_batch *batch;
	/* the devices that exist in the transaction */
	uint16_t *dev_nos;
	unsigned int dev_count;
	unsigned char devmap[(MW_STORE_MAX_DEV_NO + 1) / 8];
	/* the last mailbox looked up */
	bool mbox_cached;
	unsigned char mbox_guid[MW_STORE_GUID_SIZE];
	uint32_t mbox_no;
	/* something was put or deleted */
	bool changed;
	/* the bound device no longer exists with its number */
	bool bound_gone;
	unsigned int bound_dropped;
};

static bool batch_dev_exists(const struct batch_apply *b, uint16_t dev_no)
{
	return (b->devmap[dev_no / 8] & (1 << (dev_no % 8))) != 0;
}

/* An op for a missing device is dropped; those of the bound device are
   counted for the caller. */
static void batch_count_dropped(struct batch_apply *b,
				const struct mw_batch_op *op)
{
	if (b->batch->bound && op->dev_no == b->batch->bound_dev_no)
		b->bound_dropped++;
}

/* Mailbox number with a one-entry cache (reset per attempt). create=false:
   returns MDB_NOTFOUND for unknown mailboxes. */
static int batch_mailbox(struct batch_apply *b, MDB_txn *txn,
			 const unsigned char guid[MW_STORE_GUID_SIZE], bool create,
			 uint32_t *no_r)
{
	int rc;

	if (b->mbox_cached && memcmp(b->mbox_guid, guid, MW_STORE_GUID_SIZE) == 0) {
		*no_r = b->mbox_no;
		return 0;
	}
	rc = mw_lmdb_mailbox_lookup(b->s, txn, guid, no_r);
	if (rc == MDB_NOTFOUND && create) {
		rc = mw_lmdb_mailbox_lookup_or_create(b->s, txn, guid, no_r);
		b->changed = true;
	}
	if (rc == 0) {
		b->mbox_cached = true;
		memcpy(b->mbox_guid, guid, MW_STORE_GUID_SIZE);
		b->mbox_no = *no_r;
	}
	return rc;
}

/* The mailbox number of a dev_no operation, created if new. Returns 0,
   MDB_NOTFOUND when the operation is dropped (its device no longer
   exists), or an error. */
static int batch_op_mailbox(struct batch_apply *b, MDB_txn *txn,
			    const struct mw_batch_op *op, uint32_t *mbox_r)
{
	if (!batch_dev_exists(b, op->dev_no)) {
		batch_count_dropped(b, op);
		return MDB_NOTFOUND;
	}
	return batch_mailbox(b, txn, op->guid, true, mbox_r);
}

static int apply_msg_update(struct batch_apply *b, MDB_txn *txn,
			    MDB_cursor *cur, const struct mw_batch_op *op)
{
	unsigned char kb[MSG_DBKEY_SIZE], nd[MSG_DATA_SIZE];
	MDB_val k = { sizeof(kb), kb }, d = { sizeof(nd), nd };
	const unsigned char *old;
	uint32_t mbox, v;
	int rc;
	size_t off = op->field == MW_MSG_RETRIEVED ? 8 :
		op->field == MW_MSG_DELETED ? 12 :
		op->field == MW_MSG_NOTED ? 24 : 16;

	rc = batch_op_mailbox(b, txn, op, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	rc = mw_lmdb_msg_find(b->s, cur, op->dev_no, mbox, op->key, &old);
	if (rc == 0) {
		memcpy(nd, old, sizeof(nd));
	} else if (rc == MDB_NOTFOUND) {
		memset(nd, 0, sizeof(nd));
		memcpy(nd, op->key, MW_MSG_KEY_SIZE);
	} else {
		return rc;
	}
	v = mw_get_be32(nd + off);
	if (op->field == MW_MSG_DUE || op->field == MW_MSG_NOTED || v == 0)
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
	mw_lmdb_msg_dbkey(kb, op->dev_no, mbox);
	b->changed = true;
	return mdb_cursor_put(cur, &k, &d, 0);
}

static int apply_msg_prune(struct batch_apply *b, MDB_txn *txn,
			   MDB_cursor *cur, const struct mw_batch_op *op)
{
	const unsigned char *old;
	unsigned int i;
	uint32_t mbox;
	int rc;

	rc = batch_mailbox(b, txn, op->guid, false, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	for (i = 0; i < b->dev_count; i++) {
		rc = mw_lmdb_msg_find(b->s, cur, b->dev_nos[i], mbox, op->key,
			      &old);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0 || (rc = mdb_cursor_del(cur, 0)) != 0)
			return rc;
		b->changed = true;
	}
	return 0;
}

static int apply_mailbox_forget(struct batch_apply *b, MDB_txn *txn,
				const struct mw_batch_op *op)
{
	struct lmdb_store *s = b->s;
	unsigned char kb[MSG_DBKEY_SIZE], nobuf[4];
	MDB_val k = { sizeof(kb), kb };
	MDB_val gk = { MW_STORE_GUID_SIZE, (void *)op->guid }, nk = { 4, nobuf };
	unsigned int i;
	uint32_t mbox;
	int rc;

	rc = mw_lmdb_mailbox_lookup(s, txn, op->guid, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	b->changed = true;
	for (i = 0; i < b->dev_count; i++) {
		mw_lmdb_msg_dbkey(kb, b->dev_nos[i], mbox);
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
static int apply_device_touch(struct batch_apply *b, MDB_txn *txn,
			      struct mw_batch_op *op, bool final)
{
	struct mw_device_rec rec;
	time_t t = mw_time_from_u64(op->t);
	int rc;

	if (b->bound_gone &&
	    memcmp(op->guid, b->batch->bound_id, MW_DEVICE_ID_SIZE) == 0) {
		/* the session's device was removed: a device of the same id
		   registered since is another incarnation */
		b->bound_dropped++;
		return 0;
	}
	rc = mw_lmdb_device_get_txn(b->s, txn, op->guid, &rec);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	/* (a device's first session is always counted) */
	if (!final && b->batch->touch_secs > 0 &&
	    (rec.sessions != 0 || op->a == 0) &&
	    (t <= rec.last_seen ||
	     (uint64_t)(t - rec.last_seen) < b->batch->touch_secs)) {
		op->deferred = true;
		return 0;
	}
	if (t > rec.last_seen)
		rec.last_seen = t;
	b->changed = true;
	rec.sessions = mw_add_u32_sat(rec.sessions, op->a);
	rec.retrieved = mw_add_u32_sat(rec.retrieved, op->b);
	rec.deleted = mw_add_u32_sat(rec.deleted, op->c);
	return mw_lmdb_device_put(b->s, txn, &rec);
}

/* final: as apply_device_touch(); a summary equal to the stored one
   but for a time less than MW_DEVICE_TOUCH_SECS later is deferred */
static int apply_summary_set(struct batch_apply *b, MDB_txn *txn,
			     struct mw_batch_op *op, bool final)
{
	unsigned char kb[MSG_DBKEY_SIZE], vb[SUMMARY_SIZE];
	MDB_val k = { sizeof(kb), kb }, v = { sizeof(vb), vb }, old;
	uint32_t mbox;
	int rc;

	rc = batch_op_mailbox(b, txn, op, &mbox);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	mw_lmdb_msg_dbkey(kb, op->dev_no, mbox);
	mw_put_be32(vb, op->a);
	mw_put_be32(vb + 4, op->b);
	mw_put_be64(vb + 8, op->modseq);
	mw_put_be64(vb + 16, op->t);
	if (!final && b->batch->touch_secs > 0) {
		rc = mdb_get(txn, b->s->dbi_summaries, &k, &old);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
		if (rc == 0 && old.mv_size == sizeof(vb) &&
		    memcmp(old.mv_data, vb, 16) == 0 &&
		    op->t >= mw_get_be64((const unsigned char *)
					 old.mv_data + 16) &&
		    op->t - mw_get_be64((const unsigned char *)
					old.mv_data + 16) < b->batch->touch_secs) {
			op->deferred = true;
			return 0;
		}
	}
	b->changed = true;
	return mdb_put(txn, b->s->dbi_summaries, &k, &v, 0);
}

/* mw_batch_expect_device(): a number not held by the expected device is
   taken out of devmap, so its operations are dropped */
static void batch_check_expected(struct batch_apply *b,
				 const struct mw_device_rec *recs,
				 unsigned int count)
{
	const struct mw_batch_expect *e;
	unsigned int i, j;

	for (i = 0; i < b->batch->expect_count; i++) {
		e = &b->batch->expects[i];
		for (j = 0; j < count; j++) {
			if (recs[j].dev_no == e->dev_no)
				break;
		}
		if (j < count && memcmp(recs[j].id, e->id,
					MW_DEVICE_ID_SIZE) == 0)
			continue;
		b->devmap[e->dev_no / 8] &=
			(unsigned char)~(1 << (e->dev_no % 8));
	}
}

/* Loads the devices that exist in txn into b (dev_nos, devmap) and
   checks the bound device and the expected ones. */

static int batch_load_devices(struct batch_apply *b, MDB_txn *txn)
{
	struct mw_batch *batch = b->batch;
	struct mw_device_rec *recs;
	unsigned int i, count;
	int rc;

	free(b->dev_nos);
	b->dev_nos = NULL;
	b->dev_count = 0;
	memset(b->devmap, 0, sizeof(b->devmap));
	rc = mw_lmdb_devices_load(b->s, txn, &recs, &count);
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
	if (batch->bound) {
		/* the session's device must still exist with its number */
		for (i = 0; i < count; i++) {
			if (memcmp(recs[i].id, batch->bound_id,
				   MW_DEVICE_ID_SIZE) == 0)
				break;
		}
		if (i == count || recs[i].dev_no != batch->bound_dev_no) {
			b->bound_gone = true;
			b->devmap[batch->bound_dev_no / 8] &=
				(unsigned char)~(1 << (batch->bound_dev_no % 8));
		}
	}
	batch_check_expected(b, recs, count);
	free(recs);
	return 0;
}

static int batch_apply_op(struct batch_apply *b, MDB_txn *txn,
			  MDB_cursor *cur, struct mw_batch_op *op)
{
	op->deferred = false;
	switch (op->type) {
	case MW_BATCH_OP_MSG_UPDATE:
		return apply_msg_update(b, txn, cur, op);
	case MW_BATCH_OP_MSG_PRUNE:
		return apply_msg_prune(b, txn, cur, op);
	case MW_BATCH_OP_MAILBOX_FORGET:
		return apply_mailbox_forget(b, txn, op);
	case MW_BATCH_OP_DEVICE_TOUCH:
		return apply_device_touch(b, txn, op, false);
	case MW_BATCH_OP_SUMMARY_SET:
		return apply_summary_set(b, txn, op, false);
	}
	return EINVAL;
}

static int batch_apply_txn(struct lmdb_store *s, MDB_txn *txn, void *ctx)
{
	struct batch_apply *b = ctx;
	struct mw_batch *batch = b->batch;
	MDB_cursor *cur;
	unsigned int i;
	int rc;

	b->mbox_cached = false;
	b->bound_dropped = 0;
	b->changed = false;
	if ((rc = batch_load_devices(b, txn)) != 0)
		return rc;
	rc = mdb_cursor_open(txn, s->dbi_messages, &cur);
	if (rc != 0)
		return rc;
	for (i = 0; i < batch->count && rc == 0; i++)
		rc = batch_apply_op(b, txn, cur, &batch->ops[i]);
	mdb_cursor_close(cur);
	/* touches that alone would not be worth a write go with one that
	   writes anyway; a batch that changes nothing else writes nothing
	   (their counts are not added: see mw_batch_device_touch()) */
	for (i = 0; i < batch->count && rc == 0 && b->changed; i++) {
		if (!batch->ops[i].deferred)
			continue;
		if (batch->ops[i].type == MW_BATCH_OP_DEVICE_TOUCH)
			rc = apply_device_touch(b, txn, &batch->ops[i], true);
		else if (batch->ops[i].type == MW_BATCH_OP_SUMMARY_SET)
			rc = apply_summary_set(b, txn, &batch->ops[i], true);
	}
	if (rc == 0 && !b->changed)
		return MW_RC_NOCHANGE;
	return rc;
}

static int batch_write(struct lmdb_store *s, struct batch_apply *b,
		       const char **error_r)
{
	if (mw_lmdb_write(s, "committing batch", batch_apply_txn, b) < 0)
		return store_fail(s, error_r);
	return 0;
}

static int batch_guarded(struct lmdb_store *s, struct batch_apply *b,
			 const char **error_r)
{
	STORE_GUARDED(s, error_r, batch_write(s, b, error_r));
}

int mw_lmdb_batch_apply(struct mw_store *store, struct mw_batch *batch,
			unsigned int *dropped_r, const char **error_r)
{
	struct lmdb_store *s = LMDB_STORE(store);
	struct batch_apply b;
	int ret;

	memset(&b, 0, sizeof(b));
	b.s = s;
	b.batch = batch;
	ret = batch_guarded(s, &b, error_r);
	free(b.dev_nos);
	*dropped_r = b.bound_dropped;
	return ret;
}
