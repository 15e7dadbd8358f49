/* mailward audit log records: schema, event builder, body validator and
   record checks. No cryptography here (the mail processes link this
   without OpenSSL); the chain's crypto, the keys and the writer are in
   mw-audit-crypto.c, mw-audit-keys.c and mw-audit-writer.c
   (mw-audit-writer.h).
   See mw-audit.h and docs/audit-log.md. */

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE /* memrchr() */
#endif

#include "mw-audit.h"
#include "mw-audit-private.h"
#include "mw-util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>




const struct mw_audit_field_info mw_audit_fields[MW_AF_COUNT] = {
	[MW_AF_SEQ] = { "seq", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_HEADER },
	[MW_AF_TIME] = { "time", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_HEADER },
	[MW_AF_HOST] = { "host", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_HEADER },
	[MW_AF_SERVICE] = { "service", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_SESSION] = { "session", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_EVENT] = { "event", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_OUTCOME] = { "outcome", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_USER] = { "user", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_ACTOR] = { "actor", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DEVICE] = { "device", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DEVICE_LABEL] = { "device_label", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_REMOTE] = { "remote", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_MAILBOX] = { "mailbox", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_MAILBOX_GUID] = { "mailbox_guid", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_UIDVALIDITY] = { "uidvalidity", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_UID] = { "uid", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_MSG_GUID] = { "msg_guid", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_MESSAGE_ID] = { "message_id", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_SIZE] = { "size", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_POLICY] = { "policy", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_POLICY_SOURCE] = { "policy_source", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_CAUSE] = { "cause", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_ACTION] = { "action", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DESTINATION] = { "destination", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DESTINATION_GUID] = { "destination_guid", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DETAIL] = { "detail", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_RETRIEVED] = { "retrieved", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DELETED] = { "deleted", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_EXPUNGED] = { "expunged", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_SUPPRESSED] = { "suppressed", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DROPPED] = { "dropped", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_BYTES] = { "bytes", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_EVENT },
	[MW_AF_TRUNCATED] = { "truncated", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_EVENT },
	[MW_AF_DELAYED] = { "delayed", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_SPOOL },
	[MW_AF_SPOOL] = { "spool", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_SPOOL },
	[MW_AF_REASON] = { "reason", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_VERSION] = { "version", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_RECORDS] = { "records", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_WRITER },
	[MW_AF_TORN_BYTES] = { "torn_bytes", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_WRITER },
	[MW_AF_TORN_SHA256] = { "torn_sha256", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_TORN_FILE] = { "torn_file", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_ROOT] = { "root", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_SIG] = { "sig", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_WRITER },
	[MW_AF_EPOCH] = { "epoch", MW_AUDIT_TYPE_U64, MW_AUDIT_CLASS_CHAIN },
	[MW_AF_PREV] = { "prev", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_CHAIN },
	[MW_AF_MAC] = { "mac", MW_AUDIT_TYPE_STRING, MW_AUDIT_CLASS_CHAIN },
};

/* Which writer fields each writer event carries: required and optional
   bit masks over (field - MW_AF_REASON). */
#define WBIT(f) (1U << ((f) - MW_AF_REASON))
static const struct {
	const char *event;
	unsigned int required, optional;
} writer_events[] = {
	{ MW_AUDIT_EV_EPOCH, WBIT(MW_AF_REASON), 0 },
	{ MW_AUDIT_EV_SEAL, WBIT(MW_AF_REASON) | WBIT(MW_AF_RECORDS), 0 },
	{ MW_AUDIT_EV_CHECKPOINT, WBIT(MW_AF_SIG), WBIT(MW_AF_ROOT) },
	{ MW_AUDIT_EV_RECOVERED, WBIT(MW_AF_TORN_BYTES) |
	  WBIT(MW_AF_TORN_SHA256) | WBIT(MW_AF_TORN_FILE), 0 },
	{ MW_AUDIT_EV_WRITER_START, WBIT(MW_AF_VERSION), 0 },
	{ MW_AUDIT_EV_WRITER_STOP, 0, WBIT(MW_AF_REASON) },
};

