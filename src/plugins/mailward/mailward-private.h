#ifndef MAILWARD_PRIVATE_H
#define MAILWARD_PRIVATE_H

/* The storage plugin's own structs and internal functions, used only by
   its files (src/plugins/mailward/mailward-*.c), as Dovecot's
   quota-private.h. The pop3, imap and doveadm plugins use
   mailward-plugin.h, where struct mailward_user is opaque. Everything
   here is valid for the mail_user's lifetime. */

#include "array.h"
#include "hash.h"
#include "module-context.h"
#include "mail-user.h"
#include "guid.h"
#include "mail-storage-private.h"
#include "mw-policy.h"
#include "mw-device.h"
#include "mw-store.h"
#include "mailward-plugin.h"

#define MAILWARD_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_user_module)
#define MAILWARD_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_storage_module)

/* What a POP3 session did with one message. */
struct mailward_pop3_msg {
	uint32_t uid;
	const char *guid;	/* mailward_mail_identity() */
	/* mw_msg_key() of guid once key_set (mailward_pop3_msg_key()) */
	unsigned char key[MW_MSG_KEY_SIZE];
	/* its Message-ID for the audit records once message_id_read
	   (NULL: it has none): read once per session (issue 14) */
	const char *message_id;
	bool retrieved:1;	/* RETR */
	bool deleted:1;		/* DELE, seen at QUIT */
	bool client_expunged:1;	/* Dovecot expunged it (client policy) */
	bool key_set:1;
	bool message_id_read:1;
};

/* What the per-device view decided for one message. */
struct mailward_view_decision {
	uint32_t uid;
	bool hidden;
};

struct mailward_pop3_session {
	pool_t pool;
	struct mailbox *box;
	/* uid -> struct mailward_pop3_msg */
	HASH_TABLE(void *, struct mailward_pop3_msg *) msgs;
	unsigned int retr_count, top_count, dele_count;
	/* per-device view: sorted message keys hidden from this device */
	ARRAY(uint64_t) hidden;
	/* their first MW_MSG_KEY_GUID_PART bytes, sorted: an mbox message is
	   read to tell its identity only when its GUID part is here */
	ARRAY(uint32_t) hidden_guid_parts;
	bool hidden_loaded:1;
	unsigned int hidden_count;
	/* the view's decision per sequence (when it hides anything):
	   decided[seq - 1] is valid while its uid is the mail's (0: not
	   decided yet); decided_count: the mailbox's messages at the load */
	struct mailward_view_decision *decided;
	unsigned int decided_count;
};

/* The POP3 session object of muser for box (mailward-pop3.c), created on
   first use; NULL when muser's session object is another mailbox's. */
struct mailward_pop3_session *
mailward_pop3_session_get(struct mailward_user *muser, struct mailbox *box);
/* The record of mail in muser's POP3 session object if the session has
   one for it (mail in the session's mailbox, retrieved or deleted),
   else NULL. Creates nothing. */
struct mailward_pop3_msg *
mailward_pop3_msg_find(struct mailward_user *muser, struct mail *mail);
/* Frees the session's POP3 session object, at the end of the session. */
void mailward_pop3_session_free(struct mailward_user *muser);

/* A record made while the IMAP session's device is still pending: a body
   fetch (msg_guid != NULL) or a sync summary. */
struct mailward_pending_rec {
	char mbox_guid[MW_MAILBOX_GUID_HEX_SIZE];
	const char *msg_guid;
	uint32_t uid;
	uint32_t uidvalidity, highest_uid;
	uint64_t highest_modseq;
	time_t time;
};

struct mailward_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;

	/* child of user->event: category "mailward", prefix "mailward: " */
	struct event *event;
	struct mw_settings set;
#if DOVECOT_PREREQ(2, 4, 0)
	/* Dovecot 2.4: the settings struct set's strings point into
	   (mailward-settings.h); NULL if it could not be read */
	const struct mailward_settings *dset;
