/* doveadm mailward commands: devices, state, forget, expunge (settings
   and check: doveadm-mailward-check.c) */

#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "str.h"
#include "hex-binary.h"
#include "module-dir.h"
#include "mail-user.h"
#include "mail-namespace.h"
#include "mailbox-list-iter.h"
#include "doveadm-print.h"
#include "doveadm-mail.h"
#include "mail-storage-service.h"
#include "mailward-plugin.h"
#include "mailward-display.h"
#include "mailward-crypto.h"
#include "doveadm-mailward.h"

#include <stdio.h>
#include <sysexits.h>

const char *doveadm_mailward_plugin_version = DOVECOT_ABI_VERSION;

void doveadm_mailward_plugin_init(struct module *module);
void doveadm_mailward_plugin_deinit(void);

struct mailward_cmd_context {
	struct doveadm_mail_cmd_context ctx;
	const char *device;
	const char *mailbox;
	/* expunge: users run in this process, rows printed */
	unsigned int local_runs, rows;
};

static const struct mailward_doveadm_api *mailward_api;

const struct mailward_doveadm_api *doveadm_mailward_api(void)
{
	struct module *module;
	const struct mailward_doveadm_api *api;

	if (mailward_api != NULL)
		return mailward_api;
	module = module_dir_find(mail_storage_service_modules, "mailward");
	if (module == NULL)
		return NULL;
	api = module_get_symbol_quiet(module, MAILWARD_DOVEADM_API_SYMBOL);
	if (api == NULL || api->version != MAILWARD_DOVEADM_API_VERSION) {
		i_error("mailward: %s does not match this doveadm plugin "
			"(install both from one build)", module->path);
		return NULL;
	}
	mailward_api = api;
	return api;
}

/* The storage plugin's functions, through its table: this module has no
   link-time dependency on it. Every command gets the table (and the
   user's context) from cmd_mailward_get_user() before using these. */
#define mailward_user_store mailward_api->user_store
#define mailward_user_fail_safe_reason mailward_api->user_fail_safe_reason
#define mailward_device_forgotten mailward_api->device_forgotten
#define mailward_expunge_due mailward_api->expunge_due
#define mailward_state_flush mailward_api->state_flush
#define mailward_user_inbox_ns mailward_api->user_inbox_ns
#define mailward_mailbox_guid mailward_api->mailbox_guid
#define mailward_prune_missing_mailboxes mailward_api->prune_missing_mailboxes
#define mw_store_device_iter mailward_api->store_device_iter
#define mw_store_device_forget mailward_api->store_device_forget
#define mw_store_msg_iter mailward_api->store_msg_iter
#define mw_store_summary_get mailward_api->store_summary_get

static const char *time_str(time_t t)
{
	struct tm *tm;
	char buf[32];

	if (t == 0)
		return "";
	tm = gmtime(&t);
	if (tm == NULL || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", tm) == 0)
		return dec2str(t);
	return t_strdup(buf);
}

static struct mailward_user *
cmd_mailward_get_user(struct doveadm_mail_cmd_context *ctx,
		      struct mail_user *user, bool need_store)
{
	const struct mailward_doveadm_api *api = doveadm_mailward_api();
	struct mailward_user *muser = api == NULL ? NULL : api->user_get(user);

	if (muser == NULL) {
		i_error("mailward is not in mail_plugins for doveadm (user "
			"%s): this command needs it; see 'doveadm mailward "
			"check -u %s'", user->username, user->username);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_NOTFOUND);
		return NULL;
	}
	if (need_store && mailward_user_store(muser) == NULL) {
		const char *reason = mailward_user_fail_safe_reason(muser);

		i_error("mailward state store of user %s is not available%s%s",
			user->username, reason == NULL ? "" : ": ",
			mailward_display(reason, 0));
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return NULL;
	}
	return muser;
}

/* Command parameters: Dovecot 2.3 hands -d to parse_arg() and the
   positional arguments to init(); 2.4 has only init(ctx) and
   doveadm_cmd_param_*(). MW_INIT_ARGS declares init()'s arguments and
   MW_INIT_ARGS_GET gives it the positional arguments in both. */
