#ifndef MAILWARD_POLICY_PRIVATE_H
#define MAILWARD_POLICY_PRIVATE_H

/* Between the storage plugin's retrieval-policy files; not for the
   protocol or doveadm plugins. The decisions themselves are the core's
   (mw-retrieval.h); these files gather facts and carry decisions out:
   mailward-identity.c  a message's identity in mailward's records
   mailward-view.c      the POP3 session's record of each message and its
                        per-device view (the session object: mailward-pop3.c)
   mailward-expunge.c   expunge vfuncs: refusals, audit intents, commit,
                        pruning of expunged messages' records
   mailward-hold.c      the legal hold mark; which expunges are refused
   mailward-dispose.c   carrying out a disposition (expunge, seen, move)
   mailward-policy.c    the POP3 session end (QUIT or drop)
   mailward-sweep.c     due expunges and the devices that count
   mailward-storage.c   hooks: installs the vfuncs, reads, deleted mailboxes
   Calls go one way: policy -> sweep -> dispose -> expunge -> view ->
   identity, and storage (the hooks) -> expunge, view, identity. */

#include "mailward-private.h"
#include "mw-retrieval.h"

/* --- mailward-hold.c (also mailward-private.h) --- */
/* TRUE if an expunge requested by a client or a tool in muser's mail is
   refused, and the requester told so (hold, the hold mark unreadable,
   imap_expunge=deny in IMAP, the owner's settings unknown). */
bool mailward_expunge_refused(struct mailward_user *muser);
/* Why (a static string for the client and the log), when
   mailward_expunge_refused(). */
const char *mailward_refuse_reason(struct mailward_user *muser);
/* TRUE if Dovecot's own POP3 DELE may go ahead: client policy, not held
   (nor the hold mark unreadable), not fail-safe; otherwise the message
   stays on the server. */
bool mailward_pop3_dele_goes_ahead(struct mailward_user *muser);

/* --- mailward-identity.c --- */
/* TRUE if the mail's storage can give two different messages one GUID
   (mbox: a hash of some headers), so mailward_mail_identity() reads the
   message. */
bool mailward_guid_is_shared(struct mail *mail);

/* --- mailward-view.c --- */
/* The record of mail in s (created on first use), or NULL when the mail's
   identity cannot be read. Allocated from s->pool. */
struct mailward_pop3_msg *
mailward_pop3_msg_get(struct mailward_pop3_session *s, struct mail *mail);
/* mw_msg_key() of msg's identity, computed once per session (issue 14:
   a SHA-256 each); valid as long as msg. */
const unsigned char *mailward_pop3_msg_key(struct mailward_pop3_msg *msg);
/* --- mailward-expunge.c --- */
#define MAILWARD_MAIL_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_mail_module)
extern MODULE_CONTEXT_DEFINE(mailward_mail_module, &mail_module_register);

/* Begins a transaction in box whose expunges are mailward's own: decided
   by policy already, so no refusal applies; each expunge's intent is
   audited with cause ("policy" or "delay") and made durable before the
   commit, and the expunged messages' records are pruned into the
   session's batch when it commits. Its searches see past the per-device
   view. Commit or roll back as any transaction. */
struct mailbox_transaction_context *
mailward_policy_transaction_begin(struct mailbox *box, const char *cause);
/* TRUE if t was begun by mailward_policy_transaction_begin(). */
bool mailward_transaction_is_policy(struct mailbox_transaction_context *t);
/* Makes the audit intents queued by t's expunges durable now (before a
   move's copies are saved). Returns 0, or -1 when an intent was lost or
   the writer failed (t must not be committed). */
int mailward_transaction_audit_intents(struct mailward_user *muser,
				       struct mailbox_transaction_context *t);
/* TRUE if QUIT is carrying out this device's DELEs, the mail was DELE'd
   and mailward keeps it on the server (recorded and audited here). */
bool mailward_pop3_dele_kept(struct mailward_user *muser, struct mail *mail);
/* Storage vfuncs installed by mailward-storage.c. */
void mailward_mail_expunge(struct mail *_mail);
void mailward_mail_update_keywords(struct mail *_mail,
				   enum modify_type modify_type,
				   struct mail_keywords *keywords);
struct mailbox_transaction_context *
mailward_transaction_begin(struct mailbox *box,
			   enum mailbox_transaction_flags flags,
			   const char *reason);
