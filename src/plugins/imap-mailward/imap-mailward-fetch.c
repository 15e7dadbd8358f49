/* mailward IMAP plugin: which FETCH items gave the device the whole
   message. Dovecot's fetch handlers of BODY, BINARY and RFC822 are
   wrapped: after Dovecot's own init of an item naming the whole message's
   section (mw_fetch_att_parse()), a handler of ours follows Dovecot's for
   each message; it runs once Dovecot sent the item and reports the
   message to mailward_imap_retrieved() when mw_fetch_cover_add() says the
   device now has all of it. Every other item is Dovecot's alone. */

#include "imap-common.h"
#include "array.h"
#include "seq-range-array.h"
#include "imap-fetch.h"
#include "imap-msgpart.h"
#include "mail-storage.h"
#include "mw-fetch.h"
#include "imap-mailward-private.h"

/* One FETCH item of the whole message's section, for one command */
struct imap_mailward_fetch_item {
	struct mw_fetch_att att;
	/* BINARY[] in ranges: the section whose size is the whole */
	struct imap_msgpart *binary_whole;
};

enum imap_mailward_fetch_wrapped {
	WRAPPED_BINARY,
	WRAPPED_BODY,
	WRAPPED_RFC822,

	WRAPPED_COUNT
};

/* the inits Dovecot's handlers had before ours */
static bool (*wrapped_super[WRAPPED_COUNT])(struct imap_fetch_init_context *);

/* The size of the section item asks for, whose ranges must cover it:
   RFC822.SIZE for BODY[], BINARY.SIZE[] for BINARY[]. */
static int
imap_mailward_section_size(struct mail *mail,
			   const struct imap_mailward_fetch_item *item,
			   uoff_t *size_r)
{
	if (item->binary_whole != NULL)
		return imap_msgpart_size(mail, item->binary_whole, size_r);
	return mail_get_virtual_size(mail, size_r);
}

/* A range of the whole message was sent: does the session now have all
   of it? Anything that cannot be looked up does not count. */
static bool
imap_mailward_range_completes(struct client *client, struct mail *mail,
			      const struct imap_mailward_fetch_item *item)
{
	struct imap_mailward_client *mclient = IMAP_MAILWARD_CONTEXT(client);
	struct mailbox_metadata metadata;
	uoff_t size;

	if (mclient == NULL)
		return FALSE;
	if (mailbox_get_metadata(mail->box, MAILBOX_METADATA_GUID,
				 &metadata) < 0 ||
	    imap_mailward_section_size(mail, item, &size) < 0) {
		e_debug(mailward_user_event(imap_mailward_user(client)),
			"partial FETCH of UID %u not counted: %s", mail->uid,
			mailbox_get_last_internal_error(mail->box, NULL));
		return FALSE;
	}
	if (mclient->fetch_cover == NULL) {
		mclient->fetch_cover =
			p_new(client->pool, struct mw_fetch_cover, 1);
	}
	return mw_fetch_cover_add(mclient->fetch_cover, metadata.guid,
				  mail->uid, &item->att, size);
}

/* Runs after Dovecot's handler of the same item for mail (NULL: the
   command's end). Never fails the FETCH. */
static int
imap_mailward_fetch_sent(struct imap_fetch_context *ctx, struct mail *mail,
			 struct imap_mailward_fetch_item *item)
{
	struct mail *backend;

	if (mail == NULL) {
		if (item->binary_whole != NULL)
			imap_msgpart_free(&item->binary_whole);
		return 1;
	}
	/* Dovecot's handler did not send it (expunged meanwhile: NIL; or
	   failed under imap_fetch_failure=no-after) */
	if (mail->expunged ||
	    (array_is_created(&ctx->fetch_failed_uids) &&
	     seq_range_exists(&ctx->fetch_failed_uids, mail->uid)))
		return 1;
	if (item->att.partial &&
	    !imap_mailward_range_completes(ctx->client, mail, item))
		return 1;
	/* a virtual mailbox's message is its backend's */
	if (mail_get_backend_mail(mail, &backend) < 0)
		return 1;
	mailward_imap_retrieved(backend);
	return 1;
}

static bool
imap_mailward_fetch_init_item(struct imap_fetch_init_context *ctx,
			      enum imap_mailward_fetch_wrapped which)
{
	/* the item as the client named it: Dovecot's init rewrites it */
	const char *name = ctx->name;
	struct imap_mailward_fetch_item *item;
	struct mw_fetch_att att;
	enum imap_fetch_handler_flags flags = 0;

	if (!wrapped_super[which](ctx))
		return FALSE;
	if (!mw_fetch_att_parse(name, &att) ||
	    imap_mailward_user(ctx->fetch_ctx->client) == NULL)
		return TRUE;
	item = p_new(ctx->pool, struct imap_mailward_fetch_item, 1);
	item->att = att;
	if (att.partial && att.binary) {
		item->binary_whole = imap_msgpart_full();
		imap_msgpart_set_decode_to_binary(item->binary_whole);
		flags |= IMAP_FETCH_HANDLER_FLAG_WANT_DEINIT;
	} else if (att.partial) {
		ctx->fetch_ctx->fetch_data |= MAIL_FETCH_VIRTUAL_SIZE;
	}
	/* not buffered: runs after Dovecot's handler added just before */
	imap_fetch_add_handler(ctx, flags, (const char *)NULL,
			       imap_mailward_fetch_sent, item);
	return TRUE;
}

static bool imap_mailward_fetch_init_binary(struct imap_fetch_init_context *ctx)
{
	return imap_mailward_fetch_init_item(ctx, WRAPPED_BINARY);
}

static bool imap_mailward_fetch_init_body(struct imap_fetch_init_context *ctx)
{
	return imap_mailward_fetch_init_item(ctx, WRAPPED_BODY);
}

static bool imap_mailward_fetch_init_rfc822(struct imap_fetch_init_context *ctx)
{
	return imap_mailward_fetch_init_item(ctx, WRAPPED_RFC822);
}

/* by enum imap_mailward_fetch_wrapped; the names as Dovecot registers
   its handlers (its lookup name of "BODY.PEEK[]" is "BODY") */
static const struct imap_fetch_handler
imap_mailward_fetch_handlers[WRAPPED_COUNT] = {
	{ "BINARY", imap_mailward_fetch_init_binary },
	{ "BODY", imap_mailward_fetch_init_body },
	{ "RFC822", imap_mailward_fetch_init_rfc822 },
};

void imap_mailward_fetch_init(void)
{
	const struct imap_fetch_handler *handler;
	unsigned int i;

	for (i = 0; i < WRAPPED_COUNT; i++) {
		const char *name = imap_mailward_fetch_handlers[i].name;

		handler = imap_fetch_handler_lookup(name);
		if (handler == NULL) {
			i_error("mailward: IMAP FETCH %s has no handler: "
				"its fetches never count as retrieval", name);
			continue;
		}
		wrapped_super[i] = handler->init;
		imap_fetch_handler_unregister(name);
		imap_fetch_handlers_register(&imap_mailward_fetch_handlers[i],
					     1);
	}
}

void imap_mailward_fetch_deinit(void)
{
	struct imap_fetch_handler handler;
	unsigned int i;

	for (i = 0; i < WRAPPED_COUNT; i++) {
		if (wrapped_super[i] == NULL)
			continue;
		handler.name = imap_mailward_fetch_handlers[i].name;
		imap_fetch_handler_unregister(handler.name);
		handler.init = wrapped_super[i];
		imap_fetch_handlers_register(&handler, 1);
		wrapped_super[i] = NULL;
	}
}
