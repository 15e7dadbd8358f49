"""The audit log end to end: real POP3 and IMAP sessions under each policy
produce exactly the expected records, field by field, through the writer
service; verify passes; concurrent sessions form one valid chain; and with
the writer unreachable, destructive acts are refused and mail is kept."""
import concurrent.futures
import os
import poplib
import imaplib
import re
import time

import pytest

from mwharness import make_message, pop3, imap, imap_count, \
    wait_session_end

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


def session_records(sbx, user, service):
    """Records of the user's sessions of one service, grouped by session,
    in log order."""
    sessions = {}
    for r in sbx.audit_records():
        if r.get("user") == user and r.get("service") == service:
            sessions.setdefault(r["session"], []).append(r)
    return list(sessions.values())


def events(recs):
    return [(r["event"], r.get("outcome"), r.get("cause")) for r in recs]


def stop_and_verify(sbx):
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out
    return out


def test_pop3_records_per_policy(sandbox_factory):
    users = {
        "u_client": {"mailward_pop3_policy": "client"},
        "u_leave": {"mailward_pop3_policy": "leave-on-server"},
        "u_retr": {"mailward_pop3_policy": "expunge-after-retrieval"},
        "u_hold": {"mailward_pop3_policy": "client", "mailward_hold": "yes"},
    }
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [make_message(i, subject="%s %d" % (u, i),
                                     msgid="<%s-%d@test.invalid>" % (u, i))
                        for i in (1, 2)])
        p = pop3(sbx, u)
        p.retr(1)
        p.top(2, 0)
        p.dele(1)
        p.quit()
        wait_session_end(sbx, u)
    # wait until every session's logout reached the log
    deadline = time.time() + 10
    while time.time() < deadline and \
            sum(1 for r in sbx.audit_records() if r["event"] == "logout") < 4:
        time.sleep(0.1)

    expected = {
        "u_client": [("login", "ok", None), ("retr", "ok", None),
                     ("top", "ok", None), ("expunge_intent", "ok", "client"),
                     ("expunge_done", "ok", "client"),
                     ("logout", "ok", None)],
        "u_leave": [("login", "ok", None), ("retr", "ok", None),
                    ("top", "ok", None), ("dele", "suppressed", "policy"),
                    ("logout", "ok", None)],
        "u_retr": [("login", "ok", None), ("retr", "ok", None),
                   ("top", "ok", None), ("dele", "suppressed", "policy"),
                   ("expunge_intent", "ok", "policy"),
                   ("expunge_done", "ok", "policy"), ("logout", "ok", None)],
        "u_hold": [("login", "ok", None), ("retr", "ok", None),
                   ("top", "ok", None), ("dele", "suppressed", "hold"),
                   ("logout", "ok", None)],
    }
    for u, exp in expected.items():
        sess = session_records(sbx, u, "pop3")
        assert len(sess) == 1, sess
        recs = [r for r in sess[0] if not r["event"].startswith("device_")]
        assert events(recs) == exp, (u, events(recs))
        by_event = {r["event"]: r for r in recs}
        login = by_event["login"]
        assert login["policy"] == ("hold" if u == "u_hold" else
                                   users[u]["mailward_pop3_policy"])
        assert login["policy_source"] == "userdb"
        assert login["remote"] == "127.0.0.1"
        assert re.fullmatch(r"[0-9a-f]{32}", login["device"])
        assert login["device_label"] == "pop3 from 127.0.0.0/24"
        retr = by_event["retr"]
        assert retr["uid"] == 1 and retr["mailbox"] == "INBOX"
        assert retr["message_id"] == "<%s-1@test.invalid>" % u
        assert retr["size"] > 0 and retr["uidvalidity"] > 0
        assert re.fullmatch(r"[0-9a-f]{32}", retr["mailbox_guid"])
        assert retr["msg_guid"]
        assert by_event["top"]["uid"] == 2
        assert all(r["session"] == login["session"] for r in recs)
        logout = by_event["logout"]
        assert logout["retrieved"] == 1 and logout["deleted"] == 1
        if "expunge_done" in by_event:
            intent = by_event["expunge_intent"]
            done = by_event["expunge_done"]
            assert intent["seq"] < done["seq"]
            assert intent["msg_guid"] == retr["msg_guid"] == done["msg_guid"]
            assert intent["message_id"] == "<%s-1@test.invalid>" % u
            assert logout["expunged"] == 1
        else:
            assert logout["expunged"] == 0 and logout["suppressed"] >= 1
    assert sbx.maildir_count("u_client") == 1
    assert sbx.maildir_count("u_leave") == 2
    assert sbx.maildir_count("u_retr") == 1
    assert sbx.maildir_count("u_hold") == 2
    stop_and_verify(sbx)


