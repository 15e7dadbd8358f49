/* mailward audit log: the single writer (records, the hash chain, MAC
   epochs, checkpoints, group commit, rotation). Its resumption after a
   crash is in mw-audit-recover.c, the Merkle tree state in
   mw-audit-tree.c. See mw-audit-writer.h and docs/audit-log.md. */

#include "mw-audit-writer.h"
#include "mw-audit-writer-private.h"
#include "mw-audit-private.h"
#include "mw-util.h"
#include "mw-merkle.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define fail_static mw_audit_fail_static

void mw_audit_writer_options_init(struct mw_audit_writer_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->epoch_seconds = 3600;
	opts->epoch_records = 100000;
	opts->checkpoint_seconds = 300;
	opts->checkpoint_records = 10000;
}

int64_t mw_audit_writer_now(struct mw_audit_writer *w)
{
	struct timespec ts;

	if (w->opts.now_usec != NULL)
		return w->opts.now_usec(w->opts.now_context);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mw_audit_format_time(int64_t usec, char out[32])
{
	time_t secs;
	struct tm tm;
	long frac;

	char tmp[96];

	/* clamp to 1970-01-01 .. 9999-12-31T23:59:59.999999Z */
	if (usec < 0)
		usec = 0;
	if (usec > INT64_C(253402300799999999))
		usec = INT64_C(253402300799999999);
	secs = (time_t)(usec / 1000000);
	frac = (long)(usec % 1000000);
	if (gmtime_r(&secs, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, frac);
	snprintf(out, 32, "%.27s", tmp);
}

/* mw_audit_format_time() with the writer's cache: the same text, the
   date and time of day formatted once a second (issue 14) */
static void format_time_cached(struct mw_audit_writer *w, int64_t usec,
			       char out[32])
{
	if (usec >= 0 && usec <= INT64_C(253402300799999999) &&
	    mw_utc_stamp_usec(&w->time_cache, (time_t)(usec / 1000000),
			      (long)(usec % 1000000), out) == 0)
		return;
	mw_audit_format_time(usec, out);
}

/* Appends one record with the given body (members between host and epoch)
   to the pending group and advances the chain. */
static int emit(struct mw_audit_writer *w, int64_t now, const char *body,
		size_t body_len, const char **error_r)
{
	struct mw_json_buf *l = &w->line;
	char ts[32], mac[65], hash[65];

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	format_time_cached(w, now, ts);
	mw_json_buf_reset(l);
	mw_json_buf_append_str(l, "{\"seq\":");
	mw_json_buf_append_u64(l, w->seq + 1);
	mw_json_buf_append_str(l, ",\"time\":\"");
	mw_json_buf_append_str(l, ts);
	mw_json_buf_append_str(l, "\",\"host\":");
	mw_json_append_string(l, w->host, strlen(w->host));
	mw_json_buf_append(l, ",", 1);
	mw_json_buf_append(l, body, body_len);
	mw_json_buf_append_str(l, ",\"epoch\":");
	mw_json_buf_append_u64(l, w->epoch);
	mw_json_buf_append_str(l, ",\"prev\":\"");
	mw_json_buf_append_str(l, w->prev);
	mw_json_buf_append(l, "\"", 1);
	if (l->failed)
		return wfail(w, error_r, "out of memory");
	if (mw_audit_hmac_hex(w->key, l->data, l->len, mac) < 0)
		return wbroken(w, error_r, "HMAC failed");
	mw_json_buf_append_str(l, ",\"mac\":\"");
	mw_json_buf_append_str(l, mac);
	mw_json_buf_append_str(l, "\"}");
	if (l->failed)
		return wfail(w, error_r, "out of memory");
	if (l->len > MW_AUDIT_LINE_MAX)
		return wfail(w, error_r, "record too long");
	if (mw_audit_sha256_hex(l->data, l->len, hash) < 0)
		return wbroken(w, error_r, "SHA-256 failed");
	if (w->tree_known) {
		mw_merkle_hash leaf;

		if (mw_merkle_leaf_hash(l->data, l->len, leaf) < 0 ||
		    mw_merkle_range_append(&w->tree, leaf) < 0)
			return wbroken(w, error_r, "Merkle tree update failed");
	}
	mw_json_buf_append(&w->pending, l->data, l->len);
	mw_json_buf_append(&w->pending, "\n", 1);
	if (w->pending.failed)
		return wbroken(w, error_r, "out of memory");
	w->seq++;
	memcpy(w->prev, hash, sizeof(w->prev));
	w->epoch_count++;
	w->cp_count++;
	w->pending_records++;
	return 0;
}

void mw_audit_body_event(struct mw_json_buf *b, const char *event)
{
	mw_json_buf_reset(b);
	mw_json_buf_append_str(b, "\"event\":\"");
	mw_json_buf_append_str(b, event);
	mw_json_buf_append(b, "\"", 1);
}

void mw_audit_body_str(struct mw_json_buf *b, enum mw_audit_field f,
		       const char *value)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, mw_audit_fields[f].name);
	mw_json_buf_append_str(b, "\":");
	mw_json_append_string(b, value, strlen(value));
}

