/* doveadm mailward check and doveadm mailward settings: what the
   configuration gives a user, read without the storage plugin (they work
   also when mailward is missing from doveadm's mail_plugins, which is one
   of the mistakes check reports). */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "net.h"
#include "master-service.h"
#include "mail-user.h"
#include "mail-storage-settings.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "mailward-display.h"
#include "mailward-state-dir.h"
#include "mw-policy.h"
#include "doveadm-mailward.h"
#include "doveadm-mailward-doveconf.h"
#if DOVECOT_PREREQ(2, 4, 0)
#  include "settings.h"
#  include "mailward-settings.h"
#endif

#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

/* services whose mail processes can expunge: mailward must be loaded in
   each (a missing one expunges held mail unaudited) */
static const char *const mailward_expunging_services[] = {
	"imap", "pop3", "lmtp", "doveadm", "indexer-worker", NULL
};

struct check_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	unsigned int problems;
	/* from the configuration, read once as root */
	bool writer_configured;
	bool doveadm_has_mailward;
};

/* ---- settings as a user gets them (Dovecot 2.3: plugin {} and userdb
   fields, the latter first) ---- */

/* The raw value of the user's userdb field name: "" for an empty field,
   NULL if there is none. */
static const char *
mailward_userdb_value(struct mail_user *user, const char *name)
{
	size_t len = strlen(name);
	unsigned int i;

	if (user->userdb_fields == NULL)
		return NULL;
	for (i = 0; user->userdb_fields[i] != NULL; i++) {
		const char *field = user->userdb_fields[i];

		if (strncmp(field, name, len) != 0)
			continue;
		if (field[len] == '=')
			return field + len + 1;
		if (field[len] == '\0')
			return "";
	}
	return NULL;
}

static bool
mailward_userdb_has(struct mail_user *user, const char *name)
{
	return mailward_userdb_value(user, name) != NULL;
}

/* A mailward setting as the user gets it (userdb field first), NULL if
   unset; Dovecot 2.4: from mailward's settings struct, an empty userdb
   field as "" (invalid), as in the storage plugin. */
static const char *
mailward_check_getenv(struct mail_user *user, const char *name)
{
#if DOVECOT_PREREQ(2, 4, 0)
	const struct mailward_settings *dset;
	const char *value, *error;

	if (settings_get(user->event, &mailward_setting_parser_info, 0,
			 &dset, &error) < 0) {
		i_error("mailward: settings of user %s: %s",
			mailward_display(user->username, 0), error);
		return NULL;
	}
	value = mailward_settings_find(dset, name);
	if (value == NULL && mailward_userdb_has(user, name))
		value = "";
	value = value == NULL ? NULL : p_strdup(user->pool, value);
	settings_free(dset);
	return value;
#else
	return mail_user_plugin_getenv(user, name);
#endif
}

/* the same lookup as the storage plugin's (mailward-plugin.c) */
static const char *
mailward_check_lookup(const char *name, void *context,
		      enum mw_setting_source *source_r)
{
	struct mail_user *user = context;
	const char *value, *field;

	field = mailward_userdb_value(user, name);
	if (field != NULL && field[0] == '\0') {
		/* an empty userdb field (2.3 reads it back as "yes"): "" */
		*source_r = MW_SOURCE_USERDB;
		return "";
	}
	value = mailward_check_getenv(user, name);
	if (value == NULL)
		return NULL;
	*source_r = mailward_userdb_has(user, name) ?
		MW_SOURCE_USERDB : MW_SOURCE_CONFIG;
	return value;
}

static const char *
mailward_setting_source(struct mail_user *user, const char *name)
{
	enum mw_setting_source source = MW_SOURCE_DEFAULT;

	(void)mailward_check_lookup(name, user, &source);
	return mw_setting_source_name(source);
}

static const char *
mailward_audit_socket_full(struct mail_user *user, const char *setting)
{
	if (setting[0] == '/')
		return setting;
	return t_strconcat(user->set->base_dir, "/", setting, NULL);
}

