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

/* the token being read: its bytes go to start[0..len) while they fit */
struct token {
	struct out_buf *out;
	char *start;
	size_t len;
};

static void token_add(struct token *tok, char c)
{
	if (token_room(tok->out, tok->start, tok->len))
		tok->start[tok->len++] = c;
}

/* quoted string with \" and \\ escapes, *p at the opening quote */
static int parse_quoted(const char **_p, struct token *tok)
{
	const char *p = *_p;

	for (p++; *p != '"'; p++) {
		if (*p == '\0')
			return -1;
		if (*p == '\\') {
			p++;
			if (*p == '\0')
				return -1;
		}
		token_add(tok, *p);
	}
	*_p = p + 1;
	return 0;
}

/* literal {n} or {n+} followed by CRLF and n bytes, *p at the '{' */
static int parse_literal(const char **_p, struct token *tok)
{
	const char *p = *_p;
	char *end;
	unsigned long n = strtoul(p + 1, &end, 10);
	size_t i;

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
	if (n > strlen(p))
		return -1;
	for (i = 0; i < n; i++)
		token_add(tok, p[i]);
	*_p = p + n;
	return 0;
}

/* an atom, tolerated as a string */
static int parse_atom(const char **_p, struct token *tok)
{
	const char *p = *_p;

	while (*p != '\0' && *p != ' ' && *p != ')' && *p != '(' &&
	       *p != '"') {
		token_add(tok, *p);
		p++;
	}
	*_p = p;
	return tok->len == 0 ? -1 : 0;
}

/* Reads the list item at *p into out: 1 with *value_r (NULL when it did
   not fit), 0 for NIL, -1 on a syntax error. */
static int parse_item(const char **p, struct out_buf *out,
		      const char **value_r)
{
	struct token tok = { out, token_start(out), 0 };
	int ret;

	*value_r = NULL;
	if (**p == '"')
		ret = parse_quoted(p, &tok);
	else if (**p == '{')
		ret = parse_literal(p, &tok);
	else if (strncasecmp(*p, "NIL", 3) == 0 &&
		 ((*p)[3] == ' ' || (*p)[3] == ')')) {
		*p += 3;
		return 0;
	} else
		ret = parse_atom(p, &tok);
	if (ret < 0)
		return -1;
	if (tok.start != NULL) {
		*value_r = tok.start;
		token_end(out, tok.start, tok.len);
	}
	return 1;
}

int mw_imap_id_split(const char *args, char *buf, size_t bufsize,
		     const char **strings, unsigned int max_strings,
		     unsigned int *count_r)
{
	struct out_buf out = { buf, bufsize, 0 };
	const char *p = args, *value;
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
		while (*p == ' ')
			p++;
		if (*p == ')') {
			p++;
			break;
		}
		if (*p == '\0' || parse_item(&p, &out, &value) < 0)
			return -1;
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