def test_imap_records_fetch_expunge_hold(sandbox_factory):
    users = {"alice": {}, "carol": {"mailward_hold": "yes"}}
    sbx = sandbox_factory(users=users, audit=True,
                          plugin={"mailward_audit_remote": "network"})
    for u in users:
        sbx.deliver(u, [make_message(i) for i in (1, 2)])
        i = imap(sbx, u)
        i._simple_command("ID", '("name" "Thunderbird" "version" "128")')
        i.select("INBOX")
        i.fetch("1", "(BODY.PEEK[HEADER])")   # not a retrieval
        i.fetch("1", "(BODY[])")
        i.store("2", "+FLAGS", "\\Deleted")
        i.expunge()
        i.logout()
    time.sleep(0.5)
    a = [r for r in session_records(sbx, "alice", "imap")[0]
         if not r["event"].startswith("device_")]
    assert events(a) == [("login", "ok", None), ("fetch", "ok", None),
                         ("expunge_intent", "ok", "client"),
                         ("expunge_done", "ok", "client"),
                         ("logout", "ok", None)]
    assert a[1]["uid"] == 1 and a[2]["uid"] == 2
    assert a[1]["device_label"].startswith('imap "Thunderbird 128"')
    assert a[1]["remote"] == "127.0.0.0/24"      # network, per setting
    c = [r for r in session_records(sbx, "carol", "imap")[0]
         if not r["event"].startswith("device_")]
    assert events(c) == [("login", "ok", None), ("fetch", "ok", None),
                         ("expunge_suppressed", "suppressed", "hold"),
                         ("logout", "ok", None)]
    assert c[2]["policy"] == "hold" and c[2]["uid"] == 2
    assert sbx.maildir_count("alice") == 1 and sbx.maildir_count("carol") == 2
    stop_and_verify(sbx)


def test_writer_unreachable_keeps_mail(sandbox_factory):
    users = {
        # audit configured, but the writer can't be reached
        "c1": {"mailward_audit_socket": "/nonexistent/mailward-audit"},
        "c2": {"mailward_audit_socket": "/nonexistent/mailward-audit",
               "mailward_pop3_policy": "expunge-after-retrieval"},
        "c3": {"mailward_audit_socket": "/nonexistent/mailward-audit"},
        "c4": {"mailward_audit_socket": "/nonexistent/mailward-audit",
               "mailward_audit_required": "yes"},
    }
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [make_message(i) for i in (1, 2)])
    # POP3 DELE under client policy: QUIT fails, nothing expunged
    p = pop3(sbx, "c1")
    p.retr(1)
    p.dele(1)
    with pytest.raises(poplib.error_proto) as e:
        p.quit()
    assert e.value.args[0] == b"-ERR [SYS/TEMP] Audit log unavailable: " \
        b"message(s) not expunged"
    # policy expunge after retrieval
    p = pop3(sbx, "c2")
    p.retr(1)
    p.quit()
    # IMAP EXPUNGE
    i = imap(sbx, "c3")
    i.select("INBOX")
    i.store("1", "+FLAGS", "\\Deleted")
    tag = i._command("EXPUNGE")
    typ, data = i._command_complete("EXPUNGE", tag)
    assert typ == "NO", (typ, data)
    assert b" ".join(d for d in data if d).startswith(
        b"[UNAVAILABLE] Audit log unavailable: message(s) not expunged"), data
    i.logout()
    time.sleep(0.5)
    for u in ("c1", "c2", "c3"):
        assert sbx.maildir_count(u) == 2, u
        assert imap_count(sbx, u) == 2, u
    sbx.wait_log(r"pop3\(c1\).*Audit log unavailable, expunge refused")
    sbx.wait_log(r"imap\(c3\).*Audit log unavailable, expunge refused")

    # audit required: reads are refused too
    p = pop3(sbx, "c4")
    with pytest.raises(poplib.error_proto) as e:
        p.retr(1)
    assert e.value.args[0] == b"-ERR [SYS/TEMP] Audit log unavailable, " \
        b"try again later"
    p.quit()
    stop_and_verify(sbx)


def test_concurrent_sessions_one_chain(sandbox_factory):
    users = {"user%d" % n: {"mailward_pop3_policy": "leave-on-server"}
             for n in range(5)}
    sbx = sandbox_factory(users=users, audit=True, log_debug=False)
    for u in users:
        sbx.deliver(u, [make_message(i) for i in range(3)])

    def session(k):
        u = "user%d" % (k % 5)
        if k % 2:
            p = pop3(sbx, u)
            p.retr(1)
            p.retr(2)
            p.quit()
        else:
            i = imap(sbx, u)
            i.select("INBOX")
            i.fetch("1:2", "(BODY[])")
            i.logout()
        return k

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
        done = list(ex.map(session, range(50), timeout=120))
    assert len(done) == 50
    deadline = time.time() + 20
    while time.time() < deadline and \
            sum(1 for r in sbx.audit_records()
                if r["event"] == "logout") < 50:
        time.sleep(0.2)
    recs = sbx.audit_records()
    assert sum(1 for r in recs if r["event"] == "login") == 50
    assert sum(1 for r in recs if r["event"] == "logout") == 50
    assert sum(1 for r in recs if r["event"] == "retr") == 50
    assert sum(1 for r in recs if r["event"] == "fetch") == 50
    # one chain: seq strictly increasing by one, no interleaved lines
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(1, len(seqs) + 1))
    out = stop_and_verify(sbx)
    assert "PASS" in out


