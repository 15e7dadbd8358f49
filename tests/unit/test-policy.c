/* Unit tests of settings and policy parsing (mw-policy.c) */

#include <stdarg.h>
#include <stdlib.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <cmocka.h>

#include "mw-policy.h"
#include "mw-retrieval.h"

static void test_interval_parse(void **state)
{
	static const struct {
		const char *input;
		int ret;
		unsigned int secs;
	} tests[] = {
		{ "0", 0, 0 },
		{ "90", 0, 90 },
		{ "90s", 0, 90 },
		{ "30m", 0, 1800 },
		{ "12h", 0, 43200 },
		{ "7d", 0, 604800 },
		{ "2w", 0, 1209600 },
		{ "3650d", 0, 3650U * 86400 },
		{ "3651d", -1, 0 },
		{ "", -1, 0 },
		{ "m", -1, 0 },
		{ "-1", -1, 0 },
		{ "1x", -1, 0 },
		{ "10mm", -1, 0 },
		{ " 5", -1, 0 },
		{ "5 ", -1, 0 },
		{ "99999999999999999999", -1, 0 },
		{ "yes", -1, 0 },
	};
	unsigned int i, secs;

	(void)state;
	for (i = 0; i < sizeof(tests)/sizeof(tests[0]); i++) {
		secs = 12345;
		assert_int_equal(mw_interval_parse(tests[i].input, &secs),
				 tests[i].ret);
		if (tests[i].ret == 0)
			assert_int_equal(secs, tests[i].secs);
		else
			assert_int_equal(secs, 12345);
	}
}

static void test_policy_parse(void **state)
{
	static const struct {
		const char *input;
		int ret;
		enum mw_pop3_policy policy;
	} tests[] = {
		{ "client", 0, MW_POP3_POLICY_CLIENT },
		{ "leave-on-server", 0, MW_POP3_POLICY_LEAVE_ON_SERVER },
		{ "expunge-after-retrieval", 0, MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL },
		{ "expunge-after-all-devices", 0, MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES },
		{ "Client", -1, 0 },
		{ "leave", -1, 0 },
		{ "yes", -1, 0 },
		{ "", -1, 0 },
	};
	enum mw_pop3_policy policy;
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(tests)/sizeof(tests[0]); i++) {
		assert_int_equal(mw_pop3_policy_parse(tests[i].input, &policy),
				 tests[i].ret);
		if (tests[i].ret == 0) {
			assert_int_equal(policy, tests[i].policy);
			assert_string_equal(mw_pop3_policy_name(policy),
					    tests[i].input);
		}
	}
}

static void test_bool_uint_parse(void **state)
{
	bool b = false;
	unsigned int n = 7;

	(void)state;
	assert_int_equal(mw_bool_parse("yes", &b), 0); assert_true(b);
	assert_int_equal(mw_bool_parse("NO", &b), 0); assert_false(b);
	assert_int_equal(mw_bool_parse("1", &b), -1);
	assert_int_equal(mw_bool_parse("", &b), -1);
	assert_int_equal(mw_uint_parse("32", 1, 1024, &n), 0);
	assert_int_equal(n, 32);
	assert_int_equal(mw_uint_parse("0", 1, 1024, &n), -1);
	assert_int_equal(mw_uint_parse("1025", 1, 1024, &n), -1);
	assert_int_equal(mw_uint_parse("4294967296", 0, 4294967295U, &n), -1);
	assert_int_equal(mw_uint_parse("12a", 0, 100, &n), -1);
	assert_int_equal(n, 32);
}

struct kv {
	const char *name, *value;
	enum mw_setting_source source;
};

static const char *
kv_lookup(const char *name, void *context, enum mw_setting_source *source_r)
{
	const struct kv *kv = context;

	for (; kv->name != NULL; kv++) {
		if (strcmp(kv->name, name) == 0) {
			*source_r = kv->source;
			return kv->value;
		}
	}
	return NULL;
}

