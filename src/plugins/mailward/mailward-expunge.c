/* mailward: which expunges happen (policy, hold, imap_expunge=deny, the
   owner's settings unknown), POP3 DELEs, the audit of every expunge
   (intent durable before the commit, result after it) and pruning the
   records of expunged messages */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"
#include "mw-audit.h"
#include "mailward-display.h"

struct mailward_expunged {
	uint32_t uid;
	const char *guid;	/* Dovecot's ("" if unknown) */
	const char *identity;	/* mailward_mail_identity(), or NULL */
	/* mw_msg_key() of identity when key_set (known to the POP3
	   session already) */
	unsigned char key[MW_MSG_KEY_SIZE];
	bool key_set;
	/* for the expunge_done/expunge_rollback records: each says on its
	   own which message, under which policy and why */
	const char *message_id;	/* NULL if none */
	const char *cause;
	uint32_t uidvalidity;
	uoff_t size;
	bool size_set;
};

struct mailward_transaction {
	union mailbox_transaction_module_context module_ctx;
	/* audit cause of mailward's own expunges: policy, delay */
	const char *cause;
	/* expunges refused (hold / imap_expunge=deny): rolls back */
	unsigned int refused;
	/* the legal hold mark was re-read for this transaction
	   (mailward_hold_recheck_once()) */
	bool hold_checked;
	/* copies saved here whose move (or lazy_expunge copy) mailward
	   refuses or suppresses in the source: the commit saves nothing */
	unsigned int kept_move_copies;
	const char *kept_reason;
	struct mail_storage *kept_src_storage;
	const char *refuse_reason;
	/* copies saved here whose move (or lazy_expunge's copy, or 2.4's
	   REPLACE) expunges the source: the source user's expunge intents
	   must be durable before this transaction commits (audit before
	   act), or the copy would stay while the source's commit refuses
	   the expunge. Dovecot's callers move from one source mailbox per
	   destination transaction. */
	struct mailward_user *move_src_user;
	struct mail_storage *move_src_storage;
	/* begun by mailward_policy_transaction_begin(): expunges
	   mailward itself decided (policy, delay) */
	bool policy_expunge;
	/* messages expunged in this transaction, for pruning and audit */
	ARRAY(struct mailward_expunged) expunged;
	/* audit intents queued that must be durable before commit */
	unsigned int audit_intents;
	/* an intent could not be queued: the commit is refused */
	bool audit_intent_lost;
	pool_t pool;
};

enum mail_error mailward_error_unavailable(struct mailward_user *muser)
{
	/* IMAP: [UNAVAILABLE] (MAIL_ERROR_TEMP is [SERVERBUG]); POP3 maps
	   only TEMP to [SYS/TEMP], everything else to [SYS/PERM] */
	if (muser != NULL && strcmp(muser->user->service, "pop3") == 0)
		return MAIL_ERROR_TEMP;
	return MAIL_ERROR_UNAVAILABLE;
}

static const char *
mailward_expunge_cause(struct mailward_user *muser,
		       struct mailbox_transaction_context *t,
		       struct mailward_transaction *mt)
{
	if (mt->policy_expunge)
		return mt->cause != NULL ? mt->cause : "policy";
	if (t->reason != NULL && strcmp(t->reason, "autoexpunge") == 0)
		return "autoexpunge";
	/* Dovecot expunges a mailbox's mail before deleting it */
	if (t->reason != NULL &&
	    strcmp(t->reason, "mailbox_expunge_all_data") == 0)
		return "mailbox_delete";
	if (strcmp(muser->user->service, "doveadm") == 0)
		return "admin";
	return "client";
}

/* An expunge that goes ahead: its intent is queued now and made durable
   before the transaction commits (audit before act). */