def test_device_forgotten_by_admin_is_audited(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_device": "old-phone"}},
                          audit=True)
    pop3(sbx).quit()
    wait_session_end(sbx, "alice")
    dev = sbx.doveadm_json("mailward", "devices", "-u", "alice")[0]
    sbx.doveadm("mailward", "forget", "-u", "alice", "-d", dev["id"])
    recs = [r for r in sbx.audit_records()
            if r["event"] == "device_forgotten"]
    assert len(recs) == 1, sbx.audit_records()
    assert recs[0]["device"] == dev["id"]
    assert recs[0]["device_label"] == "old-phone"
    assert recs[0]["cause"] == "admin" and recs[0]["service"] == "doveadm"
    stop_and_verify(sbx)


def test_cli_query_export_verify_json(sandbox_factory):
    import json
    import subprocess
    import mwharness
    users = {"alice": {"mailward_pop3_policy": "expunge-after-retrieval"},
             "bob": {}}
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [make_message(i, msgid="<%s-%d@q.invalid>" % (u, i))
                        for i in (1, 2)])
        p = pop3(sbx, u)
        p.retr(1)
        p.quit()
        wait_session_end(sbx, u)
    sbx.stop(check=True)
    cli = mwharness.AUDIT_CLI
    log = sbx.audit_log_path

    def run(*args):
        return subprocess.run([cli] + list(args), capture_output=True,
                              text=True, timeout=60)

    # who retrieved or removed this message, from which device, under
    # which policy
    r = run("query", "--msg", "<alice-1@q.invalid>", log)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    # (expunge_done names the message too: no join needed)
    assert [x["event"] for x in recs] == ["retr", "expunge_intent",
                                          "expunge_done"], recs
    assert all(x["user"] == "alice" for x in recs)
    assert recs[1]["policy"] == "expunge-after-retrieval"
    assert recs[1]["cause"] == "policy"
    r = run("query", "--user", "bob", "--event", "retr", log)
    recs = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(recs) == 1 and recs[0]["message_id"] == "<bob-1@q.invalid>"
    dev = recs[0]["device"]
    r = run("query", "--device", dev, log)
    assert r.returncode == 0
    assert {json.loads(l)["user"] for l in r.stdout.splitlines()} == {"bob"}
    r = run("query", "--user", "nobody", log)
    assert r.returncode == 1 and r.stdout == ""
    r = run("query", "--since", "2000-01-01T00:00:00Z", "--until",
            "2001-01-01T00:00:00Z", log)
    assert r.returncode == 1
    r = run("export", "--json", "--user", "alice", log)
    assert r.returncode == 0
    exported = json.loads(r.stdout)
    assert exported and all(x["user"] == "alice" for x in exported)
    # verify for SIEMs
    r = run("verify", "--json", "--key",
            os.path.join(sbx.audit_keys, "verify.key"), "--pubkey",
            os.path.join(sbx.audit_keys, "checkpoint.pub"), log)
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(r.stdout)
    assert v["status"] == "PASS", v
    # a third party holding only the public key
    r = run("verify", "--pubkey",
            os.path.join(sbx.audit_keys, "checkpoint.pub"), log)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("frobnicate")
    assert r.returncode == 2


def test_production_crypto_device_id_and_pseudonym(sandbox_factory):
    """The device id and the audit pseudonym a mail process computes with
    Dovecot's HMAC (mailward_crypto_dovecot) are HMAC-SHA-256(device key,
    identity / address), first 16 bytes: the same as OpenSSL's provider
    and any standard HMAC."""
    import hashlib
    import hmac
    key = bytes(range(1, 33))
    sbx = sandbox_factory(users={"alice": {
        "mailward_device_key": key.hex(),
        "mailward_audit_remote": "pseudonym"}}, audit=True)
    sbx.deliver("alice", [make_message(1)])
    p = pop3(sbx)
    p.quit()
    wait_session_end(sbx, "alice")

    def mac(data):
        return hmac.new(key, data.encode(), hashlib.sha256).hexdigest()[:32]

    devs = sbx.doveadm_json("mailward", "devices", "-u", "alice")
    assert [d["id"] for d in devs] == [mac("net:pop3:127.0.0.0/24")], devs
    login = [r for r in sbx.audit_records()
             if r["event"] == "login" and r["user"] == "alice"]
    assert [r["remote"] for r in login] == ["ps:" + mac("127.0.0.1")], login
    stop_and_verify(sbx)
