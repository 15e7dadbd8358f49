/* mailward-audit prove / verify-proof: a self-contained bundle with
   selected records, a Merkle inclusion proof for each and the signed
   checkpoint they rest on, checkable with the public key alone. The
   format is specified in docs/audit-log.md §12. */

#include "mailward-audit.h"
#include "mw-audit-writer.h"
#include "mw-audit-verify.h"
#include "mw-json.h"
#include "mw-merkle.h"
#include "mw-util.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#define BUNDLE_NAME "mailward-proof"
#define BUNDLE_VERSION 1
/* a bundle line holds one record line, escaped (at most 6 bytes per
   byte of a JSON string are never reached: the line is UTF-8 without
   controls, so only '"' and '\\' double), plus the path */
#define BUNDLE_LINE_MAX (2 * MW_AUDIT_LINE_MAX + 8192)

struct saved_line {
	uint64_t seq;
	char *line;
	size_t len;
};

struct prove_ctx {
	const char *user;
	struct time_range range;
	bool have_seq;
	uint64_t seq;

	struct mw_merkle_tree tree;
	struct saved_line cp;		/* newest checkpoint with a root */
	char cp_host[256];
	struct saved_line *recs;
	unsigned int nrecs, cap;
	bool failed;
};

static bool prove_selected(const struct prove_ctx *ctx,
			   const struct mw_json_obj *obj)
{
	const char *t = mw_json_obj_get(obj, "time")->str;

	if (ctx->user != NULL && !member_eq(obj, "user", ctx->user))
		return false;
	if (ctx->have_seq && mw_json_obj_get(obj, "seq")->num != ctx->seq)
		return false;
	return time_range_match(&ctx->range, t);
}

static int save_line(struct saved_line *s, uint64_t seq, const char *line,
		     size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		return -1;
	memcpy(copy, line, len);
	copy[len] = '\0';
	free(s->line);
	s->seq = seq;
	s->line = copy;
	s->len = len;
	return 0;
}

/* the verifier's callback: every verified record, in order */
static void prove_on_record(void *context, const char *line, size_t len,
			    const struct mw_json_obj *obj)
{
	struct prove_ctx *ctx = context;
	uint64_t seq = mw_json_obj_get(obj, "seq")->num;
	mw_merkle_hash leaf;

	if (ctx->failed)
		return;
	if (mw_merkle_leaf_hash(line, len, leaf) < 0 ||
	    mw_merkle_tree_append(&ctx->tree, leaf) < 0) {
		ctx->failed = true;
		return;
	}
	if (member_eq(obj, "event", MW_AUDIT_EV_CHECKPOINT) &&
	    mw_json_obj_get(obj, "root") != NULL) {
		if (save_line(&ctx->cp, seq, line, len) < 0)
			ctx->failed = true;
		snprintf(ctx->cp_host, sizeof(ctx->cp_host), "%s",
			 mw_json_obj_get(obj, "host")->str);
	}
	if (prove_selected(ctx, obj)) {
		if (ctx->nrecs == ctx->cap) {
			unsigned int ncap = ctx->cap == 0 ? 64 : ctx->cap * 2;
			struct saved_line *n =
				realloc(ctx->recs, ncap * sizeof(*n));

			if (n == NULL) {
				ctx->failed = true;
				return;
			}
			memset(n + ctx->cap, 0,
			       (ncap - ctx->cap) * sizeof(*n));
			ctx->recs = n;
			ctx->cap = ncap;
		}
		if (save_line(&ctx->recs[ctx->nrecs], seq, line, len) < 0) {
			ctx->failed = true;
			return;
		}
		ctx->nrecs++;
	}
}

static void prove_ctx_free(struct prove_ctx *ctx)
{
	unsigned int i;

	for (i = 0; i < ctx->nrecs; i++)
		free(ctx->recs[i].line);
	free(ctx->recs);
	free(ctx->cp.line);
	mw_merkle_tree_free(&ctx->tree);
}

