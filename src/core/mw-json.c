/* JSON escaping and the strict flat-object parser of audit records.
   See mw-json.h and docs/audit-log.md §2. */

#include "mw-json.h"
#include "mw-util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hexdigits[] = "0123456789abcdef";

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
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)value);

	mw_json_buf_append(buf, tmp, (size_t)n);
}

void mw_json_buf_truncate(struct mw_json_buf *buf, size_t new_len)
{
	if (new_len < buf->len) {
		buf->len = new_len;
		buf->data[new_len] = '\0';
	}
}

size_t mw_json_utf8_seq_len(const unsigned char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	return mw_utf8_seq_len_n(p, len, NULL);
}

size_t mw_json_utf8_cut(const char *data, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t pos = 0, n;

	if (len <= max)
		return len;
	while (pos < max) {
		n = mw_json_utf8_seq_len(p + pos, len - pos);
		if (n == 0)
			n = 1; /* invalid byte: escaped on its own */
		if (pos + n > max)
			break;
		pos += n;
	}
	return pos;
}

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

			if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
				pos++;
				continue;
			}
			if (c < 0x80)
				break;
			n = mw_json_utf8_seq_len(p + pos, len - pos);
			if (n == 0)
				break;
			pos += n;
		}
		if (pos > start)
			mw_json_buf_append(buf, p + start, pos - start);
		if (pos >= len)
			break;

		/* escape one byte */
		unsigned char c = p[pos++];
		switch (c) {
		case '"': mw_json_buf_append(buf, "\\\"", 2); break;
		case '\\': mw_json_buf_append(buf, "\\\\", 2); break;
		case 0x08: mw_json_buf_append(buf, "\\b", 2); break;
		case 0x09: mw_json_buf_append(buf, "\\t", 2); break;
		case 0x0a: mw_json_buf_append(buf, "\\n", 2); break;
		case 0x0c: mw_json_buf_append(buf, "\\f", 2); break;
		case 0x0d: mw_json_buf_append(buf, "\\r", 2); break;
		default:
			memcpy(esc, c < 0x80 ? "\\u00" : "\\udc", 4);
			esc[4] = hexdigits[c >> 4];
			esc[5] = hexdigits[c & 0xf];
			mw_json_buf_append(buf, esc, 6);
			break;
		}
	}
}

