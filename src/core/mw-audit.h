#ifndef MW_AUDIT_H
#define MW_AUDIT_H

/* mailward audit log, the record API: the record schema, the event body
   builder mail processes use (they hold no keys), and the record checks
   the writer and the verifier share. All of it is in libmailward-core,
   which the plugins link. The writer, its keys and the chain's crypto
   are in mw-audit-writer.h (libmailward-crypto: the writer service and
   the CLI only); the writer protocol's constants in mw-audit-proto.h.
   The format is specified in docs/audit-log.md; keep both in step. No
   Dovecot headers; never prints; no threads.

   Error contract: functions return 0 on success and -1 on failure with
   *error_r set to a message that stays valid until the next call into
   this module with the same object (or, for functions without an
   object, until the next failing call). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mw-json.h"

#define MW_AUDIT_FORMAT_VERSION 1
/* bytes of a decoded string field; longer values are cut by the builder
   (at a UTF-8 boundary) and named in the "truncated" field */
#define MW_AUDIT_STR_MAX 256
/* bytes of a body a mail process may submit */
#define MW_AUDIT_BODY_MAX 16384
/* bytes of a complete record line, excluding its newline */
#define MW_AUDIT_LINE_MAX 65536
#define MW_AUDIT_KEY_LEN 32
#define MW_AUDIT_HASH_HEX_LEN 64
#define MW_AUDIT_SIG_HEX_LEN 128
/* a line ends with ,"mac":"<64 hex>"} : the MAC covers everything before
   these bytes */
#define MW_AUDIT_MAC_SUFFIX_LEN (8 + MW_AUDIT_HASH_HEX_LEN + 2)
/* "prev" of the first record of a chain (seq 1) */
#define MW_AUDIT_ZERO_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

/* All fields, in canonical order (the order they appear in a line). */
enum mw_audit_field {
	/* assigned by the writer */
	MW_AF_SEQ = 0,
	MW_AF_TIME,
	MW_AF_HOST,
	/* event fields, supplied by mail processes */
	MW_AF_SERVICE,
	MW_AF_SESSION,
	MW_AF_EVENT,
	MW_AF_OUTCOME,
	MW_AF_USER,
	MW_AF_ACTOR,
	MW_AF_DEVICE,
	MW_AF_DEVICE_LABEL,
	MW_AF_REMOTE,
	MW_AF_MAILBOX,
	MW_AF_MAILBOX_GUID,
	MW_AF_UIDVALIDITY,
	MW_AF_UID,
	MW_AF_MSG_GUID,
	MW_AF_MESSAGE_ID,
	MW_AF_SIZE,
	MW_AF_POLICY,
	MW_AF_POLICY_SOURCE,
	MW_AF_CAUSE,
	/* disposed: what was done, and where a moved message went */
	MW_AF_ACTION,
	MW_AF_DESTINATION,
	MW_AF_DESTINATION_GUID,
	MW_AF_DETAIL,
	MW_AF_RETRIEVED,
	MW_AF_DELETED,
	MW_AF_EXPUNGED,
	MW_AF_SUPPRESSED,
	MW_AF_DROPPED,
	MW_AF_BYTES,
	MW_AF_TRUNCATED,
	/* set by the writer on mail events it took from the spool (records
	   of sessions that ended while it was away) */
	MW_AF_DELAYED,
	MW_AF_SPOOL,
	/* writer event fields */
	MW_AF_REASON,
	MW_AF_VERSION,
	MW_AF_RECORDS,
	MW_AF_TORN_BYTES,
	MW_AF_TORN_SHA256,
	MW_AF_TORN_FILE,
	MW_AF_ROOT,
	MW_AF_SIG,
	/* chain fields, always last */
	MW_AF_EPOCH,
	MW_AF_PREV,
	MW_AF_MAC,

	MW_AF_COUNT
};

enum mw_audit_field_type {
	MW_AUDIT_TYPE_STRING = 1,
	MW_AUDIT_TYPE_U64,
};

