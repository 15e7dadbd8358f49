/* JSON escaping and the strict flat-object parser of audit records.
   See mw-json.h and docs/audit-log.md §2. */

#include "mw-json.h"
#include "mw-util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void mw_json_buf_init(struct mw_json_buf *buf)
{
	memset(buf, 0, sizeof(*buf));
}

void mw_json_buf_free(struct mw_json_buf *buf)
{
	free(buf->data);
	memset(buf, 0, sizeof(*buf));
}

void mw_json_buf_reset(struct mw_json_buf *buf)
{
	buf->len = 0;
	buf->failed = false;
	if (buf->data != NULL)
		buf->data[0] = '\0';
}

static bool buf_reserve(struct mw_json_buf *buf, size_t extra)
{
	size_t need, newcap;
	char *p;

	if (buf->failed)
		return false;
	if (extra > SIZE_MAX - buf->len - 1) {
		buf->failed = true;
		return false;
	}
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return true;
	newcap = buf->cap < 128 ? 128 : buf->cap;
	while (newcap < need) {
		if (newcap > SIZE_MAX / 2) {
			newcap = need;
			break;
		}
		newcap *= 2;
	}
	p = realloc(buf->data, newcap);
	if (p == NULL) {
		buf->failed = true;
		return false;
	}
	buf->data = p;
	buf->cap = newcap;
	return true;
}

/* Appends len bytes: the common case (room in the buffer) without a
   call; used by the escaper for each run of bytes. */
static inline void buf_put(struct mw_json_buf *buf, const void *data,
			   size_t len)
{
	if (buf->failed || len >= buf->cap - buf->len) {
		if (!buf_reserve(buf, len))
			return;
	}
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void mw_json_buf_append(struct mw_json_buf *buf, const void *data,
			size_t len)
{
	if (!buf_reserve(buf, len))
		return;
	if (len > 0)
		memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

void mw_json_buf_append_str(struct mw_json_buf *buf, const char *str)
{
	mw_json_buf_append(buf, str, strlen(str));
}

void mw_json_buf_append_u64(struct mw_json_buf *buf, uint64_t value)
{
	char tmp[20];	/* UINT64_MAX has 20 digits */
	size_t pos = sizeof(tmp);

	/* decimal digits from the end, without vsnprintf */
	do {
		tmp[--pos] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	buf_put(buf, tmp + pos, sizeof(tmp) - pos);
}

void mw_json_buf_truncate(struct mw_json_buf *buf, size_t new_len)
{
	if (new_len < buf->len) {
		buf->len = new_len;
		buf->data[new_len] = '\0';
	}
}

const bool mw_json_plain[256] = {
	[0x20 ... 0x21] = true,
	[0x23 ... 0x5b] = true,
	[0x5d ... 0x7e] = true,
};

void mw_json_append_escaped(struct mw_json_buf *buf, const void *data,
			    size_t len)
{
	const unsigned char *p = data;
	size_t pos = 0, start, n;
	char esc[7];

	while (pos < len) {
		/* copy a run of bytes that need no escaping */
		start = pos;
		while (pos < len) {
			unsigned char c = p[pos];

			if (mw_json_plain[c]) {
				pos++;
				continue;
			}
			if (c < 0x80)
				break;
			n = mw_utf8_char_len(p + pos, len - pos);
			if (n == 0)
				break;
			pos += n;
		}
		if (pos > start)
			buf_put(buf, p + start, pos - start);
		if (pos >= len)
			break;

		/* escape one byte */
		unsigned char c = p[pos++];
		switch (c) {
		case '"': buf_put(buf, "\\\"", 2); break;
		case '\\': buf_put(buf, "\\\\", 2); break;
		case 0x08: buf_put(buf, "\\b", 2); break;
		case 0x09: buf_put(buf, "\\t", 2); break;
		case 0x0a: buf_put(buf, "\\n", 2); break;
		case 0x0c: buf_put(buf, "\\f", 2); break;
		case 0x0d: buf_put(buf, "\\r", 2); break;
		default:
			memcpy(esc, c < 0x80 ? "\\u00" : "\\udc", 4);
			mw_hex_encode(&c, 1, esc + 4);
			buf_put(buf, esc, 6);
			break;
		}
	}
}

void mw_json_append_string(struct mw_json_buf *buf, const void *data,
			   size_t len)
{
	buf_put(buf, "\"", 1);
	mw_json_append_escaped(buf, data, len);
	buf_put(buf, "\"", 1);
}

/* --- parser --- */

void mw_json_obj_init(struct mw_json_obj *obj)
{
	memset(obj, 0, sizeof(*obj));
}

void mw_json_obj_free(struct mw_json_obj *obj)
{
	free(obj->arena);
	memset(obj, 0, sizeof(*obj));
}

struct parser {
	struct mw_json_obj *obj;
	const unsigned char *p;
	size_t len, pos;
	char *out;	/* arena write position */
};

static int perr(struct parser *ps, const char *what)
{
	snprintf(ps->obj->error, sizeof(ps->obj->error), "%s at offset %zu",
		 what, ps->pos);
	return -1;
}

static int hex4(struct parser *ps, uint32_t *v_r)
{
	unsigned char v[2];

	if (ps->len - ps->pos < 4)
		return perr(ps, "truncated \\u escape");
	if (mw_hex_decode_n((const char *)ps->p + ps->pos, v, 2) < 0)
		return perr(ps, "bad hex digit in \\u escape");
	ps->pos += 4;
	*v_r = ((uint32_t)v[0] << 8) | v[1];
	return 0;
}

static void put_utf8(struct parser *ps, uint32_t cp)
{
	char *o = ps->out;

	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | (cp >> 6));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | (cp >> 12));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | (cp >> 18));
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	ps->out = o;
}