#endif

	/* Policy must not expunge anything in this session (invalid
	   setting, state store error, audit failure). Never cleared once
	   set. */
	bool fail_safe;
	/* first reason for fail_safe, for logs and doveadm */
	const char *fail_safe_reason;

	/* per-user LMDB state; NULL when off or failed */
	struct mw_store *store;
	/* another owner's context (actor set): the owner's store, opened
	   to read its legal hold mark (mailward-hold.c); NULL until then;
	   unreferenced when the context ends */
	struct mw_store *hold_store;
	/* the last read of the legal hold mark failed: expunges are
	   refused and policy keeps the mail until a read succeeds */
	bool hold_unreadable;
	const char *state_dir;
	unsigned char device_key[MW_DEVICE_KEY_SIZE];
	bool device_key_loaded;

	/* the device of this session (device_registered when stored) */
	struct mw_device_rec device;
	const char *device_source;	/* explicit, imap-id, network */
	bool device_registered;
	/* the session's device (muser->device: id and label) is known but
	   was refused (device_max/protect, device_new_per_day): not
	   registered, named in the session's audit records */
	bool device_refused;
	/* the store was found damaged and moved aside (audited) */
	bool state_reset_seen;
	/* the INBOX marker of the state store was checked this session */
	bool inbox_mark_checked;
	/* expunge-after-all-devices held back after a reset (logged) */
	bool all_devices_suspended_logged;
	/* the device was evicted, expired or forgotten during the session:
	   its records are discarded, its retrievals never expunge */
	bool device_removed;
	/* IMAP: not identified yet; an ID command may still come. What the
	   session does meanwhile waits in pending_recs (one per message
	   or mailbox, bounded) and is recorded for the device the session
	   turns out to be, whenever that is decided. */
	bool device_pending;
	ARRAY(struct mailward_pending_rec) pending_recs;
	/* "<mailbox GUID>/<message identity>" -> index in pending_recs
	   + 1, for the fetches among them */
	HASH_TABLE(char *, void *) pending_msgs;
	unsigned int pending_msg_count;

	/* messages fetched while pending beyond the bound: not recorded
	   (they count as not retrieved by the device: kept) */
	unsigned int pending_dropped;

	/* audit records of reads queued while the device was pending */
	unsigned int audit_pending_reads;
	/* the remote field of this session's audit records, once formatted
	   (mailward_audit_remote(); from the user's pool) */
	const char *audit_remote;
	/* bytes of the POP3 session's Message-IDs kept (bounded:
	   mailward_audit_message_id()) */
	size_t audit_msgids_size;
	/* IMAP hibernation: this process hands the session to
	   imap-hibernate (not a logout) / took it over (not a login) */
	bool hibernating;

	/* state changes of the current command / session, committed in one
	   LMDB write transaction by mailward_state_flush() */
	struct mw_batch *batch;
	/* the batch holds message records (not only IMAP sync summaries,
	   which wait for the next such flush or the end of the session) */
	bool state_dirty;
	time_t last_state_flush;
	unsigned int imap_body_fetches;

	struct mailward_pop3_session *pop3;
	/* set by the POP3 plugin: while QUIT is updating the mailbox, TRUE
	   if the message at seq was DELE'd in this session */
	bool (*pop3_dele_at_quit)(void *context, uint32_t seq);
	void *pop3_dele_context;
	/* a POP3 RETR/TOP or IMAP FETCH was just refused (audit required,
	   writer away); the protocol plugin clears it when it replies */
	bool read_refused;
	/* an IMAP command's first body read passed the audit read gate
	   (mailward_audit_required=yes); cleared at the command's end */
	bool imap_read_gated;
	/* the hold's effect on Dovecot's autoexpunge was logged */
	bool autoexpunge_hold_logged;
	/* POP3 with pop3_delete_type=flag: the keyword Dovecot adds at QUIT
	   instead of expunging a DELE'd message; NULL otherwise */
	const char *pop3_deleted_flag;
	/* POP3: the device logged in sooner than mailward_pop3_login_delay
	   after its last session (the store's last_seen): the POP3 plugin
	   refuses the login with -ERR [LOGIN-DELAY], and nothing of the
	   session is recorded (the device is looked up, not touched) */
	bool pop3_login_delayed;
	/* ... seconds until the device may log in again */
	unsigned int pop3_login_wait;

	/* Settings context of mail that is not the session user's own: the
	   owner of a shared namespace, or a public namespace (no owner).
	   actor is the session acting on it; NULL for a session's own
	   context. Such a context has no state store and no device. */
	struct mailward_user *actor;
	/* owner's username; NULL for a public namespace */
	const char *owner_name;
	/* the owner's settings could not be determined: nothing of its
	   mail is expunged here (the reason, for logs and replies) */
	const char *settings_unknown;
	/* the audit client is the actor's (same socket): not freed here */
	bool audit_shared;
	/* a session's contexts for other owners' mail (freed with it) */
	ARRAY(struct mailward_user *) others;
	/* a session's context for public namespaces, once needed */
	struct mailward_user *public_ctx;
	/* ... and for shared namespace mailboxes with no owner user */
	struct mailward_user *unknown_ctx;

	/* audit writer client; NULL when audit is off */
	struct mailward_audit_client *audit;
	/* the last flush failed */
	bool audit_broken;
	unsigned int audit_retrieved, audit_deleted;
	unsigned int audit_expunged, audit_suppressed;
	/* records of an IMAP session queued while its device waits for
	   the client's ID (device_pending): they get the device once it is
	   known (pool-allocated copies) */
	pool_t audit_deferred_pool;
	ARRAY(struct mw_audit_event) audit_deferred;
};

