/* mailward-auditd: the connections of mail processes (the protocol of
   mw-audit-proto.h) and the group commit that answers their flush
   requests. */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "istream.h"
#include "ostream.h"
#include "net.h"
#include "str.h"
#include "llist.h"
#include "master-service.h"

#include <unistd.h>

#include "mw-audit-proto.h"
#include "mailward-display.h"
#include "mailward-auditd.h"

/* --- clients --- */

void auditd_client_destroy(struct auditd_client *c, const char *reason)
{
	char **idp;

	if (c->destroyed)
		return;
	c->destroyed = TRUE;
	if (reason != NULL)
		i_debug("client %s disconnected: %s", c->label, reason);
	DLLIST_REMOVE(&clients, c);
	client_count--;

	io_remove(&c->io);
	timeout_remove(&c->to_idle);
	if (c->output != NULL)
		(void)o_stream_flush(c->output);
	i_stream_destroy(&c->input);
	o_stream_destroy(&c->output);
	i_close_fd(&c->fd);
	array_foreach_modifiable(&c->flush_ids, idp)
		i_free(*idp);
	array_free(&c->flush_ids);
	i_free(c->label);
	i_free(c);
	master_service_client_connection_destroyed(master_service);
}

/* Sends a reply line (without LF). Returns -1 if the client does not read
   its replies (it is then destroyed). */
static int auditd_client_send(struct auditd_client *c, const char *line)
{
	o_stream_nsend_str(c->output, t_strconcat(line, "\n", NULL));
	if (o_stream_get_buffer_used_size(c->output) > AUDITD_MAX_OUTPUT) {
		auditd_client_destroy(c, "client does not read replies");
		return -1;
	}
	return 0;
}

static void auditd_client_error(struct auditd_client *c, const char *reason)
{
	const char *safe = mailward_display(reason, 200);

	i_error("client %s: %s", c->label, safe);
	if (auditd_client_send(c, t_strconcat(MW_AUDIT_PROTO_ERROR"\t", safe,
					      NULL)) == 0)
		auditd_client_destroy(c, NULL);
}

static bool auditd_client_busy(const struct auditd_client *c)
{
	return array_count(&c->flush_ids) > 0 ||
		c->last_serial > durable_serial;
}

static void auditd_client_idle(struct auditd_client *c)
{
	if (auditd_client_busy(c)) {
		timeout_reset(c->to_idle);
		return;
	}
	auditd_client_destroy(c, t_strdup_printf("idle for %u s",
						 set.idle_secs));
}

static int auditd_handshake(struct auditd_client *c, const char *line)
{
	const char *const *args = t_strsplit(line, "\t");
	unsigned int major, minor;

	if (str_array_length(args) < 3 || str_array_length(args) > 4 ||
	    strcmp(args[0], MW_AUDIT_PROTO_VERSION) != 0 ||
	    strcmp(args[1], MW_AUDIT_PROTOCOL_NAME) != 0 ||
	    str_to_uint(args[2], &major) < 0 ||
	    (args[3] != NULL && str_to_uint(args[3], &minor) < 0)) {
		auditd_client_error(c, t_strdup_printf(
			"expected VERSION\t%s\t%u as the first line",
			MW_AUDIT_PROTOCOL_NAME, MW_AUDIT_PROTOCOL_MAJOR));
		return -1;
	}
	if (major != MW_AUDIT_PROTOCOL_MAJOR) {
		auditd_client_error(c, t_strdup_printf(
			"unsupported protocol version %u (writer speaks %u)",
			major, MW_AUDIT_PROTOCOL_MAJOR));
		return -1;
	}
	c->handshake_done = TRUE;
	return 0;
}

static int auditd_event(struct auditd_client *c, const char *body,
			size_t len)
{
	const char *error;

	c->e_lines++;
	if (c->lost)
		return 0;
	if (mw_audit_body_validate(body, len, &error) < 0) {
		const char *safe = mailward_display(error, 200);

		c->rejects++;
		i_error("client %s: rejected event body #%llu: %s",
			c->label, (unsigned long long)c->e_lines, safe);
		if (auditd_client_send(c, t_strdup_printf(
				MW_AUDIT_PROTO_REJECTED"\t%llu\t%s",
				(unsigned long long)c->e_lines, safe)) < 0)
			return -1;
		if (c->rejects >= AUDITD_MAX_REJECTS) {
			auditd_client_error(c, "too many rejected bodies");
			return -1;
		}
		return 0;
	}
	auditd_writer_ensure();
	if (writer == NULL) {
		c->lost = TRUE;
		return 0;
	}
	/* validated above */
	if (mw_audit_writer_append_valid_body(writer, body, len,
					      &error) < 0) {
		/* the body was valid: the writer itself failed (e.g. an epoch
		   ended and its flush failed) */
		c->lost = TRUE;
		auditd_writer_failed("append", error);
		return 0;
	}
	c->last_serial = ++append_serial;
	if (append_serial - durable_serial >= AUDITD_MAX_PENDING) {
		/* bound the writer's memory: flush now, acknowledge at the end
		   of the round */
		(void)auditd_writer_flush();
	}
	/* everything appended in a round is flushed at its end, with or
	   without a flush request */
	auditd_schedule_commit();
	return 0;
}

