/* mailward-auditd: the one audit writer. A Dovecot service (started by
   Dovecot's master, process_limit = 1) that owns the audit log and its
   keys. Mail processes connect to its unix socket and send event bodies;
   it validates each one, appends it to the hash chain and acknowledges
   flush requests after one fdatasync() per ioloop round (group commit).
   Protocol: docs/audit-log.md, section "Writer protocol". Setup:
   docs/audit-service.md. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "net.h"
#include "str.h"
#include "llist.h"
#include "sleep.h"
#include "time-util.h"
#include "lib-signals.h"
#include "restrict-access.h"
#include "master-service.h"
#include "master-service-settings.h"

#include "mw-audit-writer.h"
#include "mw-audit-proto.h"
#include "mw-crypto.h"
#include "mailward-display.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* longest accepted input line, excluding LF (a body is at most
   MW_AUDIT_BODY_MAX bytes; the rest is headroom) */
#define AUDITD_MAX_LINE 65536
/* replies buffered for a client that does not read them */
#define AUDITD_MAX_OUTPUT (64 * 1024)
/* records appended but not yet flushed (all clients together) before
   the writer flushes without waiting for the end of the ioloop round */
#define AUDITD_MAX_PENDING 1000
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

static struct auditd_settings set;
static struct mw_audit_writer *writer;
static char *writer_error;
static struct timeval last_open_attempt;

static struct auditd_client *clients;
static unsigned int client_count;
/* serial of the last appended record / of the last one known durable */
static uint64_t append_serial, durable_serial;

static struct timeout *to_commit, *to_tick, *to_reopen, *to_spool;
static int64_t tick_due = INT64_MAX;

static void auditd_commit(void *context);
static void auditd_tick(void *context);
static void auditd_reopen_timeout(void *context);

/* --- logging --- */

/* A lasting fault of the log (it cannot be opened, or writes fail): the
   first failure is logged as an error with its cause, repeats only every
   AUDITD_FAULT_REPEAT_MIN_SECS at first, doubling up to
   AUDITD_FAULT_REPEAT_MAX_SECS, with the number of failures not logged in
   between (each one is logged at debug level). When the log works again,
   one info line says so. A relapse soon after a recovery (a disk that is
   only just not full) continues the same rate limit, so a flapping fault
   is bounded too. */
static struct {
	bool active;
	/* an error line was logged for the current fault */
	bool reported;
	time_t since, last_report;
	unsigned int interval;
	unsigned int not_logged, not_logged_total;
} fault;

static void auditd_fault(const char *msg)
{
	time_t now = time(NULL);

	if (!fault.active) {
		fault.active = TRUE;
		fault.reported = FALSE;
		fault.since = now;
		fault.not_logged_total = 0;
		if (fault.last_report == 0 ||
		    now - fault.last_report >= (time_t)fault.interval)
			fault.interval = 0; /* not a relapse: report now */
	}
	if (fault.interval != 0 &&
	    now - fault.last_report < (time_t)fault.interval) {
		fault.not_logged++;
		fault.not_logged_total++;
		i_debug("%s (not logged as an error: rate limited)", msg);
		return;
	}
	if (fault.interval == 0) {
		i_error("%s", msg);
		fault.interval = AUDITD_FAULT_REPEAT_MIN_SECS;
	} else {
		i_error("%s (failing since %ld s; %u failure(s) not logged "
			"since the last report)", msg,
			(long)(now - fault.since), fault.not_logged);
		fault.interval = I_MIN(fault.interval * 2,
				       AUDITD_FAULT_REPEAT_MAX_SECS);
	}
	fault.reported = TRUE;
	fault.last_report = now;
	fault.not_logged = 0;
}

static void auditd_fault_end(void)
{
	time_t now = time(NULL);

	if (!fault.active)
		return;
	fault.active = FALSE;
	if (fault.reported) {
		i_info("audit log %s recovered after %ld s (%u more failure(s) "
		       "not logged)", set.log_path, (long)(now - fault.since),
		       fault.not_logged_total);
	} else {
		i_debug("audit log %s recovered after %ld s", set.log_path,
			(long)(now - fault.since));
	}
}

/* --- writer state --- */

static void auditd_set_writer_error(const char *error)
{
	i_free(writer_error);
	writer_error = i_strdup(error);
}

