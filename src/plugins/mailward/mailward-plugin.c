/* mailward storage plugin: settings, fail-safe, state store and device
   identity of a session */

#include "lib.h"
#include "ioloop.h"
#include "net.h"
#include "str.h"
#include "hex-binary.h"
#include "safe-memset.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list-iter.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "mailward-plugin.h"
#include "mailward-settings.h"
#include "mw-imapid.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#endif
#include "mw-audit.h"
#include "mailward-display.h"
#include "mailward-state-dir.h"
#include "mailward-crypto.h"

#include <signal.h>
#include <unistd.h>

/* records kept in memory while an IMAP session's device is pending */
#define MAILWARD_PENDING_MAX 1000
/* mailboxes looked at to tell whether a GUID is still in use */
#define MAILWARD_GUID_SCAN_MAX 1000

const char *mailward_plugin_version = DOVECOT_ABI_VERSION;

struct event_category event_category_mailward = {
	.name = "mailward",
};

struct mailward_user_module mailward_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);
struct mailward_storage_module mailward_storage_module =
	MODULE_CONTEXT_INIT(&mail_storage_module_register);


const char *mailward_user_setting(struct mailward_user *muser,
				  const char *name)
{
#if DOVECOT_PREREQ(2, 4, 0)
	/* userdb fields of the same name have already overridden these */
	if (muser->dset == NULL)
		return NULL;
	return mailward_settings_find(muser->dset, name);
#else
	/* userdb fields come before plugin {} settings */
	return mail_user_plugin_getenv(muser->user, name);
#endif
}

static const char *
mailward_setting_lookup(const char *name, void *context,
			enum mw_setting_source *source_r)
{
	struct mailward_user *muser = context;
	struct mail_user *user = muser->user;
	const char *value;
	size_t name_len = strlen(name);
	unsigned int i;

	bool userdb = FALSE;

	if (user->userdb_fields != NULL) {
		for (i = 0; user->userdb_fields[i] != NULL; i++) {
			const char *field = user->userdb_fields[i];

			if (strncmp(field, name, name_len) == 0 &&
			    (field[name_len] == '=' || field[name_len] == '\0')) {
				userdb = TRUE;
				break;
			}
		}
	}
	value = mailward_user_setting(muser, name);
	if (value == NULL) {
		/* Dovecot 2.4 reads an empty userdb field as "" (2.3: "yes"):
		   it is a value that does not parse, not an unset setting */
		if (!userdb)
			return NULL;
		value = "";
	}
	*source_r = userdb ? MW_SOURCE_USERDB : MW_SOURCE_CONFIG;
	return value;
}

void mailward_user_set_fail_safe(struct mailward_user *muser,
				 const char *reason)
{
	if (!muser->fail_safe) {
		muser->fail_safe = TRUE;
		muser->fail_safe_reason = p_strdup(
			muser->user->pool, reason);
	}
	e_error(mailward_named_event(muser, "mailward_fail_safe")->
		add_str("reason", reason)->event(), "%s - session is fail-safe: "
		"policy expunges nothing", mailward_display(reason, 0));
	if (muser->audit != NULL) {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "state_error", "failed");
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, reason);
		mailward_audit_queue_event(muser, &ev);
	}
}

bool mailward_user_may_expunge(struct mailward_user *muser)
{
	return !muser->fail_safe && !muser->set.hold;
}

#ifdef MAILWARD_FAULT_INJECTION
void mailward_fault_point(struct mailward_user *muser, const char *point)
{
	const char *value;

	if (muser == NULL)
		return;
	value = mailward_user_setting(muser, "mailward_fault_inject");
	if (value != NULL && strcmp(value, point) == 0) {
		e_warning(muser->event, "fault injection: killing process at %s",
			  point);
		(void)kill(getpid(), SIGKILL);
	}
}
#endif

static const char *device_audit_event(enum mw_device_event event)
{
	switch (event) {
	case MW_DEVICE_EVENT_REGISTERED:
		return "device_registered";
	case MW_DEVICE_EVENT_EVICTED:
		return "device_evicted";
	case MW_DEVICE_EVENT_EXPIRED:
		return "device_expired";
	}
	return "device_changed";
}

static const char *device_event_name(enum mw_device_event event)
{
	switch (event) {
	case MW_DEVICE_EVENT_REGISTERED:
		return "registered";
	case MW_DEVICE_EVENT_EVICTED:
		return "evicted (device limit reached)";
	case MW_DEVICE_EVENT_EXPIRED:
		return "expired (idle too long)";
	}
	return "changed";
}

