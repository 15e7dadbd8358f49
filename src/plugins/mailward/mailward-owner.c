/* mailward: whose settings decide about a mailbox's mail. A session's own
   namespaces use the session user's settings; a shared namespace uses
   its owner's (the owner's own userdb fields over the global settings); a
   public namespace, which no user owns, uses the global settings. */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "var-expand.h"
#include "settings-parser.h"
#include "master-service.h"
#include "master-service-settings.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#  include "mailward-settings.h"
#endif
#include "auth-master.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mail-storage-settings.h"
#include "mailward-private.h"
#include "mailward-audit-client.h"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

/* The context attached to an autocreated mail_user (a shared namespace
   owner, a raw user) in its mail_user_created hook: it wraps the user's
   deinit and becomes the owner's settings context once finished. */
#define MAILWARD_OWNER_CONTEXT(obj) \
	MODULE_CONTEXT(obj, mailward_owner_module)
static MODULE_CONTEXT_DEFINE_INIT(mailward_owner_module,
				  &mail_user_module_register);

struct mailward_lookup_ctx {
	/* the user settings are expanded for (owner, or the session for
	   public namespaces) */
	struct mail_user *user;
	/* the session user: its userdb fields are in user's settings too */
	struct mail_user *session;
	/* the owner's own userdb fields (NULL: none, public namespace) */
	const char *const *owner_fields;
	/* why a value could not be determined (first failure) */
	const char *error;
#if DOVECOT_PREREQ(2, 4, 0)
	/* the global settings (Dovecot 2.4), read at the first lookup
	   through an instance of their own (see mailward_global_settings) */
	struct settings_instance *set_instance;
	const struct mailward_settings *dset;
	bool dset_failed;
#endif
};

#if DOVECOT_PREREQ(2, 4, 0)
/* The global mailward settings for user: the configuration (with its
   filters and the command line's -o) without any userdb field. The
   session's settings instance carries the session user's userdb fields
   as overrides, and every settings lookup of the process (the shared
   owner's too) goes through it: a new instance of the same settings
   root has none of them. */
static int
mailward_global_settings(struct mailward_lookup_ctx *ctx,
			 const char **error_r)
{
	struct event *event;
	int ret;

	ctx->set_instance =
		settings_instance_new(settings_root_find(ctx->user->event));
	event = event_create(ctx->user->event);
	event_set_ptr(event, SETTINGS_EVENT_INSTANCE, ctx->set_instance);
	ret = settings_get(event, &mailward_setting_parser_info, 0,
			   &ctx->dset, error_r);
	event_unref(&event);
	return ret;
}

static const char *
mailward_other_setting_lookup(const char *name, void *context,
			      enum mw_setting_source *source_r)
{
	struct mailward_lookup_ctx *ctx = context;
	const char *value, *error;

	value = mailward_userdb_field(ctx->owner_fields, name);
	if (value != NULL) {
		/* an empty field stays "": mw_settings_read() rejects it */
		*source_r = MW_SOURCE_USERDB;
		return p_strdup(ctx->user->pool, value);
	}
	*source_r = MW_SOURCE_CONFIG;
	if (ctx->dset == NULL && !ctx->dset_failed) {
		if (mailward_global_settings(ctx, &error) < 0) {
			ctx->dset = NULL;
			ctx->dset_failed = TRUE;
			if (ctx->error == NULL) {
				ctx->error = p_strdup_printf(ctx->user->pool,
					"settings could not be read: %s",
					error);
			}
		}
	}
	if (ctx->dset == NULL)
		return NULL;
	value = mailward_settings_find(ctx->dset, name);
	return value == NULL ? NULL : p_strdup(ctx->user->pool, value);
}
#else
/* The plugin {} value of name as configured, before any userdb field
   replaced it. Returns 1 (value_r NULL if unset) or -1 if the global
   settings are not available in this process. */
