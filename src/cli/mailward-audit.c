/* mailward-audit: create keys for, verify, query and export mailward
   audit logs. No Dovecot needed. See docs/mailward-audit.1. */

#include "mailward-audit.h"
#include "mw-audit-writer.h"
#include "mw-audit-verify.h"
#include "mw-json.h"
#include "mw-util.h"
#include "mw-crypto.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *progname = "mailward-audit";

static void usage(FILE *out)
{
	fprintf(out,
"usage: %s keygen --out DIR [--force]\n"
"       %s --version | --help\n"
"       %s verify [--key VERIFY.KEY] [--pubkey CHECKPOINT.PUB]\n"
"              [--checkpoint-file FILE]... [--expect-seq N]\n"
"              [--min-checkpoint SEQ] [--consistency LINE|FILE]...\n"
"              [--partial] [--json] [--quiet] FILE...\n"
"       %s prove [--user U] [--since TIME] [--until TIME] [--seq N]\n"
"              [--key VERIFY.KEY] [--pubkey CHECKPOINT.PUB] -o BUNDLE FILE...\n"
"       %s verify-proof --pubkey CHECKPOINT.PUB [--host H] [--quiet] BUNDLE\n"
"       %s query [FILTER]... FILE...\n"
"       %s export --csv|--json [FILTER]... FILE...\n"
"filters: --user U  --actor A  --device D  --msg GUID|MESSAGE-ID\n"
"         --event E  --session S  --since TIME  --until TIME\n"
"exit: 0 pass/ok, 1 fail (tampered) or no match, 2 usage, 3 I/O error,\n"
"      4 pass with a torn tail (crash artefact)\n",
		progname, progname, progname, progname, progname, progname,
		progname);
}

/* Human-facing output (text, CSV) goes through the core's one escaping
   rule (mw_escape_item()): no control, format or direction character
   reaches a terminal or spreadsheet. JSON output stays byte-exact. */
void put_escaped(FILE *out, const char *data, size_t len,
			const char *extra)
{
	char esc[MW_ESC_ITEM_MAX + 1];
	size_t n, esc_len;

	while (len > 0) {
		n = mw_escape_item(data, len, 0, extra, esc, &esc_len);
		if (esc_len > 0)
			fwrite(esc, 1, esc_len, out);
		else
			fwrite(data, 1, n, out);
		data += n;
		len -= n;
	}
}

void puts_escaped(FILE *out, const char *str)
{
	put_escaped(out, str, strlen(str), NULL);
}

/* "mailward-audit: <what>: <error>" on stderr, the error escaped (it may
   quote paths or log content) */
void print_error(const char *what, const char *error)
{
	fprintf(stderr, "%s: %s: ", progname, what);
	puts_escaped(stderr, error);
	putc('\n', stderr);
}

/* a bad option value: say which and why, point to --help */
int bad_value(const char *option, const char *value,
		     const char *why)
{
	fprintf(stderr, "%s: %s: invalid value '", progname, option);
	puts_escaped(stderr, value);
	fprintf(stderr, "': %s\nTry '%s --help'.\n", why, progname);
	return EXIT_USAGE;
}

/* the whole usage on stderr; returns EXIT_USAGE */
static int usage_error(void)
{
	usage(stderr);
	return EXIT_USAGE;
}

int cmd_usage_error(const char *args)
{
	fprintf(stderr, "usage: %s %s", progname, args);
	fprintf(stderr, "Try '%s --help'.\n", progname);
	return EXIT_USAGE;
}

int parse_u64(const char *s, uint64_t *v_r)
{
	char *end;
	unsigned long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*v_r = v;
	return 0;
}

/* --- keygen --- */

