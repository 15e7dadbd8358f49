#ifndef MW_AUDIT_VERIFY_PRIVATE_H
#define MW_AUDIT_VERIFY_PRIVATE_H

/* The verifier's state, shared by mw-audit-verify.c (the chain) and
   mw-audit-verify-kept.c (kept checkpoints, --consistency) only. */

#include "mw-audit-verify.h"
#include "mw-audit-writer.h"
#include "mw-audit-private.h"
#include "mw-merkle.h"

#include <openssl/evp.h>

/* a checkpoint an auditor kept, for --checkpoint-file */
struct mw_audit_kept_checkpoint {
	uint64_t seq;
	char *line;
	size_t len;
};

/* a checkpoint an auditor kept, for --consistency */
struct mw_audit_cons_checkpoint {
	uint64_t seq;
	char host[256];
	mw_merkle_hash root;
};

struct verifier {
	const struct mw_audit_verify_options *opts;
	struct mw_audit_verify_result *res;

	bool have_key;
	uint32_t key_epoch;
	uint8_t key[MW_AUDIT_KEY_LEN];
	EVP_PKEY *pub;

	struct mw_audit_kept_checkpoint *kept;
	unsigned int kept_count, kept_next;

	struct mw_json_obj obj;
	struct mw_json_buf scratch;

	bool started;
	uint64_t next_seq;
	char prev[MW_AUDIT_HASH_HEX_LEN + 1];
	uint32_t epoch;
	uint64_t epoch_count;
	bool last_was_seal;
	uint64_t last_signed_cp_seq;

	/* Merkle tree over the records so far (only if the chain starts at
	   seq 1): its right edge, and with --consistency all of it */
	bool tree_from_start;
	struct mw_merkle_range range;
	bool keep_tree;
	struct mw_merkle_tree tree;
	/* the newest checkpoint with a root (signature checked if pub) */
	uint64_t root_seq;
	mw_merkle_hash root;
	char root_host[256];
	struct mw_audit_cons_checkpoint *cons;
	unsigned int cons_count;

	bool failed;
	unsigned int file;
	uint64_t end_offset;
	char error[512];
};

/* Records the verification failure (the first one only) in v->res.
   Returns -1. */
int mw_audit_vfail(struct verifier *v, enum mw_audit_fail_reason reason,
		   uint64_t seq, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* An error that stops verification (not a verdict on the log): sets
   *error_r to v->error. Returns -1. */
#define mw_audit_verr(v, error_r, ...) \
	mw_audit_fail_into((v)->error, sizeof((v)->error), (error_r), \
			   __VA_ARGS__)
/* Opens path (what it is: role) for mw_line_reader_next() with lines of
   up to MW_AUDIT_LINE_MAX bytes. Returns 0, or -1 with an error naming
   role and path. */
int mw_audit_verify_open(struct verifier *v, const char *role,
			 const char *path, FILE **f_r,
			 struct mw_line_reader *r, const char **error_r);
#define vfail mw_audit_vfail
#define verr mw_audit_verr

/* Loads the kept checkpoints of path (--checkpoint-file) into v->kept;
   mw_audit_sort_kept() orders them by seq. Returns 0 or -1. */
int mw_audit_load_kept(struct verifier *v, const char *path,
		       const char **error_r);
void mw_audit_sort_kept(struct verifier *v);
/* Loads the checkpoints of arg (--consistency: a file, or a checkpoint
   line when it starts with '{') into v->cons. Returns 0 or -1. */
int mw_audit_load_consistency(struct verifier *v, const char *arg,
			      const char **error_r);
/* --consistency at the end: every kept tree is a prefix of the log's
   newest tree (a failure is recorded with vfail). */
void mw_audit_check_consistency(struct verifier *v);

#endif
