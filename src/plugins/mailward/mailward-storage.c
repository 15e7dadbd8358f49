/* mailward storage hooks: whose settings decide for a mailbox, message
   identity, reads (RETR, TOP; IMAP whole-message fetches as the IMAP
   plugin reports them, body reads refused while the audit log is
   required and away), deleted mailboxes,
   autoexpunge under hold, the state store's INBOX marker; installs the
   vfuncs of mailward-expunge.c and mailward-view.c */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "str.h"
#include "mail-user.h"
#include "istream.h"
#include "hex-binary.h"
#include "sha2.h"
#include "mail-storage-private.h"
#include "mailbox-list-private.h"
#include "mail-namespace.h"
#include "mailbox-attribute.h"
#include "mailward-policy-private.h"
#include "mw-audit.h"
#include "mailward-display.h"

struct mailward_mail_module mailward_mail_module =
	MODULE_CONTEXT_INIT(&mail_module_register);

static struct mailward_user *mailward_box_user(struct mailbox *box)
{
	return mailward_mailbox_user(box);
}

/* Whose settings decide about the mail of a mailbox being allocated:
   box->storage->user is the session user acting on it, whatever
   namespace the mailbox is in. */
static struct mailward_user *mailward_box_owner(struct mailbox *box)
{
	struct mail_user *user = box->storage->user;
	struct mailward_user *session = MAILWARD_USER_CONTEXT(user);
	struct mail_namespace *ns = box->list->ns;
	struct mailward_user *owner;

	if (session == NULL)
		return NULL;
	if (session->actor != NULL) {
		/* a storage of an owner's own namespace (the shared
		   namespace's backing storage): the owner's context */
		return session;
	}
	switch (ns->type) {
	case MAIL_NAMESPACE_TYPE_PRIVATE:
		if (ns->owner == NULL || ns->owner == user ||
		    strcmp(ns->owner->username, user->username) == 0)
			return session;
		break;
	case MAIL_NAMESPACE_TYPE_SHARED:
		if (ns->owner != NULL &&
		    strcmp(ns->owner->username, user->username) == 0)
			return session;
		break;
	case MAIL_NAMESPACE_TYPE_PUBLIC:
		return mailward_public_user(session);
	}
	owner = ns->owner == NULL ? NULL : MAILWARD_USER_CONTEXT(ns->owner);
	if (owner == NULL) {
		/* a shared namespace without an owner user (not expanded to
		   one): settings unknown, nothing is expunged there */
		owner = mailward_unknown_owner_user(session);
	}
	return owner;
}

/* ---------------------------------------------------------------- */
/* mail vfuncs                                                      */

static bool mailward_is_body_fetch(const char *reason)
{
	return strcmp(reason, "full mail") == 0 ||
		strcmp(reason, "mail body") == 0 ||
		strcmp(reason, "MIME part") == 0 ||
		strcmp(reason, "binary stream") == 0;
}

static void mailward_note_imap_fetch(struct mailward_user *muser,
				     struct mail *mail)
{
	struct mw_batch *batch;
	const char *guid, *mbox_guid;

	if ((!muser->device_registered && !muser->device_pending) ||
	    muser->store == NULL)
		return;
	if ((guid = mailward_mail_identity(mail)) == NULL)
		return;
	mbox_guid = mailward_mailbox_guid(muser, mail->box);
	if (mbox_guid == NULL)
		return;
	if (mailward_user_pending_add(muser, mbox_guid, guid, mail->uid,
				      0, 0, 0)) {
		/* recorded for the device the session turns out to be */
		muser->imap_body_fetches++;
		return;
	}
	if (!muser->device_registered)
		return;
	batch = mailward_state_batch(muser);
	if (batch == NULL)
		return;
	mw_batch_msg_update(batch, muser->device.dev_no, mbox_guid, guid,
			    mail->uid, MW_MSG_RETRIEVED, ioloop_time);
	muser->state_dirty = TRUE;
	muser->imap_body_fetches++;
}

/* The record of a read (retr, top, fetch) built into ev; msg: the POP3
   session's record of the mail (NULL: none) */
static void
mailward_audit_read_event(struct mailward_user *muser, struct mail *mail,
			  struct mailward_pop3_msg *msg, const char *event,
			  struct mw_audit_event *ev)
{
	mailward_audit_event_init(muser, ev, event, "ok");
	mailward_audit_event_mail(muser, ev, mail, NULL, msg);
	/* the policy the read happened under (what it means for the
	   message: kept, expunged after retrieval, ...) */
	mailward_audit_event_policy(muser, ev);
}