/* Returns the state directory the storage plugin would use, or NULL
   (no home and no mailward_state_dir). */
static const char *
mailward_check_state_dir(struct mail_user *user, const struct mw_settings *set)
{
	const char *home;

	if (mail_user_get_home(user, &home) <= 0)
		home = NULL;
	return mailward_state_dir_path(set->state_dir, home);
}

/* ---- doveadm mailward settings ---- */

static int
cmd_mailward_settings_run(struct doveadm_mail_cmd_context *ctx ATTR_UNUSED,
			  struct mail_user *user)
{
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	const struct mailward_doveadm_api *api = doveadm_mailward_api();
	struct mailward_user *muser = api == NULL ? NULL : api->user_get(user);
	unsigned int i, j, error_count;
	const char *username = mailward_display(user->username, 0);
	const char *audit_status = "ok";

	mw_settings_read(&set, mailward_check_lookup, user, errors,
			 &error_count);
	for (i = 0; mw_setting_defs[i].name != NULL; i++) T_BEGIN {
		const char *name = mw_setting_defs[i].name;
		const char *value = mailward_check_getenv(user, name);
		const char *status = "ok";

		for (j = 0; j < error_count; j++) {
			if (strcmp(errors[j].name, name) == 0) {
				status = t_strconcat("invalid: ",
						     errors[j].reason, NULL);
				break;
			}
		}
		if (strcmp(name, "mailward_audit_socket") == 0)
			audit_status = status;
		doveadm_print(username);
		doveadm_print(name);
		doveadm_print(mailward_display(value != NULL ? value :
			mw_setting_defs[i].default_text, 0));
		doveadm_print(mailward_setting_source(user, name));
		doveadm_print(status);
	} T_END;

	/* what the settings amount to */
	doveadm_print(username);
	doveadm_print("audit");
	doveadm_print(set.audit_socket == NULL ? "off" : t_strconcat("on: ",
		mailward_audit_socket_full(user, set.audit_socket), NULL));
	doveadm_print(mailward_setting_source(user, "mailward_audit_socket"));
	doveadm_print(audit_status);

	doveadm_print(username);
	doveadm_print("fail_safe");
	if (muser != NULL) {
		const char *reason = api->user_fail_safe_reason(muser);

		doveadm_print(reason != NULL ? "yes" : "no");
		doveadm_print("session");
		doveadm_print(mailward_display(reason, 0));
	} else {
		doveadm_print(error_count > 0 ? "yes" : "unknown");
		doveadm_print("settings");
		doveadm_print("mailward is not in mail_plugins for doveadm: "
			      "this row shows the settings only");
	}
	return 0;
}

/* init(): Dovecot 2.3 passes the positional arguments, 2.4 has none
   (doveadm itself rejects undeclared ones there) */
#if DOVECOT_PREREQ(2, 4, 0)
#  define CHECK_INIT_ARGS struct doveadm_mail_cmd_context *_ctx ATTR_UNUSED
#  define CHECK_NO_ARGS(name)
#else
#  define CHECK_INIT_ARGS struct doveadm_mail_cmd_context *_ctx ATTR_UNUSED, \
	const char *const args[]
#  define CHECK_NO_ARGS(name) \
	if (args[0] != NULL) doveadm_mail_help_name(name)
#endif

static void
cmd_mailward_settings_init(CHECK_INIT_ARGS)
{
	CHECK_NO_ARGS("mailward settings");
	doveadm_print_header_simple("user");
	doveadm_print_header_simple("setting");
	doveadm_print_header_simple("value");
	doveadm_print_header_simple("source");
	doveadm_print_header_simple("status");
}

static struct doveadm_mail_cmd_context *cmd_mailward_settings_alloc(void)
{
	struct doveadm_mail_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct doveadm_mail_cmd_context);
