/* mailward POP3 plugin: POP3 session state (QUIT vs drop, RETR/TOP/DELE),
   the per-device view's UIDL consistency, the RFC 2449 EXPIRE and
   LOGIN-DELAY capabilities, LOGIN-DELAY refusals, and truthful replies
   where mailward changed what Dovecot reports */

#include "lib.h"
#include "array.h"
#include "str.h"
#include "seq-range-array.h"
#include "ostream-private.h"
#include "istream.h"
#include "ioloop.h"
#include "pop3-common.h"
#include "pop3-capability.h"
#include "pop3-client.h"
#include "pop3-settings.h"
#include "module-context.h"
#include "mail-storage-private.h"
#include "mailward-plugin.h"

#define POP3_MAILWARD_CONTEXT(obj) \
	MODULE_CONTEXT(obj, pop3_mailward_module)

/* cmd_capa() sends exactly this, in one write */
#define POP3_CAPA_REPLY "+OK\r\n" POP3_CAPABILITY_REPLY ".\r\n"
/* client_init_session()'s reply to PASS (the mail process sends it) */
#define POP3_LOGGED_IN_REPLY "+OK Logged in.\r\n"
/* cmd_quit()'s reply when DELE'd messages were expunged */
#define POP3_QUIT_DELETED_REPLY "+OK Logging out, messages deleted.\r\n"
/* fetch()'s reply to every RETR/TOP whose message can't be read */
#define POP3_EXPUNGED_PREFIX "-ERR Message "
#define POP3_EXPUNGED_SUFFIX " expunged.\r\n"

struct pop3_mailward_client {
	union pop3_module_context module_ctx;
	struct mailward_user *muser;
	struct client *client;
	/* at QUIT: the sequences of the DELE'd messages */
	ARRAY_TYPE(seq_range) quit_deleted;
	bool quit_deleted_built;
	/* LOGIN-DELAY: ends the refused session once Dovecot's login
	   handling has returned */
	struct timeout *to_login_delay;
};

/* Rewrites single reply lines (client_send_line() and cmd_capa() write
   each reply in one call). It wraps the sendv vfunc of the client's output
   stream itself (super kept, as a storage plugin wraps a mailbox's vfuncs)
   instead of stacking an ostream on it: RETR and TOP send message data a
   line per call (two for LF-only mail, some 15,000 calls for 20 messages),
   and a stream layer cost each of them a second o_stream_sendv() pass,
   about 10 % of a retrieving POP3 process's instructions. */
struct reply_filter {
	struct reply_filter *next;
	/* the client's output (its real stream) and its own sendv */
	struct ostream_private *stream;
	ssize_t (*super_sendv)(struct ostream_private *stream,
			       const struct const_iovec *iov,
			       unsigned int iov_count);
	struct mailward_user *muser;
	/* lines added to the post-login CAPA ("EXPIRE NEVER\r\n",
	   "LOGIN-DELAY 900\r\n"), or NULL */
	char *capa_lines;
	/* LOGIN-DELAY: the reply that replaces "+OK Logged in."; the
	   session sends nothing else (not even replies to commands the
	   client pipelined after PASS, which run before the mailbox is
	   opened and so see no message) */
	char *login_delay_reply;
};

const char *pop3_mailward_plugin_version = DOVECOT_ABI_VERSION;
const char *pop3_mailward_plugin_dependencies[] = { "mailward", NULL };
const char pop3_mailward_plugin_binary_dependency[] = "pop3";

void pop3_mailward_plugin_init(struct module *module);
void pop3_mailward_plugin_deinit(void);

static struct module *pop3_mailward_module_ptr;
static pop3_client_created_func_t *next_hook_client_created;
static MODULE_CONTEXT_DEFINE_INIT(pop3_mailward_module,
				  &pop3_module_register);
/* the filters of this process's clients (one, unless client_limit > 1) */
static struct reply_filter *reply_filters;

static bool iov_equals(const struct const_iovec *iov, unsigned int count,
		       const char *str, size_t len)
{
	size_t pos = 0;
	unsigned int i;

	for (i = 0; i < count; i++) {
		if (pos + iov[i].iov_len > len ||
		    memcmp(str + pos, iov[i].iov_base, iov[i].iov_len) != 0)
			return FALSE;
		pos += iov[i].iov_len;
	}
	return pos == len;
}

