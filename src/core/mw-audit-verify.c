/* Streaming verifier of mailward audit logs. See mw-audit-verify.h and
   docs/audit-log.md §8. */

#include "mw-audit-verify.h"
#include "mw-audit-writer.h"
#include "mw-audit-private.h"
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

static const char zero_hash[MW_AUDIT_HASH_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

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

struct kept_checkpoint {
	uint64_t seq;
	char *line;
	size_t len;
};

/* a checkpoint an auditor kept, for --consistency */
struct cons_checkpoint {
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

	struct kept_checkpoint *kept;
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
	struct cons_checkpoint *cons;
	unsigned int cons_count;

	bool failed;
	unsigned int file;
	uint64_t end_offset;
	char error[512];
};

static int vfail(struct verifier *v, enum mw_audit_fail_reason reason,
		 uint64_t seq, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int vfail(struct verifier *v, enum mw_audit_fail_reason reason,
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

static int verr(struct verifier *v, const char **error_r, const char *fmt,
		...) __attribute__((format(printf, 3, 4)));
static int verr(struct verifier *v, const char **error_r, const char *fmt,
		...)
{
	va_list args;

	va_start(args, fmt);
	vsnprintf(v->error, sizeof(v->error), fmt, args);
	va_end(args);
	*error_r = v->error;
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

static bool checkpoint_sig_ok(struct verifier *v)
{
	const struct mw_json_member *host, *seq, *prev, *time, *sig, *root;
	unsigned char sigbin[64];
	EVP_MD_CTX *ctx;
	unsigned int i;
	bool ok;

	host = mw_json_obj_get(&v->obj, "host");
	seq = mw_json_obj_get(&v->obj, "seq");
	prev = mw_json_obj_get(&v->obj, "prev");
	time = mw_json_obj_get(&v->obj, "time");
	sig = mw_json_obj_get(&v->obj, "sig");
	root = mw_json_obj_get(&v->obj, "root");
	for (i = 0; i < 64; i++) {
		char hi = sig->str[2 * i], lo = sig->str[2 * i + 1];

		sigbin[i] = (unsigned char)
			(((hi <= '9' ? hi - '0' : hi - 'a' + 10) << 4) |
			 (lo <= '9' ? lo - '0' : lo - 'a' + 10));
	}
	mw_json_buf_reset(&v->scratch);
	mw_audit_checkpoint_message(&v->scratch, host->str, host->str_len,
				    seq->num, prev->str, time->str,
				    root == NULL ? NULL : root->str);
	if (v->scratch.failed)
		return false;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return false;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, v->pub) == 1 &&
		EVP_DigestVerify(ctx, sigbin, sizeof(sigbin),
				 (const unsigned char *)v->scratch.data,
				 v->scratch.len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
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

static int verify_line(struct verifier *v, const char *line, size_t len,
		       uint64_t offset)
{
	struct mw_audit_verify_result *res = v->res;
	const struct mw_json_member *m_event, *m_prev, *m_mac;
	const char *err, *event;
	uint64_t seq, expected = v->started ? v->next_seq :
		(v->opts->partial ? 0 : 1);
	uint32_t epoch;
	char mac[65];

	if (len > MW_AUDIT_LINE_MAX)
		return vfail(v, MW_AUDIT_BAD_JSON, expected, offset,
			     "line longer than %u bytes", MW_AUDIT_LINE_MAX);
	if (mw_json_parse_object(&v->obj, line, len, &err) < 0)
		return vfail(v, MW_AUDIT_BAD_JSON, expected, offset,
			     "not a JSON record: %s", err);
	if (mw_audit_record_check(&v->obj, line, len, &v->scratch, &err) < 0)
		return vfail(v, MW_AUDIT_BAD_RECORD, expected, offset,
			     "not a valid record: %s", err);
	seq = mw_json_obj_get(&v->obj, "seq")->num;
	epoch = (uint32_t)mw_json_obj_get(&v->obj, "epoch")->num;
	m_event = mw_json_obj_get(&v->obj, "event");
	m_prev = mw_json_obj_get(&v->obj, "prev");
	m_mac = mw_json_obj_get(&v->obj, "mac");
	event = m_event->str;

	if (!v->started) {
		if (seq != 1 && !v->opts->partial)
			return vfail(v, MW_AUDIT_BAD_START, 1, offset,
				     "chain starts at seq %llu, not 1 (earlier "
				     "files or records missing; --partial "
				     "accepts this)", (unsigned long long)seq);
		if (strcmp(event, MW_AUDIT_EV_EPOCH) != 0)
			return vfail(v, MW_AUDIT_BAD_START, seq, offset,
				     "first record is not an epoch record");
		if (seq == 1 && strcmp(m_prev->str, zero_hash) != 0)
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
		res->first_seq = seq;
		res->first_epoch = epoch;
	} else {
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
		if (epoch < v->epoch)
			return vfail(v, MW_AUDIT_EPOCH_BACKWARDS, seq, offset,
				     "epoch went back from %u to %u",
				     v->epoch, epoch);
		if (epoch == v->epoch) {
			if (v->last_was_seal)
				return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
					     "record after the seal of epoch "
					     "%u", epoch);
			if (strcmp(event, MW_AUDIT_EV_EPOCH) == 0)
				return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
					     "epoch record without an epoch "
					     "change");
		} else if (epoch == v->epoch + 1) {
			if (!v->last_was_seal)
				return vfail(v, MW_AUDIT_MISSING_SEAL, seq,
					     offset, "epoch %u ended without "
					     "a seal", v->epoch);
			if (strcmp(event, MW_AUDIT_EV_EPOCH) != 0)
				return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
					     "epoch %u does not begin with an "
					     "epoch record", epoch);
			if (v->have_key && key_to_epoch(v, epoch) < 0)
				return vfail(v, MW_AUDIT_BAD_EPOCH, seq, offset,
					     "key derivation failed");
		} else {
			return vfail(v, MW_AUDIT_EPOCH_SKIPPED, seq, offset,
				     "epoch jumped from %u to %u", v->epoch,
				     epoch);
		}
	}

	if (v->have_key) {
		if (mw_audit_line_mac_hex(v->key, line, len, mac) < 0)
			return vfail(v, MW_AUDIT_BAD_MAC, seq, offset,
				     "HMAC computation failed");
		if (CRYPTO_memcmp(mac, m_mac->str, MW_AUDIT_HASH_HEX_LEN) != 0)
			return vfail(v, MW_AUDIT_BAD_MAC, seq, offset,
				     "MAC does not verify under the epoch %u "
				     "key", epoch);
	}
	if (v->started && strcmp(m_prev->str, v->prev) != 0)
		return vfail(v, MW_AUDIT_BAD_PREV, seq, offset,
			     "prev is not the hash of record %llu",
			     (unsigned long long)(seq - 1));

	if (strcmp(event, MW_AUDIT_EV_SEAL) == 0) {
		uint64_t n = mw_json_obj_get(&v->obj, "records")->num;

		if (n != v->epoch_count)
			return vfail(v, MW_AUDIT_BAD_SEAL, seq, offset,
				     "seal of epoch %u counts %llu records, "
				     "the log has %llu", epoch,
				     (unsigned long long)n,
				     (unsigned long long)v->epoch_count);
	} else if (strcmp(event, MW_AUDIT_EV_CHECKPOINT) == 0) {
		const struct mw_json_member *m_root =
			mw_json_obj_get(&v->obj, "root");
		mw_merkle_hash root;

		if (v->pub != NULL && !checkpoint_sig_ok(v))
			return vfail(v, MW_AUDIT_BAD_SIGNATURE, seq, offset,
				     "checkpoint signature does not verify");
		if (m_root != NULL) {
			if (mw_hex_decode(m_root->str, root,
					  sizeof(root)) < 0)
				return vfail(v, MW_AUDIT_BAD_RECORD, seq,
					     offset, "bad root");
			if (v->tree_from_start) {
				mw_merkle_hash want;

				if (v->range.size != seq - 1 ||
				    mw_merkle_range_root(&v->range,
							 want) < 0)
					return vfail(v, MW_AUDIT_BAD_ROOT, seq,
						     offset, "Merkle tree "
						     "computation failed");
				if (CRYPTO_memcmp(want, root,
						  sizeof(root)) != 0)
					return vfail(v, MW_AUDIT_BAD_ROOT, seq,
						     offset, "checkpoint root "
						     "is not the Merkle root "
						     "of records 1..%llu",
						     (unsigned long long)
						     (seq - 1));
				res->roots_checked++;
			}
			v->root_seq = seq;
			memcpy(v->root, root, sizeof(root));
			snprintf(v->root_host, sizeof(v->root_host), "%s",
				 mw_json_obj_get(&v->obj, "host")->str);
		}
	}

	while (v->kept_next < v->kept_count &&
	       v->kept[v->kept_next].seq <= seq) {
		struct kept_checkpoint *k = &v->kept[v->kept_next];

		if (k->seq == seq) {
			if (k->len != len || memcmp(k->line, line, len) != 0)
				return vfail(v, MW_AUDIT_CHECKPOINT_MISMATCH,
					     seq, offset, "record %llu differs "
					     "from the kept checkpoint",
					     (unsigned long long)seq);
			res->kept_checkpoints_matched++;
		}
		v->kept_next++;
	}

	/* the record verified: advance */
	if (mw_audit_sha256_hex(line, len, v->prev) < 0)
		return vfail(v, MW_AUDIT_BAD_JSON, seq, offset, "SHA-256 failed");
	if (!v->started)
		v->tree_from_start = seq == 1;
	if (v->tree_from_start) {
		mw_merkle_hash leaf;

		if (mw_merkle_leaf_hash(line, len, leaf) < 0 ||
		    mw_merkle_range_append(&v->range, leaf) < 0 ||
		    (v->keep_tree && mw_merkle_tree_append(&v->tree,
							   leaf) < 0))
			return vfail(v, MW_AUDIT_BAD_ROOT, seq, offset,
				     "Merkle tree computation failed (out of "
				     "memory?)");
	}
	if (v->opts->on_record != NULL)
		v->opts->on_record(v->opts->on_record_context, line, len,
				   &v->obj);
	if (epoch != v->epoch) {
		v->epoch = epoch;
		v->epoch_count = 0;
	}
	v->started = true;
	v->next_seq = seq + 1;
	v->last_was_seal = false;
	if (strcmp(event, MW_AUDIT_EV_SEAL) == 0) {
		v->last_was_seal = true;
		res->seals++;
		res->last_seal_seq = seq;
	} else {
		v->epoch_count++;
		if (strcmp(event, MW_AUDIT_EV_CHECKPOINT) == 0) {
			res->checkpoints++;
			res->last_checkpoint_seq = seq;
			if (v->pub != NULL || v->opts->pubkey_path == NULL)
				v->last_signed_cp_seq = seq;
		} else if (strcmp(event, MW_AUDIT_EV_RECOVERED) == 0) {
			res->recovered++;
		}
	}
	res->records++;
	res->last_seq = seq;
	res->last_epoch = epoch;
	return 0;
}

static int kept_cmp(const void *a, const void *b)
{
	const struct kept_checkpoint *ka = a, *kb = b;

	return ka->seq < kb->seq ? -1 : ka->seq > kb->seq ? 1 : 0;
}

static int load_kept(struct verifier *v, const char *path,
		     const char **error_r)
{
	struct mw_line_reader r;
	const char *line, *err;
	struct kept_checkpoint *k;
	uint64_t offset;
	size_t len;
	bool nl;
	int ret;
	unsigned int lineno = 0;
	FILE *f;

	f = fopen(path, "re");
	if (f == NULL)
		return verr_open(v, error_r, "checkpoint file", path, errno);
	if (mw_line_reader_init(&r, f, MW_AUDIT_LINE_MAX) < 0) {
		fclose(f);
		return verr(v, error_r, "out of memory");
	}
	while ((ret = mw_line_reader_next(&r, &line, &len, &offset, &nl)) > 0) {
		lineno++;
		if (len == 0)
			continue;
		if (mw_json_parse_object(&v->obj, line, len, &err) < 0 ||
		    mw_audit_record_check(&v->obj, line, len, &v->scratch,
					  &err) < 0 ||
		    strcmp(mw_json_obj_get(&v->obj, "event")->str,
			   MW_AUDIT_EV_CHECKPOINT) != 0) {
			ret = verr(v, error_r, "%s line %u is not a checkpoint "
				   "record", path, lineno);
			break;
		}
		if (v->pub != NULL && !checkpoint_sig_ok(v)) {
			ret = verr(v, error_r, "%s line %u: kept checkpoint's "
				   "signature does not verify", path, lineno);
			break;
		}
		k = realloc(v->kept, (v->kept_count + 1) * sizeof(*k));
		if (k == NULL) {
			ret = verr(v, error_r, "out of memory");
			break;
		}
		v->kept = k;
		k = &v->kept[v->kept_count];
		k->seq = mw_json_obj_get(&v->obj, "seq")->num;
		k->len = len;
		k->line = malloc(len);
		if (k->line == NULL) {
			ret = verr(v, error_r, "out of memory");
			break;
		}
		memcpy(k->line, line, len);
		v->kept_count++;
	}
	if (ret == -1 && v->error[0] == '\0')
		verr(v, error_r, "read(%s) failed: %s", path, strerror(errno));
	else if (ret == -2)
		ret = verr(v, error_r, "%s: line too long", path);
	mw_line_reader_free(&r);
	fclose(f);
	return ret < 0 ? -1 : 0;
}

/* adds the checkpoint line[0..len) to v->cons (what = where it came
   from, for errors) */
static int cons_add_line(struct verifier *v, const char *line, size_t len,
			 const char *what, const char **error_r)
{
	const struct mw_json_member *root;
	struct cons_checkpoint *c;
	const char *err;

	if (mw_json_parse_object(&v->obj, line, len, &err) < 0 ||
	    mw_audit_record_check(&v->obj, line, len, &v->scratch,
				  &err) < 0 ||
	    strcmp(mw_json_obj_get(&v->obj, "event")->str,
		   MW_AUDIT_EV_CHECKPOINT) != 0)
		return verr(v, error_r, "%s is not a checkpoint record", what);
	root = mw_json_obj_get(&v->obj, "root");
	if (root == NULL)
		return verr(v, error_r, "%s has no Merkle root (a format v1 "
			    "checkpoint; use --checkpoint-file for it)", what);
	if (v->pub != NULL && !checkpoint_sig_ok(v))
		return verr(v, error_r, "%s: kept checkpoint's signature does "
			    "not verify", what);
	c = realloc(v->cons, (v->cons_count + 1) * sizeof(*c));
	if (c == NULL)
		return verr(v, error_r, "out of memory");
	v->cons = c;
	c = &v->cons[v->cons_count++];
	c->seq = mw_json_obj_get(&v->obj, "seq")->num;
	snprintf(c->host, sizeof(c->host), "%s",
		 mw_json_obj_get(&v->obj, "host")->str);
	(void)mw_hex_decode(root->str, c->root, sizeof(c->root));
	return 0;
}

static int load_consistency(struct verifier *v, const char *arg,
			    const char **error_r)
{
	struct mw_line_reader r;
	const char *line;
	char what[PATH_MAX + 32];
	uint64_t offset;
	unsigned int lineno = 0;
	size_t len;
	bool nl;
	int ret;
	FILE *f;

	if (arg[0] == '{')
		return cons_add_line(v, arg, strlen(arg), "--consistency line",
				     error_r);
	f = fopen(arg, "re");
	if (f == NULL)
		return verr_open(v, error_r, "checkpoint file", arg, errno);
	if (mw_line_reader_init(&r, f, MW_AUDIT_LINE_MAX) < 0) {
		fclose(f);
		return verr(v, error_r, "out of memory");
	}
	while ((ret = mw_line_reader_next(&r, &line, &len, &offset, &nl)) > 0) {
		lineno++;
		if (len == 0)
			continue;
		snprintf(what, sizeof(what), "%s line %u", arg, lineno);
		if (cons_add_line(v, line, len, what, error_r) < 0)
			break;
	}
	if (ret == -1)
		verr(v, error_r, "read(%s) failed: %s", arg, strerror(errno));
	else if (ret == -2)
		verr(v, error_r, "%s: line too long", arg);
	else if (ret == 0 && lineno == 0)
		ret = verr(v, error_r, "%s: no checkpoint in it", arg);
	mw_line_reader_free(&r);
	fclose(f);
	return ret < 0 ? -1 : 0;
}

/* --consistency: every kept tree is a prefix of the log's newest tree */
static void check_consistency(struct verifier *v)
{
	struct mw_audit_verify_result *res = v->res;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH];
	unsigned int i, count;

	for (i = 0; i < v->cons_count && !v->failed; i++) {
		const struct cons_checkpoint *c = &v->cons[i];

		if (!v->tree_from_start) {
			vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			      "--consistency needs the log from seq 1");
			return;
		}
		if (v->root_seq < c->seq) {
			vfail(v, MW_AUDIT_TRUNCATED, res->last_seq + 1,
			      v->end_offset, "the kept checkpoint seq %llu "
			      "covers %llu records, the log's newest "
			      "checkpoint with a Merkle root is seq %llu: "
			      "records were removed from the end",
			      (unsigned long long)c->seq,
			      (unsigned long long)(c->seq - 1),
			      (unsigned long long)v->root_seq);
			return;
		}
		if (strcmp(c->host, v->root_host) != 0) {
			vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			      "the kept checkpoint is from host %s, the log "
			      "from host %s", c->host, v->root_host);
			return;
		}
		if (mw_merkle_tree_consistency_proof(&v->tree, c->seq - 1,
						     v->root_seq - 1, path,
						     &count) < 0 ||
		    mw_merkle_verify_consistency(c->seq - 1, v->root_seq - 1,
						 c->root, v->root, path,
						 count) < 0) {
			vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			      "the log does not extend the tree of the kept "
			      "checkpoint seq %llu (records 1..%llu were "
			      "changed, removed or reordered): the consistency "
			      "proof to checkpoint seq %llu fails",
			      (unsigned long long)c->seq,
			      (unsigned long long)(c->seq - 1),
			      (unsigned long long)v->root_seq);
			return;
		}
		res->consistency_checked++;
		res->consistency_old_size = c->seq - 1;
		res->consistency_new_seq = v->root_seq;
		res->consistency_new_size = v->root_seq - 1;
		res->consistency_hashes = count;
	}
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

	f = fopen(path, "re");
	if (f == NULL)
		return verr_open(v, error_r, "log file", path, errno);
	if (mw_line_reader_init(&r, f, MW_AUDIT_LINE_MAX) < 0) {
		fclose(f);
		return verr(v, error_r, "out of memory");
	}
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
	check_consistency(v);
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
		v.pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
		fclose(f);
		if (v.pub == NULL ||
		    EVP_PKEY_get_id(v.pub) != EVP_PKEY_ED25519) {
			verr(&v, error_r, "%s is not an Ed25519 public key "
			     "(PEM)", opts->pubkey_path);
			goto out;
		}
		result->signatures_checked = true;
	}
	for (i = 0; i < opts->checkpoint_file_count; i++) {
		if (load_kept(&v, opts->checkpoint_files[i], error_r) < 0)
			goto out;
	}
	if (v.kept_count > 0)
		qsort(v.kept, v.kept_count, sizeof(*v.kept), kept_cmp);
	for (i = 0; i < opts->consistency_count; i++) {
		if (load_consistency(&v, opts->consistency[i], error_r) < 0)
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
