/* mailward audit events: what a mail process tells the audit writer.
   Records are queued in memory and sent at flush points (end of an IMAP
   command, end of a POP3 session, and before any expunge commits, when
   the writer must have made the expunge's intent durable; under
   mailward_audit_required=yes also before a POP3 RETR/TOP and an IMAP
   command's first body read: mailward_audit_read_gate()). */

#include "lib.h"
#include "ioloop.h"
#include "net.h"
#include "str.h"
#include "hex-binary.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mailward-private.h"
#include "mailward-audit-client.h"
#include "mailward-display.h"

#define MAILWARD_AUDIT_BATCH_RECORDS 500

/* The remote field of the session's records, formatted each time (the
   address, its network or its keyed pseudonym), or NULL. */
static const char *mailward_audit_remote_format(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;
	const char *ip;
	char prefix[MW_PREFIX_BUF_SIZE];
	char mac_hex[MW_DEVICE_ID_HEX_SIZE];

	if (user->conn.remote_ip == NULL || user->conn.remote_ip->family == 0)
		return NULL;
	ip = net_ip2addr(user->conn.remote_ip);
	if (strcmp(muser->set.audit_remote, "network") == 0) {
		if (mw_network_prefix(ip, muser->set.device_v4_prefix,
				      muser->set.device_v6_prefix,
				      prefix, sizeof(prefix)) < 0)
			return NULL;
		return t_strdup(prefix);
	}
	if (strcmp(muser->set.audit_remote, "pseudonym") == 0) {
		/* keyed with the user's device key: stable per user, not
		   reversible without the key */
		if (!muser->device_key_loaded ||
		    mw_device_id(muser->device_key, ip, NULL, mac_hex) < 0)
			return "pseudonym-unavailable";
		/* the first 16 bytes of HMAC-SHA-256(device key, address),
		   computed as a device id is */
		return t_strconcat("ps:", mac_hex, NULL);
	}
	return ip;
}

/* The remote field of the session muser's records: formatted once per
   session (issue 14: inet_ntop, or a prefix or an HMAC, per record
   before). A pseudonym not available yet is not kept: the device key
   may be loaded later in the session. */
static const char *mailward_audit_remote(struct mailward_user *muser)
{
	const char *remote;

	if (muser->audit_remote != NULL)
		return muser->audit_remote;
	remote = mailward_audit_remote_format(muser);
	if (remote != NULL && strcmp(remote, "pseudonym-unavailable") != 0)
		muser->audit_remote = p_strdup(muser->user->pool, remote);
	return remote;
}

void mailward_audit_event_init(struct mailward_user *muser,
			       struct mw_audit_event *ev, const char *event,
			       const char *outcome)
{
	/* the session acting: for another owner's mail, its actor */
	struct mailward_user *session =
		muser->actor != NULL ? muser->actor : muser;
	struct mail_user *user = session->user;

	mw_audit_event_init(ev);
	mw_audit_event_set_str(ev, MW_AF_SERVICE, user->service);
	mw_audit_event_set_str(ev, MW_AF_SESSION, user->session_id);
	mw_audit_event_set_str(ev, MW_AF_EVENT, event);
	mw_audit_event_set_str(ev, MW_AF_OUTCOME, outcome);
	/* user: whose mail it is (none for a public namespace) */
	mw_audit_event_set_str(ev, MW_AF_USER, muser->actor == NULL ?
			       user->username : muser->owner_name);
	mw_audit_event_set_str(ev, MW_AF_ACTOR, mailward_user_actor(muser));
	/* the device is the acting session's, known in its own store only
	   (or refused there: known, not registered) */
	if (muser->device_registered || muser->device_refused) {
		mw_audit_event_set_str(ev, MW_AF_DEVICE,
				       t_strdup(muser->device.id_hex));
		mw_audit_event_set_str(ev, MW_AF_DEVICE_LABEL,
				       t_strdup(muser->device.label));
	}
	mw_audit_event_set_str(ev, MW_AF_REMOTE, mailward_audit_remote(session));
}

/* A POP3 session keeps its messages' Message-IDs for their later records
   up to this many bytes in all (beyond, they are read again: a bound on
   the session's memory whatever the mail holds) */
