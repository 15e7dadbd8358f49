/* mailward storage plugin: a session's state store (open, reset, batch
   and flush) and the mailboxes its records belong to (GUIDs, renamed
   GUIDs, records of removed mailboxes) */

#include "lib.h"
#include "ioloop.h"
#include "hex-binary.h"
#include "hash.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list-iter.h"
#include "mailward-private.h"
#include "mailward-display.h"
#include "mailward-state-dir.h"

#include <unistd.h>

/* mailboxes looked at to tell whether a GUID is still in use */
#define MAILWARD_GUID_SCAN_MAX 1000

void mailward_state_reset_check(struct mailward_user *muser)
{
	const char *moved, *what;

	if (muser->store == NULL || muser->state_reset_seen ||
	    (moved = mw_store_get_reset(muser->store)) == NULL)
		return;
	muser->state_reset_seen = TRUE;
	if (mw_store_get_reset_lost(muser->store)) {
		what = t_strdup_printf("state store %s lost its data: %s is "
				       "missing or empty while the store's "
				       "lock file remained", muser->state_dir,
				       moved);
	} else {
		what = t_strdup_printf("damaged state store %s moved aside "
				       "to %s", muser->state_dir, moved);
	}
	mailward_notice(muser, MAILWARD_NOTICE_STATE_RESET, what, NULL);
	/* what devices had is lost: this session expunges nothing */
	if (mw_store_get_reset_lost(muser->store)) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s lost its data: %s is missing or empty "
			"while the store's lock file remained, continuing "
			"with a fresh store (device state lost)",
			muser->state_dir, moved));
	} else {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s was damaged: moved aside to %s, "
			"continuing with a fresh store (device state lost)",
			muser->state_dir, moved));
	}
}

/* Sets the session's state directory (mailward_state_dir, %h/~
   expanded). FALSE when the store cannot be used there (logged,
   fail-safe). */
static bool mailward_state_dir_get(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;
	const char *home;

	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	muser->state_dir = p_strdup(user->pool, mailward_state_dir_path(
		muser->set.state_dir, home));
	if (muser->state_dir == NULL) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store disabled: user %s has no home directory "
			"and mailward_state_dir is %s", user->username,
			muser->set.state_dir == NULL ? "not set" :
			t_strdup_printf("'%s'", mailward_display(
				muser->set.state_dir, 0))));
		return FALSE;
	}
	if (muser->state_dir[0] != '/') {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store disabled: mailward_state_dir '%s' of user "
			"%s is not an absolute path", mailward_display(
				muser->state_dir, 0), user->username));
		return FALSE;
	}
	return TRUE;
}

/* FALSE (logged, fail-safe) when the open store is another user's
   (mailward_state_dir without a per-user part): using it would mix their
   devices and records */
static bool mailward_state_owner_check(struct mailward_user *muser)
{
	const char *username = muser->user->username, *owner, *error;
	int ret;

	ret = mw_store_check_owner(muser->store, username, &owner, &error);
	if (ret > 0)
		return TRUE;
	mailward_user_set_fail_safe(muser, ret < 0 ?
		t_strdup_printf("State store error: %s", error) :
		t_strdup_printf("State store %s belongs to user %s, not %s: "
			"mailward_state_dir must be a directory per user "
			"(e.g. ~/mailward or /var/lib/mailward/%%u); state not "
			"used", muser->state_dir, mailward_display(owner, 256),
			username));
	return FALSE;
}

/* Loads the device key (mailward_device_key, else the state directory's
   device.key, created on first use). FALSE on error (logged, fail-safe). */
static bool mailward_device_key_load(struct mailward_user *muser)
{
	const char *error, *key_path;

	if (muser->set.device_key != NULL) {
		if (mw_device_key_from_hex(muser->set.device_key,
					   muser->device_key, &error) < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"Invalid setting mailward_device_key for user "
				"%s: %s", muser->user->username, error));
			return FALSE;
		}
	} else {
		key_path = t_strconcat(muser->state_dir, "/device.key", NULL);
		if (mw_device_key_load_or_create(key_path, muser->device_key,
						 &error) < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
			return FALSE;
		}
	}
	muser->device_key_loaded = TRUE;
	return TRUE;
}

