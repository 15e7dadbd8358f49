/* The audit log verifier's kept checkpoints: --checkpoint-file (records
   the log must contain) and --consistency (trees the log must extend),
   and the checkpoint signature check. See mw-audit-verify.h. */

#include "mw-audit-verify-private.h"
#include "mw-audit-private.h"
#include "mw-util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* adds one checkpoint line of a file (what: "<file> line <n>") */
typedef int checkpoint_add_func(struct verifier *v, const char *line,
				size_t len, const char *what,
				const char **error_r);

/* Adds each non-empty line of the checkpoint file path with add.
   Returns the number of lines read, or -1. */
static int read_checkpoint_file(struct verifier *v, const char *path,
				checkpoint_add_func *add,
				const char **error_r)
{
	struct mw_line_reader r;
	const char *line;
	char what[PATH_MAX + 32];
	uint64_t offset;
	unsigned int lineno = 0;
	size_t len;
	bool nl, failed = false;
	int ret;
	FILE *f;

	if (mw_audit_verify_open(v, "checkpoint file", path, &f, &r,
				 error_r) < 0)
		return -1;
	while ((ret = mw_line_reader_next(&r, &line, &len, &offset, &nl)) > 0) {
		lineno++;
		if (len == 0)
			continue;
		snprintf(what, sizeof(what), "%s line %u", path, lineno);
		if (add(v, line, len, what, error_r) < 0) {
			failed = true;
			break;
		}
	}
	if (failed)
		ret = -1;
	else if (ret == -1)
		verr(v, error_r, "read(%s) failed: %s", path, strerror(errno));
	else if (ret == -2)
		ret = verr(v, error_r, "%s: line too long", path);
	mw_line_reader_free(&r);
	fclose(f);
	return ret < 0 ? -1 : (int)lineno;
}

/* Parses line[0..len) into v->obj: a checkpoint record, with a Merkle
   root if need_root, signed by v->pub if there is one. */
static int checkpoint_line(struct verifier *v, const char *line,
			   size_t len, const char *what, bool need_root,
			   const char **error_r)
{
	const char *err;

	if (mw_json_parse_object(&v->obj, line, len, &err) < 0 ||
	    mw_audit_record_check(&v->obj, line, len, &v->scratch,
				  &err) < 0 ||
	    strcmp(mw_json_obj_get(&v->obj, "event")->str,
		   MW_AUDIT_EV_CHECKPOINT) != 0)
		return verr(v, error_r, "%s is not a checkpoint record", what);
	if (need_root && mw_json_obj_get(&v->obj, "root") == NULL)
		return verr(v, error_r, "%s has no Merkle root (a format v1 "
			    "checkpoint; use --checkpoint-file for it)", what);
	if (v->pub != NULL &&
	    !mw_audit_checkpoint_verify(&v->obj, v->pub, &v->scratch))
		return verr(v, error_r, "%s: kept checkpoint's signature does "
			    "not verify", what);
	return 0;
}

/* adds the checkpoint line[0..len) to v->kept */
static int kept_add_line(struct verifier *v, const char *line, size_t len,
			 const char *what, const char **error_r)
{
	struct mw_audit_kept_checkpoint *k = NULL;
	char *copy;

	if (checkpoint_line(v, line, len, what, false, error_r) < 0)
		return -1;
	copy = malloc(len);
	if (copy != NULL)
		k = realloc(v->kept, (v->kept_count + 1) * sizeof(*k));
	if (k == NULL) {
		free(copy);
		return verr(v, error_r, "out of memory");
	}
	v->kept = k;
	k += v->kept_count++;
	k->seq = mw_json_obj_get(&v->obj, "seq")->num;
	k->len = len;
	k->line = memcpy(copy, line, len);
	return 0;
}

int mw_audit_load_kept(struct verifier *v, const char *path,
		       const char **error_r)
{
	return read_checkpoint_file(v, path, kept_add_line, error_r) < 0 ?
		-1 : 0;
}

