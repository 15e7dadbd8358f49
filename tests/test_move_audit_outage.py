"""A move whose expunge is refused because its audit intent cannot be made
durable (the audit writer away) leaves no copy in the destination: the
destination commits only after the source's expunge intents are durable
(audit before act). Paths: IMAP MOVE, doveadm move, lazy_expunge's copy
on an IMAP EXPUNGE and on mailward's policy expunges (POP3 QUIT, doveadm
mailward expunge), Dovecot 2.4's REPLACE. Clients that retry do not pile
up copies; a MOVE that happened says OK (found by the attack review: each
refused attempt left a copy)."""
import contextlib
import imaplib
import os
import poplib
import signal

import pytest

import mwharness
from mwharness import imap, make_message, pop3, wait_session_end
from test_audit_outage import stop_writers
from test_imap import _replace
from test_refusals import LAZY, count, tagged

imaplib.Commands.setdefault("MOVE", ("SELECTED",))

UNAVAILABLE = b"[UNAVAILABLE] Audit log unavailable: message(s) not "


@contextlib.contextmanager
def writer_away(sbx):
    """The audit writer unreachable: its socket closed to mail processes,
    the writers running stopped (as in test_audit_outage)."""
    os.chmod(sbx.audit_socket_path, 0)
    stopped = stop_writers(sbx)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        os.chmod(sbx.audit_socket_path, 0o666)


def test_imap_move_writer_away_leaves_no_copy(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.doveadm("mailbox", "create", "-u", "alice", "Other")
    i = imap(sbx, "alice")
    i.select("INBOX")
    with writer_away(sbx):
        for _ in range(3):
            typ, text = tagged(i, "UID", "MOVE", "1", "Other")
            assert typ == "NO", text
            assert text.startswith(UNAVAILABLE + b"expunged"), text
    assert sbx.maildir_count("alice") == 2
    assert count(sbx, "alice", "Other") == 0
    # the writer back: the same MOVE happens and says so
    typ, text = tagged(i, "UID", "MOVE", "1", "Other")
    assert typ == "OK", text
    i.logout()
    assert sbx.maildir_count("alice") == 1
    assert count(sbx, "alice", "Other") == 1


def test_imap_move_writer_stopped_leaves_no_copy(sandbox_factory):
    """The writer stopped (SIGSTOP) with its socket open: the MOVE waits
    for the audit client's timeout, then is refused as above (the client
    then waits a few seconds before it tries the writer again: the MOVE
    that works is in the test above)."""
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.doveadm("mailbox", "create", "-u", "alice", "Other")
    i = imap(sbx, "alice")
    i.select("INBOX")
    stopped = stop_writers(sbx)
    assert stopped
    try:
        typ, text = tagged(i, "UID", "MOVE", "1", "Other")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    assert typ == "NO", text
    assert text.startswith(UNAVAILABLE + b"expunged"), text
    assert sbx.maildir_count("alice") == 2
    assert count(sbx, "alice", "Other") == 0
    i.logout()


def test_doveadm_move_writer_away_leaves_no_copy(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.doveadm("mailbox", "create", "-u", "alice", "Other")
    with writer_away(sbx):
        for _ in range(2):
            r = sbx.doveadm("move", "-u", "alice", "Other", "mailbox",
                            "INBOX", "uid", "1", check=False)
            assert r.returncode != 0, r
            assert "Audit log unavailable" in r.stderr, r.stderr
    assert sbx.maildir_count("alice") == 2
    assert count(sbx, "alice", "Other") == 0
    sbx.doveadm("move", "-u", "alice", "Other", "mailbox", "INBOX",
                "uid", "1")
    assert sbx.maildir_count("alice") == 1
    assert count(sbx, "alice", "Other") == 1


def test_lazy_expunge_writer_away_leaves_no_copy(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}}, audit=True, **LAZY)
    sbx.deliver("alice", [make_message(n) for n in range(3)])
    i = imap(sbx, "alice")
    i.select("INBOX")
    i.store("1:2", "+FLAGS", "\\Deleted")
    with writer_away(sbx):
        for _ in range(3):
            typ, text = tagged(i, "EXPUNGE")
            assert typ == "NO", text
            assert text.startswith(UNAVAILABLE), text
        assert count(sbx, "alice") == 3
        assert count(sbx, "alice", "EXPUNGED") == 0
        # CLOSE expunges too
        tagged(i, "CLOSE")
    assert count(sbx, "alice") == 3
    assert count(sbx, "alice", "EXPUNGED") == 0
    i.select("INBOX")
    typ, text = tagged(i, "EXPUNGE")
    assert typ == "OK", text
    i.logout()
    assert count(sbx, "alice") == 1
    assert count(sbx, "alice", "EXPUNGED") == 2


