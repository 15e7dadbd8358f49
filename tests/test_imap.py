"""IMAP side against a real Dovecot: device identity by pre- and
post-login ID, per-mailbox sync summaries, body vs header fetches, legal
hold across every expunge path (IMAP EXPUNGE, UID EXPUNGE, CLOSE, MOVE,
POP3 DELE, doveadm expunge, autoexpunge, mailward's own policy), the
append-only mailward_imap_expunge=deny, mbsync against a held account, and
a POP3 laptop + IMAP phone under expunge-after-all-devices."""
import imaplib
import time

import pytest

import mwclients
import mwharness
from mwharness import devices, imap, imap_count, imap_id, make_message, \
    pop3, wait_session_end

imaplib.Commands.setdefault("MOVE", ("SELECTED",))
imaplib.Commands.setdefault("UID", ("SELECTED",))

HOLD_TEXT = b"Mailbox is under legal hold (mailward_hold): messages " \
    b"cannot be expunged or moved"


def test_prelogin_and_postlogin_id(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_client_id": "%{client_id}"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])

    # pre-login ID (imap_id_retain = yes)
    i = imaplib.IMAP4("127.0.0.1", sbx.imap_port, timeout=30)
    imap_id(i, ["name", "Thunderbird", "version", "128.3", "os", "linux"])
    i.login("alice", "secret")
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.logout()

    # post-login ID: the whole session is that device, also what it
    # fetched before sending ID (one client, one device)
    i = imap(sbx)
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    imap_id(i, ["name", "Apple Mail", "version", "16.0", "os", "iOS"])
    i.fetch("2", "(BODY[])")
    i.logout()
    time.sleep(0.3)
    devs = devices(sbx)
    tb = [d for l, d in devs.items() if "Thunderbird 128.3" in l]
    apple = [d for l, d in devs.items() if "Apple Mail 16.0" in l]
    net = [d for l, d in devs.items() if l.startswith("imap from ")]
    assert len(tb) == 1 and tb[0]["retrieved"] == "1", devs
    assert len(apple) == 1 and apple[0]["retrieved"] == "2", devs
    assert len(net) == 0, devs


def test_sync_summary_and_body_vs_header(sandbox_factory):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(i) for i in range(5)])
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    typ, data = i.select("INBOX")
    assert data == [b"5"]
    # headers, sizes and parts are not retrieval; the whole message is
    # (test_imap_fetch_retrieval.py: every form)
    i.fetch("1:5", "(RFC822.SIZE FLAGS BODY.PEEK[HEADER] ENVELOPE)")
    i.fetch("1", "(BODY.PEEK[])")
    i.fetch("2", "(RFC822)")
    i.fetch("3", "(BODY[1])")
    i.fetch("4", "(BINARY.PEEK[1])")
    i.logout()
    time.sleep(0.3)
    phone = [d for l, d in devices(sbx).items() if "Phone" in l][0]
    assert phone["retrieved"] == "2"
    rows = [r for r in sbx.doveadm_json("mailward", "state", "-u", "alice")
            if r["device"] == phone["id"]]
    assert len(rows) == 1
    row = rows[0]
    assert row["retrieved"] == "2"
    assert row["highest_uid"] == "5"
    assert int(row["uidvalidity"]) > 0
    assert row["last_sync"] != ""

    # a new message: the summary follows the next SELECT
    sbx.deliver("alice", [make_message(9)])
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    i.select("INBOX")
    i.logout()
    time.sleep(0.3)
    row = [r for r in sbx.doveadm_json("mailward", "state", "-u", "alice")
           if r["device"] == phone["id"]][0]
    assert row["highest_uid"] == "6"


def _held(sbx, user="alice", n=4):
    sbx.deliver(user, [make_message(i) for i in range(n)])
    return n