/* logs what the writer reported besides errors (Merkle tree state) */
static void auditd_writer_warnings(void)
{
	const char *warning;

	if (writer != NULL &&
	    (warning = mw_audit_writer_take_warning(writer)) != NULL)
		i_warning("audit log: %s", warning);
}

static int auditd_writer_open(void)
{
	const char *error;

	i_assert(writer == NULL);
	if (gettimeofday(&last_open_attempt, NULL) < 0)
		i_fatal("gettimeofday() failed: %m");
	if (mw_audit_writer_open(set.log_path, set.key_path,
				 set.sign_key_path, &set.opts, &writer,
				 &error) < 0) {
		auditd_set_writer_error(t_strdup_printf(
			"audit log %s unavailable: %s", set.log_path, error));
		auditd_fault(writer_error);
		if (to_reopen == NULL) {
			to_reopen = timeout_add(AUDITD_REOPEN_MSECS,
						auditd_reopen_timeout, NULL);
		}
		return -1;
	}
	timeout_remove(&to_reopen);
	auditd_fault_end();
	i_info("audit log %s opened: seq %llu, epoch %u", set.log_path,
	       (unsigned long long)mw_audit_writer_seq(writer),
	       mw_audit_writer_epoch(writer));
	auditd_writer_warnings();
	/* open made everything it wrote durable */
	durable_serial = append_serial;
	return 0;
}

/* Opens the writer if it is closed and the last attempt is old enough. */
static void auditd_writer_ensure(void)
{
	struct timeval now;

	if (writer != NULL)
		return;
	if (gettimeofday(&now, NULL) < 0)
		i_fatal("gettimeofday() failed: %m");
	if (timeval_diff_msecs(&now, &last_open_attempt) < AUDITD_REOPEN_MSECS)
		return;
	(void)auditd_writer_open();
}

static void auditd_reopen_timeout(void *context ATTR_UNUSED)
{
	timeout_remove(&to_reopen);
	if (writer == NULL)
		(void)auditd_writer_open();
}

static void auditd_schedule_commit(void)
{
	/* a zero timeout runs in the next ioloop round, after the input of
	   every client that was ready in this one has been appended */
	if (to_commit == NULL)
		to_commit = timeout_add_short(0, auditd_commit, NULL);
}

/* The writer's state is unknown (a write or fdatasync failed): drop it,
   mark every client whose records were not durable, and reopen, which
   recovers the torn tail. */
static void auditd_writer_failed(const char *what, const char *error)
{
	struct auditd_client *c;

	auditd_set_writer_error(t_strdup_printf("audit log %s: %s failed: %s",
						set.log_path, what, error));
	auditd_fault(t_strdup_printf("%s (records not yet acknowledged are "
				     "dropped; clients resend them)",
				     writer_error));
	mw_audit_writer_abort(&writer);
	for (c = clients; c != NULL; c = c->next) {
		if (c->last_serial > durable_serial)
			c->lost = TRUE;
	}
	durable_serial = append_serial;
	auditd_schedule_commit();
	(void)auditd_writer_open();
}

static int auditd_writer_flush(void)
{
	const char *error;

	if (writer == NULL || mw_audit_writer_pending(writer) == 0) {
		if (writer != NULL)
			durable_serial = append_serial;
		return 0;
	}
	if (mw_audit_writer_flush(writer, &error) < 0) {
		auditd_writer_failed("flush", error);
		return -1;
	}
	auditd_writer_warnings();
	durable_serial = append_serial;
	return 0;
}

static void auditd_schedule_tick(void)
{
	struct timeval tv;
	int64_t due;

	due = writer == NULL ? INT64_MAX : mw_audit_writer_next_due(writer);
	if (due == tick_due && (to_tick != NULL || due == INT64_MAX))
		return;
	timeout_remove(&to_tick);
	tick_due = due;
	if (due == INT64_MAX)
		return;
	if (due < 0)
		due = 0;
	tv.tv_sec = due / 1000000;
	tv.tv_usec = due % 1000000;
	to_tick = timeout_add_absolute(&tv, auditd_tick, NULL);
}

