/* mailward POP3 retrieval policy at session end, and due expunges */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "str.h"
#include "time-util.h"
#include "hex-binary.h"
#include "mail-search-build.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage-private.h"
#include "mailward-private.h"
#include "mw-audit.h"
#include "mailward-display.h"

struct expunge_target {
	uint32_t uid;
	const char *guid;
	unsigned char key[MW_MSG_KEY_SIZE];
	time_t due;
	/* sweep: the records of this message are recs[rec_idx..rec_end) */
	unsigned int rec_idx, rec_end;
	/* for the disposed record (which names the message on its own),
	   once the message was found */
	const char *message_id;
	uint32_t uidvalidity;
	uoff_t size;
	bool size_set;
};
ARRAY_DEFINE_TYPE(expunge_target, struct expunge_target);

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

/* Notes what the disposed record says about the message (read before
   the disposition acts on it). */
static void
mailward_target_note_mail(struct expunge_target *target, struct mail *mail)
{
	struct mailbox_status status;
	const char *msgid;
	uoff_t size;

	if (mail_get_first_header(mail, "Message-ID", &msgid) > 0)
		target->message_id = t_strdup(msgid);
	mailbox_get_open_status(mail->box, STATUS_UIDVALIDITY, &status);
	target->uidvalidity = status.uidvalidity;
	if (mail_get_physical_size(mail, &size) == 0) {
		target->size = size;
		target->size_set = TRUE;
	}
}

