#ifndef MW_CRYPTO_H
#define MW_CRYPTO_H

/* The few cryptographic primitives the crypto-free part of the core needs,
   with two implementations: mw-crypto-openssl.c (OpenSSL 3; the CLI, the
   audit writer and the unit tests) and the storage plugin's
   mailward-crypto.c (Dovecot's lib), so that mail processes neither load
   nor initialise OpenSSL on every login. Both give identical results:
   SHA-256 and HMAC-SHA-256 are standard, and random bytes are random.
   Also implemented there: mw_msg_key() (mw-store.h). */

#include <stddef.h>

/* Fills buf with size cryptographically secure random bytes. Returns 0,
   or -1 if no randomness is available (buf is then zeroed). */
int mw_random_bytes(void *buf, size_t size);

#endif
