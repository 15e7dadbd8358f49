#ifndef MW_IMAPID_H
#define MW_IMAPID_H

/* RFC 2971 ID command arguments as Dovecot passes them to command hooks:
   "NIL" or a parenthesized list of strings ("name" "value" ...), each a
   quoted string, a literal {n}\r\n... or NIL. Hostile input: everything is
   bounded. Dovecot-independent. */

#include <stddef.h>

/* Longest token kept (bytes); longer ones are truncated. */
#define MW_IMAPID_TOKEN_MAX 256

/* Splits args into at most max_strings strings, copied NUL-terminated into
   buf (bufsize bytes); strings[i] points into buf, or is NULL for NIL.
   Tokens past max_strings are ignored, tokens that do not fit buf are
   NULL. Returns 0 with *count_r set, or -1 on a syntax error. */
int mw_imap_id_split(const char *args, char *buf, size_t bufsize,
		     const char **strings, unsigned int max_strings,
		     unsigned int *count_r);

#endif