#define MAILWARD_AUDIT_MSGID_KEEP_BYTES (1024 * 1024)

const char *mailward_audit_message_id(struct mailward_user *muser,
				      struct mail *mail,
				      struct mailward_pop3_msg *msg)
{
	const char *msgid;
	size_t len;
	int ret;

	if (msg != NULL && msg->message_id_read)
		return msg->message_id;
	ret = mail_get_first_header(mail, "Message-ID", &msgid);
	if (ret < 0)
		return NULL;	/* (not kept: read again next time) */
	if (ret == 0)
		msgid = NULL;
	len = msgid == NULL ? 0 : strlen(msgid) + 1;
	if (msg != NULL && len <= MAILWARD_AUDIT_MSGID_KEEP_BYTES -
	    muser->audit_msgids_size) {
		msg->message_id = p_strdup(muser->user->pool, msgid);
		msg->message_id_read = TRUE;
		muser->audit_msgids_size += len;
	}
	return msgid;
}

void mailward_audit_event_mail(struct mailward_user *muser,
			       struct mw_audit_event *ev, struct mail *mail,
			       const char *guid, struct mailward_pop3_msg *msg)
{
	struct mailbox_status status;
	const char *mbox_guid, *msgid;
	uoff_t size;

	mw_audit_event_set_str(ev, MW_AF_MAILBOX,
			       t_strdup(mailbox_get_vname(mail->box)));
	mbox_guid = mailward_mailbox_guid(muser, mail->box);
	mw_audit_event_set_str(ev, MW_AF_MAILBOX_GUID, mbox_guid);
	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	mw_audit_event_set_num(ev, MW_AF_UIDVALIDITY, status.uidvalidity);
	mw_audit_event_set_num(ev, MW_AF_UID, mail->uid);
	if (guid == NULL && mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0)
		guid = NULL;
	mw_audit_event_set_str(ev, MW_AF_MSG_GUID, t_strdup(guid));
	if ((msgid = mailward_audit_message_id(muser, mail, msg)) != NULL)
		mw_audit_event_set_str(ev, MW_AF_MESSAGE_ID, t_strdup(msgid));
	if (mail_get_physical_size(mail, &size) == 0)
		mw_audit_event_set_num(ev, MW_AF_SIZE, size);
}

void mailward_audit_event_policy(struct mailward_user *muser,
				 struct mw_audit_event *ev)
{
	mw_audit_event_set_str(ev, MW_AF_POLICY,
			       muser->set.hold ? "hold" :
			       mw_pop3_policy_name(muser->set.pop3_policy));
	mw_audit_event_set_str(ev, MW_AF_POLICY_SOURCE,
			       mw_setting_source_name(muser->set.hold ?
				muser->set.hold_source :
				muser->set.pop3_policy_source));
}

/* An IMAP session's device is known once the client sent its ID (or
   once it is clear it will not): the records before that wait for it, so
   that each names its device (login included). Bounded: beyond that the
   records that waited go out without a device (a device_identified
   record names it for the reads among them once it is known) and the
   device keeps waiting for the ID, so that a late ID is still the
   session's one device. */
#define MAILWARD_AUDIT_DEFERRED_MAX 1000

static void mailward_audit_defer(struct mailward_user *muser,
				 const struct mw_audit_event *ev)
{
	struct mw_audit_event *copy;
	unsigned int i;

	if (muser->audit_deferred_pool == NULL) {
		muser->audit_deferred_pool =
			pool_alloconly_create("mailward audit deferred", 1024);
		p_array_init(&muser->audit_deferred,
			     muser->audit_deferred_pool, 8);
	}
	copy = array_append_space(&muser->audit_deferred);
	*copy = *ev;
	for (i = 0; i < MW_AF_COUNT; i++) {
		copy->str[i] = p_strdup(muser->audit_deferred_pool,
					ev->str[i]);
	}
}

