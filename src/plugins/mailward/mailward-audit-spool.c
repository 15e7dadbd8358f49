/* The audit client's spool: the queued records the writer could not take
   go to a file of the writer's spool directory (docs/audit-service.md,
   "Spool"). Split from mailward-audit-client.c; see
   mailward-audit-client-private.h. */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* syncfs() */
#endif
#include "lib.h"
#include "array.h"
#include "str.h"
#include "time-util.h"
#include "hex-binary.h"
#include "randgen.h"
#include "write-full.h"
#include "mailward-audit-client-private.h"
#include "mw-util.h"
#include "mw-audit-proto.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Writes the queued records to a new file of the spool directory, for
   the writer to add when it is back (docs/audit-service.md, "Spool"):
   a hidden temporary file (O_EXCL, unique name), its data synced, then
   renamed to its final name and the file system synced, so that the
   writer never sees a partial file and a renamed file survives a crash.
   Returns the final path, or NULL with *error_r. */
static const char *
audit_spool_write(struct mailward_audit_client *client, const char **error_r)
{
	char *const *recs;
	unsigned char rnd[8];
	struct timeval now;
	struct tm *tm;
	char stamp[32];
	const char *name, *tmp_path, *path;
	string_t *data;
	unsigned int i, count;
	int fd;

	i_gettimeofday(&now);
	tm = gmtime(&now.tv_sec);
	if (tm == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", tm) == 0)
		i_unreached();
	random_fill(rnd, sizeof(rnd));
	name = t_strdup_printf("%s.%06ldZ.%ld.%s", stamp, (long)now.tv_usec,
			       (long)getpid(),
			       binary_to_hex(rnd, sizeof(rnd)));
	tmp_path = t_strdup_printf("%s/.tmp.%s", client->spool_dir, name);
	path = t_strdup_printf("%s/%s", client->spool_dir, name);

	recs = array_get(&client->queue, &count);
	data = t_str_new(client->queue_bytes + count + 64);
	str_append(data, MW_AUDIT_SPOOL_HEADER"\n");
	for (i = 0; i < count; i++) {
		str_append(data, recs[i]);
		str_append_c(data, '\n');
	}
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0640);
	if (fd == -1) {
		int err = errno;
		char hint[MW_HINT_MAX];

		*error_r = t_strdup_printf("open(%s) failed: %s%s", tmp_path,
			strerror(err), mw_access_hint(tmp_path, err, hint,
						      sizeof(hint)));
		return NULL;
	}
	/* readable by the writer's group (the directory's, setgid),
	   whatever the process umask */
	if (fchmod(fd, 0640) < 0 ||
	    write_full(fd, str_data(data), str_len(data)) < 0 ||
	    fdatasync(fd) < 0) {
		*error_r = t_strdup_printf("write(%s) failed: %m", tmp_path);
		i_close_fd(&fd);
		if (unlink(tmp_path) < 0 && errno != ENOENT)
			i_error("unlink(%s) failed: %m", tmp_path);
		return NULL;
	}
	if (rename(tmp_path, path) < 0) {
		*error_r = t_strdup_printf("rename(%s, %s) failed: %m",
					   tmp_path, path);
		i_close_fd(&fd);
		if (unlink(tmp_path) < 0 && errno != ENOENT)
			i_error("unlink(%s) failed: %m", tmp_path);
		return NULL;
	}
	/* the new name durable too: mail processes may create files in the
	   spool directory but not read it, so they cannot open it to fsync
	   it; syncfs() of the file's file system covers the entry */
	if (syncfs(fd) < 0) {
		*error_r = t_strdup_printf("syncfs(%s) failed: %m", path);
		i_close_fd(&fd);
		return NULL;
	}
	i_close_fd(&fd);
	return path;
}

/* Session end with records the writer did not take: into the spool, or
   (no spool, or it failed) lost with an error. */
void mailward_audit_spool_or_lose(struct mailward_audit_client *client,
				  unsigned int n, const char *flush_error)
{
	const char *path, *error;

	if (client->spool_dir == NULL) {
		e_error(client->event, "%u record(s) lost at session end: %s "
			"(no mailward_audit_spool)", n, flush_error);
		return;
	}
	path = audit_spool_write(client, &error);
	if (path == NULL) {
		e_error(client->event, "%u record(s) lost at session end: %s; "
			"spool: %s", n, flush_error, error);
		return;
	}
	e_warning(client->event, "%u record(s) kept in spool file %s for "
		  "the writer to add when it is back: %s", n, path,
		  flush_error);
}

/* Writes the queued records to a new spool file and frees them, logged
   as a warning beginning with why. Returns 1, 0 when nothing is queued,
   or -1 with *error_r (no spool, or it failed: the records stay). */
static int audit_spool_queue(struct mailward_audit_client *client,
			     const char *why, const char **error_r)
{
	const char *path;
	unsigned int n = array_count(&client->queue);

	if (n == 0)
		return 0;
	if (client->spool_dir == NULL) {
		*error_r = "no mailward_audit_spool";
		return -1;
	}
	path = audit_spool_write(client, error_r);
	if (path == NULL)
		return -1;
	e_warning(client->event, "%s%u record(s) moved to spool file %s for "
		  "the writer %s to add when it is back", why, n, path,
		  client->socket_path);
	mailward_audit_free_bodies(client, n);
	return 1;
}

int mailward_audit_spool_now(struct mailward_audit_client *client,
			     const char **error_r)
{
	return audit_spool_queue(client, "", error_r);
}

/* The queue is full (a long session while the writer is away): what it
   holds goes to a spool file now, so that nothing is dropped. Returns
   TRUE if the queue is empty now. */
bool mailward_audit_spool_spill(struct mailward_audit_client *client)
{
	const char *error;
	int ret;

	if (client->spool_dir == NULL)
		return FALSE;
	T_BEGIN {
		ret = audit_spool_queue(client, "queue full: ", &error);
		if (ret < 0) {
			e_error(client->event, "queue full, spool failed: %s",
				error);
		}
	} T_END;
	return ret > 0;
}
