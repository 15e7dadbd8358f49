/* libmailward-core on its own: this program links the core library, LMDB
   and cmocka only: no libmailward-crypto, no OpenSSL (Makefile.am). It
   installs its own crypto provider (a plain SHA-256 from FIPS 180-4 and
   HMAC from RFC 2104, below) and uses the device keys and ids, message
   keys, the store and its batches through the core. Before the provider
   interface the core left mw_random_bytes and mw_msg_key undefined and
   this did not link; a core file that calls OpenSSL, or a store that
   needs libmailward-crypto, fails the link again. */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-store.h"

/* the store's API is backend-neutral: it brings no LMDB header along */
#ifdef MDB_VERSION_MAJOR
#error "mw-store.h exposes LMDB"
#endif

/* ---- a test provider (no library) ---- */

static const uint32_t sha256_k[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b,
	0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
	0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7,
	0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152,
	0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
	0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
	0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
	0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const unsigned char p[64])
{
	uint32_t w[64], a[8], t1, t2;
	unsigned int i;

	for (i = 0; i < 16; i++) {
		w[i] = (uint32_t)p[i * 4] << 24 | (uint32_t)p[i * 4 + 1] << 16 |
			(uint32_t)p[i * 4 + 2] << 8 | p[i * 4 + 3];
	}
	for (; i < 64; i++) {
		w[i] = w[i - 16] + w[i - 7] +
			(ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^
			 (w[i - 15] >> 3)) +
			(ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^
			 (w[i - 2] >> 10));
	}
	memcpy(a, h, sizeof(a));
	for (i = 0; i < 64; i++) {
		t1 = a[7] + (ROR(a[4], 6) ^ ROR(a[4], 11) ^ ROR(a[4], 25)) +
			((a[4] & a[5]) ^ (~a[4] & a[6])) + sha256_k[i] + w[i];
		t2 = (ROR(a[0], 2) ^ ROR(a[0], 13) ^ ROR(a[0], 22)) +
			((a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]));
		memmove(a + 1, a, 7 * sizeof(a[0]));
		a[4] += t1;
		a[0] = t1 + t2;
	}
	for (i = 0; i < 8; i++)
		h[i] += a[i];
}

/* SHA-256 of the concatenation of two buffers (for HMAC). */
static void sha256_2(const void *d1, size_t n1, const void *d2, size_t n2,
		     unsigned char out[MW_SHA256_SIZE])
{
	uint32_t h[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
	};
	unsigned char block[64];
	uint64_t bits = (uint64_t)(n1 + n2) * 8;
	size_t fill = 0, i;
	const unsigned char *p;
	size_t n;
	unsigned int part;

	for (part = 0; part < 2; part++) {
		p = part == 0 ? d1 : d2;
		n = part == 0 ? n1 : n2;
		for (i = 0; i < n; i++) {
			block[fill++] = p[i];
			if (fill == 64) {
				sha256_block(h, block);
				fill = 0;
			}
		}
	}
	block[fill++] = 0x80;
	if (fill > 56) {
		memset(block + fill, 0, 64 - fill);
		sha256_block(h, block);
		fill = 0;
	}
	memset(block + fill, 0, 56 - fill);
	for (i = 0; i < 8; i++)
		block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha256_block(h, block);
	for (i = 0; i < 8; i++) {
		out[i * 4] = (unsigned char)(h[i] >> 24);
		out[i * 4 + 1] = (unsigned char)(h[i] >> 16);
		out[i * 4 + 2] = (unsigned char)(h[i] >> 8);
		out[i * 4 + 3] = (unsigned char)h[i];
	}
}

static int test_sha256(const void *data, size_t size,
		       unsigned char out[MW_SHA256_SIZE])
{
	sha256_2(data, size, "", 0, out);
	return 0;
}