void mw_audit_body_num(struct mw_json_buf *b, enum mw_audit_field f,
		       uint64_t value)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, mw_audit_fields[f].name);
	mw_json_buf_append_str(b, "\":");
	mw_json_buf_append_u64(b, value);
}

int mw_audit_emit_body(struct mw_audit_writer *w, int64_t now,
		       const char **error_r)
{
	if (w->body.failed)
		return wfail(w, error_r, "out of memory");
	return emit(w, now, w->body.data, w->body.len, error_r);
}

static int emit_checkpoint(struct mw_audit_writer *w, int64_t now,
			   const char **error_r)
{
	unsigned char sig[64];
	char sighex[MW_AUDIT_SIG_HEX_LEN + 1], ts[32];
	char roothex[MW_AUDIT_HASH_HEX_LEN + 1];
	mw_merkle_hash root;
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx;
	int ok;

	if (w->tree_known) {
		/* the tree covers exactly the records before this one */
		if (w->tree.size != w->seq ||
		    mw_merkle_range_root(&w->tree, root) < 0)
			return wbroken(w, error_r, "Merkle root failed");
		mw_hex_encode(root, sizeof(root), roothex);
	}
	mw_audit_format_time(now, ts);
	mw_json_buf_reset(&w->scratch);
	mw_audit_checkpoint_message(&w->scratch, w->host, strlen(w->host),
				    w->seq + 1, w->prev, ts,
				    w->tree_known ? roothex : NULL);
	if (w->scratch.failed)
		return wfail(w, error_r, "out of memory");
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return wfail(w, error_r, "out of memory");
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, w->sign_key) == 1 &&
		EVP_DigestSign(ctx, sig, &siglen,
			       (const unsigned char *)w->scratch.data,
			       w->scratch.len) == 1 && siglen == sizeof(sig);
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return wbroken(w, error_r, "Ed25519 signing failed");
	mw_hex_encode(sig, sizeof(sig), sighex);
	mw_audit_body_event(&w->body, MW_AUDIT_EV_CHECKPOINT);
	if (w->tree_known)
		mw_audit_body_str(&w->body, MW_AF_ROOT, roothex);
	mw_audit_body_str(&w->body, MW_AF_SIG, sighex);
	if (mw_audit_emit_body(w, now, error_r) < 0)
		return -1;
	w->tree_dirty = true;
	w->cp_count = 0;
	w->cp_last = now;
	return 0;
}
int mw_audit_writer_write(struct mw_audit_writer *w, const char **error_r)
{
	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (w->pending.len == 0)
		return 0;
	if (mw_write_full(w->fd, w->pending.data, w->pending.len) < 0)
		return wbroken(w, error_r, "write(%s) failed: %s",
			       w->log_path, strerror(errno));
	mw_json_buf_reset(&w->pending);
	w->pending_records = 0;
	w->unsynced = true;
	return 0;
}

