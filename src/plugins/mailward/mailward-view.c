/* mailward: a POP3 session's record of what this device retrieved and
   deleted, and its per-device view (what mw_view_hides() hides from this
   device's listing) */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "mail-storage-private.h"
#include "mailward-policy-private.h"

struct mailward_pop3_msg *
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

const unsigned char *mailward_pop3_msg_key(struct mailward_pop3_msg *msg)
{
	if (!msg->key_set) {
		mw_msg_key(msg->guid, msg->key);
		msg->key_set = TRUE;
	}
	return msg->key;
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
	struct mw_retrieval_rec rrec;
	uint32_t prefix;
	uint64_t v;

	rrec.dev_no = rec->dev_no;
	if (rec->dev_no == ctx->muser->device.dev_no &&
	    memcmp(rec->dev_id, ctx->muser->device.id,
		   MW_DEVICE_ID_SIZE) != 0) {
		/* this device's number held by another device now (the
		   session's device was removed and its number handed
		   out again): that device's record, not this one's */
		rrec.dev_no = 0;
	}
	rrec.retrieved = rec->retrieved != 0;

	rrec.deleted = rec->deleted != 0;
	rrec.expunge_due = rec->expunge_due;
	if (!mw_view_hides(&ctx->muser->set, ctx->muser->device.dev_no, &rrec,
			   ctx->now))
		return 0;
	memcpy(&v, rec->key, sizeof(v));
	array_push_back(&ctx->s->hidden, &v);
	memcpy(&prefix, rec->key, sizeof(prefix));
	array_push_back(&ctx->s->hidden_guid_parts, &prefix);
	return 0;
}

static void mailward_pop3_load_hidden(struct mailward_user *muser,
				      struct mailward_pop3_session *s)
{
	struct hidden_ctx ctx;
	enum mw_view_scope scope;
	const char *mbox_guid, *error;

	s->hidden_loaded = TRUE;
	if (muser->store == NULL || !muser->device_registered)
		return;
	scope = mw_view_scope(&muser->set);
	if (scope == MW_VIEW_NONE)
		return;		/* nothing is ever hidden */
	mbox_guid = mailward_mailbox_guid(muser, s->box);
	if (mbox_guid == NULL)
		return;		/* logged; show everything */
	i_zero(&ctx);
	ctx.muser = muser;
	ctx.s = s;
	ctx.now = ioloop_time;
	if (mw_store_msg_iter(muser->store, scope == MW_VIEW_ALL_DEVICES ? -1 :
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
	if (array_count(&s->hidden) > 0) {
		/* room for a decision per message the mailbox has now (a
		   message beyond it is decided each time) */
		struct mailbox_status status;

		mailbox_get_open_status(s->box, STATUS_MESSAGES, &status);
		s->decided_count = status.messages;
		s->decided = p_new(s->pool, struct mailward_view_decision,
				   I_MAX(status.messages, 1));
	}
}

/* The view's decision for mail: 1 hidden, 0 shown, -1 unknown (its GUID
   could not be read: shown, as before, and not remembered). */
static int mailward_pop3_view_decide(struct mailward_pop3_session *s,
				     struct mail *mail)
{
	const char *guid;
	uint64_t v;

	if (mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		return -1;
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
			return 0;
		if ((guid = mailward_mail_identity(mail)) == NULL)
			return -1;
		v = msg_key_u64(guid);
		/* a record made before mbox identities (key of the GUID
		   alone) still hides the message, as it did then */
		return array_bsearch(&s->hidden, &v, uint64_cmp) != NULL ||
			array_bsearch(&s->hidden, &legacy, uint64_cmp) != NULL ?
			1 : 0;
	}
	v = msg_key_u64(guid);
	return array_bsearch(&s->hidden, &v, uint64_cmp) != NULL ? 1 : 0;
}

bool mailward_pop3_is_hidden(struct mailward_user *muser, struct mail *mail)
{
	struct mailward_pop3_session *s;
	struct mailward_view_decision *d = NULL;
	int ret;

	s = mailward_pop3_session_get(muser, mail->box);
	if (s == NULL)
		return FALSE;
	if (!s->hidden_loaded)
		mailward_pop3_load_hidden(muser, s);
	if (array_count(&s->hidden) == 0)
		return FALSE;
	/* each search of the session (the listing, UIDL, QUIT's) asks
	   again: the message key (a SHA-256) is computed once a message */
	if (mail->seq >= 1 && mail->seq <= s->decided_count)
		d = &s->decided[mail->seq - 1];
	if (d != NULL && d->uid == mail->uid) {
		ret = d->hidden ? 1 : 0;
	} else {
		ret = mailward_pop3_view_decide(s, mail);
		if (ret < 0)
			return FALSE;
		if (d != NULL) {
			d->uid = mail->uid;
			d->hidden = ret > 0;
		}
	}
	if (ret == 0)
		return FALSE;
	s->hidden_count++;
	return TRUE;
}