static void
mailward_device_event(enum mw_device_event event,
		      const struct mw_device_rec *rec, void *context)
{
	struct mailward_user *muser = context;

	e_info(mailward_named_event(muser, t_strconcat(
			"mailward_", device_audit_event(event), NULL))->
	       add_str("device", rec->id_hex)->
	       add_str("device_label", rec->label)->
	       add_str("device_protocol", rec->protocol)->event(),
	       "device %s %s: %s", rec->id_hex,
	       device_event_name(event), mailward_display(rec->label, 0));
	if (muser->audit != NULL) {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, device_audit_event(event),
					  "ok");
		/* the record is about this device, not the session's */
		mw_audit_event_set_str(&ev, MW_AF_DEVICE, rec->id_hex);
		mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL, rec->label);
		mailward_audit_queue_event(muser, &ev);
	}
}

void mailward_state_reset_check(struct mailward_user *muser)
{
	const char *moved, *what;

	if (muser->store == NULL || muser->state_reset_seen ||
	    (moved = mw_store_get_reset(muser->store)) == NULL)
		return;
	muser->state_reset_seen = TRUE;
	if (mw_store_get_reset_lost(muser->store)) {
		what = t_strdup_printf("state store %s lost its data: %s is "
				       "missing or empty while the store's "
				       "lock file remained", muser->state_dir,
				       moved);
	} else {
		what = t_strdup_printf("damaged state store %s moved aside "
				       "to %s", muser->state_dir, moved);
	}
	if (muser->audit != NULL) {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "state_reset", "ok");
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, what);
		mailward_audit_queue_event(muser, &ev);
	}
	/* what devices had is lost: this session expunges nothing */
	if (mw_store_get_reset_lost(muser->store)) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s lost its data: %s is missing or empty "
			"while the store's lock file remained, continuing "
			"with a fresh store (device state lost)",
			muser->state_dir, moved));
	} else {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s was damaged: moved aside to %s, "
			"continuing with a fresh store (device state lost)",
			muser->state_dir, moved));
	}
}

static bool mailward_state_open(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;
	const char *home, *error, *key_path;

	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	muser->state_dir = p_strdup(user->pool, mailward_state_dir_path(
		muser->set.state_dir, home));
	if (muser->state_dir == NULL) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store disabled: user %s has no home directory "
			"and mailward_state_dir is %s", user->username,
			muser->set.state_dir == NULL ? "not set" :
			t_strdup_printf("'%s'", mailward_display(
				muser->set.state_dir, 0))));
		return FALSE;
	}
	if (muser->state_dir[0] != '/') {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store disabled: mailward_state_dir '%s' of user "
			"%s is not an absolute path", mailward_display(
				muser->state_dir, 0), user->username));
		return FALSE;
	}
	if (geteuid() == 0) {
		/* a root-owned environment or lock file would lock the
		   mail uid out */
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s not opened: process runs as root",
			muser->state_dir));
		return FALSE;
	}
	if (mw_store_open(muser->state_dir, &muser->store, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		muser->store = NULL;
		return FALSE;
	}
	if (mw_store_get_reset(muser->store) != NULL) {
		/* damaged: moved aside, this is a fresh store */
		mailward_state_reset_check(muser);
	}
	if (muser->store != NULL) {
		const char *owner;
		int ret;

		ret = mw_store_check_owner(muser->store, user->username,
					   &owner, &error);
		if (ret <= 0) {
			/* another user's store (mailward_state_dir without a
			   per-user part): using it would mix their devices
			   and records */
			mailward_user_set_fail_safe(muser, ret < 0 ?
				t_strdup_printf("State store error: %s", error) :
				t_strdup_printf("State store %s belongs to user "
					"%s, not %s: mailward_state_dir must be "
					"a directory per user (e.g. ~/mailward "
					"or /var/lib/mailward/%%u); state not "
					"used", muser->state_dir,
					mailward_display(owner, 256),
					user->username));
			mw_store_unref(&muser->store);
			return FALSE;
		}
	}
	if (muser->set.device_key != NULL) {
		if (mw_device_key_from_hex(muser->set.device_key,
					   muser->device_key, &error) < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"Invalid setting mailward_device_key for user %s: %s",
				user->username, error));
			mw_store_unref(&muser->store);
			return FALSE;
		}
	} else {
		key_path = t_strconcat(muser->state_dir, "/device.key", NULL);
		if (mw_device_key_load_or_create(key_path, muser->device_key,
						 &error) < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
			mw_store_unref(&muser->store);
			return FALSE;
		}
	}
	muser->device_key_loaded = TRUE;
	return TRUE;
}

