/* mailward: carrying out a disposition policy decided on (expunge,
   \Seen, move) in a policy transaction of mailward's own */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "hex-binary.h"
#include "mail-search-build.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"
#include "mw-audit.h"
#include "mailward-display.h"

/* The disposition's destination mailbox (move:<mailbox>), opened and
   created if missing: with \Archive special-use when it is named Archive
   and no mailbox of the user has that special-use yet. Returns NULL with
   *error_r set when it cannot be opened, created or written. */
static struct mailbox *
mailward_dispose_dest_open(struct mailward_user *muser, struct mailbox *src,
			   const char **error_r)
{
	const char *name = muser->set.disposition_mailbox;
	struct mail_namespace *ns;
	struct mailbox *box;
	enum mail_error error;
	bool archive;

	ns = mail_namespace_find(muser->user->namespaces, name);
	if (ns == NULL || ns->type != MAIL_NAMESPACE_TYPE_PRIVATE ||
	    ns->owner != muser->user) {
		*error_r = "not a mailbox of the user's own (private) "
			"namespaces";
		return NULL;
	}
	box = mailbox_alloc(ns->list, name, 0);
	if (strcmp(mailbox_get_vname(box), mailbox_get_vname(src)) == 0 ||
	    box->inbox_user) {
		mailbox_free(&box);
		*error_r = "it is the mailbox the message is in";
		return NULL;
	}
	if (mailbox_open(box) == 0) {
		if (mailbox_is_readonly(box)) {
			mailbox_free(&box);
			*error_r = "the mailbox is read-only";
			return NULL;
		}
		return box;
	}
	*error_r = mailbox_get_last_internal_error(box, &error);
	if (error != MAIL_ERROR_NOTFOUND) {
		*error_r = t_strdup(*error_r);
		mailbox_free(&box);
		return NULL;
	}
	mailbox_free(&box);

	box = mailbox_alloc(ns->list, name, 0);
	if (mailbox_create(box, NULL, FALSE) < 0 &&
	    mailbox_get_last_mail_error(box) != MAIL_ERROR_EXISTS) {
		*error_r = t_strdup_printf("cannot create it: %s",
			mailbox_get_last_internal_error(box, NULL));
		mailbox_free(&box);
		return NULL;
	}
	(void)mailbox_set_subscribed(box, TRUE);
	if (mailbox_open(box) < 0) {
		*error_r = t_strdup(mailbox_get_last_internal_error(box, NULL));
		mailbox_free(&box);
		return NULL;
	}
	/* Dovecot 2.3 takes special-use flags from its configuration only
	   (mailbox { special_use }), a plugin cannot give a mailbox one */
	archive = strcmp(name, "Archive") == 0 &&
		!mailbox_has_special_use(box, "\\Archive");
	e_info(muser->event, "Created mailbox %s for "
	       "mailward_pop3_disposition=move:%s%s",
	       mailward_display(name, 0), mailward_display(name, 0),
	       archive ? " (no \\Archive special-use: add mailbox Archive "
	       "{ special_use = \\Archive } to the inbox namespace in "
	       "dovecot.conf)" : "");
	return box;
}

/* TRUE if the disposition of muser's messages writes disposed records
   (mailward_audit_disposed()): \Seen and moves, with the audit log on.
   An expunge's records are the expunge_intent/_done ones. */
static bool mailward_dispose_audited(struct mailward_user *muser)
{
	return muser->audit != NULL &&
		muser->set.disposition != MW_DISPOSITION_EXPUNGE;
}

/* Notes what the disposed record says about the message (read before
   the disposition acts on it). Only that record reads these fields:
   without it the header is not parsed again (issue 14). */
static void
mailward_target_note_mail(struct mailward_user *muser,
			  struct mailward_target *target, struct mail *mail)
{
	struct mailbox_status status;
	const char *msgid;
	uoff_t size;