#if DOVECOT_PREREQ(2, 4, 0)
#  define MW_INIT_ARGS struct doveadm_mail_cmd_context *_ctx
#  define MW_INIT_ARGS_GET \
	const char *const *args ATTR_UNUSED = cmd_mailward_params(_ctx);

static const char *const *
cmd_mailward_params(struct doveadm_mail_cmd_context *_ctx)
{
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;
	const char **args = p_new(_ctx->pool, const char *, 2);
	const char *value;

	if (doveadm_cmd_param_str(_ctx->cctx, "device", &value))
		ctx->device = p_strdup(_ctx->pool, value);
	if (doveadm_cmd_param_str(_ctx->cctx, "mailbox", &value))
		args[0] = p_strdup(_ctx->pool, value);
	return args;
}
#else
#  define MW_INIT_ARGS struct doveadm_mail_cmd_context *_ctx ATTR_UNUSED, \
	const char *const args[] ATTR_UNUSED
#  define MW_INIT_ARGS_GET

static bool
cmd_mailward_parse_arg(struct doveadm_mail_cmd_context *_ctx, int c)
{
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;

	switch (c) {
	case 'd':
		ctx->device = p_strdup(_ctx->pool, optarg);
		break;
	default:
		return FALSE;
	}
	return TRUE;
}
#endif

/* Declares the table's columns: names separated by spaces */
static void cmd_mailward_print_headers(const char *names)
{
	const char *const *name;

	for (name = t_strsplit_spaces(names, " "); *name != NULL; name++)
		doveadm_print_header_simple(*name);
}

/* init() of a command (its arguments differ between Dovecot 2.3 and 2.4:
   MW_INIT_ARGS) */
typedef void cmd_mailward_init_t(MW_INIT_ARGS);

static struct mailward_cmd_context *
cmd_mailward_alloc_common(cmd_mailward_init_t *init,
			  int (*run)(struct doveadm_mail_cmd_context *ctx,
				     struct mail_user *user))
{
	struct mailward_cmd_context *ctx;

	ctx = doveadm_mail_cmd_alloc(struct mailward_cmd_context);
#if !DOVECOT_PREREQ(2, 4, 0)
	ctx->ctx.getopt_args = "d:";
	ctx->ctx.v.parse_arg = cmd_mailward_parse_arg;
#endif
	ctx->ctx.v.init = init;
	ctx->ctx.v.run = run;
	doveadm_print_init(DOVEADM_PRINT_TYPE_TABLE);
	return ctx;
}

/* -d as given: 6 to 32 hex digits (a unique prefix is enough, as in
   'doveadm mailward devices' output); anything else is a usage error */
static void cmd_mailward_check_device_arg(const char *cmd, const char *device)
{
	char prefix[MW_DEVICE_ID_HEX_SIZE];

	if (device != NULL && mw_device_id_prefix_norm(device, prefix) < 0) {
		i_fatal_status(EX_USAGE, "%s: invalid device id '%s': need 6 "
			       "to 32 hex digits (see 'doveadm mailward "
			       "devices')", cmd, mailward_display(device, 80));
	}
}

struct device_find_ctx {
	const char *prefix;
	size_t len;
	unsigned int matches;
	struct mw_device_rec rec;
};

static int device_find_cb(const struct mw_device_rec *rec, void *context)
{
	struct device_find_ctx *ctx = context;

	if (strncmp(rec->id_hex, ctx->prefix, ctx->len) != 0)
		return 0;
	if (ctx->matches++ == 0)
		ctx->rec = *rec;
	return 0;
}

/* The user's device whose id is -d or starts with it. Returns 0 with
   rec_r filled, or -1 after logging why and setting the exit code (not
   found, ambiguous prefix, malformed id, store error). */