void mailward_audit_deferred_release(struct mailward_user *muser)
{
	struct mw_audit_event *ev;
	pool_t pool = muser->audit_deferred_pool;

	if (pool == NULL)
		return;
	muser->audit_deferred_pool = NULL;
	T_BEGIN {
		array_foreach_modifiable(&muser->audit_deferred, ev) {
			if (muser->device_registered ||
			    muser->device_refused) {
				mw_audit_event_set_str(ev, MW_AF_DEVICE,
					t_strdup(muser->device.id_hex));
				mw_audit_event_set_str(ev, MW_AF_DEVICE_LABEL,
					t_strdup(muser->device.label));
			} else if (muser->device_pending &&
				   strcmp(ev->str[MW_AF_EVENT], "fetch") == 0) {
				/* sent before the device is known: a
				   device_identified record names it later */
				muser->audit_pending_reads++;
			}
			if (muser->audit != NULL)
				mailward_audit_queue(muser->audit, ev);
		}
	} T_END;
	pool_unref(&pool);
}

void mailward_audit_queue_event(struct mailward_user *muser,
				const struct mw_audit_event *ev)
{
	if (muser->audit == NULL)
		return;
	if (muser->device_pending && muser->actor == NULL &&
	    ev->str[MW_AF_DEVICE] == NULL) {
		mailward_audit_defer(muser, ev);
		if (array_count(&muser->audit_deferred) >=
		    MAILWARD_AUDIT_DEFERRED_MAX) {
			/* the device is not resolved here: an ID that
			   comes later would be a second device */
			mailward_audit_deferred_release(muser);
		}

		return;
	}
	mailward_audit_queue(muser->audit, ev);
	/* a long session (RETR of a large mailbox) sends its records in
	   batches instead of letting the queue fill up */
	if (mailward_audit_queued(muser->audit) >= MAILWARD_AUDIT_BATCH_RECORDS)
		(void)mailward_audit_commit(muser, FALSE);
}

bool mailward_audit_queue_required(struct mailward_user *muser,
				   const struct mw_audit_event *ev)
{
	/* an act before the IMAP client's ID: what came before it goes
	   first, as it is (without the device not known yet) */
	mailward_audit_deferred_release(muser);
	/* no automatic batch flush here: the caller flushes before acting */
	return mailward_audit_queue(muser->audit, ev);
}

int mailward_audit_make_durable(struct mailward_user *muser,
				unsigned int count, const char *what)
{
	const char *error, *spool_error;

	i_assert(muser->audit != NULL);
	if (mailward_audit_flush(muser->audit, FALSE, &error) == 0) {
		muser->audit_broken = FALSE;
		return 0;
	}
	muser->audit_broken = TRUE;
	error = t_strdup(error);
	/* the writer away: the spool is durable too */
	if (mailward_audit_spool_now(muser->audit, &spool_error) > 0)
		return 0;
	if (mailward_audit_queued(muser->audit) == 0)
		spool_error = "not queued any more";
	e_error(muser->event, "Audit log unavailable: %u %s record(s) not "
		"written (%s; spool: %s): not marked as audited in the state "
		"store, the next sweep audits them again", count, what, error,
		spool_error);
	return -1;
}

int mailward_audit_commit(struct mailward_user *muser, bool destructive)
{
	const char *error;

	if (muser->audit != NULL && (destructive || muser->set.audit_required)) {
		/* must be durable now: what waits for the device goes out
		   without it */
		mailward_audit_deferred_release(muser);
	}
	if (muser->audit == NULL || mailward_audit_queued(muser->audit) == 0)
		return 0;
	/* what gates an act (an expunge, a read under audit_required) must
	   be durable; the rest only in the log file, synced by the writer
	   within a second (docs/audit-log.md, "Durability") */
	if (mailward_audit_flush(muser->audit, !destructive &&
				 !muser->set.audit_required, &error) == 0) {
		muser->audit_broken = FALSE;
		return 0;
	}
	muser->audit_broken = TRUE;
	/* a named event without a log line of its own: the error below */
	e_debug(mailward_named_event(muser, "mailward_audit_unavailable")->
		add_str("action", destructive ? "expunge_refused" :
			(muser->set.audit_required ? "read_refused" :
			 "queued"))->
		add_str("error", error)->event(),
		"audit log unavailable: %s", error);
	if (destructive) {
		e_error(muser->event, "Audit log unavailable, expunge refused "
			"and mail kept: %s", error);
	} else if (muser->set.audit_required) {
		e_error(muser->event, "Audit log unavailable and "
			"mailward_audit_required=yes: %s", error);
	} else {
		e_error(muser->event, "Audit log unavailable, records stay "
			"queued: %s", error);
	}
	return -1;
}