	if (!mailward_dispose_audited(muser))
		return;
	if ((msgid = mailward_audit_message_id(muser, mail,
			mailward_pop3_msg_find(muser, mail))) != NULL)
		target->message_id = t_strdup(msgid);
	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	target->uidvalidity = status.uidvalidity;
	if (mail_get_physical_size(mail, &size) == 0) {
		target->size = size;
		target->size_set = TRUE;
	}
}

/* Audits what the disposition did (or could not do) to one message.
   Returns TRUE if the record was queued (mailward_audit_queue_required():
   for mailward_audit_make_durable()). */
static bool
mailward_audit_disposed(struct mailward_user *muser, struct mailbox *box,
			const struct mailward_target *target, const char *cause,
			const char *outcome, const char *dest_name,
			const char *dest_guid, const char *detail)
{
	struct mw_audit_event ev;

	if (muser->audit == NULL)
		return FALSE;
	mailward_audit_event_init(muser, &ev, "disposed", outcome);
	mw_audit_event_set_str(&ev, MW_AF_MAILBOX, mailbox_get_vname(box));
	mw_audit_event_set_str(&ev, MW_AF_MAILBOX_GUID,
			       mailward_mailbox_guid(muser, box));
	if (target->uidvalidity != 0) {
		mw_audit_event_set_num(&ev, MW_AF_UIDVALIDITY,
				       target->uidvalidity);
	}
	mw_audit_event_set_num(&ev, MW_AF_UID, target->uid);
	if (target->guid != NULL)
		mw_audit_event_set_str(&ev, MW_AF_MSG_GUID, target->guid);
	mw_audit_event_set_str(&ev, MW_AF_MESSAGE_ID, target->message_id);
	if (target->size_set)
		mw_audit_event_set_num(&ev, MW_AF_SIZE, target->size);
	mailward_audit_event_policy(muser, &ev);
	mw_audit_event_set_str(&ev, MW_AF_CAUSE, cause);
	mw_audit_event_set_str(&ev, MW_AF_ACTION,
		mw_pop3_disposition_name(muser->set.disposition));
	mw_audit_event_set_str(&ev, MW_AF_DESTINATION, dest_name);
	mw_audit_event_set_str(&ev, MW_AF_DESTINATION_GUID, dest_guid);
	mw_audit_event_set_str(&ev, MW_AF_DETAIL, detail);
	return mailward_audit_queue_required(muser, &ev);
}

/* Carries out the disposition (mailward_pop3_disposition) on one mail of
   the targets: expunge it, set \Seen, or move it into dest_t. Returns 0,
   or -1 when the move's copy failed (the message stays). */
static int
mailward_dispose_mail(struct mailward_user *muser, struct mail *mail,
		      struct mailbox_transaction_context *dest_t)
{
	struct mail_save_context *save;

	switch (muser->set.disposition) {
	case MW_DISPOSITION_EXPUNGE:
		mail_expunge(mail);
		return 0;
	case MW_DISPOSITION_SEEN:
		mail_update_flags(mail, MODIFY_ADD, MAIL_SEEN);
		return 0;
	case MW_DISPOSITION_MOVE:
		/* copies into dest_t and expunges the source (which the
		   source transaction commits after the destination's) */
		save = mailbox_save_alloc(dest_t);
		return mailbox_move(&save, mail);
	case MW_DISPOSITION_KEEP:
		break;
	}
	return 0;
}

/* One call of mailward_dispose_targets() */
struct dispose_ctx {
	struct mailward_user *muser;
	struct mailbox *box;
	ARRAY_TYPE(mailward_target) *targets;
	bool *done;
	const char *cause, *audit_cause;
	/* the policy transaction in box, and a move's in dest */
	struct mailbox_transaction_context *t, *dest_t;
	struct mailbox *dest;
	const char *dest_name, *dest_guid;
	unsigned int count;
	/* a move's copy failed */
	bool failed;
};

