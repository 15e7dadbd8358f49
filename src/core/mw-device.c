/* mailward core: device identity (see mw-device.h). */

#include "mw-device.h"
#include "mw-crypto.h"
#include "mw-util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>


#define KEY_HEX_LEN (MW_DEVICE_KEY_SIZE * 2)

static char device_error[4096 + 256];

static void MW_ATTR_FORMAT(1, 2) set_error(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(device_error, sizeof(device_error), fmt, args);
	va_end(args);
}

static void mask_bits(unsigned char *addr, size_t size, unsigned int bits)
{
	size_t i;

	for (i = 0; i < size; i++) {
		if (bits >= 8) {
			bits -= 8;
		} else {
			addr[i] &= (unsigned char)(0xff00 >> bits);
			bits = 0;
		}
	}
}

int mw_network_prefix(const char *ip, unsigned int v4_bits,
		      unsigned int v6_bits, char *buf, size_t bufsize)
{
	char tmp[INET6_ADDRSTRLEN + 2], text[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	const char *start, *end;
	unsigned int bits;
	size_t len;
	int family, ret;

	if (ip == NULL || buf == NULL || bufsize == 0 ||
	    v4_bits > 32 || v6_bits > 128)
		return -1;
	start = ip;
	if (*start == '[') {
		start++;
		end = strchr(start, ']');
		if (end == NULL || end[1] != '\0')
			return -1;
	} else {
		end = start + strnlen(start, sizeof(tmp));
	}
	/* drop an IPv6 zone ("fe80::1%eth0"): the network is what counts */
	len = (size_t)(end - start);
	if (memchr(start, '%', len) != NULL)
		len = (size_t)((const char *)memchr(start, '%', len) - start);
	if (len == 0 || len >= sizeof(tmp))
		return -1;
	memcpy(tmp, start, len);
	tmp[len] = '\0';

	if (inet_pton(AF_INET, tmp, addr) == 1) {
		family = AF_INET;
		bits = v4_bits;
	} else if (inet_pton(AF_INET6, tmp, addr) == 1) {
		static const unsigned char v4mapped[12] =
			{ 0,0,0,0,0,0,0,0,0,0,0xff,0xff };
		if (memcmp(addr, v4mapped, sizeof(v4mapped)) == 0) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
			bits = v4_bits;
		} else {
			family = AF_INET6;
			bits = v6_bits;
		}
	} else {
		return -1;
	}
	mask_bits(addr, family == AF_INET ? 4 : 16, bits);
	if (inet_ntop(family, addr, text, sizeof(text)) == NULL)
		return -1;
	ret = snprintf(buf, bufsize, "%s/%u", text, bits);
	if (ret < 0 || (size_t)ret >= bufsize) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

void mw_id_params_parse(const char *const *pairs, unsigned int count_pairs,
			struct mw_id_params *out)
{
	static const struct {
		const char *name;
		size_t offset;
	} fields[] = {
		{ "name", offsetof(struct mw_id_params, name) },
		{ "version", offsetof(struct mw_id_params, version) },
		{ "os", offsetof(struct mw_id_params, os) },
		{ "os-version", offsetof(struct mw_id_params, os_version) },
		{ "vendor", offsetof(struct mw_id_params, vendor) },
	};
	bool seen[sizeof(fields) / sizeof(fields[0])];
	unsigned int i, j;
	char *value;

	memset(out, 0, sizeof(*out));
	memset(seen, 0, sizeof(seen));
	if (pairs == NULL)
		return;
	if (count_pairs > MW_ID_PARAMS_MAX)
		count_pairs = MW_ID_PARAMS_MAX;
	for (i = 0; i < count_pairs; i++) {
		const char *name = pairs[i * 2], *val = pairs[i * 2 + 1];

		if (name == NULL)
			continue;
		for (j = 0; j < sizeof(fields) / sizeof(fields[0]); j++) {
			/* names longer than the longest field never match;
			   mw_ascii_strcaseeq stops at the first mismatch */
			if (seen[j] || !mw_ascii_strcaseeq(name, fields[j].name))
				continue;
			seen[j] = true;
			value = (char *)out + fields[j].offset;
			if (val != NULL) {
				(void)mw_escape(val, NULL, value,
						MW_ID_VALUE_MAX + 1, NULL);
			}
			break;
		}
	}
}

static const char *src_protocol(const struct mw_device_source *src)
{
	return src->protocol != NULL && src->protocol[0] != '\0' ?
		src->protocol : "unknown";
}

void mw_device_describe(const struct mw_device_source *src,
			char *identity, size_t isize,
			char *label, size_t lsize)
{
	char prefix[MW_PREFIX_BUF_SIZE];
	const struct mw_id_params *id = src->id;
	const char *proto = src_protocol(src);
	unsigned int v4 = src->v4_prefix_bits > 32 ? 32 : src->v4_prefix_bits;
	unsigned int v6 = src->v6_prefix_bits > 128 ? 128 :
		src->v6_prefix_bits;
	struct mw_buf ib, lb;
	bool have_net;

	if (lsize > MW_LABEL_MAX + 1)
		lsize = MW_LABEL_MAX + 1;
	mw_buf_init(&ib, identity, isize);
	mw_buf_init(&lb, label, lsize);

	have_net = src->remote_ip != NULL &&
		mw_network_prefix(src->remote_ip, v4, v6, prefix,
				  sizeof(prefix)) == 0;

	if (src->explicit_device != NULL && src->explicit_device[0] != '\0') {
		mw_buf_append_literal(&ib, "explicit:");
		mw_buf_append_escaped(&ib, src->explicit_device, NULL);
		mw_buf_append_escaped(&lb, src->explicit_device, NULL);
	} else if (id != NULL && id->name[0] != '\0') {
		/* The stored values are already escaped ('\\' included), so
		   escaping them again only adds '/' and ':' escapes and keeps
		   the identity injective. The version is left out on purpose:
		   an upgraded app is still the same device. */
		mw_buf_append_literal(&ib, "id:");
		mw_buf_append_escaped(&ib, proto, "/:");
		mw_buf_append_literal(&ib, ":");
		mw_buf_append_escaped(&ib, id->name, "/:");
		mw_buf_append_literal(&ib, "/");
		mw_buf_append_escaped(&ib, id->os, "/:");
		mw_buf_append_literal(&ib, "/");
		mw_buf_append_escaped(&ib, id->vendor, "/:");

		mw_buf_append_escaped(&lb, proto, NULL);
		mw_buf_append_literal(&lb, " \"");
		/* id values are already escaped: copy them as they are */
		mw_buf_append_literal(&lb, id->name);
		if (id->version[0] != '\0') {
			mw_buf_append_literal(&lb, " ");
			mw_buf_append_literal(&lb, id->version);
		}
		mw_buf_append_literal(&lb, "\"");
		if (id->os[0] != '\0') {
			mw_buf_append_literal(&lb, " ");
			mw_buf_append_literal(&lb, id->os);
		}
		if (have_net) {
			mw_buf_append_literal(&lb, " from ");
			mw_buf_append_literal(&lb, prefix);
		}
	} else if (have_net) {
		mw_buf_append_literal(&ib, "net:");
		mw_buf_append_escaped(&ib, proto, "/:");
		mw_buf_append_literal(&ib, ":");
		mw_buf_append_literal(&ib, prefix);

		mw_buf_append_escaped(&lb, proto, NULL);
		mw_buf_append_literal(&lb, " from ");
		mw_buf_append_literal(&lb, prefix);
	} else {
		mw_buf_append_literal(&ib, "net:");
		mw_buf_append_escaped(&ib, proto, "/:");
		mw_buf_append_literal(&ib, ":local");

		mw_buf_append_escaped(&lb, proto, NULL);
		mw_buf_append_literal(&lb, " (no remote address)");
	}
}

int mw_device_id_prefix_norm(const char *in,
			     char out[MW_DEVICE_ID_HEX_SIZE])
{
	size_t i;

	if (in == NULL)
		return -1;
	for (i = 0; in[i] != '\0'; i++) {
		char c = in[i];

		if (i >= MW_DEVICE_ID_HEX_SIZE - 1)
			return -1;
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		out[i] = c;
	}
	if (i < 6)
		return -1;
	out[i] = '\0';
	return (int)i;
}

void mw_device_key_cleanse(void *key, size_t size)
{
	mw_cleanse(key, size);
}

static int key_parse(const char *text, size_t len,
		     unsigned char key_r[MW_DEVICE_KEY_SIZE])
{
	char hex[KEY_HEX_LEN + 1];
	int ret;

	if (len == KEY_HEX_LEN + 1 && text[KEY_HEX_LEN] == '\n')
		len--;
	if (len != KEY_HEX_LEN)
		return -1;
	memcpy(hex, text, KEY_HEX_LEN);
	hex[KEY_HEX_LEN] = '\0';
	ret = mw_hex_decode(hex, key_r, MW_DEVICE_KEY_SIZE);
	mw_cleanse(hex, sizeof(hex));
	return ret;
}

int mw_device_key_from_hex(const char *hex,
			   unsigned char key_r[MW_DEVICE_KEY_SIZE],
			   const char **error_r)
{
	if (hex == NULL || strnlen(hex, KEY_HEX_LEN + 1) != KEY_HEX_LEN ||
	    key_parse(hex, KEY_HEX_LEN, key_r) < 0) {
		mw_cleanse(key_r, MW_DEVICE_KEY_SIZE);
		*error_r = "device key must be exactly 64 hex digits";
		return -1;
	}
	return 0;
}

/* Returns 1 = key read, 0 = file does not exist, -1 = error set. */
static int key_read(const char *path, unsigned char key_r[MW_DEVICE_KEY_SIZE])
{
	char buf[KEY_HEX_LEN + 2];
	struct stat st;
	size_t len = 0;
	ssize_t ret;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		int err = errno;
		char hint[MW_HINT_MAX];

		set_error("device key %s: open() failed: %s%s", path,
			  strerror(err), mw_access_hint(path, err, hint,
							sizeof(hint)));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_error("device key %s: not a regular file", path);
		(void)close(fd);
		return -1;
	}
	/* a regular file's size is known: no read() just to see its end
	   (the file is replaced by rename(), never rewritten in place) */
	while (len < sizeof(buf) && (len == 0 || (off_t)len < st.st_size)) {
		ret = read(fd, buf + len, sizeof(buf) - len);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0) {
			set_error("device key %s: read() failed: %s", path,
				  strerror(errno));
			(void)close(fd);
			mw_cleanse(buf, sizeof(buf));
			return -1;
		}
		if (ret == 0)
			break;
		len += (size_t)ret;
	}
	(void)close(fd);
	if (key_parse(buf, len, key_r) < 0) {
		mw_cleanse(buf, sizeof(buf));
		mw_cleanse(key_r, MW_DEVICE_KEY_SIZE);
		set_error("device key %s: invalid content "
			  "(expected 64 hex digits and a newline)", path);
		return -1;
	}
	mw_cleanse(buf, sizeof(buf));
	return 1;
}