/* RFC 2449 LOGIN-DELAY: TRUE if the POP3 device id_hex had a session
   less than mailward_pop3_login_delay ago (its last_seen, which every
   session of a user with a delay writes at its end: see
   mailward_state_batch()). Then the session
   is refused: the device is taken as it is in the store and not touched,
   so refused attempts do not push the next allowed login further. */
static bool
mailward_pop3_login_delay_check(struct mailward_user *muser,
				const char *id_hex)
{
	struct mw_device_rec prev;
	const char *error;
	time_t since;
	int ret;

	ret = mw_store_device_get(muser->store, id_hex, &prev, &error);
	if (ret < 0) {
		/* the register below reports the store's state */
		return FALSE;
	}
	if (ret == 0 || prev.last_seen > ioloop_time)
		return FALSE;	/* new device; or the clock went back */
	since = ioloop_time - prev.last_seen;
	if (since >= (time_t)muser->set.pop3_login_delay_secs)
		return FALSE;
	muser->device = prev;
	muser->device_registered = TRUE;
	muser->pop3_login_delayed = TRUE;
	muser->pop3_login_wait = muser->set.pop3_login_delay_secs -
		(unsigned int)since;
	e_info(muser->event, "POP3 login of device %s (%s) refused: its last "
	       "session was %ld second(s) ago, mailward_pop3_login_delay=%us "
	       "(LOGIN-DELAY): it may log in again in %u second(s)",
	       prev.id_hex, mailward_display(prev.label, 0), (long)since,
	       muser->set.pop3_login_delay_secs, muser->pop3_login_wait);
	return TRUE;
}

static void
mailward_device_register(struct mailward_user *muser,
			 const struct mw_id_params *id)
{
	struct mail_user *user = muser->user;
	struct mw_device_source src;
	char identity[MW_IDENTITY_BUF_SIZE], label[MW_LABEL_BUF_SIZE];
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	const char *error;
	int ret;

	i_zero(&src);
	src.explicit_device = muser->set.device;
	src.protocol = user->service;
	src.id = id;
	if (user->conn.remote_ip != NULL && user->conn.remote_ip->family != 0)
		src.remote_ip = net_ip2addr(user->conn.remote_ip);
	src.v4_prefix_bits = muser->set.device_v4_prefix;
	src.v6_prefix_bits = muser->set.device_v6_prefix;
	mw_device_describe(&src, identity, sizeof(identity),
			   label, sizeof(label));
	muser->device_source = src.explicit_device != NULL ? "explicit" :
		(id != NULL && id->name[0] != '\0' ? "imap-id" : "network");

	/* with Dovecot's HMAC (mailward_crypto_dovecot, installed at init) */
	if (mw_device_id(muser->device_key, identity, NULL, id_hex) < 0) {
		mailward_user_set_fail_safe(muser,
			"Device id: no working crypto provider");
		muser->device_registered = FALSE;
		return;
	}
	if (muser->set.pop3_login_delay_secs > 0 &&
	    strcmp(user->service, "pop3") == 0 &&
	    mailward_pop3_login_delay_check(muser, id_hex))
		return;
	ret = mw_store_device_register(muser->store, id_hex, label,
				       user->service, ioloop_time,
				       muser->set.device_max,
				       muser->set.device_expire_secs,
				       mailward_device_event, muser,
				       &muser->device, &error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		muser->device_registered = FALSE;
		return;
	}
	muser->device_registered = TRUE;
	e_debug(muser->event, "device %s (%s, %s): %s", muser->device.id_hex,
		muser->device_source, ret > 0 ? "new" : "known",
		mailward_display(muser->device.label, 0));
}

/* The pre-login IMAP ID: with imap_id_retain=yes Dovecot gives it to auth
   as %{client_id} ("name" "value" ...), which the admin exposes as the
   userdb field mailward_client_id. */
