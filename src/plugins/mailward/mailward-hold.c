/* mailward: the legal hold of sessions opened before it. A hold set in
   the userdb reaches a mail process only when it reads its settings (at
   login); a session opened before (IMAP IDLE lasts days) would go on
   expunging. The state store carries a hold mark (mw_store_hold_mark_*):
   every session and doveadm command of the user makes it agree with its
   fresh settings at its start, and every expunge decision re-reads it
   first (once per transaction, sweep or session end), holding from then
   on when it is set. For another owner's mail (a shared namespace) the
   owner's store is read. Also which client and tool expunges are
   refused (hold, imap_expunge=deny, owner unknown). */

#include "lib.h"
#include "ioloop.h"
#include "time-util.h"
#include "mail-user.h"
#include "mailward-policy-private.h"
#include "mailward-display.h"
#include "mailward-state-dir.h"

#include <sys/stat.h>

/* The store holding the mark that decides for muser's mail into
   *store_r (NULL: none can be set: no state store, a public namespace,
   an owner whose state directory was never created). Returns 0 or -1
   (*error_r set). */
static int
mailward_hold_store(struct mailward_user *muser, struct mw_store **store_r,
		    const char **error_r)
{
	const char *home, *dir;
	struct stat st;

	*store_r = NULL;
	if (muser->actor == NULL) {
		/* the session's own store (NULL when off or failed: the
		   failure made the session fail-safe) */
		*store_r = muser->store;
		return 0;
	}
	if (muser->owner_name == NULL || muser->settings_unknown != NULL ||
	    !muser->set.state_enabled)
		return 0;
	if (muser->hold_store != NULL) {
		*store_r = muser->hold_store;
		return 0;
	}
	if (mail_user_get_home(muser->user, &home) <= 0)
		home = NULL;
	dir = mailward_state_dir_path(muser->set.state_dir, home);
	if (dir == NULL || dir[0] != '/') {
		/* the owner's own sessions have no store either */
		return 0;
	}
	if (stat(t_strconcat(dir, "/data.mdb", NULL), &st) < 0) {
		if (errno == ENOENT) {
			/* no session of the owner ever wrote one */
			return 0;
		}
		*error_r = t_strdup_printf("stat(%s/data.mdb) failed: %m",
					   dir);
		return -1;
	}
	if (mw_store_open(dir, &muser->hold_store, error_r) < 0) {
		muser->hold_store = NULL;
		return -1;
	}
	*store_r = muser->hold_store;
	return 0;
}

static const char *mailward_hold_user_name(struct mailward_user *muser)
{
	return muser->owner_name != NULL ? muser->owner_name :
		muser->user->username;
}

void mailward_hold_mark_sync(struct mailward_user *muser)
{
	const char *error;
	time_t since;
	int ret;

	if (muser->store == NULL || muser->actor != NULL)
		return;
	ret = mw_store_hold_mark_get(muser->store, &since, &error);
	if (ret < 0) {
		e_error(muser->event, "Legal hold mark of user %s could not "
			"be read: %s", muser->user->username, error);
		return;
	}
	if ((ret > 0) == muser->set.hold)
		return;
	if (!muser->set.hold && since >= ioloop_time) {
		/* recorded since this session read its settings: they may
		   be older than the hold; the next session clears it */
		return;
	}
	if (mw_store_hold_mark_set(muser->store, muser->set.hold, ioloop_time,
				   &error) < 0) {
		e_error(muser->event, "Legal hold mark of user %s could not "
			"be %s: %s", muser->user->username,
			muser->set.hold ? "recorded" : "cleared", error);
		return;
	}
	e_debug(muser->event, "legal hold mark of user %s %s in the state "
		"store", muser->user->username,
		muser->set.hold ? "recorded" : "cleared");
}

int mailward_hold_recheck(struct mailward_user *muser)
{
	struct mw_store *store;
	const char *error;
	time_t since = 0;
	int ret;

	if (muser->set.hold) {
		/* held already: nothing to learn */
		muser->hold_unreadable = FALSE;
		return 0;
	}
	ret = mailward_hold_store(muser, &store, &error);
	if (ret == 0 && store != NULL)
		ret = mw_store_hold_mark_get(store, &since, &error);
	if (ret < 0) {
		muser->hold_unreadable = TRUE;
		e_error(muser->event, "Legal hold mark of user %s could not "
			"be read (%s): nothing is expunged by this decision, "
			"mail kept", mailward_hold_user_name(muser), error);
		return -1;
	}
	muser->hold_unreadable = FALSE;
	if (ret == 0 || store == NULL)
		return 0;
	muser->set.hold = TRUE;
	muser->set.hold_source = MW_SOURCE_STORE_MARK;
	e_info(mailward_named_event(muser, "mailward_hold_applied")->
	       add_str("user", mailward_hold_user_name(muser))->event(),
	       "Legal hold of user %s applied to this session, which started "
	       "before it: the state store's hold mark (recorded %s) says so; "
	       "nothing is expunged from now on",
	       mailward_hold_user_name(muser), t_strfgmtime(
		       "%Y-%m-%d %H:%M:%S UTC", since));
	return 0;
}

void mailward_hold_recheck_once(struct mailward_user *muser, bool *checked)
{
	if (checked != NULL) {
		if (*checked)
			return;
		*checked = TRUE;
	}
	(void)mailward_hold_recheck(muser);
}

const char *mailward_refuse_reason(struct mailward_user *muser)
{
	if (muser->settings_unknown != NULL)
		return "The mailbox owner's mailward settings could not be "
			"determined: messages cannot be expunged";
	if (muser->hold_unreadable)
		return "The mailbox's legal hold state could not be read "
			"(mailward): messages cannot be expunged or moved";
	if (muser->set.hold)
		return "Mailbox is under legal hold (mailward_hold): "
			"messages cannot be expunged or moved";
	return "Expunging or moving is not allowed for this user "
		"(mailward_imap_expunge=deny)";
}

bool mailward_pop3_dele_goes_ahead(struct mailward_user *muser)
{
	return !muser->hold_unreadable &&
		mw_dele_goes_ahead(&muser->set, muser->fail_safe);
}

bool mailward_expunge_refused(struct mailward_user *muser)
{
	return muser->settings_unknown != NULL || muser->set.hold ||
		muser->hold_unreadable ||
		(muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY &&
		 strcmp(muser->user->service, "imap") == 0);
}
