/* mailward POP3 plugin: POP3 session state (QUIT vs drop, RETR/TOP/DELE)
   and the RFC 2449 EXPIRE capability */

#include "lib.h"
#include "pop3-common.h"
#include "pop3-client.h"
#include "mailward-plugin.h"

#define POP3_MAILWARD_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3_mailward_module)

struct pop3_mailward_client {
	union pop3_module_context module_ctx;
};

const char *pop3_mailward_plugin_version = DOVECOT_ABI_VERSION;
const char *pop3_mailward_plugin_dependencies[] = { "mailward", NULL };
const char pop3_mailward_plugin_binary_dependency[] = "pop3";

void pop3_mailward_plugin_init(struct module *module);
void pop3_mailward_plugin_deinit(void);

static struct module *pop3_mailward_module_ptr;
static pop3_client_created_func_t *next_hook_client_created;
static MODULE_CONTEXT_DEFINE_INIT(pop3_mailward_module,
				  &pop3_module_register);

static void pop3_mailward_client_destroy(struct client *client,
					 const char *reason)
{
	struct pop3_mailward_client *mclient = POP3_MAILWARD_CONTEXT(client);

	mclient->module_ctx.super.destroy(client, reason);
}

static void pop3_mailward_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(client->user);

	if (muser != NULL &&
	    mail_user_is_plugin_loaded(client->user, pop3_mailward_module_ptr)) {
		struct pop3_mailward_client *mclient;

		mclient = p_new(client->pool, struct pop3_mailward_client, 1);
		mclient->module_ctx.super = client->v;
		client->v.destroy = pop3_mailward_client_destroy;
		MODULE_CONTEXT_SET(client, pop3_mailward_module, mclient);
		e_debug(muser->event, "pop3 session started");
	}
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void pop3_mailward_plugin_init(struct module *module)
{
	pop3_mailward_module_ptr = module;
	next_hook_client_created =
		pop3_client_created_hook_set(pop3_mailward_client_created);
}

void pop3_mailward_plugin_deinit(void)
{
	pop3_client_created_hook_set(next_hook_client_created);
}