static int
mailward_global_plugin_env(const char *name, const char **value_r)
{
	struct setting_parser_context *parser =
		master_service_get_settings_parser(master_service);
	const struct setting_parser_info *const *roots;
	void **sets;
	unsigned int i;

	if (parser == NULL)
		return -1;
	roots = settings_parser_get_roots(parser);
	sets = settings_parser_get_list(parser);
	for (i = 0; roots[i] != NULL; i++) {
		if (strcmp(roots[i]->module_name,
			   mail_user_setting_parser_info.module_name) == 0) {
			*value_r = mail_user_set_plugin_getenv(sets[i], name);
			return 1;
		}
	}
	return -1;
}

static const char *
mailward_other_setting_lookup(const char *name, void *context,
			      enum mw_setting_source *source_r)
{
	struct mailward_lookup_ctx *ctx = context;
	const char *value, *error;
	string_t *str;

	value = mailward_userdb_field(ctx->owner_fields, name);
	if (value != NULL) {
		/* an empty field stays "": mw_settings_read() rejects it
		   (Dovecot 2.3 would read it back as "yes") */
		*source_r = MW_SOURCE_USERDB;
		return p_strdup(ctx->user->pool, value);
	}
	*source_r = MW_SOURCE_CONFIG;
	if (mailward_userdb_field(ctx->session->userdb_fields, name) == NULL) {
		/* the user's settings are the session's unexpanded settings,
		   expanded for this user: only the session's userdb fields
		   differ from the global settings */
		return mail_user_plugin_getenv(ctx->user, name);
	}
	/* the session user's own field must not decide for another owner:
	   the global value, expanded for this user */
	if (mailward_global_plugin_env(name, &value) < 0) {
		if (ctx->error == NULL) {
			ctx->error = p_strdup_printf(ctx->user->pool,
				"global value of %s not available", name);
		}
		return NULL;
	}
	if (value == NULL)
		return NULL;
	str = t_str_new(128);
	if (var_expand_with_funcs(str, value,
				  mail_user_var_expand_table(ctx->user),
				  mail_user_var_expand_func_table, ctx->user,
				  &error) <= 0) {
		if (ctx->error == NULL) {
			ctx->error = p_strdup_printf(ctx->user->pool,
				"%s=%s could not be expanded: %s",
				name, value, error);
		}
		return NULL;
	}
	return p_strdup(ctx->user->pool, str_c(str));
}
#endif

static void
mailward_other_init(struct mailward_user *muser, struct mailward_user *actor,
		    struct mail_user *user, const char *owner_name)
{
	muser->user = user;
	muser->actor = actor;
	muser->owner_name = owner_name == NULL ? NULL :
		p_strdup(user->pool, owner_name);
	muser->event = event_create(actor->event);
	event_set_append_log_prefix(muser->event, owner_name == NULL ?
		"public namespace: " :
		t_strdup_printf("owner %s: ", owner_name));
}

static struct mailward_user *
mailward_other_alloc(struct mailward_user *actor, struct mail_user *user,
		     const char *owner_name)
{
	struct mailward_user *muser;

	muser = p_new(user->pool, struct mailward_user, 1);
	mailward_other_init(muser, actor, user, owner_name);
	return muser;
}

/* Reads the context's settings; on a failure nothing of the mail is
   expunged through this context. */
static void
mailward_other_settings(struct mailward_user *muser,
			struct mailward_lookup_ctx *ctx)
{
	mailward_user_read_settings(muser, mailward_other_setting_lookup, ctx);
#if DOVECOT_PREREQ(2, 4, 0)
	settings_free(ctx->dset);
	settings_instance_free(&ctx->set_instance);
#endif
	if (ctx->error != NULL && muser->settings_unknown == NULL)
		muser->settings_unknown = ctx->error;
	if (muser->settings_unknown != NULL) {
		e_error(muser->event, "Settings of %s could not be determined "
			"(%s): expunges and mailbox deletes there are refused",
			muser->owner_name != NULL ? muser->owner_name :
			"the public namespace", muser->settings_unknown);
	}
	e_debug(muser->event, "pop3_policy=%s (%s) hold=%s (%s) "
		"imap_expunge=%s",
		mw_pop3_policy_name(muser->set.pop3_policy),
		mw_setting_source_name(muser->set.pop3_policy_source),
		muser->set.hold ? "yes" : "no",
		mw_setting_source_name(muser->set.hold_source),
		muser->set.imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		"deny" : "allow");
}

