/* mailward: due expunges (the sweep at session end and doveadm mailward
   expunge) and the devices that count for expunge-after-all-devices */

#include "lib.h"
#include "array.h"
#include "hex-binary.h"
#include "time-util.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"
#include "mailward-display.h"

struct devices_ctx {
	struct mailward_user *muser;
	time_t now;
	struct mailward_devices *devs;
};

static int devices_cb(const struct mw_device_rec *rec, void *context)
{
	struct devices_ctx *ctx = context;
	struct mailward_user *muser = ctx->muser;

	if (muser->device_registered && rec->dev_no == muser->device.dev_no &&
	    memcmp(rec->id, muser->device.id, sizeof(rec->id)) == 0)
		ctx->devs->self_found = TRUE;
	if (mw_all_devices_counts(&muser->set, rec->protocol, rec->last_seen,
				  ctx->now)) {
		struct mailward_dev_id *id;

		array_push_back(&ctx->devs->dev_nos, &rec->dev_no);
		id = array_append_space(&ctx->devs->ids);
		memcpy(id->id, rec->id, sizeof(id->id));
	}
	return 0;
}

bool mailward_devices_owns(const struct mailward_devices *devs,
			   const struct mw_msg_rec *rec)
{
	const uint16_t *dev_nos;
	const struct mailward_dev_id *ids;
	unsigned int i, count, id_count;

	if (!array_is_created(&devs->ids))
		return FALSE;
	dev_nos = array_get(&devs->dev_nos, &count);
	ids = array_get(&devs->ids, &id_count);
	i_assert(id_count == count);
	for (i = 0; i < count; i++) {

		if (dev_nos[i] == rec->dev_no) {
			return memcmp(ids[i].id, rec->dev_id,
				      MW_DEVICE_ID_SIZE) == 0;
		}
	}
	return FALSE;
}

