/* OpenSSL 3's crypto provider (mw-crypto.h): for the CLI, the audit writer
   and the tests. Mail processes use the storage plugin's
   (src/plugins/mailward/mailward-crypto.c). */

#include "mw-crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static int openssl_random_bytes(void *buf, size_t size)
{
	/* RAND_bytes() takes an int */
	while (size > 0) {
		int n = size > 1024 * 1024 ? 1024 * 1024 : (int)size;

		if (RAND_bytes(buf, n) != 1)
			return -1;
		buf = (unsigned char *)buf + n;
		size -= n;
	}
	return 0;
}

static int openssl_sha256(const void *data, size_t size,
			  unsigned char out[MW_SHA256_SIZE])
{
	unsigned int len = 0;

	if (EVP_Digest(data, size, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != MW_SHA256_SIZE)
		return -1;
	return 0;
}

static int openssl_hmac_sha256(const void *key, size_t key_size,
			       const void *data, size_t size,
			       unsigned char out[MW_SHA256_SIZE])
{
	unsigned int len = 0;

	if (key_size > 0x7fffffff ||
	    HMAC(EVP_sha256(), key, (int)key_size, data, size,
		 out, &len) == NULL || len != MW_SHA256_SIZE)
		return -1;
	return 0;
}

MW_CRYPTO_PROVIDER_DEFINE(mw_crypto_openssl, "openssl", openssl);
