/* Fixed audit keys of the fuzz harness fuzz-audit-verify.c and the seed
   generator gen-audit-seeds.c (test material only: deterministic, public,
   never used anywhere else). Header-only. */

#ifndef MW_FUZZ_AUDIT_KEYS_H
#define MW_FUZZ_AUDIT_KEYS_H

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mw-audit-writer.h"

/* epoch 0 MAC key (verify.key); the writer's epoch 1 key is derived */
static const uint8_t fuzz_audit_k0[MW_AUDIT_KEY_LEN] = {
	0x6d, 0x61, 0x69, 0x6c, 0x77, 0x61, 0x72, 0x64,
	0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b, 0x65,
	0x79, 0x2d, 0x30, 0x00, 0x11, 0x22, 0x33, 0x44,
	0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
};
/* Ed25519 private key seed (checkpoint.key / checkpoint.pub) */
static const uint8_t fuzz_audit_ed_seed[32] = {
	0x6d, 0x61, 0x69, 0x6c, 0x77, 0x61, 0x72, 0x64,
	0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x65, 0x64,
	0x32, 0x35, 0x35, 0x31, 0x39, 0x00, 0x01, 0x02,
	0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
};

/* Writes into dir: verify.key (epoch 0), writer.key (epoch 1),
   checkpoint.key (PKCS#8 PEM) and checkpoint.pub. Returns 0 or -1. */
static inline int fuzz_audit_write_keys(const char *dir)
{
	char path[4096];
	uint8_t k1[MW_AUDIT_KEY_LEN];
	const char *err;
	EVP_PKEY *pkey;
	FILE *f;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/verify.key", dir);
	if (mw_audit_key_store(path, 0, fuzz_audit_k0, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	if (mw_audit_key_next(fuzz_audit_k0, 1, k1) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/writer.key", dir);
	if (mw_audit_key_store(path, 1, k1, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
					    fuzz_audit_ed_seed,
					    sizeof(fuzz_audit_ed_seed));
	if (pkey == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/checkpoint.key", dir);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
					      NULL) != 1)
		ret = -1;
	if (f != NULL)
		fclose(f);
	snprintf(path, sizeof(path), "%s/checkpoint.pub", dir);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_PUBKEY(f, pkey) != 1)
		ret = -1;
	if (f != NULL)
		fclose(f);
	EVP_PKEY_free(pkey);
	return ret;
}

#endif
