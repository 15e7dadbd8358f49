"""A refused or suppressed expunge changes nothing in any mailbox, with
Dovecot's lazy_expunge plugin really loaded, and for MOVE, whose expunge
half mailward refuses (issue 11 item 8): clients that retry do not pile up
copies. RFC 3501: a failed COPY leaves the destination unchanged."""
import imaplib
import os
import re

from mwharness import imap, make_message, pop3, wait_session_end

imaplib.Commands.setdefault("MOVE", ("SELECTED",))

# lazy_expunge copies an expunged message to EXPUNGED (its setting is
# "lazy_expunge" in 2.3, "lazy_expunge_mailbox" in 2.4); mail_log (on
# notify) logs what the storage reports as done: neither may see a kept
# expunge
LAZY = dict(plugins=["lazy_expunge", "notify", "mail_log"],
            plugin={"lazy_expunge": {"2.3": "EXPUNGED"},
                    "lazy_expunge_mailbox": {"2.4": "EXPUNGED"},
                    "mail_log_events": "expunge copy save"})
FOLDERS = """
namespace inbox {
  inbox = yes
  mailbox Trash {
    special_use = \\Trash
    auto = create
  }
}
"""


def count(sbx, user, folder=None):
    if folder is not None and not os.path.isdir(sbx.maildir(user, folder)):
        return 0
    return sbx.maildir_count(user, folder)


def mail_log(sbx, user, event, wait=0):
    """mail_log's lines of one event ("expunge", "copy") for user; waits
    for `wait` of them (the log process writes asynchronously). Dovecot
    2.4 puts "Mailbox NAME: " before the event."""
    pattern = r"\((%s)\)<.*: Info: (Mailbox [^:]*: )?%s" % (
        re.escape(user), event)
    if wait:
        sbx.wait_log(pattern, count=wait)
    rx = re.compile(pattern)
    return [l for l in sbx.read_log().splitlines() if rx.search(l)]


def wait_logouts(sbx, user, proto, count):
    """Waits until `count` sessions of user have logged out: every line of
    those processes is in the log then."""
    sbx.wait_log(r"%s\(%s\)<.*Disconnected: Logged out" %
                 (proto, re.escape(user)), count=count)


def tagged(i, name, *args):
    """Sends a command; returns the tagged reply's status and text."""
    tag = i._command(name, *args)
    typ, data = i._command_complete(name, tag)
    return typ, b" ".join(d for d in data if d)


def test_lazy_expunge_copies_only_real_expunges(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"},
                                 "bob": {}}, audit=True, **LAZY)
    for u in ("alice", "bob"):
        sbx.deliver(u, [make_message(n) for n in range(3)])

    # bob is not held: lazy_expunge keeps its copy, as configured
    i = imap(sbx, "bob")
    i.select("INBOX")
    i.store("1:2", "+FLAGS", "\\Deleted")
    assert i.expunge()[0] == "OK"
    i.logout()
    assert count(sbx, "bob") == 1
    assert count(sbx, "bob", "EXPUNGED") == 2
    assert len(mail_log(sbx, "bob", "expunge", wait=2)) == 2

    # alice is held: the refused EXPUNGE of 2 messages, sent 3 times,
    # leaves no copy anywhere
    i = imap(sbx, "alice")
    i.select("INBOX")
    i.store("1:2", "+FLAGS", "\\Deleted")
    for _ in range(3):
        typ, text = tagged(i, "EXPUNGE")
        assert typ == "OK" and b"Expunge ignored" in text, (typ, text)
        assert b"legal hold" in text, text
        assert "EXPUNGE" not in i.untagged_responses
    # UID EXPUNGE and CLOSE are the same refusal
    typ, text = tagged(i, "UID", "EXPUNGE", "1:2")
    assert typ == "OK" and b"legal hold" in text, (typ, text)
    i.close()
    i.logout()
    assert count(sbx, "alice") == 3
    assert count(sbx, "alice", "EXPUNGED") == 0

    # doveadm expunge of a held user: refused, no copy
    r = sbx.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "all",
                    check=False)
    assert r.returncode == 77, r.stderr
    assert "legal hold" in r.stderr, r.stderr
    assert count(sbx, "alice") == 3
    assert count(sbx, "alice", "EXPUNGED") == 0
    sbx.wait_log(r"imap\(alice\).*mailward: Refused to expunge 2 message")
    wait_logouts(sbx, "alice", "imap", 1)
    assert mail_log(sbx, "alice", "expunge") == []
    assert mail_log(sbx, "alice", "copy") == []

    # every refused expunge is audited as suppressed, none as done
    sbx.stop(check=True)
    recs = [r for r in sbx.audit_records() if r.get("user") == "alice"]
    suppressed = [r for r in recs if r["event"] == "expunge_suppressed"]
    # 3 x EXPUNGE of 2, UID EXPUNGE of 2, CLOSE of 2, doveadm of all 3
    assert len(suppressed) == 13, [r["event"] for r in recs]
    assert all(r["outcome"] == "suppressed" and r["cause"] == "hold"
               for r in suppressed)
    assert not [r for r in recs if r["event"].startswith("expunge_")
                and r["event"] != "expunge_suppressed"]
    bob = [r for r in sbx.audit_records() if r.get("user") == "bob"]
    assert len([r for r in bob if r["event"] == "expunge_done"]) == 2