static void mailward_note_expunged(struct mailward_user *muser,
				   struct mailward_transaction *mt,
				   struct mail *mail)
{
	struct mailward_expunged *exp;
	struct mailward_pop3_msg *msg;
	const char *guid;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		guid = "";
	if (mt->pool == NULL) {
		mt->pool = pool_alloconly_create("mailward expunged", 512);
		p_array_init(&mt->expunged, mt->pool, 8);
	}
	exp = array_append_space(&mt->expunged);
	exp->uid = mail->uid;
	exp->guid = p_strdup(mt->pool, guid);
	msg = guid[0] == '\0' ? NULL : mailward_pop3_msg_find(muser, mail);
	if (msg != NULL) {
		/* the POP3 session's message: its identity and key are
		   known (no second read of an mbox message, no second
		   SHA-256) */
		exp->identity = p_strdup(mt->pool, msg->guid);
		memcpy(exp->key, mailward_pop3_msg_key(msg), sizeof(exp->key));
		exp->key_set = TRUE;
	} else {
		exp->identity = p_strdup(mt->pool, guid[0] == '\0' ? NULL :
					 mailward_mail_identity(mail));
	}
	exp->cause = mailward_expunge_cause(muser, mail->transaction, mt);
	if (muser->audit != NULL) T_BEGIN {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "expunge_intent", "ok");
		mailward_audit_event_mail(muser, &ev, mail, guid, msg);
		mailward_audit_event_policy(muser, &ev);
		mw_audit_event_set_str(&ev, MW_AF_CAUSE, exp->cause);
		/* the result records repeat the message fields */
		exp->message_id = p_strdup(mt->pool,
					   ev.str[MW_AF_MESSAGE_ID]);
		exp->uidvalidity = ev.num[MW_AF_UIDVALIDITY];
		exp->size = ev.num[MW_AF_SIZE];
		exp->size_set = ev.num_set[MW_AF_SIZE];
		if (mailward_audit_queue_required(muser, &ev))
			mt->audit_intents++;
		else
			mt->audit_intent_lost = TRUE;
	} T_END;
}

/* An expunge that does not happen, with why. */
static void
mailward_note_suppressed(struct mailward_user *muser, struct mail *mail,
			 struct mailward_pop3_msg *msg, const char *event,
			 const char *cause)
{
	struct mw_audit_event ev;

	muser->audit_suppressed++;
	if (muser->audit == NULL)
		return;
	T_BEGIN {
		mailward_audit_event_init(muser, &ev, event, "suppressed");
		mailward_audit_event_mail(muser, &ev, mail, NULL, msg);
		mailward_audit_event_policy(muser, &ev);
		mw_audit_event_set_str(&ev, MW_AF_CAUSE, cause);
		mailward_audit_queue_event(muser, &ev);
	} T_END;
}

/* Re-reads the legal hold mark before the first expunge decision of
   mail's transaction: a session opened before a hold holds from now. */
static void mailward_hold_check_mail(struct mailward_user *muser,
				     struct mail *mail)
{
	struct mailward_transaction *mt = MAILWARD_CONTEXT(mail->transaction);

	mailward_hold_recheck_once(muser, mt == NULL ? NULL :
				   &mt->hold_checked);
}

/* Why mailward will not let the expunge of this mail happen (a static
   string), or NULL if it may. A move whose expunge half does not happen
   must leave no copy (see mailward_copy()). */
