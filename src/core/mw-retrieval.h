#ifndef MW_RETRIEVAL_H
#define MW_RETRIEVAL_H

/* The retrieval policy's decisions (DESIGN.md "Policy semantics") as pure
   functions: what the per-device POP3 view hides, what QUIT does with a
   message, which records a sweep finds due, when a message is complete
   under expunge-after-all-devices. Inputs are plain facts the plugin glue
   gathers (settings, hold and fail-safe, device records, times); outputs
   are values the glue carries out. No I/O, no allocation, no state:
   tests/unit/test-policy.c renders every table into
   tests/unit/policy-decisions.golden. */

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "mw-policy.h"

/* What the state store holds about one message for one device (a subset
   of struct mw_msg_rec). */
struct mw_retrieval_rec {
	uint16_t dev_no;
	/* retrieved (RETR) or deleted (DELE) on that device */
	bool retrieved, deleted;
	/* 0 = nothing due, MW_RETRIEVAL_DUE_DISPOSED = disposition seen
	   carried out (nothing more due), else the expunge's due time */
	time_t expunge_due;
};

/* expunge_due of a message whose disposition seen was carried out
   (the same value as mw-store.h's MW_MSG_DUE_DISPOSED). */
#define MW_RETRIEVAL_DUE_DISPOSED ((time_t)1)

/* Which records the per-device view of a POP3 session must read. */
enum mw_view_scope {
	MW_VIEW_NONE = 0,	/* nothing is ever hidden: read nothing */
	MW_VIEW_OWN_DEVICE,	/* this device's records */
	MW_VIEW_ALL_DEVICES,	/* every device's (due expunges hide too) */
};

/* The records the view of a session under set needs. */
enum mw_view_scope mw_view_scope(const struct mw_settings *set);

/* TRUE if rec hides its message from the POP3 listing of device
   session_dev_no at now (seconds since the epoch): an expunge due by now
   hides it from every device; this device's own DELE hides it (under
   client only when the disposition is not expunge, i.e. Dovecot did not
   expunge it), and under the expunge-after policies its RETR too. */
bool mw_view_hides(const struct mw_settings *set, uint16_t session_dev_no,
		   const struct mw_retrieval_rec *rec, time_t now);

/* TRUE if a device counts for expunge-after-all-devices at now: seen
   within mailward_device_expire (no expiry: always), and an IMAP device
   only when IMAP fetches count as retrieval. protocol is the
   device's ("pop3", "imap", ...), last_seen in seconds since the epoch. */
bool mw_all_devices_counts(const struct mw_settings *set,
			   const char *protocol, time_t last_seen, time_t now);

/* TRUE while expunge-after-all-devices must not expunge because the state
   store replaced a damaged one at reset_time (0 = never): devices seen
   before the reset are unknown until they log in again, and they count
   until mailward_device_expire after the reset (forever without
   expiry). */
bool mw_all_devices_suspended(const struct mw_settings *set,
			      time_t reset_time, time_t now);

/* TRUE if the message is complete under expunge-after-all-devices: devices
   (dev_count device numbers, the ones that count) is not empty and each of
   them has a record in recs (rec_count records of the one message, any
   order) that says retrieved or deleted. The one test for both the sweep
   (records read in bulk) and QUIT (the session's device plus the other
   devices' records read one by one). */
bool mw_all_devices_have(const uint16_t *devices, unsigned int dev_count,
			 const struct mw_retrieval_rec *recs,
			 unsigned int rec_count);

/* TRUE if an expunge that policy decided may be carried out with the
   disposition of set: seen removes nothing and only a fail-safe session
   leaves it out; expunge and move need no hold and no fail-safe.
   fail_safe is the session's (invalid setting, store or audit error). */
bool mw_dispose_allowed(const struct mw_settings *set, bool fail_safe);

/* TRUE if Dovecot's own POP3 DELE (expunge or pop3_deleted_flag at QUIT)
   may go ahead: client policy with disposition expunge, no hold, not
   fail-safe. Otherwise the message stays and policy decides at QUIT. */
bool mw_dele_goes_ahead(const struct mw_settings *set, bool fail_safe);

/* What a POP3 session that ended with QUIT did with one message. */
struct mw_quit_facts {
	bool retrieved, deleted;
	/* Dovecot expunged it at QUIT (mw_dele_goes_ahead()) */
	bool client_expunged;
	/* the state store can record for this device (store open, device
	   registered, mailbox GUID known) */
	bool state_known;
	/* expunge-after-all-devices: mw_all_devices_have() over the devices
	   that count, the session's device included, and nothing blocks it
	   (store error, reset, device removed); FALSE otherwise */
	bool all_devices_have;
	/* this device's stored expunge_due for it (0 = none) */
	time_t recorded_due;
};

enum mw_quit_action {
	MW_QUIT_UNTOUCHED = 0,	/* neither retrieved nor deleted */
	MW_QUIT_CLIENT_EXPUNGED, /* Dovecot's own DELE expunged it */
	MW_QUIT_KEEP,		/* it stays (counted as kept) */
	MW_QUIT_SCHEDULE,	/* record it due at *due_r */
	MW_QUIT_DISPOSE,	/* carry out the disposition now */
};

/* The policy's decision at QUIT for one message, at now. For
   MW_QUIT_SCHEDULE *due_r is now + mailward_expunge_delay, or the earlier
   recorded due time; otherwise *due_r is 0. Whether the disposition may
   be carried out (hold, fail-safe) is mw_dispose_allowed()'s. */
enum mw_quit_action mw_quit_decide(const struct mw_settings *set,
				   const struct mw_quit_facts *facts,
				   time_t now, time_t *due_r);

/* TRUE if anything can be due for a user with set at a session's end
   sweep: never under disposition keep; otherwise with a delay,
   under the expunge-after policies, and with seen or move (policy
   dispositions that could not be carried out at QUIT are recorded due
   now). */
bool mw_sweep_needed(const struct mw_settings *set);

enum mw_sweep_action {
	MW_SWEEP_NONE = 0,	/* nothing due (or disposed of already) */
	MW_SWEEP_START_DELAY,	/* every device has it: due at *due_r */
	MW_SWEEP_DUE,		/* due since *due_r: carry it out now */
};

/* The devices that count for expunge-after-all-devices, as a sweep
   knows them. */
struct mw_sweep_devices {
	const uint16_t *dev_nos;
	unsigned int count;
	/* the devices were read and mw_all_devices_suspended() is FALSE:
	   without it, all-devices completeness is never decided */
	bool usable;
};

/* A sweep's decision for one message whose records are recs[0..count)
   (every device's): the earliest due time of a record, or, under
   expunge-after-all-devices with devices->usable and every device of
   devices having it, due now (or at now + delay, MW_SWEEP_START_DELAY).
   A record that says disposed ends it: NONE. *due_r is 0 for NONE. */
enum mw_sweep_action
mw_sweep_decide(const struct mw_settings *set,
		const struct mw_retrieval_rec *recs, unsigned int count,
		const struct mw_sweep_devices *devices, time_t now,
		time_t *due_r);

/* Names of the actions for logs and tables (static strings). */
const char *mw_quit_action_name(enum mw_quit_action action);
const char *mw_sweep_action_name(enum mw_sweep_action action);

#endif
