/* mailward: the POP3 retrieval policy at session end (QUIT or a dropped
   connection). The decisions are mw-retrieval.h's; this gathers their
   facts and carries them out. */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"

struct quit_ctx {
	struct mailward_user *muser;
	struct mailward_pop3_session *s;
	struct mailbox *box;
	struct mw_batch *batch;
	/* the session's mailbox GUID when the store can record for its
	   device, else NULL */
	const char *mbox_guid;
	time_t now;
	pool_t pool;

	/* expunge-after-all-devices: the devices that count, and room for
	   one message's records of them */
	struct mailward_devices devs;
	struct mw_retrieval_rec *dev_recs;
	/* a store error, a reset or this device's removal: no
	   all-devices expunge in this session */
	bool all_devices_blocked;

	/* the store's records the decisions need, read in one transaction
	   (mw_store_msg_get_many()): per message in reads_first[i] ..
	   reads_first[i + 1], its other devices' (in devs order) and then,
	   with a delay, this device's */
	struct mw_msg_query *reads;
	unsigned int *reads_first;
	/* mailward_dispose_suppress_cause() */
	uint32_t suppress_cause;

	ARRAY_TYPE(mailward_target) targets;
	unsigned int kept, due_count, client_expunged, disposed;
	int expunged, due_expunged;
};

/* Reads the devices that count when expunge-after-all-devices may
   expunge at this QUIT, or blocks it. */
static void quit_read_devices(struct quit_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;

	p_array_init(&ctx->devs.dev_nos, ctx->pool, 1);
	if (ctx->mbox_guid == NULL || muser->set.pop3_policy !=
	    MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES)
		return;
	if (mailward_devices_read(muser, ctx->now, ctx->pool,
				  &ctx->devs) < 0) {
		ctx->all_devices_blocked = TRUE;	/* store error */
	} else if (mailward_all_devices_suspended(muser, ctx->now)) {
		ctx->all_devices_blocked = TRUE;
	} else if (!ctx->devs.self_found) {
		/* another session evicted or expired this device, or doveadm
		   forgot it: what it retrieved is no longer state, so it
		   expunges nothing (and its number may not be read as
		   another device's) */
		mailward_user_device_removed(muser,
			"its retrievals do not count for "
			"expunge-after-all-devices, messages kept");
		ctx->all_devices_blocked = TRUE;
	}
	ctx->dev_recs = p_new(ctx->pool, struct mw_retrieval_rec,
			      array_count(&ctx->devs.dev_nos) + 1);
}

/* TRUE if the decision of msg may read the store: it is the session's
   own (retrieved or deleted, not expunged by Dovecot) and the store can
   record for this device. */
static bool
quit_reads_store(struct quit_ctx *ctx, const struct mailward_pop3_msg *msg)
{
	return !msg->client_expunged && (msg->retrieved || msg->deleted) &&
		ctx->mbox_guid != NULL;
}

static bool quit_checks_all_devices(struct quit_ctx *ctx)
{
	const struct mw_settings *set = &ctx->muser->set;

	return set->pop3_policy == MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES &&
		set->disposition != MW_DISPOSITION_KEEP &&
		!ctx->all_devices_blocked;
}

/* Queues the store reads of msg (the i-th decided) into ctx->reads. */
static void quit_add_reads(struct quit_ctx *ctx,
			   struct mailward_pop3_msg *msg, unsigned int i,
			   unsigned int *n)
{
	struct mailward_user *muser = ctx->muser;
	const unsigned char *key;
	const uint16_t *dev_no;

	ctx->reads_first[i] = *n;
	if (!quit_reads_store(ctx, msg))
		return;
	key = mailward_pop3_msg_key(msg);
	if (quit_checks_all_devices(ctx)) {
		array_foreach(&ctx->devs.dev_nos, dev_no) {
			if (*dev_no == muser->device.dev_no)
				continue;
			ctx->reads[*n].dev_no = *dev_no;
			memcpy(ctx->reads[(*n)++].key, key, MW_MSG_KEY_SIZE);
		}
	}
	if (muser->set.expunge_delay_secs > 0 || ctx->suppress_cause != 0) {
		/* its due time, and its suppression mark */
		ctx->reads[*n].dev_no = muser->device.dev_no;
		memcpy(ctx->reads[(*n)++].key, key, MW_MSG_KEY_SIZE);
	}
}

/* The devices (and this session's device) were read before the records:
   a record whose number another device held at its read (the device was
   removed and its number handed out again in between) is not found for
   the device meant. */
