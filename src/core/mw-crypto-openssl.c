/* OpenSSL 3 implementations of mw-crypto.h, mw_msg_key() and
   mw_device_id(): for the CLI, the audit writer and the unit tests.
   The Dovecot plugin has its own (src/plugins/mailward/mailward-crypto.c). */

#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-store.h"
#include "mw-util.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

int mw_random_bytes(void *buf, size_t size)
{
	if (size > 0 && RAND_bytes(buf, (int)size) != 1) {
		memset(buf, 0, size);
		return -1;
	}
	return 0;
}

void mw_msg_key(const char *msg_guid, unsigned char out[MW_MSG_KEY_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE], md2[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0, md2_len = 0;
	const char *slash = strchr(msg_guid, '/');

	if (EVP_Digest(msg_guid, strlen(msg_guid), md, &md_len,
		       EVP_sha256(), NULL) != 1 || md_len < MW_MSG_KEY_SIZE ||
	    (slash != NULL &&
	     (EVP_Digest(msg_guid, slash - msg_guid, md2, &md2_len,
			 EVP_sha256(), NULL) != 1 ||
	      md2_len < MW_MSG_KEY_GUID_PART))) {
		/* cannot happen with a working libcrypto; never crash */
		memset(out, 0, MW_MSG_KEY_SIZE);
		return;
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
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (HMAC(EVP_sha256(), key, MW_DEVICE_KEY_SIZE,
		 (const unsigned char *)identity, strlen(identity),
		 md, &md_len) == NULL || md_len < MW_DEVICE_ID_SIZE) {
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

