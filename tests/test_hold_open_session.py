"""A legal hold set in the userdb reaches sessions opened before it (an
IMAP IDLE client stays logged in for days): the next session or doveadm
mailward command of the user records the hold in the state store (the
hold mark) and every open session re-reads the mark before it expunges
(its client's EXPUNGE, mailward's own sweep at its end). Lifting the hold
clears the mark; a session that saw the hold stays held until it ends
(the safe side). Attack review 5, finding 3."""
import time

import pytest

from mwharness import make_message, pop3, imap
from test_owner import acl_sandbox, grant, recs

APPLIED = (r"mailward: (owner alice: )?Legal hold of user alice applied "
           r"to this session, which started before it: the state store's "
           r"hold mark \(recorded [0-9-]+ [0-9:]+ UTC\) says so; nothing is "
           r"expunged from now on")


def _wait_logouts(sbx, count, service):
    """Waits (bounded) until count sessions of service wrote their logout
    record (the session end's sweep is done)."""
    deadline = time.time() + 15
    while sum(1 for r in sbx.audit_records()
              if r["event"] == "logout" and r["service"] == service) < count:
        assert time.time() < deadline, sbx.audit_records()
        time.sleep(0.05)


def _expunge_refused(i, uid_set):
    i.store(uid_set, "+FLAGS", "(\\Deleted)")
    typ, data = i._simple_command("EXPUNGE")
    assert typ == "OK", data
    assert b"legal hold" in data[-1], data


def _mark_hold(sbx, by):
    """Another session or the doveadm command, with fresh settings,
    records the hold mark."""
    if by == "pop3":
        p = pop3(sbx)
        p.quit()
    else:
        sbx.doveadm("mailward", "expunge", "-u", "alice")


@pytest.mark.parametrize("by", ["pop3", "doveadm"])
def test_hold_reaches_open_session(sandbox_factory, by):
    """The reviewer's scenario: an IMAP session open, a POP3 device
    retrieves 1-2 (expunge-after-retrieval, 1 s delay), then the hold is
    set. The old session's EXPUNGE is refused with the hold reply and its
    LOGOUT sweep expunges nothing of the due messages."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in (1, 2, 3)])
    i = imap(sbx)
    typ, data = i.select("INBOX")
    assert typ == "OK" and int(data[0]) == 3, data
    p = pop3(sbx)
    p.retr(1)
    p.retr(2)
    p.quit()
    sbx.set_user_fields("alice", mailward_hold="yes")  # 1.1 s: now due
    _mark_hold(sbx, by)
    assert sbx.maildir_count("alice") == 3
    _expunge_refused(i, "3")
    assert len(sbx.wait_log(APPLIED)) == 1
    typ, data = i.logout()
    _wait_logouts(sbx, 1, "imap")
    assert sbx.maildir_count("alice") == 3
    assert len([l for l in sbx.read_log().splitlines()
                if "Legal hold of user alice applied" in l]) == 1
    assert not recs(sbx, event="expunge_intent")
    sup = recs(sbx, event="expunge_suppressed", uid=3)
    assert len(sup) == 1, sup
    assert sup[0]["cause"] == "hold" and sup[0]["policy"] == "hold" and \
        sup[0]["policy_source"] == "state_store_mark", sup
    sbx.stop()
    rc, out = sbx.audit_verify()
    assert rc == 0, out


def test_hold_reaches_open_session_sweep(sandbox_factory):
    """The same without a client EXPUNGE: the old session's LOGOUT sweep
    re-reads the mark and keeps the due messages 1-2."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1s"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in (1, 2, 3)])
    i = imap(sbx)
    i.select("INBOX")
    p = pop3(sbx)
    p.retr(1)
    p.retr(2)
    p.quit()
    sbx.set_user_fields("alice", mailward_hold="yes")  # 1.1 s: now due
    sbx.doveadm("mailward", "check", "-u", "alice")
    i.logout()
    _wait_logouts(sbx, 1, "imap")
    assert sbx.maildir_count("alice") == 3
    assert len(sbx.wait_log(APPLIED)) == 1
    assert not recs(sbx, event="expunge_intent")


def test_hold_reaches_open_pop3_session(sandbox_factory):
    """A POP3 session (client policy) DELEs while the hold is set and
    recorded (doveadm mailward check): its QUIT keeps the message and says
    so."""
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in (1, 2)])
    p = pop3(sbx)
    p.dele(1)
    sbx.set_user_fields("alice", mailward_hold="yes")
    sbx.doveadm("mailward", "check", "-u", "alice")
    assert p.quit() == b"+OK Logging out, messages kept (legal hold)."
    _wait_logouts(sbx, 1, "pop3")
    assert sbx.maildir_count("alice") == 2
    assert len(sbx.wait_log(APPLIED)) == 1
    dele = recs(sbx, event="dele", uid=1)
    assert len(dele) == 1 and dele[0]["cause"] == "hold" and \
        dele[0]["policy_source"] == "state_store_mark", dele


def test_hold_lift_reaches_new_sessions_only(sandbox_factory):
    """Lifting: a fresh session clears the mark; the old session that saw
    the hold stays held until it ends (safe side); a new session expunges
    again."""
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in (1, 2, 3)])
    old = imap(sbx)
    old.select("INBOX")
    sbx.set_user_fields("alice", mailward_hold="yes")
    _mark_hold(sbx, "pop3")
    _expunge_refused(old, "1")
    sbx.set_user_fields("alice", mailward_hold=None)
    new = imap(sbx)  # clears the mark
    new.select("INBOX")
    # the old session still holds: it saw the hold, the lift is for
    # sessions that read the userdb
    _expunge_refused(old, "1")
    assert sbx.maildir_count("alice") == 3
    # (message 1 keeps the \Deleted flag the old session gave it)
    new.store("2", "+FLAGS", "(\\Deleted)")
    typ, data = new.uid("EXPUNGE", "2")
    assert typ == "OK", data
    assert sbx.maildir_count("alice") == 2
    new.logout()
    old.logout()
    assert sbx.maildir_count("alice") == 2
    # a session that starts after the lift expunges what the old one kept
    later = imap(sbx)
    later.select("INBOX")
    typ, data = later.expunge()
    assert typ == "OK" and data == [b"1"], data
    later.logout()
    assert sbx.maildir_count("alice") == 1


def test_hold_reaches_open_shared_session(sandbox_factory):
    """bob has alice's shared INBOX open when alice's hold is set; alice's
    next login records it in her store, which decides for her mail: bob's
    EXPUNGE there is refused."""
    sbx = acl_sandbox(sandbox_factory, {"alice": {}, "bob": {}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    grant(sbx, "alice", "bob", "INBOX")
    i = imap(sbx, "bob")
    typ, data = i.select("shared/alice/INBOX")
    assert typ == "OK" and int(data[0]) == 3, data
    sbx.set_user_fields("alice", mailward_hold="yes")
    _mark_hold(sbx, "pop3")
    _expunge_refused(i, "1")
    assert len(sbx.wait_log(APPLIED)) == 1
    i.logout()
    assert sbx.maildir_count("alice") == 3
    sup = recs(sbx, event="expunge_suppressed", user="alice", actor="bob")
    assert len(sup) == 1 and sup[0]["cause"] == "hold", sup

