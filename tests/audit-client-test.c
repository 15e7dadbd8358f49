/* Drives mailward-audit-client.c from the integration tests
   (tests/test_audit_writer.py): a stand-in for a mail process.

   usage: audit-client-test SOCKET COMMAND...
   commands, run in order:
     timeout:MS          set the flush timeout
     spool:DIR           set the spool directory
     queue:EVENT:USER    queue an event (service "test", session "t")
     queue-n:N:USER      queue N "retr" events with uid 1..N
     queue-bad           queue an event that does not build (writer event)
     flush               print "flush OK" or "flush FAIL <error>"
     queued              print "queued N"
     sleep:MS            sleep
     wait                print "waiting" and read a line from stdin
   Then deinit (which flushes what is left, best effort). Prints one line
   per flush/queued command to stdout, flushed at once. */

#include "lib.h"
#include "sleep.h"
#include "mailward-audit-client.h"

#include <stdio.h>
#include <stdlib.h>

static unsigned int num_arg(const char *s)
{
	unsigned int v;

	if (str_to_uint(s, &v) < 0)
		i_fatal("not a number: %s", s);
	return v;
}

static void queue_event(struct mailward_audit_client *client,
			const char *event, const char *user, unsigned int uid)
{
	struct mw_audit_event ev;

	mw_audit_event_init(&ev);
	mw_audit_event_set_str(&ev, MW_AF_SERVICE, "test");
	mw_audit_event_set_str(&ev, MW_AF_SESSION, "t");
	mw_audit_event_set_str(&ev, MW_AF_EVENT, event);
	mw_audit_event_set_str(&ev, MW_AF_USER, user);
	if (uid > 0)
		mw_audit_event_set_num(&ev, MW_AF_UID, uid);
	mailward_audit_queue(client, &ev);
}

int main(int argc, char *argv[])
{
	struct mailward_audit_client *client;
	struct event *event;
	const char *error, *const *args;
	unsigned int i, n;
	int c;

	lib_init();
	if (argc < 2)
		i_fatal("usage: audit-client-test SOCKET COMMAND...");
	event = event_create(NULL);
	client = mailward_audit_client_init(argv[1], event);
	for (c = 2; c < argc; c++) T_BEGIN {
		args = t_strsplit(argv[c], ":");
		if (strcmp(args[0], "timeout") == 0 && args[1] != NULL) {
			mailward_audit_client_set_timeout(client,
							  num_arg(args[1]));
		} else if (strcmp(args[0], "spool") == 0 && args[1] != NULL) {
			mailward_audit_client_set_spool(client, args[1]);
		} else if (strcmp(args[0], "queue") == 0 && args[1] != NULL &&
			   args[2] != NULL) {
			queue_event(client, args[1], args[2], 0);
		} else if (strcmp(args[0], "queue-n") == 0 &&
			   args[1] != NULL && args[2] != NULL) {
			n = num_arg(args[1]);
			for (i = 1; i <= n; i++)
				queue_event(client, "retr", args[2], i);
		} else if (strcmp(args[0], "queue-bad") == 0) {
			queue_event(client, "writer_start", "x", 0);
		} else if (strcmp(args[0], "flush") == 0) {
			if (mailward_audit_flush(client, FALSE, &error) == 0)
				printf("flush OK\n");
			else
				printf("flush FAIL %s\n", error);
		} else if (strcmp(args[0], "queued") == 0) {
			printf("queued %u\n", mailward_audit_queued(client));
		} else if (strcmp(args[0], "wait") == 0) {
			char line[128];

			printf("waiting\n");
			fflush(stdout);
			if (fgets(line, sizeof(line), stdin) == NULL)
				i_fatal("wait: end of input");
		} else if (strcmp(args[0], "sleep") == 0 && args[1] != NULL) {
			i_sleep_msecs(num_arg(args[1]));
		} else {
			i_fatal("unknown command: %s", argv[c]);
		}
		fflush(stdout);
	} T_END;
	mailward_audit_client_deinit(&client);
	event_unref(&event);
	lib_deinit();
	return 0;
}