/* The reply line in iov as a string, if iov holds exactly one line */
static const char *
iov_line(const struct const_iovec *iov, unsigned int count, size_t total)
{
	string_t *str;
	unsigned int i;

	/* replies start with +OK or -ERR; message data is not touched */
	if (total > 256 || count == 0 || iov[0].iov_len == 0 ||
	    (((const char *)iov[0].iov_base)[0] != '+' &&
	     ((const char *)iov[0].iov_base)[0] != '-'))
		return NULL;
	str = t_str_new(total + 1);
	for (i = 0; i < count; i++)
		str_append_data(str, iov[i].iov_base, iov[i].iov_len);
	if (str_len(str) < 2 ||
	    strstr(str_c(str), "\r\n") != str_c(str) + str_len(str) - 2)
		return NULL;
	return str_c(str);
}

static bool str_has_suffix(const char *str, const char *suffix)
{
	size_t len = strlen(str), slen = strlen(suffix);

	return len >= slen && strcmp(str + len - slen, suffix) == 0;
}

/* The reply mailward makes true, or NULL to send Dovecot's as is */
static const char *
reply_rewrite(struct reply_filter *filter, const char *line)
{
	struct mailward_user *muser = filter->muser;
	const char *kept;

	if (strcmp(line, POP3_QUIT_DELETED_REPLY) == 0) {
		/* DELE'd messages that stay on the server */
		kept = mailward_pop3_quit_kept_reason(muser);
		return kept == NULL ? NULL : t_strdup_printf(
			"+OK Logging out, messages kept (%s).\r\n", kept);
	}
	if (strncmp(line, POP3_EXPUNGED_PREFIX,
		    strlen(POP3_EXPUNGED_PREFIX)) == 0 &&
	    str_has_suffix(line, POP3_EXPUNGED_SUFFIX) &&
	    mailward_user_read_refused_take(muser)) {
		/* mailward refused the read: the message exists */
		return "-ERR [SYS/TEMP] "MAILWARD_AUDIT_UNAVAILABLE_READ"\r\n";
	}
	return NULL;
}

static struct reply_filter *reply_filter_find(struct ostream_private *stream)
{
	struct reply_filter *filter;

	for (filter = reply_filters; filter != NULL; filter = filter->next) {
		if (filter->stream == stream)
			return filter;
	}
	/* only the streams of reply_filter_add() have this sendv, and they
	   are in the list until they are destroyed */
	i_unreached();
}

static ssize_t
reply_filter_send(struct reply_filter *filter, const struct const_iovec *iov,
		  unsigned int count, size_t total)
{
	ssize_t ret;

	ret = filter->super_sendv(filter->stream, iov, count);
	if (ret < 0)
		return -1;
	/* the client's output buffers without limit: all was taken; the
	   caller is told the length it wrote (client_send_line() asserts
	   it) */
	return total;
}

/* A write that may be a reply line mailward rewrites (not inlined: the
   message data path of reply_filter_sendv() stays a few instructions,
   without this function's stack frame) */
static ssize_t __attribute__((noinline))
reply_filter_sendv_reply(struct reply_filter *filter,
			 const struct const_iovec *iov, unsigned int iov_count)
{
	struct const_iovec new_iov[3];
	const char *line, *new_line;
	size_t total = 0;
	unsigned int i;
	ssize_t ret;

	for (i = 0; i < iov_count; i++)
		total += iov[i].iov_len;
	if (filter->login_delay_reply != NULL) {
		/* the login is refused: its reply, and nothing else */
		if (!iov_equals(iov, iov_count, POP3_LOGGED_IN_REPLY,
				strlen(POP3_LOGGED_IN_REPLY)))
			return total;
		new_iov[0].iov_base = filter->login_delay_reply;
		new_iov[0].iov_len = strlen(filter->login_delay_reply);
		return reply_filter_send(filter, new_iov, 1, total);
	}
	if (total > 256 && total != sizeof(POP3_CAPA_REPLY) - 1)
		return filter->super_sendv(filter->stream, iov, iov_count);
	if (filter->capa_lines != NULL &&
	    iov_equals(iov, iov_count, POP3_CAPA_REPLY,
		       strlen(POP3_CAPA_REPLY))) {
		/* post-login CAPA: add EXPIRE and LOGIN-DELAY before the
		   final "." */
		size_t head_len = strlen(POP3_CAPA_REPLY) - 3;

		new_iov[0].iov_base = POP3_CAPA_REPLY;
		new_iov[0].iov_len = head_len;
		new_iov[1].iov_base = filter->capa_lines;
		new_iov[1].iov_len = strlen(filter->capa_lines);
		new_iov[2].iov_base = ".\r\n";
		new_iov[2].iov_len = 3;
		return reply_filter_send(filter, new_iov, 3, total);
	}
	T_BEGIN {
		line = iov_line(iov, iov_count, total);
		new_line = line == NULL ? NULL :
			reply_rewrite(filter, line);
		if (new_line != NULL) {
			new_iov[0].iov_base = new_line;
			new_iov[0].iov_len = strlen(new_line);
			ret = reply_filter_send(filter, new_iov, 1, total);
		} else {
			ret = filter->super_sendv(filter->stream, iov,
						  iov_count);
		}
	} T_END;
	return ret;
}