static const char *mailward_mail_expunge_kept(struct mail *mail)
{
	struct mailward_user *muser = mailward_mailbox_user(mail->box);
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(mail->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(mail->transaction);

	if (muser == NULL || mbox == NULL || mt == NULL || mail->expunged ||
	    mt->policy_expunge)
		return NULL;
	mailward_hold_check_mail(muser, mail);
	if (mbox->pop3_session) {
		/* (a kept POP3 DELE never reaches Dovecot's expunge: see
		   mailward_search_next_nonblock()) */
		return mailward_pop3_dele_goes_ahead(muser) ? NULL :
			"Message is kept on the server (mailward)";
	}
	return mailward_expunge_refused(muser) ?
		mailward_refuse_reason(muser) : NULL;
}

/* A POP3 DELE that Dovecot carries out at QUIT, by expunge or (with
   pop3_deleted_flag and pop3_delete_type=flag) by adding a keyword that
   hides the message from every POP3 listing. Records the DELE for this
   device. Returns TRUE if Dovecot's own act may go ahead (client policy,
   not held, not fail-safe); otherwise the act is suppressed and audited,
   and the per-device view and the policy at session end take over. */
static bool
mailward_pop3_dele(struct mailward_user *muser, struct mail *mail,
		   bool by_flag)
{
	struct mailward_pop3_session *s =
		mailward_pop3_session_get(muser, mail->box);
	struct mailward_pop3_msg *msg = s == NULL ? NULL :
		mailward_pop3_msg_get(s, mail);

	if (msg != NULL && !msg->deleted) {
		msg->deleted = TRUE;
		s->dele_count++;
		muser->audit_deleted++;
	}
	mailward_hold_check_mail(muser, mail);
	if (mailward_pop3_dele_goes_ahead(muser)) {
		if (msg != NULL && !by_flag)
			msg->client_expunged = TRUE;
		if (by_flag && muser->audit != NULL) T_BEGIN {
			/* not an expunge: the message stays (for IMAP) */
			struct mw_audit_event ev;

			mailward_audit_event_init(muser, &ev, "dele", "flagged");
			mailward_audit_event_mail(muser, &ev, mail, NULL, msg);
			mailward_audit_event_policy(muser, &ev);
			mw_audit_event_set_str(&ev, MW_AF_CAUSE, "client");
			mw_audit_event_set_str(&ev, MW_AF_DETAIL, t_strconcat(
				"pop3_deleted_flag ", muser->pop3_deleted_flag,
				" set: hidden from every POP3 listing", NULL));
			mailward_audit_queue_event(muser, &ev);
		} T_END;
		return TRUE;
	}
	/* kept (and, with pop3_deleted_flag, not flagged: other devices
	   still list it): policy decides at session end */
	mailward_note_suppressed(muser, mail, msg, "dele",
		muser->set.hold ? "hold" :
		(muser->fail_safe || muser->hold_unreadable ?
		 "fail_safe" : "policy"));
	return FALSE;
}

/* TRUE if keywords holds the POP3 deleted flag */
static bool
mailward_keywords_have(struct mail *mail, const struct mail_keywords *keywords,
		       const char *name)
{
	const ARRAY_TYPE(keywords) *names;
	const char *const *kw;
	unsigned int i, count;

	if (keywords == NULL)
		return FALSE;
	names = mail_index_get_keywords(mail->box->index);
	kw = array_get(names, &count);
	for (i = 0; i < keywords->count; i++) {
		if (keywords->idx[i] < count &&
		    strcasecmp(kw[keywords->idx[i]], name) == 0)
			return TRUE;
	}
	return FALSE;
}

void mailward_mail_update_keywords(struct mail *_mail, enum modify_type modify_type,
			      struct mail_keywords *keywords)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILWARD_MAIL_CONTEXT(mail);
	struct mailward_user *muser = mailward_mailbox_user(_mail->box);
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(_mail->box);

	if (muser != NULL && mbox != NULL && mbox->pop3_session &&
	    muser->pop3_deleted_flag != NULL && !_mail->expunged &&
	    modify_type != MODIFY_REMOVE &&
	    mailward_keywords_have(_mail, keywords,
				   muser->pop3_deleted_flag)) {
		/* pop3_delete_type=flag: this is a DELE at QUIT */
		bool go_ahead;

		T_BEGIN {
			go_ahead = mailward_pop3_dele(muser, _mail, TRUE);
		} T_END;
		if (!go_ahead)
			return;
	}
	mmail->super.update_keywords(_mail, modify_type, keywords);
}

void mailward_mail_expunge(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILWARD_MAIL_CONTEXT(mail);
	struct mailward_user *muser = mailward_mailbox_user(_mail->box);
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(_mail->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(_mail->transaction);

	if (muser == NULL || mbox == NULL || mt == NULL || _mail->expunged) {
		/* (already expunged by a concurrent session: nothing to do
		   or to record) */
		mmail->super.expunge(_mail);
		return;
	}
	if (mt->policy_expunge) {
		/* mailward's own expunge: decided and checked already */
		mailward_note_expunged(muser, mt, _mail);
		mmail->super.expunge(_mail);
		return;
	}
	mailward_hold_check_mail(muser, _mail);
	if (mbox->pop3_session) {
		/* POP3 DELE, reaching here at QUIT */
		if (mailward_pop3_dele(muser, _mail, FALSE)) {
			/* Dovecot's own behaviour */
			mailward_note_expunged(muser, mt, _mail);
			mmail->super.expunge(_mail);
		}
		return;
	}
	if (mailward_expunge_refused(muser)) {
		if (mt->refused == 0 && muser->settings_unknown != NULL) {
			e_error(muser->event, "Expunge in %s refused and mail "
				"kept: %s",
				mailward_display(mailbox_get_vname(_mail->box),
						 0),
				muser->settings_unknown);
		}
		mt->refused++;
		mt->refuse_reason = mailward_refuse_reason(muser);
		mailward_note_suppressed(muser, _mail, NULL,
					 "expunge_suppressed",
			muser->settings_unknown != NULL ||
			muser->hold_unreadable ? "fail_safe" :
			(muser->set.hold ? "hold" : "policy"));
		return;
	}
	mailward_note_expunged(muser, mt, _mail);
	mmail->super.expunge(_mail);
}

/* ---------------------------------------------------------------- */
/* mailbox vfuncs                                                   */

struct mailbox_transaction_context *
mailward_transaction_begin(struct mailbox *box,
			   enum mailbox_transaction_flags flags,
			   const char *reason)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailbox_transaction_context *t;
	struct mailward_transaction *mt;

	t = mbox->module_ctx.super.transaction_begin(box, flags, reason);
	mt = i_new(struct mailward_transaction, 1);
	MODULE_CONTEXT_SET(t, mailward_storage_module, mt);
	return t;
}

