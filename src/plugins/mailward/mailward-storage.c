/* mailward storage hooks: which expunges happen (policy, hold, deny),
   what a POP3 device has retrieved, and its per-device view */

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
#include "mailward-private.h"
#include "mw-audit.h"
#include "mailward-display.h"

#define MAILWARD_MAIL_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_mail_module)

static MODULE_CONTEXT_DEFINE_INIT(mailward_mail_module,
				  &mail_module_register);

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
/* message identity                                                 */

/* mbox's GUID is a hash of some headers: two different messages (no
   Message-ID, same Date) can share it */
static bool mailward_guid_is_shared(struct mail *mail)
{
	return strcmp(mail->box->storage->name, "mbox") == 0;
}

const char *mailward_mail_identity(struct mail *mail)
{
	struct istream *input;
	struct sha256_ctx ctx;
	unsigned char digest[SHA256_RESULTLEN];
	const unsigned char *data;
	const char *guid;
	size_t size;
	int ret;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return NULL;
	if (!mailward_guid_is_shared(mail))
		return guid;
	guid = t_strdup(guid);
	if (mail_get_stream_because(mail, NULL, NULL, "mailward identity",
				    &input) < 0)
		return NULL;
	sha256_init(&ctx);
	i_stream_seek(input, 0);
	while ((ret = i_stream_read_more(input, &data, &size)) > 0) {
		sha256_loop(&ctx, data, size);
		i_stream_skip(input, size);
	}
	if (input->stream_errno != 0) {
		i_stream_seek(input, 0);
		return NULL;
	}
	i_stream_seek(input, 0);
	sha256_result(&ctx, digest);
	return t_strconcat(guid, "/", binary_to_hex(digest, 16), NULL);
}

bool mailward_mail_has_key(struct mail *mail,
			   const unsigned char key[MW_MSG_KEY_SIZE])
{
	unsigned char k[MW_MSG_KEY_SIZE];
	const char *guid;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return FALSE;
	mw_msg_key(guid, k);
	if (!mailward_guid_is_shared(mail))
		return memcmp(k, key, MW_MSG_KEY_SIZE) == 0;
	/* the GUID part first: only then is the message read */
	if (memcmp(k, key, MW_MSG_KEY_GUID_PART) != 0)
		return FALSE;
	guid = mailward_mail_identity(mail);
	if (guid == NULL)
		return FALSE;
	mw_msg_key(guid, k);
	return memcmp(k, key, MW_MSG_KEY_SIZE) == 0;
}

static struct mailward_pop3_msg *
mailward_pop3_msg_get(struct mailward_pop3_session *s, struct mail *mail)
{
	struct mailward_pop3_msg *msg;
	const char *guid;

	msg = hash_table_lookup(s->msgs, POINTER_CAST(mail->uid));
	if (msg != NULL)
		return msg;
	if ((guid = mailward_mail_identity(mail)) == NULL)
		return NULL;
	msg = p_new(s->pool, struct mailward_pop3_msg, 1);
	msg->uid = mail->uid;
	msg->guid = p_strdup(s->pool, guid);
	hash_table_insert(s->msgs, POINTER_CAST(mail->uid), msg);
	return msg;
}

static uint64_t msg_key_u64(const char *guid)
{
	unsigned char key[MW_MSG_KEY_SIZE];
	uint64_t v;

	mw_msg_key(guid, key);
	memcpy(&v, key, sizeof(v));
	return v;
}

static int uint64_cmp(const uint64_t *a, const uint64_t *b)
{
	return *a < *b ? -1 : (*a > *b ? 1 : 0);
}

static int uint32_cmp(const uint32_t *a, const uint32_t *b)
{
	return *a < *b ? -1 : (*a > *b ? 1 : 0);
}

struct hidden_ctx {
	struct mailward_user *muser;
	struct mailward_pop3_session *s;
	time_t now;
};

