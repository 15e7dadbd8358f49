/* Fuzzes settings parsing (mw-policy.c): mw_pop3_policy_parse,
   mw_interval_parse, mw_bool_parse, mw_uint_parse on the whole input, and
   mw_settings_read with fuzzed values for every setting.

   Input for mw_settings_read: byte 0 = bit mask of which settings come
   from userdb (others: config), then values separated by '\n' assigned
   to the settings in order; an empty value is unset (NULL), the byte
   sequence "\x01" alone stands for "" (an empty but set value). */

#include "fuzz-common.h"
#include "mw-policy.h"

#include <limits.h>

static const char *const setting_names[] = {
	"mailward_pop3_policy",
	"mailward_expunge_delay",
	"mailward_hold",
	"mailward_imap_expunge",
	"mailward_imap_counts_as_retrieval",
	"mailward_device",
	"mailward_state_dir",
	"mailward_state",
	"mailward_device_max",
	"mailward_device_expire",
	"mailward_device_ipv4_prefix",
	"mailward_device_ipv6_prefix",
	"mailward_device_key",
	"mailward_audit_socket",
	"mailward_audit_required",
	"mailward_audit_remote",
	"mailward_audit_spool",
	"mailward_pop3_disposition",
	"mailward_pop3_login_delay",
	"mailward_device_protect",
	"mailward_device_new_per_day",
};
#define N_SETTINGS (sizeof(setting_names) / sizeof(setting_names[0]))

struct lookup_ctx {
	char *values[N_SETTINGS];
	uint32_t userdb_mask;
	unsigned int lookups;
};

static const char *lookup(const char *name, void *context,
			  enum mw_setting_source *source_r)
{
	struct lookup_ctx *ctx = context;
	unsigned int i;

	ctx->lookups++;
	for (i = 0; i < N_SETTINGS; i++) {
		if (strcmp(name, setting_names[i]) == 0) {
			*source_r = (ctx->userdb_mask >> i) & 1 ?
				MW_SOURCE_USERDB : MW_SOURCE_CONFIG;
			return ctx->values[i];
		}
	}
	/* a setting this harness does not know: keep the list complete */
	fprintf(stderr, "unknown setting looked up: %s\n", name);
	abort();
}

static bool in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (strcmp(s, *list) == 0)
			return true;
	}
	return false;
}

