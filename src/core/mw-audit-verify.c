/* Streaming verifier of mailward audit logs. See mw-audit-verify.h and
   docs/audit-log.md §8. */

#include "mw-audit-verify.h"
#include "mw-audit-writer.h"
#include "mw-audit-private.h"
#include "mw-audit-verify-private.h"
#include "mw-merkle.h"
#include "mw-util.h"
#include "mw-json.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* keys derived at most this far ahead of the last verified epoch: 2^20
   hourly epochs are 119 years, and a crafted log cannot make verify spend
   more than a few seconds deriving keys (6.8 us each) */
#define MW_AUDIT_MAX_EPOCH_DISTANCE (1U << 20)

static const char *const reason_names[] = {
	[MW_AUDIT_OK] = "ok",
	[MW_AUDIT_BAD_JSON] = "bad-json",
	[MW_AUDIT_BAD_RECORD] = "bad-record",
	[MW_AUDIT_BAD_START] = "bad-start",
	[MW_AUDIT_SEQ_GAP] = "seq-gap",
	[MW_AUDIT_SEQ_REORDER] = "seq-reorder",
	[MW_AUDIT_BAD_PREV] = "bad-prev",
	[MW_AUDIT_BAD_MAC] = "bad-mac",
	[MW_AUDIT_BAD_SIGNATURE] = "bad-signature",
	[MW_AUDIT_MISSING_SEAL] = "missing-seal",
	[MW_AUDIT_EPOCH_SKIPPED] = "epoch-skipped",
	[MW_AUDIT_EPOCH_BACKWARDS] = "epoch-backwards",
	[MW_AUDIT_BAD_EPOCH] = "bad-epoch",
	[MW_AUDIT_BAD_SEAL] = "bad-seal",
	[MW_AUDIT_CHECKPOINT_MISMATCH] = "checkpoint-mismatch",
	[MW_AUDIT_TRUNCATED] = "truncated",
	[MW_AUDIT_TORN_INSIDE] = "torn-inside",
	[MW_AUDIT_BAD_ROOT] = "bad-root",
	[MW_AUDIT_INCONSISTENT] = "inconsistent",
};

const char *mw_audit_fail_reason_name(enum mw_audit_fail_reason reason)
{
	if ((unsigned int)reason < sizeof(reason_names) / sizeof(reason_names[0]))
		return reason_names[reason];
	return "unknown";
}

/* --- line reader --- */

int mw_line_reader_init(struct mw_line_reader *r, FILE *f, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	r->f = f;
	r->max_line = max_line;
	r->size = max_line + 65536;
	r->buf = malloc(r->size);
	return r->buf == NULL ? -1 : 0;
}

void mw_line_reader_free(struct mw_line_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

int mw_line_reader_next(struct mw_line_reader *r, const char **line_r,
			size_t *len_r, uint64_t *offset_r, bool *newline_r)
{
	char *nl;
	size_t n, len;

	for (;;) {
		nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl != NULL) {
			len = (size_t)(nl - (r->buf + r->start));
			if (len > r->max_line)
				return -2;
			*line_r = r->buf + r->start;
			*len_r = len;
			*offset_r = r->offset;
			*newline_r = true;
			r->offset += len + 1;
			r->start += len + 1;
			return 1;
		}
		if (r->end - r->start > r->max_line)
			return -2;
		if (r->eof) {
			if (r->end == r->start)
				return 0;
			*line_r = r->buf + r->start;
			*len_r = r->end - r->start;
			*offset_r = r->offset;
			*newline_r = false;
			r->offset += *len_r;
			r->start = r->end;
			return 1;
		}
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
		n = fread(r->buf + r->end, 1, r->size - r->end, r->f);
		if (n == 0) {
			if (ferror(r->f))
				return -1;
			r->eof = true;
		}
		r->end += n;
	}
}

/* --- verifier --- */

