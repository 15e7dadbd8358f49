#ifndef MAILWARD_DISPLAY_H
#define MAILWARD_DISPLAY_H

/* Dovecot glue of the core's escaping rule (mw_escape_item() in
   mw-util.h) for human-facing output: log lines and doveadm tables.
   Header-only so that the plugins, the audit writer and the audit client
   test program share it without linking each other. */

#include "mw-util.h"

/* str with every control, format and direction character, DEL and
   invalid UTF-8 shown as \xNN ('"' and '\\' kept), allocated from the data
   stack. max > 0 bounds the output to max bytes (whole characters or
   escapes) and then appends "..."; max == 0 keeps all of str. NULL gives
   "". Clean text is returned unchanged. */
static inline const char *mailward_display(const char *str, size_t max)
{
	struct mw_buf buf;
	size_t size;
	char *out;

	if (str == NULL)
		return "";
	/* an escape takes at most 4 output bytes per input byte */
	size = max > 0 ? max + 1 : strlen(str) * 4 + 1;
	out = t_malloc_no0(size + 3);
	mw_buf_init(&buf, out, size);
	mw_buf_append_literal(&buf, str);
	if (buf.truncated)
		memcpy(out + buf.len, "...", 4);
	return out;
}

#endif