/* The read gate failed: a read record queued for it must not go out as
   "ok" (the read is refused). It is taken back if still queued, and a
   record of the refusal is queued instead (the writer may still write a
   copy it read before it stopped answering: the refused one follows). */
static void
mailward_audit_read_refused(struct mailward_user *muser,
			    struct mw_audit_event *ev, unsigned int queued,
			    const char *error)
{
	(void)mailward_audit_drop_newest(muser->audit, queued);
	mw_audit_event_set_str(ev, MW_AF_OUTCOME, "refused");
	mw_audit_event_set_str(ev, MW_AF_CAUSE, "audit_unavailable");
	mw_audit_event_set_str(ev, MW_AF_DETAIL, t_strconcat(
		"mailward_audit_required=yes and the audit log unavailable: ",
		error, NULL));
	(void)mailward_audit_queue(muser->audit, ev);
}

int mailward_audit_read_gate(struct mailward_user *muser,
			     struct mw_audit_event *ev)
{
	const char *error;
	unsigned int queued = 0;

	if (muser->audit == NULL || !muser->set.audit_required)
		return 0;
	/* what waits for the device goes first, as at a commit */
	mailward_audit_deferred_release(muser);
	if (ev != NULL && mailward_audit_queue(muser->audit, ev))
		queued = mailward_audit_queued(muser->audit);
	if (mailward_audit_flush_round_trip(muser->audit, &error) == 0) {
		muser->audit_broken = FALSE;
		return 0;
	}
	muser->audit_broken = TRUE;
	error = t_strdup(error);
	e_debug(mailward_named_event(muser, "mailward_audit_unavailable")->
		add_str("action", "read_refused")->
		add_str("error", error)->event(),
		"audit log unavailable: %s", error);
	e_error(muser->event, "Audit log unavailable and "
		"mailward_audit_required=yes, read refused: %s", error);
	if (ev != NULL)
		mailward_audit_read_refused(muser, ev, queued, error);
	return -1;
}

bool mailward_audit_may_read(struct mailward_user *muser)
{
	return muser->audit == NULL || !muser->set.audit_required ||
		(!muser->audit_broken &&
		 /* the session's flushes of a shared client count too */
		 !(muser->audit_shared && muser->actor->audit_broken));
}

static bool mailward_audit_is_session(struct mailward_user *muser)
{
	return strcmp(muser->user->service, "pop3") == 0 ||
		strcmp(muser->user->service, "imap") == 0;
}

void mailward_audit_user_init(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;

	if (muser->set.audit_socket == NULL)
		return;
	muser->audit = mailward_audit_client_init(
		mailward_audit_socket_path(muser->set.audit_socket,
					   user->set->base_dir),
		muser->event);
	if (muser->set.audit_spool != NULL) {
		/* (a relative name is under base_dir, like the socket) */
		mailward_audit_client_set_spool(muser->audit,
			mailward_audit_socket_path(muser->set.audit_spool,
						   user->set->base_dir));
	}
	/* the session's last records (logout) gate nothing */
	mailward_audit_client_set_written_at_deinit(muser->audit,
		!muser->set.audit_required);
}

