"""Every client reply and log level mailward causes is true (issue 11
item 9): the POP3 QUIT reply when DELE'd mail is kept, the reply to a read
or expunge refused because the audit writer is away (POP3 [SYS/TEMP], IMAP
[UNAVAILABLE], doveadm tempfail), and Dovecot's autoexpunge under legal
hold (no Error in every session, one info line)."""
import imaplib
import poplib
import re
import time

from mwharness import imap, make_message, pop3, wait_session_end

NO_WRITER = "/nonexistent/mailward-audit"


def pop3_quit_reply(sbx, user, dele=(1,)):
    p = pop3(sbx, user)
    for n in dele:
        p.dele(n)
    reply = p.quit()
    wait_session_end(sbx, user)
    return reply


def test_pop3_quit_reply_says_what_happened(sandbox_factory):
    sbx = sandbox_factory(users={
        "held": {"mailward_hold": "yes"},
        "failsafe": {"mailward_pop3_policy": "delete-all"},
        "plain": {},
        "los": {"mailward_pop3_policy": "leave-on-server"}})
    for u in ("held", "failsafe", "plain", "los"):
        sbx.deliver(u, [make_message(n) for n in range(2)])

    assert pop3_quit_reply(sbx, "held") == \
        b"+OK Logging out, messages kept (legal hold)."
    assert pop3_quit_reply(sbx, "failsafe") == \
        b"+OK Logging out, messages kept (server in fail-safe mode)."
    # Dovecot's reply where it is true: expunged, or (leave-on-server)
    # gone from this device's view
    assert pop3_quit_reply(sbx, "plain") == \
        b"+OK Logging out, messages deleted."
    assert pop3_quit_reply(sbx, "los") == \
        b"+OK Logging out, messages deleted."
    # no DELE: Dovecot's plain reply, also under hold
    p = pop3(sbx, "held")
    assert p.quit() == b"+OK Logging out."

    assert sbx.maildir_count("held") == 2
    assert sbx.maildir_count("failsafe") == 2
    assert sbx.maildir_count("plain") == 1
    assert sbx.maildir_count("los") == 2
    # the held user's DELE'd message comes back: it was not deleted
    p = pop3(sbx, "held")
    assert p.stat()[0] == 2
    p.quit()
    # leave-on-server: it left this device's view
    p = pop3(sbx, "los")
    assert p.stat()[0] == 1
    p.quit()


def test_audit_writer_away_replies(sandbox_factory):
    sbx = sandbox_factory(users={
        # reads need their audit record
        "req": {"mailward_audit_socket": NO_WRITER,
                "mailward_audit_required": "yes"},
        # expunges need their audit intent
        "exp": {"mailward_audit_socket": NO_WRITER}})
    for u in ("req", "exp"):
        sbx.deliver(u, [make_message(n) for n in range(2)])

    # POP3: the message exists; the read is refused for now
    p = pop3(sbx, "req")
    for _ in range(2):
        try:
            p.retr(1)
            raise AssertionError("RETR worked without the audit writer")
        except poplib.error_proto as e:
            assert e.args[0] == b"-ERR [SYS/TEMP] Audit log unavailable, " \
                b"try again later", e
    try:
        p.top(2, 0)
        raise AssertionError("TOP worked without the audit writer")
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [SYS/TEMP] Audit log "
                                    b"unavailable"), e
    assert p.stat()[0] == 2
    p.quit()

    # IMAP EXPUNGE: not expunged, [UNAVAILABLE] (not [SERVERBUG])
    i = imap(sbx, "exp")
    i.select("INBOX")
    i.store("1", "+FLAGS", "\\Deleted")
    tag = i._command("EXPUNGE")
    typ, data = i._command_complete("EXPUNGE", tag)
    text = b" ".join(d for d in data if d)
    assert typ == "NO", (typ, text)
    assert text.startswith(b"[UNAVAILABLE] Audit log unavailable: "
                           b"message(s) not expunged"), text
    i.logout()

    # IMAP body FETCH under audit_required: Dovecot disconnects after a
    # failed FETCH (imap_fetch_failure default), with mailward's reason
    i = imap(sbx, "req")
    i.select("INBOX")
    try:
        i.fetch("1", "(BODY[])")
        raise AssertionError("FETCH worked without the audit writer")
    except imaplib.IMAP4.abort as e:
        assert "FETCH failed: Audit log unavailable, try again later" \
            in str(e), e

    # doveadm: a temporary failure (EX_TEMPFAIL)
    r = sbx.doveadm("expunge", "-u", "exp", "mailbox", "INBOX", "all",
                    check=False)
    assert r.returncode == 75, (r.returncode, r.stderr)
    assert sbx.maildir_count("req") == 2
    assert sbx.maildir_count("exp") == 2