char mw_audit_static_error[MW_AUDIT_ERROR_MAX];

#define fail_static mw_audit_fail_static
int mw_audit_fail_into(char *buf, size_t size, const char **error_r,
		       const char *fmt, ...)
{
	char tmp[MW_AUDIT_ERROR_MAX];
	va_list args;

	/* format into a copy first: an argument may be buf itself
	   (passing on an error of another core function) */
	va_start(args, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, args);
	va_end(args);
	snprintf(buf, size, "%s", tmp);
	*error_r = buf;
	return -1;
}

int mw_audit_field_lookup(const char *name)
{
	int i;

	for (i = 0; i < MW_AF_COUNT; i++) {
		if (strcmp(mw_audit_fields[i].name, name) == 0)
			return i;
	}
	return -1;
}

static int writer_event_index(const char *event)
{
	unsigned int i;

	for (i = 0; i < sizeof(writer_events) / sizeof(writer_events[0]); i++) {
		if (strcmp(writer_events[i].event, event) == 0)
			return (int)i;
	}
	return -1;
}

bool mw_audit_event_is_writer(const char *event)
{
	return writer_event_index(event) >= 0;
}

bool mw_audit_event_name_valid(const char *event)
{
	size_t i;

	if (event[0] < 'a' || event[0] > 'z')
		return false;
	for (i = 1; event[i] != '\0'; i++) {
		char c = event[i];

		if (i >= 32)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return false;
	}
	return true;
}

/* --- builder --- */

void mw_audit_event_init(struct mw_audit_event *ev)
{
	memset(ev, 0, sizeof(*ev));
}

void mw_audit_event_set_str(struct mw_audit_event *ev,
			    enum mw_audit_field field, const char *value)
{
	if ((unsigned int)field < MW_AF_COUNT)
		ev->str[field] = value;
}

void mw_audit_event_set_num(struct mw_audit_event *ev,
			    enum mw_audit_field field, uint64_t value)
{
	if ((unsigned int)field < MW_AF_COUNT) {
		ev->num[field] = value;
		ev->num_set[field] = true;
	}
}

/* Appends [,]"name": with one append (field names are short ASCII
   without characters to escape). */
static void append_key(struct mw_json_buf *out, bool *first, int field)
{
	const char *name = mw_audit_fields[field].name;
	size_t n = strlen(name), pos = 0;
	char key[40];

	if (n > sizeof(key) - 4)
		n = sizeof(key) - 4; /* not reached: the longest name has 16 */
	if (!*first)
		key[pos++] = ',';
	*first = false;
	key[pos++] = '"';
	memcpy(key + pos, name, n);
	pos += n;
	key[pos++] = '"';
	key[pos++] = ':';
	mw_json_buf_append(out, key, pos);
}

int mw_audit_body_build(const struct mw_audit_event *ev,
			struct mw_json_buf *out, const char **error_r)
{
	char truncated[MW_AF_COUNT * 16];
	size_t tlen = 0, len, cut;
	bool first = true;
	int f;

	truncated[0] = '\0';
	for (f = 0; f < MW_AF_COUNT; f++) {
		const struct mw_audit_field_info *fi = &mw_audit_fields[f];
		bool usable = fi->class_ == MW_AUDIT_CLASS_EVENT &&
			f != MW_AF_TRUNCATED;

		if (ev->str[f] != NULL &&
		    (!usable || fi->type != MW_AUDIT_TYPE_STRING))
			return fail_static(error_r, "field %s cannot be set as "
					   "a string by a mail process", fi->name);
		if (ev->num_set[f] &&
		    (!usable || fi->type != MW_AUDIT_TYPE_U64))
			return fail_static(error_r, "field %s cannot be set as "
					   "a number by a mail process", fi->name);
	}
	if (ev->str[MW_AF_EVENT] == NULL)
		return fail_static(error_r, "event name missing");
	if (!mw_audit_event_name_valid(ev->str[MW_AF_EVENT]))
		return fail_static(error_r, "invalid event name");
	if (mw_audit_event_is_writer(ev->str[MW_AF_EVENT]))
		return fail_static(error_r, "event %s is reserved for the writer",
				   ev->str[MW_AF_EVENT]);

