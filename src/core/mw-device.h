#ifndef MW_DEVICE_H
#define MW_DEVICE_H

/* Device identity: which "device" a session belongs to, a human label for
   it, and the keyed id under which the state store knows it. Dovecot-free;
   HMAC-SHA-256 and randomness come from the installed crypto provider
   (mw-crypto.h). Never prints. */

#include <stddef.h>

#define MW_DEVICE_KEY_SIZE 32
#define MW_DEVICE_ID_SIZE 16
#define MW_DEVICE_ID_HEX_SIZE (MW_DEVICE_ID_SIZE * 2 + 1)
/* Maximum stored (sanitized) length of one IMAP ID value, bytes. */
#define MW_ID_VALUE_MAX 64
/* RFC 2971: at most 30 field-value pairs; later pairs are ignored. */
#define MW_ID_PARAMS_MAX 30
/* Maximum label length in bytes (without the NUL). */
#define MW_LABEL_MAX 128
/* Buffer sizes that always suffice for mw_device_describe(). */
#define MW_LABEL_BUF_SIZE (MW_LABEL_MAX + 1)
#define MW_IDENTITY_BUF_SIZE 512
/* Buffer size that suffices for mw_network_prefix(): "<ipv6>/128". */
#define MW_PREFIX_BUF_SIZE 64

/* The ID parameters mailward keeps. Each value is "" when absent or NIL,
   otherwise escaped per the rule in mw-util.h and truncated to at most
   MW_ID_VALUE_MAX bytes on a whole character/escape boundary. */
struct mw_id_params {
	char name[MW_ID_VALUE_MAX + 1];
	char version[MW_ID_VALUE_MAX + 1];
	char os[MW_ID_VALUE_MAX + 1];
	char os_version[MW_ID_VALUE_MAX + 1];
	char vendor[MW_ID_VALUE_MAX + 1];
};

/* What the glue knows about a session. Every pointer may be NULL. */
struct mw_device_source {
	/* mailward_device setting / passdb field; NULL or "" = none */
	const char *explicit_device;
	/* "imap", "pop3", ...; NULL = "unknown" */
	const char *protocol;
	/* parsed IMAP ID; NULL or without name = not usable */
	const struct mw_id_params *id;
	/* remote address as text; NULL/unparseable = no remote address */
	const char *remote_ip;
	/* network prefix lengths; clamped to 32 / 128 */
	unsigned int v4_prefix_bits, v6_prefix_bits;
};

/* Writes the network of ip ("192.0.2.77", "2001:db8::1", "::ffff:1.2.3.4",
   "[2001:db8::1]", "fe80::1%eth0") with the given prefix length to buf as
   "192.0.2.0/24" / "2001:db8:1:2::/64"; v4-mapped IPv6 counts as IPv4.
   Returns 0, or -1 if ip is unparseable, a prefix length is out of range
   (v4 > 32, v6 > 128) or buf is too small (MW_PREFIX_BUF_SIZE suffices). */
int mw_network_prefix(const char *ip, unsigned int v4_bits,
		      unsigned int v6_bits, char *buf, size_t bufsize);

/* Fills *out from count_pairs (name, value) pairs: pairs[2*i] is a name,
   pairs[2*i+1] its value; either may be NULL (NIL). Only the first
   MW_ID_PARAMS_MAX pairs are looked at. Names are matched ASCII case-
   insensitively against name, version, os, os-version, vendor; the first
   occurrence of a name wins (even if its value is NIL); a pair with a NULL
   name is skipped. pairs may be NULL when count_pairs is 0. Input strings
   are read only as far as needed (bounded work on 10 KB values). */
void mw_id_params_parse(const char *const *pairs, unsigned int count_pairs,
			struct mw_id_params *out);

/* Derives the identity string (what is hashed into the device id) and the
   human label, in this order of sources:
     explicit device  -> "explicit:<value>",             label "<value>"
     IMAP ID w/ name  -> "id:<proto>:<name>/<os>/<vendor>",
                         label: <proto> "<name> <version>" <os> from <net>
     remote address   -> "net:<proto>:<prefix>",         label "<proto> from <prefix>"
     nothing          -> "net:<proto>:local",            label "<proto> (no remote address)"
   Values are escaped per mw-util.h ('/' and ':' additionally in the
   identity, so its parts cannot run together). Both outputs are always
   NUL-terminated, bounded by their sizes (isize/lsize >= 1; lsize is
   further capped at MW_LABEL_MAX bytes) and free of control characters.
   Use MW_IDENTITY_BUF_SIZE and MW_LABEL_BUF_SIZE; a smaller identity
   buffer truncates the identity and so may merge devices. */
void mw_device_describe(const struct mw_device_source *src,
			char *identity, size_t isize,
			char *label, size_t lsize);

/* Device id: HMAC-SHA-256(key, identity), first 16 bytes. Writes the raw id
   to id_r (may be NULL) and 32 lowercase hex digits + NUL to id_hex_r (may
   be NULL). Computed here only (mw-crypto.c), with the installed crypto
   provider. Returns 0, or -1 if there is none or it fails (outputs then
   zeroed). */
int mw_device_id(const unsigned char key[MW_DEVICE_KEY_SIZE],
		 const char *identity, unsigned char id_r[MW_DEVICE_ID_SIZE],
		 char id_hex_r[MW_DEVICE_ID_HEX_SIZE]);

/* Reads the device key from path (64 hex digits, optional trailing
   newline), creating it with 32 random bytes if it does not exist: written
   to a mode 0600 temporary file (O_CREAT|O_EXCL) in the same directory,
   fsync'd, then link()ed into place, so that a concurrent creator either
   wins or loses atomically and the loser reads the winner's key. Returns 0
   with key_r filled, or -1 with *error_r naming the path (static buffer,
   valid until the next mw_device_key_* call; key_r cleansed). */
int mw_device_key_load_or_create(const char *path,
				 unsigned char key_r[MW_DEVICE_KEY_SIZE],
				 const char **error_r);

/* Parses a configured key: exactly 64 hex digits. Returns 0, or -1 with
   *error_r (static string, does not repeat the key; key_r cleansed). */
int mw_device_key_from_hex(const char *hex,
			   unsigned char key_r[MW_DEVICE_KEY_SIZE],
			   const char **error_r);

/* A device id or id prefix as an administrator types it: 6 to 32 hex
   digits, either case. Writes the lowercase digits + NUL to out and
   returns their count, or returns -1 if in (may be NULL) is not one. */
int mw_device_id_prefix_norm(const char *in,
			     char out[MW_DEVICE_ID_HEX_SIZE]);

/* mw_cleanse() of a key (or any secret) buffer. */
void mw_device_key_cleanse(void *key, size_t size);

#endif