static int auditd_flush_request(struct auditd_client *c, const char *id)
{
	const char *p;
	char *copy;

	if (*id == '\0' || strlen(id) > AUDITD_MAX_FLUSH_ID) {
		auditd_client_error(c, "invalid flush id");
		return -1;
	}
	for (p = id; *p != '\0'; p++) {
		if (*p <= ' ' || *p == 0x7f) {
			auditd_client_error(c, "invalid flush id");
			return -1;
		}
	}
	if (array_count(&c->flush_ids) >= AUDITD_MAX_FLUSH_REQUESTS) {
		auditd_client_error(c, "too many unanswered flush requests");
		return -1;
	}
	copy = i_strdup(id);
	array_push_back(&c->flush_ids, &copy);
	auditd_schedule_commit();
	return 0;
}

/* Returns -1 if the client was destroyed. */
static int auditd_line(struct auditd_client *c, const char *line, size_t len)
{
	static const char ev[] = MW_AUDIT_PROTO_EVENT"\t";
	static const char fl[] = MW_AUDIT_PROTO_FLUSH"\t";

	if (!c->handshake_done)
		return auditd_handshake(c, line);
	if (len >= sizeof(ev) - 1 && memcmp(line, ev, sizeof(ev) - 1) == 0)
		return auditd_event(c, line + sizeof(ev) - 1,
				    len - (sizeof(ev) - 1));
	if (len >= sizeof(fl) - 1 && memcmp(line, fl, sizeof(fl) - 1) == 0)
		return auditd_flush_request(c, line + sizeof(fl) - 1);
	auditd_client_error(c, t_strdup_printf("unknown command: %s",
					       t_strndup(line, I_MIN(len, 16))));
	return -1;
}

/* Takes the complete lines of what c's input holds. Returns -1 if the
   client was destroyed. */
static int auditd_client_lines(struct auditd_client *c)
{
	const unsigned char *data, *lf;
	size_t size, pos = 0;
	int r = 0;

	data = i_stream_get_data(c->input, &size);
	while (pos < size &&
	       (lf = memchr(data + pos, '\n', size - pos)) != NULL) {
		size_t len = lf - (data + pos);

		if (memchr(data + pos, '\0', len) != NULL) {
			auditd_client_error(c, "NUL byte in line");
			return -1;
		}
		T_BEGIN {
			r = auditd_line(c, t_strndup(data + pos, len), len);
		} T_END;
		if (r < 0)
			return -1;
		pos += len + 1;
	}
	i_stream_skip(c->input, pos);
	return 0;
}

static void auditd_client_input(struct auditd_client *c)
{
	unsigned int reads = 0;
	ssize_t ret;

	timeout_reset(c->to_idle);
	o_stream_cork(c->output);
	/* everything the client has sent so far, not one buffer of it: the
	   group commit at the end of the round covers all of it (a flush
	   request after 60 records was synced once per 8 KB read); bounded,
	   so that one client cannot hold the others */
	do {
		ret = i_stream_read(c->input);
		if (auditd_client_lines(c) < 0)
			return;
	} while (ret > 0 && ++reads < AUDITD_MAX_READS_PER_INPUT);
	o_stream_uncork(c->output);
	if (o_stream_flush(c->output) < 0) {
		auditd_client_destroy(c, "write error");
		return;
	}
	if (ret == -2) {
		auditd_client_error(c, t_strdup_printf(
			"line longer than %u bytes", AUDITD_MAX_LINE));
	} else if (ret < 0) {
		const char *reason = c->input->stream_errno == 0 ?
			NULL : i_stream_get_error(c->input);

		/* records sent without F are flushed at the end of the
		   round anyway; nobody waits for an answer */
		auditd_client_destroy(c, reason);
	}
}

