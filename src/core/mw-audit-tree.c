/* mailward audit log: the Merkle tree's right edge kept by the writer
   (docs/audit-log.md §6.1): saved to <log>.tree after checkpoints and
   seals, restored at open. */

#include "mw-audit-writer.h"
#include "mw-audit-writer-private.h"
#include "mw-audit-private.h"
#include "mw-util.h"
#include "mw-merkle.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void mw_audit_wwarn(struct mw_audit_writer *w, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(w->warning, sizeof(w->warning), fmt, args);
	va_end(args);
}

/* Writes the tree's right edge after the durable end of the log:
   "mailward-audit-tree v1 size=<n> last=<hash of line n>\n" and one hex
   hash per line. Atomic (tmp + fsync + rename). A failure is not a
   failure of the log (the records are durable): it is reported as a
   warning, and the next start reads forward from an older state or
   recomputes. */
void mw_audit_tree_save(struct mw_audit_writer *w)
{
	struct mw_json_buf b;
	char tmp[PATH_MAX], hex[MW_AUDIT_HASH_HEX_LEN + 1];
	unsigned int i;
	int fd;

	if (!w->tree_known)
		return;
	mw_json_buf_init(&b);
	mw_json_buf_append_str(&b, "mailward-audit-tree v1 size=");
	mw_json_buf_append_u64(&b, w->tree.size);
	mw_json_buf_append_str(&b, " last=");
	mw_json_buf_append_str(&b, w->prev);
	mw_json_buf_append_str(&b, "\n");
	for (i = 0; i < w->tree.count; i++) {
		mw_hex_encode(w->tree.hashes[i], MW_MERKLE_HASH_LEN, hex);
		mw_json_buf_append_str(&b, hex);
		mw_json_buf_append_str(&b, "\n");
	}
	if (b.failed ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", w->tree_path) >=
	    (int)sizeof(tmp)) {
		mw_json_buf_free(&b);
		wwarn(w, "%s: cannot save the Merkle tree state: out of "
		      "memory or path too long", w->tree_path);
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || mw_write_full(fd, b.data, b.len) < 0 || fsync(fd) < 0 ||
	    close(fd) < 0 || rename(tmp, w->tree_path) < 0) {
		int err = errno;

		char msg[sizeof(w->tree_save_error)];

		if (fd >= 0)
			(void)close(fd);
		(void)unlink(tmp);
		snprintf(msg, sizeof(msg), "%s: cannot save the Merkle tree "
			 "state: %s (the log is not affected; the next start "
			 "reads it forward or recomputes it)", w->tree_path,
			 strerror(err));
		/* a lasting fault is reported once */
		if (strcmp(msg, w->tree_save_error) != 0) {
			memcpy(w->tree_save_error, msg, sizeof(msg));
			wwarn(w, "%s", msg);
		}
	} else {
		w->tree_dirty = false;
		w->tree_save_error[0] = '\0';
	}
	mw_json_buf_free(&b);
}

const char *mw_audit_writer_take_warning(struct mw_audit_writer *w)
{
	static char taken[sizeof(w->warning)];

	if (w->warning[0] == '\0')
		return NULL;
	memcpy(taken, w->warning, sizeof(taken));
	w->warning[0] = '\0';
	return taken;
}
#define MW_AUDIT_TREE_FILE_MAX (128 + MW_MERKLE_MAX_PATH * 65)

/* Reads <log>.tree into r and last. Returns 0, or -1 with why set
   (missing, unreadable, malformed). */
static int tree_read_file(struct mw_audit_writer *w, struct mw_merkle_range *r,
			  char last[MW_AUDIT_HASH_HEX_LEN + 1],
			  const char **why_r)
{
	char buf[MW_AUDIT_TREE_FILE_MAX + 1], *p, *end;
	unsigned long long size;
	unsigned int i;
	ssize_t n;
	int fd;

	fd = open(w->tree_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*why_r = errno == ENOENT ? "missing" : strerror(errno);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n < 0 || n >= (ssize_t)sizeof(buf) - 1) {
		*why_r = "unreadable";
		return -1;
	}
	buf[n] = '\0';
	mw_merkle_range_init(r);
	if (sscanf(buf, "mailward-audit-tree v1 size=%llu last=%64[0-9a-f]",
		   &size, last) != 2 || strlen(last) != 64 ||
	    (p = strchr(buf, '\n')) == NULL) {
		*why_r = "malformed";
		return -1;
	}
	r->size = size;
	r->count = (unsigned int)__builtin_popcountll(size);
	p++;
	for (i = 0; i < r->count; i++) {
		end = strchr(p, '\n');
		if (end == NULL || end - p != 64 ||
		    mw_hex_decode_n(p, r->hashes[i], MW_MERKLE_HASH_LEN) < 0) {
			*why_r = "malformed";
			return -1;
		}
		p = end + 1;
	}
	if (*p != '\0' || !mw_merkle_range_valid(r)) {
		*why_r = "malformed";
		return -1;
	}
	return 0;
}