	for (f = MW_AF_SERVICE; f < MW_AF_TRUNCATED; f++) {
		if (ev->str[f] != NULL) {
			len = strlen(ev->str[f]);
			cut = mw_utf8_cut(ev->str[f], len,
					       MW_AUDIT_STR_MAX);
			append_key(out, &first, f);
			mw_json_append_string(out, ev->str[f], cut);
			if (cut < len) {
				tlen += (size_t)snprintf(truncated + tlen,
					sizeof(truncated) - tlen, "%s%s",
					tlen == 0 ? "" : ",",
					mw_audit_fields[f].name);
			}
		} else if (ev->num_set[f]) {
			append_key(out, &first, f);
			mw_json_buf_append_u64(out, ev->num[f]);
		}
	}
	if (tlen > 0) {
		append_key(out, &first, MW_AF_TRUNCATED);
		mw_json_append_string(out, truncated, tlen);
	}
	if (out->failed)
		return fail_static(error_r, "out of memory");
	return 0;
}

/* Checks the members of a parsed body: event fields only, in canonical
   order, with the right types; a valid event name that is not a writer
   event. */
static int body_fields_check(const struct mw_json_obj *obj,
			     const char **error_r)
{
	const struct mw_json_member *ev = NULL;
	unsigned int i;
	int f, last = -1;

	for (i = 0; i < obj->count; i++) {
		const struct mw_json_member *m = &obj->members[i];

		f = mw_audit_field_lookup(m->key);
		if (f < 0)
			return fail_static(error_r, "unknown field in body");
		if (mw_audit_fields[f].class_ != MW_AUDIT_CLASS_EVENT)
			return fail_static(error_r, "field %s not allowed in "
					   "a body", mw_audit_fields[f].name);
		if (f <= last)
			return fail_static(error_r, "field %s out of "
					   "canonical order",
					   mw_audit_fields[f].name);
		last = f;
		if (mw_audit_fields[f].type == MW_AUDIT_TYPE_STRING) {
			if (m->type != MW_JSON_STRING ||
			    m->str_len > MW_AUDIT_STR_MAX)
				return fail_static(error_r, "field %s: bad "
						   "string",
						   mw_audit_fields[f].name);
		} else if (m->type != MW_JSON_INT || m->negative) {
			return fail_static(error_r, "field %s: bad number",
					   mw_audit_fields[f].name);
		}
		if (f == MW_AF_EVENT)
			ev = m;
	}
	if (ev == NULL)
		return fail_static(error_r, "event missing in body");
	if (strlen(ev->str) != ev->str_len ||
	    !mw_audit_event_name_valid(ev->str) ||
	    mw_audit_event_is_writer(ev->str))
		return fail_static(error_r, "event name invalid or reserved");
	return 0;
}

/* canonical encoding: the body must be byte-identical to what the
   builder would produce from its values (tmp is scratch space) */
static int body_canonical_check(const struct mw_json_obj *obj,
				struct mw_json_buf *tmp, const char *body,
				size_t len, const char **error_r)
{
	unsigned int i;

	mw_json_buf_reset(tmp);
	for (i = 0; i < obj->count; i++) {
		if (i > 0)
			mw_json_buf_append(tmp, ",", 1);
		mw_json_member_serialize(&obj->members[i], tmp);
	}
	if (tmp->failed)
		return fail_static(error_r, "out of memory");
	if (tmp->len != len || memcmp(tmp->data, body, len) != 0)
		return fail_static(error_r, "body is not in canonical form");
	return 0;
}

int mw_audit_body_validate(const char *body, size_t len,
			   const char **error_r)
{
	/* the builder's bodies in one pass; the full check for the rest
	   (and every error message) */
	if (mw_audit_body_quick_valid(body, len))
		return 0;
	return mw_audit_body_validate_full(body, len, error_r);
}

