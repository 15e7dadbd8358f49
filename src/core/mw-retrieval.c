/* The retrieval policy's decisions, pure functions (see mw-retrieval.h) */

#include <string.h>

#include "mw-retrieval.h"

enum mw_view_scope mw_view_scope(const struct mw_settings *set)
{
	if (set->pop3_policy == MW_POP3_POLICY_CLIENT &&
	    set->disposition == MW_DISPOSITION_EXPUNGE &&
	    set->expunge_delay_secs == 0)
		return MW_VIEW_NONE;
	/* other devices' records matter only for due expunges */
	return set->expunge_delay_secs > 0 ? MW_VIEW_ALL_DEVICES :
		MW_VIEW_OWN_DEVICE;
}

bool mw_view_hides(const struct mw_settings *set, uint16_t session_dev_no,
		   const struct mw_retrieval_rec *rec, time_t now)
{
	if (rec->expunge_due > MW_RETRIEVAL_DUE_DISPOSED &&
	    rec->expunge_due <= now) {
		/* due for expunge: no device lists it any more */
		return true;
	}
	if (rec->dev_no != session_dev_no)
		return false;
	switch (set->pop3_policy) {
	case MW_POP3_POLICY_CLIENT:
		/* a DELE that seen or move disposed of, or that a fail-safe
		   session kept */
		return rec->deleted && set->disposition != MW_DISPOSITION_EXPUNGE;
	case MW_POP3_POLICY_LEAVE_ON_SERVER:
		return rec->deleted;
	case MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL:
	case MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES:
		return rec->deleted || rec->retrieved;
	}
	return false;
}

bool mw_all_devices_counts(const struct mw_settings *set,
			   const char *protocol, time_t last_seen, time_t now)
{
	if (set->device_expire_secs > 0 &&
	    last_seen + (time_t)set->device_expire_secs < now)
		return false;
	if (!set->imap_counts_as_retrieval && strcmp(protocol, "pop3") != 0)
		return false;
	return true;
}

bool mw_all_devices_suspended(const struct mw_settings *set,
			      time_t reset_time, time_t now)
{
	time_t expire = (time_t)set->device_expire_secs;

	if (reset_time == 0 || (expire > 0 && now > reset_time + expire))
		return false;
	return true;
}

bool mw_all_devices_have(const uint16_t *devices, unsigned int dev_count,
			 const struct mw_retrieval_rec *recs,
			 unsigned int rec_count)
{
	unsigned int d, i;

	if (dev_count == 0)
		return false;
	for (d = 0; d < dev_count; d++) {
		for (i = 0; i < rec_count; i++) {
			if (recs[i].dev_no == devices[d] &&
			    (recs[i].retrieved || recs[i].deleted))
				break;
		}
		if (i == rec_count)
			return false;
	}
	return true;
}

bool mw_dispose_allowed(const struct mw_settings *set, bool fail_safe)
{
	if (set->disposition == MW_DISPOSITION_SEEN)
		return !fail_safe;
	return !fail_safe && !set->hold;
}

bool mw_dele_goes_ahead(const struct mw_settings *set, bool fail_safe)
{
	return set->pop3_policy == MW_POP3_POLICY_CLIENT &&
		set->disposition == MW_DISPOSITION_EXPUNGE &&
		!fail_safe && !set->hold;
}

/* TRUE if the policy wants the disposition for a message the session
   retrieved or deleted */
static bool quit_wanted(const struct mw_settings *set,
			const struct mw_quit_facts *f)
{
	if (set->disposition == MW_DISPOSITION_KEEP)
		return false;
	switch (set->pop3_policy) {
	case MW_POP3_POLICY_CLIENT:
	case MW_POP3_POLICY_LEAVE_ON_SERVER:
		/* a DELE Dovecot did not expunge: seen and move dispose of
		   it (a DELE in a fail-safe session is kept) */
		return f->deleted &&
			(set->disposition == MW_DISPOSITION_SEEN ||
			 set->disposition == MW_DISPOSITION_MOVE);
	case MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL:
		return f->retrieved || f->deleted;
	case MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES:
		return (f->retrieved || f->deleted) && f->state_known &&
			f->all_devices_have;
	}
	return false;
}