int mailward_devices_read(struct mailward_user *muser, time_t now,
			  pool_t pool, struct mailward_devices *devs)
{
	struct devices_ctx ctx;
	const char *error;

	i_zero(devs);
	p_array_init(&devs->dev_nos, pool, 8);
	p_array_init(&devs->ids, pool, 8);

	i_zero(&ctx);
	ctx.muser = muser;
	ctx.now = now;
	ctx.devs = devs;
	if (mw_store_device_iter(muser->store, devices_cb, &ctx, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return -1;
	}
	return 0;
}

bool mailward_all_devices_suspended(struct mailward_user *muser, time_t now)
{
	time_t reset = mw_store_get_reset_time(muser->store);
	time_t expire = (time_t)muser->set.device_expire_secs;

	if (!mw_all_devices_suspended(&muser->set, reset, now))
		return FALSE;
	if (!muser->all_devices_suspended_logged) {
		muser->all_devices_suspended_logged = TRUE;
		e_info(muser->event, "expunge-after-all-devices keeps every "
		       "message %s: the state store was reset at %s (damaged "
		       "store moved aside) and devices seen before it may "
		       "not have logged in since",
		       expire > 0 ? t_strdup_printf("until %s",
				t_strfgmtime("%Y-%m-%dT%H:%M:%SZ",
					     reset + expire)) :
		       "(mailward_device_expire is off)",
		       t_strfgmtime("%Y-%m-%dT%H:%M:%SZ", reset));
	}
	return TRUE;
}

/* One record of the mailbox, as the sweep reads it */
struct sweep_rec {
	uint64_t key;
	uint32_t uid;
	/* the suppression mark (MW_MSG_NOTED_*) */
	uint32_t noted;
	/* the device that held rec.dev_no at the read */
	unsigned char dev_id[MW_DEVICE_ID_SIZE];
	struct mw_retrieval_rec rec;
};

struct sweep_ctx {
	struct mailward_user *muser;
	struct mailbox *box;
	const char *mbox_guid;
	time_t now;
	pool_t pool;
	ARRAY(struct sweep_rec) recs;
	/* recs[i].rec in the same (sorted) order */
	ARRAY(struct mw_retrieval_rec) rrecs;
	ARRAY_TYPE(mailward_target) targets;
	struct mailward_devices devs;
	/* expunge-after-all-devices and its devices were read */
	bool all_devices;
	/* ... and no store reset suspends it */
	bool devices_usable;
	/* mailward_dispose_suppress_cause() */
	uint32_t suppress_cause;
};

static int sweep_iter_cb(const struct mw_msg_rec *rec, void *context)
{
	struct sweep_ctx *ctx = context;
	struct sweep_rec *srec;

	srec = array_append_space(&ctx->recs);
	memcpy(&srec->key, rec->key, sizeof(srec->key));
	srec->uid = rec->uid;
	srec->noted = rec->noted;
	memcpy(srec->dev_id, rec->dev_id, sizeof(srec->dev_id));
	srec->rec.dev_no = rec->dev_no;
	srec->rec.retrieved = rec->retrieved != 0;
	srec->rec.deleted = rec->deleted != 0;
	srec->rec.expunge_due = rec->expunge_due;
	return 0;
}

static int sweep_rec_cmp(const struct sweep_rec *a, const struct sweep_rec *b)
{
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (int)a->rec.dev_no - (int)b->rec.dev_no;
}

/* The devices were read after the records: a record whose number a
   counting device holds but did not hold at the record's read (removed,
   its number handed out again in between) is not that device's: it
   counts for no device. */
static void sweep_check_owners(struct sweep_ctx *ctx)
{
	struct sweep_rec *srec;
	struct mw_msg_rec rec;
	const uint16_t *dev_no;

	i_zero(&rec);
	array_foreach_modifiable(&ctx->recs, srec) {
		rec.dev_no = srec->rec.dev_no;
		memcpy(rec.dev_id, srec->dev_id, sizeof(rec.dev_id));
		array_foreach(&ctx->devs.dev_nos, dev_no) {
			if (*dev_no == rec.dev_no &&
			    !mailward_devices_owns(&ctx->devs, &rec)) {
				srec->rec.dev_no = 0;
				break;
			}
		}
	}
}

/* Reads the mailbox's records (sorted by message) and, under
   expunge-after-all-devices, the devices that count. Returns -1 on a
   store error (logged, fail-safe). */
static int sweep_read(struct sweep_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	const struct sweep_rec *srec;
	const char *error;

	if (mw_store_msg_iter(muser->store, -1, ctx->mbox_guid, sweep_iter_cb,
			      ctx, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return -1;
	}
	ctx->all_devices = muser->set.pop3_policy ==
		MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES;
	p_array_init(&ctx->devs.dev_nos, ctx->pool, 1);
	if (ctx->all_devices && array_count(&ctx->recs) > 0 &&
	    mailward_devices_read(muser, ctx->now, ctx->pool,
				  &ctx->devs) < 0)
		ctx->all_devices = FALSE;
	/* after a reset the known devices may not be all devices: only
	   due (delayed) expunges recorded since can be carried out */
	ctx->devices_usable = ctx->all_devices &&
		(array_count(&ctx->recs) == 0 ||
		 !mailward_all_devices_suspended(muser, ctx->now));
	if (ctx->all_devices)
		sweep_check_owners(ctx);
	array_sort(&ctx->recs, sweep_rec_cmp);
	p_array_init(&ctx->rrecs, ctx->pool, array_count(&ctx->recs) + 1);
	array_foreach(&ctx->recs, srec)
		array_push_back(&ctx->rrecs, &srec->rec);
	return 0;
}

/* Sets the suppression mark of the records recs[i..j) that differ from
   noted (MW_MSG_NOTED_*, 0 clears) in batch: a record that has it
   already is not written again. */
static void
sweep_mark(struct sweep_ctx *ctx, struct mw_batch *batch, unsigned int i,
	   unsigned int j, uint32_t noted)
{
	const struct sweep_rec *recs = array_front(&ctx->recs);

	for (; i < j && batch != NULL; i++) {
		if (recs[i].noted == noted || recs[i].rec.dev_no == 0)
			continue;
		/* the device read with the record, not one that has its
		   number by commit */
		mw_batch_expect_device(batch, recs[i].rec.dev_no,
				       recs[i].dev_id);
		mw_batch_msg_update_key(batch, recs[i].rec.dev_no,

					ctx->mbox_guid,
					(const void *)&recs[i].key, 0,
					MW_MSG_NOTED, noted);
	}
}

/* The mark of the message whose records are recs[i..j): the
   suppression cause that applies now if a record has it, else any */
static uint32_t
sweep_target_mark(struct sweep_ctx *ctx, unsigned int i, unsigned int j)
{
	const struct sweep_rec *recs = array_front(&ctx->recs);
	uint32_t mark = 0;

	for (; i < j; i++) {
		if (recs[i].noted != 0 && (mark == 0 ||
		    recs[i].noted == ctx->suppress_cause))
			mark = recs[i].noted;
	}
	return mark;
}

/* Decides for every message (mw_sweep_decide()): a delay that starts is
   recorded in batch, a message due becomes a target (noted when its
   suppression was audited with the cause that applies now); a message
   not due loses its suppression mark. */
static void sweep_decide(struct sweep_ctx *ctx, struct mw_batch *batch)
{
	const struct mw_retrieval_rec *rrecs;
	const struct sweep_rec *recs;
	struct mw_sweep_devices devices;
	struct mailward_target *target;
	enum mw_sweep_action action;
	unsigned int i, j, n, count;
	uint32_t uid;
	time_t due;

	recs = array_get(&ctx->recs, &count);
	rrecs = array_get(&ctx->rrecs, &n);
	i_assert(n == count);
	devices.dev_nos = array_get(&ctx->devs.dev_nos, &devices.count);
	devices.usable = ctx->devices_usable;
	for (i = 0; i < count; i = j) {
		uid = 0;
		for (j = i; j < count && recs[j].key == recs[i].key; j++) {
			if (recs[j].uid != 0)
				uid = recs[j].uid;
		}
		action = mw_sweep_decide(&ctx->muser->set, rrecs + i, j - i,
					 &devices, ctx->now, &due);
		if (action == MW_SWEEP_START_DELAY &&
		    recs[i].rec.dev_no != 0) {
			if (batch != NULL) {
				/* the device read with the record, not
				   one that has its number by commit */
				mw_batch_expect_device(batch,
					recs[i].rec.dev_no, recs[i].dev_id);
				mw_batch_msg_update_key(batch,

					recs[i].rec.dev_no, ctx->mbox_guid,
					(const void *)&recs[i].key, uid,
					MW_MSG_DUE, due);
			}
		} else if (action == MW_SWEEP_DUE) {
			target = array_append_space(&ctx->targets);
			target->uid = uid;
			target->due = due;
			target->rec_idx = i;
			target->rec_end = j;
			target->mark = sweep_target_mark(ctx, i, j);
			target->noted = ctx->suppress_cause != 0 &&
				target->mark == ctx->suppress_cause;
			memcpy(target->key, &recs[i].key, sizeof(target->key));
			continue;
		}
		/* (not due: no suppression stands) */
		sweep_mark(ctx, batch, i, j, 0);
	}
}

/* After the disposition: a message marked \Seen stays with its records
   (this device's view) and nothing more due; an expunged or moved one's
   records were pruned by the policy transaction's commit. */
static void
sweep_finish(struct sweep_ctx *ctx, struct mw_batch *batch, const bool *done,
	     void (*print_cb)(void *ctx, uint32_t uid, const char *guid,
			      time_t due),
	     void *context)
{
	const struct sweep_rec *recs;
	struct mailward_target *target;
	unsigned int i, j, count;
	uint32_t mark;

	recs = array_get(&ctx->recs, &count);

	array_foreach_modifiable(&ctx->targets, target) {
		i = array_foreach_idx(&ctx->targets, target);
		/* suppressed: the mark of the cause, once audited; carried
		   out or tried: none (a hold set again audits it again) */
		if (mailward_target_mark(target, ctx->suppress_cause, &mark)) {
			sweep_mark(ctx, batch, target->rec_idx,
				   target->rec_end, mark);
		}
		if (!done[i])
			continue;
		i_assert(target->rec_end <= count);
		if (batch != NULL &&
		    ctx->muser->set.disposition == MW_DISPOSITION_SEEN) {
			for (j = target->rec_idx; j < target->rec_end; j++) {
				if (recs[j].rec.dev_no == 0)
					continue;
				mw_batch_expect_device(batch,
					recs[j].rec.dev_no, recs[j].dev_id);
				mw_batch_msg_update_key(batch,

					recs[j].rec.dev_no, ctx->mbox_guid,
					(const void *)&recs[j].key,
					target->uid, MW_MSG_DUE,
					MW_MSG_DUE_DISPOSED);
			}
		}
		if (print_cb != NULL) {
			print_cb(context, target->uid, target->guid != NULL ?
				 target->guid :
				 binary_to_hex(target->key, sizeof(target->key)),
				 target->due);
		}
	}
}

int mailward_expunge_due(struct mailward_user *muser, struct mailbox *box,
			 time_t now,
			 void (*print_cb)(void *ctx, uint32_t uid,
					  const char *guid, time_t due),
			 void *context)
{
	struct sweep_ctx ctx;
	struct mw_batch *batch;
	enum mw_pop3_disposition disposition = muser->set.disposition;
	bool *done;
	int ret;

	if (muser->store == NULL || disposition == MW_DISPOSITION_KEEP)
		return 0;
	i_zero(&ctx);
	ctx.muser = muser;
	ctx.box = box;
	ctx.now = now;
	ctx.mbox_guid = mailward_mailbox_guid(muser, box);
	if (ctx.mbox_guid == NULL)
		return -1;
	ctx.pool = pool_alloconly_create("mailward sweep", 1024);
	p_array_init(&ctx.recs, ctx.pool, 64);
	p_array_init(&ctx.targets, ctx.pool, 8);
	if (sweep_read(&ctx) < 0) {
		pool_unref(&ctx.pool);
		return -1;
	}
	batch = mailward_state_batch(muser);
	ctx.suppress_cause = mailward_dispose_suppress_cause(muser);
	sweep_decide(&ctx, batch);
	if (array_count(&ctx.targets) == 0) {
		pool_unref(&ctx.pool);
		return 0;
	}
	done = p_new(ctx.pool, bool, array_count(&ctx.targets));
	ret = mailward_dispose_targets(muser, box, &ctx.targets,
				       ctx.all_devices ? "policy" : "delayed",
				       done);
	sweep_finish(&ctx, batch, done, print_cb, context);
	if (ret > 0) {
		e_info(muser->event, "%s %d message(s) in %s whose "
		       "delay has passed or that every device has",
		       disposition == MW_DISPOSITION_SEEN ? "marked \\Seen" :
		       (disposition == MW_DISPOSITION_MOVE ?
			"moved" : "expunged"), ret,
		       mailward_display(mailbox_get_vname(box), 0));
	}
	pool_unref(&ctx.pool);
	return ret;
}
