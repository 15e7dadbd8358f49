/* Shared helpers of the mailward libFuzzer harnesses (tests/fuzz/).
   Header-only; the harnesses are built by run-fuzzers.sh (libFuzzer) and
   by tests/test_fuzz_regression.py (replay-main.c driver). */

#ifndef MW_FUZZ_COMMON_H
#define MW_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed property: print and abort, so both libFuzzer and the replay
   driver report it as a crash. */
#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", \
			__FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* Exact-size heap copy of data[size] with a NUL appended (so ASan sees
   any read past the terminator). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Exact-size heap copy without a terminator. */
static inline char *fuzz_memdup(const uint8_t *data, size_t size)
{
	char *s = malloc(size == 0 ? 1 : size);

	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	return s;
}

/* Consumes one byte of input (0 when exhausted). */
static inline uint8_t fuzz_byte(const uint8_t **data, size_t *size)
{
	uint8_t b;

	if (*size == 0)
		return 0;
	b = **data;
	(*data)++;
	(*size)--;
	return b;
}

/* TRUE if s[0..len) is printable ASCII or UTF-8 without C0/C1 controls
   and DEL (what the escaping rule of mw-util.h promises). */
static inline bool fuzz_no_controls(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		/* C1 controls as UTF-8: c2 80..c2 9f */
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

#endif
