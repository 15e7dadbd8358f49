#ifndef MW_JSON_H
#define MW_JSON_H

/* JSON for mailward's audit records: a growable output buffer, the
   canonical (reversible) string escaping, and a strict parser of flat
   objects as the audit writer produces them. No Dovecot headers, never
   prints. The exact rules are specified in docs/audit-log.md §2.

   Escaping (canonical form, the only one the writer emits):
   - '"' -> \"   '\\' -> \\   0x08 -> \b  0x09 -> \t  0x0a -> \n
     0x0c -> \f  0x0d -> \r; every other byte < 0x20 and 0x7f -> \u00xx;
   - a well-formed UTF-8 sequence (RFC 3629) is copied unchanged;
   - every other byte b (0x80..0xff, not part of a well-formed sequence)
     -> \udcxx, xx = b in lowercase hex (a lone low surrogate: the
     "surrogateescape" convention; well-formed UTF-8 can never yield a
     lone surrogate, so the mapping is injective and decoding restores
     the exact bytes).
   Everything else (including '/', U+2028) is copied as is. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable byte buffer. data is always NUL-terminated (when non-NULL) and
   owned by the buffer; an allocation failure sets failed and makes all
   later appends no-ops, so callers check failed once at the end. */
struct mw_json_buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed;
};

void mw_json_buf_init(struct mw_json_buf *buf);
/* Frees data (the buffer can be reused after init). */
void mw_json_buf_free(struct mw_json_buf *buf);
/* Empties the buffer, keeps its memory and clears failed. */
void mw_json_buf_reset(struct mw_json_buf *buf);
void mw_json_buf_append(struct mw_json_buf *buf, const void *data,
			size_t len);
void mw_json_buf_append_str(struct mw_json_buf *buf, const char *str);
void mw_json_buf_append_u64(struct mw_json_buf *buf, uint64_t value);
/* Removes bytes from the end so that len = new_len (new_len <= len). */
void mw_json_buf_truncate(struct mw_json_buf *buf, size_t new_len);

/* TRUE for the bytes the escaping copies as they are: printable ASCII
   (0x20-0x7e) except '"' and '\\'. */
extern const bool mw_json_plain[256];

/* Appends data[len] escaped as above, without surrounding quotes. */
void mw_json_append_escaped(struct mw_json_buf *buf, const void *data,
			    size_t len);
/* Appends "escaped data" with the quotes. */
void mw_json_append_string(struct mw_json_buf *buf, const void *data,
			   size_t len);


enum mw_json_type {
	MW_JSON_STRING = 1,
	MW_JSON_INT,
	MW_JSON_BOOL,
	MW_JSON_NULL,
};

#define MW_JSON_MAX_MEMBERS 64

struct mw_json_member {
	/* decoded key, NUL-terminated (keys never contain NUL: a key with
	   \u0000 is rejected) */
	const char *key;
	size_t key_len;
	enum mw_json_type type;
	/* MW_JSON_STRING: decoded bytes, NUL-terminated; may contain NUL
	   bytes, so use str_len */
	const char *str;
	size_t str_len;
	/* MW_JSON_INT: magnitude and sign (-0 is rejected) */
	uint64_t num;
	bool negative;
	/* MW_JSON_BOOL */
	bool boolean;
	/* byte offsets in the parsed text: the key's opening quote and just
	   past the value */
	size_t raw_start;
	size_t raw_end;
};

/* A parsed object. Members point into memory owned by the object and
   stay valid until the next parse or mw_json_obj_free(). */
struct mw_json_obj {
	struct mw_json_member members[MW_JSON_MAX_MEMBERS];
	unsigned int count;
	char *arena;
	size_t arena_size;
	char error[128];
};

void mw_json_obj_init(struct mw_json_obj *obj);
void mw_json_obj_free(struct mw_json_obj *obj);

/* Parses text[0..len) as exactly one flat JSON object: members whose
   values are strings, integers (-?[0-9]+, no leading zeros, fits in 64
   bits), true, false or null; no whitespace anywhere outside strings, no
   nested objects or arrays, no fractions or exponents, no duplicate keys,
   at most MW_JSON_MAX_MEMBERS members, raw bytes in strings must be
   well-formed UTF-8 without controls, escapes as in RFC 8259 plus the
   lone-surrogate rule above (\udc80..\udcff decode to a raw byte; any
   other unpaired surrogate is an error). Returns 0, or -1 with *error_r
   (points into obj, valid until the next parse) describing the first
   problem and its offset. */
int mw_json_parse_object(struct mw_json_obj *obj, const char *text,
			 size_t len, const char **error_r);

/* The member named key, or NULL. */
const struct mw_json_member *
mw_json_obj_get(const struct mw_json_obj *obj, const char *key);

/* Appends the canonical serialisation of obj (members in their order,
   canonical escaping, no whitespace). A line the writer produced
   re-serialises to exactly its own bytes. */
void mw_json_obj_serialize(const struct mw_json_obj *obj,
			   struct mw_json_buf *out);
/* Appends one member as "key":value (no separator). */
void mw_json_member_serialize(const struct mw_json_member *m,
			      struct mw_json_buf *out);

#endif