static void auditd_tick(void *context ATTR_UNUSED)
{
	const char *error;

	timeout_remove(&to_tick);
	tick_due = INT64_MAX;
	if (writer != NULL) {
		if (mw_audit_writer_tick(writer, &error) < 0) {
			auditd_writer_failed("tick", error);
		} else {
			auditd_writer_warnings();
			durable_serial = append_serial;
		}
	}
	auditd_schedule_tick();
}

/* --- spool (records of sessions that ended while the writer was away) --- */

/* spool files left alone (unreadable, not regular, too large, or not
   removable after their records were added): logged once, then skipped
   until the writer restarts, so that neither the log nor the chain is
   flooded */
static ARRAY(char *) spool_ignored;

static bool auditd_spool_is_ignored(const char *name)
{
	char *const *namep;

	if (!array_is_created(&spool_ignored))
		return FALSE;
	array_foreach(&spool_ignored, namep) {
		if (strcmp(*namep, name) == 0)
			return TRUE;
	}
	return FALSE;
}

static void auditd_spool_ignore(const char *name)
{
	char *copy;

	if (!array_is_created(&spool_ignored))
		i_array_init(&spool_ignored, 8);
	if (array_count(&spool_ignored) >= 10000)
		return;
	copy = i_strdup(name);
	array_push_back(&spool_ignored, &copy);
}

static void auditd_spool_ignored_free(void)
{
	char **namep;

	if (!array_is_created(&spool_ignored))
		return;
	array_foreach_modifiable(&spool_ignored, namep)
		i_free(*namep);
	array_free(&spool_ignored);
}

/* Appends the records of one spool file and makes them durable, then
   removes the file. Returns 0 when done with the file (taken, or moved
   aside as unusable), -1 when the writer failed (the file stays). */
static int auditd_spool_take(int dir_fd, const char *name)
{
	struct stat st;
	const char *data, *line, *end, *lf, *tab, *error = NULL, *ref;
	char *buf, time_str[MW_AUDIT_TIME_LEN + 1];
	unsigned int lineno = 1, taken = 0, rejected = 0;
	ssize_t ret;
	size_t got = 0;
	int fd;

	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		i_error("spool %s/%s: open failed: %m (left alone)",
			set.spool_dir, mailward_display(name, 0));
		auditd_spool_ignore(name);
		return 0;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > AUDITD_SPOOL_MAX_SIZE) {
		i_error("spool %s/%s: not a regular file of at most %d bytes: "
			"left alone", set.spool_dir, mailward_display(name, 0),
			AUDITD_SPOOL_MAX_SIZE);
		i_close_fd(&fd);
		auditd_spool_ignore(name);
		return 0;
	}
	buf = i_malloc(st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ret = read(fd, buf + got, st.st_size - got);
		if (ret <= 0)
			break;
		got += ret;
	}
	i_close_fd(&fd);
	buf[got] = '\0';
	data = buf;
	end = buf + got;
	lf = memchr(data, '\n', end - data);
	if (got != (size_t)st.st_size || lf == NULL ||
	    (size_t)(lf - data) != strlen(MW_AUDIT_SPOOL_HEADER) ||
	    memcmp(data, MW_AUDIT_SPOOL_HEADER, lf - data) != 0 ||
	    end[-1] != '\n' || memchr(data, '\0', got) != NULL) {
		/* not written by a mail process's spool code (complete files
		   only appear under their final name): moved aside */
		const char *bad = t_strconcat(".bad.", name, NULL);

		i_error("spool %s/%s: not a complete spool file: renamed to %s",
			set.spool_dir, mailward_display(name, 0),
			mailward_display(bad, 0));
		if (renameat(dir_fd, name, dir_fd, bad) < 0) {
			i_error("rename failed: %m");
			auditd_spool_ignore(name);
		}
		i_free(buf);
		return 0;
	}
	for (line = lf + 1; line < end; line = lf + 1) {
		lf = memchr(line, '\n', end - line);
		lineno++;
		error = NULL;
		tab = memchr(line, '\t', lf - line);
		if (tab == NULL || tab - line != MW_AUDIT_TIME_LEN) {
			i_error("spool %s/%s line %u: no time: dropped",
				set.spool_dir, mailward_display(name, 0),
				lineno);
			rejected++;
			continue;
		}
		memcpy(time_str, line, MW_AUDIT_TIME_LEN);
		time_str[MW_AUDIT_TIME_LEN] = '\0';
		ref = t_strdup_printf("%s:%u", name, lineno);
		if (mw_audit_body_validate(tab + 1, lf - (tab + 1),
					   &error) < 0 ||
		    !mw_audit_time_valid(time_str, MW_AUDIT_TIME_LEN)) {
			/* checked like an E line of the socket */
			i_error("spool %s/%s line %u: rejected: %s",
				set.spool_dir, mailward_display(name, 0),
				lineno, error == NULL ? "bad time" :
				mailward_display(error, 200));
			rejected++;
			continue;
		}
		if (mw_audit_writer_append_delayed(writer, tab + 1,
						   lf - (tab + 1), time_str,
						   ref, &error) < 0) {
			/* valid: the writer itself failed; the file stays
			   and is taken again (its records appended so far
			   were not durable) */
			auditd_writer_failed("append from spool", error);
			i_free(buf);
			return -1;
		}
		append_serial++;
		taken++;
		if (append_serial - durable_serial >= AUDITD_MAX_PENDING &&
		    auditd_writer_flush() < 0) {
			i_free(buf);
			return -1;
		}
	}
	i_free(buf);
	/* durable before the file goes: a crash in between makes the
	   records appear twice, with the same "spool" reference */
	if (auditd_writer_flush() < 0)
		return -1;
	if (unlinkat(dir_fd, name, 0) < 0) {
		i_error("spool %s/%s: %u record(s) added, but unlink failed "
			"(they are added again after a writer restart): %m",
			set.spool_dir, mailward_display(name, 0), taken);
		auditd_spool_ignore(name);
		return 0;
	}
	if (fsync(dir_fd) < 0)
		i_error("spool %s: fsync failed: %m", set.spool_dir);
	i_info("spool %s/%s: %u delayed record(s) added%s", set.spool_dir,
	       mailward_display(name, 0), taken,
	       rejected == 0 ? "" : t_strdup_printf(", %u rejected",
						    rejected));
	return 0;
}

