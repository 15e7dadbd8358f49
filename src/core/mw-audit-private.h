#ifndef MW_AUDIT_PRIVATE_H
#define MW_AUDIT_PRIVATE_H

/* Shared by the mw-audit-*.c files only. */

#include <stddef.h>

/* bytes of an error message, with its NUL */
#define MW_AUDIT_ERROR_MAX 512

/* Formats an error into buf[size], sets *error_r to it and returns -1.
   An argument may be buf itself (it is formatted into a copy first). */
int mw_audit_fail_into(char *buf, size_t size, const char **error_r,
		       const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The same into a static buffer (valid until the next failing call of
   any mw-audit function without an object). */
extern char mw_audit_static_error[MW_AUDIT_ERROR_MAX];
#define mw_audit_fail_static(error_r, ...) \
	mw_audit_fail_into(mw_audit_static_error, \
			   sizeof(mw_audit_static_error), (error_r), \
			   __VA_ARGS__)

#endif
