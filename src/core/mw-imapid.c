/* RFC 2971 ID argument splitting: see mw-imapid.h */

#include "mw-imapid.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct out_buf {
	char *buf;
	size_t size, used;
};

/* Starts a token in out; returns its start or NULL when out is full. */
static char *token_start(struct out_buf *out)
{
	if (out->used >= out->size)
		return NULL;
	return out->buf + out->used;
}

static void token_end(struct out_buf *out, char *start, size_t len)
{
	if (start == NULL)
		return;
	start[len] = '\0';
	out->used += len + 1;
}

static bool token_room(struct out_buf *out, char *start, size_t len)
{
	return start != NULL && len + 1 < MW_IMAPID_TOKEN_MAX &&
		(size_t)(start - out->buf) + len + 1 < out->size;
}

int mw_imap_id_split(const char *args, char *buf, size_t bufsize,
		     const char **strings, unsigned int max_strings,
		     unsigned int *count_r)
{
	struct out_buf out = { buf, bufsize, 0 };
	const char *p = args;
	unsigned int count = 0;

	*count_r = 0;
	if (bufsize == 0)
		return -1;
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "NIL", 3) == 0) {
		p += 3;
		while (*p == ' ')
			p++;
		return *p == '\0' ? 0 : -1;
	}
	if (*p++ != '(')
		return -1;
	for (;;) {
		const char *value = NULL;
		char *start;
		size_t len = 0;
		bool have_value = false;

		while (*p == ' ')
			p++;
		if (*p == ')') {
			p++;
			break;
		}
		if (*p == '\0')
			return -1;
		start = token_start(&out);
		if (*p == '"') {
			/* quoted string with \" and \\ escapes */
			for (p++; *p != '"'; p++) {
				if (*p == '\0')
					return -1;
				if (*p == '\\') {
					p++;
					if (*p == '\0')
						return -1;
				}
				if (token_room(&out, start, len))
					start[len++] = *p;
			}
			p++;
			have_value = true;
		} else if (*p == '{') {
			/* literal {n} or {n+} followed by CRLF and n bytes */
			char *end;
			unsigned long n = strtoul(p + 1, &end, 10);
			size_t avail;

			if (end == p + 1)
				return -1;
			if (*end == '+')
				end++;
			if (*end != '}')
				return -1;
			p = end + 1;
			if (p[0] == '\r' && p[1] == '\n')
				p += 2;
			else if (p[0] == '\n')
				p++;
			avail = strlen(p);
			if (n > avail)
				return -1;
			for (size_t i = 0; i < n; i++) {
				if (token_room(&out, start, len))
					start[len++] = p[i];
			}
			p += n;
			have_value = true;
		} else if (strncasecmp(p, "NIL", 3) == 0 &&
			   (p[3] == ' ' || p[3] == ')')) {
			p += 3;
		} else {
			/* atom: tolerate it as a string */
			while (*p != '\0' && *p != ' ' && *p != ')' &&
			       *p != '(' && *p != '"') {
				if (token_room(&out, start, len))
					start[len++] = *p;
				p++;
			}
			if (len == 0)
				return -1;
			have_value = true;
		}
		if (have_value && start != NULL) {
			value = start;
			token_end(&out, start, len);
		}
		if (count < max_strings)
			strings[count++] = value;
	}
	while (*p == ' ')
		p++;
	if (*p != '\0')
		return -1;
	*count_r = count;
	return 0;
}
