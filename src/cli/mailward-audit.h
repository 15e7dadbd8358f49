#ifndef MAILWARD_AUDIT_CLI_H
#define MAILWARD_AUDIT_CLI_H

/* Shared between the parts of the mailward-audit CLI
   (mailward-audit.c, mailward-audit-query.c, mailward-audit-proof.c). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_PASS 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_IO 3
#define EXIT_TORN 4

#define TIME_FORMAT "YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z] (UTC)"

extern const char *progname;

/* Writes data escaped for a human reader (mw_escape_item()). */
void put_escaped(FILE *out, const char *data, size_t len, const char *extra);
void puts_escaped(FILE *out, const char *str);
/* "mailward-audit: <what>: <error>" on stderr, the error escaped. */
void print_error(const char *what, const char *error);
/* Reports a bad option value; returns EXIT_USAGE. */
int bad_value(const char *option, const char *value, const char *why);
/* The whole usage on out; usage_error(): on stderr, returns
   EXIT_USAGE. */
void usage(FILE *out);
int usage_error(void);
/* "usage: <progname> <args>" (args ends with a newline) and
   "Try '<progname> --help'." on stderr. Returns EXIT_USAGE. */
int cmd_usage_error(const char *args);
/* a command's argument parser found no reason to exit yet */
#define CMD_GO_ON (-1)
/* Parses a decimal uint64. Returns 0 or -1. */
int parse_u64(const char *s, uint64_t *v_r);
/* Normalises a --since/--until value to the record time format (27
   bytes + NUL). Returns 0, or -1 with *error_r. */
int time_bound(const char *in, char out[32], const char **error_r);

/* --since/--until of query, export and prove, in the record time
   format */
struct time_range {
	char since[32], until[32];
	bool have_since, have_until;
};
/* The value arg of option c ('s': --since, 't': --until) into tr.
   Returns CMD_GO_ON, or the exit code of a bad value (said). */
int time_range_opt(struct time_range *tr, int c, const char *arg);
/* TRUE if the record time t is in tr: since <= t < until. */
bool time_range_match(const struct time_range *tr, const char *t);

struct mw_json_obj;
/* TRUE if obj's member key is the string value. */
bool member_eq(const struct mw_json_obj *obj, const char *key,
	       const char *value);

/* mailward-audit query (export false) / export (mailward-audit-query.c);
   argv[0] is the command name. Returns the exit code. */
int cmd_select(int argc, char **argv, bool export);

/* mailward-audit prove / verify-proof (mailward-audit-proof.c); argv[0]
   is the command name. Return the exit code. */
int cmd_prove(int argc, char **argv);
int cmd_verify_proof(int argc, char **argv);

/* A record the log holds more than once (mailward-audit-replay.c): seq
   is a copy of of_seq (of_seq < seq), either with the same spool value
   (same_spool: the spool file was drained twice) or, one of the two
   from the spool and the other not, with the same body (same session,
   event and fields: delivered over the socket and from the spool). */
struct mw_audit_replay {
	uint64_t seq, of_seq;
	bool same_spool;
};
struct replay_list {
	struct mw_audit_replay *items;	/* by seq; free() it */
	size_t count;
};
struct mw_audit_verify_options;
struct mw_audit_verify_result;
/* mw_audit_verify_files() with opts (its on_record is taken), and the
   replays among the verified records into *replays_r (a second pass over
   the files, hash chain only, if the log has spooled records). Returns
   0, or -1 with *error_r (no replays_r to free then). */
int replay_verify(const char *const *paths, unsigned int count,
		  struct mw_audit_verify_options *opts,
		  struct mw_audit_verify_result *res,
		  struct replay_list *replays_r, const char **error_r);

#endif
