/* mailward settings parsing: see mw-policy.h */

#include "mw-policy.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const pop3_policy_names[] = {
	[MW_POP3_POLICY_CLIENT] = "client",
	[MW_POP3_POLICY_LEAVE_ON_SERVER] = "leave-on-server",
	[MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL] = "expunge-after-retrieval",
	[MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES] = "expunge-after-all-devices",
};

const struct mw_setting_def mw_setting_defs[] = {
	{ "mailward_pop3_policy", "client" },
	{ "mailward_pop3_disposition", "" },
	{ "mailward_expunge_delay", "0" },
	{ "mailward_pop3_login_delay", "0" },
	{ "mailward_hold", "no" },
	{ "mailward_imap_expunge", "allow" },
	{ "mailward_imap_counts_as_retrieval", "yes" },
	{ "mailward_device", "" },
	{ "mailward_client_id", "" },
	{ "mailward_state", "yes" },
	{ "mailward_state_dir", "" },
	{ "mailward_device_max", "32" },
	{ "mailward_device_expire", "180d" },
	{ "mailward_device_protect", "7d" },
	{ "mailward_device_new_per_day", "32" },
	{ "mailward_device_ipv4_prefix", "24" },
	{ "mailward_device_ipv6_prefix", "64" },
	{ "mailward_device_key", "" },
	{ "mailward_audit_socket", "" },
	{ "mailward_audit_spool", "" },
	{ "mailward_audit_required", "no" },
	{ "mailward_audit_remote", "full" },
	/* test builds only (--enable-fault-injection) */
	{ "mailward_fault_inject", "" },
	{ NULL, NULL }
};

bool mw_setting_is_known(const char *name)
{
	unsigned int i;

	for (i = 0; mw_setting_defs[i].name != NULL; i++) {
		if (strcmp(mw_setting_defs[i].name, name) == 0)
			return true;
	}
	return false;
}

int mw_pop3_policy_parse(const char *str, enum mw_pop3_policy *policy_r)
{
	unsigned int i;

	for (i = 0; i < sizeof(pop3_policy_names)/sizeof(pop3_policy_names[0]); i++) {
		if (strcmp(str, pop3_policy_names[i]) == 0) {
			*policy_r = (enum mw_pop3_policy)i;
			return 0;
		}
	}
	return -1;
}

const char *mw_pop3_policy_name(enum mw_pop3_policy policy)
{
	if ((unsigned int)policy >=
	    sizeof(pop3_policy_names)/sizeof(pop3_policy_names[0]))
		return "unknown";
	return pop3_policy_names[policy];
}

static const char *const disposition_names[] = {
	[MW_DISPOSITION_EXPUNGE] = "expunge",
	[MW_DISPOSITION_KEEP] = "keep",
	[MW_DISPOSITION_SEEN] = "seen",
	[MW_DISPOSITION_MOVE] = "move",
};

int mw_pop3_disposition_parse(const char *str,
			      enum mw_pop3_disposition *disposition_r,
			      const char **mailbox_r, const char **reason_r)
{
	const char *name, *p;

	*mailbox_r = NULL;
	if (strcmp(str, "expunge") == 0)
		*disposition_r = MW_DISPOSITION_EXPUNGE;
	else if (strcmp(str, "keep") == 0)
		*disposition_r = MW_DISPOSITION_KEEP;
	else if (strcmp(str, "seen") == 0)
		*disposition_r = MW_DISPOSITION_SEEN;
	else if (strncmp(str, "move:", 5) == 0) {
		name = str + 5;
		if (*name == '\0') {
			*reason_r = "move: needs a mailbox name (move:Archive)";
			return -1;
		}
		if (strlen(name) > MW_DISPOSITION_MAILBOX_MAX) {
			*reason_r = "mailbox name too long (at most 255 bytes)";
			return -1;
		}
		for (p = name; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				*reason_r = "control characters are not allowed "
					"in the mailbox name";
				return -1;
			}
		}
		if (strcasecmp(name, "INBOX") == 0) {
			*reason_r = "the destination cannot be INBOX itself";
			return -1;
		}
		*disposition_r = MW_DISPOSITION_MOVE;
		*mailbox_r = name;
	} else {
		*reason_r = "expected expunge, keep, seen or move:<mailbox>";
		return -1;
	}
	return 0;
}

const char *mw_pop3_disposition_name(enum mw_pop3_disposition disposition)
{
	if ((unsigned int)disposition >=
	    sizeof(disposition_names)/sizeof(disposition_names[0]))
		return "unknown";
	return disposition_names[disposition];
}

