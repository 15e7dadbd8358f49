#ifndef MW_UTIL_H
#define MW_UTIL_H

/* Small generic helpers of the mailward core, the one copy of each: hex,
   UTF-8 decoding, bounded escaping of untrusted text, big-endian
   encoding, time clamping, whole-buffer file I/O. No Dovecot headers, no
   allocation, never prints. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __GNUC__
#  define MW_ATTR_FORMAT(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define MW_ATTR_FORMAT(fmt, args)
#endif

/* Writes 2*size lowercase hex digits plus NUL to out (out must hold
   2*size+1 bytes). */
void mw_hex_encode(const void *data, size_t size, char *out);
/* Decodes exactly 2*size hex digits (either case, nothing else, NUL right
   after) into out. Returns 0, or -1 if hex is NULL or malformed (out is
   then unspecified). */
int mw_hex_decode(const char *hex, unsigned char *out, size_t size);
/* The same for the first 2*size characters of hex, whatever follows
   them. Returns 0, or -1 if one of them is not a hex digit. */
int mw_hex_decode_n(const char *hex, unsigned char *out, size_t size);
/* Number of lowercase hex digits (the canonical form mw_hex_encode()
   writes) at the start of s[0..len). */
size_t mw_hex_lower_len(const char *s, size_t len);

/* Length (2..4) of the well-formed UTF-8 sequence of a code point >= U+0080
   at p (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), or 0 if the
   bytes at p are not one. p must be NUL-terminated or hold 4 bytes. If
   cp_r is non-NULL, the code point is stored there. */
size_t mw_utf8_seq_len(const unsigned char *p, uint32_t *cp_r);
/* Same for the len bytes at p (may hold NULs): 0 also if the sequence is
   cut off by the end. */
size_t mw_utf8_seq_len_n(const unsigned char *p, size_t len,
			 uint32_t *cp_r);
/* Length (1..4) of the well-formed UTF-8 sequence starting at p[0..len),
   or 0 if p[0] does not start one (invalid, truncated, overlong,
   surrogate, > U+10FFFF). ASCII bytes (including controls) count as 1. */
size_t mw_utf8_char_len(const unsigned char *p, size_t len);
/* Largest n <= max such that data[0..n) does not end inside a well-formed
   UTF-8 sequence that continues beyond n (used for bounded truncation). */
size_t mw_utf8_cut(const char *data, size_t len, size_t max);

/* The code points that are never shown raw to a human (terminal,
   spreadsheet, log file), so that text cannot drive a terminal, reorder
   what is read, or hide/imitate characters (a name looking like
   another): C0 controls, DEL, C1 controls (U+0080..U+009F), every
   Unicode White_Space character other than U+0020 (PropList.txt) and
   every Default_Ignorable_Code_Point (DerivedCoreProperties.txt), Unicode
   15.1.0, plus U+FFF9..U+FFFB. The ranges (the table in mw-util.c):
   U+00A0, U+00AD, U+034F, U+061C, U+115F..U+1160, U+1680,
   U+17B4..U+17B5, U+180B..U+180F, U+2000..U+200F, U+2028..U+202F,
   U+205F..U+206F, U+3000, U+3164, U+FE00..U+FE0F, U+FEFF, U+FFA0,
   U+FFF0..U+FFFB, U+1BCA0..U+1BCA3, U+1D173..U+1D17A,
   U+E0000..U+E0FFF. */
bool mw_cp_is_unsafe(uint32_t cp);

/* THE escaping rule of mailward for human-facing output and for untrusted
   text (IMAP ID values, labels, mailbox names, Message-IDs, log lines):
   - printable ASCII 0x20..0x7e is copied, except the bytes in extra (may
     be NULL) and, with MW_ESC_QUOTES, '"' and '\\', which become "\xNN"
     (lowercase hex);
   - a well-formed UTF-8 sequence is copied unless its code point is
     unsafe (mw_cp_is_unsafe()): then each of its bytes becomes "\xNN";
   - every other byte (controls, DEL, invalid UTF-8) becomes "\xNN".
   The result is printable ASCII/valid UTF-8 with no control, format or
   direction character. With MW_ESC_QUOTES the mapping is reversible
   (injective) as long as nothing was truncated; without it, text that
   contains no "\x" of its own (JSON, already escaped labels) stays
   unambiguous.

   mw_escape_item() applies the rule to the next item of data[0..len)
   (len >= 1): returns the number of input bytes it covers (>= 1) and sets
   *esc_len_r to 0 if they are to be copied as they are, or to the length
   of their escape written to esc (NUL-terminated). Every other escaping
   function (mw_buf_*, mw_escape, mw_sanitize, the CLI's text and CSV
   output, the doveadm and log output of the plugins) goes through it. */
#define MW_ESC_QUOTES 0x01
#define MW_ESC_ITEM_MAX 16
size_t mw_escape_item(const void *data, size_t len, unsigned int flags,
		      const char *extra, char esc[MW_ESC_ITEM_MAX + 1],
		      size_t *esc_len_r);