def test_imap_fetch_refused_is_unavailable(sandbox_factory):
    # with imap_fetch_failure = no-after Dovecot answers a failed FETCH
    # with a tagged NO [SERVERBUG] whatever the cause
    sbx = sandbox_factory(users={
        "req": {"mailward_audit_socket": NO_WRITER,
                "mailward_audit_required": "yes"}},
        extra_conf="protocol imap {\n  imap_fetch_failure = no-after\n}\n")
    sbx.deliver("req", [make_message(n) for n in range(2)])
    i = imap(sbx, "req")
    i.select("INBOX")
    tag = i._command("FETCH", "1", "(BODY[])")
    typ, data = i._command_complete("FETCH", tag)
    assert typ == "NO", (typ, data)
    text = b" ".join(d for d in data if isinstance(d, bytes))
    assert text.startswith(b"[UNAVAILABLE] Audit log unavailable, try "
                           b"again later"), text
    # headers are not a retrieval: still served
    typ, data = i.fetch("1", "(BODY.PEEK[HEADER])")
    assert typ == "OK", (typ, data)
    i.logout()


def test_autoexpunge_under_hold_is_info_once_per_session(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_hold": "yes"}, "bob": {}},
        extra_conf="""
namespace inbox {
  inbox = yes
  mailbox Trash {
    special_use = \\Trash
    auto = create
    autoexpunge = 1s
  }
  mailbox Junk {
    auto = create
    autoexpunge = 1s
  }
}
""")
    for u in ("alice", "bob"):
        sbx.deliver(u, [make_message(1)], folder="Trash")
        sbx.deliver(u, [make_message(2)], folder="Junk")
    time.sleep(1.5)
    imap(sbx, "alice").logout()
    imap(sbx, "alice").logout()
    pop3(sbx, "alice").quit()
    imap(sbx, "bob").logout()
    rx = re.compile(r"\((alice)\)<.*mailward: Legal hold \(mailward_hold\): "
                    r"Dovecot's autoexpunge is not run for this user")
    sbx.wait_log(rx.pattern, count=3)
    time.sleep(0.3)
    log = sbx.read_log().splitlines()
    # once per session (two mailboxes with autoexpunge), at info level
    held = [l for l in log if rx.search(l)]
    assert len(held) == 3 and all(": Info: " in l for l in held), held
    # no error in the held user's sessions
    assert [l for l in log if "(alice)" in l and
            (": Error: " in l or "Failed to autoexpunge" in l)] == []
    assert sbx.maildir_count("alice", "Trash") == 1
    assert sbx.maildir_count("alice", "Junk") == 1
    # not held: Dovecot's autoexpunge works as configured
    assert sbx.maildir_count("bob", "Trash") == 0
    assert sbx.maildir_count("bob", "Junk") == 0


def test_imap_delete_under_hold_says_why(sandbox_factory):
    """DELETE of a mailbox with mail under legal hold: the mail stays and
    the tagged NO names the hold (Dovecot 2.4 goes on after the refused
    expunge and lost the reason: "[SERVERBUG] Unknown internal error")."""
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}})
    sbx.deliver("alice", [make_message(n) for n in range(2)],
                folder="Archive")
    i = imap(sbx, "alice")
    typ, data = i.delete("Archive")
    assert typ == "NO", data
    assert data[0].startswith(b"[NOPERM] Mailbox is under legal hold"), data
    i.logout()
    assert sbx.maildir_count("alice", "Archive") == 2
