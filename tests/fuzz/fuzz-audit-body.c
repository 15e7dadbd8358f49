/* Fuzzes mw_audit_body_validate() (mw-audit-record.c, its one-pass
   check in mw-audit-body.c), the audit
   writer's check of bodies sent by (possibly compromised) mail processes, and
   differentially the builder: a body that validates must be exactly what
   mw_audit_body_build() produces from its values, and a body the builder
   produces from fuzzed values must validate.

   Input: the body bytes (not NUL-terminated). */

#include "fuzz-common.h"
#include "mw-audit.h"
#include "mw-audit-private.h"
#include "mw-json.h"

static void check_valid_body(const char *body, size_t len)
{
	struct mw_json_obj obj;
	struct mw_json_buf tmp, built;
	struct mw_audit_event ev;
	const char *err;
	unsigned int i;
	bool buildable = true;

	FUZZ_ASSERT(len <= MW_AUDIT_BODY_MAX);
	FUZZ_ASSERT(memchr(body, '\n', len) == NULL);
	/* no raw C0 control or DEL (raw UTF-8 C1 controls and U+2028 are
	   copied by the canonical escaping, docs/audit-log.md §2) */
	for (i = 0; i < len; i++)
		FUZZ_ASSERT((unsigned char)body[i] >= 0x20 &&
			    body[i] != 0x7f);

	mw_json_obj_init(&obj);
	mw_json_buf_init(&tmp);
	mw_json_buf_init(&built);
	mw_json_buf_append(&tmp, "{", 1);
	mw_json_buf_append(&tmp, body, len);
	mw_json_buf_append(&tmp, "}", 1);
	FUZZ_ASSERT(mw_json_parse_object(&obj, tmp.data, tmp.len, &err) == 0);

	mw_audit_event_init(&ev);
	for (i = 0; i < obj.count; i++) {
		const struct mw_json_member *m = &obj.members[i];
		int f = mw_audit_field_lookup(m->key);

		FUZZ_ASSERT(f >= 0);
		FUZZ_ASSERT(mw_audit_fields[f].class_ == MW_AUDIT_CLASS_EVENT);
		if (f == MW_AF_TRUNCATED)
			buildable = false; /* only the builder sets it */
		if (m->type == MW_JSON_STRING) {
			FUZZ_ASSERT(m->str_len <= MW_AUDIT_STR_MAX);
			if (strlen(m->str) != m->str_len)
				buildable = false; /* NUL inside */
			mw_audit_event_set_str(&ev, (enum mw_audit_field)f,
					       m->str);
		} else {
			FUZZ_ASSERT(m->type == MW_JSON_INT && !m->negative);
			mw_audit_event_set_num(&ev, (enum mw_audit_field)f,
					       m->num);
		}
	}
	if (buildable) {
		if (mw_audit_body_build(&ev, &built, &err) != 0) {
			fprintf(stderr, "valid body not buildable: %s\n", err);
			abort();
		}
		FUZZ_ASSERT(built.len == len);
		FUZZ_ASSERT(memcmp(built.data, body, len) == 0);
	}
	mw_json_obj_free(&obj);
	mw_json_buf_free(&tmp);
	mw_json_buf_free(&built);
}

/* builds an event from the input: fields in turn get NUL-separated
   chunks (strings) or 8-byte numbers, by field type */
static void check_builder(const uint8_t *data, size_t size)
{
	struct mw_audit_event ev;
	struct mw_json_buf out;
	char *copy = fuzz_strndup(data, size), *p = copy, *end = copy + size;
	const char *err;
	int f;
	uint64_t mask = 0;

	for (f = 0; f < 8 && f < (int)size; f++)
		mask |= (uint64_t)data[f] << (8 * f);
	mw_audit_event_init(&ev);
	for (f = MW_AF_SERVICE; f < MW_AF_TRUNCATED && p < end; f++) {
		if (((mask >> f) & 1) == 0)
			continue;
		if (mw_audit_fields[f].type == MW_AUDIT_TYPE_STRING) {
			mw_audit_event_set_str(&ev, (enum mw_audit_field)f, p);
			p += strlen(p) + 1;
		} else {
			uint64_t v = 0;
			size_t n = (size_t)(end - p) < 8 ? (size_t)(end - p) : 8;

			memcpy(&v, p, n);
			p += n;
			mw_audit_event_set_num(&ev, (enum mw_audit_field)f, v);
		}
	}
	/* mostly a valid event name, so that the builder gets going */
	if (ev.str[MW_AF_EVENT] == NULL)
		mw_audit_event_set_str(&ev, MW_AF_EVENT, "retr");
	mw_json_buf_init(&out);
	if (mw_audit_body_build(&ev, &out, &err) == 0) {
		FUZZ_ASSERT(!out.failed);
		if (out.len <= MW_AUDIT_BODY_MAX &&
		    mw_audit_body_validate(out.data, out.len, &err) != 0) {
			fprintf(stderr, "built body rejected: %s\n", err);
			abort();
		}
	} else {
		FUZZ_ASSERT(err != NULL);
	}
	mw_json_buf_free(&out);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_memdup(data, size);
	const char *err = NULL;

	/* the one-pass check vouches only for what the full check accepts */
	if (mw_audit_body_quick_valid(body, size))
		FUZZ_ASSERT(mw_audit_body_validate_full(body, size, &err) == 0);
	if (mw_audit_body_validate(body, size, &err) == 0)
		check_valid_body(body, size);
	else
		FUZZ_ASSERT(err != NULL && err[0] != '\0');
	free(body);
	check_builder(data, size);
	return 0;
}
