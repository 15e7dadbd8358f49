"""Configuration and storage errors never crash a mail process (issue 11
item 3): a namespace configuration without an inbox=yes namespace, and a
mailbox that can't be opened, over IMAP, POP3 and doveadm. The sandbox
fixture fails the test on any Panic/Fatal/killed-with-signal log line."""
import imaplib
import os
import poplib
import time

from mwharness import imap, make_message, pop3


def test_namespace_without_inbox_no_crash(sandbox_factory):
    # a common mistake: a namespace inbox { } block without inbox = yes
    sbx = sandbox_factory(extra_conf="namespace inbox {\n"
                                     "  separator = /\n}\n")
    sbx.deliver("alice", [make_message(i) for i in range(2)])

    # IMAP: Dovecot accepts the login, then fails the session
    i = imap(sbx)
    try:
        typ, data = i.select("INBOX")
        assert typ == "NO", (typ, data)
    except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError):
        pass
    sbx.wait_log(r"imap\(alice\).*Disconnected: namespace configuration "
                 r"error: inbox=yes namespace missing")

    # POP3: the session fails as plain Dovecot's does
    try:
        p = pop3(sbx)
        p.stat()
        raise AssertionError("POP3 session worked without namespaces")
    except (poplib.error_proto, OSError):
        pass
    sbx.wait_log(r"pop3\(alice\).*Disconnected: namespace configuration "
                 r"error")

    # doveadm: the commands fail with the configuration error
    for args in (("mailward", "expunge", "-u", "alice"),
                 ("mailward", "state", "-u", "alice"),
                 ("mailward", "devices", "-u", "alice"),
                 ("expunge", "-u", "alice", "mailbox", "INBOX", "all")):
        r = sbx.doveadm(*args, check=False)
        assert r.returncode == 75, (args, r.stderr)  # EX_TEMPFAIL
        assert "inbox=yes namespace missing" in r.stderr, (args, r.stderr)

    time.sleep(0.3)
    log = sbx.read_log()
    # no device is registered for an IMAP session that never started
    assert "mailward: device" not in "\n".join(
        l for l in log.splitlines() if "imap(alice)" in l), log
    assert sbx.maildir_count("alice") == 2


def test_unopenable_inbox_no_crash(sandbox_factory):
    # a sweep is due at IMAP session end (expunge-after-all-devices), but
    # the INBOX can't be opened any more (a damaged or unreadable store)
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-all-devices"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    i = imap(sbx)
    i.select("INBOX")
    i.logout()
    time.sleep(0.3)
    os.chmod(sbx.maildir("alice"), 0)
    try:
        i = imap(sbx)
        typ, data = i.select("INBOX")
        assert typ == "NO", (typ, data)
        i.logout()
        sbx.wait_log(r"imap\(alice\).*mailward: Due expunges not carried "
                     r"out \(mail kept\): Can't open INBOX")

        try:
            p = pop3(sbx)
            p.stat()
            raise AssertionError("POP3 opened an unreadable INBOX")
        except (poplib.error_proto, OSError):
            pass
        sbx.wait_log(r"pop3\(alice\).*Couldn't open INBOX")

        r = sbx.doveadm("mailward", "expunge", "-u", "alice", check=False)
        assert r.returncode == 75, r.stderr  # EX_TEMPFAIL
        assert "mailward: Can't open INBOX of alice" in r.stderr, r.stderr
        r = sbx.doveadm("mailward", "state", "-u", "alice", "INBOX",
                        check=False)
        assert r.returncode == 68, r.stderr  # not found
    finally:
        os.chmod(sbx.maildir("alice"), 0o700)
    time.sleep(0.3)
    # a session that could not open its INBOX is not a POP3 session end
    assert "pop3 session ended" not in "\n".join(
        l for l in sbx.read_log().splitlines() if "pop3(alice)" in l) and \
        "pop3 session dropped" not in sbx.read_log()
    assert sbx.maildir_count("alice") == 2