/* Takes the spool files there are (at most AUDITD_SPOOL_FILES_PER_PASS
   per call). Names starting with '.' are files being written (or moved
   aside). */
static bool spool_error_logged = FALSE;

static void auditd_spool_drain(void)
{
	DIR *dir;
	struct dirent *d;
	unsigned int n = 0;
	int dir_fd;

	if (set.spool_dir == NULL || writer == NULL)
		return;
	dir_fd = open(set.spool_dir, O_RDONLY | O_DIRECTORY);
	if (dir_fd == -1) {
		/* once, not every pass */
		if (!spool_error_logged) {
			i_error("spool %s: open failed: %m (records mail "
				"processes leave there are not added)",
				set.spool_dir);
		}
		spool_error_logged = TRUE;
		return;
	}
	spool_error_logged = FALSE;
	dir = fdopendir(dup(dir_fd));
	if (dir == NULL) {
		i_error("spool %s: opendir failed: %m", set.spool_dir);
		i_close_fd(&dir_fd);
		return;
	}
	while (writer != NULL && n < AUDITD_SPOOL_FILES_PER_PASS &&
	       (d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.' || auditd_spool_is_ignored(d->d_name))
			continue;
		n++;
		T_BEGIN {
			(void)auditd_spool_take(dir_fd, d->d_name);
		} T_END;
	}
	if (closedir(dir) < 0)
		i_error("spool %s: closedir failed: %m", set.spool_dir);
	i_close_fd(&dir_fd);
	if (n > 0)
		auditd_schedule_commit();
}

static void auditd_spool_timeout(void *context ATTR_UNUSED)
{
	auditd_spool_drain();
}

/* --- clients --- */

static void auditd_client_destroy(struct auditd_client *c, const char *reason)
{
	char **idp;

	if (c->destroyed)
		return;
	c->destroyed = TRUE;
	if (reason != NULL)
		i_debug("client %s disconnected: %s", c->label, reason);
	DLLIST_REMOVE(&clients, c);
	client_count--;

	io_remove(&c->io);
	timeout_remove(&c->to_idle);
	if (c->output != NULL)
		(void)o_stream_flush(c->output);
	i_stream_destroy(&c->input);
	o_stream_destroy(&c->output);
	i_close_fd(&c->fd);
	array_foreach_modifiable(&c->flush_ids, idp)
		i_free(*idp);
	array_free(&c->flush_ids);
	i_free(c->label);
	i_free(c);
	master_service_client_connection_destroyed(master_service);
}

/* Sends a reply line (without LF). Returns -1 if the client does not read
   its replies (it is then destroyed). */
static int auditd_client_send(struct auditd_client *c, const char *line)
{
	o_stream_nsend_str(c->output, t_strconcat(line, "\n", NULL));
	if (o_stream_get_buffer_used_size(c->output) > AUDITD_MAX_OUTPUT) {
		auditd_client_destroy(c, "client does not read replies");
		return -1;
	}
	return 0;
}

static void auditd_client_error(struct auditd_client *c, const char *reason)
{
	const char *safe = mailward_display(reason, 200);

	i_error("client %s: %s", c->label, safe);
	if (auditd_client_send(c, t_strconcat(MW_AUDIT_PROTO_ERROR"\t", safe, NULL)) == 0)
		auditd_client_destroy(c, NULL);
}

static bool auditd_client_busy(const struct auditd_client *c)
{
	return array_count(&c->flush_ids) > 0 ||
		c->last_serial > durable_serial;
}

static void auditd_client_idle(struct auditd_client *c)
{
	if (auditd_client_busy(c)) {
		timeout_reset(c->to_idle);
		return;
	}
	auditd_client_destroy(c, t_strdup_printf("idle for %u s",
						 set.idle_secs));
}

static int auditd_handshake(struct auditd_client *c, const char *line)
{
	const char *const *args = t_strsplit(line, "\t");
	unsigned int major, minor;

	if (str_array_length(args) < 3 || str_array_length(args) > 4 ||
	    strcmp(args[0], MW_AUDIT_PROTO_VERSION) != 0 ||
	    strcmp(args[1], MW_AUDIT_PROTOCOL_NAME) != 0 ||
	    str_to_uint(args[2], &major) < 0 ||
	    (args[3] != NULL && str_to_uint(args[3], &minor) < 0)) {
		auditd_client_error(c, t_strdup_printf(
			"expected VERSION\t%s\t%u as the first line",
			MW_AUDIT_PROTOCOL_NAME, MW_AUDIT_PROTOCOL_MAJOR));
		return -1;
	}
	if (major != MW_AUDIT_PROTOCOL_MAJOR) {
		auditd_client_error(c, t_strdup_printf(
			"unsupported protocol version %u (writer speaks %u)",
			major, MW_AUDIT_PROTOCOL_MAJOR));
		return -1;
	}
	c->handshake_done = TRUE;
	return 0;
}

static int auditd_event(struct auditd_client *c, const char *body,
			size_t len)
{
	const char *error;

	c->e_lines++;
	if (c->lost)
		return 0;
	if (mw_audit_body_validate(body, len, &error) < 0) {
		const char *safe = mailward_display(error, 200);

		c->rejects++;
		i_error("client %s: rejected event body #%llu: %s",
			c->label, (unsigned long long)c->e_lines, safe);
		if (auditd_client_send(c, t_strdup_printf(MW_AUDIT_PROTO_REJECTED"\t%llu\t%s",
				(unsigned long long)c->e_lines, safe)) < 0)
			return -1;
		if (c->rejects >= AUDITD_MAX_REJECTS) {
			auditd_client_error(c, "too many rejected bodies");
			return -1;
		}
		return 0;
	}
	auditd_writer_ensure();
	if (writer == NULL) {
		c->lost = TRUE;
		return 0;
	}
	if (mw_audit_writer_append_body(writer, body, len, &error) < 0) {
		/* the body was valid: the writer itself failed (e.g. an epoch
		   ended and its flush failed) */
		c->lost = TRUE;
		auditd_writer_failed("append", error);
		return 0;
	}
	c->last_serial = ++append_serial;
	if (append_serial - durable_serial >= AUDITD_MAX_PENDING) {
		/* bound the writer's memory: flush now, acknowledge at the end
		   of the round */
		(void)auditd_writer_flush();
	}
	/* everything appended in a round is flushed at its end, with or
	   without a flush request */
	auditd_schedule_commit();
	return 0;
}

static int auditd_flush_request(struct auditd_client *c, const char *id)
{
	const char *p;
	char *copy;

	if (*id == '\0' || strlen(id) > AUDITD_MAX_FLUSH_ID) {
		auditd_client_error(c, "invalid flush id");
		return -1;
	}
	for (p = id; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			auditd_client_error(c, "invalid flush id");
			return -1;
		}
	}
	if (array_count(&c->flush_ids) >= AUDITD_MAX_FLUSH_REQUESTS) {
		auditd_client_error(c, "too many unanswered flush requests");
		return -1;
	}
	copy = i_strdup(id);
	array_push_back(&c->flush_ids, &copy);
	auditd_schedule_commit();
	return 0;
}