/* Returns 1 = created (key_r filled), 0 = someone else created it first,
   -1 = error set. */
static int key_create(const char *path, unsigned char key_r[MW_DEVICE_KEY_SIZE])
{
	char tmp_path[4096 + 64], hex[KEY_HEX_LEN + 2];
	unsigned char rnd[8];
	char rnd_hex[sizeof(rnd) * 2 + 1];
	int fd, ret;

	if (mw_random_bytes(rnd, sizeof(rnd)) < 0 ||
	    mw_random_bytes(key_r, MW_DEVICE_KEY_SIZE) < 0) {
		set_error("device key %s: no random bytes", path);
		return -1;
	}
	mw_hex_encode(rnd, sizeof(rnd), rnd_hex);
	ret = snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.%ld.%s", path,
		       (long)getpid(), rnd_hex);
	if (ret < 0 || (size_t)ret >= sizeof(tmp_path)) {
		set_error("device key %s: path too long", path);
		return -1;
	}
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
		  0600);
	if (fd < 0) {
		int err = errno;
		char hint[MW_HINT_MAX];

		set_error("device key %s: open(%s) failed: %s%s", path,
			  tmp_path, strerror(err), mw_access_hint(tmp_path,
			  err, hint, sizeof(hint)));
		return -1;
	}
	mw_hex_encode(key_r, MW_DEVICE_KEY_SIZE, hex);
	hex[KEY_HEX_LEN] = '\n';
	hex[KEY_HEX_LEN + 1] = '\0';
	if (mw_write_full(fd, hex, KEY_HEX_LEN + 1) < 0 || fsync(fd) < 0) {
		set_error("device key %s: write/fsync of %s failed: %s", path,
			  tmp_path, strerror(errno));
		mw_cleanse(hex, sizeof(hex));
		(void)close(fd);
		(void)unlink(tmp_path);
		return -1;
	}
	mw_cleanse(hex, sizeof(hex));
	if (close(fd) < 0) {
		set_error("device key %s: close(%s) failed: %s", path,
			  tmp_path, strerror(errno));
		(void)unlink(tmp_path);
		return -1;
	}
	/* link() never replaces an existing file: exactly one creator wins,
	   and nobody ever sees a partially written key */
	if (link(tmp_path, path) < 0) {
		int link_errno = errno;

		(void)unlink(tmp_path);
		if (link_errno == EEXIST)
			return 0;
		set_error("device key %s: link(%s) failed: %s", path,
			  tmp_path, strerror(link_errno));
		return -1;
	}
	(void)unlink(tmp_path);
	(void)mw_fsync_parent_dir(path);
	return 1;
}

int mw_device_key_load_or_create(const char *path,
				 unsigned char key_r[MW_DEVICE_KEY_SIZE],
				 const char **error_r)
{
	unsigned int attempt;
	int ret;

	if (path == NULL || path[0] == '\0') {
		*error_r = "device key: empty path";
		return -1;
	}
	for (attempt = 0; attempt < 3; attempt++) {
		ret = key_read(path, key_r);
		if (ret > 0)
			return 0;
		if (ret == 0)
			ret = key_create(path, key_r);
		if (ret > 0)
			return 0;
		mw_cleanse(key_r, MW_DEVICE_KEY_SIZE);
		if (ret < 0) {
			*error_r = device_error;
			return -1;
		}
		/* lost the creation race: read the winner's key */
	}
	set_error("device key %s: file keeps disappearing", path);
	*error_r = device_error;
	return -1;
}