uint32_t mailward_dispose_suppress_cause(struct mailward_user *muser)
{
	/* a hold set since the session started holds now; a mark that
	   cannot be read keeps the mail (logged) */
	if (mailward_hold_recheck(muser) < 0 && !muser->fail_safe) {
		mailward_user_set_fail_safe(muser, "Legal hold mark could not "
					    "be read");
	}
	if (mw_dispose_allowed(&muser->set, muser->fail_safe))
		return 0;
	return muser->set.hold ? MW_MSG_NOTED_HOLD : MW_MSG_NOTED_FAIL_SAFE;
}

bool mailward_target_mark(const struct mailward_target *target,
			  uint32_t suppress_cause, uint32_t *mark_r)
{
	if (suppress_cause != 0) {
		*mark_r = suppress_cause;
		return target->noted;
	}
	*mark_r = target->dest_failed ? MW_MSG_NOTED_MOVE_FAILED : 0;
	return TRUE;
}

/* Queues the expunge_suppressed record of target (found as mail in
   box, else named by what the state store has). Returns TRUE if it was
   queued. */
static bool
dispose_suppressed_audit(struct dispose_ctx *ctx,
			 const struct mailward_target *target,
			 struct mail *mail)
{
	struct mailward_user *muser = ctx->muser;
	enum mw_pop3_disposition disposition = muser->set.disposition;
	struct mw_audit_event ev;

	mailward_audit_event_init(muser, &ev, "expunge_suppressed",
				  "suppressed");
	if (target->uid != 0 && mail_set_uid(mail, target->uid) &&
	    mailward_mail_has_key(mail, target->key)) {
		mailward_audit_event_mail(muser, &ev, mail, NULL, NULL);
	} else {
		mw_audit_event_set_str(&ev, MW_AF_MAILBOX,
				       mailbox_get_vname(ctx->box));
		mw_audit_event_set_str(&ev, MW_AF_MAILBOX_GUID,
				       mailward_mailbox_guid(muser, ctx->box));
		mw_audit_event_set_num(&ev, MW_AF_UID, target->uid);
		if (target->guid != NULL) {
			mw_audit_event_set_str(&ev, MW_AF_MSG_GUID,
					       target->guid);
		}
	}
	mailward_audit_event_policy(muser, &ev);
	mw_audit_event_set_str(&ev, MW_AF_CAUSE,
			       muser->set.hold ? "hold" : "fail_safe");
	mw_audit_event_set_str(&ev, MW_AF_DETAIL,
		disposition == MW_DISPOSITION_EXPUNGE ?
		t_strdup_printf("%s expunge not carried out", ctx->cause) :
		t_strdup_printf("%s %s not carried out (nothing copied, "
				"nothing removed)", ctx->cause,
				mw_pop3_disposition_name(disposition)));
	if (disposition == MW_DISPOSITION_MOVE) {
		mw_audit_event_set_str(&ev, MW_AF_ACTION, "move");
		mw_audit_event_set_str(&ev, MW_AF_DESTINATION,
				       muser->set.disposition_mailbox);
	}
	return mailward_audit_queue_required(muser, &ev);
}

/* Audits each target not noted yet (read-only: the records name each
   message in full) and makes the records durable; a target is set noted
   only once its record is (mailward_audit_make_durable()): the caller
   marks the noted ones in the state store. Returns the number of
   records made durable; *unwritten_r: those queued that are not. */
static unsigned int
dispose_suppressed_audit_all(struct dispose_ctx *ctx,
			     unsigned int *unwritten_r)
{
	struct mailward_user *muser = ctx->muser;
	struct mailbox_transaction_context *t;
	struct mailward_target *target;
	struct mail *mail;
	bool *queued;
	unsigned int i, n_queued = 0;

	*unwritten_r = 0;
	queued = t_new(bool, array_count(ctx->targets));
	t = mailbox_transaction_begin(ctx->box, 0,
				      "mailward suppressed expunge");
	mail = mail_alloc(t, MAIL_FETCH_GUID, NULL);
	array_foreach_modifiable(ctx->targets, target) {
		i = array_foreach_idx(ctx->targets, target);
		if (!target->noted &&
		    dispose_suppressed_audit(ctx, target, mail)) {
			queued[i] = TRUE;
			n_queued++;
		}
	}
	mail_free(&mail);
	mailbox_transaction_rollback(&t);
	/* the logout record's count: they go with it */
	muser->audit_suppressed += n_queued;
	if (n_queued > 0 && mailward_audit_make_durable(muser, n_queued,
					"expunge_suppressed") < 0) {
		*unwritten_r = n_queued;
		return 0;
	}
	array_foreach_modifiable(ctx->targets, target) {
		if (queued[array_foreach_idx(ctx->targets, target)])
			target->noted = TRUE;
	}
	/* (a record not queued was dropped, logged by the client: its
	   target stays not noted) */
	return n_queued;
}