int mw_audit_vfail(struct verifier *v, enum mw_audit_fail_reason reason,
		   uint64_t seq, uint64_t offset, const char *fmt, ...)
{
	va_list args;

	if (v->failed)
		return -1;
	v->failed = true;
	v->res->status = MW_AUDIT_VERIFY_FAIL;
	v->res->reason = reason;
	v->res->bad_seq = seq;
	v->res->bad_file = v->file;
	v->res->bad_offset = offset;
	va_start(args, fmt);
	vsnprintf(v->res->message, sizeof(v->res->message), fmt, args);
	va_end(args);
	return -1;
}

/* an input file cannot be opened: what (role), where, why */
static int verr_open(struct verifier *v, const char **error_r,
		     const char *role, const char *path, int err)
{
	char hint[MW_HINT_MAX];

	return verr(v, error_r, "%s %s: open failed: %s%s", role, path,
		    strerror(err), mw_access_hint(path, err, hint,
						  sizeof(hint)));
}

int mw_audit_verify_open(struct verifier *v, const char *role,
			 const char *path, FILE **f_r,
			 struct mw_line_reader *r, const char **error_r)
{
	*f_r = fopen(path, "re");
	if (*f_r == NULL)
		return verr_open(v, error_r, role, path, errno);
	if (mw_line_reader_init(r, *f_r, MW_AUDIT_LINE_MAX) < 0) {
		fclose(*f_r);
		return verr(v, error_r, "out of memory");
	}
	return 0;
}

/* advances v->key to epoch (>= key_epoch) */
static int key_to_epoch(struct verifier *v, uint32_t epoch)
{
	while (v->key_epoch < epoch) {
		if (mw_audit_key_next(v->key, v->key_epoch + 1, v->key) < 0)
			return -1;
		v->key_epoch++;
	}
	return 0;
}

/* the record being verified */
struct vrec {
	const char *line;
	size_t len;
	uint64_t offset;
	uint64_t seq;
	uint32_t epoch;
	const char *event;
	const char *prev;
	const char *mac;
};

/* Parses and schema-checks the line into v->obj and rec. */
static int parse_record(struct verifier *v, struct vrec *rec)
{
	uint64_t expected = v->started ? v->next_seq :
		(v->opts->partial ? 0 : 1);
	const char *err;

	if (rec->len > MW_AUDIT_LINE_MAX)
		return vfail(v, MW_AUDIT_BAD_JSON, expected, rec->offset,
			     "line longer than %u bytes", MW_AUDIT_LINE_MAX);
	if (mw_json_parse_object(&v->obj, rec->line, rec->len, &err) < 0)
		return vfail(v, MW_AUDIT_BAD_JSON, expected, rec->offset,
			     "not a JSON record: %s", err);
	if (mw_audit_record_check(&v->obj, rec->line, rec->len, &v->scratch,
				  &err) < 0)
		return vfail(v, MW_AUDIT_BAD_RECORD, expected, rec->offset,
			     "not a valid record: %s", err);
	rec->seq = mw_json_obj_get(&v->obj, "seq")->num;
	rec->epoch = (uint32_t)mw_json_obj_get(&v->obj, "epoch")->num;
	rec->event = mw_json_obj_get(&v->obj, "event")->str;
	rec->prev = mw_json_obj_get(&v->obj, "prev")->str;
	rec->mac = mw_json_obj_get(&v->obj, "mac")->str;
	return 0;
}

/* The first record: where the chain starts, and the key's epoch. */
static int check_start(struct verifier *v, const struct vrec *rec)
{
	uint64_t seq = rec->seq, offset = rec->offset;
	uint32_t epoch = rec->epoch;

	if (seq != 1 && !v->opts->partial)
		return vfail(v, MW_AUDIT_BAD_START, 1, offset,
			     "chain starts at seq %llu, not 1 (earlier "
			     "files or records missing; --partial "
			     "accepts this)", (unsigned long long)seq);
	if (strcmp(rec->event, MW_AUDIT_EV_EPOCH) != 0)
		return vfail(v, MW_AUDIT_BAD_START, seq, offset,
			     "first record is not an epoch record");
	if (seq == 1 && strcmp(rec->prev, MW_AUDIT_ZERO_HASH) != 0)
		return vfail(v, MW_AUDIT_BAD_PREV, seq, offset,
			     "seq 1 must have an all-zero prev");
	if (v->have_key) {
		if (epoch < v->key_epoch)
			return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
				     "record of epoch %u but the key "
				     "is for epoch %u (a later key "
				     "cannot verify earlier epochs)",
				     epoch, v->key_epoch);
		if (epoch - v->key_epoch > MW_AUDIT_MAX_EPOCH_DISTANCE)
			return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
				     "epoch %u implausibly far from "
				     "the key's epoch %u", epoch,
				     v->key_epoch);
		if (key_to_epoch(v, epoch) < 0)
			return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
				     "key derivation failed");
	}
	v->epoch = epoch;
	v->epoch_count = 0;
	v->last_was_seal = false;
	v->res->first_seq = seq;
	v->res->first_epoch = epoch;
	return 0;
}

