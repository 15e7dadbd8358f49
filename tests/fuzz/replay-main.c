/* Replay driver: runs a libFuzzer harness (LLVMFuzzerTestOneInput) on the
   files named on the command line, without libFuzzer. Used by
   tests/test_fuzz_regression.py with gcc or clang and ASan/UBSan, so the
   corpus is replayed as part of the normal test suite. A crash or a
   failed property aborts the process (non-zero exit). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned char *read_file(const char *path, size_t *size_r)
{
	unsigned char *buf = NULL, *p;
	size_t size = 0, cap = 0, n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	for (;;) {
		if (cap - size < 65536) {
			cap = cap == 0 ? 65536 : cap * 2;
			p = realloc(buf, cap);
			if (p == NULL) {
				fprintf(stderr, "out of memory\n");
				exit(2);
			}
			buf = p;
		}
		n = fread(buf + size, 1, cap - size, f);
		if (n == 0)
			break;
		size += n;
	}
	if (ferror(f)) {
		perror(path);
		exit(2);
	}
	fclose(f);
	*size_r = size;
	return buf;
}

int main(int argc, char **argv)
{
	int i;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		size_t size;
		unsigned char *data = read_file(argv[i], &size);
		/* exact-size copy so ASan catches over-reads of the input */
		unsigned char *copy = malloc(size == 0 ? 1 : size);

		if (copy == NULL)
			return 2;
		/* names the input if it crashes */
		fprintf(stderr, "replay: %s (%zu bytes)\n", argv[i], size);
		for (size_t j = 0; j < size; j++)
			copy[j] = data[j];
		free(data);
		LLVMFuzzerTestOneInput(copy, size);
		free(copy);
	}
	printf("replayed %d input(s)\n", argc - 1);
	return 0;
}