static void mailward_other_audit_init(struct mailward_user *muser)
{
	struct mailward_user *actor = muser->actor;

	if (muser->set.audit_socket == NULL)
		return;
	if (actor->audit != NULL && actor->set.audit_socket != NULL &&
	    strcmp(actor->set.audit_socket, muser->set.audit_socket) == 0) {
		/* one connection, flushed with the session's commands */
		muser->audit = actor->audit;
		muser->audit_shared = TRUE;
		return;
	}
	mailward_audit_user_init(muser);
}

static void mailward_other_deinit(struct mailward_user *muser)
{
	/* the owner's store, if opened to read its hold mark */
	mw_store_unref(&muser->hold_store);
	if (muser->audit_shared)
		muser->audit = NULL;
	else if (muser->audit != NULL) {
		/* no login/logout records: not a session */
		mailward_audit_client_deinit(&muser->audit);
	}
}

static void mailward_owner_user_deinit(struct mail_user *user)
{
	struct mailward_user *muser = MAILWARD_OWNER_CONTEXT(user);
	struct mailward_user *const *others;
	unsigned int i, count;

	if (muser->actor != NULL && array_is_created(&muser->actor->others)) {
		others = array_get(&muser->actor->others, &count);
		for (i = 0; i < count; i++) {
			if (others[i] == muser) {
				array_delete(&muser->actor->others, i, 1);
				break;
			}
		}
	}
	if (muser->actor != NULL)
		mailward_other_deinit(muser);
	muser->module_ctx.super.deinit(user);
	event_unref(&muser->event);
}

/* The owner's own userdb fields, from the auth service (the lookup
   Dovecot itself does for a shared owner's home). */
static int
mailward_owner_userdb(struct mail_user *owner, const char *const **fields_r,
		      const char **error_r)
{
	struct mail_user *session = owner->creator;
	struct auth_user_info info;
	const char *username;
	pool_t pool = owner->pool;
	int ret;

	if (mail_user_auth_master_conn == NULL) {
		*error_r = "no userdb connection in this process";
		return -1;
	}
	i_zero(&info);
#if DOVECOT_PREREQ(2, 4, 0)
	info.protocol = owner->protocol;
#else
	info.service = owner->service;
#endif
	if (session->conn.local_ip != NULL)
		info.local_ip = *session->conn.local_ip;
	if (session->conn.remote_ip != NULL)
		info.remote_ip = *session->conn.remote_ip;
	ret = auth_master_user_lookup(mail_user_auth_master_conn,
				      owner->username, &info, pool,
				      &username, fields_r);
	if (ret < 0) {
		*error_r = "userdb lookup failed";
		return -1;
	}
	if (ret == 0) {
		*error_r = "user not found in userdb";
		return -1;
	}
	return 0;
}

/* Makes owner's attached context the owner's settings context, once its
   creator (the session acting on its mail) is known. */
static void mailward_owner_finish(struct mail_user *owner)
{
	struct mailward_user *muser = MAILWARD_OWNER_CONTEXT(owner);
	struct mail_user *session = owner->creator;
	struct mailward_user *actor = MAILWARD_USER_CONTEXT(session);
	struct mailward_lookup_ctx ctx;
	const char *error;

	if (actor == NULL || actor->actor != NULL) {
		/* mailward is not active for the session, or the session is
		   itself an owner: no context (its mail is then treated as
		   an unknown owner's: nothing expunged) */
		return;
	}
	mailward_other_init(muser, actor, owner, owner->username);
	MODULE_CONTEXT_SET(owner, mailward_user_module, muser);

	i_zero(&ctx);
	ctx.user = owner;
	ctx.session = session;
	if (mailward_owner_userdb(owner, &ctx.owner_fields, &error) < 0) {
		muser->settings_unknown = p_strdup_printf(owner->pool,
			"userdb lookup of %s: %s", owner->username, error);
		/* Dovecot's own lookup of the owner fails the same way */
	}
	mailward_other_settings(muser, &ctx);
	mailward_other_audit_init(muser);
	if (!array_is_created(&actor->others))
		p_array_init(&actor->others, session->pool, 4);
	array_push_back(&actor->others, &muser);
}