static int cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *error;
	bool force = false;
	int c;

	while ((c = getopt_long(argc, argv, "o:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': dir = optarg; break;
		case 'f': force = true; break;
		case 'h': usage(stdout); return EXIT_PASS;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (mw_audit_keygen(dir, force, &error) < 0) {
		print_error("keygen", error);
		return EXIT_IO;
	}
	printf("%s/writer.key      writer's evolving MAC key (epoch 1), for the "
	       "audit writer only\n"
	       "%s/checkpoint.key  Ed25519 checkpoint signing key, for the "
	       "audit writer only\n"
	       "%s/verify.key      epoch 0 MAC key: give to the auditors, keep "
	       "offline, then delete here\n"
	       "%s/checkpoint.pub  checkpoint public key: publish to anyone who "
	       "verifies\n", dir, dir, dir, dir);
	return EXIT_PASS;
}

/* --- verify --- */

static void print_result_text(const struct mw_audit_verify_result *r,
			      const char *const *paths, bool quiet)
{
	if (r->status == MW_AUDIT_VERIFY_FAIL) {
		printf("FAIL: %s at seq %llu (", mw_audit_fail_reason_name(
		       r->reason), (unsigned long long)r->bad_seq);
		puts_escaped(stdout, paths[r->bad_file]);
		printf(", byte offset %llu): ",
		       (unsigned long long)r->bad_offset);
		puts_escaped(stdout, r->message);
		putc('\n', stdout);
		if (r->records > 0 && !quiet)
			printf("verified before the failure: seq %llu..%llu\n",
			       (unsigned long long)r->first_seq,
			       (unsigned long long)r->last_seq);
		return;
	}
	printf("PASS%s\n", r->torn ? " (with a torn tail)" : "");
	if (quiet)
		return;
	printf("records: %llu (seq %llu..%llu), epochs %u..%u, seals %llu, "
	       "checkpoints %llu, recovered tails %llu\n",
	       (unsigned long long)r->records,
	       (unsigned long long)r->first_seq,
	       (unsigned long long)r->last_seq, r->first_epoch, r->last_epoch,
	       (unsigned long long)r->seals,
	       (unsigned long long)r->checkpoints,
	       (unsigned long long)r->recovered);
	printf("MACs: %s; checkpoint signatures: %s\n",
	       r->macs_checked ? "verified" : "NOT checked (no --key)",
	       r->signatures_checked ? "verified" : "NOT checked (no --pubkey)");
	if (!r->macs_checked && !r->signatures_checked)
		printf("warning: only the hash chain was checked; anyone can "
		       "rewrite a hash chain\n");
	printf("last seal: seq %llu; last checkpoint: seq %llu; unsealed "
	       "tail: %llu record(s)%s\n",
	       (unsigned long long)r->last_seal_seq,
	       (unsigned long long)r->last_checkpoint_seq,
	       (unsigned long long)r->unsealed_tail,
	       !r->last_epoch_sealed ? "" : r->macs_checked ?
	       " (log ends sealed)" : " (ends with a seal record, MAC not checked)");
	if (r->kept_checkpoints_matched > 0)
		printf("kept checkpoints matched: %llu\n",
		       (unsigned long long)r->kept_checkpoints_matched);
	printf("Merkle roots: %llu of %llu checkpoint(s) recomputed and "
	       "matched%s\n", (unsigned long long)r->roots_checked,
	       (unsigned long long)r->checkpoints,
	       r->first_seq == 1 ? "" : " (not checked: the chain does not "
	       "start at seq 1 in these files)");
	if (r->consistency_checked > 0)
		printf("consistency: %llu kept checkpoint(s) proved; the last "
		       "one's tree of %llu records is a prefix of the tree of "
		       "%llu records signed by checkpoint seq %llu (RFC 9162 "
		       "consistency proof, %u hashes)\n",
		       (unsigned long long)r->consistency_checked,
		       (unsigned long long)r->consistency_old_size,
		       (unsigned long long)r->consistency_new_size,
		       (unsigned long long)r->consistency_new_seq,
		       r->consistency_hashes);
	if (r->torn) {
		printf("crash artefact (torn tail %llu bytes) at ",
		       (unsigned long long)r->torn_bytes);
		puts_escaped(stdout, paths[r->torn_file]);
		printf(" byte offset %llu: not a record; the writer moves it "
		       "aside at its next start\n",
		       (unsigned long long)r->torn_offset);
	}
}

static void json_kv_u64(struct mw_json_buf *b, const char *k, uint64_t v)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, k);
	mw_json_buf_append_str(b, "\":");
	mw_json_buf_append_u64(b, v);
}

