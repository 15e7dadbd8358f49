/* Mail-process client of mailward-auditd. See mailward-audit-client.h and
   docs/audit-log.md ("Writer protocol"). */

#include "lib.h"
#include "array.h"
#include "ioloop.h"
#include "net.h"
#include "str.h"
#include "time-util.h"
#include "mailward-audit-client-private.h"
#include "mw-util.h"
#include "mw-audit.h"
#include "mw-audit-proto.h"
#include "mailward-display.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* the writer's reply lines are short; anything longer is an error */
#define AUDIT_MAX_REPLY_LINE 4096
/* bytes written per send() */
#define AUDIT_SEND_CHUNK (64 * 1024)
#define AUDIT_BACKOFF_MSECS 5000

enum audit_io_result {
	AUDIT_IO_OK = 0,
	/* connection closed or reset by the writer: reconnecting may help */
	AUDIT_IO_CLOSED = -1,
	/* anything else: timeout, protocol error, writer failure */
	AUDIT_IO_FAILED = -2,
};

const char *mailward_audit_socket_path(const char *setting,
				       const char *base_dir)
{
	if (setting == NULL || *setting == '\0')
		setting = MW_AUDIT_DEFAULT_SOCKET;
	if (*setting == '/')
		return setting;
	return t_strconcat(base_dir, "/", setting, NULL);
}

struct mailward_audit_client *
mailward_audit_client_init(const char *socket_path, struct event *event)
{
	struct mailward_audit_client *client;

	client = i_new(struct mailward_audit_client, 1);
	client->socket_path = i_strdup(socket_path);
	client->event = event_create(event);
	event_set_append_log_prefix(client->event, "audit: ");
	client->timeout_msecs = MAILWARD_AUDIT_DEFAULT_TIMEOUT_MSECS;
	i_array_init(&client->queue, 16);
	client->fd = -1;
	client->inbuf = str_new(default_pool, 256);
	client->error = str_new(default_pool, 128);
	return client;
}

void mailward_audit_client_set_spool(struct mailward_audit_client *client,
				     const char *spool_dir)
{
	i_free(client->spool_dir);
	client->spool_dir = spool_dir == NULL || spool_dir[0] == '\0' ?
		NULL : i_strdup(spool_dir);
}

void mailward_audit_client_set_timeout(struct mailward_audit_client *client,
				       unsigned int msecs)
{
	client->timeout_msecs = msecs == 0 ? 1 : msecs;
}

void mailward_audit_client_set_written_at_deinit(
	struct mailward_audit_client *client, bool written)
{
	client->written_at_deinit = written;
}

static void audit_disconnect(struct mailward_audit_client *client)
{
	if (client->fd != -1) {
		if (close(client->fd) < 0) {
			e_error(client->event, "close(%s) failed: %m",
				client->socket_path);
		}
		client->fd = -1;
	}
	str_truncate(client->inbuf, 0);
	client->version_sent = FALSE;
	client->version_received = FALSE;
	client->conn_e_lines = 0;
}

void mailward_audit_client_deinit(struct mailward_audit_client **_client)
{
	struct mailward_audit_client *client = *_client;
	const char *error;
	unsigned int n;

	*_client = NULL;
	n = mailward_audit_queued(client);
	if (n > 0 || client->dropped > 0) {
		if (mailward_audit_flush(client, client->written_at_deinit,
					 &error) < 0) {
			n = mailward_audit_queued(client);
			if (n > 0) T_BEGIN {
				mailward_audit_spool_or_lose(client, n, error);
			} T_END;
		}
	}
	audit_disconnect(client);
	mailward_audit_free_bodies(client, array_count(&client->queue));
	array_free(&client->queue);
	i_free(client->spool_dir);
	i_free(client->dropped_service);
	i_free(client->dropped_session);
	i_free(client->dropped_user);
	str_free(&client->inbuf);
	str_free(&client->error);
	mw_json_buf_free(&client->body);
	event_unref(&client->event);
	i_free(client->socket_path);
	i_free(client);
}

unsigned int mailward_audit_queued(const struct mailward_audit_client *client)
{
	return array_count(&client->queue);
}

