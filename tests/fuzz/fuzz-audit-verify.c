/* Fuzzes the audit log verifier (mw-audit-verify.c) through its streaming
   API: fuzzed bytes are written as log files and verified with
   mw_audit_verify_files(), with or without the MAC key, the checkpoint
   public key, kept checkpoint files and the --partial / --expect-seq /
   --min-checkpoint options. Also fuzzes the bounded line reader with
   small line limits and the key file parser (mw_audit_key_load).

   Input: byte 0 = option flags, byte 1 = expect_seq / min_checkpoint /
   line limit, then the first log file. The marker "\n##MW##" starts a
   further part; its first byte says what it is: 'F' another (rotated)
   log file, 'K' a kept-checkpoint file, 'Y' a key file to parse. At most
   MAX_PARTS parts. Keys: fuzz-audit-keys.h (the seed corpus was written
   with them by gen-audit-seeds.c, so its MACs and signatures verify). */

#include "fuzz-common.h"
#include "fuzz-audit-keys.h"
#include "mw-audit-verify.h"

#include <unistd.h>

#define MAX_PARTS 6
#define MARKER "\n##MW##"
#define MARKER_LEN (sizeof(MARKER) - 1)

static char dir[64];
static char verify_key[128], pubkey[128], keyfile[128];
static char logs[MAX_PARTS][128], kept[MAX_PARTS][128];

static void cleanup(void)
{
	unsigned int i;

	for (i = 0; i < MAX_PARTS; i++) {
		unlink(logs[i]);
		unlink(kept[i]);
	}
	unlink(keyfile);
	unlink(verify_key);
	unlink(pubkey);
	snprintf(keyfile, sizeof(keyfile), "%s/writer.key", dir);
	unlink(keyfile);
	snprintf(keyfile, sizeof(keyfile), "%s/checkpoint.key", dir);
	unlink(keyfile);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	unsigned int i;

	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/mw-fuzz-verify.XXXXXX");
	if (mkdtemp(dir) == NULL || fuzz_audit_write_keys(dir) < 0) {
		fprintf(stderr, "fuzz-audit-verify: cannot set up %s\n", dir);
		abort();
	}
	snprintf(verify_key, sizeof(verify_key), "%s/verify.key", dir);
	snprintf(pubkey, sizeof(pubkey), "%s/checkpoint.pub", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/fuzzed.key", dir);
	for (i = 0; i < MAX_PARTS; i++) {
		snprintf(logs[i], sizeof(logs[i]), "%s/audit.%u", dir, i);
		snprintf(kept[i], sizeof(kept[i]), "%s/kept.%u", dir, i);
	}
	atexit(cleanup);
	return 0;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size) ||
	    fclose(f) != 0) {
		perror(path);
		abort();
	}
}

static const uint8_t *find_marker(const uint8_t *p, const uint8_t *end)
{
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL || (size_t)(end - nl) < MARKER_LEN)
			return NULL;
		if (memcmp(nl, MARKER, MARKER_LEN) == 0)
			return nl;
		p = nl + 1;
	}
	return NULL;
}