def test_lazy_pop3_dele_writer_away_leaves_no_copy(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}}, audit=True, **LAZY)
    sbx.deliver("alice", [make_message(n) for n in range(2)])
    with writer_away(sbx):
        for _ in range(2):
            p = pop3(sbx, "alice")
            p.retr(1)
            p.dele(1)
            with pytest.raises(poplib.error_proto) as e:
                p.quit()
            # the reply of the refused expunge itself, not lazy_expunge's
            # "Internal error"
            assert e.value.args[0] == b"-ERR [SYS/TEMP] " + \
                UNAVAILABLE[len(b"[UNAVAILABLE] "):] + b"expunged"
            wait_session_end(sbx, "alice")
            assert count(sbx, "alice") == 2
            assert count(sbx, "alice", "EXPUNGED") == 0
    assert "Lazy-expunge transaction failed" not in sbx.read_log()
    p = pop3(sbx, "alice")
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")
    assert count(sbx, "alice") == 1
    assert count(sbx, "alice", "EXPUNGED") == 1


def test_lazy_policy_expunge_writer_away_leaves_no_copy(sandbox_factory):
    lazy = dict(LAZY)
    plugin = dict(lazy.pop("plugin"))
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval"}}, audit=True,
        plugin=plugin, **lazy)
    sbx.deliver("alice", [make_message(n) for n in range(2)])
    with writer_away(sbx):
        p = pop3(sbx, "alice")
        p.retr(1)
        p.quit()
        wait_session_end(sbx, "alice")
        assert count(sbx, "alice") == 2
        assert count(sbx, "alice", "EXPUNGED") == 0
        for _ in range(3):
            sbx.doveadm("mailward", "expunge", "-u", "alice", check=False)
            assert count(sbx, "alice") == 2
            assert count(sbx, "alice", "EXPUNGED") == 0
    assert "Lazy-expunge transaction failed" not in sbx.read_log()
    # the writer back: the pending expunge is carried out, one copy kept
    sbx.doveadm("mailward", "expunge", "-u", "alice")
    assert count(sbx, "alice") == 1
    assert count(sbx, "alice", "EXPUNGED") == 1


@pytest.mark.skipif(not mwharness.DOVECOT_24,
                    reason="IMAP REPLACE (RFC 8508) is new in Dovecot 2.4")
@pytest.mark.parametrize("dest", ["INBOX", "Other"])
def test_replace_writer_away_saves_nothing(sandbox_factory, dest):
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.doveadm("mailbox", "create", "-u", "alice", "Other")
    i = imap(sbx, "alice")
    i.select("INBOX")
    with writer_away(sbx):
        for _ in range(2):
            typ, text, untagged_no = _replace(
                i, "1", dest, make_message(9, subject="replacement"))
            assert typ == "NO", text
            assert text.startswith(UNAVAILABLE.decode()), text
            assert untagged_no == [], untagged_no
    i.logout()
    assert sbx.maildir_subjects("alice") == ["message 0", "message 1"]
    assert count(sbx, "alice", "Other") == 0
