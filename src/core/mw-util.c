/* mailward core: generic helpers (see mw-util.h). */

#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char hexdigits[] = "0123456789abcdef";

void mw_hex_encode(const void *data, size_t size, char *out)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < size; i++) {
		out[i * 2] = hexdigits[p[i] >> 4];
		out[i * 2 + 1] = hexdigits[p[i] & 0x0f];
	}
	out[size * 2] = '\0';
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mw_hex_decode_n(const char *hex, unsigned char *out, size_t size)
{
	size_t i;
	int hi, lo;

	if (hex == NULL)
		return -1;
	for (i = 0; i < size; i++) {
		/* a NUL yields -1 here, so we never read past it */
		hi = hex_value(hex[i * 2]);
		if (hi < 0)
			return -1;
		lo = hex_value(hex[i * 2 + 1]);
		if (lo < 0)
			return -1;
		out[i] = (unsigned char)((hi << 4) | lo);
	}
	return 0;
}

size_t mw_hex_lower_len(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			break;
	}
	return i;
}

int mw_hex_decode(const char *hex, unsigned char *out, size_t size)
{
	if (mw_hex_decode_n(hex, out, size) < 0)
		return -1;
	return hex[size * 2] == '\0' ? 0 : -1;
}

/* write() or, with off >= 0, pread() of all size bytes */
static int io_full(int fd, void *data, size_t size, off_t off, bool writing)
{
	char *p = data;
	ssize_t n;

	while (size > 0) {
		n = writing ? write(fd, p, size) : pread(fd, p, size, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		size -= (size_t)n;
		off += n;
	}
	return 0;
}

int mw_write_full(int fd, const void *data, size_t size)
{
	return io_full(fd, (void *)data, size, 0, true);
}

int mw_pread_full(int fd, void *data, size_t size, off_t off)
{
	return io_full(fd, data, size, off, false);
}

int mw_fsync_parent_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;
	int fd, ret;

	if (slash == NULL) {
		strcpy(dir, ".");
	} else {
		len = slash == path ? 1 : (size_t)(slash - path);
		if (len >= sizeof(dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(dir, path, len);
		dir[len] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsync(fd);
	(void)close(fd);
	return ret;
}

size_t mw_utf8_seq_len_n(const unsigned char *p, size_t len,
			 uint32_t *cp_r)
{
	uint32_t cp, min;
	size_t n, i;

	if (len == 0 || p[0] < 0xc2 || p[0] > 0xf4)
		return 0; /* ASCII, continuation, overlong lead or > U+10FFFF */
	if (p[0] < 0xe0) {
		n = 2; cp = p[0] & 0x1f; min = 0x80;
	} else if (p[0] < 0xf0) {
		n = 3; cp = p[0] & 0x0f; min = 0x800;
	} else {
		n = 4; cp = p[0] & 0x07; min = 0x10000;
	}
	if (len < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp_r != NULL)
		*cp_r = cp;
	return n;
}

size_t mw_utf8_seq_len(const unsigned char *p, uint32_t *cp_r)
{
	/* a NUL is not a continuation byte: the bounded check stops there */
	return mw_utf8_seq_len_n(p, 4, cp_r);
}

size_t mw_utf8_char_len(const unsigned char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	return mw_utf8_seq_len_n(p, len, NULL);
}

size_t mw_utf8_cut(const char *data, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t pos = 0, n;

	if (len <= max)
		return len;
	while (pos < max) {
		n = mw_utf8_char_len(p + pos, len - pos);
		if (n == 0)
			n = 1; /* invalid byte: escaped on its own */
		if (pos + n > max)
			break;
		pos += n;
	}
	return pos;
}

/* Code points above U+007E never shown raw, sorted, disjoint, merged:
   DEL and the C1 controls; every White_Space character except U+0020
   (PropList.txt) and every Default_Ignorable_Code_Point
   (DerivedCoreProperties.txt), both of the Unicode Character Database
   15.1.0 (identical in 14.0.0: checked by deriving them per UAX #44
   from that version's UnicodeData); plus U+FFF9..U+FFFB (interlinear
   annotation, which hides text). */
static const struct {
	uint32_t first, last;
} unsafe_ranges[] = {
	{ 0x007f, 0x009f },	/* DEL, C1 controls (U+0085 White_Space) */
	{ 0x00a0, 0x00a0 },	/* no-break space (WS) */
	{ 0x00ad, 0x00ad },	/* soft hyphen (DI) */
	{ 0x034f, 0x034f },	/* combining grapheme joiner (DI) */
	{ 0x061c, 0x061c },	/* arabic letter mark (DI) */
	{ 0x115f, 0x1160 },	/* hangul choseong/jungseong fillers (DI) */
	{ 0x1680, 0x1680 },	/* ogham space mark (WS) */
	{ 0x17b4, 0x17b5 },	/* khmer inherent vowels (DI) */
	{ 0x180b, 0x180f },	/* mongolian FVS 1-4, vowel separator (DI) */
	{ 0x2000, 0x200f },	/* en quad..hair space (WS), zero widths,
				   LRM, RLM (DI) */
	{ 0x2028, 0x202f },	/* line/paragraph separators (WS),
				   embeddings (DI), narrow nbsp (WS) */
	{ 0x205f, 0x206f },	/* medium math space (WS), word joiner,
				   invisible operators, isolates (DI) */
	{ 0x3000, 0x3000 },	/* ideographic space (WS) */
	{ 0x3164, 0x3164 },	/* hangul filler (DI) */
	{ 0xfe00, 0xfe0f },	/* variation selectors 1-16 (DI) */
	{ 0xfeff, 0xfeff },	/* BOM / ZWNBSP (DI) */
	{ 0xffa0, 0xffa0 },	/* halfwidth hangul filler (DI) */
	{ 0xfff0, 0xfffb },	/* reserved (DI), interlinear annotation */
	{ 0x1bca0, 0x1bca3 },	/* shorthand format controls (DI) */
	{ 0x1d173, 0x1d17a },	/* musical symbol beam/tie/slur/phrase (DI) */
	{ 0xe0000, 0xe0fff },	/* tags, variation selectors 17-256,
				   reserved (DI) */
};

#define UNSAFE_RANGES_COUNT \
	(sizeof(unsafe_ranges) / sizeof(unsafe_ranges[0]))

bool mw_cp_is_unsafe(uint32_t cp)
{
	size_t lo = 0, hi = UNSAFE_RANGES_COUNT, mid;

	if (cp < 0x20)
		return true;
	if (cp < 0x7f)
		return false;
	/* binary search for the first range whose last >= cp */
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (unsafe_ranges[mid].last < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < UNSAFE_RANGES_COUNT &&
		cp >= unsafe_ranges[lo].first;
}

size_t mw_escape_item(const void *data, size_t len, unsigned int flags,
		      const char *extra, char esc[MW_ESC_ITEM_MAX + 1],
		      size_t *esc_len_r)
{
	const unsigned char *p = data;
	uint32_t cp;
	size_t n, i;

	*esc_len_r = 0;
	if (p[0] >= 0x20 && p[0] < 0x7f) {
		if (((flags & MW_ESC_QUOTES) != 0 &&
		     (p[0] == '"' || p[0] == '\\')) ||
		    (extra != NULL && strchr(extra, p[0]) != NULL))
			n = 1;
		else
			return 1; /* copy */
	} else {
		n = p[0] < 0x80 ? 0 : mw_utf8_seq_len_n(p, len, &cp);
		if (n > 0 && !mw_cp_is_unsafe(cp))
			return n; /* copy */
		if (n == 0)
			n = 1; /* control, DEL or a byte of invalid UTF-8 */
	}
	for (i = 0; i < n; i++) {
		esc[i * 4] = '\\';
		esc[i * 4 + 1] = 'x';
		esc[i * 4 + 2] = hexdigits[p[i] >> 4];
		esc[i * 4 + 3] = hexdigits[p[i] & 0x0f];
	}
	esc[n * 4] = '\0';
	*esc_len_r = n * 4;
	return n;
}

void mw_buf_init(struct mw_buf *buf, char *data, size_t size)
{
	buf->data = data;
	buf->size = size;
	buf->len = 0;
	buf->truncated = false;
	data[0] = '\0';
}

/* Appends n bytes as one indivisible item. Returns false (and marks the
   buffer truncated and closed) if it does not fit. */
static bool buf_put(struct mw_buf *buf, const void *data, size_t n)
{
	if (buf->truncated || buf->len + n >= buf->size) {
		buf->truncated = true;
		return false;
	}
	memcpy(buf->data + buf->len, data, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return true;
}

static void buf_append(struct mw_buf *buf, const char *str,
		       unsigned int flags, const char *extra)
{
	const char *p = str;
	size_t left = strlen(str), n, esc_len;
	char esc[MW_ESC_ITEM_MAX + 1];

	while (left > 0 && !buf->truncated) {
		n = mw_escape_item(p, left, flags, extra, esc, &esc_len);
		if (esc_len > 0)
			buf_put(buf, esc, esc_len);
		else
			buf_put(buf, p, n);
		p += n;
		left -= n;
	}
}

void mw_buf_append_escaped(struct mw_buf *buf, const char *str,
			   const char *extra)
{
	buf_append(buf, str, MW_ESC_QUOTES, extra);
}

void mw_buf_append_literal(struct mw_buf *buf, const char *str)
{
	buf_append(buf, str, 0, NULL);
}

size_t mw_sanitize(const char *str, char *out, size_t outsize)
{
	struct mw_buf buf;

	mw_buf_init(&buf, out, outsize);
	mw_buf_append_literal(&buf, str);
	return buf.len;
}

/* mw_buf_append_literal() of a printf-formatted string of at most 255
   bytes (longer output is cut first) */
static void buf_printf(struct mw_buf *buf, const char *fmt, ...)
	MW_ATTR_FORMAT(2, 3);
static void buf_printf(struct mw_buf *buf, const char *fmt, ...)
{
	char tmp[256];
	va_list args;

	va_start(args, fmt);
	(void)vsnprintf(tmp, sizeof(tmp), fmt, args);
	va_end(args);
	mw_buf_append_literal(buf, tmp);
}

size_t mw_escape(const char *str, const char *extra, char *out,
		 size_t outsize, bool *truncated_r)
{
	struct mw_buf buf;

	mw_buf_init(&buf, out, outsize);
	mw_buf_append_escaped(&buf, str, extra);
	if (truncated_r != NULL)
		*truncated_r = buf.truncated;
	return buf.len;
}

void mw_put_be16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

void mw_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

void mw_put_be64(unsigned char *p, uint64_t v)
{
	mw_put_be32(p, (uint32_t)(v >> 32));
	mw_put_be32(p + 4, (uint32_t)v);
}

uint64_t mw_get_be64(const unsigned char *p)
{
	return ((uint64_t)mw_get_be32(p) << 32) | mw_get_be32(p + 4);
}

uint32_t mw_time_to_u32(time_t t)
{
	if (t <= 0)
		return 0;
	if ((uint64_t)t > UINT32_MAX)
		return UINT32_MAX;
	return (uint32_t)t;
}

uint64_t mw_time_to_u64(time_t t)
{
	return t <= 0 ? 0 : (uint64_t)t;
}

time_t mw_time_from_u64(uint64_t v)
{
	/* time_t is signed; clamp to its maximum without assuming its width */
	const uint64_t max = sizeof(time_t) >= 8 ? (uint64_t)INT64_MAX :
		(uint64_t)INT32_MAX;

	return (time_t)(v > max ? max : v);
}

uint32_t mw_add_u32_sat(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

const char *mw_access_hint(const char *path, int err, char *out,
			   size_t outsize)
{
	struct mw_buf buf;
	struct stat st;
	int saved_errno = errno;

	mw_buf_init(&buf, out, outsize);
	if (err != EACCES && err != EPERM)
		return out;
	buf_printf(&buf, " (process uid %ld gid %ld; ", (long)geteuid(),
		      (long)getegid());
	mw_buf_append_literal(&buf, path);
	if (stat(path, &st) < 0) {
		/* name the first directory on the way that is not
		   searchable */
		char dir[PATH_MAX];
		size_t i, len = strlen(path);
		bool found = false;

		for (i = 1; i < len && i < sizeof(dir); i++) {
			if (path[i] != '/')
				continue;
			memcpy(dir, path, i);
			dir[i] = '\0';
			if (faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) < 0 &&
			    stat(dir, &st) == 0) {
				found = true;
				break;
			}
		}
		if (found) {
			buf_printf(&buf, ": directory ");
			mw_buf_append_literal(&buf, dir);
			buf_printf(&buf, " owned by uid %ld gid %ld mode "
				      "0%03o is not searchable)",
				      (long)st.st_uid, (long)st.st_gid,
				      (unsigned int)(st.st_mode & 07777));
		} else {
			buf_printf(&buf, ": stat failed: %s)",
				      strerror(errno));
		}
	} else {
		buf_printf(&buf, " owned by uid %ld gid %ld mode 0%03o)",
			      (long)st.st_uid, (long)st.st_gid,
			      (unsigned int)(st.st_mode & 07777));
	}
	errno = saved_errno;
	return out;
}

int mw_utc_stamp_usec(struct mw_utc_stamp_cache *cache, time_t sec,
		      long usec, char out[MW_UTC_STAMP_LEN + 1])
{
	struct tm tm;
	unsigned long u = (unsigned long)usec % 1000000UL;
	int i;

	if (!cache->valid || cache->sec != sec) {
		cache->valid = false;
		if (gmtime_r(&sec, &tm) == NULL ||
		    strftime(cache->date, sizeof(cache->date),
			     "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
			out[0] = '\0';
			return -1;
		}
		cache->sec = sec;
		cache->valid = true;
	}
	memcpy(out, cache->date, 19);
	out[19] = '.';
	for (i = 25; i >= 20; i--) {
		out[i] = (char)('0' + u % 10);
		u /= 10;
	}
	out[26] = 'Z';
	out[27] = '\0';
	return 0;
}

bool mw_ascii_strcaseeq(const char *a, const char *b)
{
	unsigned char ca, cb;

	do {
		ca = (unsigned char)*a++;
		cb = (unsigned char)*b++;
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb)
			return false;
	} while (ca != '\0');
	return true;
}

void mw_cleanse(void *data, size_t size)
{
	explicit_bzero(data, size);
}
