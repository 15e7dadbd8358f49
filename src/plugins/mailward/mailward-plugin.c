/* mailward storage plugin: hooks (a session's start and end) and the
   plugin's init; the session's parts are in mailward-user.c (settings),
   mailward-state.c (state store), mailward-device.c (device identity) */

#include "lib.h"
#include "ioloop.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "mailward-private.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#  include "mailward-settings.h"
#endif
#include "mailward-crypto.h"

/* IMAP: state records kept in memory before they are written anyway */
#define MAILWARD_IMAP_BATCH_MAX 256
#define MAILWARD_IMAP_FLUSH_SECS 30

const char *mailward_plugin_version = DOVECOT_ABI_VERSION;

struct event_category event_category_mailward = {
	.name = "mailward",
};

struct mailward_user_module mailward_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);
struct mailward_storage_module mailward_storage_module =
	MODULE_CONTEXT_INIT(&mail_storage_module_register);


/* IMAP and other sessions (POP3: mailward_pop3_session_end()): carries
   out due expunges at the end of the session and records the device's
   activity */
static void mailward_session_end_state(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;
	struct mail_namespace *ns = mailward_user_inbox_ns(user);
	struct mw_batch *batch;
	bool sweep = ns != NULL && !muser->hibernating &&
		strcmp(user->service, "doveadm") != 0 &&
		mailward_user_needs_sweep(muser);

	/* the sweep reads committed state: this session's records
	   first (one more write transaction only when sweeping) */
	if (sweep && muser->state_dirty)
		(void)mailward_state_flush(muser);
	batch = mailward_state_batch(muser);
	if (sweep) {
		struct mailbox *box =
			mailbox_alloc(ns->list, "INBOX", 0);
		enum mail_error error;
		const char *errstr;

		if (mailbox_open(box) == 0) {
			(void)mailward_expunge_due(muser, box,
						   ioloop_time,
						   NULL, NULL);
		} else {
			errstr = mailbox_get_last_internal_error(
				box, &error);
			if (error != MAIL_ERROR_NOTFOUND) {
				e_error(muser->event, "Due expunges "
					"not carried out (mail kept): "
					"Can't open INBOX: %s", errstr);
			}
		}
		mailbox_free(&box);
	}
	if (batch != NULL && strcmp(user->service, "doveadm") != 0) {
		/* a session counts once: at its real end, not when
		   it moves to imap-hibernate */
		mw_batch_device_touch(batch, muser->device.id_hex,
				      ioloop_time,
				      muser->hibernating ? 0 : 1,
				      muser->imap_body_fetches, 0);
	}
	(void)mailward_state_flush(muser);
}

static void mailward_user_deinit(struct mail_user *user)
{
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(user);

	if (!user->namespaces_created) {
		/* the session never started (e.g. a namespace configuration
		   error, logged by Dovecot): no device activity to record */
		muser->device_pending = FALSE;
	}
	if (!muser->hibernating ||
	    (array_is_created(&muser->pending_recs) &&
	     array_count(&muser->pending_recs) > 0)) {
		/* (an IMAP session moving to imap-hibernate with nothing to
		   record keeps waiting for its ID in the restored process) */
		mailward_user_device_resolve(muser);
	}
	if (muser->store != NULL && muser->device_registered &&
	    user->namespaces_created &&
	    strcmp(user->service, "pop3") != 0)
		mailward_session_end_state(muser);
	mailward_others_deinit(muser);
	/* a store moved aside during the session: audited once */
	mailward_state_reset_check(muser);
	mailward_audit_user_deinit(muser);
	mailward_pop3_session_free(muser);
	if (muser->batch != NULL)
		mw_batch_abort(&muser->batch);
	mw_store_unref(&muser->store);
	mw_device_key_cleanse(muser->device_key, sizeof(muser->device_key));
	muser->module_ctx.super.deinit(user);
	mailward_others_free(muser);
	event_unref(&muser->event);
#if DOVECOT_PREREQ(2, 4, 0)
	settings_free(muser->dset);
#endif
}

static bool mailward_service_has_state(const char *service)
{
	return strcmp(service, "pop3") == 0 || strcmp(service, "imap") == 0 ||
		strcmp(service, "doveadm") == 0;
}