/* Returns -1 if the client was destroyed. */
static int auditd_line(struct auditd_client *c, const char *line, size_t len)
{
	static const char ev[] = MW_AUDIT_PROTO_EVENT"\t";
	static const char fl[] = MW_AUDIT_PROTO_FLUSH"\t";

	if (!c->handshake_done)
		return auditd_handshake(c, line);
	if (len >= sizeof(ev) - 1 && memcmp(line, ev, sizeof(ev) - 1) == 0)
		return auditd_event(c, line + sizeof(ev) - 1,
				    len - (sizeof(ev) - 1));
	if (len >= sizeof(fl) - 1 && memcmp(line, fl, sizeof(fl) - 1) == 0)
		return auditd_flush_request(c, line + sizeof(fl) - 1);
	auditd_client_error(c, t_strdup_printf("unknown command: %s",
					       t_strndup(line, I_MIN(len, 16))));
	return -1;
}

static void auditd_client_input(struct auditd_client *c)
{
	const unsigned char *data, *lf;
	size_t size, pos = 0;
	ssize_t ret;
	int r = 0;

	timeout_reset(c->to_idle);
	ret = i_stream_read(c->input);
	data = i_stream_get_data(c->input, &size);
	o_stream_cork(c->output);
	while (pos < size &&
	       (lf = memchr(data + pos, '\n', size - pos)) != NULL) {
		size_t len = lf - (data + pos);

		if (memchr(data + pos, '\0', len) != NULL) {
			auditd_client_error(c, "NUL byte in line");
			return;
		}
		T_BEGIN {
			r = auditd_line(c, t_strndup(data + pos, len), len);
		} T_END;
		if (r < 0)
			return;
		pos += len + 1;
	}
	i_stream_skip(c->input, pos);
	o_stream_uncork(c->output);
	if (o_stream_flush(c->output) < 0) {
		auditd_client_destroy(c, "write error");
		return;
	}
	if (ret == -2) {
		auditd_client_error(c, t_strdup_printf(
			"line longer than %u bytes", AUDITD_MAX_LINE));
	} else if (ret < 0) {
		const char *reason = c->input->stream_errno == 0 ?
			NULL : i_stream_get_error(c->input);

		/* records sent without F are flushed at the end of the
		   round anyway; nobody waits for an answer */
		auditd_client_destroy(c, reason);
	}
}