void mailward_owner_user_created(struct mail_user *owner)
{
	struct mail_user_vfuncs *v = owner->vlast;
	struct mailward_user *muser;

	/* attached to every autocreated user (its deinit can only be
	   wrapped now); it becomes the owner's settings context
	   (MAILWARD_USER_CONTEXT) only when finished */
	muser = p_new(owner->pool, struct mailward_user, 1);
	muser->user = owner;
	muser->module_ctx.super = *v;
	owner->vlast = &muser->module_ctx.super;
	v->deinit = mailward_owner_user_deinit;
	MODULE_CONTEXT_SET(owner, mailward_owner_module, muser);
	/* Dovecot 2.3 sets creator before this hook, 2.4 after it (then
	   mailward_owner_namespaces_created() finishes) */
	if (owner->creator != NULL)
		mailward_owner_finish(owner);
}

void mailward_owner_namespaces_created(struct mail_namespace *namespaces)
{
	struct mail_user *owner = namespaces->user;

	if (owner->autocreated && owner->creator != NULL &&
	    MAILWARD_OWNER_CONTEXT(owner) != NULL &&
	    MAILWARD_USER_CONTEXT(owner) == NULL)
		mailward_owner_finish(owner);
}

struct mailward_user *mailward_public_user(struct mailward_user *session)
{
	struct mailward_user *muser;
	struct mailward_lookup_ctx ctx;

	if (session->public_ctx != NULL)
		return session->public_ctx;
	muser = mailward_other_alloc(session, session->user, NULL);
	i_zero(&ctx);
	ctx.user = session->user;
	ctx.session = session->user;
	mailward_other_settings(muser, &ctx);
	mailward_other_audit_init(muser);
	session->public_ctx = muser;
	return muser;
}

struct mailward_user *
mailward_unknown_owner_user(struct mailward_user *session)
{
	struct mailward_user *muser;
	struct mailward_lookup_ctx ctx;

	if (session->unknown_ctx != NULL)
		return session->unknown_ctx;
	muser = mailward_other_alloc(session, session->user, "(unknown)");
	i_zero(&ctx);
	ctx.user = session->user;
	ctx.session = session->user;
	mailward_other_settings(muser, &ctx);
	/* (no error logged now: such mailboxes are listed, not used; a
	   refusal logs one) */
	muser->settings_unknown = "shared namespace mailbox without an owner";
	mailward_other_audit_init(muser);
	session->unknown_ctx = muser;
	return muser;
}

void mailward_others_deinit(struct mailward_user *session)
{
	struct mailward_user *muser;

	if (session->public_ctx != NULL)
		mailward_other_deinit(session->public_ctx);
	if (session->unknown_ctx != NULL)
		mailward_other_deinit(session->unknown_ctx);
	/* owner contexts are freed with their mail_users, which may
	   outlive this: they must not use the session's audit client */
	if (array_is_created(&session->others)) {
		array_foreach_elem(&session->others, muser) {
			if (muser->audit_shared) {
				muser->audit = NULL;
				muser->audit_shared = FALSE;
			}
		}
	}
}

void mailward_others_free(struct mailward_user *session)
{
	if (session->public_ctx != NULL)
		event_unref(&session->public_ctx->event);
	if (session->unknown_ctx != NULL)
		event_unref(&session->unknown_ctx->event);
}

struct mailward_user *mailward_mailbox_user(struct mailbox *box)
{
	struct mailward_mailbox *mbox = MAILWARD_CONTEXT(box);

	return mbox == NULL ? NULL : mbox->muser;
}
