#ifndef MAILWARD_PLUGIN_H
#define MAILWARD_PLUGIN_H

/* The storage plugin's interface to mailward's protocol and doveadm
   plugins. Everything here is valid for the mail_user's lifetime. */

#include "module-context.h"
#include "mail-user.h"
#include "mw-policy.h"

#define MAILWARD_USER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_user_module)

struct mailward_user {
	union mail_user_module_context module_ctx;
	struct mail_user *user;

	/* child of user->event: category "mailward", prefix "mailward: " */
	struct event *event;
	struct mw_settings set;

	/* Policy must not expunge anything in this session (invalid
	   setting, state store error, audit failure). Never cleared once
	   set. */
	bool fail_safe;
	/* first reason for fail_safe, for logs and doveadm */
	const char *fail_safe_reason;
};

extern MODULE_CONTEXT_DEFINE(mailward_user_module, &mail_user_module_register);
extern struct event_category event_category_mailward;

/* Puts the session into fail-safe mode (policy expunges nothing) and logs
   the reason as an error, once per reason. */
void mailward_user_set_fail_safe(struct mailward_user *muser,
				 const char *reason);
/* Returns TRUE if policy may expunge in this session. */
bool mailward_user_may_expunge(struct mailward_user *muser);

void mailward_plugin_init(struct module *module);
void mailward_plugin_deinit(void);

#endif