def test_hold_every_path(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_hold": "yes",
                         "mailward_pop3_policy": "expunge-after-retrieval"}},
        extra_conf="""
namespace inbox {
  inbox = yes
  mailbox Trash {
    special_use = \\Trash
    auto = create
    autoexpunge = 1s
  }
  mailbox Archive {
    auto = create
  }
}
""")
    n = _held(sbx)
    sbx.deliver("alice", [make_message(50)], folder="Trash")
    i = imap(sbx)
    i.select("INBOX")
    # EXPUNGE
    i.store("1", "+FLAGS", "\\Deleted")
    typ, data = i.expunge()
    assert data == [None], data        # no message announced as expunged
    # UID EXPUNGE
    tag = i._command("UID", "EXPUNGE", "1:*")
    typ, data = i._command_complete("UID", tag)
    assert typ == "OK", (typ, data)
    assert data[0].startswith(b"Expunge ignored: %s" % HOLD_TEXT), data
    assert "EXPUNGE" not in i.untagged_responses
    # MOVE: the source copy must stay
    typ, data = i._simple_command("MOVE", "2", "Archive")
    assert typ == "NO", (typ, data)
    assert data[0].startswith(b"[NOPERM] %s" % HOLD_TEXT), data
    # CLOSE
    i.store("1:*", "+FLAGS", "\\Deleted")
    typ, data = i.close()
    assert typ == "OK", (typ, data)
    assert data[0].startswith(b"Closed without expunging: %s" % HOLD_TEXT), \
        data
    i.logout()
    assert sbx.maildir_count("alice") == n
    sbx.wait_log(r"imap\(alice\).*mailward: Refused to expunge .*legal hold")

    # POP3 DELE and mailward's own policy (expunge-after-retrieval)
    p = pop3(sbx)
    p.retr(1)
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == n

    # doveadm expunge
    r = sbx.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "all",
                    check=False)
    assert r.returncode == 77, r.stderr
    assert sbx.maildir_count("alice") == n

    # Dovecot's autoexpunge of Trash
    time.sleep(1.5)
    imap(sbx).logout()
    time.sleep(0.3)
    assert sbx.maildir_count("alice", "Trash") == 1
    assert imap_count(sbx) == n

    # lifting the hold needs no restart
    sbx.set_user_fields("alice", mailward_hold="no")
    i = imap(sbx)
    i.select("INBOX")
    # the refused expunges left \Deleted flags: the client sees the truth
    typ, data = i.search(None, "DELETED")
    assert len(data[0].split()) == n
    i.store("1:*", "-FLAGS", "\\Deleted")
    i.store("1", "+FLAGS", "\\Deleted")
    assert i.expunge()[0] == "OK"
    i.logout()
    assert sbx.maildir_count("alice") == n - 1


def test_hold_imap_reply_is_truthful(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}})
    _held(sbx)
    i = imap(sbx)
    i.select("INBOX")
    i.store("1", "+FLAGS", "\\Deleted")
    tag = i._command("EXPUNGE")
    typ, data = i._command_complete("EXPUNGE", tag)
    # never a silent lie: the tagged reply says the expunge did not happen
    text = b" ".join(d for d in data if d)
    assert b"legal hold" in text, (typ, data)
    assert typ == "OK", (typ, data)
    assert text.startswith(b"Expunge ignored: %s" % HOLD_TEXT), text
    # nothing was announced as expunged
    assert "EXPUNGE" not in i.untagged_responses
    i.logout()


def test_imap_expunge_deny(sandbox_factory):
    sbx = sandbox_factory(users={
        "alice": {"mailward_imap_expunge": "deny"},
        "bob": {"mailward_imap_expunge": "allow"}})
    for u in ("alice", "bob"):
        _held(sbx, u)
        i = imap(sbx, u)
        i.select("INBOX")
        i.store("1", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
    assert sbx.maildir_count("alice") == 4
    assert sbx.maildir_count("bob") == 3
    sbx.wait_log(r"imap\(alice\).*Refused to expunge .*mailward_imap_expunge"
                 r"=deny")
    # POP3 of a deny user is governed by the POP3 policy (client)
    p = pop3(sbx, "alice")
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 3


def test_mbsync_expunge_both_against_hold(sandbox_factory, tmp_path):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}})
    n = _held(sbx)
    work = str(tmp_path / "mbsync")
    rc, out = mwclients.run_mbsync(sbx, "alice", work, expunge="Both")
    assert rc == 0, out
    import mailbox as mb
    local = mb.Maildir(work + "/local/INBOX", create=False)
    assert len(local) == n
    # the user deletes two locally; mbsync propagates and expunges both
    keys = sorted(local.keys())[:2]
    for k in keys:
        msg = local[k]
        msg.add_flag("T")
        local[k] = msg
    rc, out = mwclients.run_mbsync(sbx, "alice", work, expunge="Both")
    # the server refused: mbsync must finish without corrupting its state
    assert rc == 0, out
    assert sbx.maildir_count("alice") == n
    rc2, out2 = mwclients.run_mbsync(sbx, "alice", work, expunge="Both")
    assert rc2 == 0, out2
    assert "error" not in out2.lower(), out2
    assert sbx.maildir_count("alice") == n
    assert imap_count(sbx) == n


