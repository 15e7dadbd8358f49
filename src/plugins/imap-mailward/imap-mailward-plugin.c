/* mailward IMAP plugin: RFC 2971 ID for device identity and
   command-level state (one LMDB write transaction per command); which
   fetches count as retrieval: imap-mailward-fetch.c */

#include "imap-common.h"
#include "ioloop.h"
#include "imap-client.h"
#include "imap-commands.h"
#include "imap-mailward-private.h"

const char *imap_mailward_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_mailward_plugin_dependencies[] = { "mailward", NULL };
const char imap_mailward_plugin_binary_dependency[] = "imap";

void imap_mailward_plugin_init(struct module *module);
void imap_mailward_plugin_deinit(void);

/* the state block carrying the session's ID across hibernation */
#define IMAP_MAILWARD_STATE_ID "mailward-id\n"

struct imap_mailward_imap_module imap_mailward_imap_module =
	MODULE_CONTEXT_INIT(&imap_module_register);
static struct module *imap_mailward_module_ptr;
static imap_client_created_func_t *next_hook_client_created;

struct mailward_user *imap_mailward_user(struct client *client)
{
	struct imap_mailward_client *mclient = IMAP_MAILWARD_CONTEXT(client);

	/* set up with the client: no mail_user_is_plugin_loaded() (~1,500
	   instructions) twice per command */
	if (mclient != NULL)
		return mclient->muser;
	if (client->user == NULL ||
	    !mail_user_is_plugin_loaded(client->user, imap_mailward_module_ptr))
		return NULL;
	return mailward_user_get(client->user);
}

static bool imap_mailward_is_sync_cmd(const char *name)
{
	return strcmp(name, "SELECT") == 0 || strcmp(name, "EXAMINE") == 0 ||
		strcmp(name, "FETCH") == 0 || strcmp(name, "UID FETCH") == 0 ||
		strcmp(name, "NOOP") == 0 || strcmp(name, "IDLE") == 0 ||
		strcmp(name, "CHECK") == 0;
}

static void imap_mailward_cmd_pre(struct client_command_context *cmd ATTR_UNUSED)
{
	/* nothing before a command: the device is not resolved by the
	   first command but by ID or when something must be recorded */
}

static void imap_mailward_cmd_post(struct client_command_context *cmd)
{
	struct client *client = cmd->client;
	struct mailward_user *muser;

	/* the post hook may run several times for one command; act only
	   once the tagged reply has been sent */
	if (cmd->tagline_reply == NULL || cmd->name == NULL)
		return;
	muser = imap_mailward_user(client);
	if (muser == NULL)
		return;
	T_BEGIN {
		if (strcmp(cmd->name, "ID") == 0) {
			struct imap_mailward_client *mclient =
				IMAP_MAILWARD_CONTEXT(client);

			mailward_imap_id(muser, cmd->args);
			/* kept for a session restored from hibernation,
			   where the client does not send it again */
			if (mclient != NULL &&
			    mailward_imap_id_identified(muser)) {
				mclient->id_args =
					p_strdup(client->pool, cmd->args);
			}
		} else if (client->mailbox != NULL &&
			 imap_mailward_is_sync_cmd(cmd->name))
			mailward_imap_sync_summary(muser, client->mailbox);
		mailward_imap_command_end(muser);
	} T_END;
}

static void imap_mailward_client_destroy(struct client *client,
					 const char *reason)
{
	struct imap_mailward_client *mclient = IMAP_MAILWARD_CONTEXT(client);
	struct mailward_user *muser = imap_mailward_user(client);

	if (muser != NULL && client->hibernated) {
		/* the session goes on in imap-hibernate: not a logout */
		mailward_imap_hibernating(muser);
	}
	mclient->module_ctx.super.destroy(client, reason);
}

/* The device identified by a post-login ID goes with the session into
   hibernation: one block "mailward-id\n" <ID arguments> NUL before
   Dovecot's own state (whose "base" block takes the rest). A session
   that is fail-safe, has no registered device or records waiting for
   its ID stays here (mailward_imap_hibernate_blocker()). */
