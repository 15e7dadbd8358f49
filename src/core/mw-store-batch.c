/* mailward core: batches of state store writes (see mw-store.h),
   queued in memory and applied by the store's backend in one write
   transaction at mw_batch_commit(). */

#include "mw-store-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static struct mw_batch_op *batch_add(struct mw_batch *b, int type)
{
	struct mw_batch_op *tmp;

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
		       unsigned char guid[MW_STORE_GUID_SIZE], const char *what)
{
	char err[128];

	if (mw_store_parse_hex(hex, guid, MW_STORE_GUID_SIZE, what, err,
			       sizeof(err)) == 0)
		return true;
	batch_set_error(b, "%s", err);
	return false;
}

void mw_batch_expect_device(struct mw_batch *b, uint16_t dev_no,
			    const unsigned char id[MW_DEVICE_ID_SIZE])
{
	struct mw_batch_expect *tmp;
	unsigned int i, alloc;

	for (i = 0; i < b->expect_count; i++) {
		if (b->expects[i].dev_no == dev_no) {
			memcpy(b->expects[i].id, id, MW_DEVICE_ID_SIZE);
			return;
		}
	}
	if (b->expect_count == b->expect_alloc) {
		alloc = b->expect_alloc == 0 ? 8 : b->expect_alloc * 2;
		tmp = realloc(b->expects, alloc * sizeof(*tmp));
		if (tmp == NULL) {
			batch_set_error(b, "out of memory");
			return;
		}
		b->expects = tmp;
		b->expect_alloc = alloc;
	}
	b->expects[b->expect_count].dev_no = dev_no;
	memcpy(b->expects[b->expect_count++].id, id, MW_DEVICE_ID_SIZE);
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
	unsigned char guid[MW_STORE_GUID_SIZE];
	struct mw_batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID"))
		return;
	if (field != MW_MSG_RETRIEVED && field != MW_MSG_DELETED &&
	    field != MW_MSG_DUE && field != MW_MSG_NOTED) {
		batch_set_error(b, "invalid message field %d", (int)field);
		return;
	}
	if ((op = batch_add(b, MW_BATCH_OP_MSG_UPDATE)) == NULL)
		return;
	op->dev_no = dev_no;
	memcpy(op->guid, guid, MW_STORE_GUID_SIZE);
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
	unsigned char guid[MW_STORE_GUID_SIZE];
	struct mw_batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, MW_BATCH_OP_MSG_PRUNE)) == NULL)
		return;
	memcpy(op->guid, guid, MW_STORE_GUID_SIZE);
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
	unsigned char guid[MW_STORE_GUID_SIZE];
	struct mw_batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, MW_BATCH_OP_MAILBOX_FORGET)) == NULL)
		return;
	memcpy(op->guid, guid, MW_STORE_GUID_SIZE);
}

void mw_batch_device_touch(struct mw_batch *b, const char *id_hex, time_t t,
			   unsigned int add_sessions,
			   unsigned int add_retrieved,
			   unsigned int add_deleted)
{
	unsigned char id[MW_DEVICE_ID_SIZE];
	struct mw_batch_op *op;

	if (!batch_guid(b, id_hex, id, "device id") ||
	    (op = batch_add(b, MW_BATCH_OP_DEVICE_TOUCH)) == NULL)
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
	unsigned char guid[MW_STORE_GUID_SIZE];
	struct mw_batch_op *op;

	if (!batch_guid(b, mailbox_guid_hex, guid, "mailbox GUID") ||
	    (op = batch_add(b, MW_BATCH_OP_SUMMARY_SET)) == NULL)
		return;
	op->dev_no = dev_no;
	memcpy(op->guid, guid, MW_STORE_GUID_SIZE);
	op->a = uidvalidity;
	op->b = highest_uid;
	op->modseq = highestmodseq;
	op->t = mw_time_to_u64(t);
}

static void batch_free(struct mw_batch *b)
{
	free(b->expects);
	free(b->ops);
	free(b);
}

int mw_batch_commit(struct mw_batch **_batch, const char **error_r)
{
	struct mw_batch *b = *_batch;
	struct mw_store *s = b->store;
	unsigned int dropped = 0;
	int ret = 0;

	*_batch = NULL;
	if (b->failed) {
		mw_store_set_error(s, "batch rejected: %s", b->error);
		*error_r = s->error;
		ret = -1;
	} else if (b->count > 0 &&
		   s->backend->batch_apply(s, b, &dropped, error_r) < 0) {
		ret = -1;
	} else if (b->bound_dropped_r != NULL) {
		*b->bound_dropped_r = dropped;
	}
	batch_free(b);
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
