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
    # Dovecot 2.3 reads an empty userdb field back as "yes", 2.4 as "":
    # mailward looks at the field itself and reports "" on both
    sbx = sandbox_factory(users={"alice": {"mailward_pop3_policy": ""}})
    r = sbx.doveadm("mailward", "settings", "-u", "alice", fmt="json")
    assert "Invalid setting mailward_pop3_policy= for user alice" \
        in r.stderr
    assert '"setting":"fail_safe","value":"yes"' in r.stdout, r.stdout


def test_empty_yes_no_and_string_userdb_fields_are_invalid(sandbox_factory):
    """An empty yes/no field (mailward_hold=, where Dovecot 2.3 reads
    "yes") or string field (mailward_device=, where 2.4 reads "" = unset)
    is an invalid value: the session is fail-safe, the error names the
    setting, the value and the user, and `doveadm mailward check` reports
    it. An empty mailward_hold keeps the hold (attack review 5,
    finding 10)."""
    sbx = sandbox_factory(
        users={"e1": {"mailward_hold": ""},
               "e2": {"mailward_imap_counts_as_retrieval": "",
                      "mailward_device": ""}},
        plugin={"mailward_pop3_policy": "expunge-after-retrieval"})
    for u in ("e1", "e2"):
        sbx.deliver(u, [make_message(i) for i in range(2)])
        p = pop3_login(sbx, u)
        p.retr(1)
        p.dele(2)
        p.quit()
        sbx.wait_log(r"pop3\(%s\).*Logged out" % u)
    sbx.wait_log(r"pop3\(e1\).*Error: mailward: Invalid setting "
                 r"mailward_hold= for user e1: expected yes or no")
    sbx.wait_log(r"pop3\(e2\).*Error: mailward: Invalid setting "
                 r"mailward_imap_counts_as_retrieval= for user e2: "
                 r"expected yes or no")
    sbx.wait_log(r"pop3\(e2\).*Error: mailward: Invalid setting "
                 r"mailward_device= for user e2: empty userdb field")
    for u, n in (("e1", 1), ("e2", 2)):
        sbx.wait_log(r"pop3\(%s\).*Error: mailward: %d invalid "
                     r"setting\(s\) for user %s - session is fail-safe"
                     % (u, n, u))
        # fail-safe (and for e1 the hold): nothing expunged
        assert sbx.maildir_count(u) == 2
    # the empty mailward_hold is a hold: the client's own EXPUNGE too is
    # refused
    i = mwharness.imap(sbx, "e1")
    i.select("INBOX")
    i.store("1", "+FLAGS", "\\Deleted")
    typ, data = i.expunge()
    i.logout()
    assert typ == "OK" and sbx.maildir_count("e1") == 2
    sbx.wait_log(r"imap\(e1\).*Refused to expunge 1 message\(s\) in "
                 r"INBOX.*legal hold")
    rows = {(x["user"], x["setting"]): x for x in
            sbx.doveadm_json("mailward", "settings", "-A")}
    assert rows[("e1", "mailward_hold")]["status"] == \
        "invalid: expected yes or no"
    assert rows[("e2", "mailward_device")]["status"].startswith(
        "invalid: empty userdb field"), rows[("e2", "mailward_device")]
    r = sbx.doveadm("mailward", "check", "-A", check=False)
    assert r.returncode == 78, r.stdout + r.stderr
    for line in ("invalid mailward_hold =  (userdb): expected yes or no",
                 "invalid mailward_imap_counts_as_retrieval =  (userdb): "
                 "expected yes or no",
                 "invalid mailward_device =  (userdb): empty userdb field"):
        assert line in r.stdout, r.stdout


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
