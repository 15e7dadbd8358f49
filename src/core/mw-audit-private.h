#ifndef MW_AUDIT_PRIVATE_H
#define MW_AUDIT_PRIVATE_H

/* Shared by the mw-audit-*.c files only. */

#include <stdbool.h>
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

/* The one-pass check of an event body (mw-audit-body.c): TRUE only if
   mw_audit_body_validate()'s full check accepts body[0..len): known event
   fields in canonical order, strings of at most MW_AUDIT_STR_MAX decoded
   bytes in canonical encoding without \\udcxx or \\/ escapes, integers of
   at most 19 digits, a valid non-writer event name without escapes.
   FALSE means "not vouched for": the full check decides. */
bool mw_audit_body_quick_valid(const char *body, size_t len);
/* mw_audit_body_validate() without the one-pass check: parses
   {body}, checks the members and compares the body with their canonical
   re-serialisation. Same contract; for the tests of the one-pass check. */
int mw_audit_body_validate_full(const char *body, size_t len,
				const char **error_r);

#endif