bool mw_audit_writer_unsynced(const struct mw_audit_writer *w)
{
	return w->unsynced;
}

int mw_audit_writer_flush(struct mw_audit_writer *w, const char **error_r)
{
	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (w->pending.len == 0 && !w->unsynced)
		return 0;
	if (mw_audit_writer_write(w, error_r) < 0)
		return -1;
	if (fdatasync(w->fd) < 0)
		return wbroken(w, error_r, "fdatasync(%s) failed: %s",
			       w->log_path, strerror(errno));
	w->unsynced = false;
	if (w->tree_dirty)
		mw_audit_tree_save(w);
	return 0;
}

/* K_e -> K_{e+1}: the new key is durable in the key file before the old
   one is erased from memory. */
int mw_audit_advance_key(struct mw_audit_writer *w, const char **error_r)
{
	uint8_t next[MW_AUDIT_KEY_LEN];
	const char *kerr;

	if (w->epoch == UINT32_MAX)
		return wbroken(w, error_r, "key epoch exhausted");
	if (mw_audit_key_next(w->key, w->epoch + 1, next) < 0)
		return wbroken(w, error_r, "HKDF failed");
	if (mw_audit_key_store(w->key_path, w->epoch + 1, next, &kerr) < 0) {
		OPENSSL_cleanse(next, sizeof(next));
		return wbroken(w, error_r, "%s", kerr);
	}
	memcpy(w->key, next, sizeof(w->key));
	OPENSSL_cleanse(next, sizeof(next));
	w->epoch++;
	w->epoch_count = 0;
	return 0;
}

/* checkpoint + seal of the current epoch, durable, key advanced */
int mw_audit_seal_epoch(struct mw_audit_writer *w, int64_t now,
			const char *reason, const char **error_r)
{
	if (w->cp_count > 0 && emit_checkpoint(w, now, error_r) < 0)
		return -1;
	mw_audit_body_event(&w->body, MW_AUDIT_EV_SEAL);
	mw_audit_body_str(&w->body, MW_AF_REASON, reason);
	mw_audit_body_num(&w->body, MW_AF_RECORDS, w->epoch_count);
	if (mw_audit_emit_body(w, now, error_r) < 0)
		return -1;
	/* the tree state is saved at every seal too: a rotation renames
	   the file right after it, and a restart can read forward only in
	   the current file */
	w->tree_dirty = true;
	if (mw_audit_writer_flush(w, error_r) < 0)
		return -1;
	return mw_audit_advance_key(w, error_r);
}

int mw_audit_start_epoch(struct mw_audit_writer *w, int64_t now,
			 const char *reason, const char **error_r)
{
	w->epoch_count = 0;
	w->epoch_start = now;
	mw_audit_body_event(&w->body, MW_AUDIT_EV_EPOCH);
	mw_audit_body_str(&w->body, MW_AF_REASON, reason);
	return mw_audit_emit_body(w, now, error_r);
}

static int end_epoch(struct mw_audit_writer *w, int64_t now,
		     const char *reason, const char **error_r)
{
	if (mw_audit_seal_epoch(w, now, reason, error_r) < 0)
		return -1;
	return mw_audit_start_epoch(w, now, reason, error_r);
}

static const char *epoch_due(struct mw_audit_writer *w, int64_t now)
{
	if (w->opts.epoch_records > 0 &&
	    w->epoch_count >= w->opts.epoch_records)
		return "records";
	if (w->opts.epoch_seconds > 0 &&
	    now - w->epoch_start >= (int64_t)w->opts.epoch_seconds * 1000000)
		return "time";
	return NULL;
}

