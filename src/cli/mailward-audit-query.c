/* mailward-audit query / export: the records of a log that match
   filters, as lines, CSV or JSON (no verification: run verify first). */

#include "mailward-audit.h"
#include "mw-audit.h"
#include "mw-audit-verify.h"
#include "mw-json.h"
#include "mw-util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cmd_select(int argc, char **argv, bool export)
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

