#ifndef MW_POLICY_H
#define MW_POLICY_H

/* mailward settings and retrieval policy: parsing and validation.
   Dovecot-independent: the plugin glue passes a lookup callback that reads
   plugin {} settings and userdb fields. */

#include <stdbool.h>
#include <stddef.h>

enum mw_pop3_policy {
	MW_POP3_POLICY_CLIENT = 0,
	MW_POP3_POLICY_LEAVE_ON_SERVER,
	MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL,
	MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES,
};

/* What leaving a POP3 device's hands means for the server's copy
   (mailward_pop3_disposition). */
enum mw_pop3_disposition {
	MW_DISPOSITION_EXPUNGE = 0,	/* expunge it */
	MW_DISPOSITION_KEEP,		/* leave it as it is */
	MW_DISPOSITION_SEEN,		/* set \Seen, keep it in INBOX */
	MW_DISPOSITION_MOVE,		/* move it to disposition_mailbox */
};

enum mw_imap_expunge {
	MW_IMAP_EXPUNGE_ALLOW = 0,
	MW_IMAP_EXPUNGE_DENY,
};

/* Where a setting's value came from. */
enum mw_setting_source {
	MW_SOURCE_DEFAULT = 0,	/* built-in default */
	MW_SOURCE_CONFIG,	/* plugin {} in dovecot.conf */
	MW_SOURCE_USERDB,	/* userdb extra field */
	/* the state store's legal hold mark (mw_store_hold_mark_get()),
	   read by a session that started before the hold was set */
	MW_SOURCE_STORE_MARK,
};

/* Upper bounds of values an administrator can set. */
#define MW_DEVICE_LABEL_MAX 128
#define MW_DEVICE_MAX_LIMIT 1024
#define MW_DEVICE_NEW_LIMIT 65535
#define MW_INTERVAL_MAX (10U * 365 * 24 * 3600)
#define MW_DISPOSITION_MAILBOX_MAX 255

struct mw_settings {
	enum mw_pop3_policy pop3_policy;
	enum mw_setting_source pop3_policy_source;
	unsigned int expunge_delay_secs;
	/* what policy (and, under leave-on-server, DELE) does to the
	   server's copy; disposition_mailbox is set for MOVE only and
	   points into the lookup callback's memory (after "move:") */
	enum mw_pop3_disposition disposition;
	enum mw_setting_source disposition_source;
	const char *disposition_mailbox;
	/* RFC 2449 LOGIN-DELAY between POP3 logins of one device, 0 = none */
	unsigned int pop3_login_delay_secs;
	bool hold;
	enum mw_setting_source hold_source;
	enum mw_imap_expunge imap_expunge;
	bool imap_counts_as_retrieval;

	/* explicit device label (NULL when unset); points into the
	   lookup callback's memory */
	const char *device;
	/* NULL = default (home/mailward) */
	const char *state_dir;
	bool state_enabled;

	unsigned int device_max;
	unsigned int device_expire_secs;
	/* devices seen within this are never evicted, 0 = by age none */
	unsigned int device_protect_secs;
	/* new devices accepted per user and UTC day, 0 = unlimited */
	unsigned int device_new_per_day;

	unsigned int device_v4_prefix;
	unsigned int device_v6_prefix;
	/* hex HMAC key for device ids, NULL = generated key file */
	const char *device_key;

	/* audit writer socket path, NULL/empty = audit off */
	const char *audit_socket;
	/* directory where records the writer could not take wait for it
	   (relative: under base_dir), NULL/empty = none */
	const char *audit_spool;
	bool audit_required;
	/* full | network | pseudonym */
	const char *audit_remote;

	/* at least one setting was invalid: policy must not expunge */
	bool fail_safe;
};

/* One invalid setting, as reported to the administrator. */
struct mw_setting_error {
	const char *name;	/* setting name, static */
	const char *value;	/* the offending value (caller's memory) */
	const char *reason;	/* static text */
};

