/* mailward storage plugin: the device of a session (explicit, IMAP ID or
   network), its registration in the state store, POP3 LOGIN-DELAY, and
   what an IMAP session records while its device is pending */

#include "lib.h"
#include "ioloop.h"
#include "net.h"
#include "mail-user.h"
#include "mailward-private.h"
#include "mailward-display.h"
#include "mw-imapid.h"
#include "mw-retrieval.h"

/* messages whose fetch is kept in memory while an IMAP session's device
   is pending (each once, however often fetched; about 150 bytes each) */
#define MAILWARD_PENDING_MAX 10000

/* the notice of a device event, and its words in the log */
static enum mailward_notice_kind
device_event_kind(enum mw_device_event event, const char **words_r)
{
	switch (event) {
	case MW_DEVICE_EVENT_REGISTERED:
		*words_r = "registered";
		return MAILWARD_NOTICE_DEVICE_REGISTERED;
	case MW_DEVICE_EVENT_EVICTED:
		*words_r = "evicted (device limit reached)";
		return MAILWARD_NOTICE_DEVICE_EVICTED;
	case MW_DEVICE_EVENT_EXPIRED:
		*words_r = "expired (idle too long)";
		return MAILWARD_NOTICE_DEVICE_EXPIRED;
	}
	*words_r = "changed";
	return MAILWARD_NOTICE_DEVICE_CHANGED;
}