#if !DOVECOT_PREREQ(2, 4, 0)
	ctx->getopt_args = "";
#endif
	ctx->v.init = cmd_mailward_settings_init;
	ctx->v.run = cmd_mailward_settings_run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return ctx;
}

/* ---- doveadm mailward check ---- */

/* One problem: a line of output. Problems of a user are printed while
   that user runs: with -A doveadm's own first column names the user. */
static void ATTR_FORMAT(2, 3)
check_problem(struct check_cmd_context *ctx, const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	T_BEGIN {
		doveadm_print(t_strdup_vprintf(fmt, args));
	} T_END;
	va_end(args);
	/* the exit code is set by run(): Dovecot 2.4's doveadm stops before
	   the first user when init() sets one */
	ctx->problems++;
}

static bool plugin_list_has(const char *list, const char *name)
{
	const char *const *p;

	for (p = t_strsplit_spaces(list, " ,"); *p != NULL; p++) {
		if (strcmp(*p, name) == 0)
			return TRUE;
	}
	return FALSE;
}

static bool protocols_has(const char *protocols, const char *service)
{
	if (strcmp(service, "doveadm") == 0 ||
	    strcmp(service, "indexer-worker") == 0)
		return TRUE;
	return plugin_list_has(protocols, service);
}

/* the value of an option (-K PATH) on the writer's executable line */
static const char *
writer_option(const char *executable, const char *option)
{
	const char *const *args = t_strsplit_spaces(executable, " ");
	unsigned int i;

	for (i = 0; args[i] != NULL; i++) {
		if (strcmp(args[i], option) == 0 && args[i + 1] != NULL)
			return args[i + 1];
	}
	return NULL;
}

static void
check_writer_key(struct check_cmd_context *ctx, const char *what,
		 const char *path, const char *writer_user)
{
	struct passwd *pw = getpwnam(writer_user);
	struct stat st;

	if (path == NULL) {
		check_problem(ctx, "config: service mailward-audit: no %s "
			      "option on its executable line", what);
		return;
	}
	if (stat(path, &st) < 0) {
		check_problem(ctx, "config: service mailward-audit: %s %s: "
			      "stat() failed: %m", what, path);
		return;
	}
	if (pw == NULL) {
		check_problem(ctx, "config: service mailward-audit: user %s "
			      "does not exist", writer_user);
	} else if (st.st_uid != pw->pw_uid) {
		check_problem(ctx, "config: service mailward-audit: %s %s is "
			      "owned by uid %ld, not by the writer's user %s "
			      "(uid %ld)", what, path, (long)st.st_uid,
			      writer_user, (long)pw->pw_uid);
	}
	if ((st.st_mode & 0077) != 0) {
		check_problem(ctx, "config: service mailward-audit: %s %s has "
			      "mode %04o: it must be readable only by the "
			      "writer's user (chmod 0600)", what, path,
			      (unsigned int)(st.st_mode & 07777));
	}
}

/* mailward (and its protocol plugin) in the mail_plugins of each service
   whose processes can expunge */
static void check_config_plugins(struct check_cmd_context *ctx,
				 const char *protocols)
{
	const char *plugins, *error, *dump = NULL;
	unsigned int i;

	for (i = 0; mailward_expunging_services[i] != NULL; i++) {
		const char *service = mailward_expunging_services[i];

		if (!protocols_has(protocols, service))
			;
		else if (mailward_doveconf_mail_plugins(service, &dump,
						  &plugins, &error) < 0) {
			check_problem(ctx, "config: protocol %s: cannot read "
				      "mail_plugins: %s", service, error);
		} else if (!plugin_list_has(plugins, "mailward")) {
			check_problem(ctx, "config: protocol %s: mail_plugins "
				      "= %s lacks mailward: its processes "
				      "expunge without policy, hold or audit "
				      MAILWARD_DOVECONF_PLUGINS_HINT, service,
				      mailward_display(plugins, 200));
		} else {
			if (strcmp(service, "doveadm") == 0)
				ctx->doveadm_has_mailward = TRUE;
			if ((strcmp(service, "pop3") == 0 ||
			     strcmp(service, "imap") == 0) &&
			    !plugin_list_has(plugins, t_strconcat(
				service, "_mailward", NULL))) {
				check_problem(ctx, "config: protocol %s: "
					      "mail_plugins = %s lacks "
					      "%s_mailward", service,
					      mailward_display(plugins, 200),
					      service);
			}
		}
	}
}

