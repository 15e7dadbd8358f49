/* mailward audit log: the writer's resumption at open: the last good
   record, the torn tail after a crash (saved aside and truncated), the
   sealing of a crashed writer's epoch. See mw_audit_writer_open(). */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* memrchr() */
#endif

#include "mw-audit-writer.h"
#include "mw-audit-writer-private.h"
#include "mw-audit-private.h"
#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#ifndef PACKAGE_VERSION
#  define PACKAGE_VERSION "unknown"
#endif

/* at most this many trailing bytes are treated as a crash artefact */
#define MW_AUDIT_TORN_MAX (1024 * 1024)

/* Parses and schema-checks line[0..len) into w->obj. */
bool mw_audit_line_is_record(struct mw_audit_writer *w, const char *line,
			     size_t len)
{
	const char *err;

	if (len > MW_AUDIT_LINE_MAX)
		return false;
	if (mw_json_parse_object(&w->obj, line, len, &err) < 0)
		return false;
	return mw_audit_record_check(&w->obj, line, len, &w->scratch,
				     &err) == 0;
}

/* Reads the line starting at the first line start >= off (lines start
   at 0 or after '\n'), within [0, end). Returns 1 and the line's bounds,
   0 if no line starts in [off, end), -1 on error. buf holds
   2 * MW_AUDIT_LINE_MAX + 2 bytes. */
int mw_audit_read_line_from(int fd, off_t off, off_t end, char *buf,
			    off_t *start_r, size_t *len_r)
{
	size_t bufsize = 2 * MW_AUDIT_LINE_MAX + 2, n, i;
	off_t base = off > 0 ? off - 1 : 0, start;
	char *nl;

	n = (size_t)(end - base) < bufsize ? (size_t)(end - base) : bufsize;
	if (n == 0)
		return 0;
	if (mw_pread_full(fd, buf, n, base) < 0)
		return -1;
	if (off == 0) {
		i = 0;
	} else {
		nl = memchr(buf, '\n', n);
		if (nl == NULL)
			return n < bufsize ? 0 : -1;
		i = (size_t)(nl - buf) + 1;
	}
	start = base + (off_t)i;
	if (start >= end)
		return 0;
	nl = memchr(buf + i, '\n', n - i);
	if (nl == NULL)
		return -1;
	*start_r = start;
	*len_r = (size_t)(nl - (buf + i));
	memmove(buf, buf + i, *len_r);
	return 1;
}

/* Finds the seq of the first record of epoch `epoch` in [0, last_start]
   by binary search over byte offsets (epochs never decrease in a file,
   and every file starts with an epoch record). */
static int find_epoch_start(struct mw_audit_writer *w, off_t last_start,
			    off_t end, uint32_t epoch, uint64_t *seq_r,
			    const char **error_r)
{
	char *buf = malloc(2 * MW_AUDIT_LINE_MAX + 2);
	off_t lo = 0, hi = last_start, mid, start;
	const struct mw_json_member *m;
	size_t len;
	int ret;

	if (buf == NULL)
		return wfail(w, error_r, "out of memory");
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		ret = mw_audit_read_line_from(w->fd, mid, end, buf, &start,
					      &len);
		if (ret <= 0 || !mw_audit_line_is_record(w, buf, len)) {
			free(buf);
			return wfail(w, error_r, "%s: unreadable record near "
				     "offset %lld while resuming", w->log_path,
				     (long long)mid);
		}
		m = mw_json_obj_get(&w->obj, "epoch");
		if (m->num >= epoch)
			hi = mid;
		else
			lo = mid + 1;
	}
	ret = mw_audit_read_line_from(w->fd, lo, end, buf, &start, &len);
	if (ret <= 0 || !mw_audit_line_is_record(w, buf, len)) {
		free(buf);
		return wfail(w, error_r, "%s: unreadable record while resuming",
			     w->log_path);
	}
	m = mw_json_obj_get(&w->obj, "event");
	if (strcmp(m->str, MW_AUDIT_EV_EPOCH) != 0) {
		free(buf);
		return wfail(w, error_r, "%s: epoch %u does not start with an "
			     "epoch record", w->log_path, epoch);
	}
	*seq_r = mw_json_obj_get(&w->obj, "seq")->num;
	free(buf);
	return 0;
}

/* Takes the record line[0..len) (parsed in w->obj) as the log's last:
   its position, seq, epoch, whether it seals, its hash as the chain's
   prev, and, when the writer holds its epoch's key, checks its MAC. */
