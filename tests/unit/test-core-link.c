/* libmailward-core on its own: this program links the core library and
   OpenSSL's crypto provider (mw-crypto-openssl.c) only, and uses the
   store, device keys and ids and message keys through them. Before the
   provider interface the core left mw_random_bytes and mw_msg_key
   undefined and this did not link. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mw-crypto.h"
#include "mw-device.h"
#include "mw-store.h"

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
	mw_crypto_set_provider(&mw_crypto_openssl);
	assert_int_equal(mw_sha256("abc", 3, md), 0);
	assert_int_equal(md[0], 0xba);
}

static void test_store_through_core(void **state)
{
	char dir[] = "/tmp/mw-core-link-XXXXXX", path[256];
	unsigned char key[MW_DEVICE_KEY_SIZE], key2[MW_DEVICE_KEY_SIZE];
	unsigned char mkey[MW_MSG_KEY_SIZE];
	char id_hex[MW_DEVICE_ID_HEX_SIZE];
	struct mw_device_rec rec;
	struct mw_store *store;
	struct mw_msg_rec msg;
	const char *error;

	(void)state;
	mw_crypto_set_provider(&mw_crypto_openssl);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/device.key", dir);
	/* created with the provider's random bytes, then read back */
	assert_int_equal(mw_device_key_load_or_create(path, key, &error), 0);
	assert_int_equal(mw_device_key_load_or_create(path, key2, &error), 0);
	assert_memory_equal(key, key2, sizeof(key));
	assert_int_equal(mw_device_id(key, "net:pop3:127.0.0.0/24", NULL,
				      id_hex), 0);
	assert_int_equal(strlen(id_hex), MW_DEVICE_ID_SIZE * 2);

	snprintf(path, sizeof(path), "%s/state", dir);
	assert_int_equal(mw_store_open(path, &store, &error), 0);
	assert_int_equal(mw_store_device_register(store, id_hex, "pop3 phone",
						  "pop3", 1000, 10, 0, NULL,
						  NULL, &rec, &error), 1);
	assert_string_equal(rec.id_hex, id_hex);
	assert_int_equal(mw_store_device_get(store, id_hex, &rec, &error), 1);
	assert_string_equal(rec.label, "pop3 phone");
	/* a message key: SHA-256("abc") starts ba7816bf8f01cfea */
	mw_msg_key("abc", mkey);
	assert_memory_equal(mkey, "\xba\x78\x16\xbf\x8f\x01\xcf\xea", 8);
	assert_int_equal(mw_store_msg_get_key(store, rec.dev_no,
					      "0123456789abcdef0123456789abcdef",
					      mkey, &msg, &error), 0);
	mw_store_unref(&store);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_provider),
		cmocka_unit_test(test_store_through_core),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