static bool
mailward_prelogin_id(struct mailward_user *muser, struct mw_id_params *id_r)
{
	const char *value, *strings[60];
	char buf[4096];
	unsigned int count;

	if (strcmp(muser->user->service, "imap") != 0 ||
	    muser->set.device != NULL)
		return FALSE;
	value = mailward_user_setting(muser, "mailward_client_id");
	/* 2.3: an empty field reads back as "yes": no ID was sent */
	if (value == NULL || value[0] == '\0' || strcmp(value, "yes") == 0)
		return FALSE;
	if (mw_imap_id_split(t_strconcat("(", value, ")", NULL), buf,
			     sizeof(buf), strings, N_ELEMENTS(strings),
			     &count) < 0) {
		e_debug(muser->event, "pre-login ID not understood");
		return FALSE;
	}
	mw_id_params_parse(strings, count / 2, id_r);
	return id_r->name[0] != '\0';
}

/* records what waited for the device: now muser->device's */
static void mailward_pending_replay(struct mailward_user *muser)
{
	const struct mailward_pending_rec *rec;
	struct mw_batch *batch;

	/* audit records that waited for the device get it (the IMAP
	   login's among them) */
	mailward_audit_deferred_release(muser);
	if (muser->audit_pending_reads > 0 && muser->device_registered &&
	    muser->audit != NULL) {
		/* earlier read records of the session that had to go out
		   before the device was known name none: this one does,
		   with the same session */
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "device_identified",
					  "ok");
		mw_audit_event_set_str(&ev, MW_AF_CAUSE,
				       muser->device_source);
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, t_strdup_printf(
			"%u earlier read record(s) of this session are this "
			"device's", muser->audit_pending_reads));
		mailward_audit_queue_event(muser, &ev);
	}
	muser->audit_pending_reads = 0;

	if (!array_is_created(&muser->pending_recs))
		return;
	batch = muser->device_registered ? mailward_state_batch(muser) : NULL;
	if (batch != NULL) {
		array_foreach(&muser->pending_recs, rec) {
			if (rec->msg_guid != NULL) {
				mw_batch_msg_update(batch, muser->device.dev_no,
						    rec->mbox_guid,
						    rec->msg_guid, rec->uid,
						    MW_MSG_RETRIEVED,
						    rec->time);
				muser->state_dirty = TRUE;
			} else {
				mw_batch_summary_set(batch,
						     muser->device.dev_no,
						     rec->mbox_guid,
						     rec->uidvalidity,
						     rec->highest_uid,
						     rec->highest_modseq,
						     rec->time);
			}
		}
	}
	array_clear(&muser->pending_recs);
}

bool mailward_user_pending_add(struct mailward_user *muser,
			       const char *mbox_guid, const char *msg_guid,
			       uint32_t uid, uint32_t uidvalidity,
			       uint32_t highest_uid, uint64_t highest_modseq)
{
	struct mailward_pending_rec *rec;

	if (!muser->device_pending)
		return FALSE;
	if (!array_is_created(&muser->pending_recs))
		p_array_init(&muser->pending_recs, muser->user->pool, 16);
	if (array_count(&muser->pending_recs) >= MAILWARD_PENDING_MAX) {
		/* a client that never sends ID: stop waiting */
		mailward_user_device_resolve(muser);
		return FALSE;
	}
	if (msg_guid == NULL) {
		/* a summary replaces the mailbox's earlier one */
		struct mailward_pending_rec *found = NULL;

		array_foreach_modifiable(&muser->pending_recs, rec) {
			if (rec->msg_guid == NULL &&
			    strcmp(rec->mbox_guid, mbox_guid) == 0) {
				found = rec;
				break;
			}
		}
		rec = found != NULL ? found :
			array_append_space(&muser->pending_recs);
	} else {
		rec = array_append_space(&muser->pending_recs);
		rec->msg_guid = p_strdup(muser->user->pool, msg_guid);
		rec->uid = uid;
	}
	i_strocpy(rec->mbox_guid, mbox_guid, sizeof(rec->mbox_guid));
	rec->uidvalidity = uidvalidity;
	rec->highest_uid = highest_uid;
	rec->highest_modseq = highest_modseq;
	rec->time = ioloop_time;
	return TRUE;
}

void mailward_user_device_resolve(struct mailward_user *muser)
{
	if (!muser->device_pending)
		return;
	muser->device_pending = FALSE;
	if (muser->store != NULL) {
		mailward_device_register(muser, NULL);
		mailward_pending_replay(muser);
	}
}