static void audit_queue_body(struct mailward_audit_client *client,
			     const char *body, size_t len)
{
	struct timeval now;
	size_t total = MW_AUDIT_TIME_LEN + 1 + len;
	char *copy;

	/* the time it happened, kept with the record for the spool */
	i_gettimeofday(&now);
	copy = i_malloc(total + 1);
	if (mw_utc_stamp_usec(&client->stamp_cache, now.tv_sec,
			      (long)now.tv_usec, copy) < 0)
		i_unreached();
	copy[MW_AUDIT_TIME_LEN] = '\t';
	memcpy(copy + MW_AUDIT_TIME_LEN + 1, body, len);
	copy[total] = '\0';
	array_push_back(&client->queue, &copy);
	client->queue_bytes += total;
}

bool mailward_audit_queue(struct mailward_audit_client *client,
			  const struct mw_audit_event *ev)
{
	struct mw_json_buf *buf = &client->body;
	const char *error;

	mw_json_buf_reset(buf);
	if (mw_audit_body_build(ev, buf, &error) < 0) {
		e_error(client->event, "audit event %s not recorded: %s",
			ev->str[MW_AF_EVENT] == NULL ? "(none)" :
			mailward_display(ev->str[MW_AF_EVENT], 64), error);
	} else if ((array_count(&client->queue) >=
		    MAILWARD_AUDIT_QUEUE_MAX_RECORDS ||
		    client->queue_bytes + buf->len >
		    MAILWARD_AUDIT_QUEUE_MAX_BYTES) &&
		   !mailward_audit_spool_spill(client)) {
		if (client->dropped++ == 0) {
			e_error(client->event, "queue full (%u records): "
				"dropping audit records until the writer %s "
				"accepts them", array_count(&client->queue),
				client->socket_path);
			client->dropped_service = i_strdup(ev->str[MW_AF_SERVICE]);
			client->dropped_session = i_strdup(ev->str[MW_AF_SESSION]);
			client->dropped_user = i_strdup(ev->str[MW_AF_USER]);
		}
	} else {
		audit_queue_body(client, buf->data, buf->len);
		return TRUE;
	}
	return FALSE;
}

/* Queues the "dropped" record that reports earlier drops. */
static void audit_queue_dropped(struct mailward_audit_client *client)
{
	struct mw_audit_event ev;
	struct mw_json_buf buf;
	const char *error;

	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_SERVICE, client->dropped_service);
	mw_audit_event_set_str(&ev, MW_AF_SESSION, client->dropped_session);
	mw_audit_event_set_str(&ev, MW_AF_EVENT, "dropped");
	mw_audit_event_set_str(&ev, MW_AF_USER, client->dropped_user);
	mw_audit_event_set_str(&ev, MW_AF_DETAIL,
			       "audit client queue full: writer unreachable");
	mw_audit_event_set_num(&ev, MW_AF_DROPPED, client->dropped);
	mw_json_buf_init(&buf);
	if (mw_audit_body_build(&ev, &buf, &error) < 0) {
		e_error(client->event, "dropped record not built: %s", error);
	} else {
		/* may exceed the queue bound by this one record */
		audit_queue_body(client, buf.data, buf.len);
		client->dropped = 0;
		i_free(client->dropped_service);
		i_free(client->dropped_session);
		i_free(client->dropped_user);
	}
	mw_json_buf_free(&buf);
}

static int audit_msecs_left(const struct timeval *deadline)
{
	struct timeval now;
	long long left;

	i_gettimeofday(&now);
	left = timeval_diff_msecs(deadline, &now);
	return left <= 0 ? 0 : (left > INT_MAX ? INT_MAX : (int)left);
}

static void audit_set_error(struct mailward_audit_client *client,
			    const char *fmt, ...) ATTR_FORMAT(2, 3);
static void audit_set_error(struct mailward_audit_client *client,
			    const char *fmt, ...)
{
	va_list args;

	str_truncate(client->error, 0);
	str_printfa(client->error, "audit writer %s: ", client->socket_path);
	va_start(args, fmt);
	str_vprintfa(client->error, fmt, args);
	va_end(args);
}

static int audit_wait(struct mailward_audit_client *client, short events,
		      const struct timeval *deadline)
{
	struct pollfd pfd;
	int ret, left;

	for (;;) {
		left = audit_msecs_left(deadline);
		if (left == 0) {
			audit_set_error(client, "timed out after %u ms",
					client->timeout_msecs);
			return AUDIT_IO_FAILED;
		}
		pfd.fd = client->fd;
		pfd.events = events;
		pfd.revents = 0;
		ret = poll(&pfd, 1, left);
		if (ret > 0)
			return AUDIT_IO_OK;
		if (ret < 0 && errno != EINTR) {
			audit_set_error(client, "poll() failed: %m");
			return AUDIT_IO_FAILED;
		}
	}
}