static int
cmd_mailward_find_device(struct doveadm_mail_cmd_context *_ctx,
			 struct mail_user *user, struct mailward_user *muser,
			 struct mw_device_rec *rec_r)
{
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;
	char prefix[MW_DEVICE_ID_HEX_SIZE];
	struct device_find_ctx fctx;
	const char *error;
	int len;

	len = mw_device_id_prefix_norm(ctx->device, prefix);
	if (len < 0) {
		i_error("mailward: invalid device id '%s': need 6 to 32 hex "
			"digits", mailward_display(ctx->device, 80));
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	i_zero(&fctx);
	fctx.prefix = prefix;
	fctx.len = len;
	if (mw_store_device_iter(mailward_user_store(muser), device_find_cb,
				 &fctx, &error) < 0) {
		i_error("mailward: %s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (fctx.matches == 0) {
		i_error("mailward: user %s has no device %s (see 'doveadm "
			"mailward devices')", user->username, prefix);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		return -1;
	}
	if (fctx.matches > 1) {
		i_error("mailward: device id prefix %s matches %u devices of "
			"user %s: give more digits", prefix, fctx.matches,
			user->username);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_PARAMS);
		return -1;
	}
	*rec_r = fctx.rec;
	return 0;
}

/* ---- doveadm mailward devices ---- */

static int devices_print_cb(const struct mw_device_rec *rec, void *context)
{
	struct mail_user *user = context;

	T_BEGIN {
		doveadm_print(mailward_display(user->username, 0));
		doveadm_print(rec->id_hex);
		doveadm_print(mailward_display(rec->label, 0));
		doveadm_print(mailward_display(rec->protocol, 0));
		doveadm_print(time_str(rec->first_seen));
		doveadm_print(time_str(rec->last_seen));
		doveadm_print(dec2str(rec->sessions));
		doveadm_print(dec2str(rec->retrieved));
		doveadm_print(dec2str(rec->deleted));
	} T_END;
	return 0;
}

static int
cmd_mailward_devices_run(struct doveadm_mail_cmd_context *ctx,
			 struct mail_user *user)
{
	struct mailward_user *muser = cmd_mailward_get_user(ctx, user, TRUE);
	const char *error;