static int take_last_record(struct mw_audit_writer *w,
			    struct mw_audit_resume_info *ri, off_t start,
			    const char *line, size_t len,
			    const char **error_r)
{
	const struct mw_json_member *ev;
	char mac[65];

	ri->have_last = true;
	ri->last_start = start;
	ri->last_seq = mw_json_obj_get(&w->obj, "seq")->num;
	ri->last_epoch = (uint32_t)mw_json_obj_get(&w->obj, "epoch")->num;
	ev = mw_json_obj_get(&w->obj, "event");
	ri->last_is_seal = strcmp(ev->str, MW_AUDIT_EV_SEAL) == 0;
	if (mw_audit_sha256_hex(line, len, w->prev) < 0)
		return wfail(w, error_r, "SHA-256 failed");
	/* MAC of the last record, when we hold its key */
	if (ri->last_epoch != w->epoch)
		return 0;
	if (mw_audit_line_mac_hex(w->key, line, len, mac) < 0 ||
	    CRYPTO_memcmp(mac, mw_json_obj_get(&w->obj, "mac")->str,
			  64) != 0) {
		return wfail(w, error_r, "%s: last record (seq %llu) "
			     "fails its MAC: the log was altered or "
			     "the key file does not belong to it; "
			     "refusing to continue the chain",
			     w->log_path,
			     (unsigned long long)ri->last_seq);
	}
	return 0;
}

/* Walks back from good_end (a line end in buf, which holds the file
   from offset base to size) over complete lines that are not records
   (crash garbage, e.g. zero-filled blocks) to the last record, and takes
   it. Returns 0 with *good_end_r after the last record (0 if none), or
   -1. */
static int find_last_record(struct mw_audit_writer *w,
			    struct mw_audit_resume_info *ri, const char *buf,
			    off_t base, off_t size, off_t good_end,
			    off_t *good_end_r, const char **error_r)
{
	const char *nl;
	off_t ls;

	while (good_end > 0) {
		size_t rel_end = (size_t)(good_end - 1 - base);

		nl = rel_end == 0 ? NULL : memrchr(buf, '\n', rel_end);
		if (nl == NULL) {
			if (base != 0)
				return wfail(w, error_r, "%s: last "
					     "record too long",
					     w->log_path);
			ls = 0;
		} else {
			ls = base + (nl - buf) + 1;
		}
		if (mw_audit_line_is_record(w, buf + (ls - base),
					    (size_t)(good_end - 1 - ls))) {
			*good_end_r = good_end;
			return take_last_record(w, ri, ls, buf + (ls - base),
						(size_t)(good_end - 1 - ls),
						error_r);
		}
		/* a complete line that is not a record: part of the torn
		   region */
		if (size - ls > MW_AUDIT_TORN_MAX) {
			return wfail(w, error_r, "%s: more than %d "
				     "bytes at the end are not valid "
				     "records; refusing to recover "
				     "automatically", w->log_path,
				     MW_AUDIT_TORN_MAX);
		}
		good_end = ls;
	}
	*good_end_r = 0;
	return 0;
}