static int audit_connect(struct mailward_audit_client *client,
			 const struct timeval *deadline)
{
	int left = audit_msecs_left(deadline);

	/* the writer's listen backlog may be full (EAGAIN): retry briefly */
	client->fd = net_connect_unix_with_retries(client->socket_path,
						   I_MIN(left, 1000));
	if (client->fd == -1) {
		int err = errno;
		char hint[MW_HINT_MAX];

		/* EACCES: say who tried and who owns the socket */
		audit_set_error(client, "connect() failed: %s%s",
				strerror(err), mw_access_hint(
				client->socket_path, err, hint, sizeof(hint)));
		return AUDIT_IO_FAILED;
	}
	client->conn_e_lines = 0;
	client->version_sent = FALSE;
	client->version_received = FALSE;
	str_truncate(client->inbuf, 0);
	return AUDIT_IO_OK;
}

static int audit_send(struct mailward_audit_client *client,
		      const void *data, size_t size,
		      const struct timeval *deadline)
{
	const unsigned char *p = data;
	ssize_t ret;
	int r;

	while (size > 0) {
		ret = send(client->fd, p, size, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (ret > 0) {
			p += ret;
			size -= ret;
			continue;
		}
		if (ret < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = audit_wait(client, POLLOUT, deadline)) < 0)
				return r;
			continue;
		}
		if (ret < 0 && errno == EINTR)
			continue;
		audit_set_error(client, "send() failed: %m");
		return (errno == EPIPE || errno == ECONNRESET ||
			errno == ENOTCONN) ? AUDIT_IO_CLOSED : AUDIT_IO_FAILED;
	}
	return AUDIT_IO_OK;
}