void mailward_user_set_imap_id(struct mailward_user *muser,
			       const char *const *pairs, unsigned int count)
{
	struct mw_id_params id;

	if (muser->store == NULL || muser->set.device != NULL)
		return;
	mw_id_params_parse(pairs, count, &id);
	if (id.name[0] == '\0') {
		mailward_user_device_resolve(muser);
		return;
	}
	if (muser->device_pending) {
		/* the first identification of this session, whatever
		   commands came before it: one client, one device */
		muser->device_pending = FALSE;
		mailward_device_register(muser, &id);
		mailward_pending_replay(muser);
		return;
	}
	/* a second, different ID (or one after the client had to be
	   identified by network): what the previous device did so far
	   stays attributed to it */
	if (muser->device_registered) {
		struct mw_batch *batch = mailward_state_batch(muser);

		if (batch != NULL) {
			mw_batch_device_touch(batch, muser->device.id_hex,
					      ioloop_time, 1,
					      muser->imap_body_fetches, 0);
		}
	}
	muser->imap_body_fetches = 0;
	(void)mailward_state_flush(muser);
	mailward_device_register(muser, &id);
}

struct mw_batch *mailward_state_batch(struct mailward_user *muser)
{
	if (muser->store == NULL)
		return NULL;
	if (muser->batch == NULL) {
		muser->batch = mw_batch_begin(muser->store);
		/* last_seen may lag a session by MW_DEVICE_TOUCH_SECS
		   (repeated sessions that change nothing write nothing):
		   nothing next to a device expiry in days, but a short one
		   (under 100 times that) gets every touch written, and so
		   does a user with a POP3 login delay (measured from the
		   device's last session: last_seen exact) */
		if (muser->batch != NULL &&
		    ((muser->set.device_expire_secs > 0 &&
		      muser->set.device_expire_secs <
		      100 * MW_DEVICE_TOUCH_SECS) ||
		     muser->set.pop3_login_delay_secs > 0))
			mw_batch_set_touch_secs(muser->batch, 0);
	}
	return muser->batch;
}

void mailward_user_device_removed(struct mailward_user *muser,
				  const char *what)
{
	if (muser->device_removed) {
		/* warned and audited already */
		e_info(muser->event, "device %s (%s) removed during this "
		       "session: %s", muser->device.id_hex,
		       mailward_display(muser->device.label, 0), what);
		return;
	}
	muser->device_removed = TRUE;
	e_warning(muser->event, "device %s (%s) was removed from the state "
		  "store during this session (evicted, expired or forgotten): "
		  "%s", muser->device.id_hex,
		  mailward_display(muser->device.label, 0), what);
	if (muser->audit != NULL) {
		struct mw_audit_event ev;

		mailward_audit_event_init(muser, &ev, "state_discarded",
					  "dropped");
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, t_strconcat(
			"device removed during the session: ", what, NULL));
		mailward_audit_queue_event(muser, &ev);
	}
}