bool mailward_state_open(struct mailward_user *muser)
{
	const char *error;

	if (!mailward_state_dir_get(muser))
		return FALSE;
	if (geteuid() == 0) {
		/* a root-owned environment or lock file would lock the
		   mail uid out */
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store %s not opened: process runs as root",
			muser->state_dir));
		return FALSE;
	}
	if (mw_store_open(muser->state_dir, &muser->store, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		muser->store = NULL;
		return FALSE;
	}
	if (mw_store_get_reset(muser->store) != NULL) {
		/* damaged: moved aside, this is a fresh store */
		mailward_state_reset_check(muser);
	}
	if (muser->store != NULL && !mailward_state_owner_check(muser)) {
		mw_store_unref(&muser->store);
		return FALSE;
	}
	if (!mailward_device_key_load(muser)) {
		mw_store_unref(&muser->store);
		return FALSE;
	}
	return TRUE;
}

struct mw_batch *mailward_state_batch(struct mailward_user *muser)
{
	if (muser->store == NULL)
		return NULL;
	if (muser->batch == NULL) {
		muser->batch = mw_batch_begin(muser->store);
		/* last_seen may lag a session by MW_DEVICE_TOUCH_SECS
		   (repeated sessions that change nothing write nothing):
		   nothing next to a device expiry in days, but a short one
		   (under 100 times that) gets every touch written, and so
		   does a user with a POP3 login delay (measured from the
		   device's last session: last_seen exact) */
		if (muser->batch != NULL &&
		    ((muser->set.device_expire_secs > 0 &&
		      muser->set.device_expire_secs <
		      100 * MW_DEVICE_TOUCH_SECS) ||
		     muser->set.pop3_login_delay_secs > 0))
			mw_batch_set_touch_secs(muser->batch, 0);
	}
	return muser->batch;
}

void mailward_user_device_removed(struct mailward_user *muser,
				  const char *what)
{
	if (muser->device_removed) {
		/* warned and audited already */
		e_info(muser->event, "device %s (%s) removed during this "
		       "session: %s", muser->device.id_hex,
		       mailward_display(muser->device.label, 0), what);
		return;
	}
	muser->device_removed = TRUE;
	e_warning(muser->event, "device %s (%s) was removed from the state "
		  "store during this session (evicted, expired or forgotten): "
		  "%s", muser->device.id_hex,
		  mailward_display(muser->device.label, 0), what);
	mailward_notice(muser, MAILWARD_NOTICE_STATE_DISCARDED, t_strconcat(
		"device removed during the session: ", what, NULL), NULL);
}

int mailward_state_flush(struct mailward_user *muser)
{
	const char *error;
	unsigned int dropped = 0;

	muser->state_dirty = FALSE;
	muser->last_state_flush = ioloop_time;
	if (muser->batch == NULL)
		return 0;
	if (mw_batch_count(muser->batch) == 0) {
		mw_batch_abort(&muser->batch);
		return 0;
	}
	/* records of this session go to its device only: if another
	   session removed the device meanwhile, the commit drops them */
	if (muser->device_registered) {
		mw_batch_bind_device(muser->batch, muser->device.id_hex,
				     muser->device.dev_no, &dropped);
	}
	if (mw_batch_commit(&muser->batch, &error) < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return -1;
	}
	if (dropped > 0) {
		mailward_user_device_removed(muser, t_strdup_printf(
			"%u state record(s) of this session discarded, not "
			"given to another device", dropped));
	}
	return 0;
}

/* 1 if some other mailbox of the user has this GUID (or that cannot be
   told: too many mailboxes), 0 if none has */
