#ifndef MW_AUDIT_VERIFY_H
#define MW_AUDIT_VERIFY_H

/* Streaming verifier of mailward audit logs (docs/audit-log.md §8), and a
   bounded line reader shared with the CLI. No Dovecot headers; never
   prints. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mw-json.h"

enum mw_audit_verify_status {
	MW_AUDIT_VERIFY_PASS = 0,
	/* the chain verified, but the last file ends in a line without a
	   newline: a crash artefact, not counted as a record */
	MW_AUDIT_VERIFY_PASS_TORN,
	MW_AUDIT_VERIFY_FAIL,
};

enum mw_audit_fail_reason {
	MW_AUDIT_OK = 0,
	MW_AUDIT_BAD_JSON,		/* line does not parse / too long */
	MW_AUDIT_BAD_RECORD,		/* schema or non-canonical */
	MW_AUDIT_BAD_START,		/* chain does not start correctly */
	MW_AUDIT_SEQ_GAP,		/* seq higher than expected */
	MW_AUDIT_SEQ_REORDER,		/* seq lower: duplicate/reorder */
	MW_AUDIT_BAD_PREV,		/* prev is not the previous line's hash */
	MW_AUDIT_BAD_MAC,
	MW_AUDIT_BAD_SIGNATURE,		/* checkpoint signature */
	MW_AUDIT_MISSING_SEAL,		/* epoch changed without a seal */
	MW_AUDIT_EPOCH_SKIPPED,		/* epoch jumped by more than one */
	MW_AUDIT_EPOCH_BACKWARDS,
	MW_AUDIT_BAD_EPOCH,		/* epoch record misplaced, record after a
					   seal, key newer than the log */
	MW_AUDIT_BAD_SEAL,		/* seal's record count is wrong */
	MW_AUDIT_CHECKPOINT_MISMATCH,	/* differs from a kept checkpoint */
	MW_AUDIT_TRUNCATED,		/* ends before a kept checkpoint /
					   --expect-seq / --min-checkpoint */
	MW_AUDIT_TORN_INSIDE,		/* unterminated line not at the end */
	MW_AUDIT_BAD_ROOT,		/* checkpoint's Merkle root is not the
					   root of the records before it */
	MW_AUDIT_INCONSISTENT,		/* the log does not extend the tree of
					   a kept checkpoint (--consistency) */
};

/* Short stable name of a reason ("bad-mac", ...), for --json output. */
const char *mw_audit_fail_reason_name(enum mw_audit_fail_reason reason);

struct mw_audit_verify_options {
	/* key file holding K_e for the chain's first epoch or earlier
	   (normally verify.key, epoch 0); NULL = MACs and seals' keys are
	   not checked */
	const char *key_path;
	/* Ed25519 public key (PEM); NULL = checkpoint signatures are not
	   checked */
	const char *pubkey_path;
	/* files of checkpoint lines the auditor kept outside the host */
	const char *const *checkpoint_files;
	unsigned int checkpoint_file_count;
	/* FAIL unless the last verified seq is >= this (0 = no check) */
	uint64_t expect_seq;
	/* FAIL unless a verified checkpoint has seq >= this (0 = none) */
	uint64_t min_checkpoint;
	/* accept a chain whose first record has seq > 1 (older files not
	   given); its prev link is then taken on trust (Merkle roots cannot
	   be checked then) */
	bool partial;
	/* --consistency: checkpoints with a Merkle root that an auditor saw
	   earlier, each given as the checkpoint line itself (starts with
	   '{') or as a file of such lines; the log must extend each one's
	   tree (RFC 9162 consistency proof to the log's newest checkpoint
	   with a root) */
	const char *const *consistency;
	unsigned int consistency_count;
	/* called for every record that verified, in order (line without
	   its newline; obj is the parsed record, valid during the call);
	   NULL = none */
	void (*on_record)(void *context, const char *line, size_t len,
			  const struct mw_json_obj *obj);
	void *on_record_context;
};

struct mw_audit_verify_result {
	enum mw_audit_verify_status status;
	enum mw_audit_fail_reason reason;
	/* FAIL: the lowest seq that could not be verified (all records
	   before it verified), the file (index into paths) and byte offset
	   where the problem was found, and a message */
	uint64_t bad_seq;
	unsigned int bad_file;
	uint64_t bad_offset;
	char message[256];

	uint64_t records;		/* records verified */
	uint64_t first_seq, last_seq;	/* of verified records */
	uint32_t first_epoch, last_epoch;
	uint64_t seals, checkpoints, recovered, kept_checkpoints_matched;
	uint64_t last_seal_seq, last_checkpoint_seq;
	/* records after the last seal or checkpoint that this verification
	   could check (with a key: seal or checkpoint; without: checkpoint
	   only, if the public key is given) */
	uint64_t unsealed_tail;
	bool last_epoch_sealed;
	bool macs_checked, signatures_checked;
	/* checkpoints whose Merkle root was recomputed and matched (only
	   when the chain starts at seq 1) */
	uint64_t roots_checked;
	/* --consistency: kept checkpoints proved, and the proof of the last
	   one: its tree size, the log's checkpoint it was proved against
	   (seq, tree size) and the proof's length in hashes */
	uint64_t consistency_checked;
	uint64_t consistency_old_size, consistency_new_seq;
	uint64_t consistency_new_size;
	unsigned int consistency_hashes;

	/* PASS_TORN: the unterminated tail */
	bool torn;
	unsigned int torn_file;
	uint64_t torn_offset, torn_bytes;
};

/* Verifies the files in order as one chain (rotated files continue the
   sequence). Returns 0 with *result filled (PASS, PASS_TORN or FAIL), or
   -1 with *error_r if a file or key cannot be read (result is then
   undefined). */
int mw_audit_verify_files(const char *const *paths, unsigned int count,
			  const struct mw_audit_verify_options *opts,
			  struct mw_audit_verify_result *result,
			  const char **error_r);

/* --- bounded line reader --- */

struct mw_line_reader {
	FILE *f;
	char *buf;
	size_t size, start, end;
	size_t max_line;
	uint64_t offset;	/* file offset of buf[start] */
	bool eof;
};

/* The reader borrows f. max_line bounds a line (without newline). */
int mw_line_reader_init(struct mw_line_reader *r, FILE *f, size_t max_line);
void mw_line_reader_free(struct mw_line_reader *r);
/* Returns 1 with the next line (*line_r points into the reader, valid
   until the next call; not NUL-terminated, newline excluded), its file
   offset and whether it was terminated by '\n'; 0 at end of file; -1 on
   a read error (errno set); -2 if a line exceeds max_line (the reader
   cannot continue). */
int mw_line_reader_next(struct mw_line_reader *r, const char **line_r,
			size_t *len_r, uint64_t *offset_r, bool *newline_r);

#endif
