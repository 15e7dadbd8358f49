/* mailward-audit verify: records added more than once (docs/audit-log.md
   §8, "Replays"): at-least-once delivery from the spool is documented, so
   these are counted findings, not failures. */

#include "mailward-audit.h"
#include "mw-audit-verify.h"
#include "mw-json.h"

#include <stdlib.h>
#include <string.h>

/* a record the writer took from the spool (it has delayed and spool) */
struct spooled {
	uint64_t seq;
	char *spool;		/* FILE:LINE */
	char *body;		/* the body: members after host up to delayed */
	size_t body_len;
};

struct replay_scan {
	struct spooled *recs;
	size_t count, alloc;
	struct mw_audit_replay *found;
	size_t found_count, found_alloc;
	bool failed;		/* out of memory */
};

/* The body of a mail event in line: from the member after host to the
   member before delayed (or epoch). Returns false for writer events. */
static bool record_body(const char *line, const struct mw_json_obj *obj,
			const char **body_r, size_t *len_r)
{
	const struct mw_json_member *host, *end, *session;

	session = mw_json_obj_get(obj, "session");
	host = mw_json_obj_get(obj, "host");
	end = mw_json_obj_get(obj, "delayed");
	if (end == NULL)
		end = mw_json_obj_get(obj, "epoch");
	if (session == NULL || host == NULL || end == NULL ||
	    end->raw_start <= host->raw_end)
		return false;
	*body_r = line + host->raw_end;
	*len_r = end->raw_start - host->raw_end;
	return true;
}

/* arr (count used of *alloc elements of elem_size) with room for one
   more: arr itself or a larger copy (*alloc updated), or NULL with
   s->failed set if memory runs out (arr is then unchanged). */
static void *grow(struct replay_scan *s, void *arr, size_t count,
		  size_t *alloc, size_t elem_size)
{
	size_t n = *alloc == 0 ? 16 : *alloc * 2;
	void *p;

	if (count < *alloc)
		return arr;
	p = realloc(arr, n * elem_size);
	if (p == NULL) {
		s->failed = true;
		return NULL;
	}
	*alloc = n;
	return p;
}

static void add_found(struct replay_scan *s, uint64_t seq, uint64_t of_seq,
		      bool same_spool)
{
	struct mw_audit_replay *n;
	size_t i;

	for (i = 0; i < s->found_count; i++) {
		if (s->found[i].seq == seq)
			return; /* one finding per record */
	}
	n = grow(s, s->found, s->found_count, &s->found_alloc,
		 sizeof(*s->found));
	if (n == NULL)
		return;
	s->found = n;
	s->found[s->found_count].seq = seq;
	s->found[s->found_count].of_seq = of_seq;
	s->found[s->found_count].same_spool = same_spool;
	s->found_count++;
}

/* pass 1 (during verification): every spooled record; one whose spool
   value an earlier record had is a replay of it */
static void scan_spooled(void *context, const char *line, size_t len,
			 const struct mw_json_obj *obj)
{
	struct replay_scan *s = context;
	const struct mw_json_member *spool, *seq;
	struct spooled *n, *rec;
	const char *body;
	size_t i, body_len;

	(void)len;
	spool = mw_json_obj_get(obj, "spool");
	seq = mw_json_obj_get(obj, "seq");
	if (spool == NULL || seq == NULL || s->failed ||
	    !record_body(line, obj, &body, &body_len))
		return;
	for (i = 0; i < s->count; i++) {
		if (strcmp(s->recs[i].spool, spool->str) == 0) {
			add_found(s, seq->num, s->recs[i].seq, true);
			return;
		}
	}
	n = grow(s, s->recs, s->count, &s->alloc, sizeof(*s->recs));
	if (n == NULL)
		return;
	s->recs = n;
	rec = &s->recs[s->count];
	rec->seq = seq->num;
	rec->spool = strdup(spool->str);
	rec->body = malloc(body_len);
	rec->body_len = body_len;
	if (rec->spool == NULL || rec->body == NULL) {
		free(rec->spool);
		free(rec->body);
		s->failed = true;
		return;
	}
	memcpy(rec->body, body, body_len);
	s->count++;
}

/* pass 2: a record that did not come from the spool and has the same
   body (same session, event and fields) as a spooled one is the same
   event delivered twice: the later of the two is the copy */
static void scan_delivered(void *context, const char *line, size_t len,
			   const struct mw_json_obj *obj)
{
	struct replay_scan *s = context;
	const struct mw_json_member *seq;
	const char *body;
	size_t i, body_len;

	(void)len;
	seq = mw_json_obj_get(obj, "seq");
	if (seq == NULL || mw_json_obj_get(obj, "delayed") != NULL ||
	    !record_body(line, obj, &body, &body_len))
		return;
	for (i = 0; i < s->count; i++) {
		if (s->recs[i].body_len == body_len &&
		    memcmp(s->recs[i].body, body, body_len) == 0) {
			if (seq->num > s->recs[i].seq)
				add_found(s, seq->num, s->recs[i].seq, false);
			else
				add_found(s, s->recs[i].seq, seq->num, false);
			return;
		}
	}
}

static int cmp_found(const void *a, const void *b)
{
	const struct mw_audit_replay *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

int replay_verify(const char *const *paths, unsigned int count,
		  struct mw_audit_verify_options *opts,
		  struct mw_audit_verify_result *res,
		  struct replay_list *replays_r, const char **error_r)
{
	struct mw_audit_verify_options opts2;
	struct mw_audit_verify_result res2;
	struct replay_scan s;
	size_t i;
	int ret;

	memset(&s, 0, sizeof(s));
	memset(replays_r, 0, sizeof(*replays_r));
	opts->on_record = scan_spooled;
	opts->on_record_context = &s;
	ret = mw_audit_verify_files(paths, count, opts, res, error_r);
	if (ret == 0 && res->status != MW_AUDIT_VERIFY_FAIL && s.count > 0 &&
	    !s.failed) {
		/* again over the same records, the hash chain only */
		memset(&opts2, 0, sizeof(opts2));
		opts2.partial = opts->partial;
		opts2.on_record = scan_delivered;
		opts2.on_record_context = &s;
		if (mw_audit_verify_files(paths, count, &opts2, &res2,
					  error_r) < 0)
			ret = -1;
	}
	for (i = 0; i < s.count; i++) {
		free(s.recs[i].spool);
		free(s.recs[i].body);
	}
	free(s.recs);
	if (s.failed && ret == 0) {
		*error_r = "out of memory looking for replayed records";
		ret = -1;
	}
	if (ret < 0) {
		free(s.found);
		return -1;
	}
	if (s.found_count > 0)
		qsort(s.found, s.found_count, sizeof(*s.found), cmp_found);
	replays_r->items = s.found;
	replays_r->count = s.found_count;
	return 0;
}