static int
imap_mailward_state_export(struct client *client, bool internal,
			   buffer_t *dest, const char **error_r)
{
	struct imap_mailward_client *mclient = IMAP_MAILWARD_CONTEXT(client);
	struct mailward_user *muser = imap_mailward_user(client);
	const char *blocker;

	blocker = !internal || muser == NULL ? NULL :
		mailward_imap_hibernate_blocker(muser);
	if (blocker != NULL) {
		/* 0: Dovecot keeps the session here (debug log): what the
		   restored process could not know stays in this process */
		e_debug(mailward_user_event(muser), "imap session stays "
			"out of imap-hibernate: %s", blocker);
		*error_r = t_strconcat("mailward: ", blocker, NULL);
		return 0;
	}
	if (internal && mclient->id_args != NULL) {

		buffer_append(dest, IMAP_MAILWARD_STATE_ID,
			      strlen(IMAP_MAILWARD_STATE_ID));
		buffer_append(dest, mclient->id_args,
			      strlen(mclient->id_args) + 1);
	}
	return mclient->module_ctx.super.state_export(client, internal, dest,
						      error_r);
}

static ssize_t
imap_mailward_state_import(struct client *client, bool internal,
			   const unsigned char *data, size_t size,
			   const char **error_r)
{
	struct imap_mailward_client *mclient = IMAP_MAILWARD_CONTEXT(client);
	size_t prefix_len = strlen(IMAP_MAILWARD_STATE_ID);
	struct mailward_user *muser;
	const unsigned char *end;

	if (!internal || size < prefix_len ||
	    memcmp(data, IMAP_MAILWARD_STATE_ID, prefix_len) != 0) {
		return mclient->module_ctx.super.state_import(
			client, internal, data, size, error_r);
	}
	end = memchr(data + prefix_len, '\0', size - prefix_len);
	if (end == NULL) {
		*error_r = "mailward: truncated device state";
		return 0;
	}
	mclient->id_args = p_strndup(client->pool, data + prefix_len,
				     end - (data + prefix_len));
	muser = imap_mailward_user(client);
	if (muser != NULL) T_BEGIN {
		mailward_imap_id_restored(muser, mclient->id_args);
	} T_END;
	return end - data + 1;
}

/* A FETCH that failed because mailward refused the read (audit required,
   writer away) is answered by Dovecot with [SERVERBUG] whatever the
   storage error (with imap_fetch_failure=no-after; by default it
   disconnects with the reason): the condition is temporary, say so. */
static void
imap_mailward_send_tagline(struct client_command_context *cmd,
			   const char *data)
{
	static const char refused[] =
		"NO [SERVERBUG] "MAILWARD_AUDIT_UNAVAILABLE_READ;
	struct mailward_user *muser = imap_mailward_user(cmd->client);
	struct imap_mailward_client *mclient =
		IMAP_MAILWARD_CONTEXT(cmd->client);

	if (muser != NULL && mailward_user_read_refused_take(muser) &&
	    strcmp(data, refused) == 0)
		data = "NO [UNAVAILABLE] "MAILWARD_AUDIT_UNAVAILABLE_READ;
	mclient->module_ctx.super.send_tagline(cmd, data);
}

static void imap_mailward_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct mailward_user *muser = imap_mailward_user(client);

	if (muser != NULL) {
		struct imap_mailward_client *mclient;

		mclient = p_new(client->pool, struct imap_mailward_client, 1);
		mclient->muser = muser;
		mclient->module_ctx.super = client->v;
		client->v.destroy = imap_mailward_client_destroy;
		client->v.state_export = imap_mailward_state_export;
		client->v.state_import = imap_mailward_state_import;
		client->v.send_tagline = imap_mailward_send_tagline;
		MODULE_CONTEXT_SET(client, imap_mailward_imap_module, mclient);
		e_debug(mailward_user_event(muser), "imap session %s",
			client->user->session_restored ?
			"restored from hibernation" : "started");
	}
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void imap_mailward_plugin_init(struct module *module)
{
	imap_mailward_module_ptr = module;
	command_hook_register(imap_mailward_cmd_pre, imap_mailward_cmd_post);
	next_hook_client_created =
		imap_client_created_hook_set(imap_mailward_client_created);
	imap_mailward_fetch_init();
}

void imap_mailward_plugin_deinit(void)
{
	imap_mailward_fetch_deinit();
	command_hook_unregister(imap_mailward_cmd_pre, imap_mailward_cmd_post);
	imap_client_created_hook_set(next_hook_client_created);
}