/* the configuration as a whole: run once, as root */
static void check_config(struct check_cmd_context *ctx)
{
	const char *protocols, *executable, *writer_user, *error;

	if (mailward_doveconf_get(NULL, "protocols", &protocols, &error) < 0) {
		check_problem(ctx, "config: cannot read the configuration: %s",
			      error);
		return;
	}
	T_BEGIN {
		check_config_plugins(ctx, protocols);
	} T_END;

	if (mailward_doveconf_get(NULL, "service/mailward-audit/executable",
			 &executable, &error) < 0 || executable[0] == '\0')
		return;
	ctx->writer_configured = TRUE;
	if (mailward_doveconf_get(NULL, "service/mailward-audit/user", &writer_user,
			 &error) < 0 || writer_user[0] == '\0') {
		check_problem(ctx, "config: service mailward-audit has no user "
			      "(the writer must run as its own user)");
		return;
	}
	check_writer_key(ctx, "writer key (-K)",
			 writer_option(executable, "-K"), writer_user);
	check_writer_key(ctx, "checkpoint key (-s)",
			 writer_option(executable, "-s"), writer_user);
}

/* Can the process (the mail uid) create or use the state directory? */
static void
check_state_dir(struct check_cmd_context *ctx, const char *dir)
{
	const char *parent, *slash;
	struct stat st;

	if (dir[0] != '/') {
		check_problem(ctx, "state directory %s is not an absolute "
			      "path (mailward_state_dir)",
			      mailward_display(dir, 0));
		return;
	}
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			check_problem(ctx, "state directory %s is "
				      "not a directory", dir);
		} else if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK,
				     AT_EACCESS) < 0) {
			check_problem(ctx, "state directory %s is "
				      "not usable by uid %ld: %m (owner uid "
				      "%ld, mode %04o)", dir,
				      (long)geteuid(), (long)st.st_uid,
				      (unsigned int)(st.st_mode & 07777));
		}
		return;
	}
	if (errno != ENOENT) {
		check_problem(ctx, "state directory %s: stat() "
			      "failed: %m", dir);
		return;
	}
	/* created at the first session: the nearest existing parent must
	   let the mail uid create it */
	parent = dir;
	for (;;) {
		slash = strrchr(parent, '/');
		parent = slash == parent ? "/" :
			t_strdup_until(parent, slash);
		if (stat(parent, &st) == 0 || errno != ENOENT ||
		    strcmp(parent, "/") == 0)
			break;
	}
	if (faccessat(AT_FDCWD, parent, W_OK | X_OK, AT_EACCESS) < 0) {
		check_problem(ctx, "state directory %s does not exist and "
			      "uid %ld cannot create it in %s: %m", dir,
			      (long)geteuid(), parent);
	}
}

static void
check_audit_socket(struct check_cmd_context *ctx, struct mail_user *user,
		   const char *setting)
{
	const char *path = mailward_audit_socket_full(user, setting);
	struct stat st;
	int fd, connect_errno;

	fd = net_connect_unix(path);
	if (fd >= 0) {
		i_close_fd(&fd);
		return;
	}
	connect_errno = errno;
	if (stat(path, &st) == 0) {
		errno = connect_errno;
		check_problem(ctx, "audit writer socket %s: connect() "
			      "as uid %ld failed: %m (socket owner uid %ld "
			      "gid %ld mode %04o)", path,
			      (long)geteuid(), (long)st.st_uid,
			      (long)st.st_gid,
			      (unsigned int)(st.st_mode & 07777));
	} else {
		errno = connect_errno;
		check_problem(ctx, "audit writer socket %s: connect() "
			      "as uid %ld failed: %m%s", path,
			      (long)geteuid(), ctx->writer_configured ? "" :
			      " (no service mailward-audit is configured)");
	}
}