int mailward_state_flush(struct mailward_user *muser)
{
	const char *error;
	unsigned int dropped = 0;

	muser->state_dirty = FALSE;
	muser->last_state_flush = ioloop_time;
	if (muser->batch == NULL)
		return 0;
	if (mw_batch_count(muser->batch) == 0) {
		mw_batch_abort(&muser->batch);
		return 0;
	}
	/* records of this session go to its device only: if another
	   session removed the device meanwhile, the commit drops them */
	if (muser->device_registered) {
		mw_batch_bind_device(muser->batch, muser->device.id_hex,
				     muser->device.dev_no, &dropped);
	}
	if (mw_batch_commit(&muser->batch, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return -1;
	}
	if (dropped > 0) {
		mailward_user_device_removed(muser, t_strdup_printf(
			"%u state record(s) of this session discarded, not "
			"given to another device", dropped));
	}
	return 0;
}

bool mailward_user_needs_sweep(struct mailward_user *muser)
{
	if (muser->set.disposition == MW_DISPOSITION_KEEP)
		return FALSE;	/* nothing ever becomes due */
	/* (expunge-after-retrieval: policy expunges that could not be
	   carried out at QUIT, e.g. without the audit writer, are due) */
	return muser->set.expunge_delay_secs > 0 ||
		muser->set.pop3_policy ==
		MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES ||
		muser->set.pop3_policy ==
		MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL ||
		/* (seen and move under leave-on-server and client: the same
		   for dispositions that could not be carried out) */
		muser->set.disposition == MW_DISPOSITION_SEEN ||
		muser->set.disposition == MW_DISPOSITION_MOVE;
}

/* 1 if some other mailbox of the user has this GUID (or that cannot be
   told: too many mailboxes), 0 if none has */
static int
mailward_mailbox_guid_in_use(struct mailward_user *muser, struct mailbox *box,
			     const char *guid_hex)
{
	static const char *const patterns[] = { "*", NULL };
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	struct mailbox_metadata metadata;
	unsigned int count = 0;
	int ret = 0;

	iter = mailbox_list_iter_init_namespaces(muser->user->namespaces,
		patterns, MAIL_NAMESPACE_TYPE_PRIVATE,
		MAILBOX_LIST_ITER_NO_AUTO_BOXES |
		MAILBOX_LIST_ITER_SKIP_ALIASES |
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while (ret == 0 && (info = mailbox_list_iter_next(iter)) != NULL) {
		struct mailbox *other;

		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0 ||
		    strcmp(info->vname, mailbox_get_vname(box)) == 0)
			continue;
		if (++count > MAILWARD_GUID_SCAN_MAX) {
			ret = 1;
			break;
		}
		other = mailbox_alloc(info->ns->list, info->vname,
				      MAILBOX_FLAG_READONLY);
		if (mailbox_get_metadata(other, MAILBOX_METADATA_GUID,
					 &metadata) == 0 &&
		    strcasecmp(binary_to_hex(metadata.guid,
					     sizeof(metadata.guid)),
			       guid_hex) == 0)
			ret = 1;
		mailbox_free(&other);
	}
	(void)mailbox_list_iter_deinit(&iter);
	return ret;
}

/* Records the mailbox's GUID under its name. A name whose GUID changed
   while the old GUID exists nowhere else is the same mailbox with a
   regenerated GUID (index or uidlist lost): its records carry over, so
   no device sees again what it deleted or retrieved. */
static void
mailward_mailbox_name_check(struct mailward_user *muser, struct mailbox *box,
			    const char *guid_hex)
{
	const char *name = mailbox_get_vname(box), *old = NULL, *error;
	char old_hex[MW_MAILBOX_GUID_HEX_SIZE];
	int ret;

	if (muser->store == NULL || mailbox_get_namespace(box)->type !=
	    MAIL_NAMESPACE_TYPE_PRIVATE || box->storage->user != muser->user ||
	    name[0] == '\0' || strlen(name) > MW_MAILBOX_NAME_MAX)
		return;
	ret = mw_store_mailbox_name_get(muser->store, name, old_hex, &error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return;
	}
	if (ret > 0) {
		if (strcasecmp(old_hex, guid_hex) == 0)
			return;
		if (mailward_mailbox_guid_in_use(muser, box, old_hex) == 0)
			old = old_hex;
	}
	ret = mw_store_mailbox_name_set(muser->store, name, old, guid_hex,
					&error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
	} else if (ret > 0) {
		e_info(muser->event, "Mailbox %s: GUID changed from %s to %s "
		       "(index rebuilt): device records carried over",
		       mailward_display(name, 0), old_hex, guid_hex);
	}
}

const char *mailward_mailbox_guid(struct mailward_user *muser,
				  struct mailbox *box)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailbox_metadata metadata;
	const char *hex;

	/* looked up per message (fetch records, audit, prunes): once */
	if (mbox != NULL && mbox->guid_hex[0] != '\0')
		return mbox->guid_hex;
	if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0) {
		e_error(muser->event, "Mailbox %s: GUID lookup failed: %s",
			mailward_display(mailbox_get_vname(box), 0),
			mailbox_get_last_internal_error(box, NULL));
		return NULL;
	}
	hex = binary_to_hex(metadata.guid, sizeof(metadata.guid));
	if (mbox != NULL) {
		i_strocpy(mbox->guid_hex, hex, sizeof(mbox->guid_hex));
		mailward_mailbox_name_check(muser, box, mbox->guid_hex);
		return mbox->guid_hex;
	}
	return hex;
}

struct prune_ctx {
	struct mailward_user *muser;
	HASH_TABLE(const char *, void *) existing;
	struct mw_batch *batch;
	unsigned int pruned;
};

static int prune_mailbox_cb(const char *guid_hex, void *context)
{
	struct prune_ctx *ctx = context;

	if (hash_table_lookup(ctx->existing, guid_hex) == NULL) {
		mw_batch_mailbox_forget(ctx->batch, guid_hex);
		ctx->pruned++;
	}
	return 0;
}

