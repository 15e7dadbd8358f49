/* Fuzzes mw_network_prefix() (mw-device.c): address text as clients'
   remote addresses may look (brackets, zones, v4-mapped), prefix lengths
   in and out of range, and output buffers of every size.

   Input: byte 0 = IPv4 bits (0..40), byte 1 = IPv6 bits (0..140),
   byte 2 = output buffer size (0 = MW_PREFIX_BUF_SIZE), then the address
   text (NUL-terminated copy). */

#include "fuzz-common.h"
#include "mw-device.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* checks "<addr>/<bits>" with the host bits cleared */
static void check_prefix(const char *out, unsigned int v4, unsigned int v6)
{
	const char *slash = strrchr(out, '/');
	char addrtext[INET6_ADDRSTRLEN + 1];
	unsigned char addr[16];
	unsigned int bits, i, nbytes;
	char *end;
	int family;

	FUZZ_ASSERT(slash != NULL);
	FUZZ_ASSERT((size_t)(slash - out) < sizeof(addrtext));
	memcpy(addrtext, out, (size_t)(slash - out));
	addrtext[slash - out] = '\0';
	bits = (unsigned int)strtoul(slash + 1, &end, 10);
	FUZZ_ASSERT(*end == '\0');
	if (inet_pton(AF_INET, addrtext, addr) == 1) {
		family = AF_INET;
		nbytes = 4;
		FUZZ_ASSERT(bits == v4);
	} else {
		FUZZ_ASSERT(inet_pton(AF_INET6, addrtext, addr) == 1);
		family = AF_INET6;
		nbytes = 16;
		FUZZ_ASSERT(bits == v6);
	}
	(void)family;
	for (i = 0; i < nbytes * 8; i++) {
		if (i >= bits)
			FUZZ_ASSERT((addr[i / 8] & (0x80 >> (i % 8))) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int v4 = fuzz_byte(&data, &size) % 41;
	unsigned int v6 = fuzz_byte(&data, &size) % 141;
	size_t bufsize = fuzz_byte(&data, &size);
	char *ip = fuzz_strndup(data, size);
	char *buf, again[MW_PREFIX_BUF_SIZE], *slash;
	int ret;

	if (bufsize == 0)
		bufsize = MW_PREFIX_BUF_SIZE;
	buf = malloc(bufsize);
	if (buf == NULL)
		abort();
	ret = mw_network_prefix(ip, v4, v6, buf, bufsize);
	FUZZ_ASSERT(ret == 0 || ret == -1);
	if (v4 > 32 || v6 > 128)
		FUZZ_ASSERT(ret == -1);
	if (ret == 0) {
		FUZZ_ASSERT(strnlen(buf, bufsize) < bufsize);
		check_prefix(buf, v4, v6);
		/* the network of the network is itself */
		slash = strrchr(buf, '/');
		*slash = '\0';
		FUZZ_ASSERT(mw_network_prefix(buf, v4, v6, again,
					      sizeof(again)) == 0);
		*slash = '/';
		FUZZ_ASSERT(strcmp(again, buf) == 0);
	}
	/* a big enough buffer always works when a small one did */
	ret = mw_network_prefix(ip, v4, v6, again, sizeof(again));
	FUZZ_ASSERT(ret == 0 || ret == -1);
	free(buf);
	free(ip);
	return 0;
}