static bool checkpoint_due(struct mw_audit_writer *w, int64_t now)
{
	if (w->cp_count == 0)
		return false;
	if (w->opts.checkpoint_records > 0 &&
	    w->cp_count >= w->opts.checkpoint_records)
		return true;
	return w->opts.checkpoint_seconds > 0 &&
		now - w->cp_last >= (int64_t)w->opts.checkpoint_seconds * 1000000;
}

int mw_audit_writer_append_body(struct mw_audit_writer *w, const char *body,
				size_t len, const char **error_r)
{
	const char *verr;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (mw_audit_body_validate(body, len, &verr) < 0)
		return wfail(w, error_r, "rejected event body: %s", verr);
	return mw_audit_writer_append_valid_body(w, body, len, error_r);
}

int mw_audit_writer_append_valid_body(struct mw_audit_writer *w,
				      const char *body, size_t len,
				      const char **error_r)
{
	const char *reason;
	int64_t now;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	now = mw_audit_writer_now(w);
	reason = epoch_due(w, now);
	if (reason != NULL && end_epoch(w, now, reason, error_r) < 0)
		return -1;
	if (emit(w, now, body, len, error_r) < 0)
		return -1;
	if (checkpoint_due(w, now) && emit_checkpoint(w, now, error_r) < 0)
		return -1;
	return 0;
}

int mw_audit_writer_append_delayed(struct mw_audit_writer *w,
				   const char *body, size_t len,
				   const char *orig_time,
				   const char *spool_ref,
				   const char **error_r)
{
	struct mw_json_buf full;
	const char *reason, *verr;
	int64_t now;
	int ret;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (mw_audit_body_validate(body, len, &verr) < 0)
		return wfail(w, error_r, "rejected event body: %s", verr);
	if (!mw_audit_time_valid(orig_time, strlen(orig_time)))
		return wfail(w, error_r, "invalid original time");
	if (spool_ref[0] == '\0' || strlen(spool_ref) > MW_AUDIT_STR_MAX)
		return wfail(w, error_r, "invalid spool reference");
	/* the spool fields follow every event field: appended, the body
	   stays canonical */
	mw_json_buf_init(&full);
	mw_json_buf_append(&full, body, len);
	mw_json_buf_append_str(&full, ",\"delayed\":");
	mw_json_append_string(&full, orig_time, strlen(orig_time));
	mw_json_buf_append_str(&full, ",\"spool\":");
	mw_json_append_string(&full, spool_ref, strlen(spool_ref));
	if (full.failed) {
		mw_json_buf_free(&full);
		return wfail(w, error_r, "out of memory");
	}
	now = mw_audit_writer_now(w);
	reason = epoch_due(w, now);
	ret = 0;
	if (reason != NULL && end_epoch(w, now, reason, error_r) < 0)
		ret = -1;
	else if (emit(w, now, full.data, full.len, error_r) < 0)
		ret = -1;
	else if (checkpoint_due(w, now) &&
		 emit_checkpoint(w, now, error_r) < 0)
		ret = -1;
	mw_json_buf_free(&full);
	return ret;
}

int mw_audit_writer_append(struct mw_audit_writer *w,
			   const struct mw_audit_event *ev,
			   const char **error_r)
{
	struct mw_json_buf body;
	const char *berr;
	int ret;

	mw_json_buf_init(&body);
	if (mw_audit_body_build(ev, &body, &berr) < 0) {
		mw_json_buf_free(&body);
		return wfail(w, error_r, "%s", berr);
	}
	ret = mw_audit_writer_append_body(w, body.data, body.len, error_r);
	mw_json_buf_free(&body);
	return ret;
}

int mw_audit_writer_tick(struct mw_audit_writer *w, const char **error_r)
{
	const char *reason;
	int64_t now;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	now = mw_audit_writer_now(w);
	reason = epoch_due(w, now);
	if (reason != NULL && end_epoch(w, now, reason, error_r) < 0)
		return -1;
	if (checkpoint_due(w, now) && emit_checkpoint(w, now, error_r) < 0)
		return -1;
	return mw_audit_writer_flush(w, error_r);
}