struct mailbox_transaction_context *
mailward_policy_transaction_begin(struct mailbox *box, const char *cause)
{
	struct mailbox_transaction_context *t;
	struct mailward_transaction *mt;

	t = mailbox_transaction_begin(box, 0, "mailward policy expunge");
	mt = MAILWARD_CONTEXT(t);
	if (mt != NULL) {
		mt->policy_expunge = TRUE;
		mt->cause = cause;
	}
	return t;
}

bool mailward_transaction_is_policy(struct mailbox_transaction_context *t)
{
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);

	return mt != NULL && mt->policy_expunge;
}

int mailward_transaction_audit_intents(struct mailward_user *muser,
				       struct mailbox_transaction_context *t)
{
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);

	if (mt == NULL)
		return 0;
	if (mt->audit_intent_lost ||
	    (mt->audit_intents > 0 && mailward_audit_commit(muser, TRUE) < 0))
		return -1;
	return 0;
}

/* The mail is copied into mt's mailbox and expunged from its own
   (mailbox_move(), REPLACE): the destination commit waits for the
   durability of the expunge's audit intent. */
static void mailward_transaction_note_move(struct mailward_transaction *mt,
					   struct mail *mail)
{
	struct mailward_user *src_muser = mailward_mailbox_user(mail->box);

	if (src_muser == NULL || src_muser->audit == NULL)
		return;
	mt->move_src_user = src_muser;
	mt->move_src_storage = mail->box->storage;
}

/* A copy into this mailbox. When it is the first half of a move (IMAP
   MOVE, doveadm move, lazy_expunge's copy of an expunged message) whose
   expunge half mailward refuses or suppresses, the copy must not stay:
   it is counted here and the destination transaction is rolled back at
   commit. Dovecot commits the destination before the source's expunges
   (and lazy_expunge's transaction_commit wraps mailward's), so this is
   the point where nothing has been committed yet. When the expunge half
   goes ahead, the destination's commit first makes its audit intent
   durable (commit_move_intents()). */
int mailward_copy(struct mail_save_context *ctx, struct mail *mail)
{
	struct mailbox_transaction_context *t = ctx->transaction;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(t->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);
	const char *reason = NULL;

	if (ctx->moving)
		reason = mailward_mail_expunge_kept(mail);
	if (mbox->module_ctx.super.copy(ctx, mail) < 0)
		return -1;
	if (reason != NULL && mt != NULL) {
		mt->kept_move_copies++;
		mt->kept_reason = reason;
		mt->kept_src_storage = mail->box->storage;
	} else if (ctx->moving && mt != NULL) {
		mailward_transaction_note_move(mt, mail);
	}
	return 0;
}

static void mailward_transaction_free(struct mailward_transaction *mt)
{
	pool_unref(&mt->pool);
	i_free(mt);
}