static ssize_t
reply_filter_sendv(struct ostream_private *stream,
		   const struct const_iovec *iov, unsigned int iov_count)
{
	struct reply_filter *filter = reply_filter_find(stream);
	const char *data;

	/* message data (RETR/TOP send it a line per call) goes straight
	   on: every reply rewritten here starts with + or - */
	if (filter->login_delay_reply == NULL) {
		if (iov_count == 0 || iov[0].iov_len == 0)
			return filter->super_sendv(stream, iov, iov_count);
		data = iov[0].iov_base;
		if (data[0] != '+' && data[0] != '-')
			return filter->super_sendv(stream, iov, iov_count);
	}
	return reply_filter_sendv_reply(filter, iov, iov_count);
}

static void reply_filter_destroyed(struct reply_filter *filter)
{
	struct reply_filter **p;

	for (p = &reply_filters; *p != NULL; p = &(*p)->next) {
		if (*p == filter) {
			*p = filter->next;
			break;
		}
	}
	i_free(filter->capa_lines);
	i_free(filter->login_delay_reply);
	i_free(filter);
}

/* Puts the reply filter on output (the client's output stream) until the
   stream is destroyed */
static void
reply_filter_add(struct ostream *output, struct mailward_user *muser,
		 const char *capa_lines, const char *login_delay_reply)
{
	struct reply_filter *filter;

	filter = i_new(struct reply_filter, 1);
	filter->stream = output->real_stream;
	filter->super_sendv = output->real_stream->sendv;
	filter->muser = muser;
	filter->capa_lines = i_strdup_empty(capa_lines);
	filter->login_delay_reply = i_strdup(login_delay_reply);
	filter->next = reply_filters;
	reply_filters = filter;
	output->real_stream->sendv = reply_filter_sendv;
	o_stream_add_destroy_callback(output, reply_filter_destroyed, filter);
}

/* The storage plugin asks this while QUIT's update searches the DELE'd
   messages (msgnum to sequence as pop3's msgnum_to_seq()) */
static bool pop3_mailward_dele_at_quit(void *context, uint32_t seq)
{
	struct pop3_mailward_client *mclient = context;
	struct client *client = mclient->client;
	unsigned int msgnum;
	uint32_t mseq;

	if (!client->quit_seen || client->deleted_bitmask == NULL)
		return FALSE;
	if (!mclient->quit_deleted_built) {
		mclient->quit_deleted_built = TRUE;
		p_array_init(&mclient->quit_deleted, client->pool, 16);
		for (msgnum = 0; msgnum < client->messages_count; msgnum++) {
			if ((client->deleted_bitmask[msgnum / CHAR_BIT] &
			     (1 << (msgnum % CHAR_BIT))) == 0)
				continue;
			mseq = msgnum < client->msgnum_to_seq_map_count ?
				client->msgnum_to_seq_map[msgnum] : msgnum + 1;
			seq_range_array_add(&mclient->quit_deleted, mseq);
		}
	}
	return seq_range_exists(&mclient->quit_deleted, seq);
}

static void pop3_mailward_client_destroy(struct client *client,
					 const char *reason)
{
	struct pop3_mailward_client *mclient = POP3_MAILWARD_CONTEXT(client);
	unsigned int delay_secs, wait_secs;

	timeout_remove(&mclient->to_login_delay);
	/* (no mailbox, or one that could not be opened: the session
	   never started and Dovecot has logged why; a login refused for
	   LOGIN-DELAY records nothing) */
	if (client->mailbox != NULL && client->mailbox->opened &&
	    mclient->muser != NULL &&
	    !mailward_pop3_login_delayed(mclient->muser, &delay_secs,
					 &wait_secs)) T_BEGIN {
		/* QUIT has committed Dovecot's transaction already; a dropped
		   connection's transaction is still open and only carries
		   \Seen flags */
		mailward_pop3_session_end(mclient->muser, client->mailbox,
					  client->quit_seen,
					  client->delete_success);
	} T_END;
	if (mclient->muser != NULL) {
		/* the client and its pool go away below */
		mailward_pop3_client_end(mclient->muser);
	}
	mclient->module_ctx.super.destroy(client, reason);
}

