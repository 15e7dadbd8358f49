/* mailward audit log: the crypto primitives of the chain (SHA-256 line
   hashes, line MACs, the HKDF key evolution) and the checkpoint signing
   message, as docs/audit-log.md §4-6 specify them. OpenSSL 3. */

#include "mw-audit-writer.h"
#include "mw-audit-writer-private.h"
#include "mw-merkle.h"
#include "mw-util.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

int mw_audit_sha256_hex(const void *data, size_t len, char out[65])
{
	mw_merkle_hash md;

	if (mw_sha256_prefixed(-1, data, len, md) < 0)
		return -1;
	mw_hex_encode(md, sizeof(md), out);
	return 0;
}

/* One HMAC-SHA-256 context per process, for the key it was last set up
   with: setting one up (the algorithm fetched from the provider, the
   key's inner and outer blocks) cost more than MACing a record did
   (issue 14); for the same key it is only reset. The writer and the
   verifier are single-threaded. */
static EVP_MAC_CTX *hmac_ctx;
static uint8_t hmac_ctx_key[MW_AUDIT_KEY_LEN];

void mw_audit_hmac_free(void)
{
	EVP_MAC_CTX_free(hmac_ctx);
	hmac_ctx = NULL;
	OPENSSL_cleanse(hmac_ctx_key, sizeof(hmac_ctx_key));
}

static int audit_hmac_init(const uint8_t key[MW_AUDIT_KEY_LEN])
{
	OSSL_PARAM params[2];
	EVP_MAC *mac;

	if (hmac_ctx != NULL &&
	    CRYPTO_memcmp(key, hmac_ctx_key, MW_AUDIT_KEY_LEN) == 0)
		return EVP_MAC_init(hmac_ctx, NULL, 0, NULL) == 1 ? 0 : -1;
	if (hmac_ctx == NULL) {
		if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
			return -1;
		hmac_ctx = EVP_MAC_CTX_new(mac);
		EVP_MAC_free(mac);
		if (hmac_ctx == NULL)
			return -1;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(hmac_ctx, key, MW_AUDIT_KEY_LEN, params) != 1)
		return -1;
	memcpy(hmac_ctx_key, key, MW_AUDIT_KEY_LEN);
	return 0;
}

int mw_audit_hmac_hex(const uint8_t key[MW_AUDIT_KEY_LEN], const void *data,
		      size_t len, char out[65])
{
	unsigned char md[32];
	size_t mdlen = 0;

	if (audit_hmac_init(key) < 0 ||
	    EVP_MAC_update(hmac_ctx, data, len) != 1 ||
	    EVP_MAC_final(hmac_ctx, md, &mdlen, sizeof(md)) != 1 ||
	    mdlen != 32) {
		/* its state is unknown: set up anew next time */
		mw_audit_hmac_free();
		return -1;
	}
	mw_hex_encode(md, 32, out);
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int mw_audit_line_mac_hex(const uint8_t key[MW_AUDIT_KEY_LEN],
			  const char *line, size_t len, char out[65])
{
	if (len <= MW_AUDIT_MAC_SUFFIX_LEN)
		return -1;
	return mw_audit_hmac_hex(key, line, len - MW_AUDIT_MAC_SUFFIX_LEN, out);
}

int mw_audit_key_next(const uint8_t key[MW_AUDIT_KEY_LEN],
		      uint32_t next_epoch, uint8_t next[MW_AUDIT_KEY_LEN])
{
	static const char label[] = "mailward epoch";
	unsigned char info[sizeof(label) - 1 + 4];
	unsigned char ikm[MW_AUDIT_KEY_LEN];
	OSSL_PARAM params[4];
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	int ret = -1;

	memcpy(info, label, sizeof(label) - 1);
	info[sizeof(label) - 1] = (unsigned char)(next_epoch >> 24);
	info[sizeof(label)] = (unsigned char)(next_epoch >> 16);
	info[sizeof(label) + 1] = (unsigned char)(next_epoch >> 8);
	info[sizeof(label) + 2] = (unsigned char)next_epoch;
	memcpy(ikm, key, sizeof(ikm));

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL)
		return -1;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						      ikm, sizeof(ikm));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						      info, sizeof(info));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, next, MW_AUDIT_KEY_LEN, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(ctx);
	OPENSSL_cleanse(ikm, sizeof(ikm));
	return ret;
}

void mw_audit_checkpoint_message(struct mw_json_buf *out, const char *host,
				 size_t host_len, uint64_t seq,
				 const char *prev_hex, const char *time,
				 const char *root_hex)
{
	mw_json_buf_append_str(out, root_hex == NULL ?
			       "mailward-checkpoint v1\nhost=" :
			       "mailward-checkpoint v2\nhost=");
	mw_json_buf_append(out, host, host_len);
	mw_json_buf_append_str(out, "\nseq=");
	mw_json_buf_append_u64(out, seq);
	mw_json_buf_append_str(out, "\nchain=");
	mw_json_buf_append_str(out, prev_hex);
	mw_json_buf_append_str(out, "\ntime=");
	mw_json_buf_append_str(out, time);
	mw_json_buf_append_str(out, "\n");
	if (root_hex != NULL) {
		mw_json_buf_append_str(out, "tree_size=");
		mw_json_buf_append_u64(out, seq - 1);
		mw_json_buf_append_str(out, "\nroot=");
		mw_json_buf_append_str(out, root_hex);
		mw_json_buf_append_str(out, "\n");
	}
}

bool mw_audit_checkpoint_verify(const struct mw_json_obj *cp, EVP_PKEY *pub,
				struct mw_json_buf *scratch)
{
	const struct mw_json_member *host = mw_json_obj_get(cp, "host");
	const struct mw_json_member *root = mw_json_obj_get(cp, "root");
	unsigned char sig[64];
	EVP_MD_CTX *ctx;
	bool ok;

	if (mw_hex_decode(mw_json_obj_get(cp, "sig")->str, sig,
			  sizeof(sig)) < 0)
		return false;
	mw_json_buf_reset(scratch);
	mw_audit_checkpoint_message(scratch, host->str, host->str_len,
				    mw_json_obj_get(cp, "seq")->num,
				    mw_json_obj_get(cp, "prev")->str,
				    mw_json_obj_get(cp, "time")->str,
				    root == NULL ? NULL : root->str);
	if (scratch->failed)
		return false;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return false;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
		EVP_DigestVerify(ctx, sig, sizeof(sig),
				 (const unsigned char *)scratch->data,
				 scratch->len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}