struct mailward_mailbox {
	union mailbox_module_context module_ctx;
	bool pop3_session:1;
	/* allocated by Dovecot's autoexpunge while the user is under hold:
	   autoexpunge is told it does not exist */
	bool autoexpunge_held:1;
	/* inside mailward_delete_box() */
	bool deleting:1;
	/* why an expunge was refused while the mailbox was being deleted
	   (Dovecot 2.4 goes on after the refused commit and loses its
	   error): set again as the delete's error */
	const char *delete_refused;
	/* whose settings decide for this mailbox's mail (the session's own,
	   a shared namespace owner's or the public namespace context) */
	struct mailward_user *muser;
	/* the mailbox GUID in hex, once looked up ("" = not yet) */
	char guid_hex[GUID_128_SIZE * 2 + 1];
};

extern MODULE_CONTEXT_DEFINE(mailward_user_module, &mail_user_module_register);
extern MODULE_CONTEXT_DEFINE(mailward_storage_module,
			     &mail_storage_module_register);
extern struct event_category event_category_mailward;

/* A named event of the session (a passthrough child of muser->event, so
   category "mailward" and the log prefix apply), for Dovecot's metric {}
   and event exporters; names and fields are listed in docs/metrics.md.
   Use: e_info(mailward_named_event(muser, "mailward_...")->
   add_int("n", n)->event(), "..."). */
#define mailward_named_event(muser, name) \
	event_create_passthrough((muser)->event)->set_name(name)

/* The settings context that decides for box's mail: the session user's
   own for its private namespaces, the owner's for a shared namespace, the
   public context (global settings) for a public namespace. NULL when
   mailward is not active for the session. */
struct mailward_user *mailward_mailbox_user(struct mailbox *box);
/* Called for an autocreated mail_user (the owner of a shared namespace,
   a raw user) in its mail_user_created hook. Once the user's creator (the
   acting session) is set, the owner gets its settings context, read from
   the owner's own userdb fields and the global settings: here on Dovecot
   2.3; on 2.4, which sets creator after this hook, in
   mailward_owner_namespaces_created(). */
void mailward_owner_user_created(struct mail_user *owner);
/* mail_namespaces_created hook: finishes the settings context of a shared
   namespace owner whose creator is set now (Dovecot 2.4). */
void mailward_owner_namespaces_created(struct mail_namespace *namespaces);
/* The settings context for public namespace mailboxes of a session:
   global (plugin {}) settings, without the session user's userdb
   fields. Created on first use. */