static void auditd_client_connected(struct master_service_connection *conn)
{
	struct auditd_client *c;
	struct net_unix_cred cred;

	master_service_client_connection_accept(conn);
	c = i_new(struct auditd_client, 1);
	c->fd = conn->fd;
	if (net_getunixcred(c->fd, &cred) == 0) {
		c->label = i_strdup_printf("pid=%ld uid=%ld", (long)cred.pid,
					   (long)cred.uid);
	} else {
		c->label = i_strdup_printf("fd=%d", c->fd);
	}
	c->input = i_stream_create_fd(c->fd, AUDITD_MAX_LINE + 1);
	c->output = o_stream_create_fd(c->fd, SIZE_MAX);
	o_stream_set_no_error_handling(c->output, TRUE);
	i_array_init(&c->flush_ids, 4);
	c->io = io_add(c->fd, IO_READ, auditd_client_input, c);
	c->to_idle = timeout_add(set.idle_secs * 1000, auditd_client_idle, c);
	DLLIST_PREPEND(&clients, c);
	client_count++;
	/* a mail process is back: so may be its spool files */
	if (to_spool != NULL)
		timeout_reset(to_spool);
	(void)auditd_client_send(c, t_strdup_printf(MW_AUDIT_PROTO_VERSION"\t%s\t%u\t%u",
		MW_AUDIT_PROTOCOL_NAME, MW_AUDIT_PROTOCOL_MAJOR, MW_AUDIT_PROTOCOL_MINOR));
}