int64_t mw_audit_writer_next_due(const struct mw_audit_writer *w)
{
	int64_t due = INT64_MAX, t;

	if (w->pending_records > 0)
		return 0;
	if (w->opts.epoch_seconds > 0) {
		t = w->epoch_start + (int64_t)w->opts.epoch_seconds * 1000000;
		if (t < due)
			due = t;
	}
	if (w->opts.checkpoint_seconds > 0 && w->cp_count > 0) {
		t = w->cp_last + (int64_t)w->opts.checkpoint_seconds * 1000000;
		if (t < due)
			due = t;
	}
	return due;
}

unsigned int mw_audit_writer_pending(const struct mw_audit_writer *w)
{
	return w->pending_records;
}

uint64_t mw_audit_writer_seq(const struct mw_audit_writer *w)
{
	return w->seq;
}

uint32_t mw_audit_writer_epoch(const struct mw_audit_writer *w)
{
	return w->epoch;
}

static int open_log_fd(struct mw_audit_writer *w, bool excl,
		       const char **error_r)
{
	struct stat st;
	char hint[MW_HINT_MAX];
	mode_t mode = w->opts.group_readable ? 0640 : 0600;
	int fd;

	fd = open(w->log_path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC |
		  (excl ? O_EXCL : 0), mode);
	if (fd < 0) {
		int err = errno;

		return wfail(w, error_r, "open(%s) failed: %s%s", w->log_path,
			     strerror(err), mw_access_hint(w->log_path, err,
							   hint, sizeof(hint)));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return wfail(w, error_r, "%s is not a regular file",
			     w->log_path);
	}
	/* -g: group-readable also when the umask removed the group bit or
	   the log was created 0600 before */
	if (w->opts.group_readable && (st.st_mode & 0777) != mode &&
	    fchmod(fd, mode) < 0) {
		int err = errno;

		close(fd);
		return wfail(w, error_r, "fchmod(%s, %04o) failed: %s",
			     w->log_path, (unsigned int)mode, strerror(err));
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		return wfail(w, error_r, "flock(%s) failed: %s (another "
			     "writer running?)", w->log_path,
			     err == EWOULDBLOCK ? "locked" : strerror(err));
	}
	w->fd = fd;
	return 0;
}

static int load_sign_key(struct mw_audit_writer *w, const char *path,
			 const char **error_r)
{
	FILE *f = fopen(path, "re");
	char hint[MW_HINT_MAX];

	if (f == NULL) {
		int err = errno;

		return wfail(w, error_r, "fopen(%s) failed: %s%s", path,
			     strerror(err), mw_access_hint(path, err, hint,
							   sizeof(hint)));
	}
	w->sign_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (w->sign_key == NULL ||
	    EVP_PKEY_get_id(w->sign_key) != EVP_PKEY_ED25519)
		return wfail(w, error_r, "%s is not an Ed25519 private key "
			     "(PEM)", path);
	return 0;
}

static bool host_valid(const char *host)
{
	size_t i;

	if (host[0] == '\0' || strlen(host) > 255)
		return false;
	for (i = 0; host[i] != '\0'; i++) {
		if (host[i] <= 0x20 || host[i] >= 0x7f)
			return false;
	}
	return true;
}

