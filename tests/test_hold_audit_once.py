"""Under a legal hold (or in a fail-safe session) a message whose policy
expunge is due is suppressed at every session end and every sweep; its
suppression is audited once per message and cause (the state store's
mark), not at every sweep: later sweeps that find it still held write no
record for it, lifting the hold expunges it (intent and done), and a hold
set again audits only what is newly due. The audit log would otherwise
grow by one record per held message per session or cron run."""
import os
import time

from mwharness import imap, make_message, pop3
from test_no_change_no_write import txnid


def user_recs(sbx, user, event=None):
    return [r for r in sbx.audit_records() if r.get("user") == user and
            (event is None or r["event"] == event)]


def wait_logouts(sbx, user, count):
    """Waits (bounded) until count sessions of user wrote their logout
    record: a session's records reach the log after its client saw the
    reply."""
    deadline = time.time() + 15
    while len(user_recs(sbx, user, "logout")) < count:
        assert time.time() < deadline, user_recs(sbx, user)
        time.sleep(0.05)


def suppressed_uids(sbx, user, cause="hold"):
    recs = user_recs(sbx, user, "expunge_suppressed")
    assert all(r["outcome"] == "suppressed" and r["cause"] == cause
               for r in recs), recs
    return sorted(r["uid"] for r in recs)


def pop3_session(sbx, user, retr=(), logouts=None):
    p = pop3(sbx, user)
    for n in retr:
        p.retr(n)
    p.quit()
    wait_logouts(sbx, user, logouts)


def imap_session(sbx, user, logouts):
    i = imap(sbx, user)
    i.select("INBOX")
    i.logout()
    wait_logouts(sbx, user, logouts)