/* Hold or fail-safe: audits each target not noted yet
   (dispose_suppressed_audit_all()) and logs that nothing of the targets
   was carried out (one line for all). */
static void dispose_suppressed(struct dispose_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	enum mw_pop3_disposition disposition = muser->set.disposition;
	struct mailward_target *target;
	unsigned int n = array_count(ctx->targets), n_new = 0;
	unsigned int n_audited = 0, n_unwritten = 0;
	const char *audited;

	array_foreach_modifiable(ctx->targets, target) {
		if (!target->noted)
			n_new++;
	}
	if (muser->audit == NULL)
		audited = "audit log off";
	else {
		if (n_new > 0) {
			n_audited = dispose_suppressed_audit_all(ctx,
								 &n_unwritten);
		}
		audited = t_strdup_printf("%u audited now, %u before%s",
			n_audited, n - n_new, n_unwritten == 0 ? "" :
			t_strdup_printf(
			", %u not written: audit log unavailable, audited "
			"again by the next sweep", n_unwritten));
	}
	e_info(mailward_named_event(muser, "mailward_expunge_suppressed")->
	       add_int("count", n)->add_int("newly_audited", n_audited)->
	       add_int("not_written", n_unwritten)->
	       add_str("cause", muser->set.hold ? "hold" : "fail_safe")->
	       add_str("expunge_cause", ctx->cause)->event(),
	       "%u %s %s(s) in %s suppressed (%s): %s", n, ctx->cause,
	       disposition == MW_DISPOSITION_EXPUNGE ? "expunge" :
	       mw_pop3_disposition_name(disposition),
	       mailward_display(mailbox_get_vname(ctx->box), 0), audited,
	       muser->set.hold ? "legal hold (mailward_hold=yes)" :
	       muser->fail_safe_reason);
}

/* Audits the targets (all, or only those done) as failed with detail. */
static void
dispose_audit_failed(struct dispose_ctx *ctx, bool only_done,
		     const char *detail)
{
	struct mailward_target *target;
	unsigned int i;

	array_foreach_modifiable(ctx->targets, target) {
		i = array_foreach_idx(ctx->targets, target);
		if (only_done && !ctx->done[i])
			continue;
		(void)mailward_audit_disposed(ctx->muser, ctx->box, target,
					      ctx->audit_cause, "failed",
					      ctx->dest_name, ctx->dest_guid,
					      detail);
	}
}

/* The destination of a move cannot be used: audits each target as
   failed, once while it fails (a target marked MW_MSG_NOTED_MOVE_FAILED
   was audited by an earlier sweep). */
static void dispose_dest_failed(struct dispose_ctx *ctx, const char *detail)
{
	struct mailward_target *target;
	unsigned int n_queued = 0;
	bool durable;

	array_foreach_modifiable(ctx->targets, target) {
		/* dest_failed for now: its record queued */
		target->dest_failed =
			target->mark != MW_MSG_NOTED_MOVE_FAILED &&
			mailward_audit_disposed(ctx->muser, ctx->box, target,
						ctx->audit_cause, "failed",
						ctx->dest_name, NULL, detail);
		if (target->dest_failed)
			n_queued++;
	}
	/* marked only once their records are durable */
	durable = n_queued == 0 ||
		mailward_audit_make_durable(ctx->muser, n_queued,
					    "disposed/failed") == 0;
	array_foreach_modifiable(ctx->targets, target) {
		target->dest_failed = (target->dest_failed && durable) ||
			target->mark == MW_MSG_NOTED_MOVE_FAILED;
	}
}

