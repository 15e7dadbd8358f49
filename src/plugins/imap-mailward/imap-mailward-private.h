#ifndef IMAP_MAILWARD_PRIVATE_H
#define IMAP_MAILWARD_PRIVATE_H

/* What the IMAP plugin's files share: the client context and the
   session's mailward context. */

#include "imap-client.h"
#include "module-context.h"
#include "mailward-plugin.h"

struct mw_fetch_cover;

#define IMAP_MAILWARD_CONTEXT(obj) \
	MODULE_CONTEXT(obj, imap_mailward_imap_module)

struct imap_mailward_client {
	union imap_module_context module_ctx;
	/* the session user's mailward state (lives as long as the mail
	   user, which outlives the client): looked up once, not per
	   command */
	struct mailward_user *muser;
	/* arguments of the ID command that identified the device */
	const char *id_args;
	/* the session's partial fetches of whole messages (allocated at
	   the first one, from the client's pool) */
	struct mw_fetch_cover *fetch_cover;
};

extern MODULE_CONTEXT_DEFINE(imap_mailward_imap_module,
			     &imap_module_register);

/* The session's mailward context, NULL when mailward (or this plugin) is
   not active for client's user. Cheap for a client this plugin set up
   (kept in its context). */
struct mailward_user *imap_mailward_user(struct client *client);

/* Wraps Dovecot's FETCH handlers of BODY, BINARY and RFC822 so that a
   fetch of the whole message is reported to mailward_imap_retrieved()
   once it was sent (mw-fetch.h). Called once at plugin init; _deinit
   puts Dovecot's handlers back. */
void imap_mailward_fetch_init(void);
void imap_mailward_fetch_deinit(void);

#endif