/* Decodes the \u escape at ps->pos (after the "\u") into the arena:
   a code point, a surrogate pair, or a lone low surrogate
   U+DC80..U+DCFF for a raw byte (mw_json_append_escaped()). */
static int parse_u_escape(struct parser *ps)
{
	uint32_t cp, lo;

	if (hex4(ps, &cp) < 0)
		return -1;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		/* high surrogate: must be followed by a low surrogate */
		if (ps->len - ps->pos < 6 || ps->p[ps->pos] != '\\' ||
		    ps->p[ps->pos + 1] != 'u')
			return perr(ps, "unpaired high surrogate");
		ps->pos += 2;
		if (hex4(ps, &lo) < 0)
			return -1;
		if (lo < 0xdc00 || lo > 0xdfff)
			return perr(ps, "unpaired high surrogate");
		put_utf8(ps, 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00));
	} else if (cp >= 0xdc00 && cp <= 0xdfff) {
		/* lone low surrogate: escaped raw byte */
		if (cp < 0xdc80 || cp > 0xdcff)
			return perr(ps, "unpaired low surrogate");
		*ps->out++ = (char)(cp & 0xff);
	} else {
		put_utf8(ps, cp);
	}
	return 0;
}

/* Decodes the escape at ps->pos (at the backslash) into the arena. */
static int parse_escape(struct parser *ps)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *s;
	unsigned char c;

	ps->pos++;
	if (ps->pos >= ps->len)
		return perr(ps, "truncated escape");
	c = ps->p[ps->pos++];
	if (c == 'u')
		return parse_u_escape(ps);
	s = c == '\0' ? NULL : strchr(from, c);
	if (s == NULL) {
		ps->pos--;
		return perr(ps, "bad escape");
	}
	*ps->out++ = to[s - from];
	return 0;
}

/* Parses a string at ps->pos (which is at the opening quote); stores the
   decoded bytes in the arena. Every escape or raw sequence decodes to at
   most as many bytes as it occupies, so the arena never overflows. */