struct mailward_user *mailward_public_user(struct mailward_user *session);
/* The context for mailboxes of a shared namespace with no owner user:
   settings unknown, so expunges and deletes there are refused. */
struct mailward_user *mailward_unknown_owner_user(struct mailward_user *session);
/* Ends the contexts a session holds for other owners' mail (closes their
   audit clients, or stops using the session's). Called at session
   deinit, before its namespaces are freed. */
void mailward_others_deinit(struct mailward_user *session);
/* The acting party to name in audit records of muser's mail, or NULL
   when it is muser's own session: "<username>" of another session,
   "doveadm:<login>" for doveadm (login of the real uid running it),
   "doveadm:<login>/<username>" for doveadm acting through a shared
   namespace. */
const char *mailward_user_actor(struct mailward_user *muser);
/* Frees the rest of them once the session's namespaces are gone. */
void mailward_others_free(struct mailward_user *session);

/* The value of the userdb field name in fields (a mail_user's
   userdb_fields; "plugin/" prefixes ignored): "" for a field without a
   value, NULL if there is none. */
const char *mailward_userdb_field(const char *const *fields,
				  const char *name);
/* Reads the settings of a session's own context (userdb fields first,
   then the configuration), once at mail_user_created; logs invalid ones
   and makes the session fail-safe for them. */
void mailward_user_settings_init(struct mailward_user *muser);
/* Reads muser's settings through lookup (see mw_settings_read()); logs
   invalid ones and makes the context fail-safe for them. */
void mailward_user_read_settings(struct mailward_user *muser,
				 mw_setting_lookup_t *lookup, void *context);

/* What the settings, state and device layers report for the audit log.
   They never call the audit layer themselves (calls go one way: user and
   settings -> state and device -> audit -> expunge -> storage vfuncs ->
   hooks): mailward_notice() hands each report to the handler that
   mailward_plugin_init() installs (mailward_audit_notice()). */
enum mailward_notice_kind {
	/* the session became fail-safe; detail: why */
	MAILWARD_NOTICE_STATE_ERROR,
	/* the state store was moved aside or lost its data; detail: what */
	MAILWARD_NOTICE_STATE_RESET,
	/* state records of the session were dropped; detail: which */
	MAILWARD_NOTICE_STATE_DISCARDED,
	/* a device of the user was registered, evicted, expired (or changed
	   otherwise); device: that device (not the session's) */
	MAILWARD_NOTICE_DEVICE_REGISTERED,
	MAILWARD_NOTICE_DEVICE_EVICTED,
	MAILWARD_NOTICE_DEVICE_EXPIRED,
	MAILWARD_NOTICE_DEVICE_CHANGED,
	/* the pending IMAP device is known now (or never will be): what
	   waited for it goes out */
	MAILWARD_NOTICE_DEVICE_RESOLVED,
	/* the session's new device was not registered (device table full
	   of protected devices, or too many new devices today): the
	   session is fail-safe; device: the refused one (dev_no 0);
	   detail: why */
	MAILWARD_NOTICE_DEVICE_REFUSED,
};
typedef void mailward_notice_handler_t(struct mailward_user *muser,
				       enum mailward_notice_kind kind,
				       const char *detail,
				       const struct mw_device_rec *device);
/* Installs the handler of notices (NULL: none), at plugin init. */
void mailward_notice_handler_set(mailward_notice_handler_t *handler);
/* Reports kind to the handler; detail and device may be NULL (see the
   kinds) and need to live only during the call. */
void mailward_notice(struct mailward_user *muser,
		     enum mailward_notice_kind kind, const char *detail,
		     const struct mw_device_rec *device);
/* The audit event (and metric event, with "mailward_" before it) of
   kind: "state_error", "device_registered", ... */
const char *mailward_notice_event_name(enum mailward_notice_kind kind);

/* Returns the raw value of mailward setting name for this user (userdb
   field first, then the configuration), or NULL if unset. Valid for the
   user's lifetime. Mailward's own settings all go through this. */
const char *mailward_user_setting(struct mailward_user *muser,
				  const char *name);
