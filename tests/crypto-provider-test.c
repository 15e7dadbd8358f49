/* The two crypto providers of mw-crypto.h give equal results: Dovecot's
   (src/plugins/mailward/mailward-crypto.c, what mail processes run) and
   OpenSSL's (src/core/mw-crypto-openssl.c, the CLI, the writer and the
   unit tests). For a table of inputs it computes SHA-256, HMAC-SHA-256,
   device ids (mw_device_id()) and message keys (mw_msg_key()) with each,
   checks known answers (FIPS 180-2, RFC 4231) and prints one line per
   input; exits 0 when all are equal and right, 1 otherwise. Run by
   tests/test_unit.py. */

#include "lib.h"
#include "hex-binary.h"
#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-store.h"
#include "mailward-crypto.h"

#include <stdio.h>

struct result {
	unsigned char sha[MW_SHA256_SIZE], hmac[MW_SHA256_SIZE];
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	unsigned char msg_key[MW_MSG_KEY_SIZE];
	int ret;
};

static const char *const inputs[] = {
	"", "abc", "net:pop3:local", "net:pop3:127.0.0.0/24",
	"net:imap:2001:db8::/64", "explicit:phone",
	"id:imap:Thunderbird/Linux/Mozilla",
	"0123456789abcdef0123456789abcdef",
	"00000000000000000000000000000000/0123456789abcdef",
	"abc/4567", "caf\xc3\xa9 \x01\x7f\xff",
	"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
};

static void compute(const struct mw_crypto_provider *p, const char *in,
		    const unsigned char *key, size_t key_size,
		    struct result *r)
{
	i_zero(r);
	mw_crypto_set_provider(p);
	r->ret = mw_sha256(in, strlen(in), r->sha);
	r->ret |= mw_hmac_sha256(key, key_size, in, strlen(in), r->hmac);
	if (key_size == MW_DEVICE_KEY_SIZE)
		r->ret |= mw_device_id(key, in, NULL, r->id_hex);
	mw_msg_key(in, r->msg_key);
}

static bool hex_is(const unsigned char *data, size_t size, const char *hex)
{
	return strcmp(binary_to_hex(data, size), hex) == 0;
}

int main(void)
{
	unsigned char key[MW_DEVICE_KEY_SIZE], rfc_key[20], rnd[64];
	struct result a, b;
	unsigned int i, k, failed = 0;

	lib_init();
	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 7 + 1);
	memset(rfc_key, 0x0b, sizeof(rfc_key));
	for (k = 0; k < 2; k++)
	for (i = 0; i < N_ELEMENTS(inputs); i++) {
		const unsigned char *kk = k == 0 ? key : rfc_key;
		size_t ks = k == 0 ? sizeof(key) : sizeof(rfc_key);

		compute(&mailward_crypto_dovecot, inputs[i], kk, ks, &a);
		compute(&mw_crypto_openssl, inputs[i], kk, ks, &b);
		if (a.ret != 0 || b.ret != 0 || memcmp(&a, &b, sizeof(a)) != 0) {
			printf("DIFFER key %u input %u\n", k, i);
			failed++;
		} else {
			printf("equal key %u input %u: %s %s\n", k, i,
			       binary_to_hex(a.hmac, sizeof(a.hmac)),
			       a.id_hex);
		}
	}
	/* known answers, with either provider installed last */
	compute(&mailward_crypto_dovecot, "abc", key, sizeof(key), &a);
	if (!hex_is(a.sha, sizeof(a.sha), "ba7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f20015ad")) {
		printf("DIFFER sha256(abc)\n");
		failed++;
	}
	compute(&mw_crypto_openssl, "Hi There", rfc_key, sizeof(rfc_key), &b);
	if (!hex_is(b.hmac, sizeof(b.hmac), "b0344c61d8db38535ca8afceaf0bf12b"
		    "881dc200c9833da726e9376c2e32cff7")) {
		printf("DIFFER RFC 4231 test case 1\n");
		failed++;
	}
	compute(&mailward_crypto_dovecot, "Hi There", rfc_key, sizeof(rfc_key),
		&a);
	if (memcmp(a.hmac, b.hmac, sizeof(a.hmac)) != 0) {
		printf("DIFFER RFC 4231 test case 1 (dovecot)\n");
		failed++;
	}
	/* random bytes: both give some */
	for (k = 0; k < 2; k++) {
		mw_crypto_set_provider(k == 0 ? &mailward_crypto_dovecot :
				       &mw_crypto_openssl);
		memset(rnd, 0, sizeof(rnd));
		if (mw_random_bytes(rnd, sizeof(rnd)) != 0 ||
		    memcmp(rnd, rnd + 32, 32) == 0) {
			printf("DIFFER random bytes of provider %u\n", k);
			failed++;
		}
	}
	printf("%u inputs x 2 keys, %u failed\n",
	       (unsigned int)N_ELEMENTS(inputs), failed);
	lib_deinit();
	return failed == 0 ? 0 : 1;
}
