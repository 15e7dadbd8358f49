/* Fuzzes the JSON module (mw-json.c): the strict flat-object parser and
   its canonical re-serialisation, and the escaper round trip.

   Properties: a parsed object re-serialises to canonical text that
   parses again to the same members and re-serialises to itself; any byte
   string escaped and quoted as a member value parses back to exactly the
   same bytes; escaped output contains no raw controls; UTF-8 truncation
   never cuts inside a sequence. */

#include "fuzz-common.h"
#include "mw-json.h"
#include "mw-util.h"

static void check_members_equal(const struct mw_json_obj *a,
				const struct mw_json_obj *b)
{
	unsigned int i;

	FUZZ_ASSERT(a->count == b->count);
	for (i = 0; i < a->count; i++) {
		const struct mw_json_member *x = &a->members[i];
		const struct mw_json_member *y = &b->members[i];

		FUZZ_ASSERT(x->key_len == y->key_len);
		FUZZ_ASSERT(memcmp(x->key, y->key, x->key_len) == 0);
		FUZZ_ASSERT(x->type == y->type);
		switch (x->type) {
		case MW_JSON_STRING:
			FUZZ_ASSERT(x->str_len == y->str_len);
			FUZZ_ASSERT(memcmp(x->str, y->str, x->str_len) == 0);
			FUZZ_ASSERT(x->str[x->str_len] == '\0');
			break;
		case MW_JSON_INT:
			FUZZ_ASSERT(x->num == y->num);
			FUZZ_ASSERT(x->negative == y->negative);
			break;
		case MW_JSON_BOOL:
			FUZZ_ASSERT(x->boolean == y->boolean);
			break;
		case MW_JSON_NULL:
			break;
		default:
			FUZZ_ASSERT(!"bad member type");
		}
	}
}

static void check_parse(const uint8_t *data, size_t size)
{
	struct mw_json_obj obj, obj2;
	struct mw_json_buf out, out2;
	const char *err;
	char *text = fuzz_memdup(data, size);
	unsigned int i;

	mw_json_obj_init(&obj);
	mw_json_obj_init(&obj2);
	mw_json_buf_init(&out);
	mw_json_buf_init(&out2);
	if (mw_json_parse_object(&obj, text, size, &err) == 0) {
		FUZZ_ASSERT(obj.count <= MW_JSON_MAX_MEMBERS);
		for (i = 0; i < obj.count; i++) {
			const struct mw_json_member *m = &obj.members[i];

			FUZZ_ASSERT(strlen(m->key) == m->key_len);
			FUZZ_ASSERT(m->raw_start < m->raw_end);
			FUZZ_ASSERT(m->raw_end <= size);
			FUZZ_ASSERT(text[m->raw_start] == '"');
			FUZZ_ASSERT(mw_json_obj_get(&obj, m->key) == m);
			if (m->type == MW_JSON_INT && m->negative)
				FUZZ_ASSERT(m->num != 0);
		}
		mw_json_obj_serialize(&obj, &out);
		FUZZ_ASSERT(!out.failed);
		FUZZ_ASSERT(mw_json_parse_object(&obj2, out.data, out.len,
						 &err) == 0);
		check_members_equal(&obj, &obj2);
		mw_json_obj_serialize(&obj2, &out2);
		FUZZ_ASSERT(out2.len == out.len);
		FUZZ_ASSERT(memcmp(out2.data, out.data, out.len) == 0);
		FUZZ_ASSERT(memchr(out.data, '\n', out.len) == NULL);
	} else {
		FUZZ_ASSERT(err != NULL && err[0] != '\0');
		FUZZ_ASSERT(obj.count == 0);
	}
	/* the same object reused for a second parse */
	(void)mw_json_parse_object(&obj, text, size / 2, &err);
	mw_json_obj_free(&obj);
	mw_json_obj_free(&obj2);
	mw_json_buf_free(&out);
	mw_json_buf_free(&out2);
	free(text);
}

static void check_escape(const uint8_t *data, size_t size)
{
	struct mw_json_buf buf;
	struct mw_json_obj obj;
	const struct mw_json_member *m;
	const char *err;
	size_t i, cut, max;

	mw_json_buf_init(&buf);
	mw_json_buf_append_str(&buf, "{\"k\":");
	mw_json_append_string(&buf, data, size);
	mw_json_buf_append_str(&buf, ",\"n\":");
	mw_json_buf_append_u64(&buf, size);
	mw_json_buf_append_str(&buf, "}");
	FUZZ_ASSERT(!buf.failed);
	FUZZ_ASSERT(strlen(buf.data) == buf.len);
	for (i = 0; i < buf.len; i++)
		FUZZ_ASSERT((unsigned char)buf.data[i] >= 0x20 &&
			    buf.data[i] != 0x7f);

	mw_json_obj_init(&obj);
	if (mw_json_parse_object(&obj, buf.data, buf.len, &err) != 0) {
		fprintf(stderr, "escaped string does not parse: %s\n", err);
		abort();
	}
	m = mw_json_obj_get(&obj, "k");
	FUZZ_ASSERT(m != NULL && m->type == MW_JSON_STRING);
	FUZZ_ASSERT(m->str_len == size);
	FUZZ_ASSERT(size == 0 || memcmp(m->str, data, size) == 0);
	m = mw_json_obj_get(&obj, "n");
	FUZZ_ASSERT(m != NULL && m->type == MW_JSON_INT && m->num == size);
	mw_json_obj_free(&obj);

	/* bounded truncation at UTF-8 boundaries */
	max = size > 0 ? data[0] % (size + 1) : 0;
	cut = mw_utf8_cut((const char *)data, size, max);
	FUZZ_ASSERT(cut <= size);
	if (size <= max)
		FUZZ_ASSERT(cut == size);
	else
		FUZZ_ASSERT(cut <= max);
	if (cut < size && cut > 0) {
		/* cut is not inside a well-formed sequence */
		for (i = cut > 3 ? cut - 3 : 0; i < cut; i++) {
			size_t n = mw_utf8_char_len(data + i, size - i);

			FUZZ_ASSERT(n == 0 || i + n <= cut ||
				    /* i itself inside an earlier sequence */
				    (i > 0 && (data[i] & 0xc0) == 0x80));
		}
	}
	mw_json_buf_truncate(&buf, buf.len / 2);
	FUZZ_ASSERT(buf.data[buf.len] == '\0');
	mw_json_buf_reset(&buf);
	FUZZ_ASSERT(buf.len == 0 && !buf.failed);
	mw_json_buf_free(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parse(data, size);
	check_escape(data, size);
	return 0;
}
