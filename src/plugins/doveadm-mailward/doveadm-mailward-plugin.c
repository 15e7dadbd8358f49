/* doveadm mailward commands */

#include "lib.h"
#include "module-dir.h"
#include "mail-user.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "mailward-plugin.h"

const char *doveadm_mailward_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_mailward_plugin_init(struct module *module);
void doveadm_mailward_plugin_deinit(void);

static struct mailward_user *
cmd_mailward_get_user(struct doveadm_mail_cmd_context *ctx,
		      struct mail_user *user)
{
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(user);

	if (muser == NULL) {
		i_error("mailward plugin is not loaded for user %s "
			"(add mailward to mail_plugins)", user->username);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_NOTFOUND);
	}
	return muser;
}

/* doveadm mailward settings -u USER: the effective settings and where
   they came from */
static int
cmd_mailward_settings_run(struct doveadm_mail_cmd_context *ctx,
			  struct mail_user *user)
{
	struct mailward_user *muser = cmd_mailward_get_user(ctx, user);
	const struct mw_settings *set;

	if (muser == NULL)
		return -1;
	set = &muser->set;
	doveadm_print(user->username);
	doveadm_print(mw_pop3_policy_name(set->pop3_policy));
	doveadm_print(mw_setting_source_name(set->pop3_policy_source));
	doveadm_print(dec2str(set->expunge_delay_secs));
	doveadm_print(set->hold ? "yes" : "no");
	doveadm_print(set->imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		      "deny" : "allow");
	doveadm_print(set->device == NULL ? "" : set->device);
	doveadm_print(muser->fail_safe ? "yes" : "no");
	doveadm_print(muser->fail_safe_reason == NULL ? "" :
		      muser->fail_safe_reason);
	return 0;
}

static void
cmd_mailward_settings_init(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			   const char *const args[] ATTR_UNUSED)
{
	doveadm_print_header_simple("user");
	doveadm_print_header_simple("pop3_policy");
	doveadm_print_header_simple("pop3_policy_source");
	doveadm_print_header_simple("expunge_delay");
	doveadm_print_header_simple("hold");
	doveadm_print_header_simple("imap_expunge");
	doveadm_print_header_simple("device");
	doveadm_print_header_simple("fail_safe");
	doveadm_print_header_simple("fail_safe_reason");
}

static struct doveadm_mail_cmd_context *cmd_mailward_settings_alloc(void)
{
	struct doveadm_mail_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct doveadm_mail_cmd_context);
	ctx->v.init = cmd_mailward_settings_init;
	ctx->v.run = cmd_mailward_settings_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return ctx;
}

static struct doveadm_cmd_ver2 mailward_commands[] = {
	{
		.name = "mailward settings",
		.usage = "[-u <user>|-A] [-S <socket_path>]",
		.mail_cmd = cmd_mailward_settings_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
	},
};

void doveadm_mailward_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	/* referencing the storage plugin makes this module load only once
	   lib20_mailward_plugin.so is loaded (doveadm retries quietly) */
	(void)mailward_user_module.id;
	for (i = 0; i < N_ELEMENTS(mailward_commands); i++)
		doveadm_cmd_register_ver2(&mailward_commands[i]);
}

void doveadm_mailward_plugin_deinit(void)
{
}
