"""Each audit record answers on its own: who, which device, which message,
under which policy and why (issue 17 item 2). Real POP3, IMAP and doveadm
runs through the writer service; every record type they produce is
checked field by field."""
import re
import time

from mwharness import make_message, pop3, imap, imap_id, wait_session_end

MSG_FIELDS = ("mailbox", "mailbox_guid", "uidvalidity", "uid", "msg_guid",
              "message_id", "size")


def recs_of(sbx, user, service):
    return [r for r in sbx.audit_records()
            if r.get("user") == user and r.get("service") == service]


def wait_records(sbx, pred, count, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [r for r in sbx.audit_records() if pred(r)]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    return [r for r in sbx.audit_records() if pred(r)]


def check_message(r, user, msgid):
    for f in MSG_FIELDS:
        assert f in r, (f, r)
    assert r["mailbox"] == "INBOX"
    assert re.fullmatch(r"[0-9a-f]{32}", r["mailbox_guid"]), r
    assert r["message_id"] == msgid, r
    assert r["size"] > 0 and r["uidvalidity"] > 0 and r["uid"] > 0


def check_device(r, label_prefix):
    assert re.fullmatch(r"[0-9a-f]{32}", r.get("device", "")), r
    assert r["device_label"].startswith(label_prefix), r


def test_record_fields_pop3_imap_doveadm(sandbox_factory):
    users = {
        "pc": {"mailward_pop3_policy": "client"},
        "pr": {"mailward_pop3_policy": "expunge-after-retrieval"},
        "ic": {},
        "ih": {"mailward_hold": "yes"},
        "pd": {"mailward_pop3_policy": "expunge-after-retrieval",
               "mailward_pop3_disposition": "seen"},
    }
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [make_message(i, msgid="<%s-%d@t.invalid>" % (u, i))
                        for i in (1, 2, 3)])

    # POP3, client policy: retr, top, DELE expunged at QUIT
    p = pop3(sbx, "pc")
    p.retr(1)
    p.top(2, 0)
    p.dele(1)
    p.quit()
    # POP3, expunge-after-retrieval: retr, policy expunge at QUIT
    p = pop3(sbx, "pr")
    p.retr(1)
    p.quit()
    # POP3 with a disposition: the disposed record
    p = pop3(sbx, "pd")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "pc")
    wait_session_end(sbx, "pr")
    wait_session_end(sbx, "pd")
    # IMAP: a command before the client's ID, then ID, fetch, expunge
    for u in ("ic", "ih"):
        i = imap(sbx, u)
        i.select("INBOX")
        imap_id(i, ["name", "FieldClient", "version", "1"])
        i.fetch("1", "(BODY[])")
        i.store("2", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
    # doveadm as administrator
    sbx.doveadm("expunge", "-u", "ic", "mailbox", "INBOX", "uid", "3")

    logouts = wait_records(sbx, lambda r: r["event"] == "logout", 5)
    assert len(logouts) == 5, logouts

    # --- POP3 client policy
    pc = recs_of(sbx, "pc", "pop3")
    ev = {}
    for r in pc:
        ev.setdefault(r["event"], []).append(r)
    for name in ("login", "retr", "top", "expunge_intent", "expunge_done",
                 "logout"):
        assert len(ev.get(name, [])) == 1, (name, pc)
        check_device(ev[name][0], "pop3 from 127.0.0.0/24")
    assert ev["login"][0]["policy"] == "client"
    for name, uid in (("retr", 1), ("top", 2), ("expunge_intent", 1),
                      ("expunge_done", 1)):
        r = ev[name][0]
        check_message(r, "pc", "<pc-%d@t.invalid>" % uid)
        assert r["uid"] == uid
        assert r["policy"] == "client" and r["policy_source"] == "userdb", r
    for name in ("expunge_intent", "expunge_done"):
        assert ev[name][0]["cause"] == "client"
    assert ev["expunge_done"][0]["msg_guid"] == ev["retr"][0]["msg_guid"]

    # --- POP3 expunge-after-retrieval
    pr = recs_of(sbx, "pr", "pop3")
    done = [r for r in pr if r["event"] == "expunge_done"]
    retr = [r for r in pr if r["event"] == "retr"]
    assert len(done) == 1 and len(retr) == 1, pr
    for r in done + retr:
        check_message(r, "pr", "<pr-1@t.invalid>")
        check_device(r, "pop3 from 127.0.0.0/24")
        assert r["policy"] == "expunge-after-retrieval"
        assert r["policy_source"] == "userdb"
    assert done[0]["cause"] == "policy"

    # --- the disposition's record
    disp = [r for r in recs_of(sbx, "pd", "pop3")
            if r["event"] == "disposed"]
    assert len(disp) == 1, recs_of(sbx, "pd", "pop3")
    check_message(disp[0], "pd", "<pd-1@t.invalid>")
    check_device(disp[0], "pop3 from 127.0.0.0/24")
    assert disp[0]["uid"] == 1 and disp[0]["action"] == "seen"
    assert disp[0]["policy"] == "expunge-after-retrieval"
    assert disp[0]["cause"] == "policy"

    # --- IMAP: every record of the session names the client's device,
    # login included (it came before the ID)
    ic = recs_of(sbx, "ic", "imap")
    names = [r["event"] for r in ic if not r["event"].startswith("device_")]
    assert names == ["login", "fetch", "expunge_intent", "expunge_done",
                     "logout"], names
    for r in ic:
        check_device(r, 'imap "FieldClient 1"')
    by = {r["event"]: r for r in ic}
    assert by["login"]["policy"] == "client"
    check_message(by["fetch"], "ic", "<ic-1@t.invalid>")
    assert by["fetch"]["policy"] == "client"
    for name in ("expunge_intent", "expunge_done"):
        check_message(by[name], "ic", "<ic-2@t.invalid>")
        assert by[name]["policy"] == "client"
        assert by[name]["policy_source"] == "default"
        assert by[name]["cause"] == "client"

    ih = recs_of(sbx, "ih", "imap")
    names = [r["event"] for r in ih if not r["event"].startswith("device_")]
    assert names == ["login", "fetch", "expunge_suppressed", "logout"], names
    for r in ih:
        check_device(r, 'imap "FieldClient 1"')
    sup = [r for r in ih if r["event"] == "expunge_suppressed"][0]
    check_message(sup, "ih", "<ih-2@t.invalid>")
    assert sup["policy"] == "hold" and sup["cause"] == "hold"
    assert sup["policy_source"] == "userdb"

    # --- doveadm: the administrator by name and uid, no device
    dv = recs_of(sbx, "ic", "doveadm")
    names = [r["event"] for r in dv]
    assert names == ["expunge_intent", "expunge_done"], dv
    for r in dv:
        assert r["actor"] == "doveadm:root(uid=0)", r
        assert "device" not in r
        check_message(r, "ic", "<ic-3@t.invalid>")
        assert r["uid"] == 3 and r["cause"] == "admin"
        assert r["policy"] == "client"

    assert sbx.maildir_count("pc") == 2 and sbx.maildir_count("pr") == 2
    assert sbx.maildir_count("pd") == 3
    assert sbx.maildir_count("ic") == 1 and sbx.maildir_count("ih") == 3
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out