static void
mailward_prune_expunged(struct mailward_user *muser, struct mailbox *box,
			struct mailward_transaction *mt)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	const struct mailward_expunged *exp;
	struct mw_batch *batch;
	const char *mbox_guid;

	if (mt->pool == NULL || array_count(&mt->expunged) == 0 ||
	    muser->store == NULL)
		return;
	batch = mailward_state_batch(muser);
	if (batch == NULL)
		return;
	mbox_guid = mailward_mailbox_guid(muser, box);
	if (mbox_guid == NULL)
		return;
	array_foreach(&mt->expunged, exp) {
		if (exp->key_set)
			mw_batch_msg_prune_key(batch, mbox_guid, exp->key);
		else if (exp->identity != NULL)
			mw_batch_msg_prune(batch, mbox_guid, exp->identity);
		if (exp->identity != NULL && exp->guid[0] != '\0' &&
		    strcmp(exp->identity, exp->guid) != 0) {
			/* and a record made before mbox identities */
			mw_batch_msg_prune(batch, mbox_guid, exp->guid);
		}
	}
	if (!mbox->pop3_session && !mt->policy_expunge) {
		if (strcmp(muser->user->service, "imap") == 0) {
			/* written with the session's next state flush */
			muser->state_dirty = TRUE;
		} else {
			/* doveadm and others: now */
			(void)mailward_state_flush(muser);
		}
	}
}

static void
mailward_audit_expunge_result(struct mailward_user *muser, struct mailbox *box,
			      struct mailward_transaction *mt,
			      const char *event)
{
	const struct mailward_expunged *exp;
	struct mw_audit_event ev;
	const char *mbox_guid;

	if (muser->audit == NULL || mt->pool == NULL)
		return;
	T_BEGIN {
		mbox_guid = mailward_mailbox_guid(muser, box);
		array_foreach(&mt->expunged, exp) {
			mailward_audit_event_init(muser, &ev, event,
				strcmp(event, "expunge_done") == 0 ?
				"ok" : "rolled_back");
			mw_audit_event_set_str(&ev, MW_AF_MAILBOX,
					       mailbox_get_vname(box));
			mw_audit_event_set_str(&ev, MW_AF_MAILBOX_GUID,
					       mbox_guid);
			if (exp->uidvalidity != 0) {
				mw_audit_event_set_num(&ev, MW_AF_UIDVALIDITY,
						       exp->uidvalidity);
			}
			mw_audit_event_set_num(&ev, MW_AF_UID, exp->uid);
			if (exp->guid[0] != '\0') {
				mw_audit_event_set_str(&ev, MW_AF_MSG_GUID,
						       exp->guid);
			}
			mw_audit_event_set_str(&ev, MW_AF_MESSAGE_ID,
					       exp->message_id);
			if (exp->size_set) {
				mw_audit_event_set_num(&ev, MW_AF_SIZE,
						       exp->size);
			}
			mailward_audit_event_policy(muser, &ev);
			mw_audit_event_set_str(&ev, MW_AF_CAUSE, exp->cause);
			mailward_audit_queue_event(muser, &ev);
		}
	} T_END;
}

/* Logs and makes durable the audit records of expunges refused in a
   transaction that is rolled back (also when a plugin around mailward,
   such as lazy_expunge, rolls it back instead of committing) */
static void
mailward_report_refused(struct mailward_user *muser, struct mailbox *box,
			struct mailward_transaction *mt)
{
	if (muser == NULL || mt->refused == 0)
		return;
	e_info(mailward_named_event(muser, "mailward_expunge_suppressed")->
	       add_int("count", mt->refused)->add_str("cause", "refused")->
	       add_str("reason", mt->refuse_reason)->event(),
	       "Refused to expunge %u message(s) in %s: %s",
	       mt->refused, mailward_display(mailbox_get_vname(box), 0),
	       mt->refuse_reason);
	(void)mailward_audit_commit(muser, FALSE);
}

/* Copies of messages whose move (or lazy_expunge's copy on expunge)
   mailward refuses: nothing is saved and the commit fails, so the caller
   keeps the source's messages too and plugins around mailward see a
   rollback (RFC 3501: a failed COPY leaves the destination unchanged;
   MOVE is COPY plus EXPUNGE). Returns -1. */