bool mw_pop3_disposition_removes(const struct mw_settings *set)
{
	return set->disposition == MW_DISPOSITION_EXPUNGE ||
		set->disposition == MW_DISPOSITION_MOVE;
}

const char *mw_setting_source_name(enum mw_setting_source source)
{
	switch (source) {
	case MW_SOURCE_DEFAULT:
		return "default";
	case MW_SOURCE_CONFIG:
		return "config";
	case MW_SOURCE_USERDB:
		return "userdb";
	case MW_SOURCE_STORE_MARK:
		return "state_store_mark";
	}
	return "unknown";
}

int mw_uint_parse(const char *str, unsigned int min, unsigned int max,
		  unsigned int *value_r)
{
	unsigned long long n = 0;
	const char *p;

	if (str == NULL || *str == '\0')
		return -1;
	for (p = str; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		n = n * 10 + (unsigned int)(*p - '0');
		if (n > UINT_MAX)
			return -1;
	}
	if (n < min || n > max)
		return -1;
	*value_r = (unsigned int)n;
	return 0;
}

int mw_interval_parse(const char *str, unsigned int *secs_r)
{
	unsigned long long n = 0, mult = 1;
	const char *p = str;

	if (str == NULL || *p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned int)(*p - '0');
		if (n > MW_INTERVAL_MAX)
			return -1;
	}
	if (*p != '\0') {
		switch (*p) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		case 'w': mult = 7 * 86400; break;
		default:
			return -1;
		}
		if (p[1] != '\0')
			return -1;
	}
	if (n * mult > MW_INTERVAL_MAX)
		return -1;
	*secs_r = (unsigned int)(n * mult);
	return 0;
}

int mw_bool_parse(const char *str, bool *value_r)
{
	if (str == NULL)
		return -1;
	if (strcasecmp(str, "yes") == 0) {
		*value_r = true;
		return 0;
	}
	if (strcasecmp(str, "no") == 0) {
		*value_r = false;
		return 0;
	}
	return -1;
}

struct settings_reader {
	mw_setting_lookup_t *lookup;
	void *context;
	struct mw_settings *set;
	struct mw_setting_error *errors;
	unsigned int error_count;
};

static const char *
reader_get(struct settings_reader *r, const char *name,
	   enum mw_setting_source *source_r)
{
	enum mw_setting_source source = MW_SOURCE_CONFIG;
	const char *value;

	value = r->lookup(name, r->context, &source);
	if (value == NULL) {
		if (source_r != NULL)
			*source_r = MW_SOURCE_DEFAULT;
		return NULL;
	}
	if (source_r != NULL)
		*source_r = source;
	return value;
}

static void
reader_error(struct settings_reader *r, const char *name, const char *value,
	     const char *reason)
{
	r->set->fail_safe = true;
	if (r->error_count >= MW_SETTINGS_MAX_ERRORS)
		return;
	r->errors[r->error_count].name = name;
	r->errors[r->error_count].value = value;
	r->errors[r->error_count].reason = reason;
	r->error_count++;
}

static void
read_bool(struct settings_reader *r, const char *name, bool *value,
	  enum mw_setting_source *source_r)
{
	const char *str = reader_get(r, name, source_r);

	if (str != NULL && mw_bool_parse(str, value) < 0)
		reader_error(r, name, str, "expected yes or no");
}

static void
read_interval(struct settings_reader *r, const char *name, unsigned int *value)
{
	const char *str = reader_get(r, name, NULL);

	if (str != NULL && mw_interval_parse(str, value) < 0) {
		reader_error(r, name, str,
			     "expected an interval such as 0, 30m, 12h or 7d "
			     "(at most 10 years)");
	}
}

static void
read_uint(struct settings_reader *r, const char *name, unsigned int min,
	  unsigned int max, const char *reason, unsigned int *value)
{
	const char *str = reader_get(r, name, NULL);

	if (str != NULL && mw_uint_parse(str, min, max, value) < 0)
		reader_error(r, name, str, reason);
}

/* A string setting. An empty value from the configuration means unset;
   an empty userdb field is an invalid value (the lookup passes it as "",
   see mw_setting_lookup_t), and so is "yes", which is what Dovecot 2.3
   reads an empty field back as and never a meaningful path, label or
   key. */