def test_lazy_expunge_pop3_dele_kept_leaves_no_copy(sandbox_factory):
    sbx = sandbox_factory(users={
        "los": {"mailward_pop3_policy": "leave-on-server"},
        "held": {"mailward_hold": "yes"},
        "plain": {}}, **LAZY)
    for u in ("los", "held", "plain"):
        sbx.deliver(u, [make_message(n) for n in range(3)])
        p = pop3(sbx, u)
        p.retr(1)
        p.dele(1)
        p.dele(2)
        assert p.quit().startswith(b"+OK")
        wait_session_end(sbx, u)
    # DELE kept on the server: nothing copied anywhere
    for u in ("los", "held"):
        assert count(sbx, u) == 3, u
        assert count(sbx, u, "EXPUNGED") == 0, u
    # leave-on-server: gone from this device's view, still on the server
    p = pop3(sbx, "los")
    assert p.stat()[0] == 1
    p.quit()
    # nothing reported as expunged or copied for messages kept
    for u in ("los", "held"):
        assert mail_log(sbx, u, "expunge") == [], u
        assert mail_log(sbx, u, "copy") == [], u
    # client policy: Dovecot expunges, lazy_expunge keeps its copies
    assert count(sbx, "plain") == 1
    assert count(sbx, "plain", "EXPUNGED") == 2
    assert len(mail_log(sbx, "plain", "expunge", wait=2)) == 2
    # the device's DELEs are recorded and audited though kept
    sbx.wait_log(r"pop3\(los\).*mailward: pop3 session ended with QUIT: "
                 r"policy=leave-on-server .*dele=2 expunged=0 kept=2")
    sbx.wait_log(r"pop3\(held\).*mailward: pop3 session ended with QUIT: "
                 r"policy=client \(hold\) .*dele=2 expunged=0")


def test_move_refused_leaves_destination_unchanged(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"},
                                 "deny": {"mailward_imap_expunge": "deny"},
                                 "bob": {}},
                          extra_conf=FOLDERS, audit=True, **LAZY)
    for u in ("alice", "deny", "bob"):
        sbx.deliver(u, [make_message(n) for n in range(3)])
    for u in ("alice", "deny"):
        i = imap(sbx, u)
        i.select("INBOX")
        # a client that retries: NO each time, nothing piles up
        for _ in range(3):
            typ, text = tagged(i, "UID", "MOVE", "1", "Trash")
            assert typ == "NO", (u, typ, text)
            assert b"NOPERM" in text, text
            assert (b"legal hold" if u == "alice" else
                    b"mailward_imap_expunge=deny") in text, text
        typ, text = tagged(i, "MOVE", "1:3", "Trash")
        assert typ == "NO", (typ, text)
        # COPY is not an expunge: allowed under hold and deny
        typ, data = i.copy("1", "Trash")
        assert typ == "OK", (typ, data)
        i.logout()
        assert count(sbx, u) == 3, u
        assert count(sbx, u, "Trash") == 1, u
        assert count(sbx, u, "EXPUNGED") == 0, u
        # only the COPY is reported as a copy; nothing as expunged
        wait_logouts(sbx, u, "imap", 1)
        assert len(mail_log(sbx, u, "copy", wait=1)) == 1, \
            mail_log(sbx, u, "copy")
        assert mail_log(sbx, u, "expunge") == [], u

    # doveadm move of a held user: refused, nothing copied
    r = sbx.doveadm("move", "-u", "alice", "Trash", "mailbox", "INBOX",
                    "all", check=False)
    assert r.returncode == 77, r.stderr
    assert count(sbx, "alice") == 3
    assert count(sbx, "alice", "Trash") == 1

    # not held: MOVE moves
    i = imap(sbx, "bob")
    i.select("INBOX")
    typ, text = tagged(i, "UID", "MOVE", "1", "Trash")
    assert typ == "OK", (typ, text)
    i.logout()
    assert count(sbx, "bob") == 2
    assert count(sbx, "bob", "Trash") == 1

    # each refused move is logged and audited as a suppressed expunge
    sbx.wait_log(r"imap\(alice\).*mailward: Refused to expunge 3 "
                 r"message\(s\) in INBOX: Mailbox is under legal hold")
    sbx.stop(check=True)
    for u, cause, n in (("alice", "hold", 3 + 3 + 3), ("deny", "policy", 6)):
        recs = [r for r in sbx.audit_records() if r.get("user") == u and
                r["event"].startswith("expunge_")]
        assert len(recs) == n, (u, recs)
        assert all(r["event"] == "expunge_suppressed" and
                   r["cause"] == cause for r in recs), (u, recs)
