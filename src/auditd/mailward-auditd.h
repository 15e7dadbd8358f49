#ifndef MAILWARD_AUDITD_H
#define MAILWARD_AUDITD_H

/* mailward-auditd's state shared by its files: mailward-auditd.c (writer
   state, logging, rotation, main), mailward-auditd-client.c (the
   protocol's connections, group commit) and mailward-auditd-spool.c
   (records mail processes left while the writer was away). */

#include "mw-audit-writer.h"

struct master_service_connection;

/* longest accepted input line, excluding LF (a body is at most
   MW_AUDIT_BODY_MAX bytes; the rest is headroom) */
#define AUDITD_MAX_LINE 65536
/* replies buffered for a client that does not read them */
#define AUDITD_MAX_OUTPUT (64 * 1024)
/* records appended but not yet flushed (all clients together) before
   the writer flushes without waiting for the end of the ioloop round */
#define AUDITD_MAX_PENDING 1000
/* reads of one client's input per ioloop round (each up to the input
   buffer's free space) before the others get their turn */
#define AUDITD_MAX_READS_PER_INPUT 64
/* unanswered F requests of one client */
#define AUDITD_MAX_FLUSH_REQUESTS 64
#define AUDITD_MAX_FLUSH_ID 64
/* rejected bodies of one connection before it is disconnected */
#define AUDITD_MAX_REJECTS 100
#define AUDITD_DEFAULT_IDLE_SECS 300
/* the log could not be opened: retry this often */
#define AUDITD_REOPEN_MSECS 1000
/* at start, wait this long for the log lock (a previous writer may still
   be closing after a reload) */
#define AUDITD_START_WAIT_MSECS 5000
/* a lasting fault is logged again after these intervals (doubling) */
#define AUDITD_FAULT_REPEAT_MIN_SECS 60
#define AUDITD_FAULT_REPEAT_MAX_SECS 600
/* records only written to the log (flush requests with a '~' id, or
   none) are synced at the latest this long after their write */
#define AUDITD_SYNC_MSECS 1000
/* the spool directory is looked at this often (and when a client
   connects) */
#define AUDITD_SPOOL_MSECS 1000
/* spool files taken per pass (the rest in the next one) */
#define AUDITD_SPOOL_FILES_PER_PASS 100
/* a spool file is at most a mail process's whole queue */
#define AUDITD_SPOOL_MAX_SIZE (64 * 1024 * 1024)

struct auditd_client {
	struct auditd_client *prev, *next;

	int fd;
	struct io *io;
	struct istream *input;
	struct ostream *output;
	struct timeout *to_idle;
	char *label;

	/* E lines received on this connection (numbers R replies) */
	uint64_t e_lines;
	/* serial of this client's last appended record */
	uint64_t last_serial;
	/* F ids waiting for the group commit */
	ARRAY(char *) flush_ids;
	unsigned int rejects;

	bool handshake_done:1;
	/* records of this client were lost (writer failed or unavailable):
	   answer FAIL to its next F and disconnect */
	bool lost:1;
	bool destroyed:1;
};

struct auditd_settings {
	const char *log_path;
	const char *key_path;
	const char *sign_key_path;
	/* -S: spool directory mail processes leave records in while the
	   writer is away; NULL = none */
	const char *spool_dir;
	unsigned int idle_secs;
	struct mw_audit_writer_options opts;
};

extern struct auditd_settings set;
/* the open writer, or NULL while the log is unavailable */
extern struct mw_audit_writer *writer;
/* why the writer is unavailable or failed last */
extern char *writer_error;
extern struct auditd_client *clients;
extern unsigned int client_count;
/* serial of the last appended record / of the last one known durable /
   of the last one written to the log file (maybe not synced yet) */
extern uint64_t append_serial, durable_serial, written_serial;
/* a flush request was answered for written, not yet synced records */
extern bool written_acked;
extern struct timeout *to_commit, *to_spool;

/* mailward-auditd.c */
/* Opens the writer if it is closed and the last attempt is old enough. */
void auditd_writer_ensure(void);
/* The writer failed in what (error): it is dropped, clients whose
   records were not durable are marked lost, and it is reopened. */
void auditd_writer_failed(const char *what, const char *error);
/* Makes every appended record durable. Returns 0, or -1 (the writer
   failed). */
int auditd_writer_flush(void);
/* Writes every appended record to the log without syncing it, and
   schedules the sync (AUDITD_SYNC_MSECS). Returns 0, or -1 (the writer
   failed). */
int auditd_writer_write(void);
/* Runs a group commit (auditd_commit()) at the end of this ioloop
   round. */
void auditd_schedule_commit(void);
/* (Re)arms the timer for the writer's next due epoch or checkpoint. */
void auditd_schedule_tick(void);

/* mailward-auditd-client.c */
/* master_service_run() callback: a mail process connected. */
void auditd_client_connected(struct master_service_connection *conn);
void auditd_client_destroy(struct auditd_client *c, const char *reason);
/* End of an ioloop round: one flush, then an answer to every F. */
void auditd_commit(void *context);

/* mailward-auditd-spool.c */
/* Takes the spool files there are (a bounded number per call). */
void auditd_spool_drain(void);
void auditd_spool_timeout(void *context);
void auditd_spool_ignored_free(void);

#endif
