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

#include "mailward-auditd.h"

struct auditd_settings set;
struct mw_audit_writer *writer;
char *writer_error;
static struct timeval last_open_attempt;

struct auditd_client *clients;
unsigned int client_count;
uint64_t append_serial, durable_serial, written_serial;
bool written_acked;

struct timeout *to_commit, *to_spool;
static struct timeout *to_tick, *to_reopen, *to_sync;
static int64_t tick_due = INT64_MAX;

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
void auditd_writer_ensure(void)
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

void auditd_schedule_commit(void)
{
	/* a zero timeout runs in the next ioloop round, after the input of
	   every client that was ready in this one has been appended */
	if (to_commit == NULL)
		to_commit = timeout_add_short(0, auditd_commit, NULL);
}

/* The writer's state is unknown (a write or fdatasync failed): drop it,
   mark every client whose records were not durable, and reopen, which
   recovers the torn tail. */
void auditd_writer_failed(const char *what, const char *error)
{
	struct auditd_client *c;

	auditd_set_writer_error(t_strdup_printf("audit log %s: %s failed: %s",
						set.log_path, what, error));
	auditd_fault(t_strdup_printf("%s (records not yet acknowledged are "
				     "dropped; clients resend them%s)",
				     writer_error, written_acked &&
				     written_serial > durable_serial ?
				     "; records acknowledged as written since "
				     "the last sync may not be durable" : ""));
	written_acked = FALSE;
	timeout_remove(&to_sync);
	mw_audit_writer_abort(&writer);
	for (c = clients; c != NULL; c = c->next) {
		if (c->last_serial > durable_serial)
			c->lost = TRUE;
	}
	durable_serial = append_serial;
	written_serial = append_serial;
	auditd_schedule_commit();
	(void)auditd_writer_open();
}

int auditd_writer_flush(void)
{
	const char *error;

	timeout_remove(&to_sync);
	if (writer == NULL || (mw_audit_writer_pending(writer) == 0 &&
			       !mw_audit_writer_unsynced(writer))) {
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
	written_acked = FALSE;
	return 0;
}

static void auditd_sync_timeout(void *context ATTR_UNUSED)
{
	(void)auditd_writer_flush();
}

int auditd_writer_write(void)
{
	const char *error;

	if (writer == NULL)
		return 0;
	if (mw_audit_writer_pending(writer) > 0 &&
	    mw_audit_writer_write(writer, &error) < 0) {
		/* the group commit's flush, without its sync */
		auditd_writer_failed("flush", error);
		return -1;
	}
	written_serial = append_serial;
	if (mw_audit_writer_unsynced(writer) && to_sync == NULL)
		to_sync = timeout_add(AUDITD_SYNC_MSECS, auditd_sync_timeout,
				      NULL);
	return 0;
}

void auditd_schedule_tick(void)
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

/* the command line (after master_service_init()) into set */
static void auditd_parse_args(int argc)
{
	int opt;

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
}

/* stopping (SIGTERM, master gone): acknowledge what is complete, then
   close the log cleanly (writer_stop, checkpoint, seal) */
static void auditd_stop(void)
{
	const char *error;

	if (to_commit != NULL)
		auditd_commit(NULL);
	while (clients != NULL)
		auditd_client_destroy(clients, NULL);
	timeout_remove(&to_tick);
	timeout_remove(&to_reopen);
	timeout_remove(&to_spool);
	timeout_remove(&to_sync);
	auditd_spool_ignored_free();
	if (writer != NULL) {
		if (mw_audit_writer_close(&writer, &error) < 0)
			i_error("audit log %s: close failed: %s", set.log_path,
				error);
		else
			i_info("audit log %s closed", set.log_path);
	}
	i_free(writer_error);
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
	unsigned int waited = 0;

	mw_crypto_set_provider(&mw_crypto_openssl);
	master_service = master_service_init("mailward-audit", service_flags,
					     &argc, &argv,
					     "l:K:s:S:H:e:E:t:T:I:g");
	auditd_parse_args(argc);

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
	auditd_stop();
	master_service_deinit(&master_service);
	return 0;
}
