#ifndef MW_AUDIT_WRITER_H
#define MW_AUDIT_WRITER_H

/* mailward audit log, the writer side: the crypto primitives of the
   chain, key files, and the single writer (hash chain, forward-secure
   MAC epochs, Ed25519 checkpoints, group commit, crash recovery). In
   libmailward-crypto (OpenSSL): for the writer service
   (mailward-auditd), the CLI and the tests; mail processes never link
   it. Same error contract as mw-audit.h. */

#include "mw-audit.h"

#include <stdio.h>

#include <openssl/evp.h>

/* --- crypto primitives, as specified in docs/audit-log.md §4-6 --- */

/* out = hex SHA-256 of data (65 bytes incl. NUL). Returns 0 or -1. */
int mw_audit_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA-256(key, line[0 .. len - MW_AUDIT_MAC_SUFFIX_LEN)) as hex.
   len must be > MW_AUDIT_MAC_SUFFIX_LEN. Returns 0 or -1. */
int mw_audit_line_mac_hex(const uint8_t key[MW_AUDIT_KEY_LEN],
			  const char *line, size_t len, char out[65]);
/* The line MAC (and mw_audit_hmac_hex()) keep one HMAC context per
   process, set up for the last key used, and a copy of that key: this
   frees the context and wipes the copy (the writer and the verifier do
   when they are freed). */
void mw_audit_hmac_free(void);
/* next = HKDF-SHA256(ikm = key, salt = none, info = "mailward epoch" ||
   uint32be(next_epoch), L = 32). next may equal key. Returns 0 or -1. */
int mw_audit_key_next(const uint8_t key[MW_AUDIT_KEY_LEN],
		      uint32_t next_epoch, uint8_t next[MW_AUDIT_KEY_LEN]);
/* Appends the checkpoint signing message to out (docs/audit-log.md §6):
   without a root (root_hex NULL, format v1)
   "mailward-checkpoint v1\nhost=<host>\nseq=<seq>\nchain=<prev>\n"
   "time=<time>\n"; with the Merkle root of records 1..seq-1 (v2)
   "mailward-checkpoint v2\n" the same lines, then
   "tree_size=<seq-1>\nroot=<root_hex>\n". seq >= 1. */
void mw_audit_checkpoint_message(struct mw_json_buf *out, const char *host,
				 size_t host_len, uint64_t seq,
				 const char *prev_hex, const char *time,
				 const char *root_hex);

/* TRUE if the checkpoint record cp (parsed and checked with
   mw_audit_record_check(), event "checkpoint") carries pub's Ed25519
   signature of its checkpoint message. scratch is scratch space. */
bool mw_audit_checkpoint_verify(const struct mw_json_obj *cp, EVP_PKEY *pub,
				struct mw_json_buf *scratch);

/* --- key files --- */

/* Reads a key file ("mailward-audit-key v1 epoch=<n> key=<64 hex>\n").
   Returns 0 or -1. The caller cleanses key. */
int mw_audit_key_load(const char *path, uint32_t *epoch_r,
		      uint8_t key[MW_AUDIT_KEY_LEN], const char **error_r);
/* Writes a key file atomically: <path>.tmp (mode 0600, O_EXCL), fsync,
   rename over path, fsync of the directory. Returns 0 or -1. */
int mw_audit_key_store(const char *path, uint32_t epoch,
		       const uint8_t key[MW_AUDIT_KEY_LEN],
		       const char **error_r);
/* Reads an Ed25519 public key (PEM) from f (checkpoint.pub). Returns
   it (EVP_PKEY_free() it), or NULL if f holds none. */
EVP_PKEY *mw_audit_pubkey_read(FILE *f);
/* keygen: creates in dir (must exist) writer.key (epoch 1 key),
   verify.key (epoch 0 key), checkpoint.key (Ed25519 private key, PKCS#8
   PEM) and checkpoint.pub (public key PEM); secret files mode 0600,
   checkpoint.pub 0644. Refuses to overwrite unless overwrite is set.
   Returns 0 or -1. */
int mw_audit_keygen(const char *dir, bool overwrite, const char **error_r);

/* --- the writer --- */

struct mw_audit_writer;

struct mw_audit_writer_options {
	/* host name written into every record (printable ASCII, no spaces,
	   at most 255 bytes); NULL = gethostname() */
	const char *host;
	/* end the epoch after this many seconds / records of the epoch
	   (0 = never for that criterion) */
	unsigned int epoch_seconds;
	unsigned int epoch_records;
	/* emit a checkpoint after this many seconds / records since the last
	   one (0 = never for that criterion); a checkpoint is also emitted
	   at every epoch end */
	unsigned int checkpoint_seconds;
	unsigned int checkpoint_records;
	/* the log is mode 0640 instead of 0600: readable by its group (an
	   auditors' group, e.g. by a setgid log directory); an existing log
	   is changed to 0640 at open. Rotated files keep their mode. */
	bool group_readable;
	/* clock in µs since the Unix epoch; NULL = CLOCK_REALTIME (tests) */
	int64_t (*now_usec)(void *context);
	void *now_context;
};

/* Fills opts with the defaults: host NULL, epoch 3600 s / 100000
   records, checkpoint 300 s / 10000 records. */
void mw_audit_writer_options_init(struct mw_audit_writer_options *opts);