#define MW_SETTINGS_MAX_ERRORS 24

/* Looks up a setting: returns its value or NULL when unset, and sets
   *source_r to MW_SOURCE_CONFIG or MW_SOURCE_USERDB. An empty userdb
   field is returned as "" with MW_SOURCE_USERDB (Dovecot 2.3 reads it
   back as "yes": the lookup looks at the field itself), which
   mw_settings_read() reports as an invalid value of every setting. */
typedef const char *mw_setting_lookup_t(const char *name, void *context,
					enum mw_setting_source *source_r);

/* Reads and validates all mailward settings. Never fails: invalid values
   are listed in errors_r (at most MW_SETTINGS_MAX_ERRORS, count in
   *error_count_r), the affected setting keeps its safe default and
   set->fail_safe is set. String fields point into lookup's memory. */
void mw_settings_read(struct mw_settings *set, mw_setting_lookup_t *lookup,
		      void *context, struct mw_setting_error *errors_r,
		      unsigned int *error_count_r);

/* One setting mailward reads: its name and its default as the
   administrator would write it ("" = unset). */
struct mw_setting_def {
	const char *name;
	const char *default_text;
};

/* Every setting mailward reads (mw_settings_read() and the few read
   elsewhere), in the order of the sample configuration; ends with a
   { NULL, NULL } entry. tests/unit/test-policy.c checks that
   mw_settings_read() asks for no name missing here. */
extern const struct mw_setting_def mw_setting_defs[];

/* Returns true if name is a setting of mw_setting_defs. */
bool mw_setting_is_known(const char *name);

/* Parses a policy name. Returns 0 on success, -1 if unknown. */
int mw_pop3_policy_parse(const char *str, enum mw_pop3_policy *policy_r);
/* Returns the canonical name of a policy (static string). */
const char *mw_pop3_policy_name(enum mw_pop3_policy policy);
/* Parses a mailward_pop3_disposition value: "expunge", "keep", "seen" or
   "move:<mailbox>" (a name of 1..MW_DISPOSITION_MAILBOX_MAX bytes, no
   control characters, not INBOX). *mailbox_r points into str for move,
   else NULL. Returns 0 on success, -1 with *reason_r (static) on error. */
int mw_pop3_disposition_parse(const char *str,
			      enum mw_pop3_disposition *disposition_r,
			      const char **mailbox_r, const char **reason_r);
/* The action's name: "expunge", "keep", "seen" or "move" (static). */
const char *mw_pop3_disposition_name(enum mw_pop3_disposition disposition);
/* TRUE if the effective disposition of set ever expunges a message from
   INBOX (expunge or move). */
bool mw_pop3_disposition_removes(const struct mw_settings *set);

/* Returns the name of a setting source (static string). */
const char *mw_setting_source_name(enum mw_setting_source source);

/* Parses an interval: "0", "90" (seconds), "90s", "30m", "12h", "7d",
   "2w", up to MW_INTERVAL_MAX. Returns 0 on success, -1 on error. */
int mw_interval_parse(const char *str, unsigned int *secs_r);
/* Parses "yes"/"no" (Dovecot's booleans, case-insensitive).
   Returns 0 on success, -1 on error. */
int mw_bool_parse(const char *str, bool *value_r);
/* Parses a decimal unsigned integer in [min, max] with no trailing
   garbage. Returns 0 on success, -1 on error. */
int mw_uint_parse(const char *str, unsigned int min, unsigned int max,
		  unsigned int *value_r);

/* The RFC 2449 EXPIRE value for the effective policy, written to buf:
   "NEVER", "0" or a number of days (delay rounded up); "NEVER" also when
   the disposition never expunges (keep, seen, move). Returns false when
   CAPA should stay as Dovecot sends it (client policy). */
bool mw_pop3_expire_capability(const struct mw_settings *set,
			       char *buf, size_t bufsize);

#endif