/* Bounded output buffer: appends never overflow; an item (character or
   escape) that does not fit entirely is dropped together with everything
   after it, so the content is always whole characters, NUL-terminated. */
struct mw_buf {
	char *data;
	size_t size; /* bytes of data incl. the NUL, >= 1 */
	size_t len;
	bool truncated;
};

/* Starts an empty string in data[size] (size >= 1). */
void mw_buf_init(struct mw_buf *buf, char *data, size_t size);
/* Appends str escaped per the rule above with MW_ESC_QUOTES (reversible);
   extra as above. */
void mw_buf_append_escaped(struct mw_buf *buf, const char *str,
			   const char *extra);
/* Appends trusted or already-escaped text (format literals, numbers,
   addresses, labels built by mw_device_describe()): the rule above
   without MW_ESC_QUOTES ('"' and '\\' copied), so the buffer invariant
   always holds. Idempotent: clean text passes
   unchanged. Not reversible: use mw_buf_append_escaped() for untrusted
   values that must stay distinguishable. */
void mw_buf_append_literal(struct mw_buf *buf, const char *str);

/* mw_buf_append_literal() into out[outsize] (outsize >= 1): bounded
   sanitizing of display text. Returns the output length. */
size_t mw_sanitize(const char *str, char *out, size_t outsize);
/* Escapes str into out[outsize] (outsize >= 1). Returns the output length;
   *truncated_r (may be NULL) tells whether input was dropped. */
size_t mw_escape(const char *str, const char *extra, char *out,
		 size_t outsize, bool *truncated_r);

/* Big-endian encoding of fixed-size fields. p needs 2/4/8 bytes. */
void mw_put_be16(unsigned char *p, uint16_t v);
void mw_put_be32(unsigned char *p, uint32_t v);
void mw_put_be64(unsigned char *p, uint64_t v);
uint64_t mw_get_be64(const unsigned char *p);
/* (inline: the state store decodes every record it iterates with them) */
static inline uint16_t mw_get_be16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t mw_get_be32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* time_t as stored: negative -> 0, beyond the range -> the maximum. */
uint32_t mw_time_to_u32(time_t t);
uint64_t mw_time_to_u64(time_t t);
/* Stored time back to time_t (saturating on 32-bit time_t). */
time_t mw_time_from_u64(uint64_t v);
/* Saturating u32 addition (counters). */
uint32_t mw_add_u32_sat(uint32_t a, uint32_t b);

/* Why an access to path failed with errno err, for error messages: for
   EACCES/EPERM writes " (process uid U gid G; PATH owned by uid X gid Y
   mode 0NNN)" (or "; PATH: directory D owned by ... is not searchable"
   when a directory on the way blocks it), for
   other errors an empty string. PATH is shown escaped (mw_sanitize()).
   out[outsize] (outsize >= 1) always ends up NUL-terminated; returns
   out. Reads errno-independent state only: errno is preserved. */
#define MW_HINT_MAX 512
const char *mw_access_hint(const char *path, int err, char *out,
			   size_t outsize);

/* The audit log's "time" format, YYYY-MM-DDTHH:MM:SS.ffffffZ
   (docs/audit-log.md), with the date and time of day formatted once per
   second: a cache the caller keeps (zeroed before the first use; one
   per thread). */
#define MW_UTC_STAMP_LEN 27
struct mw_utc_stamp_cache {
	time_t sec;
	bool valid;
	char date[20];	/* "YYYY-MM-DDTHH:MM:SS" and NUL, of sec */
};
/* Writes sec (seconds since the epoch) and usec (0..999999) in UTC as
   above into out: MW_UTC_STAMP_LEN bytes and a NUL. Returns 0, or -1 if
   sec cannot be converted (gmtime_r() fails; out then is ""). */
int mw_utc_stamp_usec(struct mw_utc_stamp_cache *cache, time_t sec,
		      long usec, char out[MW_UTC_STAMP_LEN + 1]);

/* ASCII-only case-insensitive equality (locale independent). */
bool mw_ascii_strcaseeq(const char *a, const char *b);

/* Zeroes secret material in a way the compiler may not optimise away. */
void mw_cleanse(void *data, size_t size);

/* Writes all size bytes of data to fd (retrying on EINTR and short
   writes). Returns 0, or -1 with errno set (EIO if write() wrote 0). */
int mw_write_full(int fd, const void *data, size_t size);
/* Reads exactly size bytes of fd at offset off (pread(), retrying on
   EINTR and short reads). Returns 0, or -1 with errno set (EIO at the
   end of the file). */
int mw_pread_full(int fd, void *data, size_t size, off_t off);

/* fsync()s the directory that contains path ("." when path has no '/'),
   so that a file created, renamed or linked there is durable. Returns 0,
   or -1 with errno set. */
int mw_fsync_parent_dir(const char *path);

#endif