static void
mailward_audit_read(struct mailward_user *muser, struct mail *mail,
		    struct mailward_pop3_msg *msg, const char *event)
{
	struct mw_audit_event ev;

	if (muser->audit == NULL)
		return;
	mailward_audit_read_event(muser, mail, msg, event, &ev);
	mailward_audit_queue_event(muser, &ev);
}

/* The session's own context: for another owner's mail, its actor */
static struct mailward_user *mailward_session_user(struct mailward_user *muser)
{
	return muser->actor != NULL ? muser->actor : muser;
}

enum mailward_read_kind {
	READ_NONE, READ_RETR, READ_TOP, READ_FETCH
};

static enum mailward_read_kind
mailward_read_kind(struct mailward_user *muser, struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(_mail->box);
	const char *reason = mail->get_stream_reason;

	if (muser == NULL || mbox == NULL || reason == NULL)
		return READ_NONE;
	if (mbox->pop3_session) {
		if (strcmp(reason, "RETR") == 0)
			return READ_RETR;
		if (strcmp(reason, "TOP") == 0)
			return READ_TOP;
	} else if (strcmp(muser->user->service, "imap") == 0 &&
		   mailward_is_body_fetch(reason)) {
		return READ_FETCH;
	}
	return READ_NONE;
}

/* A POP3 RETR/TOP whose message stream Dovecot opened, before it sends
   the message: records it. Under mailward_audit_required=yes the record
   (none for a RETR of a message this session retrieved already, whose
   record is durable) is durable before the body goes out, or the read is
   refused: returns -1 then. */
static int
mailward_pop3_read(struct mailward_user *muser, struct mail *mail,
		   enum mailward_read_kind kind)
{
	struct mailward_pop3_session *s;
	struct mailward_pop3_msg *msg = NULL;
	struct mw_audit_event ev;
	bool record;

	s = mailward_pop3_session_get(muser, mail->box);
	if (kind == READ_RETR && s != NULL)
		msg = mailward_pop3_msg_get(s, mail);
	record = kind == READ_TOP || (msg != NULL && !msg->retrieved);
	if (muser->audit != NULL && muser->set.audit_required) {
		if (record)
			mailward_audit_read_event(muser, mail, msg,
						  kind == READ_TOP ?
						  "top" : "retr", &ev);
		if (mailward_audit_read_gate(muser, record ? &ev : NULL) < 0)
			return -1;
	} else if (record) {
		mailward_audit_read(muser, mail, msg,
				    kind == READ_TOP ? "top" : "retr");
	}
	if (kind == READ_TOP) {
		if (s != NULL)
			s->top_count++;
	} else if (record) {
		msg->retrieved = TRUE;
		s->retr_count++;
		muser->audit_retrieved++;
	}
	return 0;
}

/* The read of kind is refused (mailward_audit_required=yes, the writer
   away): POP3 answers every failed RETR/TOP with "Message N expunged",
   IMAP a failed FETCH with [SERVERBUG]: the protocol plugins put this
   reason and code instead. Returns -1. */
static int mailward_read_refuse(struct mailward_user *muser, struct mail *mail)
{
	muser->read_refused = TRUE;
	mail_storage_set_error(mail->box->storage,
			       mailward_error_unavailable(muser),
			       MAILWARD_AUDIT_UNAVAILABLE_READ);
	return -1;
}

static int
mailward_mail_get_stream(struct mail *_mail, bool get_body,
			 struct message_size *hdr_size,
			 struct message_size *body_size,
			 struct istream **stream_r)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILWARD_MAIL_CONTEXT(mail);
	struct mailward_user *muser = mailward_box_user(_mail->box);
	enum mailward_read_kind kind = mailward_read_kind(muser, _mail);
	int ret;

	if (kind == READ_FETCH && muser->set.audit_required &&
	    !mailward_session_user(muser)->imap_read_gated) {
		/* the command's first body read: the records queued so far
		   durable, and the writer answering, before data goes out
		   (the flag is the session's: another owner's mail too) */
		mailward_session_user(muser)->imap_read_gated = TRUE;
		T_BEGIN {
			(void)mailward_audit_read_gate(muser, NULL);
		} T_END;
	}
	/* (a POP3 read asks the writer itself, below: its record durable
	   or a refused one queued) */
	if (kind == READ_FETCH && !mailward_audit_may_read(muser))
		return mailward_read_refuse(muser, _mail);
	ret = mmail->super.get_stream(_mail, get_body, hdr_size, body_size,
				      stream_r);
	if (ret < 0 || (kind != READ_RETR && kind != READ_TOP))
		return ret;
	/* (a FETCH's body read: whether the device got the whole message
	   is the IMAP plugin's to tell, mailward_imap_retrieved()) */
	T_BEGIN {
		ret = mailward_pop3_read(muser, _mail, kind);
	} T_END;
	return ret < 0 ? mailward_read_refuse(muser, _mail) : 0;
}