/* A move: opens the destination and begins its transaction. Returns -1
   when it cannot be used (logged and audited: the messages stay where
   they are and listed as before, not due: the next retrieval tries
   again). */
static int dispose_move_begin(struct dispose_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	struct mailbox_metadata md;
	const char *error = NULL;

	ctx->dest_name = muser->set.disposition_mailbox;
	ctx->dest = mailward_dispose_dest_open(muser, ctx->box, &error);
	if (ctx->dest == NULL) {
		e_error(muser->event, "mailward_pop3_disposition="
			"move:%s of user %s: destination mailbox %s "
			"cannot be used: %s (%u message(s) kept in %s)",
			mailward_display(ctx->dest_name, 0),
			mailward_display(muser->user->username, 0),
			mailward_display(ctx->dest_name, 0), error,
			array_count(ctx->targets),
			mailward_display(mailbox_get_vname(ctx->box), 0));
		dispose_dest_failed(ctx, t_strdup_printf(
			"destination cannot be used: %s; message kept",
			error));
		return -1;
	}
	if (mailbox_get_metadata(ctx->dest, MAILBOX_METADATA_GUID, &md) == 0)
		ctx->dest_guid = binary_to_hex(md.guid, sizeof(md.guid));
	/* (saving needs an external transaction) */
	ctx->dest_t = mailbox_transaction_begin(ctx->dest,
		MAILBOX_TRANSACTION_FLAG_EXTERNAL, "mailward disposition move");
	return 0;
}

/* Disposes of one target found as mail (its GUID guid). Returns FALSE
   when a move's copy failed. */
static bool
dispose_one(struct dispose_ctx *ctx, struct mailward_target *target,
	    unsigned int idx, struct mail *mail, const char *guid)
{
	mailward_target_note_mail(ctx->muser, target, mail);
	if (mailward_dispose_mail(ctx->muser, mail, ctx->dest_t) < 0) {
		ctx->failed = TRUE;
		return FALSE;
	}
	target->uid = mail->uid;
	target->guid = guid;
	ctx->done[idx] = TRUE;
	ctx->count++;
	return TRUE;
}

/* TRUE if mail (its GUID guid) is target's message: by the identity the
   target knows where a GUID is the message's identity (no message key
   computed: a SHA-256, issue 14), else by its key. */
static bool
dispose_target_is(const struct mailward_target *target, struct mail *mail,
		  const char *guid)
{
	if (target->identity != NULL && !mailward_guid_is_shared(mail))
		return strcmp(guid, target->identity) == 0;
	return mailward_mail_has_key(mail, target->key);
}

/* Disposes of the targets found by their UID hint. Returns TRUE if some
   were not found that way (stale hint: UIDVALIDITY changed). */
static bool dispose_by_uid(struct dispose_ctx *ctx)
{
	struct mailward_target *target;
	struct mail *mail;
	const char *guid;
	bool need_scan = FALSE;

	mail = mail_alloc(ctx->t, 0, NULL);
	array_foreach_modifiable(ctx->targets, target) {
		if (target->uid == 0 || !mail_set_uid(mail, target->uid) ||
		    mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0) {
			need_scan = TRUE;
			continue;
		}
		guid = t_strdup(guid);
		if (!dispose_target_is(target, mail, guid)) {
			/* UID hint is stale (UIDVALIDITY changed) */
			need_scan = TRUE;
			continue;
		}
		if (!dispose_one(ctx, target,
				 array_foreach_idx(ctx->targets, target),
				 mail, guid))
			break;
	}
	mail_free(&mail);
	return need_scan;
}

/* Finds the rest of the targets by message key in a search of the whole
   mailbox (a policy transaction's search sees past the per-device view)
   and disposes of them. */