	if (muser == NULL)
		return -1;
	if (mw_store_device_iter(mailward_user_store(muser), devices_print_cb,
				 user, &error) < 0) {
		i_error("mailward: %s", error);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

static void
cmd_mailward_devices_init(MW_INIT_ARGS)
{
	MW_INIT_ARGS_GET
	cmd_mailward_print_headers("user id label protocol first_seen last_seen "
				   "sessions retrieved deleted");
}

static struct doveadm_mail_cmd_context *cmd_mailward_devices_alloc(void)
{
	return &cmd_mailward_alloc_common(cmd_mailward_devices_init,
					  cmd_mailward_devices_run)->ctx;
}

/* ---- doveadm mailward state ---- */

struct state_row {
	uint16_t dev_no;
	/* the device that held dev_no when the records were read */
	unsigned char dev_id[MW_DEVICE_ID_SIZE];
	uint32_t mailbox_no;
	const char *mailbox_guid;
	unsigned int retrieved, deleted, pending;
	time_t next_due;
};

struct state_ctx {
	pool_t pool;
	ARRAY(struct state_row) rows;
};

static int state_iter_cb(const struct mw_msg_rec *rec, void *context)
{
	struct state_ctx *ctx = context;
	struct state_row *row = NULL;
	unsigned int count;

	count = array_count(&ctx->rows);
	if (count > 0) {
		row = array_idx_modifiable(&ctx->rows, count - 1);
		if (row->dev_no != rec->dev_no ||
		    row->mailbox_no != rec->mailbox_no)
			row = NULL;
	}
	if (row == NULL) {
		row = array_append_space(&ctx->rows);
		row->dev_no = rec->dev_no;
		memcpy(row->dev_id, rec->dev_id, sizeof(row->dev_id));
		row->mailbox_no = rec->mailbox_no;
		row->mailbox_guid = p_strdup(ctx->pool, rec->mailbox_guid_hex);
	}
	if (rec->retrieved != 0)
		row->retrieved++;
	if (rec->deleted != 0)
		row->deleted++;
	if (rec->expunge_due > MW_MSG_DUE_DISPOSED) {
		row->pending++;
		if (row->next_due == 0 || rec->expunge_due < row->next_due)
			row->next_due = rec->expunge_due;
	}
	return 0;
}

struct device_lookup_ctx {
	uint16_t dev_no;
	const unsigned char *id;
	struct mw_device_rec rec;
	bool found;
};

static int device_lookup_cb(const struct mw_device_rec *rec, void *context)
{
	struct device_lookup_ctx *ctx = context;

	/* (the number may have been handed to another device since the
	   records were read: that one is not theirs) */
	if (rec->dev_no != ctx->dev_no ||
	    memcmp(rec->id, ctx->id, MW_DEVICE_ID_SIZE) != 0)
		return 0;
	ctx->rec = *rec;
	ctx->found = TRUE;
	return 1;
}

struct summary_rows_ctx {
	struct mailward_user *muser;
	struct state_ctx *sctx;
	const char *mailbox_guid;
	int dev_no;
};

/* adds a row for a device that has a sync summary of the mailbox but no
   message records in it */
static int summary_rows_cb(const struct mw_device_rec *rec, void *context)
{
	struct summary_rows_ctx *ctx = context;
	const struct state_row *row;
	struct state_row *new_row;
	struct mw_summary_rec sum;
	const char *error;

	if (ctx->dev_no >= 0 && rec->dev_no != ctx->dev_no)
		return 0;
	array_foreach(&ctx->sctx->rows, row) {
		if (row->dev_no == rec->dev_no &&
		    strcmp(row->mailbox_guid, ctx->mailbox_guid) == 0)
			return 0;
	}
	if (mw_store_summary_get(mailward_user_store(ctx->muser), rec->dev_no,
				 ctx->mailbox_guid, &sum, &error) <= 0)
		return 0;
	new_row = array_append_space(&ctx->sctx->rows);
	new_row->dev_no = rec->dev_no;
	memcpy(new_row->dev_id, rec->id, sizeof(new_row->dev_id));
	new_row->mailbox_guid = p_strdup(ctx->sctx->pool, ctx->mailbox_guid);
	return 0;
}

static const char *
mailbox_name_by_guid(struct mail_user *user, const char *guid_hex)
{
	struct mailbox_list_iterate_context *iter;
	const struct mailbox_info *info;
	const char *name = NULL;
	const char *const patterns[] = { "*", NULL };

	iter = mailbox_list_iter_init_namespaces(user->namespaces, patterns,
		MAIL_NAMESPACE_TYPE_PRIVATE,
		MAILBOX_LIST_ITER_RETURN_NO_FLAGS |
		MAILBOX_LIST_ITER_NO_AUTO_BOXES);
	while (name == NULL &&
	       (info = mailbox_list_iter_next(iter)) != NULL) {
		struct mailbox *box = mailbox_alloc(info->ns->list,
						    info->vname, 0);
		struct mailbox_metadata md;

		if (mailbox_get_metadata(box, MAILBOX_METADATA_GUID, &md) == 0 &&
		    strcmp(binary_to_hex(md.guid, sizeof(md.guid)),
			   guid_hex) == 0)
			name = t_strdup(info->vname);
		mailbox_free(&box);
	}
	(void)mailbox_list_iter_deinit(&iter);
	return name == NULL ? "" : name;
}

/* The GUID of mailbox name in namespace ns, or NULL when it is not
   found */
static const char *
cmd_mailward_mailbox_guid(struct mailward_user *muser,
			  struct mail_namespace *ns, const char *name)
{
	struct mailbox *box = mailbox_alloc(ns->list, name, 0);
	const char *guid;

	guid = t_strdup(mailward_mailbox_guid(muser, box));
	mailbox_free(&box);
	return guid;
}

static void
state_row_print(struct mailward_user *muser, struct mail_user *user,
		const struct state_row *row)
{
	struct mw_store *store = mailward_user_store(muser);
	struct device_lookup_ctx dctx;
	struct mw_summary_rec sum;
	const char *error;
	int sret;

	i_zero(&dctx);
	dctx.dev_no = row->dev_no;
	dctx.id = row->dev_id;
	(void)mw_store_device_iter(
store, device_lookup_cb, &dctx, &error);
	doveadm_print(mailward_display(user->username, 0));
	doveadm_print(dctx.found ? dctx.rec.id_hex : "");
	doveadm_print(dctx.found ? mailward_display(dctx.rec.label, 0) : "");
	doveadm_print(mailward_display(
		mailbox_name_by_guid(user, row->mailbox_guid), 0));
	doveadm_print(row->mailbox_guid);
	doveadm_print(dec2str(row->retrieved));
	doveadm_print(dec2str(row->deleted));
	doveadm_print(dec2str(row->pending));
	doveadm_print(time_str(row->next_due));
	sret = mw_store_summary_get(store, row->dev_no, row->mailbox_guid,
				    &sum, &error);
	doveadm_print(sret > 0 ? dec2str(sum.uidvalidity) : "");
	doveadm_print(sret > 0 ? dec2str(sum.highest_uid) : "");
	doveadm_print(sret > 0 ? dec2str(sum.highestmodseq) : "");
	doveadm_print(sret > 0 ? time_str(sum.time) : "");
}

static int
cmd_mailward_state_run(struct doveadm_mail_cmd_context *_ctx,
		       struct mail_user *user)
{
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;
	struct mailward_user *muser = cmd_mailward_get_user(_ctx, user, TRUE);
	struct state_ctx sctx;
	const struct state_row *row;
	const char *error, *mbox_guid = NULL;
	struct mw_device_rec dev;
	int dev_no = -1;

	if (muser == NULL)
		return -1;
	if (ctx->device != NULL) {
		if (cmd_mailward_find_device(_ctx, user, muser, &dev) < 0)
			return -1;
		dev_no = dev.dev_no;
	}
	if (ctx->mailbox != NULL) {
		mbox_guid = cmd_mailward_mailbox_guid(muser,
			mail_namespace_find(user->namespaces, ctx->mailbox),
			ctx->mailbox);
		if (mbox_guid == NULL) {
			i_error("mailward: mailbox %s of user %s not found",
				mailward_display(ctx->mailbox, 0),
				user->username);
			doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
			return -1;
		}
	}
	i_zero(&sctx);
	sctx.pool = pool_alloconly_create("mailward state", 1024);
	p_array_init(&sctx.rows, sctx.pool, 8);
	if (mw_store_msg_iter(mailward_user_store(muser), dev_no, mbox_guid,
			      state_iter_cb, &sctx, &error) < 0) {
		i_error("mailward: %s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		pool_unref(&sctx.pool);
		return -1;
	}
	if (mbox_guid == NULL && mailward_user_inbox_ns(user) != NULL) {
		mbox_guid = cmd_mailward_mailbox_guid(muser,
			mailward_user_inbox_ns(user), "INBOX");
	}
	if (mbox_guid != NULL) {
		struct summary_rows_ctx srctx = {
			.muser = muser, .sctx = &sctx,
			.mailbox_guid = mbox_guid, .dev_no = dev_no,
		};
		(void)mw_store_device_iter(mailward_user_store(muser),
					   summary_rows_cb, &srctx, &error);
	}
	array_foreach(&sctx.rows, row) T_BEGIN {
		state_row_print(muser, user, row);
	} T_END;
	pool_unref(&sctx.pool);
	return 0;
}

static void
cmd_mailward_state_init(MW_INIT_ARGS)
{
	MW_INIT_ARGS_GET
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;

	if (args[0] != NULL) {
		ctx->mailbox = p_strdup(_ctx->pool, args[0]);
		if (args[1] != NULL)
			doveadm_mail_help_name("mailward state");
	}
	cmd_mailward_check_device_arg("mailward state", ctx->device);
	cmd_mailward_print_headers("user device label mailbox mailbox_guid "
				   "retrieved deleted pending_expunge next_due "
				   "uidvalidity highest_uid highestmodseq "
				   "last_sync");
}

static struct doveadm_mail_cmd_context *cmd_mailward_state_alloc(void)
{
	return &cmd_mailward_alloc_common(cmd_mailward_state_init,
					  cmd_mailward_state_run)->ctx;
}

/* ---- doveadm mailward forget ---- */

static int
cmd_mailward_forget_run(struct doveadm_mail_cmd_context *_ctx,
			struct mail_user *user)
{
	struct mailward_user *muser = cmd_mailward_get_user(_ctx, user, TRUE);
	struct mw_device_rec rec;
	const char *error;
	int ret;

	if (muser == NULL)
		return -1;
	if (cmd_mailward_find_device(_ctx, user, muser, &rec) < 0)
		return -1;
	ret = mw_store_device_forget(mailward_user_store(muser), rec.id_hex,
				     &rec, &error);
	if (ret < 0) {
		i_error("mailward: %s", error);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	if (ret == 0) {
		/* removed by someone else since the lookup */
		i_error("mailward: user %s has no device %s", user->username,
			rec.id_hex);
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_NOTFOUND);
		return -1;
	}
	if (mailward_device_forgotten(muser, &rec) < 0)
		doveadm_mail_failed_error(_ctx, MAIL_ERROR_TEMP);
	doveadm_print(mailward_display(user->username, 0));
	doveadm_print(rec.id_hex);
	doveadm_print(mailward_display(rec.label, 0));
	return 0;
}

static void
cmd_mailward_forget_init(MW_INIT_ARGS)
{
	MW_INIT_ARGS_GET
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;

	if (ctx->device == NULL || args[0] != NULL)
		doveadm_mail_help_name("mailward forget");
	cmd_mailward_check_device_arg("mailward forget", ctx->device);
	cmd_mailward_print_headers("user id label");
}

static struct doveadm_mail_cmd_context *cmd_mailward_forget_alloc(void)
{
	return &cmd_mailward_alloc_common(cmd_mailward_forget_init,
					  cmd_mailward_forget_run)->ctx;
}

/* ---- doveadm mailward expunge ---- */

struct expunge_print_ctx {
	struct mailward_cmd_context *cmd;
	struct mail_user *user;
};

static void expunge_print_cb(void *context, uint32_t uid, const char *guid,
			     time_t due)
{
	struct expunge_print_ctx *ctx = context;

	ctx->cmd->rows++;
	doveadm_print(mailward_display(ctx->user->username, 0));
	doveadm_print("INBOX");
	doveadm_print(dec2str(uid));
	doveadm_print(guid);
	doveadm_print(time_str(due));
}

static int
cmd_mailward_expunge_run(struct doveadm_mail_cmd_context *ctx,
			 struct mail_user *user)
{
	struct mailward_user *muser = cmd_mailward_get_user(ctx, user, TRUE);
	struct expunge_print_ctx pctx = {
		.cmd = (struct mailward_cmd_context *)ctx, .user = user,
	};
	struct mail_namespace *ns;
	struct mailbox *box;
	int ret;

	pctx.cmd->local_runs++;
	if (muser == NULL)
		return -1;
	ns = mailward_user_inbox_ns(user);
	if (ns == NULL) {
		i_error("mailward: user %s has no INBOX namespace",
			user->username);
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	box = mailbox_alloc(ns->list, "INBOX", 0);
	if (mailbox_open(box) < 0) {
		i_error("mailward: Can't open INBOX of %s: %s", user->username,
			mailbox_get_last_internal_error(box, NULL));
		doveadm_mail_failed_mailbox(ctx, box);
		mailbox_free(&box);
		return -1;
	}
	ret = mailward_expunge_due(muser, box, ioloop_time,
				   expunge_print_cb, &pctx);
	mailbox_free(&box);
	if (mailward_state_flush(muser) < 0)
		ret = -1;
	/* the sweep also drops records of mailboxes that are gone
	   (housekeeping: a failure is logged, records are kept) */
	if (ret >= 0)
		(void)mailward_prune_missing_mailboxes(muser);
	if (ret < 0) {
		doveadm_mail_failed_error(ctx, MAIL_ERROR_TEMP);
		return -1;
	}
	return 0;
}

static void
cmd_mailward_expunge_init(MW_INIT_ARGS)
{
	MW_INIT_ARGS_GET
	if (args[0] != NULL)
		doveadm_mail_help_name("mailward expunge");
	cmd_mailward_print_headers("user mailbox uid guid due");
}

/* Nothing due: no header either, so that a cron job running
   'doveadm mailward expunge -A' mails nothing. The table formatter prints
   its header at the final flush, after deinit; rows of users proxied to
   another doveadm server are not counted here, so the header is kept
   whenever some user did not run in this process. (The tab formatter
   writes its header when the columns are declared and keeps it.) */
static void cmd_mailward_expunge_deinit(struct doveadm_mail_cmd_context *_ctx)
{
	struct mailward_cmd_context *ctx = (struct mailward_cmd_context *)_ctx;

	if (ctx->local_runs > 0 && ctx->rows == 0)
		doveadm_print_hide_titles = TRUE;
}

static struct doveadm_mail_cmd_context *cmd_mailward_expunge_alloc(void)
{
	struct mailward_cmd_context *ctx =
		cmd_mailward_alloc_common(cmd_mailward_expunge_init,
					  cmd_mailward_expunge_run);

	ctx->ctx.v.deinit = cmd_mailward_expunge_deinit;
	return &ctx->ctx;
}

/* parameters: -u/-A/-S ... (DOVEADM_CMD_PARAMS_END closes the list) */
static const struct doveadm_cmd_param mailward_params_mail[] = {
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAMS_END;
/* ... and -d <device> */
static const struct doveadm_cmd_param mailward_params_device[] = {
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('d', "device", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAMS_END;
/* ... and -d <device> [<mailbox>] */
static const struct doveadm_cmd_param mailward_params_state[] = {
DOVEADM_CMD_MAIL_COMMON
DOVEADM_CMD_PARAM('d', "device", CMD_PARAM_STR, 0)
DOVEADM_CMD_PARAM('\0', "mailbox", CMD_PARAM_STR, CMD_PARAM_FLAG_POSITIONAL)
DOVEADM_CMD_PARAMS_END;

#define MAILWARD_USAGE "[-u <user>|-A] [-S <socket_path>]"

static struct doveadm_cmd_ver2 mailward_commands[] = {
	{ .name = "mailward devices", .usage = MAILWARD_USAGE,
	  .mail_cmd = cmd_mailward_devices_alloc,
	  .parameters = mailward_params_mail },
	{ .name = "mailward state",
	  .usage = MAILWARD_USAGE" [-d <device>] [<mailbox>]",
	  .mail_cmd = cmd_mailward_state_alloc,
	  .parameters = mailward_params_state },
	{ .name = "mailward forget", .usage = MAILWARD_USAGE" -d <device>",
	  .mail_cmd = cmd_mailward_forget_alloc,
	  .parameters = mailward_params_device },
	{ .name = "mailward expunge", .usage = MAILWARD_USAGE,
	  .mail_cmd = cmd_mailward_expunge_alloc,
	  .parameters = mailward_params_mail },
};

void doveadm_mailward_plugin_init(struct module *module ATTR_UNUSED)
{
	unsigned int i;

	/* this plugin's own copy of the core */
	mw_crypto_set_provider(&mailward_crypto_dovecot);
	doveadm_cmd_register_ver2(&doveadm_mailward_cmd_check);
	doveadm_cmd_register_ver2(&doveadm_mailward_cmd_settings);
	for (i = 0; i < N_ELEMENTS(mailward_commands); i++)
		doveadm_cmd_register_ver2(&mailward_commands[i]);
}

void doveadm_mailward_plugin_deinit(void)
{
}
