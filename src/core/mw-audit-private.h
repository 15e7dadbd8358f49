#ifndef MW_AUDIT_PRIVATE_H
#define MW_AUDIT_PRIVATE_H

/* Shared by the mw-audit-*.c files only. */

/* Formats an error into a static buffer (valid until the next call from
   any mw-audit function), sets *error_r to it and returns -1. An argument
   may be the static buffer itself (it is formatted into a copy first). */
int mw_audit_fail_static(const char **error_r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
