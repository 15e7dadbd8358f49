/* Fuzzes the IMAP ID path of a session: mw_imap_id_split() (mw-imapid.c)
   on the ID command's arguments, mw_id_params_parse() on its result and
   on raw pairs, and mw_device_describe() + mw_device_id() (mw-device.c)
   on the parsed parameters with fuzzed protocol, remote address, explicit
   device and buffer sizes.

   Input: 7 header bytes (flags, split buffer size, max strings, IPv4 and
   IPv6 prefix bits, identity and label buffer sizes), then NUL-separated
   fields: ID arguments, remote IP, protocol, explicit device, and any
   further fields as raw (name, value) pairs; a field "\x01" is NULL. */

#include "fuzz-common.h"
#include "mw-imapid.h"
#include "mw-device.h"
#include "mw-crypto.h"

#define MAX_FIELDS 40

static bool within(const char *p, const char *buf, size_t size)
{
	return p >= buf && p < buf + size;
}

static void check_id_value(const char *v)
{
	size_t len = strnlen(v, MW_ID_VALUE_MAX + 1);

	FUZZ_ASSERT(len <= MW_ID_VALUE_MAX);
	FUZZ_ASSERT(fuzz_no_controls(v, len));
	/* '"' and '\\' are always escaped */
	FUZZ_ASSERT(memchr(v, '"', len) == NULL);
}

static void check_params(const struct mw_id_params *id)
{
	check_id_value(id->name);
	check_id_value(id->version);
	check_id_value(id->os);
	check_id_value(id->os_version);
	check_id_value(id->vendor);
}

static void check_describe(const struct mw_device_source *src,
			   size_t isize, size_t lsize)
{
	static const unsigned char key[MW_DEVICE_KEY_SIZE] = { 1, 2, 3 };
	char *identity = malloc(isize), *label = malloc(lsize);
	char *identity2 = malloc(isize), *label2 = malloc(lsize);
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	unsigned char id[MW_DEVICE_ID_SIZE];
	size_t ilen, llen;

	if (identity == NULL || label == NULL || identity2 == NULL ||
	    label2 == NULL)
		abort();
	mw_device_describe(src, identity, isize, label, lsize);
	ilen = strnlen(identity, isize);
	llen = strnlen(label, lsize);
	FUZZ_ASSERT(ilen < isize);
	FUZZ_ASSERT(llen < lsize);
	FUZZ_ASSERT(llen <= MW_LABEL_MAX);
	FUZZ_ASSERT(fuzz_no_controls(identity, ilen));
	FUZZ_ASSERT(fuzz_no_controls(label, llen));
	/* deterministic */
	mw_device_describe(src, identity2, isize, label2, lsize);
	FUZZ_ASSERT(strcmp(identity, identity2) == 0);
	FUZZ_ASSERT(strcmp(label, label2) == 0);
	if (isize >= 6 && src->explicit_device != NULL &&
	    src->explicit_device[0] != '\0')
		FUZZ_ASSERT(strncmp(identity, "explicit:",
				    isize - 1 < 9 ? isize - 1 : 9) == 0);
	FUZZ_ASSERT(mw_device_id(key, identity, id, id_hex) == 0);
	FUZZ_ASSERT(strlen(id_hex) == MW_DEVICE_ID_SIZE * 2);
	free(identity);
	free(label);
	free(identity2);
	free(label2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mw_crypto_set_provider(&mw_crypto_openssl);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t flags, small_buf, max_sel, v4, v6, isel, lsel;
	char *fields[MAX_FIELDS];
	unsigned int nfields = 0, i, count = 12345, max_strings;
	const uint8_t *p, *end, *z;
	const char **strings;
	char *buf;
	size_t bufsize;
	struct mw_id_params id, id2;
	struct mw_device_source src;
	int ret;

	flags = fuzz_byte(&data, &size);
	small_buf = fuzz_byte(&data, &size);
	max_sel = fuzz_byte(&data, &size);
	v4 = fuzz_byte(&data, &size);
	v6 = fuzz_byte(&data, &size);
	isel = fuzz_byte(&data, &size);
	lsel = fuzz_byte(&data, &size);

	p = data;
	end = data + size;
	while (nfields < MAX_FIELDS && p != NULL) {
		z = memchr(p, '\0', (size_t)(end - p));
		if (z == NULL)
			z = end;
		if (z - p == 1 && p[0] == 0x01)
			fields[nfields++] = NULL;
		else
			fields[nfields++] = fuzz_strndup(p, (size_t)(z - p));
		/* NULL after the last field */
		p = z != end ? z + 1 : NULL;
	}
	while (nfields < 4)
		fields[nfields++] = NULL;

	/* the plugin's buffers (4096 bytes, 60 strings) or small ones */
	if ((flags & 1) == 0) {
		bufsize = 4096;
		max_strings = 60;
	} else {
		bufsize = small_buf;
		max_strings = max_sel % 70;
	}
	buf = malloc(bufsize == 0 ? 1 : bufsize);
	strings = malloc(sizeof(*strings) * (max_strings == 0 ? 1 :
					     max_strings));
	if (buf == NULL || strings == NULL)
		abort();

	memset(&id, 0, sizeof(id));
	if (fields[0] != NULL) {
		ret = mw_imap_id_split(fields[0], buf, bufsize, strings,
				       max_strings, &count);
		FUZZ_ASSERT(ret == 0 || ret == -1);
		if (ret == 0) {
			FUZZ_ASSERT(count <= max_strings);
			for (i = 0; i < count; i++) {
				size_t room;

				if (strings[i] == NULL)
					continue;
				FUZZ_ASSERT(within(strings[i], buf, bufsize));
				room = bufsize - (size_t)(strings[i] - buf);
				FUZZ_ASSERT(strnlen(strings[i], room) < room);
				FUZZ_ASSERT(strlen(strings[i]) <
					    MW_IMAPID_TOKEN_MAX);
			}
			mw_id_params_parse(strings, count / 2, &id);
			check_params(&id);
		} else {
			FUZZ_ASSERT(count == 0);
		}
	}

	/* raw pairs (values of any length, as Dovecot may hand them) */
	if (nfields > 4) {
		unsigned int npairs = (nfields - 4) / 2;

		mw_id_params_parse((const char *const *)fields + 4, npairs,
				   &id2);
		check_params(&id2);
		if ((flags & 2) != 0)
			id = id2;
	}
	mw_id_params_parse(NULL, 0, &id2);
	FUZZ_ASSERT(id2.name[0] == '\0');

	memset(&src, 0, sizeof(src));
	src.remote_ip = fields[1];
	src.protocol = fields[2];
	src.explicit_device = (flags & 4) != 0 ? fields[3] : NULL;
	src.id = (flags & 8) != 0 ? NULL : &id;
	src.v4_prefix_bits = v4;
	src.v6_prefix_bits = v6;
	check_describe(&src, isel == 0 ? MW_IDENTITY_BUF_SIZE : isel,
		       lsel == 0 ? MW_LABEL_BUF_SIZE : lsel);

	free(buf);
	free(strings);
	for (i = 0; i < nfields; i++)
		free(fields[i]);
	return 0;
}
