/* Writes the seed corpus of fuzz-audit-verify (tests/fuzz/corpus/
   audit-verify/) with the real audit writer and the fixed keys of
   fuzz-audit-keys.h, so that the seeds' MACs and signatures verify and
   the fuzzer starts deep in the verifier. Run by hand (see
   run-fuzzers.sh --gen-seeds); the corpus files are kept in the tree.

   Usage: gen-audit-seeds OUTDIR */

#include "fuzz-audit-keys.h"
#include "mw-audit-writer.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

static char tmpdir[64];
static int64_t fake_now = INT64_C(1795874296123456);

static int64_t clock_cb(void *ctx)
{
	(void)ctx;
	fake_now += 1000;
	return fake_now;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "gen-audit-seeds: %s: %s\n", what, err);
	exit(1);
}

static struct mw_audit_writer *wopen(const char *log, unsigned int epoch_recs,
				     unsigned int cp_recs)
{
	struct mw_audit_writer_options opts;
	struct mw_audit_writer *w;
	char key[128], sign[128];
	const char *err;

	mw_audit_writer_options_init(&opts);
	opts.host = "fuzz-host";
	opts.epoch_records = epoch_recs;
	opts.checkpoint_records = cp_recs;
	opts.epoch_seconds = 0;
	opts.checkpoint_seconds = 0;
	opts.now_usec = clock_cb;
	snprintf(key, sizeof(key), "%s/writer.key", tmpdir);
	snprintf(sign, sizeof(sign), "%s/checkpoint.key", tmpdir);
	if (mw_audit_writer_open(log, key, sign, &opts, &w, &err) < 0)
		die("open", err);
	return w;
}

static void events(struct mw_audit_writer *w, unsigned int n)
{
	static const char *const names[] = {
		"login", "retr", "dele", "expunge_intent", "expunge_done",
		"fetch", "logout" };
	struct mw_audit_event ev;
	const char *err;
	unsigned int i;

	for (i = 0; i < n; i++) {
		mw_audit_event_init(&ev);
		mw_audit_event_set_str(&ev, MW_AF_SERVICE, i % 2 ? "imap" : "pop3");
		mw_audit_event_set_str(&ev, MW_AF_SESSION, "sess-1");
		mw_audit_event_set_str(&ev, MW_AF_EVENT, names[i % 7]);
		mw_audit_event_set_str(&ev, MW_AF_OUTCOME, "ok");
		mw_audit_event_set_str(&ev, MW_AF_USER,
				       i % 3 ? "alice" : "b\"o\\b\x01\xc3\xa9\xff");
		mw_audit_event_set_str(&ev, MW_AF_DEVICE_LABEL,
				       "pop3 \"Thunderbird 115\" from 192.0.2.0/24");
		mw_audit_event_set_num(&ev, MW_AF_UID, 100 + i);
		mw_audit_event_set_num(&ev, MW_AF_SIZE, 1234);
		if (mw_audit_writer_append(w, &ev, &err) < 0)
			die("append", err);
	}
	if (mw_audit_writer_flush(w, &err) < 0)
		die("flush", err);
}

static uint8_t *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	if (f == NULL)
		die("fopen", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		die("read", path);
	fclose(f);
	*len_r = (size_t)n;
	return buf;
}

struct part {
	char type;	/* 0 = first log */
	const char *path;
	const char *text;
};

static void emit(const char *outdir, const char *name, uint8_t flags,
		 uint8_t arg, const struct part *parts, unsigned int n)
{
	char path[4096];
	unsigned int i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", outdir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		die("fopen", path);
	fputc(flags, f);
	fputc(arg, f);
	for (i = 0; i < n; i++) {
		size_t len;
		uint8_t *data;

		if (parts[i].type != 0) {
			fputs("\n##MW##", f);
			fputc(parts[i].type, f);
		}
		if (parts[i].text != NULL) {
			fputs(parts[i].text, f);
			continue;
		}
		data = slurp(parts[i].path, &len);
		fwrite(data, 1, len, f);
		free(data);
	}
	fclose(f);
}