void mailward_audit_login(struct mailward_user *muser)
{
	struct mw_audit_event ev;

	/* sessions of people's clients; LMTP deliveries and doveadm runs
	   are not logins (their expunges are still audited) */
	if (muser->audit == NULL || !mailward_audit_is_session(muser))
		return;
	/* an IMAP session restored from hibernation is not a new login */
	mailward_audit_event_init(muser, &ev, muser->user->session_restored ?
				  "unhibernate" : "login",
				  muser->pop3_login_delayed ? "refused" : "ok");
	mailward_audit_event_policy(muser, &ev);
	if (muser->pop3_login_delayed) {
		mw_audit_event_set_str(&ev, MW_AF_CAUSE, "login_delay");
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, t_strdup_printf(
			"-ERR [LOGIN-DELAY]: mailward_pop3_login_delay=%us, "
			"next login in %us", muser->set.pop3_login_delay_secs,
			muser->pop3_login_wait));
	}
	if (muser->fail_safe) {
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, t_strconcat(
			"fail-safe: ", muser->fail_safe_reason, NULL));
	}
	mailward_audit_queue_event(muser, &ev);
	if (muser->set.audit_required) {
		/* reads are refused unless the writer is reachable */
		(void)mailward_audit_commit(muser, FALSE);
	}
}

void mailward_audit_user_deinit(struct mailward_user *muser)
{
	struct mw_audit_event ev;

	if (muser->audit == NULL)
		return;
	/* (the device is resolved by now, or never will be) */
	mailward_audit_deferred_release(muser);
	if (mailward_audit_is_session(muser)) {
		/* moving to imap-hibernate is not a logout: the counts are
		   those of this part of the session */
		mailward_audit_event_init(muser, &ev, muser->hibernating ?
					  "hibernate" : "logout", "ok");
		mw_audit_event_set_num(&ev, MW_AF_RETRIEVED,
				       muser->audit_retrieved);
		mw_audit_event_set_num(&ev, MW_AF_DELETED, muser->audit_deleted);
		mw_audit_event_set_num(&ev, MW_AF_EXPUNGED,
				       muser->audit_expunged);
		mw_audit_event_set_num(&ev, MW_AF_SUPPRESSED,
				       muser->audit_suppressed);
		mailward_audit_queue_event(muser, &ev);
	}
	/* deinit flushes what is queued (best effort, failures logged) */
	mailward_audit_client_deinit(&muser->audit);
}

/* the pending IMAP device is known now (or never will be) */
static void mailward_audit_device_resolved(struct mailward_user *muser)
{
	struct mw_audit_event ev;

	mailward_audit_deferred_release(muser);
	if (muser->audit_pending_reads > 0 && muser->device_registered &&
	    muser->audit != NULL) {
		/* earlier read records of the session that had to go out
		   before the device was known name none: this one does,
		   with the same session */
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
}

void mailward_audit_notice(struct mailward_user *muser,
			   enum mailward_notice_kind kind, const char *detail,
			   const struct mw_device_rec *device)
{
	struct mw_audit_event ev;
	const char *outcome = "ok";

	if (kind == MAILWARD_NOTICE_DEVICE_RESOLVED) {
		mailward_audit_device_resolved(muser);
		return;
	}
	if (muser->audit == NULL)
		return;
	if (kind == MAILWARD_NOTICE_STATE_ERROR)
		outcome = "failed";
	else if (kind == MAILWARD_NOTICE_STATE_DISCARDED)
		outcome = "dropped";
	else if (kind == MAILWARD_NOTICE_DEVICE_REFUSED)
		outcome = "refused";

	mailward_audit_event_init(muser, &ev,
				  mailward_notice_event_name(kind), outcome);
	if (device != NULL) {
		mw_audit_event_set_str(&ev, MW_AF_DEVICE, device->id_hex);
		mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL, device->label);
	}
	if (detail != NULL)
		mw_audit_event_set_str(&ev, MW_AF_DETAIL, detail);
	mailward_audit_queue_event(muser, &ev);
}

int mailward_device_forgotten(struct mailward_user *muser,
			      const struct mw_device_rec *rec)
{
	struct mw_audit_event ev;

	e_info(muser->event, "device %s forgotten by doveadm: %s",
	       rec->id_hex, mailward_display(rec->label, 0));
	if (muser->audit == NULL)
		return 0;
	mailward_audit_event_init(muser, &ev, "device_forgotten", "ok");
	mw_audit_event_set_str(&ev, MW_AF_DEVICE, rec->id_hex);
	mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL, rec->label);
	mw_audit_event_set_str(&ev, MW_AF_CAUSE, "admin");
	mailward_audit_queue_event(muser, &ev);
	return mailward_audit_commit(muser, FALSE);
}