static int hidden_iter_cb(const struct mw_msg_rec *rec, void *context)
{
	struct hidden_ctx *ctx = context;
	struct mailward_user *muser = ctx->muser;
	bool hide = FALSE;
	uint64_t v;

	if (rec->expunge_due > MW_MSG_DUE_DISPOSED &&
	    rec->expunge_due <= ctx->now) {
		/* due for expunge: no device lists it any more */
		hide = TRUE;
	} else if (rec->dev_no == muser->device.dev_no) {
		switch (muser->set.pop3_policy) {
		case MW_POP3_POLICY_CLIENT:
			/* a DELE that seen or move disposed of, or that a
			   fail-safe session kept */
			hide = rec->deleted != 0 &&
				muser->set.disposition != MW_DISPOSITION_EXPUNGE;
			break;
		case MW_POP3_POLICY_LEAVE_ON_SERVER:
			hide = rec->deleted != 0;
			break;
		case MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL:
		case MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES:
			hide = rec->deleted != 0 || rec->retrieved != 0;
			break;
		}
	}
	if (hide) {
		uint32_t prefix;

		memcpy(&v, rec->key, sizeof(v));
		array_push_back(&ctx->s->hidden, &v);
		memcpy(&prefix, rec->key, sizeof(prefix));
		array_push_back(&ctx->s->hidden_guid_parts, &prefix);
	}
	return 0;
}

static void mailward_pop3_load_hidden(struct mailward_user *muser,
				      struct mailward_pop3_session *s)
{
	struct hidden_ctx ctx;
	const char *mbox_guid, *error;

	s->hidden_loaded = TRUE;
	if (muser->store == NULL || !muser->device_registered)
		return;
	if (muser->set.pop3_policy == MW_POP3_POLICY_CLIENT &&
	    muser->set.disposition == MW_DISPOSITION_EXPUNGE &&
	    muser->set.expunge_delay_secs == 0)
		return;		/* nothing is ever hidden */
	mbox_guid = mailward_mailbox_guid(muser, s->box);
	if (mbox_guid == NULL)
		return;		/* logged; show everything */
	i_zero(&ctx);
	ctx.muser = muser;
	ctx.s = s;
	ctx.now = ioloop_time;
	/* other devices' records matter only for due expunges */
	if (mw_store_msg_iter(muser->store,
			      muser->set.expunge_delay_secs > 0 ? -1 :
			      (int)muser->device.dev_no, mbox_guid,
			      hidden_iter_cb, &ctx, &error) < 0) {
		/* can't tell what this device has: show everything */
		array_clear(&s->hidden);
		array_clear(&s->hidden_guid_parts);
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return;
	}
	array_sort(&s->hidden, uint64_cmp);
	array_sort(&s->hidden_guid_parts, uint32_cmp);
}

