#ifndef MAILWARD_DOVEADM_API_H
#define MAILWARD_DOVEADM_API_H

/* What the doveadm plugin uses of the storage plugin, as one table of
   functions looked up at run time (module_get_symbol() on the loaded
   lib20_mailward_plugin.so). The doveadm plugin has no link-time
   reference to the storage plugin: it loads, and "doveadm mailward check"
   works, also when a configuration dropped mailward from doveadm's
   mail_plugins. The store calls go through the table too, so that a store
   opened by the storage plugin is only ever used by its own code.
   A new call from the doveadm plugin into the storage plugin goes into
   this table (and a #define in doveadm-mailward-plugin.c): a direct call
   makes doveadm skip the whole module (tests/test_check.py
   test_doveadm_plugin_needs_no_storage_symbols). */

#include "mailward-plugin.h"
#include "mw-store.h"

#define MAILWARD_DOVEADM_API_SYMBOL "mailward_doveadm_api"
/* bumped whenever the table changes; a mismatch is reported, not used */
#define MAILWARD_DOVEADM_API_VERSION 3

struct mailward_doveadm_api {
	unsigned int version;

	/* the user's mailward context, NULL if mailward is not loaded for
	   this user */
	struct mailward_user *(*user_get)(struct mail_user *user);

	/* see mailward-plugin.h */
	struct mw_store *(*user_store)(struct mailward_user *muser);
	const char *(*user_fail_safe_reason)(struct mailward_user *muser);
	int (*device_forgotten)(struct mailward_user *muser,
				const struct mw_device_rec *rec);
	/* see mailward-private.h */
	int (*expunge_due)(struct mailward_user *muser, struct mailbox *box,
			   time_t now,
			   void (*print_cb)(void *ctx, uint32_t uid,
					    const char *guid, time_t due),
			   void *print_ctx);
	int (*state_flush)(struct mailward_user *muser);
	struct mail_namespace *(*user_inbox_ns)(struct mail_user *user);
	const char *(*mailbox_guid)(struct mailward_user *muser,
				    struct mailbox *box);
	int (*prune_missing_mailboxes)(struct mailward_user *muser);

	int (*store_device_iter)(struct mw_store *store,
				 int (*cb)(const struct mw_device_rec *rec,
					   void *ctx),
				 void *ctx, const char **error_r);
	int (*store_device_forget)(struct mw_store *store,
				   const char *id_prefix,
				   struct mw_device_rec *rec_r,
				   const char **error_r);
	int (*store_msg_iter)(struct mw_store *store, int dev_no,
			      const char *mailbox_guid_hex,
			      int (*cb)(const struct mw_msg_rec *rec,
					void *ctx),
			      void *ctx, const char **error_r);
	int (*store_summary_get)(struct mw_store *store, uint16_t dev_no,
				 const char *mailbox_guid_hex,
				 struct mw_summary_rec *rec_r,
				 const char **error_r);
};

/* defined by the storage plugin */
extern const struct mailward_doveadm_api mailward_doveadm_api;

#endif