/* A record of the same epoch as the one before it, or of the next. */
static int check_epoch_step(struct verifier *v, const struct vrec *rec)
{
	uint64_t seq = rec->seq, offset = rec->offset;
	uint32_t epoch = rec->epoch;

	if (epoch == v->epoch) {
		if (v->last_was_seal)
			return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
				     "record after the seal of epoch "
				     "%u", epoch);
		if (strcmp(rec->event, MW_AUDIT_EV_EPOCH) == 0)
			return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
				     "epoch record without an epoch "
				     "change");
		return 0;
	}
	if (epoch != v->epoch + 1)
		return vfail(v, MW_AUDIT_EPOCH_SKIPPED, seq, offset,
			     "epoch jumped from %u to %u", v->epoch,
			     epoch);
	if (!v->last_was_seal)
		return vfail(v, MW_AUDIT_MISSING_SEAL, seq,
			     offset, "epoch %u ended without "
			     "a seal", v->epoch);
	if (strcmp(rec->event, MW_AUDIT_EV_EPOCH) != 0)
		return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
			     "epoch %u does not begin with an "
			     "epoch record", epoch);
	if (v->have_key && key_to_epoch(v, epoch) < 0)
		return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
			     "key derivation failed");
	return 0;
}

/* A record after the first: its seq and epoch follow the last one's. */
static int check_next(struct verifier *v, const struct vrec *rec)
{
	uint64_t seq = rec->seq, offset = rec->offset;

	if (seq > v->next_seq)
		return vfail(v, MW_AUDIT_SEQ_GAP, v->next_seq, offset,
			     "seq gap: expected %llu, found %llu "
			     "(records missing)",
			     (unsigned long long)v->next_seq,
			     (unsigned long long)seq);
	if (seq < v->next_seq)
		return vfail(v, MW_AUDIT_SEQ_REORDER, v->next_seq,
			     offset, "seq went back: expected %llu, "
			     "found %llu (duplicated or reordered "
			     "record)", (unsigned long long)v->next_seq,
			     (unsigned long long)seq);
	if (rec->epoch < v->epoch)
		return vfail(v, MW_AUDIT_EPOCH_BACKWARDS, seq, offset,
			     "epoch went back from %u to %u",
			     v->epoch, rec->epoch);
	return check_epoch_step(v, rec);
}

/* The record's MAC (with the key) and its link to the one before. */
static int check_chain(struct verifier *v, const struct vrec *rec)
{
	char mac[65];

	if (v->have_key) {
		if (mw_audit_line_mac_hex(v->key, rec->line, rec->len,
					  mac) < 0)
			return vfail(v, MW_AUDIT_BAD_MAC, rec->seq,
				     rec->offset, "HMAC computation failed");
		if (CRYPTO_memcmp(mac, rec->mac, MW_AUDIT_HASH_HEX_LEN) != 0)
			return vfail(v, MW_AUDIT_BAD_MAC, rec->seq,
				     rec->offset, "MAC does not verify under "
				     "the epoch %u key", rec->epoch);
	}
	if (v->started && strcmp(rec->prev, v->prev) != 0)
		return vfail(v, MW_AUDIT_BAD_PREV, rec->seq, rec->offset,
			     "prev is not the hash of record %llu",
			     (unsigned long long)(rec->seq - 1));
	return 0;
}

/* A checkpoint: its signature (with the public key) and its Merkle
   root (when the records so far start the chain). */
