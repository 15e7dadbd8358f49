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

void usage(FILE *out)
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

int usage_error(void)
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

static void print_replays_text(const struct replay_list *rl)
{
	size_t i;

	if (rl->count == 0)
		return;
	printf("replayed: %zu record(s) the log holds twice (at-least-once "
	       "delivery from the spool, not a failure: count each event "
	       "once):", rl->count);
	for (i = 0; i < rl->count; i++) {
		printf("%s seq %llu = seq %llu (%s)", i == 0 ? "" : ",",
		       (unsigned long long)rl->items[i].seq,
		       (unsigned long long)rl->items[i].of_seq,
		       rl->items[i].same_spool ? "same spool" :
		       "same record, one from the spool");
	}
	putc('\n', stdout);
}

static void print_result_text(const struct mw_audit_verify_result *r,
			      const struct replay_list *rl,
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
	print_replays_text(rl);
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

/* "replays":N,"replayed":[{"seq":S,"of_seq":O,"same_spool":B},...] */
static void json_replays(struct mw_json_buf *b, const struct replay_list *rl)
{
	size_t i;

	json_kv_u64(b, "replays", rl->count);
	mw_json_buf_append_str(b, ",\"replayed\":[");
	for (i = 0; i < rl->count; i++) {
		mw_json_buf_append_str(b, i == 0 ? "{\"seq\":" : ",{\"seq\":");
		mw_json_buf_append_u64(b, rl->items[i].seq);
		json_kv_u64(b, "of_seq", rl->items[i].of_seq);
		json_kv_bool(b, "same_spool", rl->items[i].same_spool);
		mw_json_buf_append_str(b, "}");
	}
	mw_json_buf_append_str(b, "]");
}

static void print_result_json(const struct mw_audit_verify_result *r,
			      const struct replay_list *rl,
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
	json_replays(&b, rl);
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
			 const struct replay_list *rl,
			 const char *const *paths)
{
	if (va->json)
		print_result_json(res, rl, paths);
	else
		print_result_text(res, rl, paths, va->quiet);
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
	struct replay_list rl;
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
		if (replay_verify(paths, (unsigned int)(argc - optind),
				  &va.opts, &res, &rl, &error) < 0) {
			print_error("verify", error);
			ret = EXIT_IO;
		} else {
			ret = verify_report(&va, &res, &rl, paths);
			free(rl.items);
		}
	}
	free(va.cpfiles);
	free(va.consistency);
	return ret;
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