static int parse_string(struct parser *ps, const char **str_r,
			size_t *len_r)
{
	char *start;
	unsigned char c;
	size_t n;

	ps->pos++; /* opening quote */
	start = ps->out;
	for (;;) {
		if (ps->pos >= ps->len)
			return perr(ps, "unterminated string");
		c = ps->p[ps->pos];
		if (c == '"') {
			ps->pos++;
			break;
		}
		if (c < 0x20 || c == 0x7f)
			return perr(ps, "raw control character in string");
		if (c == '\\') {
			if (parse_escape(ps) < 0)
				return -1;
			continue;
		}
		n = c < 0x80 ? 1 : mw_utf8_char_len(ps->p + ps->pos,
							 ps->len - ps->pos);
		if (n == 0)
			return perr(ps, "invalid UTF-8 in string");
		memcpy(ps->out, ps->p + ps->pos, n);
		ps->out += n;
		ps->pos += n;
	}
	*len_r = (size_t)(ps->out - start);
	*ps->out++ = '\0';
	*str_r = start;
	return 0;
}

static int parse_int(struct parser *ps, struct mw_json_member *m)
{
	uint64_t v = 0;
	size_t digits = 0;

	if (ps->p[ps->pos] == '-') {
		m->negative = true;
		ps->pos++;
	}
	if (ps->pos >= ps->len || ps->p[ps->pos] < '0' ||
	    ps->p[ps->pos] > '9')
		return perr(ps, "bad number");
	if (ps->p[ps->pos] == '0' && ps->pos + 1 < ps->len &&
	    ps->p[ps->pos + 1] >= '0' && ps->p[ps->pos + 1] <= '9')
		return perr(ps, "leading zero in number");
	while (ps->pos < ps->len && ps->p[ps->pos] >= '0' &&
	       ps->p[ps->pos] <= '9') {
		unsigned int d = (unsigned int)(ps->p[ps->pos] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return perr(ps, "number out of range");
		v = v * 10 + d;
		ps->pos++;
		digits++;
	}
	if (ps->pos < ps->len && (ps->p[ps->pos] == '.' ||
				  ps->p[ps->pos] == 'e' ||
				  ps->p[ps->pos] == 'E'))
		return perr(ps, "only integers are allowed");
	if (m->negative && v == 0)
		return perr(ps, "negative zero");
	m->num = v;
	(void)digits;
	return 0;
}

static bool match_word(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if (ps->len - ps->pos < n || memcmp(ps->p + ps->pos, word, n) != 0)
		return false;
	ps->pos += n;
	return true;
}

/* Parses the value at ps->pos (at its first byte) into m. */
static int parse_value(struct parser *ps, struct mw_json_member *m)
{
	switch (ps->p[ps->pos]) {
	case '"':
		m->type = MW_JSON_STRING;
		return parse_string(ps, &m->str, &m->str_len);
	case 't':
	case 'f':
		m->type = MW_JSON_BOOL;
		if (match_word(ps, "true"))
			m->boolean = true;
		else if (!match_word(ps, "false"))
			return perr(ps, "bad literal");
		return 0;
	case 'n':
		m->type = MW_JSON_NULL;
		if (!match_word(ps, "null"))
			return perr(ps, "bad literal");
		return 0;
	case '{':
	case '[':
		return perr(ps, "nested values are not allowed");
	default:
		m->type = MW_JSON_INT;
		return parse_int(ps, m);
	}
}

/* Parses the member "key":value at ps->pos into the next member. */
static int parse_member(struct parser *ps)
{
	struct mw_json_obj *obj = ps->obj;
	struct mw_json_member *m;
	unsigned int i;

	if (ps->pos >= ps->len || ps->p[ps->pos] != '"')
		return perr(ps, "expected '\"' starting a key");
	if (obj->count == MW_JSON_MAX_MEMBERS)
		return perr(ps, "too many members");
	m = &obj->members[obj->count];
	memset(m, 0, sizeof(*m));
	m->raw_start = ps->pos;
	if (parse_string(ps, &m->key, &m->key_len) < 0)
		return -1;
	if (strlen(m->key) != m->key_len)
		return perr(ps, "NUL in key");
	for (i = 0; i < obj->count; i++) {
		if (strcmp(obj->members[i].key, m->key) == 0)
			return perr(ps, "duplicate key");
	}
	if (ps->pos >= ps->len || ps->p[ps->pos] != ':')
		return perr(ps, "expected ':'");
	ps->pos++;
	if (ps->pos >= ps->len)
		return perr(ps, "missing value");
	if (parse_value(ps, m) < 0)
		return -1;
	m->raw_end = ps->pos;
	obj->count++;
	return 0;
}

/* Parses the members after the '{' up to and including the '}'. */
static int parse_members(struct parser *ps)
{
	if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
		ps->pos++;
		return 0;
	}
	for (;;) {
		if (parse_member(ps) < 0)
			return -1;
		if (ps->pos >= ps->len)
			return perr(ps, "unterminated object");
		if (ps->p[ps->pos] == '}') {
			ps->pos++;
			return 0;
		}
		if (ps->p[ps->pos] != ',')
			return perr(ps, "expected ',' or '}'");
		ps->pos++;
	}
}