/* checkpoint lines of a log, as an auditor keeps them */
static void extract_checkpoints(const char *log, const char *out)
{
	char line[70000];
	FILE *in = fopen(log, "r"), *o = fopen(out, "w");

	if (in == NULL || o == NULL)
		die("fopen", log);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strstr(line, "\"event\":\"checkpoint\"") != NULL)
			fputs(line, o);
	}
	fclose(in);
	fclose(o);
}

/* the log from its n-th epoch record on (a chain given partially) */
static void tail_from_epoch(const char *log, const char *out, unsigned int n)
{
	char line[70000];
	FILE *in = fopen(log, "r"), *o = fopen(out, "w");
	unsigned int seen = 0;

	if (in == NULL || o == NULL)
		die("fopen", log);
	while (fgets(line, sizeof(line), in) != NULL) {
		if (strstr(line, "\"event\":\"epoch\"") != NULL)
			seen++;
		if (seen >= n)
			fputs(line, o);
	}
	fclose(in);
	fclose(o);
}

int main(int argc, char **argv)
{
	struct mw_audit_writer *w;
	char log[128], rot[128], kept[128], cmd[256];
	const char *err, *outdir;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mw-gen-seeds.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || fuzz_audit_write_keys(tmpdir) < 0)
		die("keys", tmpdir);
	snprintf(log, sizeof(log), "%s/audit.log", tmpdir);
	snprintf(rot, sizeof(rot), "%s/audit.log.1", tmpdir);
	snprintf(kept, sizeof(kept), "%s/kept", tmpdir);

	/* 1: a clean log: start, events, clean stop (checkpoint + seal) */
	w = wopen(log, 0, 0);
	events(w, 6);
	if (mw_audit_writer_close(&w, &err) < 0)
		die("close", err);
	emit(outdir, "clean-keys", 0x03, 0, (struct part[]){ { 0, log, NULL } }, 1);
	emit(outdir, "clean-nokeys", 0x00, 0, (struct part[]){ { 0, log, NULL } }, 1);
	emit(outdir, "clean-expect", 0x13, 200, (struct part[]){ { 0, log, NULL } }, 1);
	extract_checkpoints(log, kept);
	emit(outdir, "clean-kept", 0x2b, 3, (struct part[]){
		{ 0, log, NULL }, { 'K', kept, NULL } }, 2);
	emit(outdir, "keyfile", 0x01, 0, (struct part[]){
		{ 0, log, NULL },
		{ 'Y', NULL, "mailward-audit-key v1 epoch=7 key="
		  "00112233445566778899aabbccddeeff"
		  "00112233445566778899aabbccddeeff\n" } }, 2);

	/* 2: restart of the same log, epochs every 5 records, checkpoints
	   every 3: epoch / seal / checkpoint sequences */
	w = wopen(log, 5, 3);
	events(w, 17);
	if (mw_audit_writer_close(&w, &err) < 0)
		die("close", err);
	emit(outdir, "epochs-keys", 0x03, 0, (struct part[]){ { 0, log, NULL } }, 1);
	tail_from_epoch(log, kept, 3);
	emit(outdir, "epochs-partial", 0x07, 0, (struct part[]){ { 0, kept, NULL } }, 1);

	/* 3: rotation: two files continuing one chain */
	w = wopen(log, 0, 4);
	events(w, 5);
	if (mw_audit_writer_rotate(w, rot, &err) < 0)
		die("rotate", err);
	events(w, 4);
	if (mw_audit_writer_close(&w, &err) < 0)
		die("close", err);
	emit(outdir, "rotated-keys", 0x03, 0, (struct part[]){
		{ 0, rot, NULL }, { 'F', log, NULL } }, 2);

	/* 4: crash: unsealed epoch and a torn tail, then recovery */
	unlink(log);
	unlink(rot);
	w = wopen(log, 0, 0);
	events(w, 3);
	mw_audit_writer_abort(&w);
	f = fopen(log, "a");
	fputs("{\"seq\":99,\"time\":\"2026-11-28T13:58", f);
	fclose(f);
	emit(outdir, "torn-keys", 0x03, 0, (struct part[]){ { 0, log, NULL } }, 1);
	w = wopen(log, 0, 0);
	events(w, 2);
	if (mw_audit_writer_close(&w, &err) < 0)
		die("close", err);
	emit(outdir, "recovered-keys", 0x03, 0, (struct part[]){ { 0, log, NULL } }, 1);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return 0;
}
