/* mailward-auditd: the spool, records of sessions that ended while the
   writer was away (docs/audit-service.md). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "str.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mw-audit-proto.h"
#include "mailward-display.h"
#include "mailward-auditd.h"

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

void auditd_spool_ignored_free(void)
{
	char **namep;

	if (!array_is_created(&spool_ignored))
		return;
	array_foreach_modifiable(&spool_ignored, namep)
		i_free(*namep);
	array_free(&spool_ignored);
}

/* Reads the spool file name whole into *buf_r (NUL-terminated, i_free()
   it) and *size_r. Returns 0, or -1 if it is to be left alone (logged,
   ignored from now on). */
static int spool_read(int dir_fd, const char *name, char **buf_r,
		      size_t *size_r)
{
	struct stat st;
	ssize_t ret;
	size_t got = 0;
	char *buf;
	int fd;

	fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		i_error("spool %s/%s: open failed: %m (left alone)",
			set.spool_dir, mailward_display(name, 0));
		auditd_spool_ignore(name);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > AUDITD_SPOOL_MAX_SIZE) {
		i_error("spool %s/%s: not a regular file of at most %d bytes: "
			"left alone", set.spool_dir, mailward_display(name, 0),
			AUDITD_SPOOL_MAX_SIZE);
		i_close_fd(&fd);
		auditd_spool_ignore(name);
		return -1;
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
	if (got != (size_t)st.st_size)
		buf[0] = '\0'; /* changed while read: not complete */
	*buf_r = buf;
	*size_r = got;
	return 0;
}

/* TRUE if data[0..size) is a complete spool file: the header line,
   whole lines, no NUL. */
static bool spool_complete(const char *data, size_t size)
{
	const char *lf = memchr(data, '\n', size);

	return lf != NULL &&
		(size_t)(lf - data) == strlen(MW_AUDIT_SPOOL_HEADER) &&
		memcmp(data, MW_AUDIT_SPOOL_HEADER, lf - data) == 0 &&
		data[size - 1] == '\n' && memchr(data, '\0', size) == NULL;
}

/* One record line[0..len) of spool file name, line lineno: appended
   (1), rejected and dropped (0), or the writer failed (-1). */
static int spool_line(const char *name, unsigned int lineno,
		      const char *line, size_t len)
{
	const char *tab, *ref, *error = NULL;
	char time_str[MW_AUDIT_TIME_LEN + 1];

	tab = memchr(line, '\t', len);
	if (tab == NULL || tab - line != MW_AUDIT_TIME_LEN) {
		i_error("spool %s/%s line %u: no time: dropped",
			set.spool_dir, mailward_display(name, 0), lineno);
		return 0;
	}
	memcpy(time_str, line, MW_AUDIT_TIME_LEN);
	time_str[MW_AUDIT_TIME_LEN] = '\0';
	ref = t_strdup_printf("%s:%u", name, lineno);
	if (mw_audit_body_validate(tab + 1, line + len - (tab + 1),
				   &error) < 0 ||
	    !mw_audit_time_valid(time_str, MW_AUDIT_TIME_LEN)) {
		/* checked like an E line of the socket */
		i_error("spool %s/%s line %u: rejected: %s",
			set.spool_dir, mailward_display(name, 0),
			lineno, error == NULL ? "bad time" :
			mailward_display(error, 200));
		return 0;
	}
	if (mw_audit_writer_append_delayed(writer, tab + 1,
					   line + len - (tab + 1), time_str,
					   ref, &error) < 0) {
		/* valid: the writer itself failed; the file stays and is
		   taken again (its records appended so far were not
		   durable) */
		auditd_writer_failed("append from spool", error);
		return -1;
	}
	append_serial++;
	if (append_serial - durable_serial >= AUDITD_MAX_PENDING &&
	    auditd_writer_flush() < 0)
		return -1;
	return 1;
}

/* Appends the records of one spool file and makes them durable, then
   removes the file. Returns 0 when done with the file (taken, or moved
   aside as unusable), -1 when the writer failed (the file stays). */
static int auditd_spool_take(int dir_fd, const char *name)
{
	const char *line, *end, *lf;
	unsigned int lineno = 1, taken = 0, rejected = 0;
	size_t size;
	char *buf;
	int ret;

	if (spool_read(dir_fd, name, &buf, &size) < 0)
		return 0;
	if (!spool_complete(buf, size)) {
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
	end = buf + size;
	for (line = strchr(buf, '\n') + 1; line < end; line = lf + 1) {
		lf = memchr(line, '\n', end - line);
		ret = spool_line(name, ++lineno, line, lf - line);
		if (ret < 0) {
			i_free(buf);
			return -1;
		}
		if (ret > 0)
			taken++;
		else
			rejected++;
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

void auditd_spool_drain(void)
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

void auditd_spool_timeout(void *context ATTR_UNUSED)
{
	auditd_spool_drain();
}

