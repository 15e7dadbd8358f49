/* mailward audit log: crypto primitives (hash, MAC, HKDF, Ed25519), key
   files and the single writer. Records and their checks are in
   mw-audit-record.c. See mw-audit.h and docs/audit-log.md. */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* memrchr() */
#endif

#include "mw-audit.h"
#include "mw-audit-private.h"
#include "mw-merkle.h"
#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#ifndef PACKAGE_VERSION
#  define PACKAGE_VERSION "unknown"
#endif

/* at most this many trailing bytes are treated as a crash artefact */
#define MW_AUDIT_TORN_MAX (1024 * 1024)
#define MW_AUDIT_KEY_FILE_MAX 256

static const char zero_hash[MW_AUDIT_HASH_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

#define fail_static mw_audit_fail_static

/* --- crypto --- */

int mw_audit_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		return -1;
	mw_hex_encode(md, 32, out);
	return 0;
}

static int hmac_hex(const uint8_t key[MW_AUDIT_KEY_LEN], const void *data,
		    size_t len, char out[65])
{
	unsigned char md[32];
	size_t mdlen = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key,
		      MW_AUDIT_KEY_LEN, data, len, md, sizeof(md),
		      &mdlen) == NULL || mdlen != 32)
		return -1;
	mw_hex_encode(md, 32, out);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int mw_audit_line_mac_hex(const uint8_t key[MW_AUDIT_KEY_LEN],
			  const char *line, size_t len, char out[65])
{
	if (len <= MW_AUDIT_MAC_SUFFIX_LEN)
		return -1;
	return hmac_hex(key, line, len - MW_AUDIT_MAC_SUFFIX_LEN, out);
}

int mw_audit_key_next(const uint8_t key[MW_AUDIT_KEY_LEN],
		      uint32_t next_epoch, uint8_t next[MW_AUDIT_KEY_LEN])
{
	static const char label[] = "mailward epoch";
	unsigned char info[sizeof(label) - 1 + 4];
	unsigned char ikm[MW_AUDIT_KEY_LEN];
	OSSL_PARAM params[4];
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	int ret = -1;

	memcpy(info, label, sizeof(label) - 1);
	info[sizeof(label) - 1] = (unsigned char)(next_epoch >> 24);
	info[sizeof(label)] = (unsigned char)(next_epoch >> 16);
	info[sizeof(label) + 1] = (unsigned char)(next_epoch >> 8);
	info[sizeof(label) + 2] = (unsigned char)next_epoch;
	memcpy(ikm, key, sizeof(ikm));

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL)
		return -1;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						      ikm, sizeof(ikm));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						      info, sizeof(info));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, next, MW_AUDIT_KEY_LEN, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(ctx);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return ret;
}

void mw_audit_checkpoint_message(struct mw_json_buf *out, const char *host,
				 size_t host_len, uint64_t seq,
				 const char *prev_hex, const char *time,
				 const char *root_hex)
{
	mw_json_buf_append_str(out, root_hex == NULL ?
			       "mailward-checkpoint v1\nhost=" :
			       "mailward-checkpoint v2\nhost=");
	mw_json_buf_append(out, host, host_len);
	mw_json_buf_append_str(out, "\nseq=");
	mw_json_buf_append_u64(out, seq);
	mw_json_buf_append_str(out, "\nchain=");
	mw_json_buf_append_str(out, prev_hex);
	mw_json_buf_append_str(out, "\ntime=");
	mw_json_buf_append_str(out, time);
	mw_json_buf_append_str(out, "\n");
	if (root_hex != NULL) {
		mw_json_buf_append_str(out, "tree_size=");
		mw_json_buf_append_u64(out, seq - 1);
		mw_json_buf_append_str(out, "\nroot=");
		mw_json_buf_append_str(out, root_hex);
		mw_json_buf_append_str(out, "\n");
	}
}

/* --- files --- */