static void json_kv_str(struct mw_json_buf *b, const char *k, const char *v)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, k);
	mw_json_buf_append_str(b, "\":");
	mw_json_append_string(b, v, strlen(v));
}

static void json_kv_bool(struct mw_json_buf *b, const char *k, bool v)
{
	mw_json_buf_append_str(b, ",\"");
	mw_json_buf_append_str(b, k);
	mw_json_buf_append_str(b, v ? "\":true" : "\":false");
}

static void print_result_json(const struct mw_audit_verify_result *r,
			      const char *const *paths)
{
	struct mw_json_buf b;
	const char *status = r->status == MW_AUDIT_VERIFY_FAIL ? "FAIL" :
		r->status == MW_AUDIT_VERIFY_PASS_TORN ? "PASS_TORN" : "PASS";

	mw_json_buf_init(&b);
	mw_json_buf_append_str(&b, "{\"status\":\"");
	mw_json_buf_append_str(&b, status);
	mw_json_buf_append_str(&b, "\"");
	json_kv_str(&b, "reason", mw_audit_fail_reason_name(r->reason));
	if (r->status == MW_AUDIT_VERIFY_FAIL) {
		json_kv_u64(&b, "bad_seq", r->bad_seq);
		json_kv_str(&b, "bad_file", paths[r->bad_file]);
		json_kv_u64(&b, "bad_offset", r->bad_offset);
		json_kv_str(&b, "message", r->message);
	}
	json_kv_u64(&b, "records", r->records);
	json_kv_u64(&b, "first_seq", r->first_seq);
	json_kv_u64(&b, "last_seq", r->last_seq);
	json_kv_u64(&b, "first_epoch", r->first_epoch);
	json_kv_u64(&b, "last_epoch", r->last_epoch);
	json_kv_u64(&b, "seals", r->seals);
	json_kv_u64(&b, "checkpoints", r->checkpoints);
	json_kv_u64(&b, "recovered", r->recovered);
	json_kv_u64(&b, "kept_checkpoints_matched", r->kept_checkpoints_matched);
	json_kv_u64(&b, "last_seal_seq", r->last_seal_seq);
	json_kv_u64(&b, "last_checkpoint_seq", r->last_checkpoint_seq);
	json_kv_u64(&b, "unsealed_tail", r->unsealed_tail);
	json_kv_bool(&b, "last_epoch_sealed", r->last_epoch_sealed);
	json_kv_bool(&b, "macs_checked", r->macs_checked);
	json_kv_bool(&b, "signatures_checked", r->signatures_checked);
	json_kv_u64(&b, "roots_checked", r->roots_checked);
	json_kv_u64(&b, "consistency_checked", r->consistency_checked);
	if (r->consistency_checked > 0) {
		json_kv_u64(&b, "consistency_old_size",
			    r->consistency_old_size);
		json_kv_u64(&b, "consistency_new_seq", r->consistency_new_seq);
		json_kv_u64(&b, "consistency_new_size",
			    r->consistency_new_size);
		json_kv_u64(&b, "consistency_hashes", r->consistency_hashes);
	}
	json_kv_bool(&b, "torn", r->torn);
	if (r->torn) {
		json_kv_str(&b, "torn_file", paths[r->torn_file]);
		json_kv_u64(&b, "torn_offset", r->torn_offset);
		json_kv_u64(&b, "torn_bytes", r->torn_bytes);
	}
	mw_json_buf_append_str(&b, "}\n");
	if (!b.failed)
		fputs(b.data, stdout);
	mw_json_buf_free(&b);
}

struct verify_args {
	struct mw_audit_verify_options opts;
	/* argc + 1 entries each */
	const char **cpfiles, **consistency;
	bool json, quiet;
};