static void test_settings_read(void **state)
{
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int count;
	const struct kv none[] = { { NULL, NULL, 0 } };
	const struct kv good[] = {
		{ "mailward_pop3_policy", "expunge-after-retrieval", MW_SOURCE_USERDB },
		{ "mailward_expunge_delay", "12h", MW_SOURCE_CONFIG },
		{ "mailward_hold", "no", MW_SOURCE_CONFIG },
		{ "mailward_device", "phone", MW_SOURCE_USERDB },
		{ "mailward_device_max", "4", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	const struct kv bad[] = {
		{ "mailward_pop3_policy", "delete-everything", MW_SOURCE_USERDB },
		{ "mailward_expunge_delay", "soon", MW_SOURCE_CONFIG },
		{ "mailward_hold", "maybe", MW_SOURCE_USERDB },
		{ "mailward_device", "yes", MW_SOURCE_USERDB },
		{ "mailward_device_max", "0", MW_SOURCE_CONFIG },
		{ "mailward_device_key", "00112233445566778899aabbccddeeff", MW_SOURCE_CONFIG },
		{ "mailward_imap_expunge", "sometimes", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	char buf[16];

	(void)state;
	mw_settings_read(&set, kv_lookup, (void *)none, errors, &count);
	assert_int_equal(count, 0);
	assert_false(set.fail_safe);
	assert_int_equal(set.pop3_policy, MW_POP3_POLICY_CLIENT);
	assert_int_equal(set.pop3_policy_source, MW_SOURCE_DEFAULT);
	assert_int_equal(set.device_max, 32);
	assert_int_equal(set.device_expire_secs, 180 * 86400);
	assert_false(mw_pop3_expire_capability(&set, buf, sizeof(buf)));

	mw_settings_read(&set, kv_lookup, (void *)good, errors, &count);
	assert_int_equal(count, 0);
	assert_false(set.fail_safe);
	assert_int_equal(set.pop3_policy, MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL);
	assert_int_equal(set.pop3_policy_source, MW_SOURCE_USERDB);
	assert_int_equal(set.expunge_delay_secs, 43200);
	assert_string_equal(set.device, "phone");
	assert_int_equal(set.device_max, 4);
	assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
	assert_string_equal(buf, "1");

	mw_settings_read(&set, kv_lookup, (void *)bad, errors, &count);
	assert_int_equal(count, 7);
	assert_true(set.fail_safe);
	assert_string_equal(errors[0].name, "mailward_pop3_policy");
	assert_string_equal(errors[0].value, "delete-everything");
	/* invalid policy and hold fail safe */
	assert_int_equal(set.pop3_policy, MW_POP3_POLICY_LEAVE_ON_SERVER);
	assert_true(set.hold);
	assert_null(set.device);
	assert_int_equal(set.imap_expunge, MW_IMAP_EXPUNGE_DENY);
	assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
	assert_string_equal(buf, "NEVER");
}

static const char *record_lookup(const char *name, void *context,
				 enum mw_setting_source *source_r)
{
	unsigned int *unknown = context;

	(void)source_r;
	if (!mw_setting_is_known(name)) {
		fprintf(stderr, "setting %s is read but not in mw_setting_defs\n",
			name);
		(*unknown)++;
	}
	return NULL;
}

/* every name mw_settings_read() asks for is known to the config checker */
static void test_setting_defs_complete(void **state)
{
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int count, unknown = 0;

	(void)state;
	mw_settings_read(&set, record_lookup, &unknown, errors, &count);
	assert_int_equal(unknown, 0);
	assert_true(mw_setting_is_known("mailward_pop3_policy"));
	assert_false(mw_setting_is_known("mailward_pop3_polcy"));
	assert_false(mw_setting_is_known("mailward_"));
}

static void test_expire_capability(void **state)
{
	static const struct {
		enum mw_pop3_policy policy;
		unsigned int delay;
		bool hold;
		const char *expect;
	} tests[] = {
		{ MW_POP3_POLICY_CLIENT, 0, false, NULL },
		{ MW_POP3_POLICY_CLIENT, 0, true, "NEVER" },
		{ MW_POP3_POLICY_LEAVE_ON_SERVER, 0, false, "NEVER" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL, 0, false, "0" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL, 1, false, "1" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL, 86400, false, "1" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL, 86401, false, "2" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL, 0, true, "NEVER" },
		{ MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES, 0, false, "0" },
	};
	struct mw_settings set;
	unsigned int i;
	char buf[16];

	(void)state;
	for (i = 0; i < sizeof(tests)/sizeof(tests[0]); i++) {
		memset(&set, 0, sizeof(set));
		set.pop3_policy = tests[i].policy;
		set.expunge_delay_secs = tests[i].delay;
		set.hold = tests[i].hold;
		if (tests[i].expect == NULL)
			assert_false(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
		else {
			assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
			assert_string_equal(buf, tests[i].expect);
		}
	}
}

static void test_disposition_parse(void **state)
{
	static const struct {
		const char *str;
		int ret;
		enum mw_pop3_disposition disposition;
		const char *mailbox;
	} tests[] = {
		{ "expunge", 0, MW_DISPOSITION_EXPUNGE, NULL },
		{ "keep", 0, MW_DISPOSITION_KEEP, NULL },
		{ "seen", 0, MW_DISPOSITION_SEEN, NULL },
		{ "move:Archive", 0, MW_DISPOSITION_MOVE, "Archive" },
		{ "move:POP3/Taken away", 0, MW_DISPOSITION_MOVE,
		  "POP3/Taken away" },
		{ "move:", -1, 0, NULL },
		{ "move:INBOX", -1, 0, NULL },
		{ "move:inbox", -1, 0, NULL },
		{ "move:a\tb", -1, 0, NULL },
		{ "move", -1, 0, NULL },
		{ "Seen", -1, 0, NULL },
		{ "delete", -1, 0, NULL },
		{ "", -1, 0, NULL },
		{ "yes", -1, 0, NULL },
	};
	enum mw_pop3_disposition disposition;
	const char *mailbox, *reason;
	char longname[300];
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(tests)/sizeof(tests[0]); i++) {
		reason = NULL;
		assert_int_equal(mw_pop3_disposition_parse(tests[i].str,
			&disposition, &mailbox, &reason), tests[i].ret);
		if (tests[i].ret < 0) {
			assert_non_null(reason);
			continue;
		}
		assert_int_equal(disposition, tests[i].disposition);
		if (tests[i].mailbox == NULL)
			assert_null(mailbox);
		else
			assert_string_equal(mailbox, tests[i].mailbox);
	}
	memcpy(longname, "move:", 5);
	memset(longname + 5, 'a', 256);
	longname[5 + 256] = '\0';
	assert_int_equal(mw_pop3_disposition_parse(longname, &disposition,
						   &mailbox, &reason), -1);
	longname[5 + 255] = '\0';
	assert_int_equal(mw_pop3_disposition_parse(longname, &disposition,
						   &mailbox, &reason), 0);
	assert_string_equal(mw_pop3_disposition_name(MW_DISPOSITION_MOVE),
			    "move");
}

static void test_disposition_settings(void **state)
{
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	unsigned int count;
	char buf[16];
	const struct kv los[] = {
		{ "mailward_pop3_policy", "leave-on-server", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	const struct kv ear[] = {
		{ "mailward_pop3_policy", "expunge-after-retrieval", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	const struct kv los_move[] = {
		{ "mailward_pop3_policy", "leave-on-server", MW_SOURCE_CONFIG },
		{ "mailward_pop3_disposition", "move:Archive", MW_SOURCE_USERDB },
		{ "mailward_pop3_login_delay", "15m", MW_SOURCE_USERDB },
		{ NULL, NULL, 0 }
	};
	const struct kv los_expunge[] = {
		{ "mailward_pop3_policy", "leave-on-server", MW_SOURCE_USERDB },
		{ "mailward_pop3_disposition", "expunge", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	const struct kv ear_seen[] = {
		{ "mailward_pop3_policy", "expunge-after-retrieval", MW_SOURCE_CONFIG },
		{ "mailward_pop3_disposition", "seen", MW_SOURCE_CONFIG },
		{ NULL, NULL, 0 }
	};
	const struct kv bad[] = {
		{ "mailward_pop3_policy", "expunge-after-all-devices", MW_SOURCE_CONFIG },
		{ "mailward_pop3_disposition", "move:inbox", MW_SOURCE_USERDB },
		{ "mailward_pop3_login_delay", "later", MW_SOURCE_USERDB },
		{ NULL, NULL, 0 }
	};

	(void)state;
	/* defaults: keep under leave-on-server, expunge otherwise */
	mw_settings_read(&set, kv_lookup, (void *)los, errors, &count);
	assert_int_equal(count, 0);
	assert_int_equal(set.disposition, MW_DISPOSITION_KEEP);
	assert_int_equal(set.disposition_source, MW_SOURCE_DEFAULT);
	assert_int_equal(set.pop3_login_delay_secs, 0);
	assert_false(mw_pop3_disposition_removes(&set));
	mw_settings_read(&set, kv_lookup, (void *)ear, errors, &count);
	assert_int_equal(count, 0);
	assert_int_equal(set.disposition, MW_DISPOSITION_EXPUNGE);
	assert_true(mw_pop3_disposition_removes(&set));
	assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
	assert_string_equal(buf, "0");

	mw_settings_read(&set, kv_lookup, (void *)los_move, errors, &count);
	assert_int_equal(count, 0);
	assert_false(set.fail_safe);
	assert_int_equal(set.disposition, MW_DISPOSITION_MOVE);
	assert_int_equal(set.disposition_source, MW_SOURCE_USERDB);
	assert_string_equal(set.disposition_mailbox, "Archive");
	assert_int_equal(set.pop3_login_delay_secs, 900);
	assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
	assert_string_equal(buf, "NEVER");

	/* a contradiction: error naming both settings, fail-safe */
	mw_settings_read(&set, kv_lookup, (void *)los_expunge, errors, &count);
	assert_int_equal(count, 1);
	assert_true(set.fail_safe);
	assert_string_equal(errors[0].name, "mailward_pop3_disposition");
	assert_string_equal(errors[0].value, "expunge");
	assert_non_null(strstr(errors[0].reason,
			       "mailward_pop3_policy=leave-on-server"));
	assert_int_equal(set.disposition, MW_DISPOSITION_KEEP);

	/* seen never expunges: EXPIRE NEVER */
	mw_settings_read(&set, kv_lookup, (void *)ear_seen, errors, &count);
	assert_int_equal(count, 0);
	assert_int_equal(set.disposition, MW_DISPOSITION_SEEN);
	assert_false(mw_pop3_disposition_removes(&set));
	assert_true(mw_pop3_expire_capability(&set, buf, sizeof(buf)));
	assert_string_equal(buf, "NEVER");

	mw_settings_read(&set, kv_lookup, (void *)bad, errors, &count);
	assert_int_equal(count, 2);
	assert_true(set.fail_safe);
	assert_string_equal(errors[0].name, "mailward_pop3_disposition");
	assert_string_equal(errors[1].name, "mailward_pop3_login_delay");
	assert_int_equal(set.disposition, MW_DISPOSITION_KEEP);
	assert_null(set.disposition_mailbox);
}

static const char *const policy_short[] = {
	"client", "leave", "after-retr", "after-all"
};

static void set_policy(struct mw_settings *set, unsigned int policy,
		       unsigned int disp, unsigned int delay)
{
	memset(set, 0, sizeof(*set));
	set->pop3_policy = policy;
	set->disposition = disp;
	set->expunge_delay_secs = delay;
	set->imap_counts_as_retrieval = true;
}

/* The per-device view: scope, and every record shape (own or another
   device's, RETR, DELE, due time) at now = 1000. */
static void render_view(FILE *out)
{
	static const time_t dues[] = { 0, MW_RETRIEVAL_DUE_DISPOSED, 999,
				       1000, 1001 };
	static const char *const scope_names[] = { "none", "own", "all" };
	struct mw_settings set;
	struct mw_retrieval_rec rec;
	unsigned int policy, disp, delay, own, retr, del, d;

	for (policy = 0; policy < 4; policy++)
	for (disp = 0; disp < 4; disp++)
	for (delay = 0; delay <= 1; delay++) {
		set_policy(&set, policy, disp, delay * 3600);
		fprintf(out, "view-scope %s %s delay=%u: %s\n",
			policy_short[policy], mw_pop3_disposition_name(disp),
			delay * 3600, scope_names[mw_view_scope(&set)]);
	}
	for (policy = 0; policy < 4; policy++)
	for (disp = 0; disp < 4; disp++) {
		set_policy(&set, policy, disp, 0);
		for (own = 0; own <= 1; own++)
		for (retr = 0; retr <= 1; retr++)
		for (del = 0; del <= 1; del++)
		for (d = 0; d < sizeof(dues)/sizeof(dues[0]); d++) {
			rec.dev_no = own == 1 ? 7 : 8;
			rec.retrieved = retr == 1;
			rec.deleted = del == 1;
			rec.expunge_due = dues[d];
			fprintf(out, "view-hides %s %s %s retr=%u dele=%u "
				"due=%ld now=1000: %s\n",
				policy_short[policy],
				mw_pop3_disposition_name(disp),
				own == 1 ? "own" : "other", retr, del,
				(long)dues[d],
				mw_view_hides(&set, 7, &rec, 1000) ?
				"hidden" : "listed");
		}
	}
}

/* QUIT: every policy x disposition x delay x what the session did. */
static void render_quit(FILE *out)
{
	static const time_t recorded[] = { 0, MW_RETRIEVAL_DUE_DISPOSED, 500,
					   9000 };
	struct mw_settings set;
	struct mw_quit_facts f;
	enum mw_quit_action action;
	unsigned int policy, disp, delay, retr, del, cexp, known, all, r;
	time_t due;

	for (policy = 0; policy < 4; policy++)
	for (disp = 0; disp < 4; disp++)
	for (delay = 0; delay <= 1; delay++)
	for (retr = 0; retr <= 1; retr++)
	for (del = 0; del <= 1; del++)
	for (cexp = 0; cexp <= del; cexp++)
	for (known = 0; known <= 1; known++)
	for (all = 0; all <= (policy == 3 ? 1U : 0U); all++)
	for (r = 0; r < (delay == 1 && known == 1 ? 4U : 1U); r++) {
		set_policy(&set, policy, disp, delay * 3600);
		memset(&f, 0, sizeof(f));
		f.retrieved = retr == 1;
		f.deleted = del == 1;
		f.client_expunged = cexp == 1;
		f.state_known = known == 1;
		f.all_devices_have = all == 1;
		f.recorded_due = recorded[r];
		action = mw_quit_decide(&set, &f, 1000, &due);
		fprintf(out, "quit %s %s delay=%u retr=%u dele=%u "
			"client_expunged=%u state=%u all_have=%u "
			"recorded_due=%ld now=1000: %s due=%ld\n",
			policy_short[policy], mw_pop3_disposition_name(disp),
			delay * 3600, retr, del, cexp, known, all,
			(long)recorded[r], mw_quit_action_name(action),
			(long)due);
	}
}

/* Who may act: the disposition after a policy decision, Dovecot's own
   DELE; when a sweep is needed at all. */
static void render_allowed(FILE *out)
{
	struct mw_settings set;
	unsigned int policy, disp, hold, fail_safe, delay;

	for (policy = 0; policy < 4; policy++)
	for (disp = 0; disp < 4; disp++)
	for (hold = 0; hold <= 1; hold++)
	for (fail_safe = 0; fail_safe <= 1; fail_safe++) {
		set_policy(&set, policy, disp, 0);
		set.hold = hold == 1;
		fprintf(out, "allowed %s %s hold=%u fail_safe=%u: "
			"dispose=%d dele=%d\n", policy_short[policy],
			mw_pop3_disposition_name(disp), hold, fail_safe,
			mw_dispose_allowed(&set, fail_safe == 1),
			mw_dele_goes_ahead(&set, fail_safe == 1));
	}
	for (policy = 0; policy < 4; policy++)
	for (disp = 0; disp < 4; disp++)
	for (delay = 0; delay <= 1; delay++) {
		set_policy(&set, policy, disp, delay * 3600);
		fprintf(out, "sweep-needed %s %s delay=%u: %d\n",
			policy_short[policy], mw_pop3_disposition_name(disp),
			delay * 3600, mw_sweep_needed(&set));
	}
}

/* Devices that count, suspension after a store reset, and the
   all-devices test over record sets. */
static void render_all_devices(FILE *out)
{
	static const struct {
		const char *name;
		unsigned int dev_count;
		uint16_t devices[3];
		unsigned int rec_count;
		struct mw_retrieval_rec recs[3];
	} sets[] = {
		{ "no devices", 0, { 0 }, 1, { { 1, true, false, 0 } } },
		{ "one device, no record", 1, { 1 }, 0, { { 0 } } },
		{ "one device, retrieved", 1, { 1 }, 1,
		  { { 1, true, false, 0 } } },
		{ "one device, deleted", 1, { 1 }, 1,
		  { { 1, false, true, 0 } } },
		{ "one device, record without either", 1, { 1 }, 1,
		  { { 1, false, false, 5000 } } },
		{ "two devices, one has it", 2, { 1, 2 }, 2,
		  { { 1, true, false, 0 }, { 2, false, false, 0 } } },
		{ "two devices, both have it", 2, { 2, 1 }, 2,
		  { { 1, true, false, 0 }, { 2, false, true, 0 } } },
		{ "two devices, other device's record", 2, { 1, 2 }, 2,
		  { { 1, true, false, 0 }, { 3, true, false, 0 } } },
		{ "one device counts, idle one has none", 1, { 2 }, 2,
		  { { 1, false, false, 0 }, { 2, true, true, 0 } } },
		{ "three devices, all have it", 3, { 1, 2, 3 }, 3,
		  { { 3, true, false, 0 }, { 2, true, false, 0 },
		    { 1, false, true, 0 } } },
	};
	static const time_t resets[] = { 0, 500, 1000 };
	struct mw_settings set;
	unsigned int i, expire, imap, proto, seen, r;
	time_t last_seen[] = { 100, 900, 1000 };

	for (i = 0; i < sizeof(sets)/sizeof(sets[0]); i++) {
		fprintf(out, "all-devices-have %s: %d\n", sets[i].name,
			mw_all_devices_have(sets[i].devices, sets[i].dev_count,
					    sets[i].recs, sets[i].rec_count));
	}
	for (expire = 0; expire <= 1; expire++)
	for (imap = 0; imap <= 1; imap++)
	for (proto = 0; proto <= 1; proto++)
	for (seen = 0; seen < 3; seen++) {
		set_policy(&set, 3, 0, 0);
		set.device_expire_secs = expire * 200;
		set.imap_counts_as_retrieval = imap == 1;
		fprintf(out, "device-counts expire=%u imap_counts=%u %s "
			"last_seen=%ld now=1000: %d\n", expire * 200, imap,
			proto == 0 ? "pop3" : "imap", (long)last_seen[seen],
			mw_all_devices_counts(&set, proto == 0 ? "pop3" : "imap",
					      last_seen[seen], 1000));
	}
	for (expire = 0; expire <= 1; expire++)
	for (r = 0; r < 3; r++)
	for (seen = 0; seen < 3; seen++) {
		set_policy(&set, 3, 0, 0);
		set.device_expire_secs = expire * 400;
		fprintf(out, "suspended expire=%u reset=%ld now=%ld: %d\n",
			expire * 400, (long)resets[r], (long)last_seen[seen] + 500,
			mw_all_devices_suspended(&set, resets[r],
						 last_seen[seen] + 500));
	}
}

/* The sweep over one message's records at now = 1000. */
static void render_sweep(FILE *out)
{
	static const struct {
		const char *name;
		unsigned int count;
		struct mw_retrieval_rec recs[2];
	} msgs[] = {
		{ "no due, device 1 has it", 1, { { 1, true, false, 0 } } },
		{ "no due, both devices have it", 2,
		  { { 1, true, false, 0 }, { 2, false, true, 0 } } },
		{ "due past", 1, { { 1, true, false, 900 } } },
		{ "due now", 1, { { 1, true, false, 1000 } } },
		{ "due future", 1, { { 1, true, false, 1100 } } },
		{ "due past and future, earliest counts", 2,
		  { { 1, true, false, 1100 }, { 2, true, false, 900 } } },
		{ "disposed and due past", 2,
		  { { 1, true, false, MW_RETRIEVAL_DUE_DISPOSED },
		    { 2, true, false, 900 } } },
		{ "record without retrieval", 2,
		  { { 1, true, false, 0 }, { 2, false, false, 0 } } },
	};
	static const uint16_t devices[] = { 1, 2 };
	struct mw_sweep_devices sdevs;
	struct mw_settings set;
	enum mw_sweep_action action;
	unsigned int policy, delay, m, usable, ndev;
	time_t due;

	for (policy = 0; policy < 4; policy++)
	for (delay = 0; delay <= 1; delay++)
	for (m = 0; m < sizeof(msgs)/sizeof(msgs[0]); m++)
	for (usable = 0; usable <= 1; usable++)
	for (ndev = 1; ndev <= 2; ndev++) {
		set_policy(&set, policy, MW_DISPOSITION_EXPUNGE,
			   delay * 3600);
		sdevs.dev_nos = devices;
		sdevs.count = ndev;
		sdevs.usable = usable == 1;
		action = mw_sweep_decide(&set, msgs[m].recs, msgs[m].count,
					 &sdevs, 1000, &due);
		fprintf(out, "sweep %s delay=%u devices_usable=%u devices=%u "
			"(%s) now=1000: %s due=%ld\n", policy_short[policy],
			delay * 3600, usable, ndev, msgs[m].name,
			mw_sweep_action_name(action), (long)due);
	}
}

static void render_retrieval_decisions(FILE *out)
{
	render_view(out);
	render_quit(out);
	render_allowed(out);
	render_all_devices(out);
	render_sweep(out);
}

/* The golden decision table: every EXPIRE value over policy x
   disposition x hold x fail-safe x delay, the settings a user without
   any mailward setting gets, and every retrieval decision of
   mw-retrieval.h (view, QUIT, who may act, all devices, sweep), rendered one decision a line and compared with
   tests/unit/policy-decisions.golden. A changed entry fails here; a
   deliberate change updates the golden file in the same commit. */
static void render_decisions(FILE *out)
{
	static const unsigned int delays[] = {
		0, 1, 86399, 86400, 86401, 7 * 86400, MW_INTERVAL_MAX
	};
	struct mw_settings set;
	struct mw_setting_error errors[MW_SETTINGS_MAX_ERRORS];
	const struct kv none[] = { { NULL, NULL, MW_SOURCE_DEFAULT } };
	const struct mw_setting_def *def;
	unsigned int policy, disp, hold, fail_safe, d, count;
	char buf[32];

	for (policy = MW_POP3_POLICY_CLIENT;
	     policy <= MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES; policy++) {
		for (disp = MW_DISPOSITION_EXPUNGE;
		     disp <= MW_DISPOSITION_MOVE; disp++)
		for (hold = 0; hold <= 1; hold++)
		for (fail_safe = 0; fail_safe <= 1; fail_safe++)
		for (d = 0; d < sizeof(delays)/sizeof(delays[0]); d++) {
			memset(&set, 0, sizeof(set));
			set.pop3_policy = policy;
			set.disposition = disp;
			set.hold = hold == 1;
			set.fail_safe = fail_safe == 1;
			set.expunge_delay_secs = delays[d];
			if (!mw_pop3_expire_capability(&set, buf, sizeof(buf)))
				snprintf(buf, sizeof(buf), "(Dovecot's CAPA)");
			fprintf(out, "expire %s %s hold=%u fail_safe=%u "
				"delay=%u: %s\n", mw_pop3_policy_name(policy),
				mw_pop3_disposition_name(disp), hold,
				fail_safe, delays[d], buf);
		}
	}
	mw_settings_read(&set, kv_lookup, (void *)none, errors, &count);
	fprintf(out, "default errors=%u fail_safe=%d\n", count, set.fail_safe);
	fprintf(out, "default pop3_policy=%s source=%s\n",
		mw_pop3_policy_name(set.pop3_policy),
		mw_setting_source_name(set.pop3_policy_source));
	fprintf(out, "default pop3_disposition=%s source=%s\n",
		mw_pop3_disposition_name(set.disposition),
		mw_setting_source_name(set.disposition_source));
	fprintf(out, "default expunge_delay_secs=%u hold=%d imap_expunge=%s "
		"imap_counts_as_retrieval=%d\n", set.expunge_delay_secs,
		set.hold, set.imap_expunge == MW_IMAP_EXPUNGE_DENY ?
		"deny" : "allow", set.imap_counts_as_retrieval);
	fprintf(out, "default state_enabled=%d device_max=%u "
		"device_expire_secs=%u device_v4_prefix=%u "
		"device_v6_prefix=%u\n", set.state_enabled, set.device_max,
		set.device_expire_secs, set.device_v4_prefix,
		set.device_v6_prefix);
	fprintf(out, "default audit_required=%d audit_remote=%s\n",
		set.audit_required,
		set.audit_remote == NULL ? "(null)" : set.audit_remote);
	for (def = mw_setting_defs; def->name != NULL; def++)
		fprintf(out, "setting %s = \"%s\"\n", def->name,
			def->default_text);
	render_retrieval_decisions(out);
}

static void test_decisions_golden(void **state)
{
	char *actual = NULL, *golden = NULL;
	size_t actual_size = 0, golden_size, i, line = 1;
	FILE *out, *in;
	long len;

	(void)state;
	out = open_memstream(&actual, &actual_size);
	assert_non_null(out);
	render_decisions(out);
	assert_int_equal(fclose(out), 0);

	in = fopen(MW_TEST_SRCDIR "/tests/unit/policy-decisions.golden", "r");
	assert_non_null(in);
	assert_int_equal(fseek(in, 0, SEEK_END), 0);
	len = ftell(in);
	assert_true(len >= 0);
	rewind(in);
	golden = calloc(1, (size_t)len + 1);
	assert_non_null(golden);
	golden_size = fread(golden, 1, (size_t)len, in);
	fclose(in);

	for (i = 0; i < actual_size && i < golden_size &&
		    actual[i] == golden[i]; i++) {
		if (actual[i] == '\n')
			line++;
	}
	if (i != actual_size || i != golden_size) {
		fprintf(stderr, "decision table differs from "
			"policy-decisions.golden at line %zu; the table now:\n%s",
			line, actual);
	}
	free(golden);
	free(actual);
	assert_true(i == actual_size && i == golden_size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_interval_parse),
		cmocka_unit_test(test_policy_parse),
		cmocka_unit_test(test_bool_uint_parse),
		cmocka_unit_test(test_settings_read),
		cmocka_unit_test(test_expire_capability),
		cmocka_unit_test(test_setting_defs_complete),
		cmocka_unit_test(test_disposition_parse),
		cmocka_unit_test(test_disposition_settings),
		cmocka_unit_test(test_decisions_golden),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