static int check_checkpoint(struct verifier *v, const struct vrec *rec)
{
	const struct mw_json_member *m_root =
		mw_json_obj_get(&v->obj, "root");
	uint64_t seq = rec->seq, offset = rec->offset;
	mw_merkle_hash root, want;

	if (v->pub != NULL && !mw_audit_checkpoint_verify(&v->obj, v->pub,
						       &v->scratch))
		return vfail(v, MW_AUDIT_BAD_SIGNATURE, seq, offset,
			     "checkpoint signature does not verify");
	if (m_root == NULL)
		return 0;
	if (mw_hex_decode(m_root->str, root, sizeof(root)) < 0)
		return vfail(v, MW_AUDIT_BAD_RECORD, seq, offset, "bad root");
	if (v->tree_from_start) {
		if (v->range.size != seq - 1 ||
		    mw_merkle_range_root(&v->range, want) < 0)
			return vfail(v, MW_AUDIT_BAD_ROOT, seq, offset,
				     "Merkle tree computation failed");
		if (CRYPTO_memcmp(want, root, sizeof(root)) != 0)
			return vfail(v, MW_AUDIT_BAD_ROOT, seq, offset,
				     "checkpoint root is not the Merkle root "
				     "of records 1..%llu",
				     (unsigned long long)(seq - 1));
		v->res->roots_checked++;
	}
	v->root_seq = seq;
	memcpy(v->root, root, sizeof(root));
	snprintf(v->root_host, sizeof(v->root_host), "%s",
		 mw_json_obj_get(&v->obj, "host")->str);
	return 0;
}

/* What the writer's own events claim: a seal's record count, a
   checkpoint's signature and root. */
static int check_event(struct verifier *v, const struct vrec *rec)
{
	if (strcmp(rec->event, MW_AUDIT_EV_SEAL) == 0) {
		uint64_t n = mw_json_obj_get(&v->obj, "records")->num;

		if (n != v->epoch_count)
			return vfail(v, MW_AUDIT_BAD_SEAL, rec->seq,
				     rec->offset, "seal of epoch %u counts "
				     "%llu records, the log has %llu",
				     rec->epoch, (unsigned long long)n,
				     (unsigned long long)v->epoch_count);
	} else if (strcmp(rec->event, MW_AUDIT_EV_CHECKPOINT) == 0) {
		return check_checkpoint(v, rec);
	}
	return 0;
}

/* The record equals the kept checkpoint of its seq, if there is one. */
static int check_kept(struct verifier *v, const struct vrec *rec)
{
	while (v->kept_next < v->kept_count &&
	       v->kept[v->kept_next].seq <= rec->seq) {
		struct mw_audit_kept_checkpoint *k = &v->kept[v->kept_next];

		if (k->seq == rec->seq) {
			if (k->len != rec->len ||
			    memcmp(k->line, rec->line, rec->len) != 0)
				return vfail(v, MW_AUDIT_CHECKPOINT_MISMATCH,
					     rec->seq, rec->offset, "record "
					     "%llu differs from the kept "
					     "checkpoint",
					     (unsigned long long)rec->seq);
			v->res->kept_checkpoints_matched++;
		}
		v->kept_next++;
	}
	return 0;
}

