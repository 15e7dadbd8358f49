/* Users see their own devices: the read-only server METADATA entry
   /private/vendor/vendor.mailward/devices (RFC 5464 GETMETADATA "" ...),
   computed from the user's state store when it is read */

#include "lib.h"
#include "str.h"
#include "ioloop.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list-private.h"
#include "mail-storage-private.h"
#include "mailbox-attribute.h"
#include "mailward-private.h"
#include "mw-json.h"

#include <time.h>

/* IMAP's /private/vendor/vendor.mailward/devices of the server (mailbox
   ""), as Dovecot keys server entries: INBOX attributes with this prefix */
#define MAILWARD_METADATA_DEVICES_KEY \
	MAILBOX_ATTRIBUTE_PREFIX_DOVECOT_PVT_SERVER \
	"vendor/vendor.mailward/devices"

struct metadata_devices_ctx {
	struct mailward_user *muser;
	struct mw_json_buf buf;
	time_t now;
	unsigned int count;
};

static void json_time(struct mw_json_buf *buf, time_t t)
{
	struct tm *tm = gmtime(&t);
	char str[32];

	if (t == 0 || tm == NULL ||
	    strftime(str, sizeof(str), "%Y-%m-%dT%H:%M:%SZ", tm) == 0) {
		mw_json_buf_append_str(buf, "null");
		return;
	}
	mw_json_append_string(buf, str, strlen(str));
}

static void
json_member(struct mw_json_buf *buf, const char *name, const char *value)
{
	mw_json_buf_append_str(buf, ",\"");
	mw_json_buf_append_str(buf, name);
	mw_json_buf_append_str(buf, "\":");
	mw_json_append_string(buf, value, strlen(value));
}

/* As expunge-after-all-devices decides (mailward-policy.c): a device
   counts unless idle past mailward_device_expire, and an IMAP device only
   when IMAP body fetches count as retrieval */
static bool
device_counts(const struct mailward_user *muser,
	      const struct mw_device_rec *rec, time_t now)
{
	if (muser->set.device_expire_secs > 0 &&
	    rec->last_seen + (time_t)muser->set.device_expire_secs < now)
		return FALSE;
	if (!muser->set.imap_counts_as_retrieval &&
	    strcmp(rec->protocol, "pop3") != 0)
		return FALSE;
	return TRUE;
}

static int metadata_device_cb(const struct mw_device_rec *rec, void *context)
{
	struct metadata_devices_ctx *ctx = context;
	struct mailward_user *muser = ctx->muser;
	struct mw_json_buf *buf = &ctx->buf;

	mw_json_buf_append_str(buf, ctx->count++ == 0 ? "{" : ",{");
	mw_json_buf_append_str(buf, "\"id\":");
	mw_json_append_string(buf, rec->id_hex, strlen(rec->id_hex));
	json_member(buf, "label", rec->label);
	json_member(buf, "protocol", rec->protocol);
	mw_json_buf_append_str(buf, ",\"first_seen\":");
	json_time(buf, rec->first_seen);
	mw_json_buf_append_str(buf, ",\"last_seen\":");
	json_time(buf, rec->last_seen);
	mw_json_buf_append_str(buf, ",\"retrieved\":");
	mw_json_buf_append_u64(buf, rec->retrieved);
	mw_json_buf_append_str(buf, ",\"deleted\":");
	mw_json_buf_append_u64(buf, rec->deleted);
	mw_json_buf_append_str(buf, ",\"counts_for_all_devices\":");
	mw_json_buf_append_str(buf, device_counts(muser, rec, ctx->now) ?
			       "true" : "false");
	mw_json_buf_append_str(buf, ",\"this_session\":");
	mw_json_buf_append_str(buf, muser->device_registered &&
			       rec->dev_no == muser->device.dev_no &&
			       memcmp(rec->id, muser->device.id,
				      sizeof(rec->id)) == 0 ?
			       "true" : "false");
	mw_json_buf_append_str(buf, "}");
	return 0;
}

static int
mailward_metadata_devices_get(struct mailbox *box,
			      const char *key ATTR_UNUSED,
			      struct mail_attribute_value *value_r)
{
	struct mail_user *user = box->storage->user;
	struct mailward_user *muser = MAILWARD_USER_CONTEXT(user);
	struct metadata_devices_ctx ctx;
	const char *error;

	/* only the session user's own INBOX (server metadata is read from
	   it): never a shared namespace owner's, never another user's */
	if (muser == NULL || muser->actor != NULL || user->autocreated ||
	    box->list->ns->type != MAIL_NAMESPACE_TYPE_PRIVATE ||
	    box->list->ns->owner != user || !box->inbox_user)
		return 0;
	if (muser->store == NULL) {
		if (!muser->set.state_enabled)
			return 0;	/* nothing is recorded (mailward_state=no) */
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP,
			"mailward: the device list is unavailable "
			"(state store error)");
		return -1;
	}
	i_zero(&ctx);
	ctx.muser = muser;
	ctx.now = ioloop_time;
	mw_json_buf_init(&ctx.buf);
	mw_json_buf_append_str(&ctx.buf, "{\"user\":");
	mw_json_append_string(&ctx.buf, user->username,
			      strlen(user->username));
	json_member(&ctx.buf, "policy", muser->set.hold ? "hold" :
		    mw_pop3_policy_name(muser->set.pop3_policy));
	mw_json_buf_append_str(&ctx.buf, ",\"devices\":[");
	if (mw_store_device_iter(muser->store, metadata_device_cb, &ctx,
				 &error) < 0) {
		mw_json_buf_free(&ctx.buf);
		e_error(muser->event, "METADATA devices: state store error: "
			"%s", error);
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP,
			"mailward: the device list is unavailable "
			"(state store error)");
		return -1;
	}
	mw_json_buf_append_str(&ctx.buf, "]}");
	if (ctx.buf.failed) {
		mw_json_buf_free(&ctx.buf);
		mail_storage_set_error(box->storage, MAIL_ERROR_TEMP,
			"mailward: out of memory");
		return -1;
	}
	value_r->value = t_strndup(ctx.buf.data, ctx.buf.len);
	value_r->flags |= MAIL_ATTRIBUTE_VALUE_FLAG_READONLY;
	mw_json_buf_free(&ctx.buf);
	return 1;
}

/* Read-only: with rank AUTHORITY and no set function Dovecot refuses
   SETMETADATA of it ("cannot be changed") and stores nothing */
static const struct mailbox_attribute_internal mailward_iattr_devices = {
	.type = MAIL_ATTRIBUTE_TYPE_PRIVATE,
	.key = MAILWARD_METADATA_DEVICES_KEY,
	.rank = MAIL_ATTRIBUTE_INTERNAL_RANK_AUTHORITY,
	.get = mailward_metadata_devices_get,
};

void mailward_metadata_init(void)
{
	mailbox_attribute_register_internal(&mailward_iattr_devices);
}

void mailward_metadata_deinit(void)
{
	mailbox_attribute_unregister_internal(&mailward_iattr_devices);
}