int mw_audit_body_validate_full(const char *body, size_t len,
				const char **error_r)
{
	struct mw_json_obj obj;
	struct mw_json_buf tmp;
	const char *perror;
	int ret = -1;

	if (len == 0)
		return fail_static(error_r, "empty body");
	if (len > MW_AUDIT_BODY_MAX)
		return fail_static(error_r, "body longer than %u bytes",
				   MW_AUDIT_BODY_MAX);
	mw_json_obj_init(&obj);
	mw_json_buf_init(&tmp);
	mw_json_buf_append(&tmp, "{", 1);
	mw_json_buf_append(&tmp, body, len);
	mw_json_buf_append(&tmp, "}", 1);
	if (tmp.failed)
		fail_static(error_r, "out of memory");
	else if (mw_json_parse_object(&obj, tmp.data, tmp.len, &perror) < 0)
		fail_static(error_r, "body does not parse: %s", perror);
	else if (body_fields_check(&obj, error_r) == 0 &&
		 body_canonical_check(&obj, &tmp, body, len, error_r) == 0)
		ret = 0;
	mw_json_obj_free(&obj);
	mw_json_buf_free(&tmp);
	return ret;
}

/* --- record check --- */

static bool is_lower_hex(const char *s, size_t len, size_t want)
{
	return len == want && mw_hex_lower_len(s, len) == len;
}