static void dispose_by_scan(struct dispose_ctx *ctx)
{
	struct mail_search_args *args = mail_search_build_init();
	struct mail_search_context *sctx;
	struct mailward_target *target;
	struct mail *smail;
	const char *guid;
	unsigned int i;

	mail_search_build_add_all(args);
	sctx = mailbox_search_init(ctx->t, args, NULL, 0, NULL);
	mail_search_args_unref(&args);
	while (!ctx->failed && mailbox_search_next(sctx, &smail)) {
		if (mail_get_special(smail, MAIL_FETCH_GUID, &guid) < 0)
			continue;
		guid = t_strdup(guid);
		array_foreach_modifiable(ctx->targets, target) {
			i = array_foreach_idx(ctx->targets, target);
			if (!ctx->done[i] &&
			    dispose_target_is(target, smail, guid)) {
				(void)dispose_one(ctx, target, i, smail, guid);
				break;
			}
		}
	}
	(void)mailbox_search_deinit(&sctx);
}

/* A move that cannot go on: nothing of it happens (the messages stay in
   the source). why is logged; audit_detail (NULL: no record) is audited
   for every target, or with only_done for those done. Returns ret. */
static int
dispose_move_abort(struct dispose_ctx *ctx, const char *why,
		   const char *audit_detail, bool only_done, int ret)
{
	struct mailward_user *muser = ctx->muser;

	if (ctx->dest_t != NULL)
		mailbox_transaction_rollback(&ctx->dest_t);
	mailbox_transaction_rollback(&ctx->t);
	mailbox_free(&ctx->dest);
	e_error(muser->event, "mailward_pop3_disposition=move:%s of "
		"user %s: %s (messages kept in %s)",
		mailward_display(ctx->dest_name, 0),
		mailward_display(muser->user->username, 0), why,
		mailward_display(mailbox_get_vname(ctx->box), 0));
	if (audit_detail != NULL)
		dispose_audit_failed(ctx, only_done, audit_detail);
	memset(ctx->done, 0, sizeof(bool) * array_count(ctx->targets));
	return ret;
}

/* Commits a move's destination: the copies are saved only once the
   source's expunge intents are durable (audit before act). Returns 0,
   or the value mailward_dispose_targets() returns after an abort. */
static int dispose_move_commit(struct dispose_ctx *ctx, int *ret_r)
{
	const char *error;

	if (ctx->failed) {
		/* a copy into the destination failed */
		error = t_strdup(mailbox_get_last_internal_error(ctx->dest,
								 NULL));
		*ret_r = dispose_move_abort(ctx, t_strdup_printf(
			"cannot write to destination mailbox %s: %s",
			mailward_display(ctx->dest_name, 0), error),
			t_strdup_printf("cannot write to destination: %s; "
					"message kept", error), FALSE, 0);
		return -1;
	}
	if (mailward_transaction_audit_intents(ctx->muser, ctx->t) < 0) {
		/* else the copies would stay while the originals are kept */
		*ret_r = dispose_move_abort(ctx, "audit log unavailable, "
					    "nothing moved", NULL, FALSE, -1);
		return -1;
	}
	if (mailbox_transaction_commit(&ctx->dest_t) < 0) {
		error = t_strdup(mailbox_get_last_internal_error(ctx->dest,
								 NULL));
		*ret_r = dispose_move_abort(ctx, t_strdup_printf(
			"saving into destination mailbox %s failed: %s",
			mailward_display(ctx->dest_name, 0), error),
			t_strdup_printf("saving into destination failed: %s; "
					"message kept", error), TRUE, 0);
		return -1;
	}
	return 0;
}

/* Commits the policy transaction and syncs. Returns 0 or -1 (logged; the
   messages are kept). */