enum mw_audit_field_class {
	MW_AUDIT_CLASS_HEADER = 1,	/* seq, time, host */
	MW_AUDIT_CLASS_EVENT,		/* may come from a mail process */
	MW_AUDIT_CLASS_WRITER,		/* only in writer events */
	MW_AUDIT_CLASS_SPOOL,		/* by the writer, on mail events */
	MW_AUDIT_CLASS_CHAIN,		/* epoch, prev, mac */
};

struct mw_audit_field_info {
	const char *name;
	enum mw_audit_field_type type;
	enum mw_audit_field_class class_;
};

/* Schema table indexed by enum mw_audit_field. */
extern const struct mw_audit_field_info mw_audit_fields[MW_AF_COUNT];

/* The field named name, or -1. */
int mw_audit_field_lookup(const char *name);

/* Events the writer itself emits; a mail process may not send them. */
#define MW_AUDIT_EV_EPOCH "epoch"
#define MW_AUDIT_EV_SEAL "seal"
#define MW_AUDIT_EV_CHECKPOINT "checkpoint"
#define MW_AUDIT_EV_RECOVERED "recovered"
#define MW_AUDIT_EV_WRITER_START "writer_start"
#define MW_AUDIT_EV_WRITER_STOP "writer_stop"

/* TRUE if event is one of the writer events above. */
bool mw_audit_event_is_writer(const char *event);
/* TRUE if event is a syntactically valid event name:
   [a-z][a-z0-9_]{0,31}. */
bool mw_audit_event_name_valid(const char *event);

/* --- record builder (mail processes; no keys) --- */

/* An event as a mail process describes it. Fields are indexed by enum
   mw_audit_field; only MW_AUDIT_CLASS_EVENT fields are used (and
   MW_AF_TRUNCATED is set by the builder itself). A NULL string or an
   unset number is omitted from the record. The struct only borrows the
   strings. */
struct mw_audit_event {
	const char *str[MW_AF_COUNT];
	uint64_t num[MW_AF_COUNT];
	bool num_set[MW_AF_COUNT];
};

/* Clears ev (all fields absent). */
void mw_audit_event_init(struct mw_audit_event *ev);
/* Sets a string field (the string is borrowed, NUL-terminated). */
void mw_audit_event_set_str(struct mw_audit_event *ev,
			    enum mw_audit_field field, const char *value);
/* Sets a number field. */
void mw_audit_event_set_num(struct mw_audit_event *ev,
			    enum mw_audit_field field, uint64_t value);

/* Appends the canonical body of ev to out: the members of the event
   fields that are set, in canonical order, comma-separated, without
   braces (e.g. "service":"pop3","event":"retr",...). Strings longer than
   MW_AUDIT_STR_MAX bytes are cut at a UTF-8 boundary and listed in a
   "truncated" member. Returns 0, or -1 if the event name is missing,
   invalid or a writer event, a field of the wrong class or type is set,
   or memory ran out. */
int mw_audit_body_build(const struct mw_audit_event *ev,
			struct mw_json_buf *out, const char **error_r);

/* Writer-side check of a body received from a (possibly compromised) mail
   process: it must be what mw_audit_body_build() produces, i.e. parse as
   the members of a flat object, use only event fields, in canonical
   order, with the right types, no duplicates, string values of at most
   MW_AUDIT_STR_MAX bytes, a valid non-writer event name, canonical
   encoding (no whitespace, no optional escapes), and at most
   MW_AUDIT_BODY_MAX bytes. No newline can pass. Returns 0 or -1. */
int mw_audit_body_validate(const char *body, size_t len,
			   const char **error_r);

/* --- record checks shared by the writer (resume) and the verifier --- */

/* Checks a parsed record line against the schema: known keys in canonical
   order, types, required fields (seq, time, host, event, epoch, prev,
   mac), formats (time, lowercase hex), writer fields only in their
   writer events, event fields only in non-writer events, and canonical
   serialisation (line[0..len) must equal the re-serialised object). buf
   is scratch space. Returns 0 or -1. */
int mw_audit_record_check(const struct mw_json_obj *obj, const char *line,
			  size_t len, struct mw_json_buf *scratch,
			  const char **error_r);

/* TRUE if t is a time as the "time" field holds it
   (YYYY-MM-DDTHH:MM:SS.ffffffZ). */
bool mw_audit_time_valid(const char *t, size_t len);

#endif