/* Puts the session into fail-safe mode (policy expunges nothing), logs
   the reason as an error and reports it (MAILWARD_NOTICE_STATE_ERROR). */
void mailward_user_set_fail_safe(struct mailward_user *muser,
				 const char *reason);
/* Same without logging or reporting it (the caller does, more
   precisely). */
void mailward_user_mark_fail_safe(struct mailward_user *muser,
				  const char *reason);


/* --- the legal hold mark (mailward-hold.c) --- */
/* At the start of a session or doveadm command (settings fresh from the
   userdb), with the state store open: records the hold mark when the
   settings say hold and it is absent, clears it when they say no hold
   and it is present (unless it was recorded since this session started:
   its settings may be older than the mark). One read transaction; one
   write transaction only when the mark changes. Errors are logged. */
void mailward_hold_mark_sync(struct mailward_user *muser);
/* Before an expunge decision: when muser's settings say no hold,
   re-reads the hold mark of the store of the user whose mail it is
   (the session's own, or a shared namespace owner's) and, when it is
   set, applies the hold for the rest of the context's life
   (set.hold, hold_source MW_SOURCE_STORE_MARK; one info line naming the
   user). Returns 0, or -1 when the mark could not be read: logged as an
   error naming what failed, hold_unreadable set (expunges refused)
   until a read succeeds. */
int mailward_hold_recheck(struct mailward_user *muser);
/* mailward_hold_recheck() once per *checked (a transaction's flag; NULL:
   every call). */
void mailward_hold_recheck_once(struct mailward_user *muser, bool *checked);

/* Opens the session's state store and device key (mailward-state.c).
   Returns FALSE when the session has no state store (logged, fail-safe
   where that is an error). */
bool mailward_state_open(struct mailward_user *muser);
/* Identifies the session's device at login (mailward-device.c): explicit
   field, pre-login IMAP ID or network; an IMAP session without either
   waits for the client's ID (device_pending). */
void mailward_device_login(struct mailward_user *muser);
/* Registers the session's device from what is known now (explicit field
   or network) if that was deferred to wait for an IMAP ID, and records
   what waited for it. */
void mailward_user_device_resolve(struct mailward_user *muser);
/* While the IMAP device is pending: keeps a body fetch (msg_guid set) or
   sync summary (msg_guid NULL) of mbox_guid for the device the session
   turns out to be and returns TRUE (a message fetched again keeps its
   first time). Returns FALSE when no device is pending (the caller
   records it for muser->device itself). The device is never resolved
   here: beyond MAILWARD_PENDING_MAX waiting messages, further ones are
   not recorded (returns TRUE; counted in pending_dropped and logged when
   the device is known), so that a late ID still names the session's
   only device. */

bool mailward_user_pending_add(struct mailward_user *muser,
			       const char *mbox_guid, const char *msg_guid,
			       uint32_t uid, uint32_t uidvalidity,
			       uint32_t highest_uid, uint64_t highest_modseq);
/* The batch of the current command, begun on first use; NULL when the
   state store is off. */
struct mw_batch *mailward_state_batch(struct mailward_user *muser);
/* Commits pending state changes in one write transaction. Returns 0 or
   -1 (logged, session made fail-safe). */
int mailward_state_flush(struct mailward_user *muser);
/* If the store handle moved a damaged store aside (at open or during the
   session): audits state_reset and makes the session fail-safe (logged as
   an error naming both paths), once per session. */
void mailward_state_reset_check(struct mailward_user *muser);
/* The session's device no longer exists in the store (another session or
   doveadm removed it): logs a warning naming the device and what, and
   audits a state_discarded event (later calls of the session log at info
   level only). */
void mailward_user_device_removed(struct mailward_user *muser,
				  const char *what);

/* TRUE if expunges can become due or complete for this user at session
   end (a delay or expunge-after-all-devices): otherwise the sweep over the
   user's records is skipped (doveadm mailward expunge sweeps anyway). */
bool mailward_user_needs_sweep(struct mailward_user *muser);

/* The user's INBOX namespace, or NULL when there is none (namespaces not
   created because of a configuration or storage error). Unlike
   mail_namespace_find_inbox() it never asserts. */