static int
commit_kept_copies(struct mailbox_transaction_context *t,
		   struct mailward_transaction *mt, struct mailward_user *muser)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	const char *reason = t_strdup(mt->kept_reason);
	struct mail_storage *src_storage = mt->kept_src_storage;

	if (muser != NULL) {
		e_debug(muser->event, "%s: %u copied message(s) not "
			"saved: their move or expunge is refused",
			mailward_display(mailbox_get_vname(box), 0),
			mt->kept_move_copies);
	}
	mbox->module_ctx.super.transaction_rollback(t);
	mailward_transaction_free(mt);
	/* the source mailbox's caller reports this error too
	   (lazy_expunge reads it from the source storage) */
	if (src_storage != NULL && src_storage != box->storage)
		mail_storage_set_error(src_storage, MAIL_ERROR_PERM, reason);
	mail_storage_set_error(box->storage, MAIL_ERROR_PERM, reason);
	return -1;
}

/* Expunges refused: never a silent no-op, the client is told. Returns
   -1. */
static int
commit_refused(struct mailbox_transaction_context *t,
	       struct mailward_transaction *mt, struct mailward_user *muser)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	const char *reason = t_strdup(mt->refuse_reason);

	mailward_report_refused(muser, box, mt);
	mbox->module_ctx.super.transaction_rollback(t);
	mailward_transaction_free(mt);
	if (mbox->deleting && mbox->delete_refused == NULL)
		mbox->delete_refused = p_strdup(box->pool, reason);
	mail_storage_set_error(box->storage, MAIL_ERROR_PERM, reason);
	return -1;
}

/* Audit before act: makes the expunges' intents durable. Returns 0, or
   -1 when they are not (rolled back, the client told). */
static int
commit_audit_intents(struct mailbox_transaction_context *t,
		     struct mailward_transaction *mt,
		     struct mailward_user *muser)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);

	if (mt->audit_intents > 0)
		MAILWARD_FAULT_POINT(muser, "before-audit-intent");
	if (muser == NULL)
		return 0;
	if (mt->audit_intent_lost) {
		e_error(muser->event, "Audit record of an expunge could not "
			"be queued, expunge refused and mail kept");
	}
	if (mailward_transaction_audit_intents(muser, t) == 0)
		return 0;
	/* no durable intent, no expunge */
	mailward_audit_expunge_result(muser, box, mt, "expunge_rollback");
	mbox->module_ctx.super.transaction_rollback(t);
	mailward_transaction_free(mt);
	mail_storage_set_error(box->storage, mailward_error_unavailable(muser),
			       "Audit log unavailable: message(s) not expunged");
	return -1;
}

/* Moved copies: the source's expunge intents (queued by the moves, which
   expunge right after copying) are made durable before the copies are
   committed, as the source commit would; when they cannot be, nothing
   is saved and the commit fails with the error the source commit would
   give, so the caller rolls the source back: no copy, no expunge (a
   retried MOVE does not pile up copies). Returns 0 or -1. */
static int
commit_move_intents(struct mailbox_transaction_context *t,
		    struct mailward_transaction *mt)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *src_muser = mt->move_src_user;
	struct mail_storage *src_storage = mt->move_src_storage;
	enum mail_error error;
	const char *reason = "Audit log unavailable: message(s) not expunged";

	if (src_muser == NULL || mailward_audit_commit(src_muser, TRUE) == 0)
		return 0;
	e_debug(src_muser->event, "%s: moved copies not saved: the "
		"expunge's audit intent is not durable",
		mailward_display(mailbox_get_vname(box), 0));
	mbox->module_ctx.super.transaction_rollback(t);
	mailward_transaction_free(mt);
	error = mailward_error_unavailable(src_muser);
	/* lazy_expunge reports a TEMP error of its copy's commit as an
	   internal error (and logs it as critical); POP3 answers INUSE with
	   the same -ERR [SYS/TEMP] as TEMP, and IMAP gets UNAVAILABLE */
	if (error == MAIL_ERROR_TEMP)
		error = MAIL_ERROR_INUSE;
	/* the source mailbox's caller reports this error too
	   (lazy_expunge reads it from the source storage) */
	if (src_storage != box->storage)
		mail_storage_set_error(src_storage, error, reason);
	mail_storage_set_error(box->storage, error, reason);
	return -1;
}

