#ifndef MAILWARD_AUDIT_CLIENT_PRIVATE_H
#define MAILWARD_AUDIT_CLIENT_PRIVATE_H

/* Between the audit client's files only (mailward-audit-client.c: the
   queue and the writer's socket; mailward-audit-spool.c: the spool files
   of the records the writer could not take). Calls go one way: the
   client calls the spool. */

#include "array.h"
#include "mailward-audit-client.h"
#include "mw-util.h"
#include "mw-json.h"
#include "mw-audit-proto.h"

#include <sys/time.h>

/* a queued record is "<time>\t<body>": the time the mail process queued
   it (the "time" format, 27 bytes) and a TAB, so that a record kept in
   the spool says when it happened */
#define AUDIT_REC_BODY(rec) ((rec) + MW_AUDIT_TIME_LEN + 1)
#if MW_AUDIT_TIME_LEN != MW_UTC_STAMP_LEN
#  error "the spool's time prefix is the audit time format"
#endif

struct mailward_audit_client {
	char *socket_path;
	/* where records go that the writer could not take by the end of the
	   session; NULL = none */
	char *spool_dir;
	struct event *event;
	unsigned int timeout_msecs;
	/* the flush at deinit asks only for "written" (F with a '~' id) */
	bool written_at_deinit;

	/* queued records ("<time>\t<body>", i_malloc'd), oldest first;
	   queue_bytes is the sum of their strlen() */
	ARRAY(char *) queue;
	size_t queue_bytes;
	/* records dropped because the queue was full; reported with the
	   service/session/user of the first one */
	unsigned int dropped;
	char *dropped_service, *dropped_session, *dropped_user;

	int fd;
	/* reply bytes received and not yet parsed */
	string_t *inbuf;
	bool version_sent, version_received;
	/* E lines sent on the current connection */
	uint64_t conn_e_lines;
	unsigned int flush_id;

	struct timeval backoff_until;
	string_t *error;
	/* the "time" of the records, formatted once per second */
	struct mw_utc_stamp_cache stamp_cache;
	/* where a record's body is built (kept: no allocation a record) */
	struct mw_json_buf body;
};

/* Frees the oldest count queued records (count <= the number queued)
   and removes them from the queue, keeping queue_bytes. */
static inline void
mailward_audit_free_bodies(struct mailward_audit_client *client,
			   unsigned int count)
{
	char **bodies;
	unsigned int i, total;

	bodies = array_get_modifiable(&client->queue, &total);
	i_assert(count <= total);
	for (i = 0; i < count; i++) {
		client->queue_bytes -= strlen(bodies[i]);
		i_free(bodies[i]);
	}
	array_delete(&client->queue, 0, count);
}

/* --- mailward-audit-spool.c --- */
/* Session end (mailward_audit_client_deinit()) with n > 0 records still
   queued that the writer did not take (flush_error: why, for the log):
   writes them to a new file of client->spool_dir and logs a warning
   naming it, or, with no spool or when the spool file fails, logs an
   error that n records are lost. The queue is left as it is (deinit
   frees it). Allocates from the data stack: call inside T_BEGIN. */
void mailward_audit_spool_or_lose(struct mailward_audit_client *client,
				  unsigned int n, const char *flush_error);
/* The queue is full (a long session while the writer is away): what it
   holds goes to a new spool file now, logged as a warning, so that
   nothing is dropped. Returns TRUE if the records are in the spool (the
   queue is empty now); FALSE with no spool (nothing logged) or when the
   spool file failed (logged as an error; the records stay queued). */
bool mailward_audit_spool_spill(struct mailward_audit_client *client);

#endif
