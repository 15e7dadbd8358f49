#ifndef MW_CRYPTO_H
#define MW_CRYPTO_H

/* The cryptographic primitives the core needs, from a provider the
   program installs at start: the storage plugin's (Dovecot's lib,
   src/plugins/mailward/mailward-crypto.c) in mail processes, which neither
   load nor initialise OpenSSL on every login, and mw_crypto_openssl
   (mw-crypto-openssl.c, in libmailward-crypto) in the CLI, the audit writer
   and the tests. libmailward-core itself references no provider, so it
   links on its own. Both providers give identical results (SHA-256 and
   HMAC-SHA-256 are standard; tests/crypto-provider-test.c compares them). */

#include <stddef.h>

#define MW_SHA256_SIZE 32

struct mw_crypto_provider {
	const char *name;
	/* Fills buf with size cryptographically secure random bytes.
	   Returns 0, or -1 if no randomness is available. */
	int (*random_bytes)(void *buf, size_t size);
	/* SHA-256 of data. Returns 0, or -1 on failure. */
	int (*sha256)(const void *data, size_t size,
		      unsigned char out[MW_SHA256_SIZE]);
	/* HMAC-SHA-256 of data under key. Returns 0, or -1 on failure. */
	int (*hmac_sha256)(const void *key, size_t key_size,
			   const void *data, size_t size,
			   unsigned char out[MW_SHA256_SIZE]);
};

/* Defines the provider var named label from the functions
   <prefix>_random_bytes, <prefix>_sha256 and <prefix>_hmac_sha256. */
#define MW_CRYPTO_PROVIDER_DEFINE(var, label, prefix) \
	const struct mw_crypto_provider var = { \
		.name = label, \
		.random_bytes = prefix##_random_bytes, \
		.sha256 = prefix##_sha256, \
		.hmac_sha256 = prefix##_hmac_sha256, \
	}

/* Installs the process-wide provider (static storage; NULL uninstalls).
   Install it before any other mw_* call: the core has no default. */
void mw_crypto_set_provider(const struct mw_crypto_provider *provider);

/* OpenSSL 3's provider: defined in libmailward-crypto only (the CLI, the
   writer, the tests); mail processes must not reference it. */
extern const struct mw_crypto_provider mw_crypto_openssl;

/* The installed provider's primitives. Each returns 0, or -1 when no
   provider is installed or it fails (buf/out are then zeroed). */
int mw_random_bytes(void *buf, size_t size);
int mw_sha256(const void *data, size_t size,
	      unsigned char out[MW_SHA256_SIZE]);
int mw_hmac_sha256(const void *key, size_t key_size,
		   const void *data, size_t size,
		   unsigned char out[MW_SHA256_SIZE]);

#endif
