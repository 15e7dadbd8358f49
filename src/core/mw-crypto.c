/* The installed crypto provider (mw-crypto.h) and the values derived from
   it, each computed here only: message keys (mw_msg_key(), mw-store.h) and
   device ids (mw_device_id(), mw-device.h). */

#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-store.h"
#include "mw-util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mw_crypto_provider *mw_provider = NULL;

void mw_crypto_set_provider(const struct mw_crypto_provider *provider)
{
	mw_provider = provider;
}

int mw_random_bytes(void *buf, size_t size)
{
	if (size == 0)
		return 0;
	if (mw_provider == NULL || mw_provider->random_bytes(buf, size) < 0) {
		memset(buf, 0, size);
		return -1;
	}
	return 0;
}

int mw_sha256(const void *data, size_t size,
	      unsigned char out[MW_SHA256_SIZE])
{
	if (mw_provider == NULL || mw_provider->sha256(data, size, out) < 0) {
		memset(out, 0, MW_SHA256_SIZE);
		return -1;
	}
	return 0;
}

int mw_hmac_sha256(const void *key, size_t key_size,
		   const void *data, size_t size,
		   unsigned char out[MW_SHA256_SIZE])
{
	if (mw_provider == NULL ||
	    mw_provider->hmac_sha256(key, key_size, data, size, out) < 0) {
		memset(out, 0, MW_SHA256_SIZE);
		return -1;
	}
	return 0;
}

void mw_msg_key(const char *msg_guid, unsigned char out[MW_MSG_KEY_SIZE])
{
	unsigned char md[MW_SHA256_SIZE], md2[MW_SHA256_SIZE];
	const char *slash = strchr(msg_guid, '/');

	if (mw_sha256(msg_guid, strlen(msg_guid), md) < 0 ||
	    (slash != NULL &&
	     mw_sha256(msg_guid, slash - msg_guid, md2) < 0)) {
		/* A zero key would give every message the same records:
		   with no provider installed (a program's bug; every
		   program installs one at start) nothing is safe to do. */
		fprintf(stderr, "mailward: BUG: mw_msg_key() without a "
			"working crypto provider\n");
		abort();
	}
	if (slash == NULL) {
		memcpy(out, md, MW_MSG_KEY_SIZE);
		return;
	}
	/* "GUID/hash": GUID part first (see mw-store.h) */
	memcpy(out, md2, MW_MSG_KEY_GUID_PART);
	memcpy(out + MW_MSG_KEY_GUID_PART, md,
	       MW_MSG_KEY_SIZE - MW_MSG_KEY_GUID_PART);
}

int mw_device_id(const unsigned char key[MW_DEVICE_KEY_SIZE],
		 const char *identity, unsigned char id_r[MW_DEVICE_ID_SIZE],
		 char id_hex_r[MW_DEVICE_ID_HEX_SIZE])
{
	unsigned char md[MW_SHA256_SIZE];

	if (mw_hmac_sha256(key, MW_DEVICE_KEY_SIZE, identity,
			   strlen(identity), md) < 0) {
		if (id_r != NULL)
			memset(id_r, 0, MW_DEVICE_ID_SIZE);
		if (id_hex_r != NULL)
			memset(id_hex_r, 0, MW_DEVICE_ID_HEX_SIZE);
		return -1;
	}
	if (id_r != NULL)
		memcpy(id_r, md, MW_DEVICE_ID_SIZE);
	if (id_hex_r != NULL)
		mw_hex_encode(md, MW_DEVICE_ID_SIZE, id_hex_r);
	mw_cleanse(md, sizeof(md));
	return 0;
}