static int
mailward_mailbox_guid_in_use(struct mailward_user *muser, struct mailbox *box,
			     const char *guid_hex)
{
	static const char *const patterns[] = { "*", NULL };
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	struct mailbox_metadata metadata;
	unsigned int count = 0;
	int ret = 0;

	iter = mailbox_list_iter_init_namespaces(muser->user->namespaces,
		patterns, MAIL_NAMESPACE_TYPE_PRIVATE,
		MAILBOX_LIST_ITER_NO_AUTO_BOXES |
		MAILBOX_LIST_ITER_SKIP_ALIASES |
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while (ret == 0 && (info = mailbox_list_iter_next(iter)) != NULL) {
		struct mailbox *other;

		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0 ||
		    strcmp(info->vname, mailbox_get_vname(box)) == 0)
			continue;
		if (++count > MAILWARD_GUID_SCAN_MAX) {
			ret = 1;
			break;
		}
		other = mailbox_alloc(info->ns->list, info->vname,
				      MAILBOX_FLAG_READONLY);
		if (mailbox_get_metadata(other, MAILBOX_METADATA_GUID,
					 &metadata) == 0 &&
		    strcasecmp(binary_to_hex(metadata.guid,
					     sizeof(metadata.guid)),
			       guid_hex) == 0)
			ret = 1;
		mailbox_free(&other);
	}
	(void)mailbox_list_iter_deinit(&iter);
	return ret;
}

/* Records the mailbox's GUID under its name. A name whose GUID changed
   while the old GUID exists nowhere else is the same mailbox with a
   regenerated GUID (index or uidlist lost): its records carry over, so
   no device sees again what it deleted or retrieved. */
static void
mailward_mailbox_name_check(struct mailward_user *muser, struct mailbox *box,
			    const char *guid_hex)
{
	const char *name = mailbox_get_vname(box), *old = NULL, *error;
	char old_hex[MW_MAILBOX_GUID_HEX_SIZE];
	int ret;

	if (muser->store == NULL || mailbox_get_namespace(box)->type !=
	    MAIL_NAMESPACE_TYPE_PRIVATE || box->storage->user != muser->user ||
	    name[0] == '\0' || strlen(name) > MW_MAILBOX_NAME_MAX)
		return;
	ret = mw_store_mailbox_name_get(muser->store, name, old_hex, &error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
		return;
	}
	if (ret > 0) {
		if (strcasecmp(old_hex, guid_hex) == 0)
			return;
		if (mailward_mailbox_guid_in_use(muser, box, old_hex) == 0)
			old = old_hex;
	}
	ret = mw_store_mailbox_name_set(muser->store, name, old, guid_hex,
					&error);
	if (ret < 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"State store error: %s", error));
	} else if (ret > 0) {
		e_info(muser->event, "Mailbox %s: GUID changed from %s to %s "
		       "(index rebuilt): device records carried over",
		       mailward_display(name, 0), old_hex, guid_hex);
	}
}

const char *mailward_mailbox_guid(struct mailward_user *muser,
				  struct mailbox *box)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);
	struct mailbox_metadata metadata;
	const char *hex;

	/* looked up per message (fetch records, audit, prunes): once */
	if (mbox != NULL && mbox->guid_hex[0] != '\0')
		return mbox->guid_hex;
	if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &metadata) < 0) {
		e_error(muser->event, "Mailbox %s: GUID lookup failed: %s",
			mailward_display(mailbox_get_vname(box), 0),
			mailbox_get_last_internal_error(box, NULL));
		return NULL;
	}
	hex = binary_to_hex(metadata.guid, sizeof(metadata.guid));
	if (mbox != NULL) {
		i_strocpy(mbox->guid_hex, hex, sizeof(mbox->guid_hex));
		mailward_mailbox_name_check(muser, box, mbox->guid_hex);
		return mbox->guid_hex;
	}
	return hex;
}

struct prune_ctx {
	struct mailward_user *muser;
	HASH_TABLE(const char *, void *) existing;
	struct mw_batch *batch;
	unsigned int pruned;
};

static int prune_mailbox_cb(const char *guid_hex, void *context)
{
	struct prune_ctx *ctx = context;

	if (hash_table_lookup(ctx->existing, guid_hex) == NULL) {
		mw_batch_mailbox_forget(ctx->batch, guid_hex);
		ctx->pruned++;
	}
	return 0;
}

