/* mailward storage plugin: settings, fail-safe, policy and state glue */

#include "lib.h"
#include "str.h"
#include "mail-user.h"
#include "mail-storage-private.h"
#include "mail-storage-hooks.h"
#include "mailward-plugin.h"

const char *mailward_plugin_version = DOVECOT_ABI_VERSION;

struct event_category event_category_mailward = {
	.name = "mailward",
};

struct mailward_user_module mailward_user_module =
	MODULE_CONTEXT_INIT(&mail_user_module_register);

static struct module *mailward_module;

static const char *
mailward_setting_lookup(const char *name, void *context,
			enum mw_setting_source *source_r)
{
	struct mail_user *user = context;
	const char *value;
	size_t name_len = strlen(name);
	unsigned int i;

	value = mail_user_plugin_getenv(user, name);
	if (value == NULL)
		return NULL;
	*source_r = MW_SOURCE_CONFIG;
	if (user->userdb_fields != NULL) {
		for (i = 0; user->userdb_fields[i] != NULL; i++) {
			const char *field = user->userdb_fields[i];

			if (strncmp(field, name, name_len) == 0 &&
			    (field[name_len] == '=' || field[name_len] == '\0')) {
				*source_r = MW_SOURCE_USERDB;
				break;
			}
		}
	}
	return value;
}

void mailward_user_set_fail_safe(struct mailward_user *muser,
				 const char *reason)
{
	if (!muser->fail_safe) {
		muser->fail_safe = TRUE;
		muser->fail_safe_reason = p_strdup(
			muser->user->pool, reason);
	}
	e_error(muser->event, "%s - session is fail-safe: "
		"policy expunges nothing", reason);
}

bool mailward_user_may_expunge(struct mailward_user *muser)
{
	return !muser->fail_safe && !muser->set.hold;
}

static void mailward_user_deinit(struct mail_user *user)
{
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(user);

	muser->module_ctx.super.deinit(user);
	event_unref(&muser->event);
}

static void mailward_mail_user_created(struct mail_user *user)
{
	struct mail_user_vfuncs *v = user->vlast;
	struct mailward_user *muser;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int i, error_count;

	if (user->autocreated) {
		/* raw user of LDA, owners of shared mailboxes: not a login */
		return;
	}

	muser = p_new(user->pool, struct mailward_user, 1);
	muser->module_ctx.super = *v;
	user->vlast = &muser->module_ctx.super;
	v->deinit = mailward_user_deinit;
	muser->user = user;
	MODULE_CONTEXT_SET(user, mailward_user_module, muser);

	muser->event = event_create(user->event);
	event_add_category(muser->event, &event_category_mailward);
	event_set_append_log_prefix(muser->event, "mailward: ");

	/* settings are read once, here: mail_user_plugin_getenv()
	   returns userdb fields before plugin {} settings */
	mw_settings_read(&muser->set, mailward_setting_lookup, user,
			 errors, &error_count);
	for (i = 0; i < error_count; i++) {
		e_error(muser->event,
			"Invalid setting %s=%s for user %s: %s",
			errors[i].name, errors[i].value, user->username,
			errors[i].reason);
	}
	if (error_count > 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"%u invalid setting(s) for user %s",
			error_count, user->username));
	}
	/* the settings strings point into user's settings memory, which
	   lives as long as the user; copy them anyway to be independent */
	muser->set.device = p_strdup(user->pool, muser->set.device);
	muser->set.state_dir = p_strdup(user->pool, muser->set.state_dir);
	muser->set.device_key = p_strdup(user->pool, muser->set.device_key);
	muser->set.audit_socket = p_strdup(user->pool, muser->set.audit_socket);
	muser->set.audit_remote = p_strdup(user->pool, muser->set.audit_remote);

	e_debug(muser->event, "user %s service %s: pop3_policy=%s (%s) "
		"expunge_delay=%us hold=%s (%s) imap_expunge=%s",
		user->username, user->service,
		mw_pop3_policy_name(muser->set.pop3_policy),
		mw_setting_source_name(muser->set.pop3_policy_source),
		muser->set.expunge_delay_secs,
		muser->set.hold ? "yes" : "no",
		mw_setting_source_name(muser->set.hold_source),
		muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		"deny" : "allow");
}

static struct mail_storage_hooks mailward_mail_storage_hooks = {
	.mail_user_created = mailward_mail_user_created,
};

void mailward_plugin_init(struct module *module)
{
	mailward_module = module;
	mail_storage_hooks_add(module, &mailward_mail_storage_hooks);
}

void mailward_plugin_deinit(void)
{
	mail_storage_hooks_remove(&mailward_mail_storage_hooks);
}
