#ifndef MAILWARD_SETTINGS_H
#define MAILWARD_SETTINGS_H

/* Dovecot 2.4 only: mailward's settings as a setting_parser_info. The
   same file is built into the storage plugin and into the settings module
   lib20_mailward_settings.so, which Dovecot's config process loads from
   its modules/settings directory (it rejects undeclared keys otherwise).
   Every setting is a string with default "" (= not set): mailward parses
   the values itself (mw_settings_read), so one bad value makes only that
   setting fail safe, never the whole lookup (a login failure).
   A new mailward setting must be added to mailward-settings.c too. */

#include "lib.h"

#if DOVECOT_PREREQ(2, 4, 0)
struct setting_parser_info;

/* every field is the setting of the same name, "" when not set */
struct mailward_settings {
	pool_t pool;

	const char *mailward_pop3_policy;
	const char *mailward_expunge_delay;
	const char *mailward_hold;
	const char *mailward_imap_expunge;
	const char *mailward_imap_counts_as_retrieval;
	const char *mailward_device;
	const char *mailward_client_id;
	const char *mailward_state;
	const char *mailward_state_dir;
	const char *mailward_device_max;
	const char *mailward_device_expire;
	const char *mailward_device_protect;
	const char *mailward_device_new_per_day;

	const char *mailward_device_ipv4_prefix;
	const char *mailward_device_ipv6_prefix;
	const char *mailward_device_key;
	const char *mailward_audit_socket;
	const char *mailward_audit_required;
	const char *mailward_audit_remote;
	const char *mailward_audit_spool;
	const char *mailward_pop3_disposition;
	const char *mailward_pop3_login_delay;
#ifdef MAILWARD_FAULT_INJECTION
	const char *mailward_fault_inject;
#endif
};


extern const struct setting_parser_info mailward_setting_parser_info;

/* Returns the value of the setting name in set (a struct read with
   settings_get() and mailward_setting_parser_info), or NULL when it is
   empty (not set) or not a mailward setting. The string lives as long as
   set. */
const char *mailward_settings_find(const struct mailward_settings *set,
				   const char *name);
#endif

#endif