/* the line reader hands back exactly the input, line by line */
static void check_line_reader(const uint8_t *data, size_t size,
			      size_t max_line)
{
	struct mw_line_reader r;
	const char *line;
	size_t len, pos = 0;
	uint64_t offset;
	bool nl;
	int ret;
	FILE *f;

	if (size == 0)
		return;
	f = fmemopen((void *)data, size, "r");
	if (f == NULL)
		abort();
	FUZZ_ASSERT(mw_line_reader_init(&r, f, max_line) == 0);
	while ((ret = mw_line_reader_next(&r, &line, &len, &offset,
					  &nl)) > 0) {
		FUZZ_ASSERT(offset == pos);
		FUZZ_ASSERT(len <= max_line);
		FUZZ_ASSERT(pos + len <= size);
		FUZZ_ASSERT(memcmp(line, data + pos, len) == 0);
		FUZZ_ASSERT(memchr(line, '\n', len) == NULL);
		pos += len;
		if (nl) {
			FUZZ_ASSERT(pos < size && data[pos] == '\n');
			pos++;
		} else {
			FUZZ_ASSERT(pos == size);
		}
	}
	if (ret == 0)
		FUZZ_ASSERT(pos == size);
	else
		FUZZ_ASSERT(ret == -2);
	mw_line_reader_free(&r);
	fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mw_audit_verify_options opts;
	struct mw_audit_verify_result res;
	const char *paths[MAX_PARTS], *kept_paths[MAX_PARTS];
	unsigned int npaths = 0, nkept = 0;
	const uint8_t *p, *end, *m;
	uint8_t flags, arg;
	const char *err = NULL;
	uint8_t key[MW_AUDIT_KEY_LEN];
	uint32_t epoch;
	int ret;

	flags = fuzz_byte(&data, &size);
	arg = fuzz_byte(&data, &size);

	check_line_reader(data, size, (size_t)arg + 1);

	p = data;
	end = data + size;
	m = find_marker(p, end);
	write_file(logs[npaths], p, (size_t)((m != NULL ? m : end) - p));
	paths[npaths] = logs[npaths];
	npaths++;
	while (m != NULL) {
		const uint8_t *part = m + MARKER_LEN, *next;
		size_t len;
		char type;

		next = find_marker(part, end);
		len = (size_t)((next != NULL ? next : end) - part);
		type = len > 0 ? (char)part[0] : '\0';
		if (len > 0) {
			part++;
			len--;
		}
		if (type == 'F' && npaths < MAX_PARTS) {
			write_file(logs[npaths], part, len);
			paths[npaths] = logs[npaths];
			npaths++;
		} else if (type == 'K' && nkept < MAX_PARTS) {
			write_file(kept[nkept], part, len);
			kept_paths[nkept] = kept[nkept];
			nkept++;
		} else if (type == 'Y') {
			write_file(keyfile, part, len);
			if (mw_audit_key_load(keyfile, &epoch, key, &err) == 0) {
				/* whatever parses is the format */
				FUZZ_ASSERT(len == 28 + 1 + 5 + 64 + 1 ||
					    len > 28 + 5 + 64 + 1);
			} else {
				FUZZ_ASSERT(err != NULL);
			}
		}
		m = next;
	}

	memset(&opts, 0, sizeof(opts));
	if (flags & 1)
		opts.key_path = verify_key;
	if (flags & 2)
		opts.pubkey_path = pubkey;
	if (flags & 4)
		opts.partial = true;
	if (flags & 8) {
		opts.checkpoint_files = kept_paths;
		opts.checkpoint_file_count = nkept;
	}
	if (flags & 16)
		opts.expect_seq = arg;
	if (flags & 32)
		opts.min_checkpoint = arg;

	ret = mw_audit_verify_files(paths, npaths, &opts, &res, &err);
	FUZZ_ASSERT(ret == 0 || ret == -1);
	if (ret < 0) {
		/* only unreadable inputs: bad kept-checkpoint files */
		FUZZ_ASSERT(err != NULL);
		FUZZ_ASSERT(opts.checkpoint_file_count > 0);
		return 0;
	}
	if (getenv("MW_FUZZ_VERBOSE") != NULL)
		fprintf(stderr, "files %u kept %u flags %#x: status %d (%s) "
			"records %llu seq %llu..%llu seals %llu cps %llu: %s\n",
			npaths, nkept, flags, (int)res.status,
			mw_audit_fail_reason_name(res.reason),
			(unsigned long long)res.records,
			(unsigned long long)res.first_seq,
			(unsigned long long)res.last_seq,
			(unsigned long long)res.seals,
			(unsigned long long)res.checkpoints, res.message);
	FUZZ_ASSERT(strnlen(res.message, sizeof(res.message)) <
		    sizeof(res.message));
	switch (res.status) {
	case MW_AUDIT_VERIFY_PASS:
	case MW_AUDIT_VERIFY_PASS_TORN:
		FUZZ_ASSERT(res.reason == MW_AUDIT_OK);
		FUZZ_ASSERT(res.records > 0);
		FUZZ_ASSERT(res.last_seq >= res.first_seq);
		FUZZ_ASSERT(res.last_seq - res.first_seq + 1 == res.records);
		FUZZ_ASSERT(res.last_seq >= opts.expect_seq);
		FUZZ_ASSERT(res.unsealed_tail <= res.records);
		FUZZ_ASSERT(res.torn ==
			    (res.status == MW_AUDIT_VERIFY_PASS_TORN));
		if (!opts.partial)
			FUZZ_ASSERT(res.first_seq == 1);
		break;
	case MW_AUDIT_VERIFY_FAIL:
		FUZZ_ASSERT(res.reason != MW_AUDIT_OK);
		FUZZ_ASSERT(res.bad_file < npaths);
		FUZZ_ASSERT(strcmp(mw_audit_fail_reason_name(res.reason),
				   "unknown") != 0);
		break;
	default:
		FUZZ_ASSERT(!"bad status");
	}
	return 0;
}
