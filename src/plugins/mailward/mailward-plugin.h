#ifndef MAILWARD_PLUGIN_H
#define MAILWARD_PLUGIN_H

/* The storage plugin's interface to mailward's pop3, imap and doveadm
   plugins, as Dovecot's quota.h is imap_quota's. struct mailward_user is
   opaque here: its fields belong to the storage plugin's own files
   (mailward-private.h). A protocol plugin reads and changes the session
   only through these functions. Every muser argument is a context
   returned by mailward_user_get() and is valid for the mail_user's
   lifetime; strings returned are valid as long (unless told otherwise). */

#include "mail-user.h"

struct mail;
struct mailbox;
struct mw_store;
struct mw_device_rec;

struct mailward_user;

/* Why a read is refused while mailward_audit_required=yes and the audit
   writer is away */
#define MAILWARD_AUDIT_UNAVAILABLE_READ \
	"Audit log unavailable, try again later"

/* The session's mailward context, or NULL when mailward is not active for
   user (the storage plugin not loaded for it, or an autocreated user). */
struct mailward_user *mailward_user_get(struct mail_user *user);
/* The session's event: category "mailward", log prefix "mailward: ". */
struct event *mailward_user_event(struct mailward_user *muser);
/* Why the session is fail-safe (policy expunges nothing), or NULL when it
   is not. */
const char *mailward_user_fail_safe_reason(struct mailward_user *muser);
/* TRUE once after a POP3 RETR/TOP or IMAP FETCH was refused by mailward
   (audit required, writer away), and clears that: the protocol plugin
   calls it when it rewrites Dovecot's reply to that read. */
bool mailward_user_read_refused_take(struct mailward_user *muser);

/* --- POP3 (pop3_mailward) --- */

/* TRUE if the message at sequence seq was DELE'd in this session, asked
   while QUIT is updating the mailbox; context as given below. */
typedef bool mailward_pop3_dele_at_quit_t(void *context, uint32_t seq);

/* A POP3 client started: dele_at_quit(context, seq) answers for it until
   mailward_pop3_client_end(). deleted_flag is Dovecot's pop3_deleted_flag
   when pop3_delete_type=flag (the keyword Dovecot adds at QUIT instead of
   expunging; copied), NULL otherwise. */
void mailward_pop3_client_start(struct mailward_user *muser,
				mailward_pop3_dele_at_quit_t *dele_at_quit,
				void *context, const char *deleted_flag);
/* The POP3 client (and the context given above) goes away. */
void mailward_pop3_client_end(struct mailward_user *muser);
/* Appends the RFC 2449 capability lines mailward adds to the post-login
   CAPA ("EXPIRE <value>\r\n", "LOGIN-DELAY <secs>\r\n"), if any, to capa. */
void mailward_pop3_capability(struct mailward_user *muser, string_t *capa);
/* TRUE if this login is refused for RFC 2449 LOGIN-DELAY (the device had
   a session less than mailward_pop3_login_delay ago; nothing of the
   session is recorded then): delay_secs_r is the setting, wait_secs_r the
   seconds until the device may log in again. */
bool mailward_pop3_login_delayed(struct mailward_user *muser,
				 unsigned int *delay_secs_r,
				 unsigned int *wait_secs_r);
/* Why DELE'd messages stay on the server after this QUIT although Dovecot
   says they were deleted ("legal hold", "server in fail-safe mode"), or
   NULL when Dovecot's reply is true. */
const char *mailward_pop3_quit_kept_reason(struct mailward_user *muser);
/* Ends the POP3 session: records retrievals and deletions (only when
   quit_seen), applies the policy, carries out due expunges, logs a
   summary line. box is the session's INBOX, still open; update_ok is
   FALSE when QUIT's update of the mailbox failed. */
void mailward_pop3_session_end(struct mailward_user *muser,
			       struct mailbox *box, bool quit_seen,
			       bool update_ok);

/* --- IMAP (imap_mailward) --- */

/* An RFC 2971 ID command's arguments as the client sent them
   ("(" "name" "value" ... ")" or NIL): identifies the session's device
   (an explicit mailward_device wins). Arguments not understood leave the
   device as identified. */
void mailward_imap_id(struct mailward_user *muser, const char *args);
/* A session restored from hibernation: args are the ID arguments that
   identified its device before (see mailward_imap_id_identified()); the
   same device is looked up again, replacing what the login knew. */
void mailward_imap_id_restored(struct mailward_user *muser,
			       const char *args);
/* TRUE if the session's device is identified by the client's ID. */
bool mailward_imap_id_identified(struct mailward_user *muser);
/* Why the session must not move to imap-hibernate, or NULL if it may.
   The restored process logs in again and learns only the ID of a
   registered device, so a session keeps out of hibernation while
   records of it wait in this process for the client's ID, and when it
   is fail-safe (any reason), its device was refused (device_max,
   device_protect, device_new_per_day) or not registered for a store
   error, or removed during the session: restored, it would be less
   fail-safe (another device, e.g. the network device) than it is.
   Returns a static string. */
const char *mailward_imap_hibernate_blocker(struct mailward_user *muser);

/* A command that syncs box (SELECT, FETCH, NOOP, IDLE, ...) ended:
   records the device's sync summary of the session user's own mailbox. */
void mailward_imap_sync_summary(struct mailward_user *muser,
				struct mailbox *box);
/* An IMAP command ended (its tagged reply sent): writes the state
   changes if due (at most every IMAP_STATE_FLUSH_SECS, or when many
   wait) and makes the command's audit records durable. */
void mailward_imap_command_end(struct mailward_user *muser);
/* The session moves to imap-hibernate: its end is not a logout. */
void mailward_imap_hibernating(struct mailward_user *muser);
/* A FETCH gave the session's device the whole of mail (mw-fetch.h: the
   whole message's section, at once or in ranges covering it), after
   Dovecot sent it: records the retrieval for the device (state, `fetch`
   audit record) under the settings of the mail's owner. Nothing for a
   mailbox mailward does not handle or outside the imap service. */
void mailward_imap_retrieved(struct mail *mail);

/* --- doveadm (doveadm-mailward, through mailward-doveadm-api.h) --- */

/* The session's state store, NULL when it is off or failed (see
   mailward_user_fail_safe_reason()). Only for the mw_store_*() calls of
   the storage plugin's own table: never unref'd by the caller. */
struct mw_store *mailward_user_store(struct mailward_user *muser);
/* doveadm forgot the device rec of the user: logs it and audits
   device_forgotten (cause admin). Returns 0, or -1 when the audit record
   could not be made durable (logged). */
int mailward_device_forgotten(struct mailward_user *muser,
			      const struct mw_device_rec *rec);

#endif