static void writer_free(struct mw_audit_writer *w)
{
	struct mw_json_buf *bufs[] = {
		&w->pending, &w->line, &w->body, &w->scratch
	};
	unsigned int i;

	if (w->fd >= 0)
		close(w->fd);
	EVP_PKEY_free(w->sign_key);
	OPENSSL_cleanse(w->key, sizeof(w->key));
	mw_audit_hmac_free();
	free(w->log_path);
	free(w->key_path);
	free(w->tree_path);
	for (i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		mw_json_buf_free(bufs[i]);
	mw_json_obj_free(&w->obj);
	free(w);
}

int mw_audit_writer_open(const char *log_path, const char *key_path,
			 const char *sign_key_path,
			 const struct mw_audit_writer_options *opts,
			 struct mw_audit_writer **w_r, const char **error_r)
{
	struct mw_audit_writer *w;
	const char *kerr;
	char hostbuf[256];

	*w_r = NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return fail_static(error_r, "out of memory");
	w->fd = -1;
	if (opts != NULL)
		w->opts = *opts;
	else
		mw_audit_writer_options_init(&w->opts);
	w->log_path = strdup(log_path);
	w->key_path = strdup(key_path);
	w->tree_path = malloc(strlen(log_path) + sizeof(".tree"));
	if (w->tree_path != NULL)
		sprintf(w->tree_path, "%s.tree", log_path);
	if (w->log_path == NULL || w->key_path == NULL ||
	    w->tree_path == NULL) {
		writer_free(w);
		return fail_static(error_r, "out of memory");
	}
	if (w->opts.host != NULL) {
		snprintf(hostbuf, sizeof(hostbuf), "%s", w->opts.host);
	} else if (gethostname(hostbuf, sizeof(hostbuf)) < 0) {
		writer_free(w);
		return fail_static(error_r, "gethostname() failed: %s",
				   strerror(errno));
	}
	hostbuf[sizeof(hostbuf) - 1] = '\0';
	if (!host_valid(hostbuf)) {
		writer_free(w);
		return fail_static(error_r, "invalid host name for the audit "
				   "log");
	}
	memcpy(w->host, hostbuf, sizeof(w->host));
	w->opts.host = NULL;

	if (mw_audit_key_load(key_path, &w->epoch, w->key, &kerr) < 0) {
		writer_free(w);
		*error_r = kerr; /* already in the static error buffer */
		return -1;
	}
	if (load_sign_key(w, sign_key_path, error_r) < 0 ||
	    open_log_fd(w, false, error_r) < 0 ||
	    mw_audit_writer_resume(w, error_r) < 0) {
		fail_static(error_r, "%s", w->error);
		writer_free(w);
		return -1;
	}
	*w_r = w;
	return 0;
}

int mw_audit_writer_rotate(struct mw_audit_writer *w,
			   const char *rotated_path, const char **error_r)
{
	int64_t now;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	now = mw_audit_writer_now(w);
	if (mw_audit_seal_epoch(w, now, "rotate", error_r) < 0)
		return -1;
	if (rename(w->log_path, rotated_path) < 0)
		return wbroken(w, error_r, "rename(%s, %s) failed: %s",
			       w->log_path, rotated_path, strerror(errno));
	close(w->fd);
	w->fd = -1;
	if (open_log_fd(w, true, error_r) < 0 ||
	    mw_fsync_parent_dir(w->log_path) < 0) {
		w->failed = true;
		return -1;
	}
	if (mw_audit_start_epoch(w, now, "rotate", error_r) < 0)
		return -1;
	return mw_audit_writer_flush(w, error_r);
}

int mw_audit_writer_close(struct mw_audit_writer **_w, const char **error_r)
{
	struct mw_audit_writer *w = *_w;
	int64_t now;
	int ret = 0;

	*_w = NULL;
	if (w->failed) {
		ret = wfail(w, error_r, "audit writer is in a failed state");
	} else {
		now = mw_audit_writer_now(w);
		mw_audit_body_event(&w->body, MW_AUDIT_EV_WRITER_STOP);
		if (mw_audit_emit_body(w, now, error_r) < 0 ||
		    mw_audit_seal_epoch(w, now, "stop", error_r) < 0)
			ret = -1;
	}
	if (ret < 0)
		fail_static(error_r, "%s", w->error);
	writer_free(w);
	return ret;
}

void mw_audit_writer_abort(struct mw_audit_writer **_w)
{
	struct mw_audit_writer *w = *_w;

	*_w = NULL;
	if (w != NULL)
		writer_free(w);
}