static void
mailward_device_event(enum mw_device_event event,
		      const struct mw_device_rec *rec, void *context)
{
	struct mailward_user *muser = context;
	const char *words;
	enum mailward_notice_kind kind = device_event_kind(event, &words);

	e_info(mailward_named_event(muser, t_strconcat(
			"mailward_", mailward_notice_event_name(kind), NULL))->
	       add_str("device", rec->id_hex)->
	       add_str("device_label", rec->label)->
	       add_str("device_protocol", rec->protocol)->event(),
	       "device %s %s: %s", rec->id_hex, words,
	       mailward_display(rec->label, 0));
	/* the record is about this device, not the session's */
	mailward_notice(muser, kind, NULL, rec);
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

/* Under expunge-after-all-devices a device that counts
   (mw_all_devices_counts()) is never evicted: a message waits for it. */
static bool mailward_device_counts(const struct mw_device_rec *rec,
				   void *context)
{
	struct mailward_user *muser = context;

	return muser->set.pop3_policy ==
		MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES &&
		mw_all_devices_counts(&muser->set, rec->protocol,
				      rec->last_seen, ioloop_time);
}

static int
mailward_device_store_register(struct mailward_user *muser,
			       const char *id_hex, const char *label,
			       const char **error_r)
{
	struct mw_device_limits limits;

	i_zero(&limits);
	limits.max_devices = muser->set.device_max;
	limits.expire_secs = muser->set.device_expire_secs;
	limits.protect_secs = muser->set.device_protect_secs;
	limits.protected_cb = mailward_device_counts;
	limits.protected_ctx = muser;
	limits.new_per_day = muser->set.device_new_per_day;
	return mw_store_device_register_limits(muser->store, id_hex, label,
					       muser->user->service,
					       ioloop_time, &limits,
					       mailward_device_event, muser,
					       &muser->device, error_r);
}

/* what a fail-safe session of a refused device expunges, per protocol
   (the replies say the same: POP3 QUIT "messages kept") */
static const char *mailward_device_refused_effect(const char *service)
{
	if (strcmp(service, "pop3") == 0)
		return "it expunges nothing (no policy expunge; its DELEs "
			"are kept, under every policy)";
	if (strcmp(service, "imap") == 0)
		return "no policy expunge (the client's own EXPUNGE is "
			"carried out)";
	return "policy expunges nothing";
}

/* The session's new device was not registered (muser->device: its id
   and label, dev_no 0): the session runs without device state, fail-safe
   (no policy expunge, its POP3 view the whole mailbox); logged as an
   error and audited as device_refused. No device was evicted for it. */
static void mailward_device_refused(struct mailward_user *muser, int ret)
{
	const char *reason;

	if (ret == MW_DEVICE_REFUSED_RATE) {
		reason = t_strdup_printf(
			"New device of user %s not registered: %u new devices "
			"were registered today (UTC) already "
			"(mailward_device_new_per_day=%u)",
			muser->user->username, muser->set.device_new_per_day,
			muser->set.device_new_per_day);
	} else {
		reason = t_strdup_printf(
			"New device of user %s not registered: the user has "
			"mailward_device_max=%u devices and none may be evicted "
			"(each was seen within mailward_device_protect=%us%s); "
			"remove one with doveadm mailward forget",
			muser->user->username, muser->set.device_max,
			muser->set.device_protect_secs,
			muser->set.pop3_policy ==
			MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES ?
			" or still counts for expunge-after-all-devices" : "");
	}
	muser->device_registered = FALSE;
	muser->device_refused = TRUE;
	mailward_user_mark_fail_safe(muser, reason);
	e_error(mailward_named_event(muser, "mailward_device_refused")->
		add_str("device", muser->device.id_hex)->
		add_str("device_label", muser->device.label)->
		add_str("device_protocol", muser->device.protocol)->
		add_str("reason", reason)->event(),
		"%s - device %s (%s) runs without device state: session is "
		"fail-safe: %s", reason, muser->device.id_hex,
		mailward_display(muser->device.label, 0),
		mailward_device_refused_effect(muser->user->service));
	mailward_notice(muser, MAILWARD_NOTICE_DEVICE_REFUSED, reason,
			&muser->device);
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
	muser->device_refused = FALSE;
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
	ret = mailward_device_store_register(muser, id_hex, label, &error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		muser->device_registered = FALSE;
		return;
	}
	if (ret == MW_DEVICE_REFUSED_FULL || ret == MW_DEVICE_REFUSED_RATE) {
		mailward_device_refused(muser, ret);
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
	mailward_notice(muser, MAILWARD_NOTICE_DEVICE_RESOLVED, NULL, NULL);

	if (muser->pending_dropped > 0) {
		e_warning(muser->event, "%u message(s) fetched before the "
			  "client's IMAP ID were not recorded for device %s "
			  "(only the first %u wait for the ID): they count "
			  "as not retrieved by it, so they are kept",

			  muser->pending_dropped,
			  muser->device_registered ?
			  muser->device.id_hex : "(none)",
			  MAILWARD_PENDING_MAX);
		muser->pending_dropped = 0;
	}
	if (hash_table_is_created(muser->pending_msgs))
		hash_table_clear(muser->pending_msgs, TRUE);
	muser->pending_msg_count = 0;
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

/* The waiting record of key ("<mailbox GUID>" for the summary,
   "<mailbox GUID>/<message>" for a fetch), added with the time now if
   new; NULL when a new fetch would exceed MAILWARD_PENDING_MAX (then
   counted in pending_dropped). */
static struct mailward_pending_rec *
mailward_pending_get(struct mailward_user *muser, const char *key,
		     bool is_msg)
{
	struct mailward_pending_rec *rec;
	void *idx;
	char *pkey;

	if (!hash_table_is_created(muser->pending_msgs)) {
		hash_table_create(&muser->pending_msgs, muser->user->pool, 64,
				  str_hash, strcmp);
		p_array_init(&muser->pending_recs, muser->user->pool, 16);
	}
	idx = hash_table_lookup(muser->pending_msgs, key);
	if (idx != NULL)
		return array_idx_modifiable(&muser->pending_recs,
					    POINTER_CAST_TO(idx, unsigned int) - 1);
	if (is_msg && muser->pending_msg_count >= MAILWARD_PENDING_MAX) {
		muser->pending_dropped++;
		return NULL;
	}
	if (is_msg)
		muser->pending_msg_count++;
	rec = array_append_space(&muser->pending_recs);
	rec->time = ioloop_time;
	pkey = p_strdup(muser->user->pool, key);
	hash_table_insert(muser->pending_msgs, pkey,
			  POINTER_CAST(array_count(&muser->pending_recs)));
	return rec;
}

bool mailward_user_pending_add(struct mailward_user *muser,
			       const char *mbox_guid, const char *msg_guid,
			       uint32_t uid, uint32_t uidvalidity,
			       uint32_t highest_uid, uint64_t highest_modseq)
{
	struct mailward_pending_rec *rec;

	if (!muser->device_pending)
		return FALSE;
	rec = mailward_pending_get(muser, msg_guid == NULL ? mbox_guid :
				   t_strconcat(mbox_guid, "/", msg_guid, NULL),
				   msg_guid != NULL);
	if (rec == NULL)
		return TRUE;	/* not recorded: kept (logged later) */
	i_strocpy(rec->mbox_guid, mbox_guid, sizeof(rec->mbox_guid));
	if (msg_guid != NULL) {
		/* fetched again: the first time stays, as in the store */
		if (rec->msg_guid == NULL)
			rec->msg_guid = p_strdup(muser->user->pool, msg_guid);
		rec->uid = uid;
	} else {
		/* a summary replaces the mailbox's earlier one */
		rec->uidvalidity = uidvalidity;
		rec->highest_uid = highest_uid;
		rec->highest_modseq = highest_modseq;
		rec->time = ioloop_time;
	}
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

static void
mailward_user_set_imap_id(struct mailward_user *muser,
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

void mailward_device_login(struct mailward_user *muser)
{
	/* session_restored: IMAP unhibernation is the same device,
	   registering is then a read-only lookup anyway */
	struct mw_id_params id;

	if (mailward_prelogin_id(muser, &id))
		mailward_device_register(muser, &id);
	else if (strcmp(muser->user->service, "imap") == 0 &&
		 muser->set.device == NULL) {
		/* clients send ID right after login: wait for it
		   rather than register a network device first */
		muser->device_pending = TRUE;
	} else
		mailward_device_register(muser, NULL);
}

/* RFC 2971: at most 30 field-value pairs */
#define MAILWARD_IMAP_ID_MAX_STRINGS 60

void mailward_imap_id(struct mailward_user *muser, const char *args)
{
	const char *strings[MAILWARD_IMAP_ID_MAX_STRINGS];
	char buf[4096];
	unsigned int count;

	if (args == NULL)
		return;
	if (mw_imap_id_split(args, buf, sizeof(buf), strings,
			     N_ELEMENTS(strings), &count) < 0) {
		e_debug(muser->event, "ID arguments not understood: "
			"device stays as identified");
		return;
	}
	mailward_user_set_imap_id(muser, strings, count / 2);
}

void mailward_imap_id_restored(struct mailward_user *muser,
			       const char *args)
{
	/* the same device as before hibernation (a known device: looked up,
	   not registered again); it replaces what the login knew (network
	   or pre-login ID) and did nothing yet */
	if (muser->set.device == NULL)
		muser->device_pending = TRUE;
	mailward_imap_id(muser, args);
}

const char *mailward_imap_hibernate_blocker(struct mailward_user *muser)
{
	/* the restored process logs in again: it knows only the ID of a
	   registered device (exported), nothing of what made this session
	   fail-safe or left its device unregistered */
	if (muser->fail_safe)
		return "the session is fail-safe";
	if (muser->device_pending) {
		return array_is_created(&muser->pending_recs) &&
			array_count(&muser->pending_recs) > 0 ?
			"its records wait for the client's IMAP ID" : NULL;
	}
	if (muser->device_removed)
		return "its device was removed during the session";
	if (muser->store != NULL && !muser->device_registered)
		return "its device is not registered";
	return NULL;
}

bool mailward_imap_id_identified(struct mailward_user *muser)

{
	return muser->device_registered &&
		strcmp(muser->device_source, "imap-id") == 0;
}