def test_hold_delayed_expunge_audited_once(sandbox_factory):
    """expunge-after-retrieval with a delay: the sweeps (doveadm mailward
    expunge as cron runs it, a POP3 and an IMAP session end) find the due
    messages held; the first sweep audits each once, the next write
    nothing for them."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s", "mailward_hold": "yes"}},
        audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    pop3_session(sbx, "alice", retr=(1, 2, 3), logouts=1)
    assert suppressed_uids(sbx, "alice") == []      # not due yet
    time.sleep(2.1)

    # first sweep: one record per due message, the marks in one write
    # transaction
    t0 = txnid(sbx)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3]
    assert txnid(sbx) == t0 + 1
    # later sweeps: none for them (cron, POP3 and IMAP session ends), and
    # a sweep that changes nothing writes nothing
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert txnid(sbx) == t0 + 1
    pop3_session(sbx, "alice", logouts=2)
    imap_session(sbx, "alice", logouts=3)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3]
    logouts = user_recs(sbx, "alice", "logout")
    assert [r["suppressed"] for r in logouts[1:]] == [0, 0], logouts
    # one log line per sweep (the sessions'; doveadm's go to its stderr)
    sbx.wait_log(r"mailward: 3 delayed expunge\(s\) in INBOX suppressed "
                 r"\(0 audited now, 3 before\): legal hold", count=2)
    assert sbx.maildir_count("alice") == 3

    # the hold lifted: expunged, with intent and done
    sbx.set_user_fields("alice", mailward_hold=None)
    rows = sbx.doveadm_json("mailward", "expunge", "-u", "alice")
    assert sorted(int(r["uid"]) for r in rows) == [1, 2, 3], rows
    assert sbx.maildir_count("alice") == 0
    for ev in ("expunge_intent", "expunge_done"):
        recs = user_recs(sbx, "alice", ev)
        assert sorted(r["uid"] for r in recs) == [1, 2, 3], recs
        assert all(r["cause"] == "delay" for r in recs), recs

    # held again: only the message newly due is audited
    sbx.set_user_fields("alice", mailward_hold="yes")
    sbx.deliver("alice", [make_message(i) for i in (10, 11)])
    pop3_session(sbx, "alice", retr=(1,), logouts=4)
    time.sleep(2.1)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3, 4]
    assert sbx.maildir_count("alice") == 2
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def test_hold_all_devices_audited_once(sandbox_factory):
    """expunge-after-all-devices (every device has the messages: due at
    once): the QUIT that makes them due audits each once, and neither the
    later session ends' sweeps nor doveadm's audit them again."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-all-devices",
        "mailward_hold": "yes"}}, audit=True)
    pop3_session(sbx, "alice", logouts=1)       # the only device is known
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    pop3_session(sbx, "alice", retr=(1, 2, 3), logouts=2)
    assert suppressed_uids(sbx, "alice") == [1, 2, 3]
    assert user_recs(sbx, "alice", "logout")[1]["suppressed"] == 3

    # (no IMAP session: its device would count and not have them)
    for n in (3, 4):
        pop3_session(sbx, "alice", logouts=n)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3]
    logouts = user_recs(sbx, "alice", "logout")
    assert [r["suppressed"] for r in logouts[2:]] == [0, 0], logouts
    assert sbx.maildir_count("alice") == 3

    # the hold lifted: the next session's sweep expunges them
    sbx.set_user_fields("alice", mailward_hold=None)
    pop3_session(sbx, "alice", logouts=5)
    assert sbx.maildir_count("alice") == 0
    for ev in ("expunge_intent", "expunge_done"):
        recs = user_recs(sbx, "alice", ev)
        assert sorted(r["uid"] for r in recs) == [1, 2, 3], recs

    # held again: only the new message is audited, once
    sbx.set_user_fields("alice", mailward_hold="yes")
    sbx.deliver("alice", [make_message(7)])
    pop3_session(sbx, "alice", retr=(1,), logouts=6)
    pop3_session(sbx, "alice", logouts=7)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice") == [1, 2, 3, 4]
    assert sbx.maildir_count("alice") == 1
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def test_fail_safe_then_hold_each_cause_audited_once(sandbox_factory):
    """A fail-safe session (an invalid setting) suppresses due expunges
    too: audited once with cause fail_safe, not again at the next sweep;
    a hold afterwards is another cause: audited once more, with cause
    hold."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    pop3_session(sbx, "alice", retr=(1, 2), logouts=1)
    sbx.set_user_fields("alice", mailward_pop3_login_delay="bogus")
    time.sleep(1.1)
    for n in (2, 3):
        pop3_session(sbx, "alice", logouts=n)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert suppressed_uids(sbx, "alice", "fail_safe") == [1, 2]
    sbx.wait_log(r"pop3\(alice\).*mailward: 2 delayed expunge\(s\) in INBOX "
                 r"suppressed \(0 audited now, 2 before\)")

    sbx.set_user_fields("alice", mailward_pop3_login_delay=None,
                        mailward_hold="yes")
    for n in (4, 5):
        pop3_session(sbx, "alice", logouts=n)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    recs = user_recs(sbx, "alice", "expunge_suppressed")
    # (in log order; within one sweep in the store's order)
    assert [r["cause"] for r in recs] == ["fail_safe"] * 2 + ["hold"] * 2
    assert sorted(r["uid"] for r in recs[2:]) == [1, 2], recs
    assert sbx.maildir_count("alice") == 2
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


AUTOEXPUNGE_CONF = """
namespace inbox {
  inbox = yes
  mailbox Trash {
    special_use = \\Trash
    auto = create
    autoexpunge = 1s
  }
}
"""


def test_imap_expunge_deny_autoexpunge_not_audited_per_session(
        sandbox_factory):
    """mailward_imap_expunge=deny refuses expunges in IMAP sessions, and
    Dovecot's autoexpunge runs at every IMAP session end: it is not run
    there (as under a hold), so old Trash messages are neither expunged
    nor audited as suppressed at every session; one info line per
    session says so. A POP3 session's autoexpunge is not an IMAP expunge
    and runs."""
    sbx = sandbox_factory(users={"alice": {"mailward_imap_expunge": "deny"}},
                          audit=True, extra_conf=AUTOEXPUNGE_CONF)
    sbx.deliver("alice", [make_message(i) for i in range(2)],
                folder="Trash")
    time.sleep(1.5)
    for n in (1, 2, 3):
        imap_session(sbx, "alice", logouts=n)
    sbx.wait_log(r"imap\(alice\).*mailward: mailward_imap_expunge=deny: "
                 r"Dovecot's autoexpunge is not run in IMAP sessions of "
                 r"this user", count=3)
    assert user_recs(sbx, "alice", "expunge_suppressed") == []
    assert [l for l in sbx.read_log().splitlines() if "(alice)" in l and
            (": Error: " in l or "Failed to autoexpunge" in l)] == []
    assert sbx.maildir_count("alice", "Trash") == 2
    pop3_session(sbx, "alice", logouts=4)
    assert sbx.maildir_count("alice", "Trash") == 0


def test_move_destination_unusable_audited_once(sandbox_factory):
    """A delayed disposition move whose destination cannot be used (here a
    regular file where the Archive maildir would be) fails at every sweep
    and the messages stay due: each is audited as disposed/failed once
    while it fails, not at every sweep; once the destination is usable
    they are moved."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s",
        "mailward_pop3_disposition": "move:Archive"}}, audit=True)
    blocker = sbx.maildir("alice", "Archive")
    with open(blocker, "w") as f:
        f.write("not a maildir\n")
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    pop3_session(sbx, "alice", retr=(1, 2), logouts=1)
    time.sleep(2.1)
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    assert sbx.doveadm_json("mailward", "expunge", "-u", "alice") == []
    pop3_session(sbx, "alice", logouts=2)
    sbx.wait_log(r"pop3\(alice\).*destination mailbox Archive cannot be "
                 r"used")
    failed = user_recs(sbx, "alice", "disposed")
    assert sorted(r["uid"] for r in failed) == [1, 2], failed
    assert all(r["outcome"] == "failed" for r in failed), failed
    assert sbx.maildir_count("alice") == 2

    os.unlink(blocker)
    rows = sbx.doveadm_json("mailward", "expunge", "-u", "alice")
    assert sorted(int(r["uid"]) for r in rows) == [1, 2], rows
    done = [r for r in user_recs(sbx, "alice", "disposed")
            if r["outcome"] == "ok"]
    assert sorted(r["uid"] for r in done) == [1, 2], done
    assert sbx.maildir_count("alice") == 0
    assert sbx.maildir_count("alice", "Archive") == 2