/* Reads one reply line (without LF) into line_r (data stack). */
static int audit_read_line(struct mailward_audit_client *client,
			   const char **line_r, const struct timeval *deadline)
{
	unsigned char buf[1024];
	const char *data, *lf;
	ssize_t ret;
	int r;

	for (;;) {
		data = str_c(client->inbuf);
		lf = memchr(data, '\n', str_len(client->inbuf));
		if (lf != NULL) {
			*line_r = t_strdup_until(data, lf);
			str_delete(client->inbuf, 0, lf - data + 1);
			return AUDIT_IO_OK;
		}
		if (str_len(client->inbuf) > AUDIT_MAX_REPLY_LINE) {
			audit_set_error(client, "reply line too long");
			return AUDIT_IO_FAILED;
		}
		ret = recv(client->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (ret > 0) {
			if (memchr(buf, '\0', ret) != NULL) {
				audit_set_error(client, "NUL in reply");
				return AUDIT_IO_FAILED;
			}
			str_append_data(client->inbuf, buf, ret);
			continue;
		}
		if (ret == 0) {
			audit_set_error(client, "connection closed by the "
					"writer");
			return AUDIT_IO_CLOSED;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((r = audit_wait(client, POLLIN, deadline)) < 0)
				return r;
			continue;
		}
		if (errno == EINTR)
			continue;
		audit_set_error(client, "recv() failed: %m");
		return errno == ECONNRESET ? AUDIT_IO_CLOSED : AUDIT_IO_FAILED;
	}
}

/* Sends the whole queue and F, reads until the ack of that F. On
   AUDIT_IO_OK, *rejected_r counts the records the writer rejected (they
   are logged and marked in rejected[]). */
/* one flush attempt: the queued bodies, their flush id, and which ones
   the writer rejected */
struct audit_flush {
	char *const *bodies;
	unsigned int count, id;
	/* only "written" asked for: the id is sent with a '~' prefix */
	bool written;
	/* E lines sent on the connection before these */
	uint64_t first_e;
	bool *rejected;
	unsigned int *rejected_r;
};

/* Sends VERSION (once per connection), an E line per queued body and
   the F line. */
static int audit_send_queue(struct mailward_audit_client *client,
			    const struct audit_flush *fl,
			    const struct timeval *deadline)
{
	string_t *out;
	unsigned int i;
	int ret = AUDIT_IO_OK;
	/* a data stack buffer is zeroed when allocated: as large as what
	   is sent (the records, "E\t" and LF each, VERSION and F), at most
	   a chunk; it grows if a record does not fit */
	size_t size = client->queue_bytes + 3 * (size_t)fl->count + 128;

	out = t_str_new(I_MIN(size, AUDIT_SEND_CHUNK + 1024));
	if (!client->version_sent) {
		client->version_sent = TRUE;
		str_printfa(out, MW_AUDIT_PROTO_VERSION"\t%s\t%u\t%u\n",
			    MW_AUDIT_PROTOCOL_NAME,
			    MW_AUDIT_PROTOCOL_MAJOR, MW_AUDIT_PROTOCOL_MINOR);
	}
	for (i = 0; i <= fl->count && ret == AUDIT_IO_OK; i++) {
		if (i < fl->count) {
			str_append(out, MW_AUDIT_PROTO_EVENT"\t");
			str_append(out, AUDIT_REC_BODY(fl->bodies[i]));
			str_append_c(out, '\n');
			client->conn_e_lines++;
		} else {
			str_append(out, MW_AUDIT_PROTO_FLUSH"\t");
			if (fl->written)
				str_append_c(out, MW_AUDIT_PROTO_WRITTEN_MARK);
			str_printfa(out, "%u\n", fl->id);
		}
		if (str_len(out) >= AUDIT_SEND_CHUNK || i == fl->count) {
			ret = audit_send(client, str_data(out), str_len(out),
					 deadline);
			str_truncate(out, 0);
		}
	}
	return ret;
}

/* The writer's VERSION line. Returns AUDIT_IO_OK or AUDIT_IO_FAILED. */
static int audit_reply_version(struct mailward_audit_client *client,
			       const char *line, const char *const *args)
{
	unsigned int major;

	if (str_array_length(args) < 3 ||
	    strcmp(args[0], MW_AUDIT_PROTO_VERSION) != 0 ||
	    strcmp(args[1], MW_AUDIT_PROTOCOL_NAME) != 0 ||
	    str_to_uint(args[2], &major) < 0 ||
	    major != MW_AUDIT_PROTOCOL_MAJOR) {
		audit_set_error(client, "not a mailward audit writer "
				"(protocol %u expected): %s",
				MW_AUDIT_PROTOCOL_MAJOR,
				mailward_display(line, 80));
		return AUDIT_IO_FAILED;
	}
	client->version_received = TRUE;
	return AUDIT_IO_OK;
}

/* An R line: the writer rejected one of the bodies sent (logged once,
   dropped). FALSE if it is not one of this flush. */
static bool audit_reply_rejected(struct mailward_audit_client *client,
				 const struct audit_flush *fl,
				 const char *const *args)
{
	uint64_t n;
	unsigned int i;

	if (str_array_length(args) < 3 || str_to_uint64(args[1], &n) < 0 ||
	    n <= fl->first_e || n > fl->first_e + fl->count)
		return FALSE;
	i = n - fl->first_e - 1;
	if (!fl->rejected[i]) {
		fl->rejected[i] = TRUE;
		*fl->rejected_r += 1;
		e_error(client->event, "writer %s rejected record %s: %s "
			"(dropped)", client->socket_path,
			mailward_display(AUDIT_REC_BODY(fl->bodies[i]), 512),
			mailward_display(args[2], 200));
	}
	return TRUE;
}

/* Reads replies up to the answer to F fl->id. */
static int audit_read_replies(struct mailward_audit_client *client,
			      const struct audit_flush *fl,
			      const struct timeval *deadline)
{
	const char *line, *const *args, *idstr;
	unsigned int id;
	int ret;

	for (;;) {
		if ((ret = audit_read_line(client, &line, deadline)) < 0)
			return ret;
		args = t_strsplit(line, "\t");
		if (!client->version_received) {
			if (audit_reply_version(client, line, args) < 0)
				return AUDIT_IO_FAILED;
			continue;
		}
		if (strcmp(args[0], MW_AUDIT_PROTO_REJECTED) == 0 &&
		    audit_reply_rejected(client, fl, args))
			continue;
		idstr = args[1] == NULL ? "" : args[1];
		if (fl->written && idstr[0] == MW_AUDIT_PROTO_WRITTEN_MARK)
			idstr++;
		if (strcmp(args[0], MW_AUDIT_PROTO_FLUSH) == 0 &&
		    str_array_length(args) >= 3 &&
		    str_to_uint(idstr, &id) == 0 && id == fl->id) {
			if (strcmp(args[2], MW_AUDIT_PROTO_OK) == 0)
				return AUDIT_IO_OK;
			audit_set_error(client, "writer failed: %s",
					args[3] == NULL ? "(no reason)" :
					mailward_display(args[3], 400));
			return AUDIT_IO_FAILED;
		}
		if (strcmp(args[0], MW_AUDIT_PROTO_ERROR) == 0) {
			audit_set_error(client, "writer refused the "
					"connection: %s",
					args[1] == NULL ? "(no reason)" :
					mailward_display(args[1], 200));
			return AUDIT_IO_FAILED;
		}
		audit_set_error(client, "unexpected reply: %s",
				mailward_display(line, 80));
		return AUDIT_IO_FAILED;
	}
}

static int audit_flush_once(struct mailward_audit_client *client,
			    bool written, bool *rejected,
			    unsigned int *rejected_r,
			    const struct timeval *deadline)
{
	struct audit_flush fl;
	int ret;

	*rejected_r = 0;
	i_zero(&fl);
	fl.written = written;
	fl.bodies = array_get(&client->queue, &fl.count);
	fl.first_e = client->conn_e_lines;
	fl.id = ++client->flush_id;
	fl.rejected = rejected;
	fl.rejected_r = rejected_r;
	ret = audit_send_queue(client, &fl, deadline);
	if (ret != AUDIT_IO_OK)
		return ret;
	return audit_read_replies(client, &fl, deadline);
}

/* mailward_audit_flush(); round_trip: ask the writer even when nothing
   is queued */
static int
audit_flush_full(struct mailward_audit_client *client, bool written,
		 bool round_trip, const char **error_r)
{
	struct timeval now, deadline;
	unsigned int attempt, count, rejected_count = 0;
	bool *rejected = NULL, reused;
	int ret = AUDIT_IO_FAILED;

	if (client->dropped > 0)
		audit_queue_dropped(client);
	count = array_count(&client->queue);
	if (count == 0 && !round_trip)
		return 0;

	i_gettimeofday(&now);
	if (timeval_cmp(&now, &client->backoff_until) < 0) {
		/* the error of the timed out attempt is still set */
		*error_r = t_strdup_printf("%s (not retried for %u s)",
					   str_c(client->error),
					   AUDIT_BACKOFF_MSECS / 1000);
		return -1;
	}
	deadline = now;
	timeval_add_msecs(&deadline, client->timeout_msecs);

	T_BEGIN {
		/* (at least one: a round trip may have none queued) */
		rejected = t_new(bool, I_MAX(count, 1));
		for (attempt = 0; attempt < 2; attempt++) {
			reused = client->fd != -1;
			if (!reused &&
			    (ret = audit_connect(client, &deadline)) < 0)
				break;
			ret = audit_flush_once(client, written, rejected,
					       &rejected_count, &deadline);
			if (ret == AUDIT_IO_OK)
				break;
			audit_disconnect(client);
			/* a connection the writer closed while we were idle
			   (idle timeout, writer restart): reconnect once */
			if (ret != AUDIT_IO_CLOSED || !reused)
				break;
			memset(rejected, 0, sizeof(bool) * count);
			rejected_count = 0;
		}
		if (ret == AUDIT_IO_OK) {
			mailward_audit_free_bodies(client, count);
			if (rejected_count > 0) {
				audit_set_error(client, "writer rejected %u of "
						"%u record(s) (see the log)",
						rejected_count, count);
			}
		} else if (audit_msecs_left(&deadline) == 0) {
			i_gettimeofday(&client->backoff_until);
			timeval_add_msecs(&client->backoff_until,
					  AUDIT_BACKOFF_MSECS);
		}
	} T_END;

	if (ret == AUDIT_IO_OK && rejected_count == 0)
		return 0;
	*error_r = str_c(client->error);
	return -1;
}

int mailward_audit_flush(struct mailward_audit_client *client, bool written,
			 const char **error_r)
{
	return audit_flush_full(client, written, FALSE, error_r);
}

int mailward_audit_flush_round_trip(struct mailward_audit_client *client,
				    const char **error_r)
{
	return audit_flush_full(client, FALSE, TRUE, error_r);
}

bool mailward_audit_drop_newest(struct mailward_audit_client *client,
				unsigned int count)
{
	char **bodies;
	unsigned int total;

	bodies = array_get_modifiable(&client->queue, &total);
	if (total == 0 || total != count)
		return FALSE;
	client->queue_bytes -= strlen(bodies[total - 1]);
	i_free(bodies[total - 1]);
	array_delete(&client->queue, total - 1, 1);
	return TRUE;
}