/* The record verified: the chain, the tree and the counts advance. */
static int advance(struct verifier *v, const struct vrec *rec)
{
	struct mw_audit_verify_result *res = v->res;

	if (mw_audit_sha256_hex(rec->line, rec->len, v->prev) < 0)
		return vfail(v, MW_AUDIT_BAD_JSON, rec->seq, rec->offset,
			     "SHA-256 failed");
	if (!v->started)
		v->tree_from_start = rec->seq == 1;
	if (v->tree_from_start) {
		mw_merkle_hash leaf;

		if (mw_merkle_leaf_hash(rec->line, rec->len, leaf) < 0 ||
		    mw_merkle_range_append(&v->range, leaf) < 0 ||
		    (v->keep_tree && mw_merkle_tree_append(&v->tree,
							   leaf) < 0))
			return vfail(v, MW_AUDIT_BAD_ROOT, rec->seq,
				     rec->offset, "Merkle tree computation "
				     "failed (out of memory?)");
	}
	if (v->opts->on_record != NULL)
		v->opts->on_record(v->opts->on_record_context, rec->line,
				   rec->len, &v->obj);
	if (rec->epoch != v->epoch) {
		v->epoch = rec->epoch;
		v->epoch_count = 0;
	}
	v->started = true;
	v->next_seq = rec->seq + 1;
	v->last_was_seal = false;
	if (strcmp(rec->event, MW_AUDIT_EV_SEAL) == 0) {
		v->last_was_seal = true;
		res->seals++;
		res->last_seal_seq = rec->seq;
	} else {
		v->epoch_count++;
		if (strcmp(rec->event, MW_AUDIT_EV_CHECKPOINT) == 0) {
			res->checkpoints++;
			res->last_checkpoint_seq = rec->seq;
			if (v->pub != NULL || v->opts->pubkey_path == NULL)
				v->last_signed_cp_seq = rec->seq;
		} else if (strcmp(rec->event, MW_AUDIT_EV_RECOVERED) == 0) {
			res->recovered++;
		}
	}
	res->records++;
	res->last_seq = rec->seq;
	res->last_epoch = rec->epoch;
	return 0;
}

static int verify_line(struct verifier *v, const char *line, size_t len,
		       uint64_t offset)
{
	struct vrec rec = { .line = line, .len = len, .offset = offset };

	if (parse_record(v, &rec) < 0)
		return -1;
	if ((v->started ? check_next(v, &rec) : check_start(v, &rec)) < 0 ||
	    check_chain(v, &rec) < 0 || check_event(v, &rec) < 0 ||
	    check_kept(v, &rec) < 0)
		return -1;
	return advance(v, &rec);
}

static int verify_file(struct verifier *v, const char *path, bool last,
		       const char **error_r)
{
	struct mw_line_reader r;
	const char *line;
	uint64_t offset;
	size_t len;
	bool nl;
	int ret = 0;
	FILE *f;

	if (mw_audit_verify_open(v, "log file", path, &f, &r, error_r) < 0)
		return -1;
	while (!v->failed &&
	       (ret = mw_line_reader_next(&r, &line, &len, &offset, &nl)) > 0) {
		if (!nl) {
			if (!last) {
				vfail(v, MW_AUDIT_TORN_INSIDE, v->started ?
				      v->next_seq : 1, offset,
				      "unterminated line (%zu bytes) at the "
				      "end of a file that is not the last", len);
				break;
			}
			v->res->torn = true;
			v->res->torn_file = v->file;
			v->res->torn_offset = offset;
			v->res->torn_bytes = len;
			break;
		}
		(void)verify_line(v, line, len, offset);
		v->end_offset = offset + len + 1;
	}
	if (!v->failed && ret == -2)
		vfail(v, MW_AUDIT_BAD_JSON, v->started ? v->next_seq : 1,
		      r.offset, "line longer than %u bytes", MW_AUDIT_LINE_MAX);
	mw_line_reader_free(&r);
	if (!v->failed && ret == -1) {
		fclose(f);
		return verr(v, error_r, "read(%s) failed: %s", path,
			    strerror(errno));
	}
	fclose(f);
	return 0;
}

static void verifier_free(struct verifier *v)
{
	unsigned int i;

	for (i = 0; i < v->kept_count; i++)
		free(v->kept[i].line);
	free(v->kept);
	free(v->cons);
	mw_merkle_tree_free(&v->tree);
	EVP_PKEY_free(v->pub);
	OPENSSL_cleanse(v->key, sizeof(v->key));
	mw_audit_hmac_free();
	mw_json_obj_free(&v->obj);
	mw_json_buf_free(&v->scratch);
}