enum mw_quit_action mw_quit_decide(const struct mw_settings *set,
				   const struct mw_quit_facts *facts,
				   time_t now, time_t *due_r)
{
	time_t due;

	*due_r = 0;
	if (facts->client_expunged)
		return MW_QUIT_CLIENT_EXPUNGED;
	if (!quit_wanted(set, facts)) {
		return facts->retrieved || facts->deleted ?
			MW_QUIT_KEEP : MW_QUIT_UNTOUCHED;
	}
	if (set->expunge_delay_secs == 0)
		return MW_QUIT_DISPOSE;
	if (!facts->state_known) {
		/* the due time cannot be recorded: keep it rather than
		   expunge early */
		return MW_QUIT_KEEP;
	}
	due = now + (time_t)set->expunge_delay_secs;
	if (facts->recorded_due != 0 && facts->recorded_due < due)
		due = facts->recorded_due;
	if (due == MW_RETRIEVAL_DUE_DISPOSED) {
		/* \Seen already, nothing more due */
		return MW_QUIT_KEEP;
	}
	*due_r = due;
	return MW_QUIT_SCHEDULE;
}

bool mw_sweep_needed(const struct mw_settings *set)
{
	if (set->disposition == MW_DISPOSITION_KEEP)
		return false;
	return set->expunge_delay_secs > 0 ||
		set->pop3_policy == MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES ||
		set->pop3_policy == MW_POP3_POLICY_EXPUNGE_AFTER_RETRIEVAL ||
		set->disposition == MW_DISPOSITION_SEEN ||
		set->disposition == MW_DISPOSITION_MOVE;
}

enum mw_sweep_action
mw_sweep_decide(const struct mw_settings *set,
		const struct mw_retrieval_rec *recs, unsigned int count,
		const struct mw_sweep_devices *devices, time_t now,
		time_t *due_r)
{
	time_t due = 0;
	unsigned int i;

	*due_r = 0;
	for (i = 0; i < count; i++) {
		if (recs[i].expunge_due == MW_RETRIEVAL_DUE_DISPOSED) {
			/* marked \Seen already (disposition seen) */
			return MW_SWEEP_NONE;
		}
		if (recs[i].expunge_due != 0 &&
		    (due == 0 || recs[i].expunge_due < due))
			due = recs[i].expunge_due;
	}
	if (due == 0 && devices->usable &&
	    set->pop3_policy == MW_POP3_POLICY_EXPUNGE_AFTER_ALL_DEVICES &&
	    mw_all_devices_have(devices->dev_nos, devices->count, recs,
				count)) {
		if (set->expunge_delay_secs > 0) {
			/* every device has it: the delay starts */
			*due_r = now + (time_t)set->expunge_delay_secs;
			return MW_SWEEP_START_DELAY;
		}
		due = now;
	}
	if (due == 0 || due > now)
		return MW_SWEEP_NONE;
	*due_r = due;
	return MW_SWEEP_DUE;
}

const char *mw_quit_action_name(enum mw_quit_action action)
{
	switch (action) {
	case MW_QUIT_UNTOUCHED:
		return "untouched";
	case MW_QUIT_CLIENT_EXPUNGED:
		return "client-expunged";
	case MW_QUIT_KEEP:
		return "keep";
	case MW_QUIT_SCHEDULE:
		return "schedule";
	case MW_QUIT_DISPOSE:
		return "dispose";
	}
	return "?";
}

const char *mw_sweep_action_name(enum mw_sweep_action action)
{
	switch (action) {
	case MW_SWEEP_NONE:
		return "none";
	case MW_SWEEP_START_DELAY:
		return "start-delay";
	case MW_SWEEP_DUE:
		return "due";
	}
	return "?";
}