/* LOGIN-DELAY: Dovecot's login handling has returned (its reply to PASS
   went out as -ERR [LOGIN-DELAY]): end the session as Dovecot ends one,
   flushing the reply first */
static void pop3_mailward_login_delay_end(struct pop3_mailward_client *mclient)
{
	unsigned int delay_secs, wait_secs;

	timeout_remove(&mclient->to_login_delay);
	(void)mailward_pop3_login_delayed(mclient->muser, &delay_secs,
					  &wait_secs);
	client_disconnect(mclient->client, t_strdup_printf(
		"Login refused: LOGIN-DELAY (mailward_pop3_login_delay, "
		"next login in %u s)", wait_secs));
}

static void pop3_mailward_client_created(struct client **clientp)
{
	struct client *client = *clientp;
	struct mailward_user *muser = mailward_user_get(client->user);

	if (muser != NULL &&
	    mail_user_is_plugin_loaded(client->user, pop3_mailward_module_ptr)) {
		struct pop3_mailward_client *mclient;
		struct istream *input;
		const char *login_delay_reply = NULL, *deleted_flag = NULL;
		string_t *capa = t_str_new(64);
		unsigned int delay_secs, wait_secs;

		mclient = p_new(client->pool, struct pop3_mailward_client, 1);
		mclient->module_ctx.super = client->v;
		mclient->muser = muser;
		mclient->client = client;
		client->v.destroy = pop3_mailward_client_destroy;
		MODULE_CONTEXT_SET(client, pop3_mailward_module, mclient);

		/* pop3_deleted_flag: Dovecot flags DELE'd messages instead
		   of expunging them; mailward sees that keyword update */
		if (client->set->parsed_delete_type == POP3_DELETE_TYPE_FLAG &&
		    client->set->pop3_deleted_flag[0] != '\0')
			deleted_flag = client->set->pop3_deleted_flag;
		mailward_pop3_client_start(muser, pop3_mailward_dele_at_quit,
					   mclient, deleted_flag);

		/* The per-device view hides messages from the listing. Without
		   pop3_deleted_flag Dovecot would assume the visible messages
		   are sequences 1..N: make it record the real ones. */
		if (client->set->pop3_deleted_flag[0] == '\0' &&
		    !array_is_created(&client->all_seqs))
			i_array_init(&client->all_seqs, 32);

		mailward_pop3_capability(muser, capa);
		if (mailward_pop3_login_delayed(muser, &delay_secs,
						&wait_secs)) {
			/* RFC 2449 8.1.1: the reply to PASS (sent by this
			   process) becomes -ERR [LOGIN-DELAY]; no command is
			   read, and the session ends once Dovecot's login
			   handling has returned (it must not be destroyed
			   inside it). The input is read through a stream of
			   0 bytes (not closed: Dovecot still adds an io for
			   its fd) */
			login_delay_reply = t_strdup_printf(
				"-ERR [LOGIN-DELAY] This device logged in less "
				"than %u seconds ago: try again in %u "
				"second(s).\r\n", delay_secs, wait_secs);
			input = client->input;
			client->input = i_stream_create_limit(input, 0);
			i_stream_unref(&input);
			mclient->to_login_delay = timeout_add_short(0,
				pop3_mailward_login_delay_end, mclient);
		}
		reply_filter_add(client->output, muser, str_c(capa),
				 login_delay_reply);
		e_debug(mailward_user_event(muser), "pop3 session started");
	}
	if (next_hook_client_created != NULL)
		next_hook_client_created(clientp);
}

void pop3_mailward_plugin_init(struct module *module)
{
	pop3_mailward_module_ptr = module;
	next_hook_client_created =
		pop3_client_created_hook_set(pop3_mailward_client_created);
}

void pop3_mailward_plugin_deinit(void)
{
	pop3_client_created_hook_set(next_hook_client_created);
}
