"""Foundation: the plugins load into a real Dovecot for the right
protocols, settings come from plugin {} with per-user userdb overrides,
invalid values are reported and make the session fail-safe, and a
third-party client completes a session with the plugins loaded."""
import imaplib
import json
import poplib
import re

import mwclients
import mwharness
from mwharness import make_message


def pop3_login(sbx, user="alice"):
    p = poplib.POP3("127.0.0.1", sbx.pop3_port, timeout=30)
    p.user(user)
    p.pass_(mwharness.PASSWORD)
    return p


def imap_login(sbx, user="alice"):
    i = imaplib.IMAP4("127.0.0.1", sbx.imap_port, timeout=30)
    i.login(user, mwharness.PASSWORD)
    return i


def test_plugins_load_for_their_protocols(sandbox_factory):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(1)])
    p = pop3_login(sbx)
    assert p.stat()[0] == 1
    p.quit()
    i = imap_login(sbx)
    assert i.select("INBOX")[0] == "OK"
    i.logout()

    # storage plugin in both protocols, each protocol plugin only in its own
    sbx.wait_log(r"pop3\(alice\).*Debug: mailward: user alice service pop3")
    sbx.wait_log(r"pop3\(alice\).*Debug: mailward: pop3 session started")
    sbx.wait_log(r"imap\(alice\).*Debug: mailward: user alice service imap")
    sbx.wait_log(r"imap\(alice\).*Debug: mailward: imap session started")
    log = sbx.read_log()
    assert not re.search(r"imap\(alice\).*pop3 session started", log)
    assert not re.search(r"pop3\(alice\).*imap session started", log)

    # doveadm plugin: its command exists and runs with the storage plugin
    rows = {r["setting"]: r for r in
            sbx.doveadm_json("mailward", "settings", "-u", "alice")}
    assert rows["mailward_pop3_policy"] == {
        "user": "alice", "setting": "mailward_pop3_policy",
        "value": "client", "source": "default", "status": "ok"}
    assert rows["mailward_hold"]["value"] == "no"
    assert rows["audit"]["value"] == "off"
    assert rows["fail_safe"] == {
        "user": "alice", "setting": "fail_safe", "value": "no",
        "source": "session", "status": ""}


def test_userdb_field_overrides_plugin_setting(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server",
                         "mailward_expunge_delay": "2h"},
               "bob": {}},
        plugin={"mailward_pop3_policy": "expunge-after-retrieval",
                "mailward_expunge_delay": "30m"})
    rows = sbx.doveadm_json("mailward", "settings", "-A")
    got = {(r["user"], r["setting"]): (r["value"], r["source"])
           for r in rows}
    assert got[("alice", "mailward_pop3_policy")] == ("leave-on-server",
                                                     "userdb")
    assert got[("alice", "mailward_expunge_delay")] == ("2h", "userdb")
    assert got[("bob", "mailward_pop3_policy")] == (
        "expunge-after-retrieval", "config")
    assert got[("bob", "mailward_expunge_delay")] == ("30m", "config")

    # the same values reach a real POP3 session
    p = pop3_login(sbx, "alice")
    p.quit()
    sbx.wait_log(r"pop3\(alice\).*mailward: user alice service pop3: "
                 r"pop3_policy=leave-on-server \(userdb\) "
                 r"expunge_delay=7200s")


def test_invalid_setting_is_reported_and_fail_safe(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "delete-all"},
               "bob": {"mailward_expunge_delay": "soon"}},
        plugin={"mailward_pop3_policy": "client"})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3_login(sbx, "alice")
    assert p.stat()[0] == 3
    p.dele(1)
    p.dele(2)
    p.quit()
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: Invalid setting "
                 r"mailward_pop3_policy=delete-all for user alice: expected")
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: .*session is fail-safe")
    # fail-safe: DELE did not expunge
    assert sbx.maildir_count("alice") == 3

    r = sbx.doveadm("mailward", "settings", "-u", "bob", fmt="json")
    assert "Invalid setting mailward_expunge_delay=soon for user bob" \
        in r.stderr
    rows = {x["setting"]: x for x in json.loads(r.stdout)}
    assert rows["fail_safe"]["value"] == "yes"
    assert rows["mailward_expunge_delay"]["value"] == "soon"
    assert rows["mailward_expunge_delay"]["status"].startswith(
        "invalid: expected an interval")


def test_empty_userdb_field_is_invalid(sandbox_factory):
    # Dovecot 2.3 reads an empty userdb field back as "yes", 2.4 as ""
    sbx = sandbox_factory(users={"alice": {"mailward_pop3_policy": ""}})
    r = sbx.doveadm("mailward", "settings", "-u", "alice", fmt="json")
    seen = "" if mwharness.DOVECOT_24 else "yes"
    assert "Invalid setting mailward_pop3_policy=%s for user alice" % seen \
        in r.stderr
    assert '"setting":"fail_safe","value":"yes"' in r.stdout, r.stdout


def test_fetchmail_session_with_plugins(sandbox_factory, tmp_path):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(i) for i in range(4)])
    rc, out, subjects = mwclients.run_fetchmail(sbx, "alice",
                                                str(tmp_path / "fm"),
                                                keep=True)
    assert rc == 0, out
    assert subjects == ["message %d" % i for i in range(4)], out
    sbx.wait_log(r"pop3\(alice\).*mailward: pop3 session started")
    sbx.wait_log(r"pop3\(alice\).*Logged out")
    assert sbx.maildir_count("alice") == 4
