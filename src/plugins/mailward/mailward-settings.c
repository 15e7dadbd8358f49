/* mailward settings for Dovecot 2.4 (see mailward-settings.h) */

#include "lib.h"
#include "mailward-settings.h"

#if DOVECOT_PREREQ(2, 4, 0)
#include "settings-parser.h"

#undef DEF
#define DEF(name) \
	SETTING_DEFINE_STRUCT_STR(#name, name, struct mailward_settings)
static const struct setting_define mailward_setting_defines[] = {
	DEF(mailward_pop3_policy),
	DEF(mailward_expunge_delay),
	DEF(mailward_hold),
	DEF(mailward_imap_expunge),
	DEF(mailward_imap_counts_as_retrieval),
	DEF(mailward_device),
	DEF(mailward_client_id),
	DEF(mailward_state),
	DEF(mailward_state_dir),
	DEF(mailward_device_max),
	DEF(mailward_device_expire),
	DEF(mailward_device_protect),
	DEF(mailward_device_new_per_day),
	DEF(mailward_device_ipv4_prefix),
	DEF(mailward_device_ipv6_prefix),
	DEF(mailward_device_key),
	DEF(mailward_audit_socket),
	DEF(mailward_audit_required),
	DEF(mailward_audit_remote),
	DEF(mailward_audit_spool),
	DEF(mailward_pop3_disposition),
	DEF(mailward_pop3_login_delay),
#ifdef MAILWARD_FAULT_INJECTION
	DEF(mailward_fault_inject),
#endif
	SETTING_DEFINE_LIST_END
};

static const struct mailward_settings mailward_default_settings = {
	.mailward_pop3_policy = "",
	.mailward_expunge_delay = "",
	.mailward_hold = "",
	.mailward_imap_expunge = "",
	.mailward_imap_counts_as_retrieval = "",
	.mailward_device = "",
	.mailward_client_id = "",
	.mailward_state = "",
	.mailward_state_dir = "",
	.mailward_device_max = "",
	.mailward_device_expire = "",
	.mailward_device_protect = "",
	.mailward_device_new_per_day = "",

	.mailward_device_ipv4_prefix = "",
	.mailward_device_ipv6_prefix = "",
	.mailward_device_key = "",
	.mailward_audit_socket = "",
	.mailward_audit_required = "",
	.mailward_audit_remote = "",
	.mailward_audit_spool = "",
	.mailward_pop3_disposition = "",
	.mailward_pop3_login_delay = "",
#ifdef MAILWARD_FAULT_INJECTION
	.mailward_fault_inject = "",
#endif
};

const struct setting_parser_info mailward_setting_parser_info = {
	.name = "mailward",
	.defines = mailward_setting_defines,
	.defaults = &mailward_default_settings,
	.struct_size = sizeof(struct mailward_settings),
	.pool_offset1 = 1 + offsetof(struct mailward_settings, pool),
};

/* the config process looks these up in lib20_mailward_settings.so */
extern const char *mailward_settings_version;
const char *mailward_settings_version = DOVECOT_ABI_VERSION;
extern const struct setting_parser_info *mailward_settings_set_infos[];
const struct setting_parser_info *mailward_settings_set_infos[] = {
	&mailward_setting_parser_info,
	NULL
};

const char *mailward_settings_find(const struct mailward_settings *set,
				   const char *name)
{
	const struct setting_define *def;
	const char *value;

	for (def = mailward_setting_defines; def->key != NULL; def++) {
		if (def->type == SET_STR && strcmp(def->key, name) == 0) {
			value = *(const char *const *)
				CONST_PTR_OFFSET(set, def->offset);
			return value == NULL || value[0] == '\0' ?
				NULL : value;
		}
	}
	return NULL;
}
#endif