static int pread_full(int fd, void *data, size_t len, off_t off)
{
	char *p = data;
	ssize_t n;

	while (len > 0) {
		n = pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int mw_audit_key_load(const char *path, uint32_t *epoch_r,
		      uint8_t key[MW_AUDIT_KEY_LEN], const char **error_r)
{
	char buf[MW_AUDIT_KEY_FILE_MAX + 1], hint[MW_HINT_MAX];
	unsigned long long epoch;
	char *p, *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		return fail_static(error_r, "open(%s) failed: %s%s", path,
				   strerror(err), mw_access_hint(path, err,
				   hint, sizeof(hint)));
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return fail_static(error_r, "read(%s) failed: %s", path,
				   strerror(errno));
	buf[n] = '\0';
	if (strncmp(buf, "mailward-audit-key v1 epoch=", 28) != 0)
		goto bad;
	p = buf + 28;
	if (*p < '0' || *p > '9')
		goto bad;
	errno = 0;
	epoch = strtoull(p, &end, 10);
	if (errno != 0 || epoch > UINT32_MAX || strncmp(end, " key=", 5) != 0)
		goto bad;
	p = end + 5;
	if (strlen(p) != MW_AUDIT_KEY_LEN * 2 + 1 ||
	    p[MW_AUDIT_KEY_LEN * 2] != '\n' ||
	    mw_hex_decode_n(p, key, MW_AUDIT_KEY_LEN) < 0)
		goto bad;
	*epoch_r = (uint32_t)epoch;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
bad:
	OPENSSL_cleanse(buf, sizeof(buf));
	return fail_static(error_r, "%s is not a mailward-audit key file", path);
}

static int key_format(char *buf, size_t size, uint32_t epoch,
		      const uint8_t key[MW_AUDIT_KEY_LEN])
{
	char hex[MW_AUDIT_KEY_LEN * 2 + 1];
	int n;

	mw_hex_encode(key, MW_AUDIT_KEY_LEN, hex);
	n = snprintf(buf, size, "mailward-audit-key v1 epoch=%u key=%s\n",
		     (unsigned int)epoch, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
	return n;
}

int mw_audit_key_store(const char *path, uint32_t epoch,
		       const uint8_t key[MW_AUDIT_KEY_LEN],
		       const char **error_r)
{
	char tmp[PATH_MAX], buf[MW_AUDIT_KEY_FILE_MAX];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return fail_static(error_r, "key path too long");
	n = key_format(buf, sizeof(buf), epoch, key);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return fail_static(error_r, "open(%s) failed: %s", tmp,
				   strerror(errno));
	}
	if (mw_write_full(fd, buf, (size_t)n) < 0 || fsync(fd) < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		fail_static(error_r, "write(%s) failed: %s", tmp,
			    strerror(errno));
		close(fd);
		(void)unlink(tmp);
		return -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (close(fd) < 0) {
		fail_static(error_r, "close(%s) failed: %s", tmp,
			    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		fail_static(error_r, "rename(%s, %s) failed: %s", tmp, path,
			    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	if (mw_fsync_parent_dir(path) < 0)
		return fail_static(error_r, "fsync of the directory of %s "
				   "failed: %s", path, strerror(errno));
	return 0;
}

static int create_file(const char *path, mode_t mode, bool overwrite,
		       const char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC |
		      (overwrite ? O_TRUNC : O_EXCL), mode);

	if (fd < 0)
		return fail_static(error_r, "open(%s) failed: %s", path,
				   strerror(errno));
	if (fchmod(fd, mode) < 0) {
		close(fd);
		return fail_static(error_r, "fchmod(%s) failed: %s", path,
				   strerror(errno));
	}
	return fd;
}

static int write_key_file(const char *path, uint32_t epoch,
			  const uint8_t key[MW_AUDIT_KEY_LEN], bool overwrite,
			  const char **error_r)
{
	char buf[MW_AUDIT_KEY_FILE_MAX];
	int fd, n, ret = 0;

	fd = create_file(path, 0600, overwrite, error_r);
	if (fd < 0)
		return -1;
	n = key_format(buf, sizeof(buf), epoch, key);
	if (mw_write_full(fd, buf, (size_t)n) < 0 || fsync(fd) < 0)
		ret = fail_static(error_r, "write(%s) failed: %s", path,
				  strerror(errno));
	OPENSSL_cleanse(buf, sizeof(buf));
	if (close(fd) < 0 && ret == 0)
		ret = fail_static(error_r, "close(%s) failed: %s", path,
				  strerror(errno));
	return ret;
}

static int write_pem_file(const char *path, EVP_PKEY *pkey, bool private_,
			  bool overwrite, const char **error_r)
{
	FILE *f;
	int fd, ok;

	fd = create_file(path, private_ ? 0600 : 0644, overwrite, error_r);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return fail_static(error_r, "fdopen(%s) failed", path);
	}
	ok = private_ ?
		PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) :
		PEM_write_PUBKEY(f, pkey);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (ok != 1)
		return fail_static(error_r, "writing %s failed", path);
	return 0;
}

int mw_audit_keygen(const char *dir, bool overwrite, const char **error_r)
{
	char path[PATH_MAX];
	uint8_t k0[MW_AUDIT_KEY_LEN], k1[MW_AUDIT_KEY_LEN];
	EVP_PKEY *pkey = NULL;
	int ret = -1;

	if (RAND_priv_bytes(k0, sizeof(k0)) != 1)
		return fail_static(error_r, "RAND_priv_bytes() failed");
	if (mw_audit_key_next(k0, 1, k1) < 0) {
		fail_static(error_r, "HKDF failed");
		goto out;
	}
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		fail_static(error_r, "Ed25519 key generation failed");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/verify.key", dir);
	if (write_key_file(path, 0, k0, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/writer.key", dir);
	if (write_key_file(path, 1, k1, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/checkpoint.key", dir);
	if (write_pem_file(path, pkey, true, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/checkpoint.pub", dir);
	if (write_pem_file(path, pkey, false, overwrite, error_r) < 0)
		goto out;
	if (mw_fsync_parent_dir(path) < 0) {
		fail_static(error_r, "fsync(%s) failed: %s", dir,
			    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(k1, sizeof(k1));
	EVP_PKEY_free(pkey);
	return ret;
}

/* --- writer --- */

struct mw_audit_writer {
	char *log_path;
	char *key_path;
	int fd;
	EVP_PKEY *sign_key;
	struct mw_audit_writer_options opts;
	char host[256];

	uint32_t epoch;
	uint8_t key[MW_AUDIT_KEY_LEN];
	uint64_t seq;
	char prev[MW_AUDIT_HASH_HEX_LEN + 1];

	uint64_t epoch_count;	/* records of the current epoch */
	int64_t epoch_start;	/* µs */
	uint64_t cp_count;	/* records since the last checkpoint */
	int64_t cp_last;	/* µs */

	/* Merkle tree over records 1..seq (docs/audit-log.md §6.1): its
	   right edge, persisted in <log>.tree at checkpoints; tree_known is
	   false if it could not be restored (checkpoints then carry no
	   root) */
	struct mw_merkle_range tree;
	bool tree_known;
	bool tree_dirty;	/* a checkpoint since the last save */
	char *tree_path;
	char warning[512];	/* for mw_audit_writer_take_warning() */
	/* the last failure to save <log>.tree, reported once until a save
	   works again */
	char tree_save_error[512];

	struct mw_json_buf pending;
	unsigned int pending_records;
	struct mw_json_buf line, body, scratch;
	struct mw_json_obj obj;

	bool failed;
	char error[512];
};

static int wfail(struct mw_audit_writer *w, const char **error_r,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wfail(struct mw_audit_writer *w, const char **error_r,
		 const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, args);
	va_end(args);
	*error_r = w->error;
	return -1;
}

/* like wfail(), and the writer becomes unusable */
static int wbroken(struct mw_audit_writer *w, const char **error_r,
		   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int wbroken(struct mw_audit_writer *w, const char **error_r,
		   const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(w->error, sizeof(w->error), fmt, args);
	va_end(args);
	w->failed = true;
	*error_r = w->error;
	return -1;
}

void mw_audit_writer_options_init(struct mw_audit_writer_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->epoch_seconds = 3600;
	opts->epoch_records = 100000;
	opts->checkpoint_seconds = 300;
	opts->checkpoint_records = 10000;
}

static int64_t writer_now(struct mw_audit_writer *w)
{
	struct timespec ts;

	if (w->opts.now_usec != NULL)
		return w->opts.now_usec(w->opts.now_context);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void format_time(int64_t usec, char out[32])
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

/* Appends one record with the given body (members between host and epoch)
   to the pending group and advances the chain. */
static int emit(struct mw_audit_writer *w, int64_t now, const char *body,
		size_t body_len, const char **error_r)
{
	struct mw_json_buf *l = &w->line;
	char ts[32], mac[65], hash[65];

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	format_time(now, ts);
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
	if (hmac_hex(w->key, l->data, l->len, mac) < 0)
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

static void body_event(struct mw_json_buf *b, const char *event)
{
	mw_json_buf_reset(b);
	mw_json_buf_append_str(b, "\"event\":\"");
	mw_json_buf_append_str(b, event);
	mw_json_buf_append(b, "\"", 1);
}

static void body_str(struct mw_json_buf *b, enum mw_audit_field f,
		     const char *value)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, mw_audit_fields[f].name);
	mw_json_buf_append_str(b, "\":");
	mw_json_append_string(b, value, strlen(value));
}

static void body_num(struct mw_json_buf *b, enum mw_audit_field f,
		     uint64_t value)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, mw_audit_fields[f].name);
	mw_json_buf_append_str(b, "\":");
	mw_json_buf_append_u64(b, value);
}

static int emit_body(struct mw_audit_writer *w, int64_t now,
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
	format_time(now, ts);
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
	body_event(&w->body, MW_AUDIT_EV_CHECKPOINT);
	if (w->tree_known)
		body_str(&w->body, MW_AF_ROOT, roothex);
	body_str(&w->body, MW_AF_SIG, sighex);
	if (emit_body(w, now, error_r) < 0)
		return -1;
	w->tree_dirty = true;
	w->cp_count = 0;
	w->cp_last = now;
	return 0;
}

/* --- Merkle tree state file (<log>.tree) --- */

static void wwarn(struct mw_audit_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void wwarn(struct mw_audit_writer *w, const char *fmt, ...)
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
static void tree_save(struct mw_audit_writer *w)
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

int mw_audit_writer_flush(struct mw_audit_writer *w, const char **error_r)
{
	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (w->pending.len == 0)
		return 0;
	if (mw_write_full(w->fd, w->pending.data, w->pending.len) < 0)
		return wbroken(w, error_r, "write(%s) failed: %s",
			       w->log_path, strerror(errno));
	if (fdatasync(w->fd) < 0)
		return wbroken(w, error_r, "fdatasync(%s) failed: %s",
			       w->log_path, strerror(errno));
	mw_json_buf_reset(&w->pending);
	w->pending_records = 0;
	if (w->tree_dirty)
		tree_save(w);
	return 0;
}

/* K_e -> K_{e+1}: the new key is durable in the key file before the old
   one is erased from memory. */
static int advance_key(struct mw_audit_writer *w, const char **error_r)
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
static int seal_epoch(struct mw_audit_writer *w, int64_t now,
		      const char *reason, const char **error_r)
{
	if (w->cp_count > 0 && emit_checkpoint(w, now, error_r) < 0)
		return -1;
	body_event(&w->body, MW_AUDIT_EV_SEAL);
	body_str(&w->body, MW_AF_REASON, reason);
	body_num(&w->body, MW_AF_RECORDS, w->epoch_count);
	if (emit_body(w, now, error_r) < 0)
		return -1;
	/* the tree state is saved at every seal too: a rotation renames
	   the file right after it, and a restart can read forward only in
	   the current file */
	w->tree_dirty = true;
	if (mw_audit_writer_flush(w, error_r) < 0)
		return -1;
	return advance_key(w, error_r);
}

static int start_epoch(struct mw_audit_writer *w, int64_t now,
		       const char *reason, const char **error_r)
{
	w->epoch_count = 0;
	w->epoch_start = now;
	body_event(&w->body, MW_AUDIT_EV_EPOCH);
	body_str(&w->body, MW_AF_REASON, reason);
	return emit_body(w, now, error_r);
}

static int end_epoch(struct mw_audit_writer *w, int64_t now,
		     const char *reason, const char **error_r)
{
	if (seal_epoch(w, now, reason, error_r) < 0)
		return -1;
	return start_epoch(w, now, reason, error_r);
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
	const char *reason, *verr;
	int64_t now;

	if (w->failed)
		return wfail(w, error_r, "audit writer is in a failed state");
	if (mw_audit_body_validate(body, len, &verr) < 0)
		return wfail(w, error_r, "rejected event body: %s", verr);
	now = writer_now(w);
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
	now = writer_now(w);
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
	now = writer_now(w);
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

/* --- open / resume / recovery --- */

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

/* Parses and schema-checks line[0..len) into w->obj. */
static bool line_is_record(struct mw_audit_writer *w, const char *line,
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
static int read_line_from(int fd, off_t off, off_t end, char *buf,
			  off_t *start_r, size_t *len_r)
{
	size_t bufsize = 2 * MW_AUDIT_LINE_MAX + 2, n, i;
	off_t base = off > 0 ? off - 1 : 0, start;
	char *nl;

	n = (size_t)(end - base) < bufsize ? (size_t)(end - base) : bufsize;
	if (n == 0)
		return 0;
	if (pread_full(fd, buf, n, base) < 0)
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
		ret = read_line_from(w->fd, mid, end, buf, &start, &len);
		if (ret <= 0 || !line_is_record(w, buf, len)) {
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
	ret = read_line_from(w->fd, lo, end, buf, &start, &len);
	if (ret <= 0 || !line_is_record(w, buf, len)) {
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

struct resume_info {
	bool have_last;
	uint64_t last_seq;
	uint32_t last_epoch;
	bool last_is_seal;
	off_t last_start;
	off_t good_end;

	bool torn;
	uint64_t torn_bytes;
	char torn_sha256[65];
	char torn_file[PATH_MAX];
};

/* Finds the last good record and the torn region after it. */
static int scan_tail(struct mw_audit_writer *w, struct resume_info *ri,
		     const char **error_r)
{
	struct stat st;
	size_t chunk, max = MW_AUDIT_TORN_MAX + MW_AUDIT_LINE_MAX + 2;
	off_t size, base, good_end, ls;
	char *buf, *nl;
	int ret = -1;

	if (fstat(w->fd, &st) < 0)
		return wfail(w, error_r, "fstat(%s) failed: %s", w->log_path,
			     strerror(errno));
	size = st.st_size;
	ri->good_end = 0;
	if (size == 0)
		return 0;
	chunk = (uint64_t)size < max ? (size_t)size : max;
	base = size - (off_t)chunk;
	buf = malloc(chunk);
	if (buf == NULL)
		return wfail(w, error_r, "out of memory");
	if (pread_full(w->fd, buf, chunk, base) < 0) {
		wfail(w, error_r, "read(%s) failed: %s", w->log_path,
		      strerror(errno));
		goto out;
	}
	nl = memrchr(buf, '\n', chunk);
	if (nl == NULL) {
		if (base != 0) {
			wfail(w, error_r, "%s: no line end in the last %zu "
			      "bytes", w->log_path, chunk);
			goto out;
		}
		good_end = 0;
	} else {
		good_end = base + (nl - buf) + 1;
	}
	while (good_end > 0) {
		size_t rel_end = (size_t)(good_end - 1 - base);

		nl = rel_end == 0 ? NULL : memrchr(buf, '\n', rel_end);
		if (nl == NULL) {
			if (base != 0) {
				wfail(w, error_r, "%s: last record too long",
				      w->log_path);
				goto out;
			}
			ls = 0;
		} else {
			ls = base + (nl - buf) + 1;
		}
		if (line_is_record(w, buf + (ls - base),
				   (size_t)(good_end - 1 - ls))) {
			const struct mw_json_member *ev;

			ri->have_last = true;
			ri->last_start = ls;
			ri->last_seq = mw_json_obj_get(&w->obj, "seq")->num;
			ri->last_epoch = (uint32_t)
				mw_json_obj_get(&w->obj, "epoch")->num;
			ev = mw_json_obj_get(&w->obj, "event");
			ri->last_is_seal =
				strcmp(ev->str, MW_AUDIT_EV_SEAL) == 0;
			if (mw_audit_sha256_hex(buf + (ls - base),
						(size_t)(good_end - 1 - ls),
						w->prev) < 0) {
				wfail(w, error_r, "SHA-256 failed");
				goto out;
			}
			/* MAC of the last record, when we hold its key */
			if (ri->last_epoch == w->epoch) {
				char mac[65];

				if (mw_audit_line_mac_hex(w->key,
						buf + (ls - base),
						(size_t)(good_end - 1 - ls),
						mac) < 0 ||
				    CRYPTO_memcmp(mac,
					mw_json_obj_get(&w->obj, "mac")->str,
					64) != 0) {
					wfail(w, error_r, "%s: last record "
					      "(seq %llu) fails its MAC: the "
					      "log was altered or the key file "
					      "does not belong to it; refusing "
					      "to continue the chain",
					      w->log_path, (unsigned long long)
					      ri->last_seq);
					goto out;
				}
			}
			break;
		}
		/* a complete line that is not a record: crash garbage
		   (e.g. zero-filled blocks), part of the torn region */
		if (size - ls > MW_AUDIT_TORN_MAX) {
			wfail(w, error_r, "%s: more than %d bytes at the end "
			      "are not valid records; refusing to recover "
			      "automatically", w->log_path, MW_AUDIT_TORN_MAX);
			goto out;
		}
		good_end = ls;
	}
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
static int move_torn(struct mw_audit_writer *w, struct resume_info *ri,
		     int64_t now, const char **error_r)
{
	char ts[32], *buf;
	unsigned int i;
	int fd = -1;

	format_time(now, ts);
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
	if (pread_full(w->fd, buf, (size_t)ri->torn_bytes,
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

/* --- Merkle tree state at start --- */

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
		if (read_line_from(w->fd, mid, end, buf, &start, &len) <= 0 ||
		    !line_is_record(w, buf, len))
			return -1;
		if (mw_json_obj_get(&w->obj, "seq")->num >= seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (read_line_from(w->fd, lo, end, buf, &start, &len) <= 0 ||
	    !line_is_record(w, buf, len) ||
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
			const struct resume_info *ri,
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
		if (pread_full(w->fd, buf + have, n, off) < 0) {
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
static void tree_load(struct mw_audit_writer *w, const struct resume_info *ri)
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
	if (tree_forward(w, ri, &r, zero_hash, &why2) == 0) {
		w->tree = r;
		w->tree_known = true;
		w->tree_dirty = true;
		return;
	}
	wwarn(w, "%s: Merkle tree state %s and the log does not start the "
	      "chain (seq 1): checkpoints are signed without a Merkle root "
	      "(format v1) until a new chain starts", w->tree_path, why);
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
	if (w->fd >= 0)
		close(w->fd);
	EVP_PKEY_free(w->sign_key);
	OPENSSL_cleanse(w->key, sizeof(w->key));
	free(w->log_path);
	free(w->key_path);
	free(w->tree_path);
	mw_json_buf_free(&w->pending);
	mw_json_buf_free(&w->line);
	mw_json_buf_free(&w->body);
	mw_json_buf_free(&w->scratch);
	mw_json_obj_free(&w->obj);
	free(w);
}

static int writer_resume(struct mw_audit_writer *w, const char **error_r)
{
	struct resume_info ri;
	uint32_t key_epoch = w->epoch;
	uint64_t first_seq = 0;
	int64_t now = writer_now(w);
	const char *base;

	memset(&ri, 0, sizeof(ri));
	if (scan_tail(w, &ri, error_r) < 0)
		return -1;
	if (ri.torn && move_torn(w, &ri, now, error_r) < 0)
		return -1;
	tree_load(w, &ri);
	w->cp_last = now;
	w->epoch_start = now;

	if (!ri.have_last) {
		/* new chain */
		w->seq = 0;
		memcpy(w->prev, zero_hash, sizeof(w->prev));
		/* the (possibly new) log file's directory entry is durable */
		if (mw_fsync_parent_dir(w->log_path) < 0)
			return wfail(w, error_r, "fsync of the directory of %s "
				     "failed: %s", w->log_path, strerror(errno));
		if (start_epoch(w, now, "new-chain", error_r) < 0)
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
			if (seal_epoch(w, now, "restart", error_r) < 0)
				return -1;
		} else if (ri.last_epoch == key_epoch && ri.last_is_seal) {
			/* sealed, but the key was not advanced */
			if (advance_key(w, error_r) < 0)
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
		if (start_epoch(w, now, "start", error_r) < 0)
			return -1;
	}
	if (ri.torn) {
		base = strrchr(ri.torn_file, '/');
		base = base == NULL ? ri.torn_file : base + 1;
		body_event(&w->body, MW_AUDIT_EV_RECOVERED);
		body_num(&w->body, MW_AF_TORN_BYTES, ri.torn_bytes);
		body_str(&w->body, MW_AF_TORN_SHA256, ri.torn_sha256);
		body_str(&w->body, MW_AF_TORN_FILE, base);
		if (emit_body(w, now, error_r) < 0)
			return -1;
	}
	body_event(&w->body, MW_AUDIT_EV_WRITER_START);
	body_str(&w->body, MW_AF_VERSION, "mailward " PACKAGE_VERSION);
	if (emit_body(w, now, error_r) < 0)
		return -1;
	return mw_audit_writer_flush(w, error_r);
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
	    writer_resume(w, error_r) < 0) {
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
	now = writer_now(w);
	if (seal_epoch(w, now, "rotate", error_r) < 0)
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
	if (start_epoch(w, now, "rotate", error_r) < 0)
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
		now = writer_now(w);
		body_event(&w->body, MW_AUDIT_EV_WRITER_STOP);
		if (emit_body(w, now, error_r) < 0 ||
		    seal_epoch(w, now, "stop", error_r) < 0)
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