int mailward_transaction_commit(struct mailbox_transaction_context *t,
				struct mail_transaction_commit_changes *changes_r);
void mailward_transaction_rollback(struct mailbox_transaction_context *t);
int mailward_copy(struct mail_save_context *ctx, struct mail *mail);
#if DOVECOT_PREREQ(2, 4, 0)
int mailward_save_begin(struct mail_save_context *ctx, struct istream *input);
#endif

/* --- mailward-dispose.c --- */
/* A message policy decided to dispose of. */
struct mailward_target {
	uint32_t uid;		/* UID hint (0 = unknown) */
	const char *guid;	/* Dovecot's GUID for logs, once known */
	/* mailward_mail_identity() of the message if known (a POP3
	   session's own messages), else NULL: found by key */
	const char *identity;
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
	/* the state store's suppression mark of it as read (MW_MSG_NOTED_*,
	   0: none; POP3 session end: this device's record) */
	uint32_t mark;
	/* its suppression was audited already with the cause that applies
	   now (the store's mark): a suppression writes no record for it
	   again */
	bool noted;
	/* set by mailward_dispose_targets(): a move whose destination could
	   not be used, audited as failed now (the record durable) or before
	   (mark MW_MSG_NOTED_MOVE_FAILED: not audited again while it fails) */
	bool dest_failed;
};
ARRAY_DEFINE_TYPE(mailward_target, struct mailward_target);

/* The cause (MW_MSG_NOTED_HOLD or _FAIL_SAFE) a disposition of muser is
   suppressed with now, or 0 when it may be carried out
   (mw_dispose_allowed()). */
uint32_t mailward_dispose_suppress_cause(struct mailward_user *muser);
/* The mark (MW_MSG_NOTED_*, 0: none) the caller records for target after
   mailward_dispose_targets() ran with suppress_cause
   (mailward_dispose_suppress_cause()) and FALSE when its records are left
   as they are (suppressed, not audited: the audit is off). */
bool mailward_target_mark(const struct mailward_target *target,
			  uint32_t suppress_cause, uint32_t *mark_r);

/* Disposes of the targets in box (mailward_pop3_disposition: expunge,
   \Seen, move) in one policy transaction (a mail whose key no longer
   matches is looked for by a search past the view; one not found is
   skipped). cause is "policy", else the audit cause is "delay". Under a
   hold or fail-safe (mw_dispose_allowed()) nothing is done: logged once
   for all, and each target not noted is audited as suppressed and set
   noted once its record is durable (mailward_audit_make_durable(): not
   when the writer is away and there is no usable spool, nor with the
   audit off); the caller marks the noted ones in the state store.
   Returns the number done, or -1 when the commit or the audit failed
   (the policy's decision stands: the caller makes them due now). A move whose destination cannot be used or written
   returns 0: logged and audited, the messages stay. Sets done[i]=TRUE
   for the targets done (done has one entry per target). */
int mailward_dispose_targets(struct mailward_user *muser, struct mailbox *box,
			     ARRAY_TYPE(mailward_target) *targets,
			     const char *cause, bool *done);

/* --- mailward-sweep.c --- */
/* The devices that count for expunge-after-all-devices
   (mw_all_devices_counts()). */
struct mailward_dev_id {
	unsigned char id[MW_DEVICE_ID_SIZE];
};
struct mailward_devices {
	ARRAY(uint16_t) dev_nos;
	/* the id of each device of dev_nos, in the same order */
	ARRAY(struct mailward_dev_id) ids;
	/* the session's device exists (same id and number) */
	bool self_found;
};
/* Reads the user's devices that count at now into devs (dev_nos
   allocated from pool). Returns 0, or -1 on a store error (logged, the
   session made fail-safe). */
int mailward_devices_read(struct mailward_user *muser, time_t now,
			  pool_t pool, struct mailward_devices *devs);
/* TRUE if rec (read in another transaction than devs) is the record of
   the device of devs that had its number (mw_msg_rec.dev_id): FALSE for a
   number not in devs, or held by another device at the read (the device
   was removed and its number handed out again). */
bool mailward_devices_owns(const struct mailward_devices *devs,
			   const struct mw_msg_rec *rec);

/* mw_all_devices_suspended() for muser at now, logged once per session
   when TRUE. */
bool mailward_all_devices_suspended(struct mailward_user *muser, time_t now);

#endif