static void hex_list(struct mw_json_buf *b, const mw_merkle_hash *path,
		     unsigned int count)
{
	char hex[MW_MERKLE_HASH_LEN * 2 + 1];
	unsigned int i;

	for (i = 0; i < count; i++) {
		if (i > 0)
			mw_json_buf_append(b, ",", 1);
		mw_hex_encode(path[i], MW_MERKLE_HASH_LEN, hex);
		mw_json_buf_append_str(b, hex);
	}
}

/* Writes the bundle (JSON Lines) to out. Returns the number of records
   written, or -1. */
static int write_bundle(FILE *out, struct prove_ctx *ctx, unsigned int n)
{
	mw_merkle_hash path[MW_MERKLE_MAX_PATH];
	struct mw_json_buf b;
	unsigned int i, count;
	int ret = 0;

	mw_json_buf_init(&b);
	mw_json_buf_append_str(&b, "{\"bundle\":\"" BUNDLE_NAME "\","
			       "\"version\":");
	mw_json_buf_append_u64(&b, BUNDLE_VERSION);
	mw_json_buf_append_str(&b, ",\"host\":");
	mw_json_append_string(&b, ctx->cp_host, strlen(ctx->cp_host));
	mw_json_buf_append_str(&b, ",\"checkpoints\":1,\"records\":");
	mw_json_buf_append_u64(&b, n);
	mw_json_buf_append_str(&b, "}\n{\"checkpoint\":");
	mw_json_append_string(&b, ctx->cp.line, ctx->cp.len);
	mw_json_buf_append_str(&b, "}\n");
	for (i = 0; i < n && !b.failed; i++) {
		const struct saved_line *r = &ctx->recs[i];

		if (mw_merkle_tree_inclusion_proof(&ctx->tree, r->seq - 1,
						   ctx->cp.seq - 1, path,
						   &count) < 0) {
			ret = -1;
			break;
		}
		mw_json_buf_append_str(&b, "{\"record\":");
		mw_json_append_string(&b, r->line, r->len);
		mw_json_buf_append_str(&b, ",\"index\":");
		mw_json_buf_append_u64(&b, r->seq - 1);
		mw_json_buf_append_str(&b, ",\"checkpoint\":");
		mw_json_buf_append_u64(&b, ctx->cp.seq);
		mw_json_buf_append_str(&b, ",\"path\":\"");
		hex_list(&b, path, count);
		mw_json_buf_append_str(&b, "\"}\n");
	}
	if (ret == 0 && !b.failed &&
	    fwrite(b.data, 1, b.len, out) != b.len)
		ret = -1;
	if (b.failed)
		ret = -1;
	mw_json_buf_free(&b);
	return ret;
}

#define PROVE_USAGE \
	"prove [--user U] [--since TIME] [--until TIME] [--seq N] " \
	"[--key VERIFY.KEY] [--pubkey CHECKPOINT.PUB] -o BUNDLE FILE...\n"

/* prove's options into ctx, opts and *output_r. Returns CMD_GO_ON, or
   the exit code. */