void mailward_imap_retrieved(struct mail *mail)
{
	struct mailward_user *muser = mailward_box_user(mail->box);
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(mail->box);

	if (muser == NULL || mbox == NULL || mbox->pop3_session ||
	    strcmp(muser->user->service, "imap") != 0)
		return;
	T_BEGIN {
		mailward_note_imap_fetch(muser, mail);
		muser->audit_retrieved++;
		mailward_audit_read(muser, mail, NULL, "fetch");
	} T_END;
}

void mailward_storage_hooks_mail_allocated(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	struct mail_vfuncs *v = mail->vlast;
	union mail_module_context *mmail;

	if (MAILWARD_CONTEXT(_mail->box) == NULL)
		return;
	mmail = p_new(mail->pool, union mail_module_context, 1);
	mmail->super = *v;
	mail->vlast = &mmail->super;
	v->expunge = mailward_mail_expunge;
	v->get_stream = mailward_mail_get_stream;
	if ((_mail->box->flags & MAILBOX_FLAG_POP3_SESSION) != 0)
		v->update_keywords = mailward_mail_update_keywords;
	MODULE_CONTEXT_SET_SELF(mail, mailward_mail_module, mmail);
}

/* search_next_nonblock of a POP3 session's mailbox: skips what the
   per-device view hides and DELEs kept on the server, except in
   mailward's own (policy) transactions. Runs for every message of every
   search of the session: what it does when nothing can be skipped (a
   view that hides nothing, no DELE at QUIT) is a few comparisons. */
static bool
mailward_search_next_nonblock(struct mail_search_context *ctx,
			      struct mail **mail_r, bool *tryagain_r)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	/* (what mailward_mailbox_user() returns, without its lookup) */
	struct mailward_user *muser = mbox->muser;
	enum { BYPASS_UNKNOWN, BYPASS_NO, BYPASS_YES } bypass = BYPASS_UNKNOWN;

	for (;;) {
		if (!mbox->module_ctx.super.search_next_nonblock(
			ctx, mail_r, tryagain_r))
			return FALSE;
		if (muser == NULL)
			return TRUE;
		if (mailward_pop3_view_hides_none(muser, box) &&
		    !mailward_pop3_dele_at_quit(muser, *mail_r))
			return TRUE;	/* nothing to skip */
		if (bypass == BYPASS_UNKNOWN) {
			/* mailward's own searches see past the view */
			bypass = mailward_transaction_is_policy(
				ctx->transaction) ? BYPASS_YES : BYPASS_NO;
		}
		if (bypass == BYPASS_YES)
			return TRUE;
		if (mailward_pop3_is_hidden(muser, *mail_r)) {
			/* hidden from this device's view: skip it */
			continue;
		}
		if (mailward_pop3_dele_kept(muser, *mail_r)) {
			/* a DELE kept on the server: QUIT's update never
			   sees it, so nothing (lazy_expunge, mail_log, push
			   notifications) treats it as expunged */
			continue;
		}
		return TRUE;
	}
}

/* A deleted mailbox's records and summaries go with it. */
static int mailward_delete_box(struct mailbox *box)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_box_user(box);
	struct mailbox_metadata metadata;
	char guid_hex[GUID_128_SIZE * 2 + 1] = "";
	int ret;

	if (muser != NULL && muser->store != NULL &&
	    box->storage->user == muser->user &&
	    mailbox_get_namespace(box)->type == MAIL_NAMESPACE_TYPE_PRIVATE &&
	    mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) == 0) {
		i_strocpy(guid_hex, binary_to_hex(metadata.guid,
						  sizeof(metadata.guid)),
			  sizeof(guid_hex));
	}
	mbox->deleting = TRUE;
	mbox->delete_refused = NULL;
	ret = mbox->module_ctx.super.delete_box(box);
	mbox->deleting = FALSE;
	if (ret < 0) {
		/* Dovecot 2.4 deletes attributes and syncs after the refused
		   expunge commit, losing its error: the client read
		   "Unknown internal error" instead of why */
		if (mbox->delete_refused != NULL) {
			mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
					       mbox->delete_refused);
		}
		return -1;
	}
	if (guid_hex[0] != '\0') T_BEGIN {
		struct mw_batch *batch = mailward_state_batch(muser);

		if (batch != NULL) {
			mw_batch_mailbox_forget(batch, guid_hex);
			(void)mailward_state_flush(muser);
		}
	} T_END;
	return 0;
}