/* The spool where a session's records wait while the writer is away
   (docs/audit-service.md §5): a directory this uid can create files in,
   that it cannot list, and whose files it cannot remove unless its own. */
static void
check_audit_spool(struct check_cmd_context *ctx, struct mail_user *user,
		  const char *setting)
{
	const char *path;
	struct stat st;

	if (setting == NULL) {
		check_problem(ctx, "audit is on but mailward_audit_spool is "
			      "not set: records of sessions that end while "
			      "the writer is away are lost");
		return;
	}
	path = mailward_audit_socket_full(user, setting);
	if (stat(path, &st) < 0) {
		check_problem(ctx, "audit spool %s: stat() as uid %ld failed: "
			      "%m", path, (long)geteuid());
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_problem(ctx, "audit spool %s is not a directory", path);
		return;
	}
	/* (doveadm's effective uid is the mail user's) */
	if (faccessat(AT_FDCWD, path, W_OK | X_OK, AT_EACCESS) < 0) {
		check_problem(ctx, "audit spool %s: uid %ld cannot create "
			      "files in it: %m (owner uid %ld gid %ld mode "
			      "%04o; use mode 3733)", path, (long)geteuid(),
			      (long)st.st_uid, (long)st.st_gid,
			      (unsigned int)(st.st_mode & 07777));
		return;
	}
	if ((st.st_mode & (S_ISVTX | S_ISGID | S_IROTH)) !=
	    (S_ISVTX | S_ISGID)) {
		check_problem(ctx, "audit spool %s has mode %04o: other users "
			      "can list it or remove files they did not "
			      "create, or the writer cannot read the files "
			      "(use mode 3733, owned by the writer's user and "
			      "group)", path,
			      (unsigned int)(st.st_mode & 07777));
	}
}

/* the user's own mail_plugins (a userdb field can replace them) */
static void
check_user_plugins(struct check_cmd_context *ctx, struct mail_user *user)
{
	if (!ctx->doveadm_has_mailward)
		return;
#if DOVECOT_PREREQ(2, 4, 0)
	const char *name;

	array_foreach_elem(&user->set->mail_plugins, name) {
		if (strcmp(name, "mailward") == 0)
			return;
	}
	check_problem(ctx, "mail_plugins (from userdb) lacks mailward");
#else
	if (!plugin_list_has(user->set->mail_plugins, "mailward")) {
		check_problem(ctx, "mail_plugins = %s (from userdb) lacks "
			      "mailward",
			      mailward_display(user->set->mail_plugins, 200));
	}
#endif
}

/* unknown mailward_* keys: misspelled settings are ignored. Dovecot 2.4
   refuses unknown keys in the configuration files itself (doveconf, and
   so doveadm, fail naming the key) but ignores unknown userdb fields:
   those are looked for here. */
static void
check_unknown_keys(struct check_cmd_context *ctx, struct mail_user *user)
{
#if DOVECOT_PREREQ(2, 4, 0)
	const char *const *fields = user->userdb_fields;
	const char *name, *value;

	for (; fields != NULL && *fields != NULL; fields++) T_BEGIN {
		value = strchr(*fields, '=');
		name = value == NULL ? *fields :
			t_strdup_until(*fields, value++);
		if (strncmp(name, "mailward_", 9) == 0 &&
		    !mw_setting_is_known(name)) {
			check_problem(ctx, "unknown setting %s = %s (userdb): "
				      "ignored by mailward",
				      mailward_display(name, 0),
				      mailward_display(value == NULL ? "" :
						       value, 200));
		}
	} T_END;
#else
	const char *const *envs;
	unsigned int i, count;

	envs = array_get(&user->set->plugin_envs, &count);
	for (i = 0; i + 1 < count; i += 2) {
		if (strncmp(envs[i], "mailward_", 9) == 0 &&
		    !mw_setting_is_known(envs[i])) {
			check_problem(ctx, "unknown setting %s = %s (%s): "
				      "ignored by mailward",
				      mailward_display(envs[i], 0),
				      mailward_display(envs[i + 1], 200),
				      mailward_setting_source(user, envs[i]));
		}
	}
#endif
}