static bool time_valid(const char *s, size_t len)
{
	static const char tmpl[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	size_t i;

	if (len != sizeof(tmpl) - 1)
		return false;
	for (i = 0; i < len; i++) {
		if (tmpl[i] == 'd') {
			if (s[i] < '0' || s[i] > '9')
				return false;
		} else if (s[i] != tmpl[i]) {
			return false;
		}
	}
	return true;
}

bool mw_audit_time_valid(const char *t, size_t len)
{
	return time_valid(t, len);
}

/* what the fields of a record are: by_field[f] is the member of field f
   or NULL */
struct record_fields {
	const struct mw_json_member *by_field[MW_AF_COUNT];
	unsigned int wmask;	/* WBIT()s of the writer fields */
	bool have_event_fields;	/* event fields other than "event" */
};

/* Indexes the members: known keys in canonical order, types. */
static int record_fields_index(const struct mw_json_obj *obj,
			       struct record_fields *rf,
			       const char **error_r)
{
	const struct mw_json_member *m;
	unsigned int i;
	int f, last = -1;

	memset(rf, 0, sizeof(*rf));
	for (i = 0; i < obj->count; i++) {
		m = &obj->members[i];
		f = mw_audit_field_lookup(m->key);
		if (f < 0)
			return fail_static(error_r, "unknown field");
		if (f <= last)
			return fail_static(error_r, "field %s out of canonical "
					   "order", m->key);
		last = f;
		rf->by_field[f] = m;
		if (mw_audit_fields[f].type == MW_AUDIT_TYPE_STRING) {
			if (m->type != MW_JSON_STRING)
				return fail_static(error_r, "field %s is not "
						   "a string", m->key);
			if (m->str_len > MW_AUDIT_STR_MAX)
				return fail_static(error_r, "field %s too long",
						   m->key);
		} else if (m->type != MW_JSON_INT || m->negative) {
			return fail_static(error_r, "field %s is not an "
					   "unsigned integer", m->key);
		}
		if (mw_audit_fields[f].class_ == MW_AUDIT_CLASS_WRITER)
			rf->wmask |= WBIT(f);
		if ((mw_audit_fields[f].class_ == MW_AUDIT_CLASS_EVENT &&
		     f != MW_AF_EVENT) ||
		    mw_audit_fields[f].class_ == MW_AUDIT_CLASS_SPOOL)
			rf->have_event_fields = true;
	}
	return 0;
}

/* The fields every record has, and their formats. */
static int record_common_check(const struct mw_json_member *const *by_field,
			       const char **error_r)
{
	const struct mw_json_member *m;

	if (by_field[MW_AF_SEQ] == NULL || by_field[MW_AF_TIME] == NULL ||
	    by_field[MW_AF_HOST] == NULL || by_field[MW_AF_EVENT] == NULL ||
	    by_field[MW_AF_EPOCH] == NULL || by_field[MW_AF_PREV] == NULL ||
	    by_field[MW_AF_MAC] == NULL)
		return fail_static(error_r, "required field missing");
	if (by_field[MW_AF_SEQ]->num == 0)
		return fail_static(error_r, "seq 0");
	if (by_field[MW_AF_EPOCH]->num > UINT32_MAX)
		return fail_static(error_r, "epoch out of range");
	if (!time_valid(by_field[MW_AF_TIME]->str, by_field[MW_AF_TIME]->str_len))
		return fail_static(error_r, "bad time format");
	if (by_field[MW_AF_HOST]->str_len == 0)
		return fail_static(error_r, "empty host");
	if ((by_field[MW_AF_DELAYED] == NULL) !=
	    (by_field[MW_AF_SPOOL] == NULL))
		return fail_static(error_r, "delayed without spool or "
				   "spool without delayed");
	if (by_field[MW_AF_DELAYED] != NULL &&
	    (!time_valid(by_field[MW_AF_DELAYED]->str,
			 by_field[MW_AF_DELAYED]->str_len) ||
	     by_field[MW_AF_SPOOL]->str_len == 0))
		return fail_static(error_r, "bad delayed/spool format");
	if (!is_lower_hex(by_field[MW_AF_PREV]->str,
			  by_field[MW_AF_PREV]->str_len, MW_AUDIT_HASH_HEX_LEN) ||
	    !is_lower_hex(by_field[MW_AF_MAC]->str,
			  by_field[MW_AF_MAC]->str_len, MW_AUDIT_HASH_HEX_LEN))
		return fail_static(error_r, "bad prev/mac format");
	m = by_field[MW_AF_EVENT];
	if (strlen(m->str) != m->str_len || !mw_audit_event_name_valid(m->str))
		return fail_static(error_r, "bad event name");
	return 0;
}

/* a hex field of a writer event, if present, has its length */
static bool hex_field_ok(const struct mw_json_member *m, size_t want)
{
	return m == NULL || is_lower_hex(m->str, m->str_len, want);
}

/* A writer event (writer_events[wi]): its fields and their formats. */
static int writer_event_check(const struct record_fields *rf, int wi,
			      const char *event, const char **error_r)
{
	const struct mw_json_member *const *by_field = rf->by_field;

	if (rf->have_event_fields)
		return fail_static(error_r, "event fields in writer "
				   "event %s", event);
	if ((rf->wmask & writer_events[wi].required) !=
	    writer_events[wi].required ||
	    (rf->wmask & ~(writer_events[wi].required |
			   writer_events[wi].optional)) != 0)
		return fail_static(error_r, "wrong fields for writer "
				   "event %s", event);
	if (!hex_field_ok(by_field[MW_AF_SIG], MW_AUDIT_SIG_HEX_LEN))
		return fail_static(error_r, "bad sig format");
	if (!hex_field_ok(by_field[MW_AF_ROOT], MW_AUDIT_HASH_HEX_LEN))
		return fail_static(error_r, "bad root format");
	if (!hex_field_ok(by_field[MW_AF_TORN_SHA256], MW_AUDIT_HASH_HEX_LEN))
		return fail_static(error_r, "bad torn_sha256 format");
	return 0;
}

int mw_audit_record_check(const struct mw_json_obj *obj, const char *line,
			  size_t len, struct mw_json_buf *scratch,
			  const char **error_r)
{
	struct record_fields rf;
	const char *event;
	int wi;

	if (record_fields_index(obj, &rf, error_r) < 0 ||
	    record_common_check(rf.by_field, error_r) < 0)
		return -1;
	event = rf.by_field[MW_AF_EVENT]->str;
	wi = writer_event_index(event);
	if (wi >= 0) {
		if (writer_event_check(&rf, wi, event, error_r) < 0)
			return -1;
	} else if (rf.wmask != 0) {
		return fail_static(error_r, "writer fields in event %s",
				   event);
	}

	mw_json_buf_reset(scratch);
	mw_json_obj_serialize(obj, scratch);
	if (scratch->failed)
		return fail_static(error_r, "out of memory");
	if (scratch->len != len || memcmp(scratch->data, line, len) != 0)
		return fail_static(error_r, "record is not in canonical form");
	return 0;
}