static int prove_parse_args(int argc, char **argv, struct prove_ctx *ctx,
			    struct mw_audit_verify_options *opts,
			    const char **output_r)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 't' },
		{ "seq", required_argument, NULL, 'n' },
		{ "key", required_argument, NULL, 'k' },
		{ "pubkey", required_argument, NULL, 'p' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, ret;

	while ((c = getopt_long(argc, argv, "u:s:t:n:k:p:o:h", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'u': ctx->user = optarg; break;
		case 's':
		case 't':
			if ((ret = time_range_opt(&ctx->range, c,
						  optarg)) != CMD_GO_ON)
				return ret;
			break;
		case 'n':
			if (parse_u64(optarg, &ctx->seq) < 0 || ctx->seq == 0)
				return bad_value("--seq", optarg,
						 "not a record number");
			ctx->have_seq = true;
			break;
		case 'k': opts->key_path = optarg; break;
		case 'p': opts->pubkey_path = optarg; break;
		case 'o': *output_r = optarg; break;
		case 'h':
			printf("usage: %s %s", progname, PROVE_USAGE);
			return EXIT_PASS;
		default:
			return cmd_usage_error(PROVE_USAGE);
		}
	}
	if (optind >= argc || *output_r == NULL)
		return cmd_usage_error(PROVE_USAGE);
	return CMD_GO_ON;
}

/* How many of the matching records the newest checkpoint with a root
   covers (records are in seq order: those before the checkpoint are in
   its tree); 0 after saying why none is. */
static unsigned int prove_covered(const struct prove_ctx *ctx)
{
	unsigned int covered;

	if (ctx->nrecs == 0) {
		fprintf(stderr, "%s: prove: no record matches\n", progname);
		return 0;
	}
	if (ctx->cp.line == NULL) {
		fprintf(stderr, "%s: prove: the log has no checkpoint with a "
			"Merkle root (written by an older writer?): nothing "
			"can be proved\n", progname);
		return 0;
	}
	for (covered = 0; covered < ctx->nrecs; covered++) {
		if (ctx->recs[covered].seq >= ctx->cp.seq)
			break;
	}
	if (covered == 0) {
		fprintf(stderr, "%s: prove: the %u matching record(s) come "
			"after the newest checkpoint (seq %llu): none is "
			"covered by a signed Merkle root yet; try again after "
			"the next checkpoint\n", progname, ctx->nrecs,
			(unsigned long long)ctx->cp.seq);
	}
	return covered;
}

/* Writes the bundle of the first covered records to output ("-":
   stdout) and says what it holds. Returns the exit code. */
static int prove_output(struct prove_ctx *ctx, const char *output,
			unsigned int covered)
{
	unsigned int i;
	FILE *out;

	out = strcmp(output, "-") == 0 ? stdout : fopen(output, "we");
	if (out == NULL) {
		fprintf(stderr, "%s: prove: cannot create ", progname);
		puts_escaped(stderr, output);
		fprintf(stderr, ": %s\n", strerror(errno));
		return EXIT_IO;
	}
	if (write_bundle(out, ctx, covered) < 0 ||
	    (out == stdout ? fflush(out) : fclose(out)) != 0) {
		fprintf(stderr, "%s: prove: writing the bundle failed: %s\n",
			progname, strerror(errno));
		return EXIT_IO;
	}
	fprintf(stderr, "%s: prove: %u record(s) proved against checkpoint "
		"seq %llu (Merkle tree of %llu records)\n", progname, covered,
		(unsigned long long)ctx->cp.seq,
		(unsigned long long)(ctx->cp.seq - 1));
	if (covered < ctx->nrecs) {
		fprintf(stderr, "%s: prove: %u matching record(s) after "
			"checkpoint seq %llu left out (seq", progname,
			ctx->nrecs - covered, (unsigned long long)ctx->cp.seq);
		for (i = covered; i < ctx->nrecs && i < covered + 10; i++)
			fprintf(stderr, " %llu",
				(unsigned long long)ctx->recs[i].seq);
		fprintf(stderr, "%s): not yet covered by a signed Merkle "
			"root\n", i < ctx->nrecs ? " ..." : "");
	}
	return EXIT_PASS;
}

/* Verifies the log with ctx collecting the records to prove. Returns
   CMD_GO_ON, or the exit code after saying what failed. */
static int prove_verify(int argc, char **argv, struct prove_ctx *ctx,
			struct mw_audit_verify_options *opts)
{
	struct mw_audit_verify_result res;
	const char *error;

	/* the log must verify (from seq 1: leaf index = seq - 1) */
	opts->on_record = prove_on_record;
	opts->on_record_context = ctx;
	if (mw_audit_verify_files((const char *const *)argv + optind,
				  (unsigned int)(argc - optind), opts, &res,
				  &error) < 0) {
		print_error("prove", error);
		return EXIT_IO;
	}
	if (ctx->failed) {
		print_error("prove", "out of memory");
		return EXIT_IO;
	}
	if (res.status == MW_AUDIT_VERIFY_FAIL) {
		printf("FAIL: the log does not verify, no bundle written: %s "
		       "at seq %llu: ", mw_audit_fail_reason_name(res.reason),
		       (unsigned long long)res.bad_seq);
		puts_escaped(stdout, res.message);
		putc('\n', stdout);
		return EXIT_FAIL;
	}
	return CMD_GO_ON;
}

int cmd_prove(int argc, char **argv)
{
	struct mw_audit_verify_options opts;
	struct prove_ctx ctx;
	const char *output = NULL;
	unsigned int covered;
	int ret;

	memset(&ctx, 0, sizeof(ctx));
	memset(&opts, 0, sizeof(opts));
	mw_merkle_tree_init(&ctx.tree);
	ret = prove_parse_args(argc, argv, &ctx, &opts, &output);
	if (ret == CMD_GO_ON)
		ret = prove_verify(argc, argv, &ctx, &opts);
	if (ret == CMD_GO_ON) {
		covered = prove_covered(&ctx);
		ret = covered == 0 ? EXIT_FAIL :
			prove_output(&ctx, output, covered);
	}
	prove_ctx_free(&ctx);
	return ret;
}

/* --- verify-proof --- */

/* "cannot open PATH: why" (escaped) on stderr */
static void print_open_error(const char *path, int err)
{
	char hint[MW_HINT_MAX];

	fprintf(stderr, "%s: verify-proof: cannot open ", progname);
	puts_escaped(stderr, path);
	fprintf(stderr, ": %s", strerror(err));
	puts_escaped(stderr, mw_access_hint(path, err, hint, sizeof(hint)));
	putc('\n', stderr);
}

struct vp_checkpoint {
	uint64_t seq;
	mw_merkle_hash root;
};

struct vp {
	EVP_PKEY *pub;
	const char *want_host;
	char host[256];
	struct mw_json_obj outer, inner;
	struct mw_json_buf scratch;
	struct vp_checkpoint *cps;
	unsigned int ncps;
	uint64_t want_cps, want_recs, nrecs;
	unsigned int lineno;
	bool quiet;
};

/* prints "FAIL: <what>: <message>" and returns EXIT_FAIL */
static int vp_fail(struct vp *vp, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int vp_fail(struct vp *vp, const char *what, const char *fmt, ...)
{
	char msg[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(msg, sizeof(msg), fmt, args);
	va_end(args);
	printf("FAIL: %s: bundle line %u: ", what, vp->lineno);
	puts_escaped(stdout, msg);
	putc('\n', stdout);
	return EXIT_FAIL;
}

/* parses the record line embedded in a bundle line into vp->inner */
static int vp_parse_record(struct vp *vp, const struct mw_json_member *m,
			   const char *what)
{
	const char *err;

	if (m == NULL || m->type != MW_JSON_STRING)
		return vp_fail(vp, "bad-bundle", "no %s line", what);
	if (mw_json_parse_object(&vp->inner, m->str, m->str_len, &err) < 0 ||
	    mw_audit_record_check(&vp->inner, m->str, m->str_len,
				  &vp->scratch, &err) < 0)
		return vp_fail(vp, "bad-record", "the %s is not a valid audit "
			       "record: %s", what, err);
	if (!member_eq(&vp->inner, "host", vp->host))
		return vp_fail(vp, "wrong-host", "the %s is from host %s, the "
			       "bundle from %s", what,
			       mw_json_obj_get(&vp->inner, "host")->str,
			       vp->host);
	return 0;
}

static int vp_checkpoint(struct vp *vp)
{
	const struct mw_json_member *root;
	struct vp_checkpoint *c;
	uint64_t seq;
	int ret;

	if ((ret = vp_parse_record(vp, mw_json_obj_get(&vp->outer,
				   "checkpoint"), "checkpoint")) != 0)
		return ret;
	seq = mw_json_obj_get(&vp->inner, "seq")->num;
	root = mw_json_obj_get(&vp->inner, "root");
	if (!member_eq(&vp->inner, "event", MW_AUDIT_EV_CHECKPOINT) ||
	    root == NULL)
		return vp_fail(vp, "bad-bundle", "record seq %llu is not a "
			       "checkpoint with a Merkle root",
			       (unsigned long long)seq);
	if (!mw_audit_checkpoint_verify(&vp->inner, vp->pub, &vp->scratch))
		return vp_fail(vp, "bad-signature", "checkpoint seq %llu: the "
			       "signature does not verify with this public "
			       "key (the checkpoint, its root or its signature "
			       "was changed, or it is another host's)",
			       (unsigned long long)seq);
	c = realloc(vp->cps, (vp->ncps + 1) * sizeof(*c));
	if (c == NULL)
		return vp_fail(vp, "bad-bundle", "out of memory");
	vp->cps = c;
	c = &vp->cps[vp->ncps++];
	c->seq = seq;
	(void)mw_hex_decode(root->str, c->root, sizeof(c->root));
	return 0;
}

/* Decodes a path "<64 hex>,<64 hex>,..." (or "") into path and
   *count_r. Returns 0 or -1. */
static int vp_parse_path(const char *p, mw_merkle_hash *path,
			 unsigned int *count_r)
{
	unsigned int count = 0;

	while (*p != '\0') {
		if (count == MW_MERKLE_MAX_PATH ||
		    mw_hex_lower_len(p, strnlen(p, 65)) != 64 ||
		    (p[64] != ',' && p[64] != '\0') ||
		    (p[64] == ',' && p[65] == '\0') ||
		    mw_hex_decode_n(p, path[count], MW_MERKLE_HASH_LEN) < 0)
			return -1;
		count++;
		p += p[64] == ',' ? 65 : 64;
	}
	*count_r = count;
	return 0;
}

/* "seq N time=... event=..." of the proved record in vp->inner */
static void vp_print_record(struct vp *vp, uint64_t seq)
{
	static const char *const fields[] = {
		"time", "event", "outcome", "user", "actor", "mailbox", "uid",
		"message_id"
	};
	const struct mw_json_member *m;
	unsigned int i;

	printf("seq %llu", (unsigned long long)seq);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		m = mw_json_obj_get(&vp->inner, fields[i]);
		if (m == NULL)
			continue;
		printf(" %s=", fields[i]);
		if (m->type == MW_JSON_INT)
			printf("%llu", (unsigned long long)m->num);
		else
			put_escaped(stdout, m->str, m->str_len, NULL);
	}
	putc('\n', stdout);
}

static int vp_record(struct vp *vp)
{
	const struct mw_json_member *m_index, *m_cp, *m_path, *m;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH], leaf;
	const struct vp_checkpoint *cp = NULL;
	unsigned int count = 0, i;
	uint64_t seq;
	int ret;

	m_index = mw_json_obj_get(&vp->outer, "index");
	m_cp = mw_json_obj_get(&vp->outer, "checkpoint");
	m_path = mw_json_obj_get(&vp->outer, "path");
	if (m_index == NULL || m_index->type != MW_JSON_INT ||
	    m_index->negative || m_cp == NULL || m_cp->type != MW_JSON_INT ||
	    m_path == NULL || m_path->type != MW_JSON_STRING ||
	    vp->outer.count != 4)
		return vp_fail(vp, "bad-bundle", "a record entry needs exactly "
			       "record, index, checkpoint and path");
	if ((ret = vp_parse_record(vp, mw_json_obj_get(&vp->outer, "record"),
				   "record")) != 0)
		return ret;
	seq = mw_json_obj_get(&vp->inner, "seq")->num;
	if (m_index->num != seq - 1)
		return vp_fail(vp, "bad-index", "record seq %llu has leaf index "
			       "%llu, but the bundle says index %llu",
			       (unsigned long long)seq,
			       (unsigned long long)(seq - 1),
			       (unsigned long long)m_index->num);
	for (i = 0; i < vp->ncps; i++) {
		if (vp->cps[i].seq == m_cp->num)
			cp = &vp->cps[i];
	}
	if (cp == NULL)
		return vp_fail(vp, "missing-checkpoint", "record seq %llu rests "
			       "on checkpoint seq %llu, which is not in the "
			       "bundle", (unsigned long long)seq,
			       (unsigned long long)m_cp->num);
	if (seq >= cp->seq)
		return vp_fail(vp, "bad-index", "record seq %llu is not in the "
			       "tree of checkpoint seq %llu (records 1..%llu)",
			       (unsigned long long)seq,
			       (unsigned long long)cp->seq,
			       (unsigned long long)(cp->seq - 1));
	if (vp_parse_path(m_path->str, path, &count) < 0)
		return vp_fail(vp, "bad-bundle", "record seq %llu: path "
			       "is not a list of 64-hex hashes",
			       (unsigned long long)seq);
	m = mw_json_obj_get(&vp->outer, "record");
	if (mw_merkle_leaf_hash(m->str, m->str_len, leaf) < 0 ||
	    mw_merkle_verify_inclusion(leaf, seq - 1, cp->seq - 1, path,
				       count, cp->root) < 0)
		return vp_fail(vp, "bad-proof", "record seq %llu: the inclusion "
			       "proof does not lead to the root signed by "
			       "checkpoint seq %llu (the record or a proof hash "
			       "was changed)", (unsigned long long)seq,
			       (unsigned long long)cp->seq);
	vp->nrecs++;
	if (!vp->quiet)
		vp_print_record(vp, seq);
	return 0;
}

static int vp_header(struct vp *vp)
{
	const struct mw_json_member *m;

	if (!member_eq(&vp->outer, "bundle", BUNDLE_NAME) ||
	    (m = mw_json_obj_get(&vp->outer, "version")) == NULL ||
	    m->type != MW_JSON_INT || m->num != BUNDLE_VERSION)
		return vp_fail(vp, "bad-bundle", "not a %s version %d bundle",
			       BUNDLE_NAME, BUNDLE_VERSION);
	m = mw_json_obj_get(&vp->outer, "host");
	if (m == NULL || m->type != MW_JSON_STRING || m->str_len == 0 ||
	    m->str_len >= sizeof(vp->host) || memchr(m->str, '\0',
						     m->str_len) != NULL)
		return vp_fail(vp, "bad-bundle", "no host");
	memcpy(vp->host, m->str, m->str_len + 1);
	if (vp->want_host != NULL && strcmp(vp->host, vp->want_host) != 0)
		return vp_fail(vp, "wrong-host", "the bundle is from host %s, "
			       "not %s", vp->host, vp->want_host);
	m = mw_json_obj_get(&vp->outer, "checkpoints");
	if (m == NULL || m->type != MW_JSON_INT || m->num == 0)
		return vp_fail(vp, "bad-bundle", "no checkpoint count");
	vp->want_cps = m->num;
	m = mw_json_obj_get(&vp->outer, "records");
	if (m == NULL || m->type != MW_JSON_INT || m->num == 0)
		return vp_fail(vp, "bad-bundle", "no record count");
	vp->want_recs = m->num;
	return 0;
}

#define VP_USAGE \
	"verify-proof --pubkey CHECKPOINT.PUB [--host H] [--quiet] BUNDLE\n"

/* verify-proof's options into vp and *pubkey_r. Returns CMD_GO_ON, or
   the exit code. */
static int vp_parse_args(int argc, char **argv, struct vp *vp,
			 const char **pubkey_r)
{
	static const struct option longopts[] = {
		{ "pubkey", required_argument, NULL, 'p' },
		{ "host", required_argument, NULL, 'H' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:H:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': *pubkey_r = optarg; break;
		case 'H': vp->want_host = optarg; break;
		case 'q': vp->quiet = true; break;
		case 'h':
			printf("usage: %s %s", progname, VP_USAGE);
			return EXIT_PASS;
		default:
			return cmd_usage_error(VP_USAGE);
		}
	}
	if (*pubkey_r == NULL || optind + 1 != argc)
		return cmd_usage_error(VP_USAGE);
	return CMD_GO_ON;
}

/* One bundle line (the lineno-th) in vp->outer: header, checkpoint or
   record. Returns 0 or the exit code. */
static int vp_line(struct vp *vp)
{
	if (vp->lineno == 1)
		return vp_header(vp);
	if (vp->lineno <= 1 + vp->want_cps)
		return vp_checkpoint(vp);
	if (vp->lineno <= 1 + vp->want_cps + vp->want_recs)
		return vp_record(vp);
	return vp_fail(vp, "bad-bundle", "more lines than the header "
		       "announces");
}

/* Reads and checks the bundle of f. Returns the exit code. */
static int vp_read(struct vp *vp, FILE *f)
{
	struct mw_line_reader r;
	const char *line, *err;
	uint64_t offset;
	unsigned int i;
	size_t len;
	bool nl;
	int rd = 0, ret = 0;

	if (mw_line_reader_init(&r, f, BUNDLE_LINE_MAX) < 0) {
		print_error("verify-proof", "out of memory");
		return EXIT_IO;
	}
	while (ret == 0 &&
	       (rd = mw_line_reader_next(&r, &line, &len, &offset, &nl)) > 0) {
		vp->lineno++;
		if (mw_json_parse_object(&vp->outer, line, len, &err) < 0)
			ret = vp_fail(vp, "bad-bundle", "not a JSON object: "
				      "%s", err);
		else
			ret = vp_line(vp);
	}
	mw_line_reader_free(&r);
	if (ret != 0)
		return ret;
	if (rd < 0) {
		if (rd == -1)
			print_error("verify-proof", strerror(errno));
		return rd == -2 ? vp_fail(vp, "bad-bundle", "line too long") :
			EXIT_IO;
	}
	if (vp->lineno == 0 || vp->ncps != vp->want_cps ||
	    vp->nrecs != vp->want_recs) {
		return vp_fail(vp, "bad-bundle", "the bundle ends early: "
			       "%u of %llu checkpoint(s), %llu of %llu "
			       "record(s)", vp->ncps,
			       (unsigned long long)vp->want_cps,
			       (unsigned long long)vp->nrecs,
			       (unsigned long long)vp->want_recs);
	}
	printf("PASS: %llu record(s) of host ", (unsigned long long)vp->nrecs);
	puts_escaped(stdout, vp->host);
	printf(" are in the Merkle tree signed by checkpoint seq");
	for (i = 0; i < vp->ncps; i++)
		printf(" %llu", (unsigned long long)vp->cps[i].seq);
	printf(" (public key only, RFC 9162 inclusion proofs)\n");
	return EXIT_PASS;
}

int cmd_verify_proof(int argc, char **argv)
{
	struct vp vp;
	const char *pubkey = NULL;
	int ret;
	FILE *f;

	memset(&vp, 0, sizeof(vp));
	ret = vp_parse_args(argc, argv, &vp, &pubkey);
	if (ret != CMD_GO_ON)
		return ret;
	f = fopen(pubkey, "re");
	if (f == NULL) {
		print_open_error(pubkey, errno);
		return EXIT_IO;
	}
	vp.pub = mw_audit_pubkey_read(f);
	fclose(f);
	if (vp.pub == NULL) {
		print_error("verify-proof", "the public key is not an Ed25519 "
			    "public key (PEM)");
		return EXIT_IO;
	}
	f = strcmp(argv[optind], "-") == 0 ? stdin : fopen(argv[optind], "re");
	if (f == NULL) {
		EVP_PKEY_free(vp.pub);
		print_open_error(argv[optind], errno);
		return EXIT_IO;
	}
	mw_json_obj_init(&vp.outer);
	mw_json_obj_init(&vp.inner);
	mw_json_buf_init(&vp.scratch);
	ret = vp_read(&vp, f);
	if (f != stdin)
		fclose(f);
	mw_json_obj_free(&vp.outer);
	mw_json_obj_free(&vp.inner);
	mw_json_buf_free(&vp.scratch);
	free(vp.cps);
	EVP_PKEY_free(vp.pub);
	return ret;
}
