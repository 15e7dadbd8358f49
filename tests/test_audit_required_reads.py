"""mailward_audit_required = yes: a read's record is durable before the
read, and a read is refused while the writer does not answer (attack
review 5, findings 1 and 2). POP3 RETR/TOP: the retr/top record is made
durable (a writer round trip) before the body is sent, or the read is
refused with -ERR [SYS/TEMP] and nothing of the body goes out. IMAP: the
first body read of every FETCH command asks the writer first (the records
queued so far made durable), or the FETCH is refused."""
import imaplib
import os
import poplib
import re
import signal
import time

from mwharness import make_message, pop3, imap, wait_session_end
from test_audit_writer import wait_records
from test_audit_outage import stop_writers, spool_files, wait_for

REQUIRED = {"mailward_audit_required": "yes"}
REFUSED = b"-ERR [SYS/TEMP] Audit log unavailable, try again later"


def mail_pid(sbx, user):
    # Dovecot 2.3 logs "Login: user=<...>", 2.4 "Logged in: user=<...>"
    lines = sbx.wait_log(r"(Login|Logged in): user=<%s>.*mpid=\d+"
                         % re.escape(user))
    return int(re.search(r"mpid=(\d+)", lines[-1]).group(1))


def user_records(sbx, user):
    return [r for r in sbx.audit_records() if r.get("user") == user]


def deliver_all(sbx, users, count=2):
    for u in users:
        sbx.deliver(u, [make_message(n) for n in range(count)])
    # the writer is up (its first records)
    wait_records(sbx, lambda r: any(x["event"] == "writer_start"
                                    for x in r))


def test_pop3_retr_record_durable_before_body(sandbox_factory):
    """A pop3 process killed right after RETR/TOP answered: their records
    are in the log (before: sent only at QUIT, lost)."""
    sbx = sandbox_factory(users={"req": REQUIRED}, audit=True)
    sbx.log_allow.append(r"killed with signal 9")
    deliver_all(sbx, ["req"])
    p = pop3(sbx, "req")
    resp, lines, _ = p.retr(1)
    assert resp.startswith(b"+OK") and lines, resp
    resp, _, _ = p.top(2, 0)
    assert resp.startswith(b"+OK"), resp
    os.kill(mail_pid(sbx, "req"), signal.SIGKILL)
    # nothing is waited for: they were durable before the bodies went out
    got = [(r["event"], r.get("uid"), r["outcome"])
           for r in user_records(sbx, "req")]
    assert ("retr", 1, "ok") in got, got
    assert ("top", 2, "ok") in got, got
    assert spool_files(sbx) == []


def test_pop3_retr_refused_writer_stopped(sandbox_factory):
    """The writer stops answering after the login: RETR and TOP are
    refused and send nothing of the message (before: bodies sent, records
    only at QUIT). The refused reads are recorded as refused."""
    sbx = sandbox_factory(users={"req": REQUIRED}, audit=True)
    sbx.log_allow.append(r"Audit log unavailable")
    deliver_all(sbx, ["req"])
    p = pop3(sbx, "req")
    stopped = stop_writers(sbx)
    assert stopped
    try:
        for cmd in (lambda: p.retr(1), lambda: p.retr(2),
                    lambda: p.top(1, 0)):
            try:
                resp = cmd()
                raise AssertionError("read served with the writer "
                                     "stopped: %r" % (resp[0],))
            except poplib.error_proto as e:
                # the reply line is the whole answer: no body follows
                # (poplib would have read it as the next reply)
                assert e.args[0] == REFUSED, e
        assert p.stat()[0] == 2
        assert p.noop().startswith(b"+OK")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    p.quit()
    wait_session_end(sbx, "req")
    assert wait_for(lambda: spool_files(sbx) == [])
    recs = wait_records(sbx, lambda r: any(
        x.get("user") == "req" and x["event"] == "logout" for x in r))
    mine = [r for r in recs if r.get("user") == "req"]
    refused = sorted((r["event"], r["uid"]) for r in mine
                     if r["outcome"] == "refused")
    assert refused == [("retr", 1), ("retr", 2), ("top", 1)], refused
    for r in mine:
        if r["outcome"] == "refused":
            assert r["cause"] == "audit_unavailable", r
    logout = [r for r in mine if r["event"] == "logout"]
    assert logout[-1]["retrieved"] == 0, logout
    assert sbx.maildir_count("req") == 2


def test_pop3_retr_after_writer_back(sandbox_factory):
    """Once the writer answers again, RETR is served with its record."""
    sbx = sandbox_factory(users={"req": REQUIRED}, audit=True)
    sbx.log_allow.append(r"Audit log unavailable")
    deliver_all(sbx, ["req"], count=1)
    p = pop3(sbx, "req")
    stopped = stop_writers(sbx)
    try:
        try:
            p.retr(1)
            raise AssertionError("RETR served with the writer stopped")
        except poplib.error_proto as e:
            assert e.args[0] == REFUSED, e
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    # the audit client does not ask the writer again for 5 s after a
    # timeout (reads refused at once meanwhile); then the read is served.
    # Few attempts: Dovecot ends a session after 20 failed commands
    resp = None
    time.sleep(5)
    for _ in range(15):
        try:
            resp = p.retr(1)
            break
        except poplib.error_proto as e:
            assert e.args[0] == REFUSED, e
            time.sleep(1)
    assert resp is not None and resp[0].startswith(b"+OK"), resp
    got = [(r["event"], r.get("uid"), r["outcome"])
           for r in user_records(sbx, "req")]
    assert ("retr", 1, "ok") in got, got
    p.quit()


def test_imap_first_fetch_after_writer_stopped_refused(sandbox_factory):
    """The writer stops answering during an IMAP session: the very first
    body FETCH is refused (before: it was served, only the next one was
    refused)."""
    sbx = sandbox_factory(users={"req": REQUIRED}, audit=True)
    sbx.log_allow.append(r"Audit log unavailable")
    deliver_all(sbx, ["req"])
    i = imap(sbx, "req")
    i.select("INBOX")
    typ, _ = i.fetch("1", "(BODY.PEEK[HEADER])")
    assert typ == "OK"
    stopped = stop_writers(sbx)
    assert stopped
    try:
        try:
            r = i.fetch("1", "(BODY.PEEK[])")
            raise AssertionError("FETCH served with the writer stopped: "
                                 "%r" % (r,))
        except imaplib.IMAP4.abort as e:
            assert "FETCH failed: Audit log unavailable, try again later" \
                in str(e), e
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    mine = user_records(sbx, "req")
    assert not [r for r in mine if r["event"] == "fetch"], mine