void mw_json_append_string(struct mw_json_buf *buf, const void *data,
			   size_t len)
{
	mw_json_buf_append(buf, "\"", 1);
	mw_json_append_escaped(buf, data, len);
	mw_json_buf_append(buf, "\"", 1);
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
	uint32_t v = 0;
	unsigned int i;

	if (ps->len - ps->pos < 4)
		return perr(ps, "truncated \\u escape");
	for (i = 0; i < 4; i++) {
		unsigned char c = ps->p[ps->pos + i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return perr(ps, "bad hex digit in \\u escape");
	}
	ps->pos += 4;
	*v_r = v;
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

/* Parses a string at ps->pos (which is at the opening quote); stores the
   decoded bytes in the arena. Every escape or raw sequence decodes to at
   most as many bytes as it occupies, so the arena never overflows. */
static int parse_string(struct parser *ps, const char **str_r,
			size_t *len_r)
{
	char *start;
	uint32_t cp, lo;
	size_t n;

	ps->pos++; /* opening quote */
	start = ps->out;
	for (;;) {
		if (ps->pos >= ps->len)
			return perr(ps, "unterminated string");
		unsigned char c = ps->p[ps->pos];

		if (c == '"') {
			ps->pos++;
			break;
		}
		if (c < 0x20 || c == 0x7f)
			return perr(ps, "raw control character in string");
		if (c >= 0x80) {
			n = mw_json_utf8_seq_len(ps->p + ps->pos,
						 ps->len - ps->pos);
			if (n == 0)
				return perr(ps, "invalid UTF-8 in string");
			memcpy(ps->out, ps->p + ps->pos, n);
			ps->out += n;
			ps->pos += n;
			continue;
		}
		if (c != '\\') {
			*ps->out++ = (char)c;
			ps->pos++;
			continue;
		}
		ps->pos++;
		if (ps->pos >= ps->len)
			return perr(ps, "truncated escape");
		c = ps->p[ps->pos++];
		switch (c) {
		case '"': *ps->out++ = '"'; break;
		case '\\': *ps->out++ = '\\'; break;
		case '/': *ps->out++ = '/'; break;
		case 'b': *ps->out++ = '\b'; break;
		case 'f': *ps->out++ = '\f'; break;
		case 'n': *ps->out++ = '\n'; break;
		case 'r': *ps->out++ = '\r'; break;
		case 't': *ps->out++ = '\t'; break;
		case 'u':
			if (hex4(ps, &cp) < 0)
				return -1;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				/* high surrogate: must be followed by a low
				   surrogate */
				if (ps->len - ps->pos < 6 ||
				    ps->p[ps->pos] != '\\' ||
				    ps->p[ps->pos + 1] != 'u')
					return perr(ps, "unpaired high surrogate");
				ps->pos += 2;
				if (hex4(ps, &lo) < 0)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return perr(ps, "unpaired high surrogate");
				cp = 0x10000 + ((cp - 0xd800) << 10) +
					(lo - 0xdc00);
				put_utf8(ps, cp);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				/* lone low surrogate: escaped raw byte */
				if (cp < 0xdc80 || cp > 0xdcff)
					return perr(ps, "unpaired low surrogate");
				*ps->out++ = (char)(cp & 0xff);
			} else {
				put_utf8(ps, cp);
			}
			break;
		default:
			ps->pos--;
			return perr(ps, "bad escape");
		}
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

int mw_json_parse_object(struct mw_json_obj *obj, const char *text,
			 size_t len, const char **error_r)
{
	struct parser ps;
	struct mw_json_member *m;
	unsigned int i;
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
	if (ps.pos < len && ps.p[ps.pos] == '}') {
		ps.pos++;
		goto end;
	}
	for (;;) {
		if (ps.pos >= len || ps.p[ps.pos] != '"') {
			perr(&ps, "expected '\"' starting a key");
			goto fail;
		}
		if (obj->count == MW_JSON_MAX_MEMBERS) {
			perr(&ps, "too many members");
			goto fail;
		}
		m = &obj->members[obj->count];
		memset(m, 0, sizeof(*m));
		m->raw_start = ps.pos;
		if (parse_string(&ps, &m->key, &m->key_len) < 0)
			goto fail;
		if (strlen(m->key) != m->key_len) {
			perr(&ps, "NUL in key");
			goto fail;
		}
		for (i = 0; i < obj->count; i++) {
			if (strcmp(obj->members[i].key, m->key) == 0) {
				perr(&ps, "duplicate key");
				goto fail;
			}
		}
		if (ps.pos >= len || ps.p[ps.pos] != ':') {
			perr(&ps, "expected ':'");
			goto fail;
		}
		ps.pos++;
		if (ps.pos >= len) {
			perr(&ps, "missing value");
			goto fail;
		}
		switch (ps.p[ps.pos]) {
		case '"':
			m->type = MW_JSON_STRING;
			if (parse_string(&ps, &m->str, &m->str_len) < 0)
				goto fail;
			break;
		case 't':
		case 'f':
			m->type = MW_JSON_BOOL;
			if (match_word(&ps, "true"))
				m->boolean = true;
			else if (!match_word(&ps, "false")) {
				perr(&ps, "bad literal");
				goto fail;
			}
			break;
		case 'n':
			m->type = MW_JSON_NULL;
			if (!match_word(&ps, "null")) {
				perr(&ps, "bad literal");
				goto fail;
			}
			break;
		case '{':
		case '[':
			perr(&ps, "nested values are not allowed");
			goto fail;
		default:
			m->type = MW_JSON_INT;
			if (parse_int(&ps, m) < 0)
				goto fail;
			break;
		}
		m->raw_end = ps.pos;
		obj->count++;
		if (ps.pos >= len) {
			perr(&ps, "unterminated object");
			goto fail;
		}
		if (ps.p[ps.pos] == ',') {
			ps.pos++;
			continue;
		}
		if (ps.p[ps.pos] == '}') {
			ps.pos++;
			break;
		}
		perr(&ps, "expected ',' or '}'");
		goto fail;
	}
end:
	if (ps.pos != len) {
		perr(&ps, "trailing bytes after object");
		goto fail;
	}
	return 0;
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
