#ifndef MW_AUDIT_WRITER_PRIVATE_H
#define MW_AUDIT_WRITER_PRIVATE_H

/* The writer's state and internals shared by mw-audit-writer.c,
   mw-audit-recover.c, mw-audit-tree.c and mw-audit-crypto.c only. */

#include "mw-audit-writer.h"
#include "mw-audit-private.h"
#include "mw-merkle.h"
#include "mw-util.h"

#include <limits.h>
#include <sys/types.h>

#include <openssl/evp.h>

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
	/* records written to the file (mw_audit_writer_write()) and not
	   yet fdatasync()ed */
	bool unsynced;
	struct mw_json_buf line, body, scratch;
	struct mw_json_obj obj;
	/* the records' time: date and time of day formatted once a
	   second */
	struct mw_utc_stamp_cache time_cache;

	bool failed;
	char error[512];
};

/* what the writer found at the end of the log at open */
struct mw_audit_resume_info {
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

/* HMAC-SHA-256(key, data) as hex. Returns 0 or -1. Keeps a context set
   up for the last key (and a copy of that key) until
   mw_audit_hmac_free(). */
int mw_audit_hmac_hex(const uint8_t key[MW_AUDIT_KEY_LEN], const void *data,
		      size_t len, char out[65]);

/* Formats an error into w->error, sets *error_r to it, returns -1. */
#define mw_audit_wfail(w, error_r, ...) \
	mw_audit_fail_into((w)->error, sizeof((w)->error), (error_r), \
			   __VA_ARGS__)
/* Like mw_audit_wfail(), and the writer becomes unusable. */
#define mw_audit_wbroken(w, error_r, ...) \
	((w)->failed = true, mw_audit_wfail((w), (error_r), __VA_ARGS__))
/* the short names the writer's files use */
#define wfail mw_audit_wfail
#define wbroken mw_audit_wbroken
#define wwarn mw_audit_wwarn
/* Sets the warning mw_audit_writer_take_warning() returns. */
void mw_audit_wwarn(struct mw_audit_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The writer's clock, µs since the Unix epoch. */
int64_t mw_audit_writer_now(struct mw_audit_writer *w);
/* usec as the "time" field holds it, clamped to years 1970..9999. */
void mw_audit_format_time(int64_t usec, char out[32]);

/* Writer event bodies in w->body: starts one with its event, appends a
   string / number field. */
void mw_audit_body_event(struct mw_json_buf *b, const char *event);
void mw_audit_body_str(struct mw_json_buf *b, enum mw_audit_field f,
		       const char *value);
void mw_audit_body_num(struct mw_json_buf *b, enum mw_audit_field f,
		       uint64_t value);
/* Appends the record of w->body to the pending group. Returns 0 or -1. */
int mw_audit_emit_body(struct mw_audit_writer *w, int64_t now,
		       const char **error_r);
/* Epoch changes: K_e -> K_{e+1} (durable first); checkpoint + seal of
   the current epoch, durable, key advanced; the epoch record of a new
   epoch. Each returns 0 or -1. */
int mw_audit_advance_key(struct mw_audit_writer *w, const char **error_r);
int mw_audit_seal_epoch(struct mw_audit_writer *w, int64_t now,
			const char *reason, const char **error_r);
int mw_audit_start_epoch(struct mw_audit_writer *w, int64_t now,
			 const char *reason, const char **error_r);

/* Parses and schema-checks line[0..len) into w->obj. */
bool mw_audit_line_is_record(struct mw_audit_writer *w, const char *line,
			     size_t len);
/* Reads the line starting at the first line start >= off within
   [0, end) into buf (2 * MW_AUDIT_LINE_MAX + 2 bytes). Returns 1 and
   the line's bounds, 0 if no line starts in [off, end), -1 on error. */
int mw_audit_read_line_from(int fd, off_t off, off_t end, char *buf,
			    off_t *start_r, size_t *len_r);
/* Resumes the chain of the open log (mw-audit-recover.c): recovers a
   torn tail, restores the tree, seals a crashed writer's epoch, starts
   an epoch and writes writer_start, durably. Returns 0 or -1. */
int mw_audit_writer_resume(struct mw_audit_writer *w, const char **error_r);

/* Saves the tree's right edge to <log>.tree (a failure is a warning). */
void mw_audit_tree_save(struct mw_audit_writer *w);
/* Restores the tree's right edge for the chain that continues after ri's
   last record, or leaves it unknown with a warning. */
void mw_audit_tree_load(struct mw_audit_writer *w,
			const struct mw_audit_resume_info *ri);

#endif