struct mail_namespace *mailward_user_inbox_ns(struct mail_user *user);

/* The storage error of a refusal because the audit writer is away: a
   temporary condition, told as such by each protocol (IMAP
   [UNAVAILABLE], POP3 [SYS/TEMP]). */
enum mail_error mailward_error_unavailable(struct mailward_user *muser);

/* Hex GUID of a mailbox, or NULL on error (logged). */
const char *mailward_mailbox_guid(struct mailward_user *muser,
				  struct mailbox *box);
/* Removes the records and summaries of mailboxes the user no longer has
   (removed outside Dovecot); a mailbox whose GUID was regenerated keeps
   its records. When any mailbox cannot be looked at, nothing is removed.
   Returns the number of mailboxes removed, or -1 (logged). */
int mailward_prune_missing_mailboxes(struct mailward_user *muser);

/* Expunges messages of box whose expunge time has come. Adds prunes to
   the current batch. Returns the number expunged, -1 on error.
   print_cb (may be NULL) is called for each expunged message. */
int mailward_expunge_due(struct mailward_user *muser, struct mailbox *box,
			 time_t now,
			 void (*print_cb)(void *ctx, uint32_t uid,
					  const char *guid, time_t due),
			 void *ctx);
/* mailward's identity of a message in its records: Dovecot's GUID, or
   for mbox, whose GUID is a hash of some headers that two different
   messages can share, "GUID/" plus a hash of the whole message (read for
   it). Returns NULL on error. Allocated from the data stack. */
const char *mailward_mail_identity(struct mail *mail);
/* TRUE if mw_msg_key() of the mail's identity is key; reads an mbox
   message only when the GUID part of key matches. */
bool mailward_mail_has_key(struct mail *mail,
			   const unsigned char key[MW_MSG_KEY_SIZE]);
/* The POP3 per-device view: TRUE if the mail is hidden from this
   device's listing. */
bool mailward_pop3_is_hidden(struct mailward_user *muser, struct mail *mail);
/* TRUE if mailward_pop3_is_hidden() is FALSE for every mail of box
   without asking it: box is not the POP3 session's mailbox, or its view
   is loaded and hides nothing. FALSE when unknown (not loaded yet). Inline:
   the listing asks for every message. */
static inline bool
mailward_pop3_view_hides_none(const struct mailward_user *muser,
			      const struct mailbox *box)
{
	const struct mailward_pop3_session *s = muser->pop3;

	return s != NULL && (s->box != box ||
			     (s->hidden_loaded && array_count(&s->hidden) == 0));
}
/* TRUE if the POP3 client (pop3-mailward) carries out a DELE of mail at
   its QUIT, i.e. after QUIT and only for a DELE'd message (FALSE outside
   a POP3 session); mailward_pop3_dele_kept() decides whether it is kept. */
static inline bool
mailward_pop3_dele_at_quit(const struct mailward_user *muser,
			   const struct mail *mail)
{
	return muser->pop3_dele_at_quit != NULL &&
		muser->pop3_dele_at_quit(muser->pop3_dele_context, mail->seq);
}

/* --- METADATA (mailward-metadata.c) --- */
/* Registers / unregisters the read-only server METADATA entry
   /private/vendor/vendor.mailward/devices: the session user's own devices
   as one JSON value, computed from the state store when read. */
void mailward_metadata_init(void);
void mailward_metadata_deinit(void);

/* --- audit (mailward-audit-events.c) --- */
struct mw_audit_event;
/* Common fields: service, session, event, outcome, user, device, remote. */
void mailward_audit_event_init(struct mailward_user *muser,
			       struct mw_audit_event *ev, const char *event,
			       const char *outcome);
/* The mail's Message-ID header for its audit records
   (mail_get_first_header()), NULL if it has none or it cannot be read.
   msg (NULL: none) is the POP3 session's record of the mail: it keeps
   what its first record found (RETR; up to 1 MB of them a session), so
   its DELE, expunge and disposed records at QUIT do not make Dovecot open
   and parse the message again (issue 14). Valid until the mail is freed
   or set to another message. */