/* Finds the last good record and the torn region after it. */
static int scan_tail(struct mw_audit_writer *w, struct mw_audit_resume_info *ri,
		     const char **error_r)
{
	struct stat st;
	size_t chunk, max = MW_AUDIT_TORN_MAX + MW_AUDIT_LINE_MAX + 2;
	off_t size, base, good_end;
	char *buf, *nl;
	int ret = -1;

	if (fstat(w->fd, &st) < 0)
		return wfail(w, error_r, "fstat(%s) failed: %s",
			     w->log_path, strerror(errno));
	size = st.st_size;
	ri->good_end = 0;
	if (size == 0)
		return 0;
	chunk = (uint64_t)size < max ? (size_t)size : max;
	base = size - (off_t)chunk;
	buf = malloc(chunk);
	if (buf == NULL)
		return wfail(w, error_r, "out of memory");
	if (mw_pread_full(w->fd, buf, chunk, base) < 0) {
		wfail(w, error_r, "read(%s) failed: %s", w->log_path,
		      strerror(errno));
		goto out;
	}
	nl = memrchr(buf, '\n', chunk);
	if (nl == NULL && base != 0) {
		wfail(w, error_r, "%s: no line end in the last %zu "
		      "bytes", w->log_path, chunk);
		goto out;
	}
	good_end = nl == NULL ? 0 : base + (nl - buf) + 1;
	if (find_last_record(w, ri, buf, base, size, good_end, &good_end,
			     error_r) < 0)
		goto out;
	ri->good_end = good_end;
	if (good_end < size) {
		ri->torn = true;
		ri->torn_bytes = (uint64_t)(size - good_end);
		if (mw_audit_sha256_hex(buf + (good_end - base),
					(size_t)(size - good_end),
					ri->torn_sha256) < 0) {
			wfail(w, error_r, "SHA-256 failed");
			goto out;
		}
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Moves the torn bytes to <log>.torn.<time> (durably) and truncates. */
static int move_torn(struct mw_audit_writer *w, struct mw_audit_resume_info *ri,
		     int64_t now, const char **error_r)
{
	char ts[32], *buf;
	unsigned int i;
	int fd = -1;

	mw_audit_format_time(now, ts);
	for (i = 0; i < 100; i++) {
		if (i == 0)
			snprintf(ri->torn_file, sizeof(ri->torn_file),
				 "%s.torn.%s", w->log_path, ts);
		else
			snprintf(ri->torn_file, sizeof(ri->torn_file),
				 "%s.torn.%s.%u", w->log_path, ts, i);
		fd = open(ri->torn_file, O_WRONLY | O_CREAT | O_EXCL |
			  O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return wfail(w, error_r, "open(%s) failed: %s", ri->torn_file,
			     strerror(errno));
	buf = malloc((size_t)ri->torn_bytes);
	if (buf == NULL) {
		close(fd);
		(void)unlink(ri->torn_file);
		return wfail(w, error_r, "out of memory");
	}
	if (mw_pread_full(w->fd, buf, (size_t)ri->torn_bytes,
			  ri->good_end) < 0 ||
	    mw_write_full(fd, buf, (size_t)ri->torn_bytes) < 0 ||
	    fsync(fd) < 0) {
		int err = errno;

		free(buf);
		close(fd);
		/* no litter: the tail stays in the log until it can be
		   saved whole (e.g. once a full disk has room again) */
		(void)unlink(ri->torn_file);
		return wfail(w, error_r, "saving torn tail to %s failed: %s",
			     ri->torn_file, strerror(err));
	}
	free(buf);
	if (close(fd) < 0 || mw_fsync_parent_dir(ri->torn_file) < 0) {
		int err = errno;

		(void)unlink(ri->torn_file);
		return wfail(w, error_r, "saving torn tail to %s failed: %s",
			     ri->torn_file, strerror(err));
	}
	if (ftruncate(w->fd, ri->good_end) < 0 || fsync(w->fd) < 0)
		return wfail(w, error_r, "truncating %s failed: %s",
			     w->log_path, strerror(errno));
	return 0;
}
int mw_audit_writer_resume(struct mw_audit_writer *w, const char **error_r)
{
	struct mw_audit_resume_info ri;
	uint32_t key_epoch = w->epoch;
	uint64_t first_seq = 0;
	int64_t now = mw_audit_writer_now(w);
	const char *base;

	memset(&ri, 0, sizeof(ri));
	if (scan_tail(w, &ri, error_r) < 0)
		return -1;
	if (ri.torn && move_torn(w, &ri, now, error_r) < 0)
		return -1;
	mw_audit_tree_load(w, &ri);
	w->cp_last = now;
	w->epoch_start = now;

	if (!ri.have_last) {
		/* new chain */
		w->seq = 0;
		memcpy(w->prev, MW_AUDIT_ZERO_HASH, sizeof(w->prev));
		/* the (possibly new) log file's directory entry is durable */
		if (mw_fsync_parent_dir(w->log_path) < 0)
			return wfail(w, error_r, "fsync of the directory of %s "
				     "failed: %s", w->log_path,
				     strerror(errno));
		if (mw_audit_start_epoch(w, now, "new-chain", error_r) < 0)
			return -1;
	} else {
		w->seq = ri.last_seq;
		if (ri.last_epoch == key_epoch && !ri.last_is_seal) {
			/* crashed writer: seal its epoch now */
			if (find_epoch_start(w, ri.last_start, ri.good_end,
					     key_epoch, &first_seq,
					     error_r) < 0)
				return -1;
			w->epoch_count = ri.last_seq - first_seq + 1;
			w->cp_count = 1; /* force a checkpoint */
			if (mw_audit_seal_epoch(w, now, "restart", error_r) < 0)
				return -1;
		} else if (ri.last_epoch == key_epoch && ri.last_is_seal) {
			/* sealed, but the key was not advanced */
			if (mw_audit_advance_key(w, error_r) < 0)
				return -1;
		} else if (!(ri.last_epoch + 1 == key_epoch &&
			     ri.last_is_seal)) {
			return wfail(w, error_r, "key file epoch %u does not "
				     "fit the log (last record seq %llu has "
				     "epoch %u%s)", key_epoch,
				     (unsigned long long)ri.last_seq,
				     ri.last_epoch,
				     ri.last_is_seal ? ", sealed" : "");
		}
		if (mw_audit_start_epoch(w, now, "start", error_r) < 0)
			return -1;
	}
	if (ri.torn) {
		base = strrchr(ri.torn_file, '/');
		base = base == NULL ? ri.torn_file : base + 1;
		mw_audit_body_event(&w->body, MW_AUDIT_EV_RECOVERED);
		mw_audit_body_num(&w->body, MW_AF_TORN_BYTES, ri.torn_bytes);
		mw_audit_body_str(&w->body, MW_AF_TORN_SHA256, ri.torn_sha256);
		mw_audit_body_str(&w->body, MW_AF_TORN_FILE, base);
		if (mw_audit_emit_body(w, now, error_r) < 0)
			return -1;
	}
	mw_audit_body_event(&w->body, MW_AUDIT_EV_WRITER_START);
	mw_audit_body_str(&w->body, MW_AF_VERSION, "mailward " PACKAGE_VERSION);
	if (mw_audit_emit_body(w, now, error_r) < 0)
		return -1;
	return mw_audit_writer_flush(w, error_r);
}
