"""POP3 DELE carried out by Dovecot's pop3_deleted_flag (a keyword instead
of an expunge): mailward sees it, audits it and keeps the view per device.
Under the client policy Dovecot's own behaviour (the keyword hides the
message from every POP3 listing, IMAP still has it) is kept."""
import imaplib
import re
import time

from mwharness import imap, make_message, pop3, wait_session_end

FLAG = "$POP3Deleted"


def _records(sbx, user, event, count, timeout=10):
    deadline = time.time() + timeout
    while True:
        recs = [r for r in sbx.audit_records()
                if r.get("user") == user and r.get("event") == event]
        if len(recs) >= count or time.time() > deadline:
            return recs
        time.sleep(0.1)


def _flagged(sbx, user="alice"):
    i = imap(sbx, user)
    i.select("INBOX", readonly=True)
    typ, data = i.search(None, "KEYWORD", FLAG)
    i.logout()
    assert typ == "OK", data
    return len(data[0].split())


def _sandbox(sandbox_factory, policy, delete_type):
    return sandbox_factory(
        users={"alice": {"mailward_pop3_policy": policy}},
        app_passwords={"alice": {"phonepw": "phone", "laptoppw": "laptop"}},
        audit=True,
        # in protocol pop3: Dovecot 2.4 checks the two together there
        protocol_settings={"pop3": {"pop3_deleted_flag": '"%s"' % FLAG,
                                    "pop3_delete_type": delete_type}})


def test_deleted_flag_keeps_view_per_device(sandbox_factory):
    for delete_type in ("flag", "expunge"):
        sbx = _sandbox(sandbox_factory, "leave-on-server", delete_type)
        sbx.deliver("alice", [make_message(i) for i in range(4)])
        p = pop3(sbx, password="phonepw")
        assert p.stat()[0] == 4
        p.dele(1)
        p.dele(2)
        p.quit()
        lines = wait_session_end(sbx, "alice")
        assert re.search(r" dele=2 ", lines[-1]), lines[-1]

        # the laptop still has all four, the phone two
        p = pop3(sbx, password="laptoppw")
        assert p.stat()[0] == 4, delete_type
        assert len(p.uidl()[1]) == 4
        p.quit()
        p = pop3(sbx, password="phonepw")
        assert p.stat()[0] == 2, delete_type
        p.quit()
        wait_session_end(sbx, "alice", count=3)
        assert sbx.maildir_count("alice") == 4
        # no keyword was set: every other client still sees them
        assert _flagged(sbx) == 0

        recs = _records(sbx, "alice", "dele", 2)
        assert [(r["outcome"], r["cause"], r["device_label"])
                for r in recs] == [("suppressed", "policy", "phone")] * 2
        assert sorted(r["uid"] for r in recs) == [1, 2]
        sbx.stop()
        rc, out = sbx.audit_verify()
        assert rc == 0, out


def test_deleted_flag_under_hold_sets_no_keyword(sandbox_factory):
    sbx = _sandbox(sandbox_factory, "client", "flag")
    sbx.set_user_fields("alice", mailward_hold="yes")
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3(sbx, password="phonepw")
    p.dele(1)
    p.quit()
    lines = wait_session_end(sbx, "alice")
    assert re.search(r" dele=1 ", lines[-1]), lines[-1]
    p = pop3(sbx, password="laptoppw")
    assert p.stat()[0] == 3
    p.quit()
    assert _flagged(sbx) == 0
    recs = _records(sbx, "alice", "dele", 1)
    assert [(r["outcome"], r["cause"]) for r in recs] == \
        [("suppressed", "hold")]


def test_deleted_flag_client_policy_is_dovecots(sandbox_factory):
    sbx = _sandbox(sandbox_factory, "client", "flag")
    sbx.deliver("alice", [make_message(i) for i in range(4)])
    p = pop3(sbx, password="phonepw")
    p.dele(1)
    p.dele(2)
    p.quit()
    lines = wait_session_end(sbx, "alice")
    assert re.search(r" dele=2 ", lines[-1]), lines[-1]
    # Dovecot's pop3_deleted_flag: hidden from every POP3 device, kept
    # for IMAP with the keyword
    p = pop3(sbx, password="laptoppw")
    assert p.stat()[0] == 2
    p.quit()
    assert sbx.maildir_count("alice") == 4
    assert _flagged(sbx) == 2
    recs = _records(sbx, "alice", "dele", 2)
    assert [(r["outcome"], r["cause"]) for r in recs] == \
        [("flagged", "client")] * 2
    assert not [r for r in sbx.audit_records()
                if r.get("event", "").startswith("expunge")]
    # the phone's records: two deleted
    devs = {d["label"]: d for d in
            sbx.doveadm_json("mailward", "devices", "-u", "alice")}
    assert devs["phone"]["deleted"] == "2"