static void check_settings(const struct mw_settings *set,
			   const struct mw_setting_error *errors,
			   unsigned int error_count, struct lookup_ctx *ctx)
{
	static const char *const remotes[] = {
		"full", "network", "pseudonym", NULL };
	char buf[32];
	unsigned int i;

	FUZZ_ASSERT(error_count <= MW_SETTINGS_MAX_ERRORS);
	if (error_count > 0)
		FUZZ_ASSERT(set->fail_safe);
	for (i = 0; i < error_count; i++) {
		FUZZ_ASSERT(errors[i].name != NULL);
		FUZZ_ASSERT(errors[i].reason != NULL);
		FUZZ_ASSERT(errors[i].value != NULL);
	}
	FUZZ_ASSERT((unsigned int)set->pop3_policy <=
		    MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES);
	FUZZ_ASSERT(set->expunge_delay_secs <= MW_INTERVAL_MAX);
	FUZZ_ASSERT(set->device_expire_secs <= MW_INTERVAL_MAX);
	FUZZ_ASSERT(set->device_protect_secs <= MW_INTERVAL_MAX);
	FUZZ_ASSERT(set->device_new_per_day <= MW_DEVICE_NEW_LIMIT);

	FUZZ_ASSERT(set->device_max >= 1 &&
		    set->device_max <= MW_DEVICE_MAX_LIMIT);
	FUZZ_ASSERT(set->device_v4_prefix <= 32);
	FUZZ_ASSERT(set->device_v6_prefix <= 128);
	FUZZ_ASSERT(set->audit_remote != NULL &&
		    in_list(set->audit_remote, remotes));
	if (set->device != NULL) {
		FUZZ_ASSERT(set->device[0] != '\0');
		FUZZ_ASSERT(strlen(set->device) <= MW_DEVICE_LABEL_MAX);
		/* C0 controls and DEL are refused (bytes >= 0x80 are
		   sanitized later, by the store) */
		for (const char *p = set->device; *p != '\0'; p++)
			FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	if (set->device_key != NULL)
		FUZZ_ASSERT(strlen(set->device_key) == 64);
	/* an invalid policy must never expunge */
	if (ctx->values[0] != NULL &&
	    mw_pop3_policy_parse(ctx->values[0],
				 &(enum mw_pop3_policy){0}) < 0) {
		FUZZ_ASSERT(set->fail_safe);
		FUZZ_ASSERT(set->pop3_policy ==
			    MW_POP3_POLICY_LEAVE_ON_SERVER);
	}
	/* leave-on-server never expunges; move names a mailbox */
	if (set->pop3_policy == MW_POP3_POLICY_LEAVE_ON_SERVER)
		FUZZ_ASSERT(set->disposition != MW_DISPOSITION_EXPUNGE);
	FUZZ_ASSERT((set->disposition == MW_DISPOSITION_MOVE) ==
		    (set->disposition_mailbox != NULL));
	if (set->disposition_mailbox != NULL) {
		FUZZ_ASSERT(set->disposition_mailbox[0] != '\0');
		FUZZ_ASSERT(strlen(set->disposition_mailbox) <=
			    MW_DISPOSITION_MAILBOX_MAX);
	}
	FUZZ_ASSERT(set->pop3_login_delay_secs <= MW_INTERVAL_MAX);
	(void)mw_pop3_disposition_name(set->disposition);
	(void)mw_pop3_policy_name(set->pop3_policy);
	(void)mw_setting_source_name(set->pop3_policy_source);
	(void)mw_setting_source_name(set->hold_source);
	for (i = 1; i <= sizeof(buf); i++) {
		memset(buf, 'X', sizeof(buf));
		if (mw_pop3_expire_capability(set, buf, i))
			FUZZ_ASSERT(memchr(buf, '\0', i) != NULL);
	}
	if (set->fail_safe || set->hold) {
		FUZZ_ASSERT(mw_pop3_expire_capability(set, buf, sizeof(buf)));
		FUZZ_ASSERT(strcmp(buf, "NEVER") == 0);
	}
}

static void fuzz_single_parsers(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	enum mw_pop3_policy policy;
	unsigned int secs, v, min, max, secs2;
	bool b;
	char tmp[16];

	if (mw_pop3_policy_parse(s, &policy) == 0)
		FUZZ_ASSERT(strcmp(mw_pop3_policy_name(policy), s) == 0);
	{
		enum mw_pop3_disposition disposition;
		const char *mailbox, *reason = NULL;

		if (mw_pop3_disposition_parse(s, &disposition, &mailbox,
					      &reason) == 0) {
			FUZZ_ASSERT(strncmp(s, mw_pop3_disposition_name(
				disposition), 4) == 0);
		} else
			FUZZ_ASSERT(reason != NULL);
	}
	if (mw_interval_parse(s, &secs) == 0) {
		FUZZ_ASSERT(secs <= MW_INTERVAL_MAX);
		/* plain seconds parse back to the same value */
		snprintf(tmp, sizeof(tmp), "%u", secs);
		FUZZ_ASSERT(mw_interval_parse(tmp, &secs2) == 0);
		FUZZ_ASSERT(secs2 == secs);
	}
	if (mw_bool_parse(s, &b) == 0)
		FUZZ_ASSERT(strlen(s) == (b ? 3 : 2));
	min = size > 0 ? data[0] : 0;
	max = size > 1 ? (unsigned int)data[1] * 1000 : UINT_MAX;
	if (mw_uint_parse(s, min, max, &v) == 0) {
		FUZZ_ASSERT(v >= min && v <= max);
		snprintf(tmp, sizeof(tmp), "%u", v);
		/* leading zeros are accepted, otherwise the text is v */
		FUZZ_ASSERT(strlen(s) >= strlen(tmp));
	}
	if (mw_uint_parse(s, 0, UINT_MAX, &v) == 0)
		FUZZ_ASSERT(strspn(s, "0123456789") == strlen(s));
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lookup_ctx ctx;
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int error_count = 12345, i;
	const uint8_t *p, *end, *nl;

	fuzz_single_parsers(data, size);

	memset(&ctx, 0, sizeof(ctx));
	p = data;
	end = data + size;
	if (p < end)
		ctx.userdb_mask = *p++;
	if (p < end)
		ctx.userdb_mask |= (uint32_t)*p++ << 8;
	for (i = 0; i < N_SETTINGS && p != NULL; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (nl - p == 1 && p[0] == 0x01)
			ctx.values[i] = fuzz_strndup(p, 0);
		else if (nl > p)
			ctx.values[i] = fuzz_strndup(p, (size_t)(nl - p));
		/* NULL after the last value */
		p = nl != end ? nl + 1 : NULL;
	}
	mw_settings_read(&set, lookup, &ctx, errors, &error_count);
	FUZZ_ASSERT(ctx.lookups >= N_SETTINGS);
	check_settings(&set, errors, error_count, &ctx);
	for (i = 0; i < N_SETTINGS; i++)
		free(ctx.values[i]);
	return 0;
}