/* verify's options into va. Returns CMD_GO_ON or the exit code. */
static int verify_parse_args(int argc, char **argv, struct verify_args *va)
{
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "pubkey", required_argument, NULL, 'p' },
		{ "checkpoint-file", required_argument, NULL, 'c' },
		{ "expect-seq", required_argument, NULL, 'e' },
		{ "min-checkpoint", required_argument, NULL, 'm' },
		{ "partial", no_argument, NULL, 'P' },
		{ "consistency", required_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct mw_audit_verify_options *opts = &va->opts;
	int c;

	while ((c = getopt_long(argc, argv, "k:p:c:e:m:PC:jqh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'k': opts->key_path = optarg; break;
		case 'p': opts->pubkey_path = optarg; break;
		case 'c':
			va->cpfiles[opts->checkpoint_file_count++] = optarg;
			break;
		case 'e':
			if (parse_u64(optarg, &opts->expect_seq) < 0)
				return bad_value("--expect-seq", optarg,
						 "not a record number");
			break;
		case 'm':
			if (parse_u64(optarg, &opts->min_checkpoint) < 0)
				return bad_value("--min-checkpoint", optarg,
						 "not a record number");
			break;
		case 'P': opts->partial = true; break;
		case 'C':
			va->consistency[opts->consistency_count++] = optarg;
			break;
		case 'j': va->json = true; break;
		case 'q': va->quiet = true; break;
		case 'h': usage(stdout); return EXIT_PASS;
		default: return usage_error();
		}
	}
	if (optind >= argc)
		return usage_error();
	return CMD_GO_ON;
}

/* verify's verdict, printed; returns the exit code */
static int verify_report(const struct verify_args *va,
			 const struct mw_audit_verify_result *res,
			 const char *const *paths)
{
	if (va->json)
		print_result_json(res, paths);
	else
		print_result_text(res, paths, va->quiet);
	switch (res->status) {
	case MW_AUDIT_VERIFY_PASS: return EXIT_PASS;
	case MW_AUDIT_VERIFY_PASS_TORN: return EXIT_TORN;
	case MW_AUDIT_VERIFY_FAIL: break;
	}
	return EXIT_FAIL;
}

static int cmd_verify(int argc, char **argv)
{
	struct verify_args va;
	struct mw_audit_verify_result res;
	const char *const *paths;
	const char *error;
	int ret;

	memset(&va, 0, sizeof(va));
	va.cpfiles = calloc((size_t)argc + 1, sizeof(*va.cpfiles));
	va.consistency = calloc((size_t)argc + 1, sizeof(*va.consistency));
	va.opts.checkpoint_files = va.cpfiles;
	va.opts.consistency = va.consistency;
	if (va.cpfiles == NULL || va.consistency == NULL)
		ret = EXIT_IO;
	else
		ret = verify_parse_args(argc, argv, &va);
	if (ret == CMD_GO_ON) {
		paths = (const char *const *)argv + optind;
		if (mw_audit_verify_files(paths, (unsigned int)(argc - optind),
					  &va.opts, &res, &error) < 0) {
			print_error("verify", error);
			ret = EXIT_IO;
		} else {
			ret = verify_report(&va, &res, paths);
		}
	}
	free(va.cpfiles);
	free(va.consistency);
	return ret;
}

/* --- query / export --- */

struct filter {
	const char *user, *actor, *device, *msg, *event, *session;
	struct time_range range;
};

static bool leap_year(unsigned int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned int digits(const char *p, unsigned int n)
{
	unsigned int v = 0;

	while (n-- > 0)
		v = v * 10 + (unsigned int)(*p++ - '0');
	return v;
}


/* Normalises YYYY-MM-DD[THH:MM[:SS[.f{1,6}]]][Z] to the 27-byte record
   time format (missing parts are zero). Returns -1 with *error_r set for
   text of another shape or an impossible date or time (2026-02-30,
   month 13, 24:00). */
int time_bound(const char *in, char out[32], const char **error_r)
{
	static const char tmpl[] = "0000-01-01T00:00:00.000000";
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddddd";
	static const unsigned char mdays[12] =
		{ 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t n = strlen(in), i;
	unsigned int year, month, day, max_day;

	if (n > 0 && in[n - 1] == 'Z')
		n--;
	*error_r = "expected " TIME_FORMAT;
	if (!(n == 10 || n == 16 || n == 19 || (n >= 21 && n <= 26)))
		return -1;
	for (i = 0; i < n; i++) {
		char ch = in[i];

		if (shape[i] == 'd') {
			if (ch < '0' || ch > '9')
				return -1;
		} else if (!(ch == shape[i] || (shape[i] == 'T' && ch == ' '))) {
			return -1;
		}
		out[i] = shape[i] == 'T' ? 'T' : ch;
	}
	memcpy(out + n, tmpl + n, sizeof(tmpl) - 1 - n);
	out[26] = 'Z';
	out[27] = '\0';

	year = digits(out, 4);
	month = digits(out + 5, 2);
	day = digits(out + 8, 2);
	if (month < 1 || month > 12) {
		*error_r = "no such month";
		return -1;
	}
	max_day = mdays[month - 1] + (month == 2 && leap_year(year) ? 1 : 0);
	if (day < 1 || day > max_day) {
		*error_r = "no such day in that month";
		return -1;
	}
	if (digits(out + 11, 2) > 23 || digits(out + 14, 2) > 59 ||
	    digits(out + 17, 2) > 59) {
		*error_r = "no such time of day (00:00:00 to 23:59:59)";
		return -1;
	}
	return 0;
}

int time_range_opt(struct time_range *tr, int c, const char *arg)
{
	const char *err;

	if (time_bound(arg, c == 's' ? tr->since : tr->until, &err) < 0)
		return bad_value(c == 's' ? "--since" : "--until", arg, err);
	if (c == 's')
		tr->have_since = true;
	else
		tr->have_until = true;
	return CMD_GO_ON;
}

bool time_range_match(const struct time_range *tr, const char *t)
{
	if (tr->have_since && strcmp(t, tr->since) < 0)
		return false;
	return !tr->have_until || strcmp(t, tr->until) < 0;
}

bool member_eq(const struct mw_json_obj *obj, const char *key,
	       const char *value)
{
	const struct mw_json_member *m = mw_json_obj_get(obj, key);

	return m != NULL && m->type == MW_JSON_STRING &&
		m->str_len == strlen(value) && memcmp(m->str, value,
						       m->str_len) == 0;
}

/* Message-ID compared with or without its angle brackets */
static bool msgid_eq(const struct mw_json_obj *obj, const char *value)
{
	const struct mw_json_member *m = mw_json_obj_get(obj, "message_id");
	const char *a, *b = value;
	size_t alen, blen = strlen(value);

	if (m == NULL || m->type != MW_JSON_STRING)
		return false;
	a = m->str;
	alen = m->str_len;
	if (alen >= 2 && a[0] == '<' && a[alen - 1] == '>') {
		a++;
		alen -= 2;
	}
	if (blen >= 2 && b[0] == '<' && b[blen - 1] == '>') {
		b++;
		blen -= 2;
	}
	return alen == blen && memcmp(a, b, alen) == 0;
}

static bool filter_match(const struct filter *flt,
			 const struct mw_json_obj *obj)
{
	const struct mw_json_member *t;

	if (flt->user != NULL && !member_eq(obj, "user", flt->user))
		return false;
	if (flt->actor != NULL && !member_eq(obj, "actor", flt->actor))
		return false;
	if (flt->device != NULL && !member_eq(obj, "device", flt->device) &&
	    !member_eq(obj, "device_label", flt->device))
		return false;
	if (flt->msg != NULL && !member_eq(obj, "msg_guid", flt->msg) &&
	    !msgid_eq(obj, flt->msg))
		return false;
	if (flt->event != NULL && !member_eq(obj, "event", flt->event))
		return false;
	if (flt->session != NULL && !member_eq(obj, "session", flt->session))
		return false;
	if (flt->range.have_since || flt->range.have_until) {
		t = mw_json_obj_get(obj, "time");
		if (t == NULL || t->type != MW_JSON_STRING)
			return false;
		return time_range_match(&flt->range, t->str);
	}
	return true;
}

enum output_mode { OUT_LINES, OUT_CSV, OUT_JSON };

/* CSV cell per RFC 4180 and OWASP's CSV injection advice: always
   quoted, '"' doubled; a cell starting with = + - @ TAB or CR gets a
   leading '; controls, DEL, C1, format/direction characters and invalid
   UTF-8 are shown as \xNN (mw_escape_item()), and so is '\\' itself, so
   the cell stays reversible (export is a view; the log is the evidence). */
static void csv_cell(FILE *out, const char *s, size_t len)
{
	char esc[MW_ESC_ITEM_MAX + 1];
	size_t n, esc_len;

	putc('"', out);
	if (len > 0 && (s[0] == '=' || s[0] == '+' || s[0] == '-' ||
			s[0] == '@' || s[0] == '\t' || s[0] == '\r'))
		putc('\'', out);
	while (len > 0) {
		n = mw_escape_item(s, len, 0, "\\", esc, &esc_len);
		if (esc_len > 0)
			fwrite(esc, 1, esc_len, out);
		else if (s[0] == '"')
			fputs("\"\"", out);
		else
			fwrite(s, 1, n, out);
		s += n;
		len -= n;
	}
	putc('"', out);
}

static void csv_header(FILE *out)
{
	int f;

	for (f = 0; f < MW_AF_COUNT; f++) {
		if (f > 0)
			putc(',', out);
		fputs(mw_audit_fields[f].name, out);
	}
	fputs("\r\n", out);
}

static void csv_row(FILE *out, const struct mw_json_obj *obj)
{
	const struct mw_json_member *m;
	int f;

	for (f = 0; f < MW_AF_COUNT; f++) {
		if (f > 0)
			putc(',', out);
		m = mw_json_obj_get(obj, mw_audit_fields[f].name);
		if (m == NULL)
			continue;
		if (m->type == MW_JSON_STRING)
			csv_cell(out, m->str, m->str_len);
		else if (m->type == MW_JSON_INT)
			fprintf(out, "%s%llu", m->negative ? "-" : "",
				(unsigned long long)m->num);
	}
	fputs("\r\n", out);
}

struct select_ctx {
	struct filter flt;
	enum output_mode mode;
	bool export;
	struct mw_json_obj obj;
	uint64_t matches, skipped;
};

/* query/export options into sc. Returns CMD_GO_ON or the exit code. */
static int select_parse_args(int argc, char **argv, struct select_ctx *sc)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'u' },
		{ "actor", required_argument, NULL, 'a' },
		{ "device", required_argument, NULL, 'd' },
		{ "msg", required_argument, NULL, 'M' },
		{ "event", required_argument, NULL, 'E' },
		{ "session", required_argument, NULL, 'S' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 't' },
		{ "csv", no_argument, NULL, 'C' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct filter *flt = &sc->flt;
	int c, ret;

	while ((c = getopt_long(argc, argv, "u:a:d:M:E:S:s:t:CJh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'u': flt->user = optarg; break;
		case 'a': flt->actor = optarg; break;
		case 'd': flt->device = optarg; break;
		case 'M': flt->msg = optarg; break;
		case 'E': flt->event = optarg; break;
		case 'S': flt->session = optarg; break;
		case 's':
		case 't':
			if ((ret = time_range_opt(&flt->range, c,
						  optarg)) != CMD_GO_ON)
				return ret;
			break;
		case 'C':
		case 'J':
			if (!sc->export || sc->mode != OUT_LINES)
				return usage_error();
			sc->mode = c == 'C' ? OUT_CSV : OUT_JSON;
			break;
		case 'h': usage(stdout); return EXIT_PASS;
		default: return usage_error();
		}
	}
	if (optind >= argc || (sc->export && sc->mode == OUT_LINES))
		return usage_error();
	return CMD_GO_ON;
}

/* a matching record line[0..len) in sc->obj to stdout */
static void select_output(struct select_ctx *sc, const char *line,
			  size_t len)
{
	sc->matches++;
	if (sc->mode == OUT_CSV) {
		csv_row(stdout, &sc->obj);
	} else if (sc->mode == OUT_JSON) {
		fputs(sc->matches == 1 ? "\n" : ",\n", stdout);
		/* exact bytes of the record */
		fwrite(line, 1, len, stdout);
	} else {
		put_escaped(stdout, line, len, NULL);
		putc('\n', stdout);
	}
}

/* "mailward-audit: <path><what>" on stderr, path escaped */
static void print_path_error(const char *path, const char *what)
{
	fprintf(stderr, "%s: ", progname);
	puts_escaped(stderr, path);
	fputs(what, stderr);
}

/* The matching records of the log file path. Returns EXIT_PASS, or
   EXIT_IO after saying why. */
static int select_file(struct select_ctx *sc, const char *path)
{
	struct mw_line_reader r;
	const char *line, *err;
	uint64_t offset;
	size_t len;
	bool nl;
	int ret;
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		int errnum = errno;

		fprintf(stderr, "%s: open(", progname);
		puts_escaped(stderr, path);
		fprintf(stderr, ") failed: %s\n", strerror(errnum));
		return EXIT_IO;
	}
	if (mw_line_reader_init(&r, f, MW_AUDIT_LINE_MAX) < 0) {
		fclose(f);
		return EXIT_IO;
	}
	while ((ret = mw_line_reader_next(&r, &line, &len, &offset,
					  &nl)) > 0) {
		if (!nl || mw_json_parse_object(&sc->obj, line, len,
						&err) < 0) {
			print_path_error(path, "");
			fprintf(stderr, " offset %llu: skipped %s line\n",
				(unsigned long long)offset,
				nl ? "unparseable" : "torn");
			sc->skipped++;
		} else if (filter_match(&sc->flt, &sc->obj)) {
			select_output(sc, line, len);
		}
	}
	if (ret < 0) {
		print_path_error(path, ": ");
		fprintf(stderr, "%s\n", ret == -2 ? "line too long" :
			strerror(errno));
	}
	mw_line_reader_free(&r);
	fclose(f);
	return ret < 0 ? EXIT_IO : EXIT_PASS;
}

static int cmd_select(int argc, char **argv, bool export)
{
	struct select_ctx sc;
	int i, exit_code;

	memset(&sc, 0, sizeof(sc));
	sc.mode = OUT_LINES;
	sc.export = export;
	exit_code = select_parse_args(argc, argv, &sc);
	if (exit_code != CMD_GO_ON)
		return exit_code;
	exit_code = EXIT_PASS;
	mw_json_obj_init(&sc.obj);
	if (sc.mode == OUT_CSV)
		csv_header(stdout);
	else if (sc.mode == OUT_JSON)
		fputs("[", stdout);
	for (i = optind; i < argc && exit_code == EXIT_PASS; i++)
		exit_code = select_file(&sc, argv[i]);
	if (sc.mode == OUT_JSON)
		fputs(sc.matches > 0 ? "\n]\n" : "]\n", stdout);
	mw_json_obj_free(&sc.obj);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: write error on stdout\n", progname);
		return EXIT_IO;
	}
	if (sc.skipped > 0)
		fprintf(stderr, "%s: %llu line(s) skipped; query does not "
			"verify - run 'mailward-audit verify'\n", progname,
			(unsigned long long)sc.skipped);
	if (exit_code == EXIT_PASS && !export && sc.matches == 0)
		exit_code = EXIT_FAIL;
	return exit_code;
}

int main(int argc, char **argv)
{
	const char *cmd;

	mw_crypto_set_provider(&mw_crypto_openssl);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	argc--;
	argv++;
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(cmd, "prove") == 0)
		return cmd_prove(argc, argv);
	if (strcmp(cmd, "verify-proof") == 0)
		return cmd_verify_proof(argc, argv);
	if (strcmp(cmd, "query") == 0)
		return cmd_select(argc, argv, false);
	if (strcmp(cmd, "export") == 0)
		return cmd_select(argc, argv, true);
	if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
		printf("%s (mailward) %s\n", progname, PACKAGE_VERSION);
		return EXIT_PASS;
	}
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		usage(stdout);
		return EXIT_PASS;
	}
	usage(stderr);
	return EXIT_USAGE;
}
