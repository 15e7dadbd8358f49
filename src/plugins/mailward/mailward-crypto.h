#ifndef MAILWARD_CRYPTO_H
#define MAILWARD_CRYPTO_H

#include "mw-crypto.h"

/* mw-crypto.h's provider with Dovecot's own SHA-256, HMAC and random
   source: installed by the storage and doveadm plugins at init, so that
   mail processes neither load nor initialise OpenSSL. */
extern const struct mw_crypto_provider mailward_crypto_dovecot;

#endif