static int test_hmac_sha256(const void *key, size_t key_size,
			    const void *data, size_t size,
			    unsigned char out[MW_SHA256_SIZE])
{
	unsigned char k[64], pad[64], inner[MW_SHA256_SIZE];
	unsigned int i;

	memset(k, 0, sizeof(k));
	if (key_size > sizeof(k))
		test_sha256(key, key_size, k);
	else
		memcpy(k, key, key_size);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_2(pad, 64, data, size, inner);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_2(pad, 64, inner, sizeof(inner), out);
	return 0;
}

static int test_random_bytes(void *buf, size_t size)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t ret;

	if (fd < 0)
		return -1;
	ret = read(fd, buf, size);
	close(fd);
	return ret == (ssize_t)size ? 0 : -1;
}

static const struct mw_crypto_provider test_provider = {
	.name = "test",
	.random_bytes = test_random_bytes,
	.sha256 = test_sha256,
	.hmac_sha256 = test_hmac_sha256,
};

/* ---- tests ---- */

static void test_links_alone(void **state)
{
	(void)state;
	/* neither OpenSSL nor libmailward-crypto is in the process */
	assert_null(dlsym(RTLD_DEFAULT, "EVP_MD_fetch"));
	assert_null(dlsym(RTLD_DEFAULT, "HMAC"));
	assert_null(dlsym(RTLD_DEFAULT, "mw_crypto_openssl"));
}

static void test_provider_vectors(void **state)
{
	unsigned char md[MW_SHA256_SIZE];
	char msg[1000];

	(void)state;
	mw_crypto_set_provider(&test_provider);
	/* FIPS 180-4 examples */
	assert_int_equal(mw_sha256("abc", 3, md), 0);
	assert_memory_equal(md, "\xba\x78\x16\xbf\x8f\x01\xcf\xea\x41\x41"
			    "\x40\xde\x5d\xae\x22\x23\xb0\x03\x61\xa3\x96\x17"
			    "\x7a\x9c\xb4\x10\xff\x61\xf2\x00\x15\xad", 32);
	/* 56 bytes: the length goes to a second block */
	assert_int_equal(mw_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklm"
				   "klmnlmnomnopnopq", 56, md), 0);
	assert_memory_equal(md, "\x24\x8d\x6a\x61\xd2\x06\x38\xb8\xe5\xc0"
			    "\x26\x93\x0c\x3e\x60\x39\xa3\x3c\xe4\x59\x64\xff"
			    "\x21\x67\xf6\xec\xed\xd4\x19\xdb\x06\xc1", 32);
	memset(msg, 'a', sizeof(msg));
	assert_int_equal(mw_sha256(msg, sizeof(msg), md), 0);
	assert_memory_equal(md, "\x41\xed\xec\xe4\x2d\x63\xe8\xd9\xbf\x51"
			    "\x5a\x9b\xa6\x93\x2e\x1c\x20\xcb\xc9\xf5\xa5\xd1"
			    "\x34\x64\x5a\xdb\x5d\xb1\xb9\x73\x7e\xa3", 32);
	/* RFC 4231 test case 2 */
	assert_int_equal(mw_hmac_sha256("Jefe", 4,
					"what do ya want for nothing?", 28,
					md), 0);
	assert_memory_equal(md, "\x5b\xdc\xc1\x46\xbf\x60\x75\x4e\x6a\x04"
			    "\x24\x26\x08\x95\x75\xc7\x5a\x00\x3f\x08\x9d\x27"
			    "\x39\x83\x9d\xec\x58\xb9\x64\xec\x38\x43", 32);
}

static void test_no_provider(void **state)
{
	unsigned char buf[8], md[MW_SHA256_SIZE];
	unsigned char key[MW_DEVICE_KEY_SIZE] = { 0 };
	char hex[MW_DEVICE_ID_HEX_SIZE];

	(void)state;
	mw_crypto_set_provider(NULL);
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(mw_random_bytes(buf, sizeof(buf)), -1);
	assert_int_equal(buf[0], 0);
	assert_int_equal(mw_sha256("abc", 3, md), -1);
	assert_int_equal(mw_device_id(key, "net:pop3:local", NULL, hex), -1);
	assert_int_equal(hex[0], '\0');
	mw_crypto_set_provider(&test_provider);
	assert_int_equal(mw_sha256("abc", 3, md), 0);
	assert_int_equal(md[0], 0xba);
}