static void quit_check_owners(struct quit_ctx *ctx, unsigned int n)
{
	const struct mw_device_rec *self = &ctx->muser->device;
	struct mw_msg_query *q;
	unsigned int i;

	for (i = 0; i < n; i++) {
		q = &ctx->reads[i];
		if (!q->found)
			continue;
		if (q->dev_no == self->dev_no ?
		    memcmp(q->rec.dev_id, self->id, MW_DEVICE_ID_SIZE) != 0 :
		    !mailward_devices_owns(&ctx->devs, &q->rec))
			q->found = FALSE;
	}
}

/* Reads every record the decisions of msgs need in one read transaction

   (issue 14: one per message and device before). A store error blocks
   every all-devices expunge of the session (logged, fail-safe); a due
   time not read is not known. */
static void quit_read_records(struct quit_ctx *ctx,
			      struct mailward_pop3_msg *const *msgs,
			      unsigned int count)
{
	struct mailward_user *muser = ctx->muser;
	const char *error;
	unsigned int i, n = 0, per_msg;

	per_msg = array_count(&ctx->devs.dev_nos) + 1;
	/* (+ 1: Dovecot's pools allocate nothing of 0 bytes) */
	ctx->reads = p_new(ctx->pool, struct mw_msg_query,
			   count * per_msg + 1);
	ctx->reads_first = p_new(ctx->pool, unsigned int, count + 1);
	for (i = 0; i < count; i++)
		quit_add_reads(ctx, msgs[i], i, &n);
	ctx->reads_first[count] = n;
	if (n == 0)
		return;	/* (nothing to read: no state for this session) */
	if (mw_store_msg_get_many(muser->store, ctx->mbox_guid, ctx->reads, n,
				  &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		ctx->all_devices_blocked = TRUE;
		return;
	}
	quit_check_owners(ctx, n);
}

/* mw_all_devices_have() for the i-th message, which this device
   retrieved or deleted: this device's record is the session's, the
   others' were read. */
static bool
quit_all_devices_have(struct quit_ctx *ctx, const struct mailward_pop3_msg *msg,
		      unsigned int i)
{
	struct mailward_user *muser = ctx->muser;
	struct mw_retrieval_rec *recs = ctx->dev_recs;
	const struct mw_msg_query *q = &ctx->reads[ctx->reads_first[i]];
	const uint16_t *dev_nos;
	unsigned int d, count, n = 0;

	dev_nos = array_get(&ctx->devs.dev_nos, &count);
	for (d = 0; d < count; d++) {
		if (dev_nos[d] == muser->device.dev_no) {
			recs[n].dev_no = dev_nos[d];
			recs[n].retrieved = msg->retrieved;
			recs[n].deleted = msg->deleted;
			recs[n++].expunge_due = 0;
			continue;
		}
		if (!q->found) {
			q++;
			continue;
		}
		recs[n].dev_no = dev_nos[d];
		recs[n].retrieved = q->rec.retrieved != 0;
		recs[n].deleted = q->rec.deleted != 0;
		recs[n++].expunge_due = q->rec.expunge_due;
		q++;
	}
	return mw_all_devices_have(dev_nos, count, recs, n);
}

/* The facts of one message for mw_quit_decide() (the recorded due time
   is looked at only when the decision schedules it). */
static void
quit_facts(struct quit_ctx *ctx, const struct mailward_pop3_msg *msg,
	   unsigned int i, struct mw_quit_facts *facts_r)
{
	i_zero(facts_r);
	facts_r->retrieved = msg->retrieved;
	facts_r->deleted = msg->deleted;
	facts_r->client_expunged = msg->client_expunged;
	facts_r->state_known = ctx->mbox_guid != NULL;
	if (quit_reads_store(ctx, msg) && quit_checks_all_devices(ctx))
		facts_r->all_devices_have = quit_all_devices_have(ctx, msg, i);
}

/* Decides for one message and carries out what can be done now (due
   times into the batch); a disposition becomes a target. */
static void quit_msg(struct quit_ctx *ctx, struct mailward_pop3_msg *msg,
		     unsigned int i)
{
	struct mailward_user *muser = ctx->muser;
	unsigned int last = ctx->reads_first[i + 1];
	const struct mw_msg_query *own = NULL;
	struct mailward_target *target;
	struct mw_quit_facts facts;
	enum mw_quit_action action;
	time_t due;

	quit_facts(ctx, msg, i, &facts);
	action = mw_quit_decide(&muser->set, &facts, ctx->now, &due);
	/* this device's record is the last read of the message, if any */
	if (last > ctx->reads_first[i] &&
	    ctx->reads[last - 1].dev_no == muser->device.dev_no)
		own = &ctx->reads[last - 1];
	if (action == MW_QUIT_SCHEDULE && own != NULL && own->found &&
	    own->rec.expunge_due != 0) {
		/* an earlier due time (or seen done) stands */
		facts.recorded_due = own->rec.expunge_due;
		action = mw_quit_decide(&muser->set, &facts, ctx->now, &due);
	}
	if (action != MW_QUIT_CLIENT_EXPUNGED && ctx->mbox_guid != NULL) {
		if (msg->retrieved)
			mw_batch_msg_update_key(ctx->batch,
				muser->device.dev_no, ctx->mbox_guid,
				mailward_pop3_msg_key(msg), msg->uid,
				MW_MSG_RETRIEVED, ctx->now);
		if (msg->deleted)
			mw_batch_msg_update_key(ctx->batch,
				muser->device.dev_no, ctx->mbox_guid,
				mailward_pop3_msg_key(msg), msg->uid,
				MW_MSG_DELETED, ctx->now);
	}
	switch (action) {
	case MW_QUIT_UNTOUCHED:
		break;
	case MW_QUIT_CLIENT_EXPUNGED:
		ctx->client_expunged++;
		break;
	case MW_QUIT_KEEP:
		ctx->kept++;
		break;
	case MW_QUIT_SCHEDULE:
		mw_batch_msg_update_key(ctx->batch, muser->device.dev_no,
					ctx->mbox_guid,
					mailward_pop3_msg_key(msg), msg->uid,
					MW_MSG_DUE, due);
		ctx->due_count++;
		break;
	case MW_QUIT_DISPOSE:
		target = array_append_space(&ctx->targets);
		target->uid = msg->uid;
		/* (Dovecot's GUID for logs; the key is mailward's identity
		   of the message) */
		target->guid = t_strcut(msg->guid, '/');
		target->identity = msg->guid;
		memcpy(target->key, mailward_pop3_msg_key(msg),
		       sizeof(target->key));
		if (own != NULL && own->found)
			target->mark = own->rec.noted;
		target->noted = ctx->suppress_cause != 0 &&
			target->mark == ctx->suppress_cause;
		break;
	}
}

static void quit_decide_all(struct quit_ctx *ctx)
{
	struct hash_iterate_context *iter;
	ARRAY(struct mailward_pop3_msg *) msgs;
	struct mailward_pop3_msg *msg, *const *msgp;
	unsigned int i, count;
	void *key;

	p_array_init(&msgs, ctx->pool, hash_table_count(ctx->s->msgs) + 1);
	iter = hash_table_iterate_init(ctx->s->msgs);
	while (hash_table_iterate(iter, ctx->s->msgs, &key, &msg))
		array_push_back(&msgs, &msg);
	hash_table_iterate_deinit(&iter);
	msgp = array_get(&msgs, &count);
	quit_read_records(ctx, msgp, count);
	for (i = 0; i < count; i++)
		quit_msg(ctx, msgp[i], i);
}

/* The suppression mark of this device's record of target after its
   disposition (mailward_target_mark()). */
static void quit_mark(struct quit_ctx *ctx, const struct mailward_target *target)
{
	uint32_t mark;

	if (!mailward_target_mark(target, ctx->suppress_cause, &mark) ||
	    mark == target->mark || ctx->mbox_guid == NULL)
		return;
	mw_batch_msg_update_key(ctx->batch, ctx->muser->device.dev_no,
				ctx->mbox_guid, target->key, 0, MW_MSG_NOTED,
				mark);
}

/* Carries out the dispositions decided. One that failed (e.g. the audit
   writer is away) stands: due now, carried out by the next session's
   sweep or doveadm mailward expunge, shown as pending meanwhile. The
   records of expunged and moved messages were pruned by the commit. */
static void quit_dispose(struct quit_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	enum mw_pop3_disposition disposition = muser->set.disposition;
	struct mailward_target *target;
	unsigned int i;
	bool *done, failed = FALSE;

	if (array_count(&ctx->targets) == 0)
		return;
	done = p_new(ctx->pool, bool, array_count(&ctx->targets));
	ctx->expunged = mailward_dispose_targets(muser, ctx->box,
						 &ctx->targets, "policy",
						 done);
	if (ctx->expunged < 0) {
		failed = TRUE;
		ctx->expunged = 0;
	}
	if (disposition != MW_DISPOSITION_EXPUNGE)
		ctx->expunged = 0;	/* (counted as disposed) */
	array_foreach_modifiable(&ctx->targets, target) {
		i = array_foreach_idx(&ctx->targets, target);
		quit_mark(ctx, target);
		if (!done[i] && failed && ctx->mbox_guid != NULL) {
			mw_batch_msg_update_key(ctx->batch,
				muser->device.dev_no, ctx->mbox_guid,
				target->key, target->uid, MW_MSG_DUE,
				ctx->now);
			ctx->due_count++;
		} else if (!done[i]) {
			ctx->kept++;
		} else {
			if (ctx->mbox_guid != NULL &&
			    disposition == MW_DISPOSITION_SEEN) {
				/* it stays, hidden from this device */
				mw_batch_msg_update_key(ctx->batch,
					muser->device.dev_no, ctx->mbox_guid,
					target->key, target->uid, MW_MSG_DUE,
					MW_MSG_DUE_DISPOSED);
			}
			if (disposition != MW_DISPOSITION_EXPUNGE)
				ctx->disposed++;
		}
	}
}

static void quit_log(struct quit_ctx *ctx, bool quit_seen)
{
	struct mailward_user *muser = ctx->muser;
	struct mailward_pop3_session *s = ctx->s;
	enum mw_pop3_policy policy = muser->set.pop3_policy;
	unsigned int expunged = ctx->client_expunged +
		(unsigned int)ctx->expunged;

	e_info(mailward_named_event(muser, "mailward_session_finished")->
	       add_str("protocol", "pop3")->
	       add_str("end", quit_seen ? "quit" : "dropped")->
	       add_str("policy", mw_pop3_policy_name(policy))->
	       add_str("fail_safe", muser->fail_safe ? "yes" : "no")->
	       add_str("hold", muser->set.hold ? "yes" : "no")->
	       add_int("retr", s == NULL ? 0 : s->retr_count)->
	       add_int("top", s == NULL ? 0 : s->top_count)->
	       add_int("dele", s == NULL ? 0 : s->dele_count)->
	       add_int("expunged", expunged)->
	       add_int("kept", ctx->kept)->add_int("delayed", ctx->due_count)->
	       add_int("due_expunged", ctx->due_expunged)->
	       add_int("hidden", s == NULL ? 0 : s->hidden_count)->event(),
	       "pop3 session %s: policy=%s%s device=%s "
	       "retr=%u top=%u dele=%u expunged=%u kept=%u delayed=%u "
	       "due_expunged=%d hidden=%u disposition=%s disposed=%u",
	       quit_seen ? "ended with QUIT" :
	       "dropped without QUIT (nothing expunged or recorded)",
	       mw_pop3_policy_name(policy),
	       muser->fail_safe ? " (fail-safe)" :
	       (muser->set.hold ? " (hold)" : ""),
	       muser->device_registered ? muser->device.id_hex : "-",
	       s == NULL ? 0 : s->retr_count, s == NULL ? 0 : s->top_count,
	       s == NULL ? 0 : s->dele_count, expunged, ctx->kept,
	       ctx->due_count, ctx->due_expunged,
	       s == NULL ? 0 : s->hidden_count,
	       mw_pop3_disposition_name(muser->set.disposition),
	       ctx->disposed);
}

void mailward_pop3_session_end(struct mailward_user *muser,
			       struct mailbox *box, bool quit_seen,
			       bool update_ok)
{
	struct mailward_pop3_session *s = muser->pop3;
	struct quit_ctx ctx;

	i_zero(&ctx);
	ctx.muser = muser;
	ctx.s = s;
	ctx.box = box;
	ctx.now = ioloop_time;
	ctx.batch = mailward_state_batch(muser);
	ctx.pool = pool_alloconly_create("mailward session end", 1024);
	ctx.suppress_cause = mailward_dispose_suppress_cause(muser);
	p_array_init(&ctx.targets, ctx.pool, 16);
	if (s != NULL && s->box == box && ctx.batch != NULL &&
	    muser->device_registered)
		ctx.mbox_guid = mailward_mailbox_guid(muser, box);

	if (quit_seen && update_ok) {
		quit_read_devices(&ctx);
		if (s != NULL)
			quit_decide_all(&ctx);
	}
	quit_dispose(&ctx);
	if (ctx.mbox_guid != NULL && quit_seen &&
	    mailward_user_needs_sweep(muser)) {
		ctx.due_expunged = mailward_expunge_due(muser, box, ctx.now,
							NULL, NULL);
		if (ctx.due_expunged < 0)
			ctx.due_expunged = 0;
	}
	if (ctx.batch != NULL && muser->device_registered) {
		mw_batch_device_touch(ctx.batch, muser->device.id_hex, ctx.now,
				      1, quit_seen && s != NULL ?
				      s->retr_count : 0,
				      quit_seen && s != NULL ?
				      s->dele_count : 0);
	}
	MAILWARD_FAULT_POINT(muser, "before-state-write");
	(void)mailward_state_flush(muser);
	/* the session's remaining audit records (logout included) are
	   flushed once, at user deinit right after this */
	quit_log(&ctx, quit_seen);
	pool_unref(&ctx.pool);
}