/* --- group commit --- */

/* Answers c's flush requests after a group commit; a client whose
   records were lost gets FAIL and is disconnected. c may be freed. */
static void auditd_client_answer(struct auditd_client *c)
{
	const char *reply, *reason;
	unsigned int i, count;
	char **ids;

	/* a lost client is told at its next F (it may be sending one now;
	   closing first would make it see only a reset connection) */
	if (array_count(&c->flush_ids) == 0)
		return;
	if (c->lost) {
		reason = writer_error != NULL ?
			mailward_display(writer_error, 400) :
			"audit writer unavailable";
	} else {
		i_assert(c->last_serial <= durable_serial);
		reason = NULL;
	}
	ids = array_get_modifiable(&c->flush_ids, &count);
	for (i = 0; i < count; i++) {
		reply = reason == NULL ?
			t_strdup_printf(MW_AUDIT_PROTO_FLUSH"\t%s\t"
					MW_AUDIT_PROTO_OK, ids[i]) :
			t_strdup_printf(MW_AUDIT_PROTO_FLUSH"\t%s\t"
					MW_AUDIT_PROTO_FAIL"\t%s", ids[i], reason);
		if (auditd_client_send(c, reply) < 0)
			return; /* destroyed */
	}
	if (c->lost) {
		auditd_client_destroy(c, "records lost: writer failed");
		return;
	}
	for (i = 0; i < count; i++)
		i_free(ids[i]);
	array_clear(&c->flush_ids);
	if (o_stream_flush(c->output) < 0)
		auditd_client_destroy(c, "write error");
}

/* End of an ioloop round with flush requests: one flush for everything
   appended, then an answer to every F. */
static void auditd_commit(void *context ATTR_UNUSED)
{
	struct auditd_client *c, *next;

	timeout_remove(&to_commit);
	(void)auditd_writer_flush();

	for (c = clients; c != NULL; c = next) {
		next = c->next;
		T_BEGIN {
			auditd_client_answer(c);
		} T_END;
	}
	auditd_schedule_tick();
}

/* --- rotation (SIGHUP) --- */

/* SIGHUP: the log is renamed to <log>.<UTC time> and a new file continues
   the chain (mw_audit_writer_rotate()). */