static const char *
read_string(struct settings_reader *r, const char *name, size_t max_len)
{
	enum mw_setting_source source;
	const char *str = reader_get(r, name, &source);
	const char *p;

	if (str != NULL && *str == '\0' && source == MW_SOURCE_USERDB) {
		reader_error(r, name, str, "empty userdb field");
		return NULL;
	}
	if (str == NULL || *str == '\0')
		return NULL;
	if (strcmp(str, "yes") == 0) {
		reader_error(r, name, str,
			     "empty userdb field (Dovecot reads it as \"yes\")");
		return NULL;
	}
	if (strlen(str) > max_len) {
		reader_error(r, name, str, "value too long");
		return NULL;
	}
	for (p = str; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			reader_error(r, name, str,
				     "control characters are not allowed");
			return NULL;
		}
	}
	return str;
}

static void settings_set_defaults(struct mw_settings *set)
{
	memset(set, 0, sizeof(*set));
	set->pop3_policy = MW_POP3_POLICY_CLIENT;
	set->imap_expunge = MW_IMAP_EXPUNGE_ALLOW;
	set->imap_counts_as_retrieval = true;
	set->state_enabled = true;
	set->device_max = 32;
	set->device_expire_secs = 180 * 86400;
	set->device_protect_secs = 7 * 86400;
	set->device_new_per_day = 32;
	set->device_v4_prefix = 24;
	set->device_v6_prefix = 64;
}

/* mailward_pop3_policy, mailward_expunge_delay, mailward_pop3_disposition */
static void read_retrieval_policy(struct settings_reader *r)
{
	struct mw_settings *set = r->set;
	const char *str, *reason;

	str = reader_get(r, "mailward_pop3_policy", &set->pop3_policy_source);
	if (str != NULL && mw_pop3_policy_parse(str, &set->pop3_policy) < 0) {
		reader_error(r, "mailward_pop3_policy", str,
			     "expected client, leave-on-server, "
			     "expunge-after-retrieval or expunge-after-all-devices");
		/* fail-safe: DELE behaves as leave-on-server */
		set->pop3_policy = MW_POP3_POLICY_LEAVE_ON_SERVER;
	}
	read_interval(r, "mailward_expunge_delay", &set->expunge_delay_secs);

	/* default: keep under leave-on-server (DELE never expunges), expunge
	   where the policy expunges */
	set->disposition = set->pop3_policy == MW_POP3_POLICY_LEAVE_ON_SERVER ?
		MW_DISPOSITION_KEEP : MW_DISPOSITION_EXPUNGE;
	str = reader_get(r, "mailward_pop3_disposition",
			 &set->disposition_source);
	if (str == NULL)
		return;
	if (mw_pop3_disposition_parse(str, &set->disposition,
				      &set->disposition_mailbox,
				      &reason) < 0) {
		reader_error(r, "mailward_pop3_disposition", str, reason);
		/* fail-safe: the server's copy stays as it is */
		set->disposition = MW_DISPOSITION_KEEP;
		set->disposition_mailbox = NULL;
	} else if (set->disposition == MW_DISPOSITION_EXPUNGE &&
		   set->pop3_policy == MW_POP3_POLICY_LEAVE_ON_SERVER) {
		reader_error(r, "mailward_pop3_disposition", str,
			     "expunge contradicts "
			     "mailward_pop3_policy=leave-on-server "
			     "(which never expunges): use keep, seen "
			     "or move:<mailbox>, or another policy");
		set->disposition = MW_DISPOSITION_KEEP;
	}
}

/* mailward_pop3_login_delay, mailward_hold, mailward_imap_expunge,
   mailward_imap_counts_as_retrieval */
static void read_access(struct settings_reader *r)
{
	struct mw_settings *set = r->set;
	const char *str;

	read_interval(r, "mailward_pop3_login_delay",
		      &set->pop3_login_delay_secs);
	str = reader_get(r, "mailward_hold", &set->hold_source);
	if (str != NULL && mw_bool_parse(str, &set->hold) < 0) {
		reader_error(r, "mailward_hold", str, "expected yes or no");
		/* an unreadable hold is treated as a hold */
		set->hold = true;
	}

	str = reader_get(r, "mailward_imap_expunge", NULL);
	if (str != NULL) {
		if (strcmp(str, "allow") == 0)
			set->imap_expunge = MW_IMAP_EXPUNGE_ALLOW;
		else if (strcmp(str, "deny") == 0)
			set->imap_expunge = MW_IMAP_EXPUNGE_DENY;
		else {
			reader_error(r, "mailward_imap_expunge", str,
				     "expected allow or deny");
			set->imap_expunge = MW_IMAP_EXPUNGE_DENY;
		}
	}
	read_bool(r, "mailward_imap_counts_as_retrieval",
		  &set->imap_counts_as_retrieval, NULL);
}