static int dispose_commit(struct dispose_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	struct mailbox *box = ctx->box;

	if (mailbox_transaction_commit(&ctx->t) < 0) {
		if (ctx->dest != NULL) {
			/* the copies are saved, the originals kept: two
			   copies, never none */
			e_error(muser->event, "Disposition move of %u "
				"message(s) from %s to %s: the copies were "
				"saved but removing the originals failed "
				"(messages kept in both): %s", ctx->count,
				mailward_display(mailbox_get_vname(box), 0),
				mailward_display(ctx->dest_name, 0),
				mailbox_get_last_internal_error(box, NULL));
		} else {
			e_error(muser->event, "Policy %s in %s failed "
				"(messages kept): %s",
				muser->set.disposition == MW_DISPOSITION_SEEN ?
				"\\Seen" : "expunge",
				mailward_display(mailbox_get_vname(box), 0),
				mailbox_get_last_internal_error(box, NULL));
		}
		if (ctx->dest != NULL)
			mailbox_free(&ctx->dest);
		memset(ctx->done, 0, sizeof(bool) * array_count(ctx->targets));
		return -1;
	}
	if (mailbox_sync(box, 0) < 0) {
		e_error(muser->event, "Sync of %s after policy expunge "
			"failed: %s",
			mailward_display(mailbox_get_vname(box), 0),
			mailbox_get_last_internal_error(box, NULL));
	}
	return 0;
}

/* Logs and audits what was done. */
static void dispose_report(struct dispose_ctx *ctx)
{
	struct mailward_user *muser = ctx->muser;
	enum mw_pop3_disposition disposition = muser->set.disposition;
	struct mailward_target *target;
	const char *box_name = mailbox_get_vname(ctx->box);

	if (disposition != MW_DISPOSITION_EXPUNGE) {
		array_foreach_modifiable(ctx->targets, target) {
			if (!ctx->done[array_foreach_idx(ctx->targets, target)])
				continue;
			(void)mailward_audit_disposed(muser, ctx->box, target,
				ctx->audit_cause, "ok", ctx->dest_name,
				ctx->dest_guid, NULL);
		}
		if (ctx->count > 0) {
			e_info(muser->event, "%s %u message(s) of %s%s%s "
			       "(mailward_pop3_disposition)",
			       disposition == MW_DISPOSITION_SEEN ?
			       "marked \\Seen" : "moved", ctx->count,
			       mailward_display(box_name, 0),
			       ctx->dest_name != NULL ? " to " : "",
			       ctx->dest_name != NULL ?
			       mailward_display(ctx->dest_name, 0) : "");
		}
	}
	if (ctx->count > 0) {
		e_debug(mailward_named_event(muser, "mailward_expunge")->
			add_int("count", ctx->count)->
			add_str("cause", ctx->cause)->
			add_str("disposition", disposition ==
				MW_DISPOSITION_EXPUNGE ? "expunge" :
				mw_pop3_disposition_name(disposition))->
			event(), "%s: %u message(s) of %s disposed of",
			ctx->cause, ctx->count, mailward_display(box_name, 0));
	}
}

int mailward_dispose_targets(struct mailward_user *muser, struct mailbox *box,
			     ARRAY_TYPE(mailward_target) *targets,
			     const char *cause, bool *done)
{
	struct dispose_ctx ctx;
	int ret;

	if (array_count(targets) == 0 ||
	    muser->set.disposition == MW_DISPOSITION_KEEP)
		return 0;
	i_zero(&ctx);
	ctx.muser = muser;
	ctx.box = box;
	ctx.targets = targets;
	ctx.done = done;
	ctx.cause = cause;
	ctx.audit_cause = strcmp(cause, "policy") == 0 ? "policy" : "delay";
	if (!mw_dispose_allowed(&muser->set, muser->fail_safe)) {
		dispose_suppressed(&ctx);
		return 0;
	}
	if (muser->set.disposition == MW_DISPOSITION_MOVE &&
	    dispose_move_begin(&ctx) < 0)
		return 0;

	ctx.t = mailward_policy_transaction_begin(box, ctx.audit_cause);
	if (dispose_by_uid(&ctx) && !ctx.failed)
		dispose_by_scan(&ctx);
	if (ctx.dest_t != NULL && dispose_move_commit(&ctx, &ret) < 0)
		return ret;
	if (dispose_commit(&ctx) < 0)
		return -1;
	dispose_report(&ctx);
	if (ctx.dest != NULL)
		mailbox_free(&ctx.dest);
	return ctx.count;
}