static int
cmd_mailward_check_run(struct doveadm_mail_cmd_context *_ctx,
		       struct mail_user *user)
{
	struct check_cmd_context *ctx = (struct check_cmd_context *)_ctx;
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	const char *username = mailward_display(user->username, 0);
	const char *dir;
	unsigned int i, error_count;

	check_user_plugins(ctx, user);
	check_unknown_keys(ctx, user);

	mw_settings_read(&set, mailward_check_lookup, user, errors,
			 &error_count);
	for (i = 0; i < error_count; i++) {
		check_problem(ctx, "invalid %s = %s (%s): %s", errors[i].name,
			      mailward_display(errors[i].value, 200),
			      mailward_setting_source(user, errors[i].name),
			      errors[i].reason);
	}

	if (set.audit_socket == NULL) {
		if (ctx->writer_configured) {
			check_problem(ctx, "audit is off "
				      "(mailward_audit_socket is not set) "
				      "although service mailward-audit is "
				      "configured");
		} else {
			i_info("mailward: user %s: audit is off "
			       "(mailward_audit_socket is not set)", username);
		}
	} else {
		check_audit_socket(ctx, user, set.audit_socket);
		check_audit_spool(ctx, user, set.audit_spool);
	}

	if (set.state_enabled) {
		dir = mailward_check_state_dir(user, &set);
		if (dir == NULL) {
			check_problem(ctx, "no home directory and no "
				      "usable mailward_state_dir: no state "
				      "store");
		} else {
			check_state_dir(ctx, dir);
		}
	}
	if (ctx->problems > 0)
		ctx->ctx.exit_code = EX_CONFIG;
	return 0;
}

static void
cmd_mailward_check_init(CHECK_INIT_ARGS)
{
	struct check_cmd_context *ctx = (struct check_cmd_context *)_ctx;

	CHECK_NO_ARGS("mailward check");
	doveadm_print_header_simple("problem");
	if (!ctx->ctx.iterate_single_user) {
		/* -A: doveadm's Username column has no value before the
		   first user; the configuration's lines belong to none */
		doveadm_print_sticky("username", "");
	}
	check_config(ctx);
}

static struct doveadm_mail_cmd_context *cmd_mailward_check_alloc(void)
{
	struct check_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct check_cmd_context);
#if !DOVECOT_PREREQ(2, 4, 0)
	ctx->ctx.getopt_args = "";
#endif
	ctx->ctx.v.init = cmd_mailward_check_init;
	ctx->ctx.v.run = cmd_mailward_check_run;
	/* one line per problem, no padding; the tab formatter prints titles
	   when they are declared (doveadm's own Username column of -A too) */
	doveadm_print_init(DOVEADM_PRINT_TYPE_TAB);
	doveadm_print_hide_titles = TRUE;
	return &ctx->ctx;
}

struct doveadm_cmd_ver2 doveadm_mailward_cmd_settings = {
	.name = "mailward settings",
	.usage = "[-u <user>|-A] [-S <socket_path>]",
	.mail_cmd = cmd_mailward_settings_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
};

struct doveadm_cmd_ver2 doveadm_mailward_cmd_check = {
	.name = "mailward check",
	.usage = "[-u <user>|-A]",
	.mail_cmd = cmd_mailward_check_alloc,
DOVEADM_CMD_PARAMS_START
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END
};
