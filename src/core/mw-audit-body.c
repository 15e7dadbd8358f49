/* mailward audit log: the one-pass check of event bodies in the form the
   builder emits (issue 14). mw_audit_body_validate() (mw-audit-record.c)
   runs it first; a body it cannot vouch for goes through the full check
   (parse, field checks, canonical re-serialisation), which gives the
   verdict and the error. See mw-audit-private.h and docs/audit-log.md
   §2, §3.3. */

#include "mw-audit.h"
#include "mw-audit-private.h"
#include "mw-json.h"
#include "mw-util.h"

#include <string.h>

/* The length of the escape at p (p[0] == '\\') if it is the canonical
   encoding of the byte it stands for (docs/audit-log.md §2: \" \\ \b \t
   \n \f \r, and \u00xx in lowercase hex for the other C0 controls and
   DEL), else 0. \/, \u of anything else and \udcxx (whose canonical
   form depends on the bytes around it) are left to the full check. */
static size_t quick_escape_len(const unsigned char *p, size_t avail)
{
	unsigned int b = 0, i;

	if (avail < 2)
		return 0;
	switch (p[1]) {
	case '"': case '\\': case 'b': case 't': case 'n': case 'f': case 'r':
		return 2;
	case 'u':
		break;
	default:
		return 0;
	}
	if (avail < 6 || p[2] != '0' || p[3] != '0')
		return 0;
	for (i = 4; i < 6; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			b = b * 16 + (p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			b = b * 16 + (p[i] - 'a' + 10);
		else
			return 0;
	}
	if ((b >= 0x20 && b != 0x7f) || b == 0x08 || b == 0x09 ||
	    b == 0x0a || b == 0x0c || b == 0x0d)
		return 0;
	return 6;
}

/* The string at p (p[0] == '"'): the bytes it takes with its quotes if
   every byte in it is in canonical form (plain ASCII, well-formed UTF-8,
   the escapes above), else 0. *dec_r: its decoded length. */
static size_t quick_string(const unsigned char *p, size_t avail,
			   size_t *dec_r)
{
	size_t pos = 1, extra = 0, n;
	unsigned char c;

	for (;;) {
		/* the run of plain bytes: most of a record */
		while (pos < avail && mw_json_plain[p[pos]])
			pos++;
		if (pos >= avail)
			return 0;
		c = p[pos];
		if (c == '"')
			break;
		if (c == '\\')
			n = quick_escape_len(p + pos, avail - pos);
		else if (c < 0x80)
			return 0; /* raw control or DEL */
		else
			n = mw_utf8_char_len(p + pos, avail - pos);
		if (n == 0)
			return 0;
		if (c == '\\')
			extra += n - 1; /* an escape decodes to one byte */
		pos += n;
	}
	*dec_r = pos - 1 - extra;
	return pos + 1;
}

/* The unsigned integer at p: its digits if canonical (no sign, no
   leading zero) and at most 19 of them (fits 64 bits), else 0. */
static size_t quick_u64(const unsigned char *p, size_t avail)
{
	size_t n = 0;

	while (n < avail && p[n] >= '0' && p[n] <= '9')
		n++;
	if (n == 0 || n > 19 || (p[0] == '0' && n > 1))
		return 0;
	return n;
}

/* The event field after last named key[0..klen), or -1. */
static int quick_field(const unsigned char *key, size_t klen, int last)
{
	const char *name;
	int f;

	for (f = last + 1; f < MW_AF_COUNT; f++) {
		name = mw_audit_fields[f].name;
		if (name[0] == (char)key[0] &&
		    strncmp(name, (const char *)key, klen) == 0 &&
		    name[klen] == '\0')
			return mw_audit_fields[f].class_ ==
				MW_AUDIT_CLASS_EVENT ? f : -1;
	}
	return -1;
}

/* The "key": at p: the key's length if it is a plain name
   ([a-z0-9_]+) followed by '":', else 0. */
static size_t quick_key(const unsigned char *p, size_t avail)
{
	static const bool name_byte[256] = {
		['0' ... '9'] = true, ['_'] = true, ['a' ... 'z'] = true,
	};
	size_t n = 1;

	if (avail < 4 || p[0] != '"')
		return 0;
	while (n < avail && name_byte[p[n]])
		n++;
	if (n == 1 || avail - n < 2 || p[n] != '"' || p[n + 1] != ':')
		return 0;
	return n - 1;
}

/* The event name (raw, between its quotes): valid and not a writer
   event. */
static bool quick_event_ok(const unsigned char *ev, size_t len)
{
	char name[33];

	if (len == 0 || len >= sizeof(name))
		return false;
	memcpy(name, ev, len);
	name[len] = '\0';
	return mw_audit_event_name_valid(name) &&
		!mw_audit_event_is_writer(name);
}

bool mw_audit_body_quick_valid(const char *body, size_t len)
{
	const unsigned char *p = (const unsigned char *)body;
	const unsigned char *ev = NULL;
	size_t pos = 0, klen, n, dec, ev_len = 0;
	int f, last = -1;

	if (len == 0 || len > MW_AUDIT_BODY_MAX)
		return false;
	for (;;) {
		if ((klen = quick_key(p + pos, len - pos)) == 0 ||
		    (f = quick_field(p + pos + 1, klen, last)) < 0)
			return false;
		pos += klen + 3;
		if (mw_audit_fields[f].type == MW_AUDIT_TYPE_STRING) {
			if (pos >= len || p[pos] != '"')
				return false;
			n = quick_string(p + pos, len - pos, &dec);
			if (n == 0 || dec > MW_AUDIT_STR_MAX)
				return false;
			if (f == MW_AF_EVENT) {
				ev = p + pos + 1;
				ev_len = n - 2;
			}
		} else if ((n = quick_u64(p + pos, len - pos)) == 0) {
			return false;
		}
		pos += n;
		last = f;
		if (pos == len)
			break;
		if (p[pos] != ',')
			return false;
		pos++;
	}
	return ev != NULL && quick_event_ok(ev, ev_len);
}
