/* mailward storage plugin: a session's settings (read once, fail-safe
   on invalid values) and the fail-safe state */

#include "lib.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailward-private.h"
#include "mw-retrieval.h"
#include "mailward-settings.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#endif
#include "mailward-display.h"

#include <signal.h>
#include <unistd.h>

static mailward_notice_handler_t *mailward_notice_handler;

void mailward_notice_handler_set(mailward_notice_handler_t *handler)
{
	mailward_notice_handler = handler;
}

/* audit event names of the notices, by kind */
static const char *const mailward_notice_events[] = {
	[MAILWARD_NOTICE_STATE_ERROR] = "state_error",
	[MAILWARD_NOTICE_STATE_RESET] = "state_reset",
	[MAILWARD_NOTICE_STATE_DISCARDED] = "state_discarded",
	[MAILWARD_NOTICE_DEVICE_REGISTERED] = "device_registered",
	[MAILWARD_NOTICE_DEVICE_EVICTED] = "device_evicted",
	[MAILWARD_NOTICE_DEVICE_EXPIRED] = "device_expired",
	[MAILWARD_NOTICE_DEVICE_CHANGED] = "device_changed",
	[MAILWARD_NOTICE_DEVICE_RESOLVED] = "device_identified",
	[MAILWARD_NOTICE_DEVICE_REFUSED] = "device_refused",
};

const char *mailward_notice_event_name(enum mailward_notice_kind kind)
{
	if ((unsigned int)kind >= N_ELEMENTS(mailward_notice_events))
		return "state_unknown";
	return mailward_notice_events[kind];
}

void mailward_notice(struct mailward_user *muser,
		     enum mailward_notice_kind kind, const char *detail,
		     const struct mw_device_rec *device)
{
	if (mailward_notice_handler != NULL)
		mailward_notice_handler(muser, kind, detail, device);
}

const char *mailward_userdb_field(const char *const *fields,
				  const char *name)
{
	size_t len = strlen(name);
	unsigned int i;

	if (fields == NULL)
		return NULL;
	for (i = 0; fields[i] != NULL; i++) {
		const char *field = fields[i];

		/* unknown userdb fields become plugin/ settings */
		if (strncmp(field, "plugin/", 7) == 0)
			field += 7;
		if (strncmp(field, name, len) == 0) {
			if (field[len] == '=')
				return field + len + 1;
			if (field[len] == '\0')
				return "";
		}
	}
	return NULL;
}

const char *mailward_user_setting(struct mailward_user *muser,
				  const char *name)
{
#if DOVECOT_PREREQ(2, 4, 0)
	/* userdb fields of the same name have already overridden these */
	if (muser->dset == NULL)
		return NULL;
	return mailward_settings_find(muser->dset, name);
#else
	/* userdb fields come before plugin {} settings */
	return mail_user_plugin_getenv(muser->user, name);
#endif
}

static const char *
mailward_setting_lookup(const char *name, void *context,
			enum mw_setting_source *source_r)
{
	struct mailward_user *muser = context;
	const char *field, *value;

	field = mailward_userdb_field(muser->user->userdb_fields, name);
	if (field != NULL && field[0] == '\0') {
		/* an empty userdb field: Dovecot 2.3 reads it back as "yes",
		   2.4 as "" or unset; it is a value that does not parse
		   (mw_setting_lookup_t), never "yes" nor an unset setting */
		*source_r = MW_SOURCE_USERDB;
		return "";
	}
	value = mailward_user_setting(muser, name);
	if (value == NULL) {
		if (field == NULL)
			return NULL;
		value = "";
	}
	*source_r = field != NULL ? MW_SOURCE_USERDB : MW_SOURCE_CONFIG;
	return value;
}

void mailward_user_mark_fail_safe(struct mailward_user *muser,
				  const char *reason)
{
	if (!muser->fail_safe) {
		muser->fail_safe = TRUE;
		muser->fail_safe_reason = p_strdup(
			muser->user->pool, reason);
	}
}

void mailward_user_set_fail_safe(struct mailward_user *muser,
				 const char *reason)
{
	mailward_user_mark_fail_safe(muser, reason);
	e_error(
mailward_named_event(muser, "mailward_fail_safe")->
		add_str("reason", reason)->event(), "%s - session is fail-safe: "
		"policy expunges nothing", mailward_display(reason, 0));
	mailward_notice(muser, MAILWARD_NOTICE_STATE_ERROR, reason, NULL);
}

#ifdef MAILWARD_FAULT_INJECTION
void mailward_fault_point(struct mailward_user *muser, const char *point)
{
	const char *value;

	if (muser == NULL)
		return;
	value = mailward_user_setting(muser, "mailward_fault_inject");
	if (value != NULL && strcmp(value, point) == 0) {
		e_warning(muser->event, "fault injection: killing process at %s",
			  point);
		(void)kill(getpid(), SIGKILL);
	}
}
#endif