/* the device and state store settings */
static void read_devices(struct settings_reader *r)
{
	struct mw_settings *set = r->set;
	const char *p;
	bool ok;

	set->device = read_string(r, "mailward_device", MW_DEVICE_LABEL_MAX);
	set->state_dir = read_string(r, "mailward_state_dir", 4096);
	read_bool(r, "mailward_state", &set->state_enabled, NULL);
	read_uint(r, "mailward_device_max", 1, MW_DEVICE_MAX_LIMIT,
		  "expected a number of devices from 1 to 1024",
		  &set->device_max);
	read_interval(r, "mailward_device_expire", &set->device_expire_secs);
	read_interval(r, "mailward_device_protect",
		      &set->device_protect_secs);
	read_uint(r, "mailward_device_new_per_day", 0, MW_DEVICE_NEW_LIMIT,
		  "expected a number of new devices per day from 0 "
		  "(unlimited) to 65535", &set->device_new_per_day);

	read_uint(r, "mailward_device_ipv4_prefix", 0, 32,
		  "expected a prefix length from 0 to 32",
		  &set->device_v4_prefix);
	read_uint(r, "mailward_device_ipv6_prefix", 0, 128,
		  "expected a prefix length from 0 to 128",
		  &set->device_v6_prefix);
	set->device_key = read_string(r, "mailward_device_key", 128);
	if (set->device_key == NULL)
		return;
	ok = strlen(set->device_key) == 64;
	for (p = set->device_key; ok && *p != '\0'; p++)
		ok = isxdigit((unsigned char)*p) != 0;
	if (!ok) {
		reader_error(r, "mailward_device_key", set->device_key,
			     "expected 64 hex digits (32 bytes)");
		set->device_key = NULL;
	}
}

/* the audit settings of mail processes */
static void read_audit(struct settings_reader *r)
{
	struct mw_settings *set = r->set;
	const char *str;

	set->audit_socket = read_string(r, "mailward_audit_socket", 1024);
	set->audit_spool = read_string(r, "mailward_audit_spool", 1024);
	read_bool(r, "mailward_audit_required", &set->audit_required, NULL);
	str = reader_get(r, "mailward_audit_remote", NULL);
	set->audit_remote = "full";
	if (str == NULL)
		return;
	if (strcmp(str, "full") == 0 || strcmp(str, "network") == 0 ||
	    strcmp(str, "pseudonym") == 0)
		set->audit_remote = str;
	else {
		reader_error(r, "mailward_audit_remote", str,
			     "expected full, network or pseudonym");
		set->audit_remote = "pseudonym";
	}
}

void mw_settings_read(struct mw_settings *set, mw_setting_lookup_t *lookup,
		      void *context, struct mw_setting_error *errors_r,
		      unsigned int *error_count_r)
{
	struct settings_reader r;

	settings_set_defaults(set);
	memset(&r, 0, sizeof(r));
	r.lookup = lookup;
	r.context = context;
	r.set = set;
	r.errors = errors_r;

	read_retrieval_policy(&r);
	read_access(&r);
	read_devices(&r);
	read_audit(&r);
	*error_count_r = r.error_count;
}

bool mw_pop3_expire_capability(const struct mw_settings *set,
			       char *buf, size_t bufsize)
{
	unsigned int days;

	if (set->pop3_policy == MW_POP3_POLICY_CLIENT && !set->hold &&
	    !set->fail_safe)
		return false;
	if (set->hold || set->fail_safe ||
	    set->disposition != MW_DISPOSITION_EXPUNGE) {
		/* keep, seen, move: nothing is ever expunged from the
		   maildrop because it was retrieved */
		snprintf(buf, bufsize, "NEVER");
		return true;
	}
	switch (set->pop3_policy) {
	case MW_POP3_POLICY_CLIENT:
		return false;
	case MW_POP3_POLICY_LEAVE_ON_SERVER:
		snprintf(buf, bufsize, "NEVER");
		return true;
	case MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL:
	case MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES:
		/* all-devices: the retrieving device may be the last one,
		   so no device can count on the server keeping a copy */
		days = (set->expunge_delay_secs + 86399) / 86400;
		snprintf(buf, bufsize, "%u", days);
		return true;
	}
	return false;
}