int mailward_prune_missing_mailboxes(struct mailward_user *muser)
{
	struct mail_namespace *ns;
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	struct prune_ctx ctx;
	const char *guid, *error;
	bool failed = FALSE;
	pool_t pool;
	int ret;

	if (muser->store == NULL)
		return 0;
	pool = pool_alloconly_create("mailward prune", 1024);
	i_zero(&ctx);
	ctx.muser = muser;
	hash_table_create(&ctx.existing, pool, 0, strcase_hash, strcasecmp);
	/* every mailbox of the user, looked at through
	   mailward_mailbox_guid(): a regenerated GUID takes its records over
	   before anything is pruned. Each private namespace's own list is
	   iterated: the namespaces iterator skips list=no namespaces (an
	   INBOX namespace with list = no would lose all its records). */
	for (ns = muser->user->namespaces; ns != NULL && !failed;
	     ns = ns->next) {
		if (ns->type != MAIL_NAMESPACE_TYPE_PRIVATE ||
		    ns->alias_for != NULL)
			continue;
		iter = mailbox_list_iter_init(ns->list, "*",
			MAILBOX_LIST_ITER_NO_AUTO_BOXES |
			MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
		while ((info = mailbox_list_iter_next(iter)) != NULL) {
			struct mailbox *box;

			if ((info->flags & (MAILBOX_NOSELECT |
					    MAILBOX_NONEXISTENT)) != 0)
				continue;
			box = mailbox_alloc(info->ns->list, info->vname, 0);
			guid = mailward_mailbox_guid(muser, box);
			if (guid == NULL)
				failed = TRUE;
			else {
				guid = p_strdup(pool, guid);
				hash_table_update(ctx.existing, guid,
						  (void *)guid);
			}
			mailbox_free(&box);
		}
		if (mailbox_list_iter_deinit(&iter) < 0) {
			e_error(muser->event, "Listing the mailboxes of %s "
				"failed, records of removed mailboxes kept: %s",
				muser->user->username,
				mailbox_list_get_last_internal_error(ns->list,
								     NULL));
			failed = TRUE;
		} else if (failed) {
			e_error(muser->event, "A mailbox of %s could not be "
				"looked at, records of removed mailboxes kept",
				muser->user->username);
		}
	}
	if (mailward_user_inbox_ns(muser->user) == NULL && !failed) {
		e_error(muser->event, "Listing the mailboxes of %s failed, "
			"records of removed mailboxes kept: no INBOX "
			"namespace", muser->user->username);
		failed = TRUE;
	}
	if (failed || muser->fail_safe) {
		/* unsure what exists: keep every record */
		ret = failed ? -1 : 0;
	} else {
		ctx.batch = mailward_state_batch(muser);
		ret = ctx.batch == NULL ? 0 :
			mw_store_mailbox_iter(muser->store, prune_mailbox_cb,
					      &ctx, &error);
		if (ret < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
		}
	}
	hash_table_destroy(&ctx.existing);
	pool_unref(&pool);
	if (ret < 0 || failed || muser->fail_safe)
		return ret < 0 ? -1 : 0;
	if (ctx.pruned > 0) {
		if (mailward_state_flush(muser) < 0)
			return -1;
		e_info(muser->event, "Records of %u mailbox(es) that no longer "
		       "exist removed", ctx.pruned);
	}
	return ctx.pruned;
}

struct mail_namespace *mailward_user_inbox_ns(struct mail_user *user)
{
	struct mail_namespace *ns;

	/* mail_namespace_find_inbox() asserts that there is one */
	for (ns = user->namespaces; ns != NULL; ns = ns->next) {
		if ((ns->flags & NAMESPACE_FLAG_INBOX_USER) != 0)
			return ns;
	}
	return NULL;
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
	    strcmp(user->service, "pop3") != 0) {
		/* IMAP and other sessions: carry out due expunges at the
		   end of the session and record the device's activity */
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
	mailward_others_deinit(muser);
	/* a store moved aside during the session: audited once */
	mailward_state_reset_check(muser);
	mailward_audit_user_deinit(muser);
	if (muser->pop3 != NULL) {
		hash_table_destroy(&muser->pop3->msgs);
		pool_unref(&muser->pop3->pool);
		muser->pop3 = NULL;
	}
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

void mailward_user_read_settings(struct mailward_user *muser,
				 mw_setting_lookup_t *lookup, void *context)
{
	struct mail_user *user = muser->user;
	const char *username = muser->owner_name != NULL ?
		muser->owner_name : user->username;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int i, error_count;

	mw_settings_read(&muser->set, lookup, context, errors, &error_count);
	for (i = 0; i < error_count; i++) {
		e_error(muser->event,
			"Invalid setting %s=%s for user %s: %s",
			errors[i].name, mailward_display(errors[i].value, 256),
			username, errors[i].reason);
	}
	if (error_count > 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"%u invalid setting(s) for user %s",
			error_count, username));
	}
	if (!muser->set.hold && muser->actor == NULL) {
		/* a legal hold in the session user's userdb field is not
		   lifted by a setting that overrides the field (doveadm -o):
		   it is lifted by changing the userdb (shared and public
		   owners' settings are read apart, with actor set) */
		const char *field = mailward_userdb_field(user->userdb_fields,
							  "mailward_hold");
		bool held = TRUE;

		if (field != NULL && (mw_bool_parse(field, &held) < 0 ||
				      held)) {
			e_warning(muser->event, "mailward_hold is overridden "
				  "to no for user %s, but the userdb field "
				  "says %s: the legal hold stays (change the "
				  "userdb field to lift it)", username,
				  mailward_display(field, 64));
			muser->set.hold = TRUE;
			muser->set.hold_source = MW_SOURCE_USERDB;
		}
	}
	muser->set.device = p_strdup(user->pool, muser->set.device);
	muser->set.state_dir = p_strdup(user->pool, muser->set.state_dir);
	muser->set.device_key = p_strdup(user->pool, muser->set.device_key);
	muser->set.audit_socket = p_strdup(user->pool, muser->set.audit_socket);
	muser->set.audit_spool = p_strdup(user->pool, muser->set.audit_spool);
	muser->set.audit_remote = p_strdup(user->pool, muser->set.audit_remote);
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
#if DOVECOT_PREREQ(2, 4, 0)
	const char *set_error;

	if (settings_get(user->event, &mailward_setting_parser_info, 0,
			 &muser->dset, &set_error) < 0) {
		muser->dset = NULL;
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"Can't read mailward settings of user %s: %s",
			user->username, set_error));
	}
