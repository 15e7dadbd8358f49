/* mailward IMAP plugin: RFC 2971 ID for device identity and
   command-level state (one LMDB write transaction per command) */

#include "imap-common.h"
#include "ioloop.h"
#include "imap-client.h"
#include "imap-commands.h"
#include "mailward-plugin.h"
#include "mw-imapid.h"

const char *imap_mailward_plugin_version = DOVECOT_ABI_VERSION;
const char *imap_mailward_plugin_dependencies[] = { "mailward", NULL };
const char imap_mailward_plugin_binary_dependency[] = "imap";

void imap_mailward_plugin_init(struct module *module);
void imap_mailward_plugin_deinit(void);

/* RFC 2971: at most 30 field-value pairs */
#define IMAP_ID_MAX_STRINGS 60
/* sync summaries kept in memory before they are written anyway */
#define IMAP_SUMMARY_BATCH_MAX 256
#define IMAP_STATE_FLUSH_SECS 30

static struct module *imap_mailward_module_ptr;
static imap_client_created_func_t *next_hook_client_created;

static struct mailward_user *imap_mailward_user(struct client *client)
{
	if (client->user == NULL ||
	    !mail_user_is_plugin_loaded(client->user, imap_mailward_module_ptr))
		return NULL;
	return MAILWARD_USER_CONTEXT(client->user);
}

static void imap_mailward_id(struct mailward_user *muser, const char *args)
{
	const char *strings[IMAP_ID_MAX_STRINGS];
	char buf[4096];
	unsigned int count;

	if (args == NULL)
		return;
	if (mw_imap_id_split(args, buf, sizeof(buf), strings,
			     IMAP_ID_MAX_STRINGS, &count) < 0) {
		e_debug(muser->event, "ID arguments not understood: "
			"device stays as identified");
		return;
	}
	mailward_user_set_imap_id(muser, strings, count / 2);
}

static void imap_mailward_summary(struct mailward_user *muser,
				  struct mailbox *box)
{
	struct mailbox_status status;
	struct mw_batch *batch;
	const char *guid;

	if (!muser->device_registered || muser->store == NULL)
		return;
	batch = mailward_state_batch(muser);
	if (batch == NULL)
		return;
	mailbox_get_open_status(box, STATUS_UIDVALIDITY | STATUS_UIDNEXT |
				STATUS_HIGHESTMODSEQ, &status);
	guid = mailward_mailbox_guid(muser, box);
	if (guid == NULL)
		return;
	mw_batch_summary_set(batch, muser->device.dev_no, guid,
			     status.uidvalidity,
			     status.uidnext > 0 ? status.uidnext - 1 : 0,
			     status.highest_modseq, ioloop_time);
}

static bool imap_mailward_is_sync_cmd(const char *name)
{
	return strcmp(name, "SELECT") == 0 || strcmp(name, "EXAMINE") == 0 ||
		strcmp(name, "FETCH") == 0 || strcmp(name, "UID FETCH") == 0 ||
		strcmp(name, "NOOP") == 0 || strcmp(name, "IDLE") == 0 ||
		strcmp(name, "CHECK") == 0;
}

static void imap_mailward_cmd_pre(struct client_command_context *cmd)
{
	struct mailward_user *muser;

	if (cmd->name == NULL || strcmp(cmd->name, "ID") == 0 ||
	    strcmp(cmd->name, "CAPABILITY") == 0 ||
	    strcmp(cmd->name, "NOOP") == 0)
		return;
	muser = imap_mailward_user(cmd->client);
	if (muser != NULL && muser->device_pending) T_BEGIN {
		/* no ID before the first real command: network identity */
		mailward_user_device_resolve(muser);
	} T_END;
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
		if (strcmp(cmd->name, "ID") == 0)
			imap_mailward_id(muser, cmd->args);
		else if (client->mailbox != NULL &&
			 imap_mailward_is_sync_cmd(cmd->name))
			imap_mailward_summary(muser, client->mailbox);
		/* state changes of IMAP commands are written at the end of
		   the session, and in long sessions at most every
		   IMAP_STATE_FLUSH_SECS (or when the batch grows): never one
		   write transaction per message, rarely one per command */
		if ((muser->state_dirty &&
		     ioloop_time - muser->last_state_flush >=
		     IMAP_STATE_FLUSH_SECS) ||
		    (muser->batch != NULL &&
		     mw_batch_count(muser->batch) >= IMAP_SUMMARY_BATCH_MAX))
			(void)mailward_state_flush(muser);
		/* the command's audit records made durable */
		(void)mailward_audit_commit(muser, FALSE);
	} T_END;
}

static void imap_mailward_client_created(struct client **clientp)
{
	struct mailward_user *muser = imap_mailward_user(*clientp);

	if (muser != NULL)
		e_debug(muser->event, "imap session started");
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void imap_mailward_plugin_init(struct module *module)
{
	imap_mailward_module_ptr = module;
	command_hook_register(imap_mailward_cmd_pre, imap_mailward_cmd_post);
	next_hook_client_created =
		imap_client_created_hook_set(imap_mailward_client_created);
}

void imap_mailward_plugin_deinit(void)
{
	command_hook_unregister(imap_mailward_cmd_pre, imap_mailward_cmd_post);
	imap_client_created_hook_set(next_hook_client_created);
}