const char *mailward_audit_message_id(struct mailward_user *muser,
				      struct mail *mail,
				      struct mailward_pop3_msg *msg);
/* Message fields: mailbox, GUIDs, UIDVALIDITY, UID, Message-ID (msg as
   for mailward_audit_message_id()), size. */
void mailward_audit_event_mail(struct mailward_user *muser,
			       struct mw_audit_event *ev, struct mail *mail,
			       const char *guid, struct mailward_pop3_msg *msg);
/* Effective policy and its source. */
void mailward_audit_event_policy(struct mailward_user *muser,
				 struct mw_audit_event *ev);
/* Queues an event (no I/O); no-op when audit is off. */
void mailward_audit_queue_event(struct mailward_user *muser,
				const struct mw_audit_event *ev);
/* Queues a record an act depends on (audit client required). Returns
   FALSE if it could not be queued (client queue full): the act must not
   happen. */
bool mailward_audit_queue_required(struct mailward_user *muser,
				   const struct mw_audit_event *ev);
/* Makes the records queued so far durable now: acknowledged as durable by
   the writer, or (the writer away) written to the spool. For records on
   whose strength state is written (a mark that a message was audited,
   so that it is not audited again): count records of what (a record kind
   for the log) queued with mailward_audit_queue_required() since. Returns
   0 when they are durable; -1 when not (logged as an error naming count
   and what): they stay queued (the session end tries once more) and the
   caller must not record them as audited. The audit must be on. */
int mailward_audit_make_durable(struct mailward_user *muser,
				unsigned int count, const char *what);
/* Makes queued records durable. Returns 0, or -1 when the writer failed
   (logged; destructive=TRUE: the caller must not expunge). */
int mailward_audit_commit(struct mailward_user *muser, bool destructive);
/* Queues the records that waited for the session's device
   (device_pending), with the device when it is registered by now. */
void mailward_audit_deferred_release(struct mailward_user *muser);
/* The notice handler (mailward_notice_handler_set()): audits what the
   settings, state and device layers report. */
void mailward_audit_notice(struct mailward_user *muser,
			   enum mailward_notice_kind kind, const char *detail,
			   const struct mw_device_rec *device);
/* Under mailward_audit_required=yes, before a read is let through: queues
   ev (its record, e.g. "retr"; NULL for none) and makes it and every
   record queued before it durable with a writer round trip (one even
   when nothing is queued). Returns 0 when they are durable (or audit is
   off or not required), -1 when the writer is away, too slow or failed:
   logged, the session's reads are refused (mailward_audit_may_read()),
   and ev is taken back and queued again with outcome "refused" (cause
   audit_unavailable). ev's strings are on the caller's data stack. */
int mailward_audit_read_gate(struct mailward_user *muser,
			     struct mw_audit_event *ev);
/* FALSE when mailward_audit_required=yes and the writer is unreachable. */
bool mailward_audit_may_read(struct mailward_user *muser);
void mailward_audit_user_init(struct mailward_user *muser);
void mailward_audit_login(struct mailward_user *muser);
void mailward_audit_user_deinit(struct mailward_user *muser);

/* Test builds (--enable-fault-injection): kills the process with SIGKILL
   when the setting mailward_fault_inject names this point. */
#ifdef MAILWARD_FAULT_INJECTION
void mailward_fault_point(struct mailward_user *muser, const char *point);
#  define MAILWARD_FAULT_POINT(muser, point) \
	mailward_fault_point(muser, point)
#else
#  define MAILWARD_FAULT_POINT(muser, point) do { } while (0)
#endif

void mailward_storage_hooks_mailbox_allocated(struct mailbox *box);
void mailward_storage_hooks_mail_allocated(struct mail *mail);

/* Notes the real uid of the process (the administrator running doveadm)
   before Dovecot switches to a mail user's uid; frees what it keeps. */
void mailward_actor_init(void);
void mailward_actor_deinit(void);

void mailward_plugin_init(struct module *module);
void mailward_plugin_deinit(void);

#endif