/* TRUE while Dovecot's autoexpunge runs (mail_user_autoexpunge() marks
   its work with this event reason code, in 2.3 and 2.4) */
static bool mailward_in_autoexpunge(void)
{
	struct event *event = event_get_global();
	const struct event_field *field;
	const char *code;

	if (event == NULL)
		return FALSE;
	field = event_find_field_recursive(event, EVENT_REASON_CODE);
	if (field == NULL ||
	    field->value_type != EVENT_FIELD_VALUE_TYPE_STRLIST ||
	    !array_is_created(&field->value.strlist))
		return FALSE;
	array_foreach_elem(&field->value.strlist, code) {
		if (strcmp(code, "storage:autoexpunge") == 0)
			return TRUE;
	}
	return FALSE;
}

/* TRUE if mailward refuses every expunge of Dovecot's autoexpunge in
   this session: a legal hold, or mailward_imap_expunge=deny in an IMAP
   session (mailward_expunge_refused()) */
static bool mailward_autoexpunge_refused(struct mailward_user *muser)
{
	return muser->set.hold || muser->hold_unreadable ||
		(muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY &&
		 strcmp(muser->user->service, "imap") == 0);
}

/* A mailbox Dovecot's autoexpunge is about to work on while mailward
   refuses its expunges (mailward_autoexpunge_refused()): Dovecot would
   select the messages, mailward would refuse the commit and audit each
   message as suppressed, at every session end of the user, and Dovecot
   would log "Failed to autoexpunge" as an error each time. Autoexpunge
   skips a mailbox whose status lookup says it does not exist (yet),
   without logging, so this one says so; why is logged once per session
   at info level. */
static int
mailward_autoexpunge_get_status(struct mailbox *box,
				enum mailbox_status_items items,
				struct mailbox_status *status_r)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_box_user(box);
	const char *why;

	if (!mbox->autoexpunge_held || (items & STATUS_MESSAGES) == 0 ||
	    muser == NULL)
		return mbox->module_ctx.super.get_status(box, items, status_r);
	why = muser->set.hold ? "legal hold" : muser->hold_unreadable ?
		"legal hold mark unreadable" : "mailward_imap_expunge=deny";
	if (!muser->autoexpunge_hold_logged && !muser->hold_unreadable) {
		muser->autoexpunge_hold_logged = TRUE;
		if (muser->set.hold) {
			e_info(muser->event, "Legal hold (mailward_hold): "
			       "Dovecot's autoexpunge is not run for this "
			       "user");
		} else {
			e_info(muser->event, "mailward_imap_expunge=deny: "
			       "Dovecot's autoexpunge is not run in IMAP "
			       "sessions of this user");
		}
	}
	e_debug(muser->event, "autoexpunge of %s skipped: %s",
		mailward_display(mailbox_get_vname(box), 0), why);
	mail_storage_set_error(box->storage, MAIL_ERROR_NOTFOUND,
		t_strdup_printf("Mailbox expunges refused (%s): autoexpunge "
				"skipped (mailward)", why));
	return -1;
}

/* The private INBOX attribute that outlives the state store: written
   when a store without the marker first sees the INBOX. Found by a store
   that does not know it, the state directory was lost (deleted, restored
   without it): not a new user. */
#define MAILWARD_STATE_MARK_KEY "vendor/vendor.mailward/state-created"

static void
mailward_state_lost_found(struct mailward_user *muser, const char *created)
{
	const char *what = t_strdup_printf(
		"State store %s lost its data: the state directory is new "
		"but the INBOX marker %s says a store existed since %s "
		"(directory deleted or restored without it), continuing "
		"with a fresh store (device state lost)", muser->state_dir,
		"/private/" MAILWARD_STATE_MARK_KEY,
		mailward_display(created, 64));

	muser->state_reset_seen = TRUE;
	if (muser->audit != NULL) {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "state_reset", "ok");
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, what);
		mailward_audit_queue_event(muser, &ev);
	}
	/* what devices had is lost: this session expunges nothing */
	mailward_user_set_fail_safe(muser, what);
}

/* Once per session, for a store that does not record the INBOX marker
   (new, or older than the marker): reads the marker; present means the
   state was lost (recorded as a reset), absent means a new store (the
   marker is written). Sessions whose store has the marker do nothing. */
static void mailward_state_mark_check(struct mailward_user *muser,
				      struct mailbox *box)
{
	struct mail_attribute_value value;
	struct mailbox_transaction_context *t;
	const char *error, *errstr;
	enum mail_error err;
	time_t reset = 0;
	int ret;