bool mailward_pop3_is_hidden(struct mailward_user *muser, struct mail *mail)
{
	struct mailward_pop3_session *s;
	const char *guid;
	uint64_t v;

	s = mailward_pop3_session_get(muser, mail->box);
	if (s == NULL)
		return FALSE;
	if (!s->hidden_loaded)
		mailward_pop3_load_hidden(muser, s);
	if (array_count(&s->hidden) == 0)
		return FALSE;
	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return FALSE;
	if (mailward_guid_is_shared(mail)) {
		/* the message is read only if its GUID part is hidden */
		unsigned char key[MW_MSG_KEY_SIZE];
		uint32_t prefix;
		uint64_t legacy;

		mw_msg_key(guid, key);
		memcpy(&prefix, key, sizeof(prefix));
		memcpy(&legacy, key, sizeof(legacy));
		if (array_bsearch(&s->hidden_guid_parts, &prefix,
				  uint32_cmp) == NULL)
			return FALSE;
		if ((guid = mailward_mail_identity(mail)) == NULL)
			return FALSE;
		v = msg_key_u64(guid);
		/* a record made before mbox identities (key of the GUID
		   alone) still hides the message, as it did then */
		if (array_bsearch(&s->hidden, &v, uint64_cmp) == NULL &&
		    array_bsearch(&s->hidden, &legacy, uint64_cmp) == NULL)
			return FALSE;
		s->hidden_count++;
		return TRUE;
	}
	v = msg_key_u64(guid);
	if (array_bsearch(&s->hidden, &v, uint64_cmp) == NULL)
		return FALSE;
	s->hidden_count++;
	return TRUE;
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

static void
mailward_audit_read(struct mailward_user *muser, struct mail *mail,
		    const char *event)
{
	struct mw_audit_event ev;

	if (muser->audit == NULL)
		return;
	mailward_audit_event_init(muser, &ev, event, "ok");
	mailward_audit_event_mail(muser, &ev, mail, NULL);
	/* the policy the read happened under (what it means for the
	   message: kept, expunged after retrieval, ...) */
	mailward_audit_event_policy(muser, &ev);
	mailward_audit_queue_event(muser, &ev);
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
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(_mail->box);
	const char *reason = mail->get_stream_reason;
	enum { READ_NONE, READ_RETR, READ_TOP, READ_FETCH } kind = READ_NONE;
	int ret;

	if (muser != NULL && mbox != NULL && reason != NULL) {
		if (mbox->pop3_session) {
			if (strcmp(reason, "RETR") == 0)
				kind = READ_RETR;
			else if (strcmp(reason, "TOP") == 0)
				kind = READ_TOP;
		} else if (strcmp(muser->user->service, "imap") == 0 &&
			   mailward_is_body_fetch(reason)) {
			kind = READ_FETCH;
		}
	}
	if (kind != READ_NONE && !mailward_audit_may_read(muser)) {
		/* mailward_audit_required=yes: no read without its record
		   (POP3 answers every failed RETR/TOP with "Message N
		   expunged", IMAP a failed FETCH with [SERVERBUG]: the
		   protocol plugins put this reason and code instead) */
		muser->read_refused = TRUE;
		mail_storage_set_error(_mail->box->storage,
			mailward_error_unavailable(muser),
			MAILWARD_AUDIT_UNAVAILABLE_READ);
		return -1;
	}
	ret = mmail->super.get_stream(_mail, get_body, hdr_size, body_size,
				      stream_r);
	if (ret < 0 || kind == READ_NONE)
		return ret;

	T_BEGIN {
		struct mailward_pop3_session *s;
		struct mailward_pop3_msg *msg;

		switch (kind) {
		case READ_RETR:
			s = mailward_pop3_session_get(muser, _mail->box);
			msg = s == NULL ? NULL : mailward_pop3_msg_get(s, _mail);
			if (msg != NULL && !msg->retrieved) {
				msg->retrieved = TRUE;
				s->retr_count++;
				muser->audit_retrieved++;
				mailward_audit_read(muser, _mail, "retr");
			}
			break;
		case READ_TOP:
			s = mailward_pop3_session_get(muser, _mail->box);
			if (s != NULL)
				s->top_count++;
			mailward_audit_read(muser, _mail, "top");
			break;
		case READ_FETCH:
			mailward_note_imap_fetch(muser, _mail);
			muser->audit_retrieved++;
			mailward_audit_read(muser, _mail, "fetch");
			break;
		case READ_NONE:
			break;
		}
	} T_END;
	return ret;
}

enum mail_error mailward_error_unavailable(struct mailward_user *muser)
{
	/* IMAP: [UNAVAILABLE] (MAIL_ERROR_TEMP is [SERVERBUG]); POP3 maps
	   only TEMP to [SYS/TEMP], everything else to [SYS/PERM] */
	if (muser != NULL && strcmp(muser->user->service, "pop3") == 0)
		return MAIL_ERROR_TEMP;
	return MAIL_ERROR_UNAVAILABLE;
}

static const char *mailward_refuse_reason(struct mailward_user *muser)
{
	if (muser->settings_unknown != NULL)
		return "The mailbox owner's mailward settings could not be "
			"determined: messages cannot be expunged";
	if (muser->set.hold)
		return "Mailbox is under legal hold (mailward_hold): "
			"messages cannot be expunged or moved";
	return "Expunging or moving is not allowed for this user "
		"(mailward_imap_expunge=deny)";
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
	exp->identity = p_strdup(mt->pool, guid[0] == '\0' ? NULL :
				 mailward_mail_identity(mail));
	exp->cause = mailward_expunge_cause(muser, mail->transaction, mt);
	if (muser->audit != NULL) T_BEGIN {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "expunge_intent", "ok");
		mailward_audit_event_mail(muser, &ev, mail, guid);
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
			 const char *event, const char *cause)
{
	struct mw_audit_event ev;

	muser->audit_suppressed++;
	if (muser->audit == NULL)
		return;
	T_BEGIN {
		mailward_audit_event_init(muser, &ev, event, "suppressed");
		mailward_audit_event_mail(muser, &ev, mail, NULL);
		mailward_audit_event_policy(muser, &ev);
		mw_audit_event_set_str(&ev, MW_AF_CAUSE, cause);
		mailward_audit_queue_event(muser, &ev);
	} T_END;
}

/* TRUE if Dovecot's own POP3 DELE may go ahead: client policy, not
   held, not fail-safe (otherwise the message stays on the server) */
static bool mailward_pop3_dele_goes_ahead(struct mailward_user *muser)
{
	return muser->set.pop3_policy == MW_POP3_POLICY_CLIENT &&
		muser->set.disposition == MW_DISPOSITION_EXPUNGE &&
		mailward_user_may_expunge(muser);
}

/* TRUE if an expunge requested by a client or a tool in this mailbox is
   refused, and the requester told so (hold, imap_expunge=deny, the
   owner's settings unknown) */
static bool
mailward_expunge_refused(struct mailward_user *muser)
{
	return muser->settings_unknown != NULL || muser->set.hold ||
		(muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY &&
		 strcmp(muser->user->service, "imap") == 0);
}

/* Why mailward will not let the expunge of this mail happen (a static
   string), or NULL if it may. A move whose expunge half does not happen
   must leave no copy (see mailward_copy()). */
static const char *mailward_mail_expunge_kept(struct mail *mail)
{
	struct mailward_user *muser = mailward_box_user(mail->box);
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(mail->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(mail->transaction);

	if (muser == NULL || mbox == NULL || mt == NULL || mail->expunged ||
	    mt->policy_expunge)
		return NULL;
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
	if (mailward_pop3_dele_goes_ahead(muser)) {
		if (msg != NULL && !by_flag)
			msg->client_expunged = TRUE;
		if (by_flag && muser->audit != NULL) T_BEGIN {
			/* not an expunge: the message stays (for IMAP) */
			struct mw_audit_event ev;

			mailward_audit_event_init(muser, &ev, "dele", "flagged");
			mailward_audit_event_mail(muser, &ev, mail, NULL);
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
	mailward_note_suppressed(muser, mail, "dele",
		muser->set.hold ? "hold" :
		(muser->fail_safe ? "fail_safe" : "policy"));
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

static void
mailward_mail_update_keywords(struct mail *_mail, enum modify_type modify_type,
			      struct mail_keywords *keywords)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILWARD_MAIL_CONTEXT(mail);
	struct mailward_user *muser = mailward_box_user(_mail->box);
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

static void mailward_mail_expunge(struct mail *_mail)
{
	struct mail_private *mail = (struct mail_private *)_mail;
	union mail_module_context *mmail = MAILWARD_MAIL_CONTEXT(mail);
	struct mailward_user *muser = mailward_box_user(_mail->box);
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
		mailward_note_suppressed(muser, _mail, "expunge_suppressed",
			muser->settings_unknown != NULL ? "fail_safe" :
			(muser->set.hold ? "hold" : "policy"));
		return;
	}
	mailward_note_expunged(muser, mt, _mail);
	mmail->super.expunge(_mail);
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

/* ---------------------------------------------------------------- */
/* mailbox vfuncs                                                   */

static struct mailbox_transaction_context *
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

/* A copy into this mailbox. When it is the first half of a move (IMAP
   MOVE, doveadm move, lazy_expunge's copy of an expunged message) whose
   expunge half mailward refuses or suppresses, the copy must not stay:
   it is counted here and the destination transaction is rolled back at
   commit. Dovecot commits the destination before the source's expunges
   (and lazy_expunge's transaction_commit wraps mailward's), so this is
   the point where nothing has been committed yet. */
static int mailward_copy(struct mail_save_context *ctx, struct mail *mail)
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
		if (exp->identity != NULL)
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

static int
mailward_transaction_commit(struct mailbox_transaction_context *t,
			    struct mail_transaction_commit_changes *changes_r)
{
	struct mailbox *box = t->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);
	struct mailward_user *muser = mailward_box_user(box);
	int ret;

	if (mt->kept_move_copies > 0) {
		/* copies of messages whose move (or lazy_expunge's copy on
		   expunge) mailward refuses: nothing is saved and the commit
		   fails, so the caller keeps the source's messages too and
		   plugins around mailward see a rollback (RFC 3501: a failed
		   COPY leaves the destination unchanged; MOVE is COPY plus
		   EXPUNGE) */
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
			mail_storage_set_error(src_storage, MAIL_ERROR_PERM,
					       reason);
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM, reason);
		return -1;
	}
	if (mt->refused > 0) {
		/* never a silent no-op: the client is told */
		const char *reason = t_strdup(mt->refuse_reason);

		mailward_report_refused(muser, box, mt);
		mbox->module_ctx.super.transaction_rollback(t);
		mailward_transaction_free(mt);
		if (mbox->deleting && mbox->delete_refused == NULL)
			mbox->delete_refused = p_strdup(box->pool, reason);
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM, reason);
		return -1;
	}
	if (mt->audit_intents > 0)
		MAILWARD_FAULT_POINT(muser, "before-audit-intent");
	if (muser != NULL && mt->audit_intent_lost) {
		e_error(muser->event, "Audit record of an expunge could not "
			"be queued, expunge refused and mail kept");
	}
	if (muser != NULL && (mt->audit_intent_lost ||
	    (mt->audit_intents > 0 &&
	     mailward_audit_commit(muser, TRUE) < 0))) {
		/* audit before act: no durable intent, no expunge */
		mailward_audit_expunge_result(muser, box, mt,
					      "expunge_rollback");
		mbox->module_ctx.super.transaction_rollback(t);
		mailward_transaction_free(mt);
		mail_storage_set_error(box->storage,
			mailward_error_unavailable(muser),
			"Audit log unavailable: message(s) not expunged");
		return -1;
	}
	MAILWARD_FAULT_POINT(muser, mt->pool != NULL &&
			     array_count(&mt->expunged) > 0 ?
			     "before-expunge-commit" : "before-commit");
	ret = mbox->module_ctx.super.transaction_commit(t, changes_r);
	if (mt->pool != NULL && array_count(&mt->expunged) > 0)
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

static void
mailward_transaction_rollback(struct mailbox_transaction_context *t)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(t->box);
	struct mailward_transaction *mt = MAILWARD_CONTEXT(t);
	struct mailward_user *muser = mailward_box_user(t->box);

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
static bool
mailward_pop3_dele_kept(struct mailward_user *muser, struct mail *mail)
{
	bool go_ahead;

	if (muser->pop3_dele_at_quit == NULL ||
	    mailward_pop3_dele_goes_ahead(muser) ||
	    !muser->pop3_dele_at_quit(muser->pop3_dele_context, mail->seq))
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
static int
mailward_save_begin(struct mail_save_context *ctx, struct istream *input)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_box_user(box);
	const char *reason;

	if (muser != NULL && ctx->expunged_mail != NULL &&
	    mailward_expunge_refused(muser)) {
		reason = mailward_refuse_reason(muser);
		e_info(muser->event, "Refused REPLACE of UID %u in %s: %s",
		       ctx->expunged_mail->uid,
		       mailbox_get_vname(ctx->expunged_mail->box), reason);
		mailward_note_suppressed(muser, ctx->expunged_mail,
					 "expunge_suppressed",
					 muser->set.hold ? "hold" : "policy");
		(void)mailward_audit_commit(muser, FALSE);
		mail_storage_set_error(box->storage, MAIL_ERROR_PERM,
			t_strdup_printf("Replace refused, nothing saved or "
					"expunged: %s", reason));
		return -1;
	}
	return mbox->module_ctx.super.save_begin(ctx, input);
}
#endif

static bool
mailward_search_next_nonblock(struct mail_search_context *ctx,
			      struct mail **mail_r, bool *tryagain_r)
{
	struct mailbox *box = ctx->transaction->box;
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_box_user(box);
	bool ret;

	for (;;) {
		ret = mbox->module_ctx.super.search_next_nonblock(
			ctx, mail_r, tryagain_r);
		if (!ret || muser == NULL || mbox->view_bypass)
			return ret;
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

/* A mailbox Dovecot's autoexpunge is about to work on while the user is
   under legal hold: Dovecot would select the messages, mailward would
   refuse the commit, and Dovecot would log "Failed to autoexpunge" as an
   error in every session of the user. Autoexpunge skips a mailbox whose
   status lookup says it does not exist (yet), without logging, so this
   one says so; the hold is logged once per session at info level. */
static int
mailward_autoexpunge_get_status(struct mailbox *box,
				enum mailbox_status_items items,
				struct mailbox_status *status_r)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailward_user *muser = mailward_box_user(box);

	if (!mbox->autoexpunge_held || (items & STATUS_MESSAGES) == 0 ||
	    muser == NULL)
		return mbox->module_ctx.super.get_status(box, items, status_r);
	if (!muser->autoexpunge_hold_logged) {
		muser->autoexpunge_hold_logged = TRUE;
		e_info(muser->event, "Legal hold (mailward_hold): Dovecot's "
		       "autoexpunge is not run for this user");
	}
	e_debug(muser->event, "autoexpunge of %s skipped: legal hold",
		mailward_display(mailbox_get_vname(box), 0));
	mail_storage_set_error(box->storage, MAIL_ERROR_NOTFOUND,
		"Mailbox is under legal hold: autoexpunge skipped (mailward)");
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
	if (muser->set.hold && mailward_in_autoexpunge()) {
		mbox->autoexpunge_held = TRUE;
		v->get_status = mailward_autoexpunge_get_status;
	}
#if DOVECOT_PREREQ(2, 4, 0)
	if (v->save_begin != NULL)
		v->save_begin = mailward_save_begin;
#endif
	MODULE_CONTEXT_SET(box, mailward_storage_module, mbox);
}