/* Adds the GUIDs of the mailboxes of the private namespace ns to
   ctx->existing (strings from pool). Returns FALSE if a mailbox could not
   be looked at or the listing failed (logged). */
static bool
mailward_existing_mailboxes(struct prune_ctx *ctx, struct mail_namespace *ns,
			    pool_t pool)
{
	struct mailward_user *muser = ctx->muser;
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	const char *guid;
	bool failed = FALSE;

	iter = mailbox_list_iter_init(ns->list, "*",
		MAILBOX_LIST_ITER_NO_AUTO_BOXES |
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS);
	while ((info = mailbox_list_iter_next(iter)) != NULL) {
		struct mailbox *box;

		if ((info->flags & (MAILBOX_NOSELECT |
				    MAILBOX_NONEXISTENT)) != 0)
			continue;
		box = mailbox_alloc(info->ns->list, info->vname, 0);
		guid = mailward_mailbox_guid(muser, box);
		if (guid == NULL)
			failed = TRUE;
		else {
			guid = p_strdup(pool, guid);
			hash_table_update(ctx->existing, guid, (void *)guid);
		}
		mailbox_free(&box);
	}
	if (mailbox_list_iter_deinit(&iter) < 0) {
		e_error(muser->event, "Listing the mailboxes of %s failed, "
			"records of removed mailboxes kept: %s",
			muser->user->username,
			mailbox_list_get_last_internal_error(ns->list, NULL));
		return FALSE;
	}
	if (failed) {
		e_error(muser->event, "A mailbox of %s could not be looked at, "
			"records of removed mailboxes kept",
			muser->user->username);
	}
	return !failed;
}

int mailward_prune_missing_mailboxes(struct mailward_user *muser)
{
	struct mail_namespace *ns;
	struct prune_ctx ctx;
	const char *error;
	bool failed = FALSE;
	pool_t pool;
	int ret;

	if (muser->store == NULL)
		return 0;
	pool = pool_alloconly_create("mailward prune", 1024);
	i_zero(&ctx);
	ctx.muser = muser;
	hash_table_create(&ctx.existing, pool, 0, strcase_hash, strcasecmp);
	/* every mailbox of the user, looked at through
	   mailward_mailbox_guid(): a regenerated GUID takes its records over
	   before anything is pruned. Each private namespace's own list is
	   iterated: the namespaces iterator skips list=no namespaces (an
	   INBOX namespace with list = no would lose all its records). */
	for (ns = muser->user->namespaces; ns != NULL && !failed;
	     ns = ns->next) {
		if (ns->type == MAIL_NAMESPACE_TYPE_PRIVATE &&
		    ns->alias_for == NULL &&
		    !mailward_existing_mailboxes(&ctx, ns, pool))
			failed = TRUE;
	}
	if (mailward_user_inbox_ns(muser->user) == NULL && !failed) {
		e_error(muser->event, "Listing the mailboxes of %s failed, "
			"records of removed mailboxes kept: no INBOX "
			"namespace", muser->user->username);
		failed = TRUE;
	}
	if (failed || muser->fail_safe) {
		/* unsure what exists: keep every record */
		ret = failed ? -1 : 0;
	} else {
		ctx.batch = mailward_state_batch(muser);
		ret = ctx.batch == NULL ? 0 :
			mw_store_mailbox_iter(muser->store, prune_mailbox_cb,
					      &ctx, &error);
		if (ret < 0) {
			mailward_user_set_fail_safe(muser, t_strdup_printf(
				"State store error: %s", error));
		}
	}
	hash_table_destroy(&ctx.existing);
	pool_unref(&pool);
	if (ret < 0 || failed || muser->fail_safe)
		return ret < 0 ? -1 : 0;
	if (ctx.pruned > 0) {
		if (mailward_state_flush(muser) < 0)
			return -1;
		e_info(muser->event, "Records of %u mailbox(es) that no longer "
		       "exist removed", ctx.pruned);
	}
	return ctx.pruned;
}

struct mw_store *mailward_user_store(struct mailward_user *muser)
{
	return muser->store;
}
