/* mailward IMAP plugin: RFC 2971 ID for device identity and
   command-level state and policy events */

#include "imap-common.h"
#include "imap-client.h"
#include "mailward-plugin.h"

const char *imap_mailward_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_mailward_plugin_dependencies[] = { "mailward", NULL };
const char imap_mailward_plugin_binary_dependency[] = "imap";

void imap_mailward_plugin_init(struct module *module);
void imap_mailward_plugin_deinit(void);

static struct module *imap_mailward_module_ptr;
static imap_client_created_func_t *next_hook_client_created;

static void imap_mailward_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(client->user);

	if (muser != NULL &&
	    mail_user_is_plugin_loaded(client->user, imap_mailward_module_ptr))
		e_debug(muser->event, "imap session started");
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void imap_mailward_plugin_init(struct module *module)
{
	imap_mailward_module_ptr = module;
	next_hook_client_created =
		imap_client_created_hook_set(imap_mailward_client_created);
}

void imap_mailward_plugin_deinit(void)
{
	imap_client_created_hook_set(next_hook_client_created);
}