static int count_msg_cb(const struct mw_msg_rec *rec, void *ctx)
{
	(void)rec;
	(*(unsigned int *)ctx)++;
	return 0;
}

#define MBOX "0123456789abcdef0123456789abcdef"

/* A device registered, a batch committed and read back, the device
   forgotten: every layer of the store (front, batch, LMDB backend). */
static void store_round_trip(const char *path, const char *id_hex)
{
	struct mw_store_stat st;
	struct mw_device_rec rec;
	struct mw_store *store;
	struct mw_batch *batch;
	struct mw_msg_rec msg;
	const char *error;
	unsigned int count = 0;

	assert_int_equal(mw_store_open(path, &store, &error), 0);
	assert_int_equal(mw_store_device_register(store, id_hex, "pop3 phone",
						  "pop3", 1000, 10, 0, NULL,
						  NULL, &rec, &error), 1);
	assert_string_equal(rec.id_hex, id_hex);
	assert_int_equal(mw_store_device_get(store, id_hex, &rec, &error), 1);
	assert_string_equal(rec.label, "pop3 phone");
	assert_int_equal(mw_store_msg_get(store, rec.dev_no, MBOX, "abc", &msg,
					  &error), 0);

	batch = mw_batch_begin(store);
	assert_non_null(batch);
	mw_batch_msg_update(batch, rec.dev_no, MBOX, "abc", 7,
			    MW_MSG_RETRIEVED, 1100);
	mw_batch_device_touch(batch, id_hex, 1100, 1, 1, 0);
	assert_int_equal(mw_batch_commit(&batch, &error), 0);
	assert_int_equal(mw_store_msg_get(store, rec.dev_no, MBOX, "abc", &msg,
					  &error), 1);
	assert_int_equal(msg.retrieved, 1100);
	assert_int_equal(msg.uid, 7);
	assert_string_equal(msg.mailbox_guid_hex, MBOX);
	assert_int_equal(mw_store_msg_iter(store, -1, NULL, count_msg_cb,
					   &count, &error), 0);
	assert_int_equal(count, 1);
	assert_int_equal(mw_store_get_stat(store, &st, &error), 0);
	assert_int_equal(st.msg_records, 1);
	assert_int_equal(st.devices, 1);

	assert_int_equal(mw_store_device_forget(store, id_hex, &rec, &error),
			 1);
	assert_int_equal(mw_store_get_stat(store, &st, &error), 0);
	assert_int_equal(st.msg_records, 0);
	mw_store_unref(&store);
}

static void test_store_through_core(void **state)
{
	char dir[] = "/tmp/mw-core-link-XXXXXX", path[256];
	unsigned char key[MW_DEVICE_KEY_SIZE], key2[MW_DEVICE_KEY_SIZE];
	unsigned char mkey[MW_MSG_KEY_SIZE];
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	const char *error;

	(void)state;
	mw_crypto_set_provider(&test_provider);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/device.key", dir);
	/* created with the provider's random bytes, then read back */
	assert_int_equal(mw_device_key_load_or_create(path, key, &error), 0);
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), 0);
	assert_memory_equal(key, key2, sizeof(key));
	assert_int_equal(mw_device_id(key, "net:pop3:127.0.0.0/24", NULL,
				      id_hex), 0);
	assert_int_equal(strlen(id_hex), MW_DEVICE_ID_SIZE * 2);
	/* a message key: SHA-256("abc") starts ba7816bf8f01cfea */
	mw_msg_key("abc", mkey);
	assert_memory_equal(mkey, "\xba\x78\x16\xbf\x8f\x01\xcf\xea", 8);

	snprintf(path, sizeof(path), "%s/state", dir);
	store_round_trip(path, id_hex);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_links_alone),
		cmocka_unit_test(test_provider_vectors),
		cmocka_unit_test(test_no_provider),
		cmocka_unit_test(test_store_through_core),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
