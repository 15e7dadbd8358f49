/* mailward audit log: key files (the evolving MAC key) and keygen (MAC
   keys and the Ed25519 checkpoint key pair). See mw-audit-writer.h. */

#include "mw-audit-writer.h"
#include "mw-audit-writer-private.h"
#include "mw-audit-private.h"
#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define MW_AUDIT_KEY_FILE_MAX 256

#define fail_static mw_audit_fail_static

int mw_audit_key_load(const char *path, uint32_t *epoch_r,
		      uint8_t key[MW_AUDIT_KEY_LEN], const char **error_r)
{
	char buf[MW_AUDIT_KEY_FILE_MAX + 1], hint[MW_HINT_MAX];
	unsigned long long epoch;
	char *p, *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		return fail_static(error_r, "open(%s) failed: %s%s", path,
				   strerror(err), mw_access_hint(path, err,
				   hint, sizeof(hint)));
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return fail_static(error_r, "read(%s) failed: %s", path,
				   strerror(errno));
	buf[n] = '\0';
	if (strncmp(buf, "mailward-audit-key v1 epoch=", 28) != 0)
		goto bad;
	p = buf + 28;
	if (*p < '0' || *p > '9')
		goto bad;
	errno = 0;
	epoch = strtoull(p, &end, 10);
	if (errno != 0 || epoch > UINT32_MAX || strncmp(end, " key=", 5) != 0)
		goto bad;
	p = end + 5;
	if (strlen(p) != MW_AUDIT_KEY_LEN * 2 + 1 ||
	    p[MW_AUDIT_KEY_LEN * 2] != '\n' ||
	    mw_hex_decode_n(p, key, MW_AUDIT_KEY_LEN) < 0)
		goto bad;
	*epoch_r = (uint32_t)epoch;
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
bad:
	OPENSSL_cleanse(buf, sizeof(buf));
	return fail_static(error_r, "%s is not a mailward-audit key file", path);
}

static int key_format(char *buf, size_t size, uint32_t epoch,
		      const uint8_t key[MW_AUDIT_KEY_LEN])
{
	char hex[MW_AUDIT_KEY_LEN * 2 + 1];
	int n;

	mw_hex_encode(key, MW_AUDIT_KEY_LEN, hex);
	n = snprintf(buf, size, "mailward-audit-key v1 epoch=%u key=%s\n",
		     (unsigned int)epoch, hex);
	OPENSSL_cleanse(hex, sizeof(hex));
	return n;
}

int mw_audit_key_store(const char *path, uint32_t epoch,
		       const uint8_t key[MW_AUDIT_KEY_LEN],
		       const char **error_r)
{
	char tmp[PATH_MAX], buf[MW_AUDIT_KEY_FILE_MAX];
	int fd, n;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return fail_static(error_r, "key path too long");
	n = key_format(buf, sizeof(buf), epoch, key);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return fail_static(error_r, "open(%s) failed: %s", tmp,
				   strerror(errno));
	}
	if (mw_write_full(fd, buf, (size_t)n) < 0 || fsync(fd) < 0) {
		OPENSSL_cleanse(buf, sizeof(buf));
		fail_static(error_r, "write(%s) failed: %s", tmp,
			    strerror(errno));
		close(fd);
		(void)unlink(tmp);
		return -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	if (close(fd) < 0) {
		fail_static(error_r, "close(%s) failed: %s", tmp,
			    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) < 0) {
		fail_static(error_r, "rename(%s, %s) failed: %s", tmp, path,
			    strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	if (mw_fsync_parent_dir(path) < 0)
		return fail_static(error_r, "fsync of the directory of %s "
				   "failed: %s", path, strerror(errno));
	return 0;
}

static int create_file(const char *path, mode_t mode, bool overwrite,
		       const char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC |
		      (overwrite ? O_TRUNC : O_EXCL), mode);

	if (fd < 0)
		return fail_static(error_r, "open(%s) failed: %s", path,
				   strerror(errno));
	if (fchmod(fd, mode) < 0) {
		close(fd);
		return fail_static(error_r, "fchmod(%s) failed: %s", path,
				   strerror(errno));
	}
	return fd;
}

static int write_key_file(const char *path, uint32_t epoch,
			  const uint8_t key[MW_AUDIT_KEY_LEN], bool overwrite,
			  const char **error_r)
{
	char buf[MW_AUDIT_KEY_FILE_MAX];
	int fd, n, ret = 0;

	fd = create_file(path, 0600, overwrite, error_r);
	if (fd < 0)
		return -1;
	n = key_format(buf, sizeof(buf), epoch, key);
	if (mw_write_full(fd, buf, (size_t)n) < 0 || fsync(fd) < 0)
		ret = fail_static(error_r, "write(%s) failed: %s", path,
				  strerror(errno));
	OPENSSL_cleanse(buf, sizeof(buf));
	if (close(fd) < 0 && ret == 0)
		ret = fail_static(error_r, "close(%s) failed: %s", path,
				  strerror(errno));
	return ret;
}

static int write_pem_file(const char *path, EVP_PKEY *pkey, bool private_,
			  bool overwrite, const char **error_r)
{
	FILE *f;
	int fd, ok;

	fd = create_file(path, private_ ? 0600 : 0644, overwrite, error_r);
	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return fail_static(error_r, "fdopen(%s) failed", path);
	}
	ok = private_ ?
		PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) :
		PEM_write_PUBKEY(f, pkey);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (ok != 1)
		return fail_static(error_r, "writing %s failed", path);
	return 0;
}

int mw_audit_keygen(const char *dir, bool overwrite, const char **error_r)
{
	char path[PATH_MAX];
	uint8_t k0[MW_AUDIT_KEY_LEN], k1[MW_AUDIT_KEY_LEN];
	EVP_PKEY *pkey = NULL;
	int ret = -1;

	if (RAND_priv_bytes(k0, sizeof(k0)) != 1)
		return fail_static(error_r, "RAND_priv_bytes() failed");
	if (mw_audit_key_next(k0, 1, k1) < 0) {
		fail_static(error_r, "HKDF failed");
		goto out;
	}
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL) {
		fail_static(error_r, "Ed25519 key generation failed");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/verify.key", dir);
	if (write_key_file(path, 0, k0, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/writer.key", dir);
	if (write_key_file(path, 1, k1, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/checkpoint.key", dir);
	if (write_pem_file(path, pkey, true, overwrite, error_r) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/checkpoint.pub", dir);
	if (write_pem_file(path, pkey, false, overwrite, error_r) < 0)
		goto out;
	if (mw_fsync_parent_dir(path) < 0) {
		fail_static(error_r, "fsync(%s) failed: %s", dir,
			    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(k1, sizeof(k1));
	EVP_PKEY_free(pkey);
	return ret;
}

EVP_PKEY *mw_audit_pubkey_read(FILE *f)
{
	EVP_PKEY *pkey = PEM_read_PUBKEY(f, NULL, NULL, NULL);

	if (pkey != NULL && EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}