int mailward_transaction_commit(struct mailbox_transaction_context *t,
				struct mail_transaction_commit_changes *changes_r)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);
	struct mailward_user *muser = mailward_mailbox_user(box);
	bool expunges;
	int ret;

	if (mt->kept_move_copies > 0)
		return commit_kept_copies(t, mt, muser);
	if (mt->refused > 0)
		return commit_refused(t, mt, muser);
	if (commit_audit_intents(t, mt, muser) < 0 ||
	    commit_move_intents(t, mt) < 0)
		return -1;
	expunges = mt->pool != NULL && array_count(&mt->expunged) > 0;
	MAILWARD_FAULT_POINT(muser, expunges ? "before-expunge-commit" :
			     "before-commit");
	ret = mbox->module_ctx.super.transaction_commit(t, changes_r);
	if (expunges)
		MAILWARD_FAULT_POINT(muser, "after-expunge-commit");
	if (muser != NULL) T_BEGIN {
		if (ret == 0) {
			if (mt->pool != NULL)
				muser->audit_expunged +=
					array_count(&mt->expunged);
			mailward_audit_expunge_result(muser, box, mt,
						      "expunge_done");
			mailward_prune_expunged(muser, box, mt);
		} else {
			mailward_audit_expunge_result(muser, box, mt,
						      "expunge_rollback");
		}
	} T_END;
	mailward_transaction_free(mt);
	return ret;
}

void mailward_transaction_rollback(struct mailbox_transaction_context *t)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(t->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);
	struct mailward_user *muser = mailward_mailbox_user(t->box);

	if (muser != NULL && mt->audit_intents > 0)
		mailward_audit_expunge_result(muser, t->box, mt,
					      "expunge_rollback");
	T_BEGIN {
		mailward_report_refused(muser, t->box, mt);
	} T_END;
	mbox->module_ctx.super.transaction_rollback(t);
	mailward_transaction_free(mt);
}

/* TRUE if QUIT is carrying out this device's DELEs, the mail was DELE'd
   and mailward keeps it on the server (policy, hold, fail-safe): the DELE
   is recorded and audited here, and Dovecot neither expunges nor flags
   it. */
bool mailward_pop3_dele_kept(struct mailward_user *muser, struct mail *mail)
{
	bool go_ahead;

	if (muser->pop3_dele_at_quit == NULL ||
	    !muser->pop3_dele_at_quit(muser->pop3_dele_context, mail->seq))
		return FALSE;
	/* (at QUIT: the session's transaction began at its login) */
	mailward_hold_check_mail(muser, mail);
	if (mailward_pop3_dele_goes_ahead(muser))
		return FALSE;
	T_BEGIN {
		go_ahead = mailward_pop3_dele(muser, mail, FALSE);
	} T_END;
	/* (go_ahead was excluded above; if it changed, Dovecot's QUIT
	   carries the DELE out as usual) */
	return !go_ahead;
}

#if DOVECOT_PREREQ(2, 4, 0)
/* IMAP REPLACE (RFC 8508, Dovecot 2.4) saves the new message and expunges
   the old one. When that expunge would be refused, the whole REPLACE is:
   nothing is saved or expunged and the client gets a tagged NO saying
   why (refusing only the expunge would leave both messages and make
   Dovecot report an internal error). */
int mailward_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_mailbox_user(box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(ctx->transaction);
	const char *reason;

	if (muser != NULL && ctx->expunged_mail != NULL)
		(void)mailward_hold_recheck(muser);
	if (muser != NULL && ctx->expunged_mail != NULL &&
	    mailward_expunge_refused(muser)) {
		reason = mailward_refuse_reason(muser);
		e_info(muser->event, "Refused REPLACE of UID %u in %s: %s",
		       ctx->expunged_mail->uid,
		       mailbox_get_vname(ctx->expunged_mail->box), reason);
		mailward_note_suppressed(muser, ctx->expunged_mail, NULL,
					 "expunge_suppressed",
					 muser->set.hold ? "hold" :
					 (muser->hold_unreadable ?
					  "fail_safe" : "policy"));
		(void)mailward_audit_commit(muser, FALSE);
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
			t_strdup_printf("Replace refused, nothing saved or "
					"expunged: %s", reason));
		return -1;
	}
	if (ctx->expunged_mail != NULL && mt != NULL) {
		/* the old message is expunged at save_finish, in its own
		   transaction, which Dovecot commits after this one */
		mailward_transaction_note_move(mt, ctx->expunged_mail);
	}
	return mbox->module_ctx.super.save_begin(ctx, input);
}
#endif