/* The start offset of the record with seq in the current file
   (binary search: seq grows by one per line within a file). Returns 0,
   or -1 if the file does not hold it. */
static int find_seq_offset(struct mw_audit_writer *w, off_t last_start,
			   off_t end, uint64_t seq, char *buf, off_t *off_r)
{
	off_t lo = 0, hi = last_start, mid, start;
	size_t len;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (mw_audit_read_line_from(w->fd, mid, end, buf, &start,
					    &len) <= 0 ||
		    !mw_audit_line_is_record(w, buf, len))
			return -1;
		if (mw_json_obj_get(&w->obj, "seq")->num >= seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (mw_audit_read_line_from(w->fd, lo, end, buf, &start, &len) <= 0 ||
	    !mw_audit_line_is_record(w, buf, len) ||
	    mw_json_obj_get(&w->obj, "seq")->num != seq)
		return -1;
	*off_r = start;
	return 0;
}

/* Extends r (the tree after record r->size, whose line hashes to last)
   with the records after it in the current file, up to the log's last
   record. Returns 0, or -1 with why (the records are not all in this
   file, or the state does not fit the log). */
static int tree_forward(struct mw_audit_writer *w,
			const struct mw_audit_resume_info *ri,
			struct mw_merkle_range *r, const char *last,
			const char **why_r)
{
	size_t bufsize = 1024 * 1024 + 2 * MW_AUDIT_LINE_MAX + 2, have = 0;
	const struct mw_json_member *prev;
	mw_merkle_hash leaf;
	off_t off, end = ri->good_end;
	char *buf, *p, *nl;
	size_t len;
	int ret = -1;

	buf = malloc(bufsize);
	if (buf == NULL) {
		*why_r = "out of memory";
		return -1;
	}
	if (find_seq_offset(w, ri->last_start, end, r->size + 1, buf,
			    &off) < 0) {
		*why_r = "the records after it are not in this file";
		goto out;
	}
	prev = mw_json_obj_get(&w->obj, "prev");
	if (strcmp(prev->str, last) != 0) {
		*why_r = "it does not match the log";
		goto out;
	}
	while (off < end) {
		size_t n = bufsize - have;

		if ((off_t)n > end - off)
			n = (size_t)(end - off);
		if (mw_pread_full(w->fd, buf + have, n, off) < 0) {
			*why_r = strerror(errno);
			goto out;
		}
		off += (off_t)n;
		have += n;
		p = buf;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf))) !=
		       NULL) {
			len = (size_t)(nl - p);
			if (mw_merkle_leaf_hash(p, len, leaf) < 0 ||
			    mw_merkle_range_append(r, leaf) < 0) {
				*why_r = "hashing failed";
				goto out;
			}
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		if (have > MW_AUDIT_LINE_MAX + 1) {
			*why_r = "line too long";
			goto out;
		}
		memmove(buf, p, have);
	}
	if (have != 0 || r->size != ri->last_seq) {
		*why_r = "it does not match the log";
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

/* Restores the Merkle tree's right edge for the chain that continues:
   from <log>.tree (read forward over the records written after it was
   saved), else recomputed from the log if this file starts the chain.
   Otherwise the tree stays unknown and checkpoints carry no root (with a
   warning). */
void mw_audit_tree_load(struct mw_audit_writer *w,
			const struct mw_audit_resume_info *ri)
{
	struct mw_merkle_range r;
	char last[MW_AUDIT_HASH_HEX_LEN + 1];
	const char *why, *why2;

	mw_merkle_range_init(&w->tree);
	w->tree_known = false;
	if (!ri->have_last) {
		/* new chain: the tree starts empty */
		w->tree_known = true;
		w->tree_dirty = true;
		return;
	}
	if (tree_read_file(w, &r, last, &why) == 0) {
		if (r.size == ri->last_seq && strcmp(last, w->prev) == 0) {
			w->tree = r;
			w->tree_known = true;
			return;
		}
		why = "it does not match the log";
		if (r.size < ri->last_seq &&
		    tree_forward(w, ri, &r, last, &why) == 0) {
			w->tree = r;
			w->tree_known = true;
			w->tree_dirty = true;
			return;
		}
	}
	mw_merkle_range_init(&r);
	if (tree_forward(w, ri, &r, MW_AUDIT_ZERO_HASH, &why2) == 0) {
		w->tree = r;
		w->tree_known = true;
		w->tree_dirty = true;
		return;
	}
	wwarn(w, "%s: Merkle tree state %s and the log does not start the "
	      "chain (seq 1): checkpoints are signed without a Merkle root "
	      "(format v1) until a new chain starts", w->tree_path, why);
}