void auditd_client_connected(struct master_service_connection *conn)
{
	struct auditd_client *c;
	struct net_unix_cred cred;

	master_service_client_connection_accept(conn);
	c = i_new(struct auditd_client, 1);
	c->fd = conn->fd;
	if (net_getunixcred(c->fd, &cred) == 0) {
		c->label = i_strdup_printf("pid=%ld uid=%ld", (long)cred.pid,
					   (long)cred.uid);
	} else {
		c->label = i_strdup_printf("fd=%d", c->fd);
	}
	c->input = i_stream_create_fd(c->fd, AUDITD_MAX_LINE + 1);
	c->output = o_stream_create_fd(c->fd, SIZE_MAX);
	o_stream_set_no_error_handling(c->output, TRUE);
	i_array_init(&c->flush_ids, 4);
	c->io = io_add(c->fd, IO_READ, auditd_client_input, c);
	c->to_idle = timeout_add(set.idle_secs * 1000, auditd_client_idle, c);
	DLLIST_PREPEND(&clients, c);
	client_count++;
	/* a mail process is back: so may be its spool files */
	if (to_spool != NULL)
		timeout_reset(to_spool);
	(void)auditd_client_send(c, t_strdup_printf(
		MW_AUDIT_PROTO_VERSION"\t%s\t%u\t%u", MW_AUDIT_PROTOCOL_NAME,
		MW_AUDIT_PROTOCOL_MAJOR, MW_AUDIT_PROTOCOL_MINOR));
}

/* --- group commit --- */

/* TRUE if one of c's flush requests asks for durable records (an id
   without the "written" mark) */
static bool auditd_client_wants_durable(const struct auditd_client *c)
{
	char *const *idp;

	array_foreach(&c->flush_ids, idp) {
		if ((*idp)[0] != MW_AUDIT_PROTO_WRITTEN_MARK)
			return TRUE;
	}
	return FALSE;
}

/* Answers c's flush requests after a group commit; a client whose
   records were lost gets FAIL and is disconnected. c may be freed. */
static void auditd_client_answer(struct auditd_client *c)
{
	const char *reply, *reason;
	unsigned int i, count;
	char **ids;

	/* a lost client is told at its next F (it may be sending one now;
	   closing first would make it see only a reset connection) */
	if (array_count(&c->flush_ids) == 0)
		return;
	if (c->lost) {
		reason = writer_error != NULL ?
			mailward_display(writer_error, 400) :
			"audit writer unavailable";
	} else {
		i_assert(c->last_serial <= (auditd_client_wants_durable(c) ?
					    durable_serial :
					    I_MAX(durable_serial,
						  written_serial)));
		if (c->last_serial > durable_serial)
			written_acked = TRUE;
		reason = NULL;
	}
	ids = array_get_modifiable(&c->flush_ids, &count);
	for (i = 0; i < count; i++) {
		reply = reason == NULL ?
			t_strdup_printf(MW_AUDIT_PROTO_FLUSH"\t%s\t"
					MW_AUDIT_PROTO_OK, ids[i]) :
			t_strdup_printf(MW_AUDIT_PROTO_FLUSH"\t%s\t"
					MW_AUDIT_PROTO_FAIL"\t%s", ids[i],
					reason);
		if (auditd_client_send(c, reply) < 0)
			return; /* destroyed */
	}
	if (c->lost) {
		auditd_client_destroy(c, "records lost: writer failed");
		return;
	}
	for (i = 0; i < count; i++)
		i_free(ids[i]);
	array_clear(&c->flush_ids);
	if (o_stream_flush(c->output) < 0)
		auditd_client_destroy(c, "write error");
}

/* End of an ioloop round with flush requests: one flush for everything
   appended, then an answer to every F. The flush is a write() and an
   fdatasync() if one of the requests asks for durable records; if all
   of them ask only for "written" (or there are none), a write(), and the
   sync follows within AUDITD_SYNC_MSECS (auditd_writer_write()). */
void auditd_commit(void *context ATTR_UNUSED)
{
	struct auditd_client *c, *next;
	bool durable = FALSE;

	timeout_remove(&to_commit);
	for (c = clients; c != NULL && !durable; c = c->next)
		durable = auditd_client_wants_durable(c);
	if (durable)
		(void)auditd_writer_flush();
	else
		(void)auditd_writer_write();

	for (c = clients; c != NULL; c = next) {
		next = c->next;
		T_BEGIN {
			auditd_client_answer(c);
		} T_END;
	}
	auditd_schedule_tick();
}