static void auditd_rotate(const siginfo_t *si ATTR_UNUSED,
			  void *context ATTR_UNUSED)
{
	struct timeval now;
	struct tm *tm;
	struct stat st;
	char stamp[32];
	const char *rotated, *error;

	if (writer == NULL) {
		i_error("rotation requested but the audit log is not open");
		return;
	}
	if (auditd_writer_flush() < 0)
		return;
	i_gettimeofday(&now);
	tm = gmtime(&now.tv_sec);
	if (tm == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", tm) == 0)
		i_fatal("gmtime/strftime failed");
	rotated = t_strdup_printf("%s.%s.%06ldZ", set.log_path, stamp,
				  (long)now.tv_usec);
	if (lstat(rotated, &st) == 0 || errno != ENOENT) {
		i_error("rotation skipped: %s already exists (or lstat "
			"failed: %m)", rotated);
		return;
	}
	if (mw_audit_writer_rotate(writer, rotated, &error) < 0) {
		auditd_writer_failed("rotate", error);
		return;
	}
	durable_serial = append_serial;
	auditd_writer_warnings();
	i_info("audit log rotated: %s -> %s", set.log_path, rotated);
	auditd_schedule_commit();
}

/* --- main --- */

static void ATTR_NORETURN usage(void)
{
	i_fatal("usage: mailward-auditd -l LOG -K WRITER_KEY -s SIGN_KEY "
		"[-S SPOOL_DIR] [-H HOST] [-e EPOCH_SECS] [-E EPOCH_RECORDS] "
		"[-t CHECKPOINT_SECS] [-T CHECKPOINT_RECORDS] [-I IDLE_SECS] "
		"[-g]");
}

static unsigned int parse_uint_opt(int opt, const char *arg)
{
	unsigned int v;

	if (str_to_uint(arg, &v) < 0)
		i_fatal("-%c: not a number: %s", opt, arg);
	return v;
}

int main(int argc, char *argv[])
{
	const enum master_service_flags service_flags =
		MASTER_SERVICE_FLAG_DONT_SEND_STATS |
		MASTER_SERVICE_FLAG_NO_IDLE_DIE |
		MASTER_SERVICE_FLAG_NO_SSL_INIT
#if !DOVECOT_PREREQ(2, 4, 0)
		| MASTER_SERVICE_FLAG_DISABLE_SSL_SET
#endif
		;
	const char *error;
	struct auditd_client *c;
	unsigned int waited = 0;
	int opt;

	mw_crypto_set_provider(&mw_crypto_openssl);
	master_service = master_service_init("mailward-audit", service_flags,
					     &argc, &argv,
					     "l:K:s:S:H:e:E:t:T:I:g");
	mw_audit_writer_options_init(&set.opts);
	set.idle_secs = AUDITD_DEFAULT_IDLE_SECS;
	while ((opt = master_getopt(master_service)) > 0) {
		switch (opt) {
		case 'l': set.log_path = optarg; break;
		case 'K': set.key_path = optarg; break;
		case 's': set.sign_key_path = optarg; break;
		case 'S': set.spool_dir = optarg; break;
		case 'H': set.opts.host = optarg; break;
		case 'g': set.opts.group_readable = TRUE; break;
		case 'e': set.opts.epoch_seconds = parse_uint_opt(opt, optarg);
			break;
		case 'E': set.opts.epoch_records = parse_uint_opt(opt, optarg);
			break;
		case 't': set.opts.checkpoint_seconds =
				parse_uint_opt(opt, optarg);
			break;
		case 'T': set.opts.checkpoint_records =
				parse_uint_opt(opt, optarg);
			break;
		case 'I': set.idle_secs = parse_uint_opt(opt, optarg);
			if (set.idle_secs == 0 || set.idle_secs > 86400)
				i_fatal("-I: must be 1..86400");
			break;
		default:
			if (!master_service_parse_option(master_service, opt,
							 optarg))
				usage();
		}
	}
	if (optind != argc || set.log_path == NULL || set.key_path == NULL ||
	    set.sign_key_path == NULL)
		usage();

#if DOVECOT_PREREQ(2, 4, 0)
	if (master_service_settings_read_simple(master_service, &error) < 0)
#else
	if (master_service_settings_read_simple(master_service, NULL,
						&error) < 0)
#endif
		i_fatal("Error reading configuration: %s", error);
	master_service_init_log(master_service);
	restrict_access_by_env(RESTRICT_ACCESS_FLAG_ALLOW_ROOT, NULL);
	restrict_access_allow_coredumps(TRUE);

	/* stop at once when master stops or reloads: a new writer process
	   can take over the log only after this one released its lock */
	master_service_set_die_with_master(master_service, TRUE);
	lib_signals_set_handler(SIGHUP, LIBSIG_FLAGS_SAFE, auditd_rotate, NULL);

	/* after a reload the previous writer may still be closing: wait a
	   little for its lock before accepting clients */
	while (auditd_writer_open() < 0 && waited < AUDITD_START_WAIT_MSECS) {
		timeout_remove(&to_reopen);
		i_sleep_msecs(100);
		waited += 100;
	}
	master_service_init_finish(master_service);
	auditd_schedule_tick();
	if (set.spool_dir != NULL) {
		/* what waited while the writer was away: now, then
		   periodically */
		auditd_spool_drain();
		to_spool = timeout_add(AUDITD_SPOOL_MSECS,
				       auditd_spool_timeout, NULL);
	}

	master_service_run(master_service, auditd_client_connected);

	/* stopping (SIGTERM, master gone): acknowledge what is complete,
	   then close the log cleanly (writer_stop, checkpoint, seal) */
	if (to_commit != NULL)
		auditd_commit(NULL);
	while (clients != NULL) {
		c = clients;
		auditd_client_destroy(c, NULL);
	}
	timeout_remove(&to_tick);
	timeout_remove(&to_reopen);
	timeout_remove(&to_spool);
	auditd_spool_ignored_free();
	if (writer != NULL) {
		if (mw_audit_writer_close(&writer, &error) < 0)
			i_error("audit log %s: close failed: %s", set.log_path,
				error);
		else
			i_info("audit log %s closed", set.log_path);
	}
	i_free(writer_error);
	master_service_deinit(&master_service);
	return 0;
}