def test_pop3_laptop_and_imap_phone_all_devices(sandbox_factory, tmp_path):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy":
                         "expunge-after-all-devices"}},
        app_passwords={"alice": {"laptoppw": "laptop", "phonepw": "phone"}})
    # both devices known
    pop3(sbx, password="laptoppw").quit()
    i = imap(sbx, password="phonepw")
    i.logout()
    sbx.deliver("alice", [make_message(i) for i in range(2)])

    # laptop downloads everything: the phone has not read them yet
    p = pop3(sbx, password="laptoppw")
    p.retr(1)
    p.retr(2)
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    assert sbx.maildir_count("alice") == 2

    # the phone reads message 1 only
    i = imap(sbx, password="phonepw")
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.logout()
    sbx.wait_log(r"imap\(alice\).*mailward: expunged 1 message")
    assert sbx.maildir_count("alice") == 1

    # then message 2
    i = imap(sbx, password="phonepw")
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.logout()
    sbx.wait_log(r"imap\(alice\).*mailward: expunged 1 message", count=2)
    assert sbx.maildir_count("alice") == 0


def test_imap_not_counting_as_retrieval(sandbox_factory):
    # mailward_imap_counts_as_retrieval = no: IMAP devices do not hold
    # back expunge-after-all-devices; POP3 devices alone decide
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "expunge-after-all-devices",
                         "mailward_imap_counts_as_retrieval": "no"}},
        app_passwords={"alice": {"laptoppw": "laptop", "phonepw": "phone"}})
    i = imap(sbx, password="phonepw")
    i.logout()
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    p = pop3(sbx, password="laptoppw")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 1
    # and with the default (yes) the IMAP phone would have held it back:
    # see test_pop3_laptop_and_imap_phone_all_devices


imaplib.Commands.setdefault("REPLACE", ("SELECTED",))


def _replace(i, seq, mailbox, message):
    """RFC 8508 REPLACE of message seq by message (a literal); returns
    (tagged type, tagged text, untagged NO lines)."""
    i.untagged_responses.pop("NO", None)
    i.literal = message
    typ, data = i._simple_command("REPLACE", seq, mailbox)
    untagged_no = i.untagged_responses.pop("NO", [])
    return typ, b" ".join(d for d in data if d).decode(), untagged_no


@pytest.mark.skipif(not mwharness.DOVECOT_24,
                    reason="IMAP REPLACE (RFC 8508) is new in Dovecot 2.4")
@pytest.mark.parametrize("fields,why", [
    ({"mailward_hold": "yes"}, "legal hold (mailward_hold)"),
    ({"mailward_imap_expunge": "deny"}, "mailward_imap_expunge=deny"),
])
def test_replace_refused_keeps_everything(sandbox_factory, fields, why):
    sbx = sandbox_factory(users={"alice": fields})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    i = imap(sbx)
    i.select("INBOX")
    typ, text, untagged_no = _replace(
        i, "1", "INBOX", make_message(9, subject="replacement"))
    # a truthful tagged reply, no "Internal error" on the side
    assert typ == "NO", text
    assert "Replace refused, nothing saved or expunged" in text, text
    assert why in text, text
    assert untagged_no == [], untagged_no
    # the session goes on and still sees both messages
    typ, data = i.noop()
    assert typ == "OK", data
    typ, data = i.search(None, "ALL")
    assert data == [b"1 2"], data
    i.logout()
    assert sbx.maildir_subjects("alice") == ["message 0", "message 1"]
    sbx.wait_log(r"imap\(alice\).*mailward: Refused REPLACE of UID 1 in "
                 r"INBOX")


@pytest.mark.skipif(not mwharness.DOVECOT_24,
                    reason="IMAP REPLACE (RFC 8508) is new in Dovecot 2.4")
def test_replace_allowed_without_hold(sandbox_factory):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    i = imap(sbx)
    i.select("INBOX")
    typ, text, untagged_no = _replace(
        i, "1", "INBOX", make_message(9, subject="replacement"))
    assert typ == "OK", text
    assert untagged_no == [], untagged_no
    i.logout()
    assert sbx.maildir_subjects("alice") == ["message 1", "replacement"]
