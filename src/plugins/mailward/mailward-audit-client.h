#ifndef MAILWARD_AUDIT_CLIENT_H
#define MAILWARD_AUDIT_CLIENT_H

/* Mail-process client of the audit writer service (mailward-auditd):
   queues event bodies in memory and sends them on flush, over the writer
   protocol of docs/audit-log.md ("Writer protocol"). No keys here.

   I/O is blocking with a deadline (poll()), and happens only inside
   mailward_audit_flush() and mailward_audit_client_deinit(); queueing
   never does I/O. The connection is opened at the first flush and kept
   for later ones. Never crashes or exits the process: every failure is
   a return value with a message naming the socket path. */

#include "mw-audit.h"

struct event;
struct mailward_audit_client;

/* at most this many records (or bytes of bodies) wait in the queue;
   beyond that the queue goes to the spool (if set) or new records are
   dropped, counted, and reported to the log by a "dropped" record at the
   next flush */
#define MAILWARD_AUDIT_QUEUE_MAX_RECORDS 10000
#define MAILWARD_AUDIT_QUEUE_MAX_BYTES (8 * 1024 * 1024)
#define MAILWARD_AUDIT_DEFAULT_TIMEOUT_MSECS 10000

/* Resolves the mailward_audit_socket setting: an absolute path is used as
   is, a relative one is taken under base_dir (like Dovecot's own sockets:
   "mailward-audit" -> "<base_dir>/mailward-audit"). Empty or NULL gives
   the default "<base_dir>/mailward-audit". Result is on the data stack. */
const char *mailward_audit_socket_path(const char *setting,
				       const char *base_dir);

/* Creates a client for the writer listening on socket_path (copied). Log
   messages go to a child of event (prefix "audit: "). Does no I/O. */
struct mailward_audit_client *
mailward_audit_client_init(const char *socket_path, struct event *event);
/* Flushes what is queued (best effort; a failure is logged with the
   number of records lost), closes the connection and frees the client.
   *client is set to NULL. */
void mailward_audit_client_deinit(struct mailward_audit_client **client);

/* Records still queued at deinit (the writer away) are written to a new
   file in spool_dir (copied; NULL or "" = no spool: they are lost, with
   an error) for the writer to add later, with the time each was queued.
   The directory is the writer's (docs/audit-service.md, "Spool"). */
void mailward_audit_client_set_spool(struct mailward_audit_client *client,
				     const char *spool_dir);
/* Writes every queued record to a new spool file now (the writer away,
   for a caller that must know them durable before it goes on: see
   mailward_audit_flush()), logged as a warning naming the file. Returns 1
   when they are in the spool (the queue is empty now), 0 when nothing
   was queued, -1 with *error_r (on the data stack) when there is no
   spool or it could not be written: the records stay queued. */
int mailward_audit_spool_now(struct mailward_audit_client *client,
			     const char **error_r);
/* Sets the deadline of one flush (connect, send, wait for the ack);
   default MAILWARD_AUDIT_DEFAULT_TIMEOUT_MSECS. */
void mailward_audit_client_set_timeout(struct mailward_audit_client *client,
				       unsigned int msecs);

/* Builds ev's body now (mw_audit_body_build(); ev's strings may be freed
   afterwards) and queues it. No I/O. An event that does not build (a bug)
   or does not fit in the queue is logged as an error and dropped; drops
   because of a full queue are reported by a "dropped" record at the next
   successful flush. Returns TRUE if the record was queued (or went to
   the spool with the full queue), FALSE if it was dropped. */
bool mailward_audit_queue(struct mailward_audit_client *client,
			  const struct mw_audit_event *ev);
/* Records queued and not yet acknowledged as durable. */
unsigned int mailward_audit_queued(const struct mailward_audit_client *client);

/* The flush at mailward_audit_client_deinit() asks only for "written"
   (mailward_audit_flush()'s written) if written is TRUE; default FALSE
   (durable). */
void mailward_audit_client_set_written_at_deinit(
	struct mailward_audit_client *client, bool written);

/* Sends every queued record and waits for the writer's acknowledgement
   (bounded by the timeout). Returns 0 when all of them are durable (or
   written, below) in the audit log (also when nothing was queued). Returns -1 with *error_r
   (valid until the next call with this client) when the writer is
   unreachable, timed out, failed, or rejected a record:
   - unreachable / timed out / failed: the records stay queued and are
     sent again by the next flush (at least once: after a lost
     acknowledgement a record can appear twice in the log);
   - rejected (the writer's body check failed; a bug or tampering): the
     rejected records are logged and dropped, the others are durable.
   A connection the writer closed since the last flush is reopened once.
   After a timeout, flushes fail at once for the next 5 seconds instead
   of waiting again.
   written = FALSE: "durable" is waited for (written and fdatasync()ed).
   written = TRUE: only "written" (an F with a '~' id, mw-audit-proto.h):
   the records are in the log file, where a crash of the writer process
   does not lose them, and the writer syncs them within 1 s or with the
   next durable flush; no fdatasync() is waited for. Same returns and
   retries either way. TRUE only for records that gate no act: never
   before an expunge (audit before act) or under audit_required. */
int mailward_audit_flush(struct mailward_audit_client *client, bool written,
			 const char **error_r);
/* A durable mailward_audit_flush() that asks the writer even when
   nothing is queued (an F line alone, answered once every record sent
   before it is durable): a gate that the writer is there and answering
   now (mailward_audit_required=yes, before a read). Same returns. */
int mailward_audit_flush_round_trip(struct mailward_audit_client *client,
				    const char **error_r);
/* Takes back the newest queued record if count records are queued (the
   caller's count just after it queued that record: nothing was queued
   since and none was sent or spooled); frees it. Returns TRUE if it was
   removed, FALSE (nothing changed) otherwise. A copy of it that the
   writer already read from the socket (a flush that timed out) may still
   be written by it. */
bool mailward_audit_drop_newest(struct mailward_audit_client *client,
				unsigned int count);

#endif
