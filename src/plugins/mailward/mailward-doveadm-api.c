/* the storage plugin's table for the doveadm plugin: see
   mailward-doveadm-api.h */

#include "lib.h"
#include "mail-user.h"
#include "mailward-private.h"
#include "mailward-doveadm-api.h"

const struct mailward_doveadm_api mailward_doveadm_api = {
	.version = MAILWARD_DOVEADM_API_VERSION,
	.user_get = mailward_user_get,
	.user_store = mailward_user_store,
	.user_fail_safe_reason = mailward_user_fail_safe_reason,
	.device_forgotten = mailward_device_forgotten,
	.expunge_due = mailward_expunge_due,
	.state_flush = mailward_state_flush,
	.user_inbox_ns = mailward_user_inbox_ns,
	.mailbox_guid = mailward_mailbox_guid,
	.prune_missing_mailboxes = mailward_prune_missing_mailboxes,
	.store_device_iter = mw_store_device_iter,
	.store_device_forget = mw_store_device_forget,
	.store_msg_iter = mw_store_msg_iter,
	.store_summary_get = mw_store_summary_get,
};