static void mailward_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct mailward_user *muser;

	if (user->autocreated) {
		/* raw user of LDA, owners of shared mailboxes: not a login.
		   A shared namespace owner gets a settings context of its
		   own: decisions about its mail use its settings. */
		mailward_owner_user_created(user);
		return;
	}

	muser = p_new(user->pool, struct mailward_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = mailward_user_deinit;
	muser->user = user;
	muser->last_state_flush = ioloop_time;
	MODULE_CONTEXT_SET(user, mailward_user_module, muser);

	muser->event = event_create(user->event);
	event_add_category(muser->event, &event_category_mailward);
	event_set_append_log_prefix(muser->event, "mailward: ");

	/* settings are read once, here */
	mailward_user_settings_init(muser);

	mailward_audit_user_init(muser);
	if (muser->set.state_enabled &&
	    mailward_service_has_state(user->service) &&
	    mailward_state_open(muser)) {
		/* fresh settings: the store's hold mark follows them, for
		   the user's sessions opened before (mailward-hold.c) */
		mailward_hold_mark_sync(muser);
		if (strcmp(user->service, "doveadm") != 0)
			mailward_device_login(muser);
	}
	mailward_audit_login(muser);
}

static struct mail_storage_hooks mailward_mail_storage_hooks = {
	.mail_user_created = mailward_mail_user_created,
	.mail_namespaces_created = mailward_owner_namespaces_created,
	.mailbox_allocated = mailward_storage_hooks_mailbox_allocated,
	.mail_allocated = mailward_storage_hooks_mail_allocated,
};

void mailward_plugin_init(struct module *module)
{
	mw_crypto_set_provider(&mailward_crypto_dovecot);
	/* the lower layers' reports go to the audit log */
	mailward_notice_handler_set(mailward_audit_notice);
	mailward_actor_init();
	mailward_metadata_init();
	mail_storage_hooks_add(module, &mailward_mail_storage_hooks);
}

void mailward_plugin_deinit(void)
{
	mail_storage_hooks_remove(&mailward_mail_storage_hooks);
	mailward_metadata_deinit();
	mailward_notice_handler_set(NULL);
	mailward_actor_deinit();
}

void mailward_imap_hibernating(struct mailward_user *muser)
{
	muser->hibernating = TRUE;
	e_debug(muser->event, "imap session moves to imap-hibernate");
}

void mailward_imap_sync_summary(struct mailward_user *muser,
				struct mailbox *box)
{
	struct mailbox_status status;
	struct mw_batch *batch;
	uint32_t highest_uid;
	const char *guid;

	if ((!muser->device_registered && !muser->device_pending) ||
	    muser->store == NULL)
		return;
	if (mailward_mailbox_user(box) != muser) {
		/* another owner's mailbox (shared, public): the session's
		   device state is kept for its own mail only */
		return;
	}
	mailbox_get_open_status(box, STATUS_UIDVALIDITY | STATUS_UIDNEXT |
				STATUS_HIGHESTMODSEQ, &status);
	guid = mailward_mailbox_guid(muser, box);
	if (guid == NULL)
		return;
	highest_uid = status.uidnext > 0 ? status.uidnext - 1 : 0;
	if (mailward_user_pending_add(muser, guid, NULL, 0, status.uidvalidity,
				      highest_uid, status.highest_modseq))
		return;
	batch = mailward_state_batch(muser);
	if (batch == NULL || !muser->device_registered)
		return;
	mw_batch_summary_set(batch, muser->device.dev_no, guid,
			     status.uidvalidity, highest_uid,
			     status.highest_modseq, ioloop_time);
}

void mailward_imap_command_end(struct mailward_user *muser)
{
	/* state changes of IMAP commands are written at the end of the
	   session, and in long sessions at most every
	   MAILWARD_IMAP_FLUSH_SECS (or when the batch grows): never one
	   write transaction per message, rarely one per command */
	if ((muser->state_dirty &&
	     ioloop_time - muser->last_state_flush >=
	     MAILWARD_IMAP_FLUSH_SECS) ||
	    (muser->batch != NULL &&
	     mw_batch_count(muser->batch) >= MAILWARD_IMAP_BATCH_MAX))
		(void)mailward_state_flush(muser);
	/* the command's audit records made durable */
	(void)mailward_audit_commit(muser, FALSE);
	/* the next command's first body read asks the writer again */
	muser->imap_read_gated = FALSE;
}