#endif
	mailward_user_read_settings(muser, mailward_setting_lookup, muser);

	e_debug(muser->event, "user %s service %s: pop3_policy=%s (%s) "
		"expunge_delay=%us pop3_disposition=%s%s%s (%s) "
		"hold=%s (%s) imap_expunge=%s audit=%s",
		user->username, user->service,
		mw_pop3_policy_name(muser->set.pop3_policy),
		mw_setting_source_name(muser->set.pop3_policy_source),
		muser->set.expunge_delay_secs,
		mw_pop3_disposition_name(muser->set.disposition),
		muser->set.disposition_mailbox != NULL ? ":" : "",
		muser->set.disposition_mailbox != NULL ?
		mailward_display(muser->set.disposition_mailbox, 0) : "",
		mw_setting_source_name(muser->set.disposition_source),
		muser->set.hold ? "yes" : "no",
		mw_setting_source_name(muser->set.hold_source),
		muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		"deny" : "allow",
		muser->set.audit_socket == NULL ? "off" : t_strconcat("on (",
			mailward_display(muser->set.audit_socket, 0), ")",
			NULL));

	mailward_audit_user_init(muser);
	if (muser->set.state_enabled &&
	    mailward_service_has_state(user->service) &&
	    mailward_state_open(muser) &&
	    strcmp(user->service, "doveadm") != 0) {
		/* session_restored: IMAP unhibernation is the same device,
		   registering is then a read-only lookup anyway */
		struct mw_id_params id;

		if (mailward_prelogin_id(muser, &id))
			mailward_device_register(muser, &id);
		else if (strcmp(user->service, "imap") == 0 &&
			 muser->set.device == NULL) {
			/* clients send ID right after login: wait for it
			   rather than register a network device first */
			muser->device_pending = TRUE;
		} else
			mailward_device_register(muser, NULL);
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
	mailward_owner_init();
	mailward_metadata_init();
	mail_storage_hooks_add(module, &mailward_mail_storage_hooks);
}

void mailward_plugin_deinit(void)
{
	mail_storage_hooks_remove(&mailward_mail_storage_hooks);
	mailward_metadata_deinit();
	mailward_owner_deinit();
}