static int kept_cmp(const void *a, const void *b)
{
	const struct mw_audit_kept_checkpoint *ka = a, *kb = b;

	return ka->seq < kb->seq ? -1 : ka->seq > kb->seq ? 1 : 0;
}

void mw_audit_sort_kept(struct verifier *v)
{
	if (v->kept_count > 0)
		qsort(v->kept, v->kept_count, sizeof(*v->kept), kept_cmp);
}

/* adds the checkpoint line[0..len) to v->cons (what = where it came
   from, for errors) */
static int cons_add_line(struct verifier *v, const char *line, size_t len,
			 const char *what, const char **error_r)
{
	struct mw_audit_cons_checkpoint *c;

	if (checkpoint_line(v, line, len, what, true, error_r) < 0)
		return -1;
	c = realloc(v->cons, (v->cons_count + 1) * sizeof(*c));
	if (c == NULL)
		return verr(v, error_r, "out of memory");
	v->cons = c;
	c += v->cons_count++;
	c->seq = mw_json_obj_get(&v->obj, "seq")->num;
	snprintf(c->host, sizeof(c->host), "%s",
		 mw_json_obj_get(&v->obj, "host")->str);
	(void)mw_hex_decode(mw_json_obj_get(&v->obj, "root")->str, c->root,
			    sizeof(c->root));
	return 0;
}

int mw_audit_load_consistency(struct verifier *v, const char *arg,
			      const char **error_r)
{
	int lines;

	if (arg[0] == '{')
		return cons_add_line(v, arg, strlen(arg), "--consistency line",
				     error_r);
	lines = read_checkpoint_file(v, arg, cons_add_line, error_r);
	if (lines < 0)
		return -1;
	if (lines == 0)
		return verr(v, error_r, "%s: no checkpoint in it", arg);
	return 0;
}

/* the log's newest tree extends the tree of the kept checkpoint c */
static int check_one_consistency(struct verifier *v,
				 const struct mw_audit_cons_checkpoint *c)
{
	struct mw_audit_verify_result *res = v->res;
	mw_merkle_hash path[MW_MERKLE_MAX_PATH];
	unsigned int count;

	if (!v->tree_from_start)
		return vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			     "--consistency needs the log from seq 1");
	if (v->root_seq < c->seq)
		return vfail(v, MW_AUDIT_TRUNCATED, res->last_seq + 1,
			     v->end_offset, "the kept checkpoint seq %llu "
			     "covers %llu records, the log's newest "
			     "checkpoint with a Merkle root is seq %llu: "
			     "records were removed from the end",
			     (unsigned long long)c->seq,
			     (unsigned long long)(c->seq - 1),
			     (unsigned long long)v->root_seq);
	if (strcmp(c->host, v->root_host) != 0)
		return vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			     "the kept checkpoint is from host %s, the log "
			     "from host %s", c->host, v->root_host);
	if (mw_merkle_tree_consistency_proof(&v->tree, c->seq - 1,
					     v->root_seq - 1, path,
					     &count) < 0 ||
	    mw_merkle_verify_consistency(c->seq - 1, v->root_seq - 1,
					 c->root, v->root, path, count) < 0)
		return vfail(v, MW_AUDIT_INCONSISTENT, c->seq, v->end_offset,
			     "the log does not extend the tree of the kept "
			     "checkpoint seq %llu (records 1..%llu were "
			     "changed, removed or reordered): the consistency "
			     "proof to checkpoint seq %llu fails",
			     (unsigned long long)c->seq,
			     (unsigned long long)(c->seq - 1),
			     (unsigned long long)v->root_seq);
	res->consistency_checked++;
	res->consistency_old_size = c->seq - 1;
	res->consistency_new_seq = v->root_seq;
	res->consistency_new_size = v->root_seq - 1;
	res->consistency_hashes = count;
	return 0;
}

void mw_audit_check_consistency(struct verifier *v)
{
	unsigned int i;

	for (i = 0; i < v->cons_count && !v->failed; i++) {
		if (check_one_consistency(v, &v->cons[i]) < 0)
			return;
	}
}