static void finish(struct verifier *v)
{
	struct mw_audit_verify_result *res = v->res;
	uint64_t anchor = 0;
	unsigned int i;

	if (v->failed)
		return;
	if (!v->started) {
		vfail(v, MW_AUDIT_BAD_START, 1, v->end_offset,
		      "no records");
		return;
	}
	for (i = v->kept_next; i < v->kept_count; i++) {
		if (v->kept[i].seq > res->last_seq) {
			vfail(v, MW_AUDIT_TRUNCATED, res->last_seq + 1,
			      v->end_offset, "log ends at seq %llu, but a kept "
			      "checkpoint has seq %llu: records were removed "
			      "from the end", (unsigned long long)res->last_seq,
			      (unsigned long long)v->kept[i].seq);
			return;
		}
	}
	mw_audit_check_consistency(v);
	if (v->failed)
		return;
	if (v->opts->expect_seq > res->last_seq) {
		vfail(v, MW_AUDIT_TRUNCATED, res->last_seq + 1, v->end_offset,
		      "log ends at seq %llu, expected at least %llu",
		      (unsigned long long)res->last_seq,
		      (unsigned long long)v->opts->expect_seq);
		return;
	}
	if (v->opts->min_checkpoint > 0 &&
	    v->last_signed_cp_seq < v->opts->min_checkpoint) {
		vfail(v, MW_AUDIT_TRUNCATED, res->last_seq + 1, v->end_offset,
		      "no checkpoint at or after seq %llu (last: %llu)",
		      (unsigned long long)v->opts->min_checkpoint,
		      (unsigned long long)v->last_signed_cp_seq);
		return;
	}
	if (v->have_key && res->last_seal_seq > anchor)
		anchor = res->last_seal_seq;
	if (v->pub != NULL && res->last_checkpoint_seq > anchor)
		anchor = res->last_checkpoint_seq;
	res->unsealed_tail = anchor == 0 ? res->records :
		res->last_seq - anchor;
	res->last_epoch_sealed = v->last_was_seal;
	res->status = res->torn ? MW_AUDIT_VERIFY_PASS_TORN :
		MW_AUDIT_VERIFY_PASS;
}

int mw_audit_verify_files(const char *const *paths, unsigned int count,
			  const struct mw_audit_verify_options *opts,
			  struct mw_audit_verify_result *result,
			  const char **error_r)
{
	struct verifier v;
	const char *kerr;
	unsigned int i;
	int ret = -1;

	*error_r = NULL;
	memset(result, 0, sizeof(*result));
	memset(&v, 0, sizeof(v));
	v.opts = opts;
	v.res = result;
	mw_json_obj_init(&v.obj);
	mw_json_buf_init(&v.scratch);
	mw_merkle_range_init(&v.range);
	mw_merkle_tree_init(&v.tree);

	if (opts->key_path != NULL) {
		if (mw_audit_key_load(opts->key_path, &v.key_epoch, v.key,
				      &kerr) < 0) {
			verr(&v, error_r, "verify key file: %s", kerr);
			goto out;
		}
		v.have_key = true;
		result->macs_checked = true;
	}
	if (opts->pubkey_path != NULL) {
		FILE *f = fopen(opts->pubkey_path, "re");

		if (f == NULL) {
			verr_open(&v, error_r, "public key file",
				  opts->pubkey_path, errno);
			goto out;
		}
		v.pub = mw_audit_pubkey_read(f);
		fclose(f);
		if (v.pub == NULL) {
			verr(&v, error_r, "%s is not an Ed25519 public key "
			     "(PEM)", opts->pubkey_path);
			goto out;
		}
		result->signatures_checked = true;
	}
	for (i = 0; i < opts->checkpoint_file_count; i++) {
		if (mw_audit_load_kept(&v, opts->checkpoint_files[i],
				       error_r) < 0)
			goto out;
	}
	mw_audit_sort_kept(&v);
	for (i = 0; i < opts->consistency_count; i++) {
		if (mw_audit_load_consistency(&v, opts->consistency[i],
					      error_r) < 0)
			goto out;
	}
	v.keep_tree = v.cons_count > 0;

	for (i = 0; i < count && !v.failed; i++) {
		v.file = i;
		v.end_offset = 0;
		if (verify_file(&v, paths[i], i + 1 == count, error_r) < 0)
			goto out;
	}
	finish(&v);
	ret = 0;
out:
	/* the error may be in v, which lives on this stack frame */
	if (ret < 0)
		(void)mw_audit_fail_static(error_r, "%s", *error_r != NULL ?
					   *error_r : "unknown error");
	verifier_free(&v);
	return ret;
}