bool mailward_user_needs_sweep(struct mailward_user *muser)
{
	return mw_sweep_needed(&muser->set);
}

struct mail_namespace *mailward_user_inbox_ns(struct mail_user *user)
{
	struct mail_namespace *ns;

	/* mail_namespace_find_inbox() asserts that there is one */
	for (ns = user->namespaces; ns != NULL; ns = ns->next) {
		if ((ns->flags & NAMESPACE_FLAG_INBOX_USER) != 0)
			return ns;
	}
	return NULL;
}

void mailward_user_read_settings(struct mailward_user *muser,
				 mw_setting_lookup_t *lookup, void *context)
{
	struct mail_user *user = muser->user;
	const char *username = muser->owner_name != NULL ?
		muser->owner_name : user->username;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int i, error_count;

	mw_settings_read(&muser->set, lookup, context, errors, &error_count);
	for (i = 0; i < error_count; i++) {
		e_error(muser->event,
			"Invalid setting %s=%s for user %s: %s",
			errors[i].name, mailward_display(errors[i].value, 256),
			username, errors[i].reason);
	}
	if (error_count > 0) {
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"%u invalid setting(s) for user %s",
			error_count, username));
	}
	if (!muser->set.hold && muser->actor == NULL) {
		/* a legal hold in the session user's userdb field is not
		   lifted by a setting that overrides the field (doveadm -o):
		   it is lifted by changing the userdb (shared and public
		   owners' settings are read apart, with actor set) */
		const char *field = mailward_userdb_field(user->userdb_fields,
							  "mailward_hold");
		bool held = TRUE;

		if (field != NULL && (mw_bool_parse(field, &held) < 0 ||
				      held)) {
			e_warning(muser->event, "mailward_hold is overridden "
				  "to no for user %s, but the userdb field "
				  "says %s: the legal hold stays (change the "
				  "userdb field to lift it)", username,
				  mailward_display(field, 64));
			muser->set.hold = TRUE;
			muser->set.hold_source = MW_SOURCE_USERDB;
		}
	}
	muser->set.device = p_strdup(user->pool, muser->set.device);
	muser->set.state_dir = p_strdup(user->pool, muser->set.state_dir);
	muser->set.device_key = p_strdup(user->pool, muser->set.device_key);
	muser->set.audit_socket = p_strdup(user->pool, muser->set.audit_socket);
	muser->set.audit_spool = p_strdup(user->pool, muser->set.audit_spool);
	muser->set.audit_remote = p_strdup(user->pool, muser->set.audit_remote);
}

struct mailward_user *mailward_user_get(struct mail_user *user)
{
	return MAILWARD_USER_CONTEXT(user);
}

struct event *mailward_user_event(struct mailward_user *muser)
{
	return muser->event;
}

const char *mailward_user_fail_safe_reason(struct mailward_user *muser)
{
	return muser->fail_safe ? muser->fail_safe_reason : NULL;
}

bool mailward_user_read_refused_take(struct mailward_user *muser)
{
	bool refused = muser->read_refused;

	muser->read_refused = FALSE;
	return refused;
}

void mailward_user_settings_init(struct mailward_user *muser)
{
	struct mail_user *user = muser->user;

#if DOVECOT_PREREQ(2, 4, 0)
	const char *set_error;

	if (settings_get(user->event, &mailward_setting_parser_info, 0,
			 &muser->dset, &set_error) < 0) {
		muser->dset = NULL;
		mailward_user_set_fail_safe(muser, t_strdup_printf(
			"Can't read mailward settings of user %s: %s",
			user->username, set_error));
	}
#endif
	mailward_user_read_settings(muser, mailward_setting_lookup, muser);

	e_debug(muser->event, "user %s service %s: pop3_policy=%s (%s) "
		"expunge_delay=%us pop3_disposition=%s%s%s (%s) "
		"hold=%s (%s) imap_expunge=%s audit=%s",
		user->username, user->service,
		mw_pop3_policy_name(muser->set.pop3_policy),
		mw_setting_source_name(muser->set.pop3_policy_source),
		muser->set.expunge_delay_secs,
		mw_pop3_disposition_name(muser->set.disposition),
		muser->set.disposition_mailbox != NULL ? ":" : "",
		muser->set.disposition_mailbox != NULL ?
		mailward_display(muser->set.disposition_mailbox, 0) : "",
		mw_setting_source_name(muser->set.disposition_source),
		muser->set.hold ? "yes" : "no",
		mw_setting_source_name(muser->set.hold_source),
		muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		"deny" : "allow",
		muser->set.audit_socket == NULL ? "off" : t_strconcat("on (",
			mailward_display(muser->set.audit_socket, 0), ")",
			NULL));
}
