"""A suppression (or disposition failure) that is audited once per message
is marked as audited in the state store only once its record is durable:
acknowledged by the audit writer, or (the writer away) written to the
spool. With the writer away and no usable spool the record cannot be
written: the message stays unmarked and a later sweep audits it, instead
of the record never existing (the mark used to be set when the record was
queued). The info line counts only the records written."""
import os
import signal
import time

import pytest

from mwharness import make_message
from test_audit_outage import stop_writers
from test_hold_audit_once import pop3_session, suppressed_uids, user_recs


class WriterAway:
    """The audit writer unreachable (socket mode 0, writers stopped), and
    with spool="unwritable" its spool directory unusable, until exit."""

    def __init__(self, sbx, spool):
        self.sbx, self.spool = sbx, spool

    def __enter__(self):
        os.chmod(self.sbx.audit_socket_path, 0)
        self.stopped = stop_writers(self.sbx)
        if self.spool == "unwritable":
            self.mode = os.stat(self.sbx.audit_spool).st_mode & 0o7777
            os.chmod(self.sbx.audit_spool, 0)
        return self

    def __exit__(self, *exc):
        if self.spool == "unwritable":
            os.chmod(self.sbx.audit_spool, self.mode)
        for pid in self.stopped:
            os.kill(pid, signal.SIGCONT)
        os.chmod(self.sbx.audit_socket_path, 0o666)


def sandbox(sandbox_factory, spool, fields):
    plugin = {"mailward_audit_spool": ""} if spool == "none" else {}
    sbx = sandbox_factory(users={"alice": fields}, audit=True, plugin=plugin)
    return sbx


def wait_uids(sbx, want, cause="hold", event="expunge_suppressed"):
    """Waits (bounded) until the log has the records of uids want (a
    session's records reach the log after its client saw the reply)."""
    deadline = time.time() + 10
    while True:
        recs = user_recs(sbx, "alice", event)
        uids = suppressed_uids(sbx, "alice", cause) \
            if event == "expunge_suppressed" else \
            sorted(r["uid"] for r in recs)
        if uids == want or time.time() > deadline:
            return uids
        time.sleep(0.1)


@pytest.mark.parametrize("cause,spool", [("hold", "none"),
                                         ("hold", "unwritable"),
                                         ("fail_safe", "none"),
                                         ("hold", "ok")])
def test_suppression_marked_only_once_durable(sandbox_factory, cause, spool):
    """Held (or fail-safe), delayed expunges due; the first sweep (doveadm
    mailward expunge, as cron runs it) runs with the writer away: without
    a usable spool its records are not written and the messages stay
    unmarked, so the next sweep with the writer back audits them (once);
    with a spool they are kept there and added when the writer is back,
    and not audited again."""
    fields = {"mailward_pop3_policy": "expunge-after-retrieval",
              "mailward_expunge_delay": "1s"}
    if cause == "hold":
        fields["mailward_hold"] = "yes"
    sbx = sandbox(sandbox_factory, spool, fields)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    pop3_session(sbx, "alice", retr=(1, 2, 3), logouts=1)
    if cause == "fail_safe":
        sbx.set_user_fields("alice", mailward_pop3_login_delay="bogus")
    time.sleep(2.1)
    assert suppressed_uids(sbx, "alice", cause) == []

    with WriterAway(sbx, spool):
        r = sbx.doveadm("mailward", "expunge", "-u", "alice", check=False)
    if spool == "ok":
        assert "3 audited now, 0 before)" in r.stderr, r.stderr
        assert "moved to spool file" in r.stderr, r.stderr
    else:
        # the info line counts what was written: nothing
        assert "(0 audited now, 0 before, 3 not written: audit log " \
            "unavailable, audited again by the next sweep)" in r.stderr, \
            r.stderr
        assert "Audit log unavailable: 3 expunge_suppressed record(s) " \
            "not written" in r.stderr, r.stderr

    # the writer back: a sweep audits what was not written, once
    r = sbx.doveadm("mailward", "expunge", "-u", "alice")
    if spool == "ok":
        assert "(0 audited now, 3 before)" in r.stderr, r.stderr
    else:
        assert "(3 audited now, 0 before)" in r.stderr, r.stderr
    pop3_session(sbx, "alice", logouts=2)
    assert wait_uids(sbx, [1, 2, 3], cause) == [1, 2, 3]
    recs = user_recs(sbx, "alice", "expunge_suppressed")
    # from the spool (delayed) or written by the sweep with the writer
    assert all(("delayed" in x) == (spool == "ok") for x in recs), recs
    assert sbx.maildir_count("alice") == 3
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def test_quit_all_devices_hold_marked_only_once_durable(sandbox_factory):
    """expunge-after-all-devices under a hold: the QUIT that makes the
    messages due audits their suppression; with the writer away and no
    spool those records are lost, so the QUIT must not mark them: the next
    session's sweep (writer back) audits them."""
    sbx = sandbox(sandbox_factory, "none", {
        "mailward_pop3_policy": "expunge-after-all-devices",
        "mailward_hold": "yes"})
    pop3_session(sbx, "alice", logouts=1)       # the only device is known
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    with WriterAway(sbx, "none"):
        pop3_session(sbx, "alice", retr=(1, 2, 3), logouts=1)
        sbx.wait_log(r"pop3\(alice\).*audit: \d+ record\(s\) lost at "
                     r"session end")
    log = sbx.read_log()
    assert "3 policy expunge(s) in INBOX suppressed (0 audited now, 0 " \
        "before, 3 not written" in log, log
    assert suppressed_uids(sbx, "alice") == []

    pop3_session(sbx, "alice", logouts=2)
    assert wait_uids(sbx, [1, 2, 3]) == [1, 2, 3]
    pop3_session(sbx, "alice", logouts=3)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3]
    assert sbx.maildir_count("alice") == 3


def test_move_failed_marked_only_once_durable(sandbox_factory):
    """A delayed disposition move whose destination cannot be used is
    audited as disposed/failed once while it fails: with the writer away
    and no spool that record is not written, so the message is not marked
    and the next sweep (writer back) audits it."""
    sbx = sandbox(sandbox_factory, "none", {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s",
        "mailward_pop3_disposition": "move:Archive"})
    sbx.log_allow.append(r"destination mailbox Archive cannot be used")
    blocker = sbx.maildir("alice", "Archive")
    with open(blocker, "w") as f:
        f.write("not a maildir\n")
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    pop3_session(sbx, "alice", retr=(1, 2), logouts=1)
    time.sleep(2.1)
    with WriterAway(sbx, "none"):
        r = sbx.doveadm("mailward", "expunge", "-u", "alice", check=False)
    assert "Audit log unavailable: 2 disposed/failed record(s) not " \
        "written" in r.stderr, r.stderr
    assert user_recs(sbx, "alice", "disposed") == []

    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    failed = user_recs(sbx, "alice", "disposed")
    assert sorted(r["uid"] for r in failed) == [1, 2], failed
    assert all(r["outcome"] == "failed" for r in failed), failed
    assert sbx.maildir_count("alice") == 2