/* Audits what the disposition did (or could not do) to one message. */
static void
mailward_audit_disposed(struct mailward_user *muser, struct mailbox *box,
			const struct expunge_target *target, const char *cause,
			const char *outcome, const char *dest_name,
			const char *dest_guid, const char *detail)
{
	struct mw_audit_event ev;

	if (muser->audit == NULL)
		return;
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
	mailward_audit_queue_event(muser, &ev);
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

/* Disposes of the targets in box (mailward_pop3_disposition: expunge,
   \Seen, move) in one transaction of mailward's own (a mail whose GUID no
   longer matches is skipped). Returns the number done, or -1 when the
   commit failed (the policy's decision stands: the caller makes them due
   now). A move whose destination cannot be used or written returns 0:
   logged and audited, the messages stay where and as they were. Sets
   done[i]=TRUE in targets done. */
static int
mailward_expunge_targets(struct mailward_user *muser, struct mailbox *box,
			 ARRAY_TYPE(expunge_target) *targets,
			 const char *cause, bool *done)
{
	enum mw_pop3_disposition disposition = muser->set.disposition;
	struct mailbox_transaction_context *t, *dest_t = NULL;
	struct mailward_transaction *mt;
	struct mailbox *dest = NULL;
	struct mail *mail;
	struct expunge_target *target;
	const char *guid, *dest_name = NULL, *dest_guid = NULL, *error = NULL;
	const char *audit_cause = strcmp(cause, "policy") == 0 ?
		"policy" : "delay";
	unsigned int i, count = 0;
	bool need_scan = FALSE, allowed, failed = FALSE;

	if (array_count(targets) == 0 || disposition == MW_DISPOSITION_KEEP)
		return 0;
	/* \Seen removes nothing: only a fail-safe session leaves it out;
	   expunge and move (whose expunge half a hold refuses) need an
	   expunge to be allowed */
	allowed = disposition == MW_DISPOSITION_SEEN ? !muser->fail_safe :
		mailward_user_may_expunge(muser);
	if (!allowed) {
		e_info(mailward_named_event(muser,
			"mailward_expunge_suppressed")->
		       add_int("count", array_count(targets))->
		       add_str("cause", muser->set.hold ? "hold" :
			       "fail_safe")->
		       add_str("expunge_cause", cause)->event(),
		       "%u %s %s(s) in %s suppressed: %s",
		       array_count(targets), cause,
		       disposition == MW_DISPOSITION_EXPUNGE ? "expunge" :
		       mw_pop3_disposition_name(disposition),
		       mailward_display(mailbox_get_vname(box), 0),
		       muser->set.hold ? "legal hold (mailward_hold=yes)" :
		       muser->fail_safe_reason);
		muser->audit_suppressed += array_count(targets);
		if (muser->audit == NULL)
			return 0;
		/* read-only: the records name each message in full */
		t = mailbox_transaction_begin(box, 0,
					      "mailward suppressed expunge");
		mail = mail_alloc(t, MAIL_FETCH_GUID, NULL);
		array_foreach_modifiable(targets, target) {
			struct mw_audit_event ev;

			mailward_audit_event_init(muser, &ev,
						  "expunge_suppressed",
						  "suppressed");
			if (target->uid != 0 &&
			    mail_set_uid(mail, target->uid) &&
			    mailward_mail_has_key(mail, target->key)) {
				mailward_audit_event_mail(muser, &ev, mail,
							  NULL);
			} else {
				mw_audit_event_set_str(&ev, MW_AF_MAILBOX,
					mailbox_get_vname(box));
				mw_audit_event_set_str(&ev, MW_AF_MAILBOX_GUID,
					mailward_mailbox_guid(muser, box));
				mw_audit_event_set_num(&ev, MW_AF_UID,
						       target->uid);
				if (target->guid != NULL) {
					mw_audit_event_set_str(&ev,
						MW_AF_MSG_GUID, target->guid);
				}
			}
			mailward_audit_event_policy(muser, &ev);
			mw_audit_event_set_str(&ev, MW_AF_CAUSE,
					       muser->set.hold ? "hold" :
					       "fail_safe");
			mw_audit_event_set_str(&ev, MW_AF_DETAIL,
				disposition == MW_DISPOSITION_EXPUNGE ?
				t_strdup_printf("%s expunge not carried out",
						cause) :
				t_strdup_printf("%s %s not carried out (nothing "
					"copied, nothing removed)", cause,
					mw_pop3_disposition_name(disposition)));
			if (disposition == MW_DISPOSITION_MOVE) {
				mw_audit_event_set_str(&ev, MW_AF_ACTION, "move");
				mw_audit_event_set_str(&ev, MW_AF_DESTINATION,
					muser->set.disposition_mailbox);
			}
			mailward_audit_queue_event(muser, &ev);
		}
		mail_free(&mail);
		mailbox_transaction_rollback(&t);
		return 0;
	}

	if (disposition == MW_DISPOSITION_MOVE) {
		struct mailbox_metadata md;

		dest_name = muser->set.disposition_mailbox;
		dest = mailward_dispose_dest_open(muser, box, &error);
		if (dest == NULL) {
			e_error(muser->event, "mailward_pop3_disposition="
				"move:%s of user %s: destination mailbox %s "
				"cannot be used: %s (%u message(s) kept in %s)",
				mailward_display(dest_name, 0),
				mailward_display(muser->user->username, 0),
				mailward_display(dest_name, 0), error,
				array_count(targets),
				mailward_display(mailbox_get_vname(box), 0));
			array_foreach_modifiable(targets, target) {
				mailward_audit_disposed(muser, box, target,
					audit_cause, "failed", dest_name, NULL,
					t_strdup_printf("destination cannot be "
						"used: %s; message kept", error));
			}
			/* kept where it is and listed as before (not due:
			   the next retrieval tries again) */
			return 0;
		}
		if (mailbox_get_metadata(dest, MAILBOX_METADATA_GUID, &md) == 0)
			dest_guid = binary_to_hex(md.guid, sizeof(md.guid));
		/* (saving needs an external transaction) */
		dest_t = mailbox_transaction_begin(dest,
			MAILBOX_TRANSACTION_FLAG_EXTERNAL,
			"mailward disposition move");
	}

	t = mailbox_transaction_begin(box, 0, "mailward policy expunge");
	mt = MAILWARD_CONTEXT(t);
	if (mt != NULL) {
		mt->policy_expunge = TRUE;
		mt->cause = audit_cause;
	}
	mail = mail_alloc(t, 0, NULL);
	array_foreach_modifiable(targets, target) {
		i = array_foreach_idx(targets, target);
		if (target->uid == 0 || !mail_set_uid(mail, target->uid) ||
		    mail_get_special(mail, MAIL_FETCH_GUID, &guid) < 0) {
			need_scan = TRUE;
			continue;
		}
		guid = t_strdup(guid);
		if (!mailward_mail_has_key(mail, target->key)) {
			/* UID hint is stale (UIDVALIDITY changed) */
			need_scan = TRUE;
			continue;
		}
		mailward_target_note_mail(target, mail);
		if (mailward_dispose_mail(muser, mail, dest_t) < 0) {
			failed = TRUE;
			break;
		}
		target->guid = t_strdup(guid);
		done[i] = TRUE;
		count++;
	}
	if (need_scan && !failed) {
		/* find the rest by message GUID, past the per-device view */
		struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
		struct mail_search_args *args = mail_search_build_init();
		struct mail_search_context *ctx;
		struct mail *smail;

		mail_search_build_add_all(args);
		if (mbox != NULL)
			mbox->view_bypass = TRUE;
		ctx = mailbox_search_init(t, args, NULL, 0, NULL);
		mail_search_args_unref(&args);
		while (!failed && mailbox_search_next(ctx, &smail)) {
			if (mail_get_special(smail, MAIL_FETCH_GUID, &guid) < 0)
				continue;
			guid = t_strdup(guid);
			array_foreach_modifiable(targets, target) {
				i = array_foreach_idx(targets, target);
				if (!done[i] &&
				    mailward_mail_has_key(smail, target->key)) {
					mailward_target_note_mail(target,
								  smail);
					if (mailward_dispose_mail(muser, smail,
								  dest_t) < 0) {
						failed = TRUE;
						break;
					}
					target->uid = smail->uid;
					target->guid = guid;
					done[i] = TRUE;
					count++;
					break;
				}
			}
		}
		(void)mailbox_search_deinit(&ctx);
		if (mbox != NULL)
			mbox->view_bypass = FALSE;
	}
	mail_free(&mail);
	if (failed) {
		/* a copy into the destination failed: nothing of this
		   transaction happens (messages stay in the source) */
		error = t_strdup(mailbox_get_last_internal_error(dest, NULL));
		mailbox_transaction_rollback(&dest_t);
		mailbox_transaction_rollback(&t);
		mailbox_free(&dest);
		e_error(muser->event, "mailward_pop3_disposition=move:%s of "
			"user %s: cannot write to destination mailbox %s: %s "
			"(messages kept in %s)",
			mailward_display(dest_name, 0),
			mailward_display(muser->user->username, 0),
			mailward_display(dest_name, 0), error,
			mailward_display(mailbox_get_vname(box), 0));
		array_foreach_modifiable(targets, target) {
			mailward_audit_disposed(muser, box, target, audit_cause,
				"failed", dest_name, dest_guid,
				t_strdup_printf("cannot write to destination: "
						"%s; message kept", error));
		}
		for (i = 0; i < array_count(targets); i++)
			done[i] = FALSE;
		return 0;
	}
	if (dest_t != NULL && mt != NULL &&
	    (mt->audit_intent_lost ||
	     (mt->audit_intents > 0 &&
	      mailward_audit_commit(muser, TRUE) < 0))) {
		/* audit before act, and before the copies are saved: else
		   they would stay while the originals are kept */
		mailbox_transaction_rollback(&dest_t);
		mailbox_transaction_rollback(&t);
		mailbox_free(&dest);
		e_error(muser->event, "mailward_pop3_disposition=move:%s of "
			"user %s: audit log unavailable, nothing moved "
			"(messages kept in %s)",
			mailward_display(dest_name, 0),
			mailward_display(muser->user->username, 0),
			mailward_display(mailbox_get_vname(box), 0));
		for (i = 0; i < array_count(targets); i++)
			done[i] = FALSE;
		return -1;
	}
	if (dest_t != NULL &&
	    mailbox_transaction_commit(&dest_t) < 0) {
		error = t_strdup(mailbox_get_last_internal_error(dest, NULL));
		mailbox_transaction_rollback(&t);
		mailbox_free(&dest);
		e_error(muser->event, "mailward_pop3_disposition=move:%s of "
			"user %s: saving into destination mailbox %s failed: "
			"%s (messages kept in %s)",
			mailward_display(dest_name, 0),
			mailward_display(muser->user->username, 0),
			mailward_display(dest_name, 0), error,
			mailward_display(mailbox_get_vname(box), 0));
		array_foreach_modifiable(targets, target) {
			i = array_foreach_idx(targets, target);
			if (!done[i])
				continue;
			mailward_audit_disposed(muser, box, target, audit_cause,
				"failed", dest_name, dest_guid,
				t_strdup_printf("saving into destination "
						"failed: %s; message kept",
						error));
		}
		for (i = 0; i < array_count(targets); i++)
			done[i] = FALSE;
		return 0;
	}
	if (mailbox_transaction_commit(&t) < 0) {
		if (dest != NULL) {
			/* the copies are saved, the originals kept: two
			   copies, never none */
			e_error(muser->event, "Disposition move of %u "
				"message(s) from %s to %s: the copies were "
				"saved but removing the originals failed "
				"(messages kept in both): %s", count,
				mailward_display(mailbox_get_vname(box), 0),
				mailward_display(dest_name, 0),
				mailbox_get_last_internal_error(box, NULL));
		} else {
			e_error(muser->event, "Policy %s in %s failed "
				"(messages kept): %s",
				disposition == MW_DISPOSITION_SEEN ?
				"\\Seen" : "expunge",
				mailward_display(mailbox_get_vname(box), 0),
				mailbox_get_last_internal_error(box, NULL));
		}
		if (dest != NULL)
			mailbox_free(&dest);
		for (i = 0; i < array_count(targets); i++)
			done[i] = FALSE;
		return -1;
	}
	if (mailbox_sync(box, 0) < 0) {
		e_error(muser->event, "Sync of %s after policy expunge "
			"failed: %s",
			mailward_display(mailbox_get_vname(box), 0),
			mailbox_get_last_internal_error(box, NULL));
	}
	if (disposition != MW_DISPOSITION_EXPUNGE) {
		array_foreach_modifiable(targets, target) {
			i = array_foreach_idx(targets, target);
			if (done[i]) {
				mailward_audit_disposed(muser, box, target,
					audit_cause, "ok", dest_name,
					dest_guid, NULL);
			}
		}
		if (count > 0) {
			e_info(muser->event, "%s %u message(s) of %s%s%s "
			       "(mailward_pop3_disposition)",
			       disposition == MW_DISPOSITION_SEEN ?
			       "marked \\Seen" : "moved", count,
			       mailward_display(mailbox_get_vname(box), 0),
			       dest_name != NULL ? " to " : "",
			       dest_name != NULL ?
			       mailward_display(dest_name, 0) : "");
		}
	}
	if (dest != NULL)
		mailbox_free(&dest);
	if (count > 0) {
		e_debug(mailward_named_event(muser, "mailward_expunge")->
			add_int("count", count)->add_str("cause", cause)->
			add_str("disposition", disposition ==
				MW_DISPOSITION_EXPUNGE ? "expunge" :
				mw_pop3_disposition_name(disposition))->
			event(), "%s: %u message(s) of %s disposed of",
			cause, count,
			mailward_display(mailbox_get_vname(box), 0));
	}
	return count;
}

struct sweep_rec {
	uint64_t key;
	uint16_t dev_no;
	uint32_t uid;
	time_t due;
	bool has;	/* retrieved or deleted on that device */
	bool disposed;	/* MW_MSG_DUE_DISPOSED: nothing more to do */
};

struct sweep_ctx {
	time_t now;
	ARRAY(struct sweep_rec) recs;
};

static int sweep_iter_cb(const struct mw_msg_rec *rec, void *context)
{
	struct sweep_ctx *ctx = context;
	struct sweep_rec *srec;

	srec = array_append_space(&ctx->recs);
	memcpy(&srec->key, rec->key, sizeof(srec->key));
	srec->dev_no = rec->dev_no;
	srec->uid = rec->uid;
	srec->disposed = rec->expunge_due == MW_MSG_DUE_DISPOSED;
	srec->due = srec->disposed ? 0 : rec->expunge_due;
	srec->has = rec->retrieved != 0 || rec->deleted != 0;
	return 0;
}

static int sweep_rec_cmp(const struct sweep_rec *a, const struct sweep_rec *b)
{
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (int)a->dev_no - (int)b->dev_no;
}

ARRAY_DEFINE_TYPE(mw_dev_no, uint16_t);

struct active_devices_ctx {
	struct mailward_user *muser;
	time_t now;
	ARRAY_TYPE(mw_dev_no) devices;
	/* the session's device exists (same id and number) */
	bool self_found;
};

/* The devices that count for expunge-after-all-devices: not idle past
   mailward_device_expire, and IMAP devices only when IMAP body fetches
   count as retrieval. */
static int active_devices_cb(const struct mw_device_rec *rec, void *context)
{
	struct active_devices_ctx *ctx = context;
	struct mailward_user *muser = ctx->muser;

	if (muser->device_registered && rec->dev_no == muser->device.dev_no &&
	    memcmp(rec->id, muser->device.id, sizeof(rec->id)) == 0)
		ctx->self_found = TRUE;
	if (muser->set.device_expire_secs > 0 &&
	    rec->last_seen + (time_t)muser->set.device_expire_secs < ctx->now)
		return 0;
	if (!muser->set.imap_counts_as_retrieval &&
	    strcmp(rec->protocol, "pop3") != 0)
		return 0;
	array_push_back(&ctx->devices, &rec->dev_no);
	return 0;
}

/* TRUE while expunge-after-all-devices must not expunge because the state
   store replaced a damaged one: devices seen before the reset are unknown
   until they log in again, and they count until mailward_device_expire
   after the reset (forever without expiry). Logged once per session. */
static bool
all_devices_suspended(struct mailward_user *muser, time_t now)
{
	time_t reset = mw_store_get_reset_time(muser->store);
	time_t expire = (time_t)muser->set.device_expire_secs;

	if (reset == 0 || (expire > 0 && now > reset + expire))
		return FALSE;
	if (!muser->all_devices_suspended_logged) {
		muser->all_devices_suspended_logged = TRUE;
		e_info(muser->event, "expunge-after-all-devices keeps every "
		       "message %s: the state store was reset at %s (damaged "
		       "store moved aside) and devices seen before it may "
		       "not have logged in since",
		       expire > 0 ? t_strdup_printf("until %s",
				t_strfgmtime("%Y-%m-%dT%H:%M:%SZ",
					     reset + expire)) :
		       "(mailward_device_expire is off)",
		       t_strfgmtime("%Y-%m-%dT%H:%M:%SZ", reset));
	}
	return TRUE;
}

/* TRUE if every active device has the message (recs[0..count-1] are the
   records of one message, sorted by dev_no). */
static bool
sweep_all_devices_have(const ARRAY_TYPE(mw_dev_no) *devices,
		       const struct sweep_rec *recs, unsigned int count)
{
	uint16_t dev_no;
	unsigned int i;

	if (array_count(devices) == 0)
		return FALSE;
	array_foreach_elem(devices, dev_no) {
		for (i = 0; i < count; i++) {
			if (recs[i].dev_no == dev_no && recs[i].has)
				break;
		}
		if (i == count)
			return FALSE;
	}
	return TRUE;
}

int mailward_expunge_due(struct mailward_user *muser, struct mailbox *box,
			 time_t now,
			 void (*print_cb)(void *ctx, uint32_t uid,
					  const char *guid, time_t due),
			 void *context)
{
	struct sweep_ctx ctx;
	struct active_devices_ctx actx;
	ARRAY_TYPE(expunge_target) targets;
	struct expunge_target *target;
	struct mw_batch *batch;
	const struct sweep_rec *recs;
	const char *mbox_guid, *error;
	unsigned int i, j, count;
	bool *done, all_devices, all_devices_known;
	pool_t pool;
	int ret;

	if (muser->store == NULL ||
	    muser->set.disposition == MW_DISPOSITION_KEEP)
		return 0;
	mbox_guid = mailward_mailbox_guid(muser, box);
	if (mbox_guid == NULL)
		return -1;
	pool = pool_alloconly_create("mailward sweep", 1024);
	i_zero(&ctx);
	ctx.now = now;
	p_array_init(&ctx.recs, pool, 64);
	p_array_init(&targets, pool, 8);
	if (mw_store_msg_iter(muser->store, -1, mbox_guid, sweep_iter_cb,
			      &ctx, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		pool_unref(&pool);
		return -1;
	}
	all_devices = muser->set.pop3_policy ==
		MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES;
	/* after a reset the known devices may not be all devices: only
	   due (delayed) expunges recorded since can be carried out */
	all_devices_known = !all_devices || array_count(&ctx.recs) == 0 ||
		!all_devices_suspended(muser, now);
	i_zero(&actx);
	actx.muser = muser;
	actx.now = now;
	p_array_init(&actx.devices, pool, 8);
	if (all_devices && array_count(&ctx.recs) > 0 &&
	    mw_store_device_iter(muser->store, active_devices_cb, &actx,
				 &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		all_devices = FALSE;
	}
	batch = mailward_state_batch(muser);

	array_sort(&ctx.recs, sweep_rec_cmp);
	recs = array_get(&ctx.recs, &count);
	for (i = 0; i < count; i = j) {
		time_t due = 0;
		uint32_t uid = 0;
		bool disposed = FALSE;

		for (j = i; j < count && recs[j].key == recs[i].key; j++) {
			if (recs[j].due != 0 && (due == 0 || recs[j].due < due))
				due = recs[j].due;
			if (recs[j].uid != 0)
				uid = recs[j].uid;
			if (recs[j].disposed)
				disposed = TRUE;
		}
		if (disposed) {
			/* marked \Seen already (disposition seen) */
			continue;
		}
		if (due == 0 && all_devices && all_devices_known &&
		    sweep_all_devices_have(&actx.devices, recs + i, j - i)) {
			if (muser->set.expunge_delay_secs > 0) {
				/* all devices have it: the delay starts */
				if (batch != NULL) {
					mw_batch_msg_update_key(batch,
						recs[i].dev_no, mbox_guid,
						(const void *)&recs[i].key, uid,
						MW_MSG_DUE, now +
						muser->set.expunge_delay_secs);
				}
				continue;
			}
			due = now;
		}
		if (due == 0 || due > now)
			continue;
		target = array_append_space(&targets);
		target->uid = uid;
		target->due = due;
		target->rec_idx = i;
		target->rec_end = j;
		memcpy(target->key, &recs[i].key, sizeof(target->key));
	}
	if (array_count(&targets) == 0) {
		pool_unref(&pool);
		return 0;
	}
	done = p_new(pool, bool, array_count(&targets));
	ret = mailward_expunge_targets(muser, box, &targets,
				       all_devices ? "policy" :
				       "delayed", done);
	array_foreach_modifiable(&targets, target) {
		i = array_foreach_idx(&targets, target);
		if (!done[i])
			continue;
		if (batch != NULL &&
		    muser->set.disposition == MW_DISPOSITION_SEEN) {
			/* it stays: its records stay (this device's view),
			   with nothing more due */
			for (j = target->rec_idx; j < target->rec_end; j++) {
				mw_batch_msg_update_key(batch, recs[j].dev_no,
					mbox_guid, (const void *)&recs[j].key,
					target->uid, MW_MSG_DUE,
					MW_MSG_DUE_DISPOSED);
			}
		} else if (batch != NULL)
			mw_batch_msg_prune_key(batch, mbox_guid, target->key);
		if (print_cb != NULL) {
			print_cb(context, target->uid, target->guid != NULL ?
				 target->guid :
				 binary_to_hex(target->key, sizeof(target->key)),
				 target->due);
		}
	}
	if (ret > 0) {
		e_info(muser->event, "%s %d message(s) in %s whose "
		       "delay has passed or that every device has",
		       muser->set.disposition == MW_DISPOSITION_SEEN ?
		       "marked \\Seen" :
		       (muser->set.disposition == MW_DISPOSITION_MOVE ?
			"moved" : "expunged"), ret,
		       mailward_display(mailbox_get_vname(box), 0));
	}
	pool_unref(&pool);
	return ret;
}

/* TRUE if every other active device has retrieved or deleted the
   message (expunge-after-all-devices) */
static bool
all_other_devices_have(struct mailward_user *muser,
		       struct active_devices_ctx *ctx, const char *mbox_guid,
		       const char *guid, bool *error_r)
{
	struct mw_msg_rec rec;
	const char *error;
	uint16_t dev_no;
	int ret;

	array_foreach_elem(&ctx->devices, dev_no) {
		if (dev_no == muser->device.dev_no)
			continue;
		ret = mw_store_msg_get(muser->store, dev_no, mbox_guid, guid,
				       &rec, &error);
		if (ret < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
			*error_r = TRUE;
			return FALSE;
		}
		if (ret == 0 || (rec.retrieved == 0 && rec.deleted == 0))
			return FALSE;
	}
	return TRUE;
}

void mailward_pop3_session_end(struct mailward_user *muser,
			       struct mailbox *box, bool quit_seen,
			       bool update_ok)
{
	struct mailward_pop3_session *s = muser->pop3;
	struct mw_batch *batch = mailward_state_batch(muser);
	struct hash_iterate_context *iter;
	struct mailward_pop3_msg *msg;
	void *key;
	ARRAY_TYPE(expunge_target) targets;
	struct expunge_target *target;
	struct active_devices_ctx adctx;
	enum mw_pop3_policy policy = muser->set.pop3_policy;
	const char *mbox_guid = NULL, *error;
	unsigned int i, kept = 0, due_count = 0, client_expunged = 0;
	unsigned int disposed = 0;
	int expunged = 0, due_expunged = 0;
	bool *done, store_error = FALSE, all_devices_blocked = FALSE;
	bool expunge_failed = FALSE;
	time_t now = ioloop_time;
	pool_t pool;

	pool = pool_alloconly_create("mailward session end", 1024);
	p_array_init(&targets, pool, 16);
	i_zero(&adctx);
	adctx.muser = muser;
	adctx.now = now;
	p_array_init(&adctx.devices, pool, 8);

	if (s != NULL && s->box == box && batch != NULL &&
	    muser->device_registered)
		mbox_guid = mailward_mailbox_guid(muser, box);
	if (mbox_guid != NULL &&
	    policy == MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES &&
	    quit_seen && update_ok) {
		if (mw_store_device_iter(muser->store, active_devices_cb,
					 &adctx, &error) < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
			store_error = TRUE;
		} else if (all_devices_suspended(muser, now)) {
			all_devices_blocked = TRUE;	/* no all-devices expunge */
		} else if (!adctx.self_found) {
			/* another session evicted or expired this device,
			   or doveadm forgot it: what it retrieved is no
			   longer state, so it expunges nothing (and its
			   number may not be read as another device's) */
			mailward_user_device_removed(muser,
				"its retrievals do not count for "
				"expunge-after-all-devices, messages kept");
			all_devices_blocked = TRUE;
		}
	}

	if (s != NULL && quit_seen && update_ok) {
		iter = hash_table_iterate_init(s->msgs);
		while (hash_table_iterate(iter, s->msgs, &key, &msg)) {
			bool wanted = FALSE;

			if (msg->client_expunged) {
				client_expunged++;
				continue;
			}
			if (mbox_guid != NULL && msg->retrieved)
				mw_batch_msg_update(batch, muser->device.dev_no,
						    mbox_guid, msg->guid,
						    msg->uid, MW_MSG_RETRIEVED,
						    now);
			if (mbox_guid != NULL && msg->deleted)
				mw_batch_msg_update(batch, muser->device.dev_no,
						    mbox_guid, msg->guid,
						    msg->uid, MW_MSG_DELETED,
						    now);
			switch (policy) {
			case MW_POP3_POLICY_CLIENT:
			case MW_POP3_POLICY_LEAVE_ON_SERVER:
				/* DELE that Dovecot did not expunge: seen and
				   move dispose of it (a DELE in a fail-safe
				   session is kept) */
				wanted = msg->deleted &&
					(muser->set.disposition ==
					 MW_DISPOSITION_SEEN ||
					 muser->set.disposition ==
					 MW_DISPOSITION_MOVE);
				break;
			case MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL:
				wanted = msg->retrieved || msg->deleted;
				break;
			case MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES:
				wanted = (msg->retrieved || msg->deleted) &&
					mbox_guid != NULL && !store_error &&
					!all_devices_blocked &&
					all_other_devices_have(
						muser, &adctx, mbox_guid,
						msg->guid, &store_error);
				break;
			}
			if (muser->set.disposition == MW_DISPOSITION_KEEP)
				wanted = FALSE;
			if (!wanted) {
				if (msg->deleted || msg->retrieved)
					kept++;
				continue;
			}
			if (muser->set.expunge_delay_secs > 0 &&
			    mbox_guid == NULL) {
				/* the due time cannot be recorded (no state
				   store): keep it rather than expunge early */
				kept++;
				continue;
			}
			if (muser->set.expunge_delay_secs > 0) {
				struct mw_msg_rec rec;
				time_t due = now + muser->set.expunge_delay_secs;

				if (mw_store_msg_get(muser->store,
						     muser->device.dev_no,
						     mbox_guid, msg->guid,
						     &rec, &error) > 0 &&
				    rec.expunge_due != 0 &&
				    rec.expunge_due < due)
					due = rec.expunge_due;
				if (due == MW_MSG_DUE_DISPOSED) {
					/* \Seen already, nothing more due */
					kept++;
					continue;
				}
				mw_batch_msg_update(batch, muser->device.dev_no,
						    mbox_guid, msg->guid,
						    msg->uid, MW_MSG_DUE, due);
				due_count++;
				continue;
			}
			target = array_append_space(&targets);
			target->uid = msg->uid;
			/* (Dovecot's GUID for logs; the key is mailward's
			   identity of the message) */
			target->guid = t_strcut(msg->guid, '/');
			mw_msg_key(msg->guid, target->key);
		}
		hash_table_iterate_deinit(&iter);
	}

	if (array_count(&targets) > 0) {
		done = p_new(pool, bool, array_count(&targets));
		expunged = mailward_expunge_targets(muser, box, &targets,
						    "policy", done);
		if (expunged < 0) {
			expunge_failed = TRUE;
			expunged = 0;
		}
		if (muser->set.disposition != MW_DISPOSITION_EXPUNGE)
			expunged = 0;	/* (counted as disposed) */
		array_foreach_modifiable(&targets, target) {
			i = array_foreach_idx(&targets, target);
			if (!done[i] && expunge_failed && mbox_guid != NULL) {
				/* the policy's decision stands (e.g. the audit
				   writer is away): due now, carried out by the
				   next session's sweep or doveadm mailward
				   expunge, shown as pending meanwhile */
				mw_batch_msg_update_key(batch,
					muser->device.dev_no, mbox_guid,
					target->key, target->uid,
					MW_MSG_DUE, now);
				due_count++;
			} else if (!done[i])
				kept++;
			else if (mbox_guid != NULL &&
				 muser->set.disposition ==
				 MW_DISPOSITION_SEEN) {
				/* it stays, hidden from this device */
				mw_batch_msg_update_key(batch,
					muser->device.dev_no, mbox_guid,
					target->key, target->uid, MW_MSG_DUE,
					MW_MSG_DUE_DISPOSED);
				disposed++;
			} else if (mbox_guid != NULL) {
				mw_batch_msg_prune_key(batch, mbox_guid,
						       target->key);
				if (muser->set.disposition ==
				    MW_DISPOSITION_MOVE)
					disposed++;
			} else if (muser->set.disposition !=
				   MW_DISPOSITION_EXPUNGE)
				disposed++;
		}
	}
	if (mbox_guid != NULL && quit_seen &&
	    mailward_user_needs_sweep(muser)) {
		due_expunged = mailward_expunge_due(muser, box, now,
						    NULL, NULL);
		if (due_expunged < 0)
			due_expunged = 0;
	}
	if (batch != NULL && muser->device_registered) {
		mw_batch_device_touch(batch, muser->device.id_hex, now, 1,
				      quit_seen && s != NULL ?
				      s->retr_count : 0,
				      quit_seen && s != NULL ?
				      s->dele_count : 0);
	}
	MAILWARD_FAULT_POINT(muser, "before-state-write");
	(void)mailward_state_flush(muser);
	/* the session's remaining audit records (logout included) are
	   flushed once, at user deinit right after this */

	e_info(mailward_named_event(muser, "mailward_session_finished")->
	       add_str("protocol", "pop3")->
	       add_str("end", quit_seen ? "quit" : "dropped")->
	       add_str("policy", mw_pop3_policy_name(policy))->
	       add_str("fail_safe", muser->fail_safe ? "yes" : "no")->
	       add_str("hold", muser->set.hold ? "yes" : "no")->
	       add_int("retr", s == NULL ? 0 : s->retr_count)->
	       add_int("top", s == NULL ? 0 : s->top_count)->
	       add_int("dele", s == NULL ? 0 : s->dele_count)->
	       add_int("expunged", client_expunged + (unsigned int)expunged)->
	       add_int("kept", kept)->add_int("delayed", due_count)->
	       add_int("due_expunged", due_expunged)->
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
	       s == NULL ? 0 : s->dele_count,
	       client_expunged + (unsigned int)expunged, kept, due_count,
	       due_expunged, s == NULL ? 0 : s->hidden_count,
	       mw_pop3_disposition_name(muser->set.disposition), disposed);
	pool_unref(&pool);
}