/* Opens (or creates, mode 0600, or 0640 with opts->group_readable) the log at log_path in O_APPEND mode and
   takes an exclusive flock() on it; loads the evolving key file key_path
   and the Ed25519 private key sign_key_path (PEM). Resumes the chain from
   the last record. A torn tail (bytes after the last newline, and whole
   trailing lines that do not parse as records, at most 1 MiB) is copied
   to "<log_path>.torn.<UTC time>", fsynced, truncated away, and a
   "recovered" record names its size, SHA-256 and file. A last record
   that parses but fails its MAC, or a key file whose epoch does not fit
   the log, makes the open fail (this is not a crash artefact).
   The Merkle tree's right edge (checkpoint roots) is restored from
   "<log_path>.tree" plus the records after it in this file, or
   recomputed from this file if it starts the chain; else checkpoints
   carry no root and mw_audit_writer_take_warning() says why.
   Then: an unsealed epoch is closed (checkpoint + seal, key advanced), a
   new epoch starts, and writer_start is written; all of it is durable
   before this returns. opts may be NULL (defaults). On success *w_r owns
   the file, the key and the signing key. */
int mw_audit_writer_open(const char *log_path, const char *key_path,
			 const char *sign_key_path,
			 const struct mw_audit_writer_options *opts,
			 struct mw_audit_writer **w_r, const char **error_r);

/* Builds ev's body and appends the record (see append_body). */
int mw_audit_writer_append(struct mw_audit_writer *w,
			   const struct mw_audit_event *ev,
			   const char **error_r);
/* Validates body (mw_audit_body_validate()), then appends the record
   {"seq":..,"time":..,"host":..,<body>,"epoch":..,"prev":..,"mac":..}
   to the in-memory group; the record is NOT durable until
   mw_audit_writer_flush() returns 0. An epoch that is due ends before the
   record (which may flush); a checkpoint that is due follows it. An
   invalid body is refused (-1) without changing the chain. */
int mw_audit_writer_append_body(struct mw_audit_writer *w, const char *body,
				size_t len, const char **error_r);
/* As mw_audit_writer_append_body(), for a body that the caller has just
   validated with mw_audit_body_validate() (0): not validated again (the
   writer service validates each body itself, to tell the client which
   one it rejected). A body that was not validated so must not be passed:
   it would go into the log as it is. */
int mw_audit_writer_append_valid_body(struct mw_audit_writer *w,
				      const char *body, size_t len,
				      const char **error_r);
/* As mw_audit_writer_append_body(), for a record taken from the spool
   (docs/audit-service.md): the record gets "delayed" = orig_time (the
   mail process's time of the event, in the format of "time") and
   "spool" = spool_ref (which spool file and line it came from). -1 if
   the body or orig_time is invalid or spool_ref empty or too long. */
int mw_audit_writer_append_delayed(struct mw_audit_writer *w,
				   const char *body, size_t len,
				   const char *orig_time,
				   const char *spool_ref,
				   const char **error_r);
/* Writes all pending records with one write() and one fdatasync() (group
   commit); the fdatasync() also covers records written before by
   mw_audit_writer_write(). Returns 0 once they are durable. On failure the writer is
   unusable (the chain in memory is ahead of the file): close it with
   mw_audit_writer_abort() and reopen, which recovers the tail. */
int mw_audit_writer_flush(struct mw_audit_writer *w, const char **error_r);
/* Writes all pending records with one write(), without fdatasync(): they
   survive a crash of the writer process (the kernel has them) but not
   one of the system until the next mw_audit_writer_flush(), which syncs
   them (also with nothing pending). Returns 0, or -1 as flush does (the
   writer is then unusable). */
int mw_audit_writer_write(struct mw_audit_writer *w, const char **error_r);
/* TRUE if records were written by mw_audit_writer_write() and not yet
   synced. */
bool mw_audit_writer_unsynced(const struct mw_audit_writer *w);
/* Timer work: ends a due epoch, emits a due checkpoint, flushes. Call it
   at the latest at mw_audit_writer_next_due(). */
int mw_audit_writer_tick(struct mw_audit_writer *w, const char **error_r);
/* When (µs since the Unix epoch) tick() next has work, or INT64_MAX. */
int64_t mw_audit_writer_next_due(const struct mw_audit_writer *w);
/* A condition the caller should log as a warning, set since the last
   call (or NULL): the Merkle tree state could not be restored at open
   (checkpoints then carry no root) or <log>.tree could not be saved
   (the records are not affected). Valid until the next call. */
const char *mw_audit_writer_take_warning(struct mw_audit_writer *w);
/* Number of records appended but not yet flushed. */
unsigned int mw_audit_writer_pending(const struct mw_audit_writer *w);
/* Sequence number of the last appended record. */
uint64_t mw_audit_writer_seq(const struct mw_audit_writer *w);
/* Current key epoch. */
uint32_t mw_audit_writer_epoch(const struct mw_audit_writer *w);

/* Log rotation: ends the epoch (checkpoint, seal, key advance), renames
   the log to rotated_path, creates a new log whose first record is the
   new epoch's record (linked to the old file's last line, seq
   continuing). Returns 0 or -1 (then the writer is unusable). */
int mw_audit_writer_rotate(struct mw_audit_writer *w,
			   const char *rotated_path, const char **error_r);

/* Clean stop: writer_stop, checkpoint, seal, flush, key advance; then
   frees everything (also on failure). *w is set to NULL. */
int mw_audit_writer_close(struct mw_audit_writer **w, const char **error_r);
/* Frees the writer without writing anything (pending records are
   dropped, the epoch stays unsealed: like a crash). *w is set to NULL. */
void mw_audit_writer_abort(struct mw_audit_writer **w);


#endif