	if (muser->inbox_mark_checked || muser->store == NULL ||
	    mw_store_get_inbox_marked(muser->store))
		return;
	muser->inbox_mark_checked = TRUE;
	ret = mailbox_attribute_get(box, MAIL_ATTRIBUTE_TYPE_PRIVATE,
				    MAILWARD_STATE_MARK_KEY, &value);
	if (ret < 0) {
		errstr = mailbox_get_last_error(box, &err);
		if (err == MAIL_ERROR_NOTPOSSIBLE) {
			/* no mail_attribute_dict: the store alone cannot
			   tell a lost state directory from a new user */
			const char *msg = t_strdup_printf(
				"State store %s: mailbox attributes "
				"unavailable (%s): a lost state directory "
				"cannot be told from a new user (set "
				"mail_attribute_dict)", muser->state_dir,
				errstr);

			/* warned when the store is created, not in every
			   session */
			if (mw_store_get_created(muser->store))
				e_warning(muser->event, "%s", msg);
			else
				e_debug(muser->event, "%s", msg);
			return;
		}
		/* unknown whether the state was lost: expunge nothing */
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s: reading the INBOX marker failed: %s",
			muser->state_dir, errstr));
		return;
	}
	if (ret > 0) {
		if (mw_store_get_reset_time(muser->store) == 0 &&
		    mw_store_get_reset(muser->store) == NULL) {
			reset = ioloop_time;
			mailward_state_lost_found(muser, value.value == NULL ?
						  "?" : value.value);
		}
	} else {
		i_zero(&value);
		value.value = dec2str(ioloop_time);
		t = mailbox_transaction_begin(box, 0,
					      "mailward state marker");
		if (mailbox_attribute_set(t, MAIL_ATTRIBUTE_TYPE_PRIVATE,
					  MAILWARD_STATE_MARK_KEY,
					  &value) < 0) {
			errstr = mailbox_get_last_error(box, NULL);
			mailbox_transaction_rollback(&t);
			e_error(muser->event, "State store %s: writing the "
				"INBOX marker failed: %s", muser->state_dir,
				errstr);
			return;
		}
		if (mailbox_transaction_commit(&t) < 0) {
			e_error(muser->event, "State store %s: writing the "
				"INBOX marker failed: %s", muser->state_dir,
				mailbox_get_last_error(box, NULL));
			return;
		}
	}
	if (mw_store_set_inbox_marked(muser->store, ioloop_time, reset,
				      &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
	}
}

static int mailward_inbox_open(struct mailbox *box)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);

	if (mbox->module_ctx.super.open(box) < 0)
		return -1;
	T_BEGIN {
		mailward_state_mark_check(mbox->muser, box);
	} T_END;
	return 0;
}

void mailward_storage_hooks_mailbox_allocated(struct mailbox *box)
{
	struct mailward_user *muser = mailward_box_owner(box);
	struct mailbox_vfuncs *v = box->vlast;
	struct mailward_mailbox *mbox;

	if (muser == NULL)
		return;
	mbox = p_new(box->pool, struct mailward_mailbox, 1);
	mbox->module_ctx.super = *v;
	box->vlast = &mbox->module_ctx.super;
	mbox->muser = muser;
	mbox->pop3_session = (box->flags & MAILBOX_FLAG_POP3_SESSION) != 0 &&
		muser->actor == NULL;

	v->transaction_begin = mailward_transaction_begin;
	v->transaction_commit = mailward_transaction_commit;
	v->transaction_rollback = mailward_transaction_rollback;
	v->delete_box = mailward_delete_box;
	v->copy = mailward_copy;
	if (mbox->pop3_session)
		v->search_next_nonblock = mailward_search_next_nonblock;
	if (box->inbox_user && muser->actor == NULL &&
	    !box->storage->user->autocreated &&
	    box->list->ns->type == MAIL_NAMESPACE_TYPE_PRIVATE)
		v->open = mailward_inbox_open;
	if (mailward_in_autoexpunge() &&
	    (mailward_hold_recheck(muser) < 0 ||
	     mailward_autoexpunge_refused(muser))) {
		/* (the recheck: a hold set since the session started) */
		mbox->autoexpunge_held = TRUE;
		v->get_status = mailward_autoexpunge_get_status;
	}
#if DOVECOT_PREREQ(2, 4, 0)
	if (v->save_begin != NULL)
		v->save_begin = mailward_save_begin;
#endif
	MODULE_CONTEXT_SET(box, mailward_storage_module, mbox);
}