int mw_json_parse_object(struct mw_json_obj *obj, const char *text,
			 size_t len, const char **error_r)
{
	struct parser ps;
	size_t need;

	obj->count = 0;
	obj->error[0] = '\0';
	memset(&ps, 0, sizeof(ps));
	ps.obj = obj;
	ps.p = (const unsigned char *)text;
	ps.len = len;

	need = len + 2;
	if (need > obj->arena_size) {
		char *a = realloc(obj->arena, need);

		if (a == NULL) {
			snprintf(obj->error, sizeof(obj->error),
				 "out of memory");
			*error_r = obj->error;
			return -1;
		}
		obj->arena = a;
		obj->arena_size = need;
	}
	ps.out = obj->arena;

	if (len == 0 || ps.p[0] != '{') {
		perr(&ps, "expected '{'");
		goto fail;
	}
	ps.pos = 1;
	if (parse_members(&ps) < 0)
		goto fail;
	if (ps.pos == len)
		return 0;
	perr(&ps, "trailing bytes after object");
fail:
	obj->count = 0;
	*error_r = obj->error;
	return -1;
}

const struct mw_json_member *
mw_json_obj_get(const struct mw_json_obj *obj, const char *key)
{
	unsigned int i;

	for (i = 0; i < obj->count; i++) {
		if (strcmp(obj->members[i].key, key) == 0)
			return &obj->members[i];
	}
	return NULL;
}

void mw_json_member_serialize(const struct mw_json_member *m,
			      struct mw_json_buf *out)
{
	mw_json_append_string(out, m->key, m->key_len);
	mw_json_buf_append(out, ":", 1);
	switch (m->type) {
	case MW_JSON_STRING:
		mw_json_append_string(out, m->str, m->str_len);
		break;
	case MW_JSON_INT:
		if (m->negative)
			mw_json_buf_append(out, "-", 1);
		mw_json_buf_append_u64(out, m->num);
		break;
	case MW_JSON_BOOL:
		mw_json_buf_append_str(out, m->boolean ? "true" : "false");
		break;
	case MW_JSON_NULL:
		mw_json_buf_append_str(out, "null");
		break;
	}
}

void mw_json_obj_serialize(const struct mw_json_obj *obj,
			   struct mw_json_buf *out)
{
	unsigned int i;

	mw_json_buf_append(out, "{", 1);
	for (i = 0; i < obj->count; i++) {
		if (i > 0)
			mw_json_buf_append(out, ",", 1);
		mw_json_member_serialize(&obj->members[i], out);
	}
	mw_json_buf_append(out, "}", 1);
}
