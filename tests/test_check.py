"""doveadm mailward check / settings: the mistakes of issue 13 items 2, 3
and 5 are reported, and the check works when mailward is missing from
doveadm's mail_plugins (the doveadm plugin no longer needs the storage
plugin to load)."""

import os
import re
import subprocess

import pytest

import mwharness
from mwharness import AUDITD, REPO, DOVECOT_24, make_message, pop3
from test_audit_writer import wait_records

EX_CONFIG = 78


def check(sbx, *args):
    """(exit code, problem lines, result); with -A a line is prefixed by
    its user ("alice: ..."; config lines have no user)."""
    args = args or ("-A",)
    r = sbx.doveadm("mailward", "check", *args, check=False)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    if "-A" in args:
        lines = [l.replace("\t", ": ", 1) if not l.startswith("\t")
                 else l[1:] for l in lines]
    return r.returncode, lines, r


def test_doveadm_plugin_needs_no_storage_symbols():
    # doveadm loads its plugins before any mail plugin: an undefined
    # reference to the storage plugin (or to the core it links) makes
    # doveadm skip the module until mailward is loaded for a user, and
    # "doveadm mailward check" would not exist when it is needed. Calls
    # go through mailward-doveadm-api.h.
    so = os.path.join(mwharness.MODULES, "lib10_doveadm_mailward_plugin.so")
    r = subprocess.run(["nm", "-D", "--undefined-only", so],
                       capture_output=True, text=True, check=True)
    bad = [l.split()[-1] for l in r.stdout.splitlines()
           if re.search(r"\b(mailward_|mw_)", l)]
    assert bad == [], bad


def test_check_clean_config(sandbox_factory):
    sbx = sandbox_factory(audit=True, users={"alice": {}, "bob": {}})
    rc, lines, r = check(sbx)
    assert (rc, lines) == (0, []), r.stdout + r.stderr


def test_check_misspelled_key_and_invalid_values(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_hold": "maybe"},
               "bob": {"mailward_expunge_dealy": "7d"}},
        # (a misspelled key in the configuration files: Dovecot 2.4's
        # doveconf refuses it itself, test_check_misspelled_config_key)
        plugin={"mailward_pop3_polcy": {"2.3": "leave-on-server"},
                "mailward_device_max": "lots"})
    rc, lines, r = check(sbx)
    assert rc == EX_CONFIG, r.stdout + r.stderr
    expected = [
        "alice: invalid mailward_hold = maybe (userdb): expected yes "
        "or no",
        "alice: invalid mailward_device_max = lots (config): expected "
        "a number of devices from 1 to 1024",
        # Dovecot ignores unknown userdb fields silently (2.3 and 2.4)
        "bob: unknown setting mailward_expunge_dealy = 7d (userdb): "
        "ignored by mailward",
        "bob: invalid mailward_device_max = lots (config): expected "
        "a number of devices from 1 to 1024",
    ]
    if not DOVECOT_24:
        expected += [
            "alice: unknown setting mailward_pop3_polcy = leave-on-server "
            "(config): ignored by mailward",
            "bob: unknown setting mailward_pop3_polcy = leave-on-server "
            "(config): ignored by mailward"]
    assert sorted(lines) == sorted(expected), r.stdout

    # settings: every setting with value and source, raw invalid values
    rows = {(x["user"], x["setting"]): x for x in
            sbx.doveadm_json("mailward", "settings", "-A")}
    for x in rows.values():
        assert x.pop("username") == x["user"]
    assert rows[("alice", "mailward_hold")] == {
        "user": "alice", "setting": "mailward_hold", "value": "maybe",
        "source": "userdb", "status": "invalid: expected yes or no"}
    assert rows[("bob", "mailward_device_max")]["value"] == "lots"
    assert rows[("bob", "mailward_device_max")]["source"] == "config"
    assert rows[("bob", "mailward_pop3_policy")]["value"] == "client"
    assert rows[("bob", "mailward_pop3_policy")]["source"] == "default"
    assert rows[("alice", "fail_safe")]["value"] == "yes"
    assert rows[("alice", "audit")]["value"] == "off"


def test_check_misspelled_config_key(sandbox_factory):
    """A misspelled mailward key in the configuration files is named: by
    check on Dovecot 2.3 (Dovecot keeps unknown plugin {} keys); on 2.4
    doveconf refuses the configuration itself, so doveadm (check too)
    fails naming the file, line and key, and Dovecot would not start."""
    sbx = sandbox_factory()
    with open(sbx.conf) as f:
        conf = f.read()
    line = len(conf.splitlines()) + 1
    if DOVECOT_24:
        conf += "mailward_pop3_polcy = leave-on-server\n"
    else:
        conf += "plugin {\n  mailward_pop3_polcy = leave-on-server\n}\n"
        line += 1
    # a copy: the running Dovecot keeps its own file (on 2.4 its config
    # process would read the changed file again and fail)
    path = os.path.join(sbx.dir, "misspelled.conf")
    with open(path, "w") as f:
        f.write(conf)
    r = mwharness._run_with_doveadm_modules(
        sbx.doveadm_moddir,
        ["doveadm", "-c", path, "mailward", "check", "-u", "alice"], None)
    rc, lines = r.returncode, [l for l in r.stdout.splitlines() if l.strip()]
    if DOVECOT_24:
        assert (rc, r.stdout) == (89, ""), r.stdout + r.stderr
        assert r.stderr == (
            "doveconf: Fatal: Error in configuration file %s line %d: "
            "mailward_pop3_polcy: Unknown setting: mailward_pop3_polcy\n"
            % (path, line)), r.stderr
    else:
        assert (rc, lines) == (EX_CONFIG, [
            "unknown setting mailward_pop3_polcy = leave-on-server "
            "(config): ignored by mailward"]), r.stdout + r.stderr


def test_check_mail_plugins_without_dollar(sandbox_factory):
    # issue 13 item 5: "mail_plugins = quota" in a later file drops
    # mailward from every protocol without its own mail_plugins line
    # (lmtp is checked when it is in protocols; Debian's dovecot-lmtpd is
    # not installed here)
    sbx = sandbox_factory(plugins=["quota"],
                          extra_conf="mail_plugins = quota\n")
    rc, lines, r = check(sbx, "-u", "alice")
    assert rc == EX_CONFIG, r.stdout + r.stderr
    if DOVECOT_24:
        # 2.4: the line replaces the global list; the sandbox's protocol
        # imap and pop3 blocks add only their protocol plugin to it
        lacking = [("imap", "quota imap_mailward"),
                   ("pop3", "quota pop3_mailward"),
                   ("doveadm", "quota"), ("indexer-worker", "quota")]
        hint = ("(a mail_plugins = line replaces the list; "
                "mail_plugins { NAME = yes } adds to it)")
    else:
        # 2.3: protocol imap and pop3 name mailward themselves
        lacking = [("doveadm", "quota"), ("indexer-worker", "quota")]
        hint = "(a mail_plugins line without $mail_plugins?)"
    assert lines == [
        "config: protocol %s: mail_plugins = %s lacks mailward: its "
        "processes expunge without policy, hold or audit %s"
        % (service, plugins, hint) for service, plugins in lacking], \
        r.stdout
    # the other commands say why they cannot run instead of vanishing
    r = sbx.doveadm("mailward", "devices", "-u", "alice", check=False)
    assert r.returncode == 68, r.stderr  # not found
    assert "mailward is not in mail_plugins for doveadm (user alice)" \
        in r.stderr, r.stderr
    rows = sbx.doveadm_json("mailward", "settings", "-u", "alice")
    fail_safe = [x for x in rows if x["setting"] == "fail_safe"][0]
    assert fail_safe["status"].startswith(
        "mailward is not in mail_plugins for doveadm")


def test_check_protocol_plugin_missing(sandbox_factory):
    sbx = sandbox_factory(
        extra_conf="protocol pop3 {\n  mail_plugins = mailward\n}\n")
    rc, lines, r = check(sbx, "-u", "alice")
    assert rc == EX_CONFIG
    assert lines == ["config: protocol pop3: mail_plugins = mailward lacks "
                     "pop3_mailward"], r.stdout


def _doc_blocks():
    """The configuration blocks of docs/audit-service.md section 3, as
    written (the service and plugin blocks of its first code block)."""
    text = open(os.path.join(REPO, "docs", "audit-service.md")).read()
    sec = text[text.index("## 3. Dovecot configuration"):]
    blocks = sec.split("```\n", 2)[1].split("```")[0]
    if DOVECOT_24:
        # as the guide says for 2.4: the plugin block's settings at the
        # top level
        head, plugin = blocks.split("plugin {\n")
        body = plugin[:plugin.rindex("}")]
        blocks = head + "".join(l[2:] + "\n" for l in body.splitlines())
    return blocks


def _sandbox_paths(sbx, conf):
    return (conf.replace("/usr/lib/dovecot/mailward-auditd", AUDITD)
            .replace("/var/log/mailward/audit.jsonl", sbx.audit_log_path)
            .replace("/var/lib/mailward-audit/keys", sbx.audit_writer_keys)
            .replace("/var/spool/mailward-audit", sbx.audit_spool)
            .replace("user = vmail", "user = " + mwharness.TEST_USER))


def test_audit_service_doc_followed_as_written():
    # issue 13 item 2: the writer and plugin blocks of the guide, with
    # only the paths of this sandbox, give a working audit
    sbx = mwharness.Sandbox()
    try:
        sbx.extra_conf = _sandbox_paths(sbx, _doc_blocks())
        sbx._setup_audit()
        sbx.start()
        rc, lines, r = check(sbx)
        assert (rc, lines) == (0, []), r.stdout + r.stderr
        rows = {x["setting"]: x for x in
                sbx.doveadm_json("mailward", "settings", "-u", "alice")}
        assert rows["audit"]["value"] == "on: %s" % sbx.audit_socket_path
        sbx.deliver("alice", [make_message(1)])
        p = pop3(sbx)
        p.retr(1)
        p.quit()
        sbx.wait_log(r"pop3\(alice\).*mailward: user alice service pop3: "
                     r".* audit=on \(mailward-audit\)")
        mwharness.wait_session_end(sbx, "alice")
        # the writer receives the session's records at logout
        recs = wait_records(sbx, lambda recs: "logout" in [
            r.get("event") for r in recs if r.get("user") == "alice"])
        events = [r["event"] for r in recs if r.get("user") == "alice"]
        assert "login" in events and "retr" in events, events
    finally:
        sbx.stop()
        sbx.cleanup()


def test_check_reports_writer_with_audit_off():
    # issue 13 items 2 and 3: a writer service runs but the plugin block
    # leaves audit off (the guide's old commented-out socket, or the
    # sample 90-mailward.conf put back over an edited one by an install)
    sbx = mwharness.Sandbox()
    try:
        blocks = _doc_blocks()
        writer = blocks[:blocks.index(
            "mailward_audit_socket" if DOVECOT_24 else "plugin {")]
        sample = os.path.join(REPO, "conf.d", *(
            ["dovecot-2.4"] if DOVECOT_24 else []), "90-mailward.conf")
        sbx.extra_conf = _sandbox_paths(sbx, writer) + \
            "!include %s\n" % sample
        sbx._setup_audit()
        sbx.start()
        rc, lines, r = check(sbx, "-u", "alice")
        assert rc == EX_CONFIG
        assert lines == [
            "audit is off (mailward_audit_socket is not set) "
            "although service mailward-audit is configured"], r.stdout
        rows = {x["setting"]: x for x in
                sbx.doveadm_json("mailward", "settings", "-u", "alice")}
        assert rows["audit"]["value"] == "off"
        p = pop3(sbx)
        p.quit()
        sbx.wait_log(r"pop3\(alice\).*mailward: user alice service pop3: "
                     r".* audit=off")
    finally:
        sbx.stop()
        sbx.cleanup()


def test_check_keys_socket_state_dir(sandbox_factory):
    sbx = sandbox_factory(
        audit=True,
        users={"alice": {},
               "bob": {"mailward_audit_socket": "/nonexistent/mw-sock"},
               "carol": {},
               "dave": {"mailward_state_dir": "relative/state"}})
    # a directory the mail uid cannot write to
    sbx.set_user_fields("carol", mailward_state_dir=sbx.dir + "/mw-carol")
    key = os.path.join(sbx.audit_writer_keys, "writer.key")
    os.chmod(key, 0o640)
    rc, lines, r = check(sbx)
    assert rc == EX_CONFIG, r.stdout + r.stderr
    uid = sbx.uid
    expected = [
        "config: service mailward-audit: writer key (-K) %s has mode 0640: "
        "it must be readable only by the writer's user (chmod 0600)" % key,
        "bob: audit writer socket /nonexistent/mw-sock: connect() as "
        "uid %d failed: No such file or directory" % uid,
        "carol: state directory %s/mw-carol does not exist and uid "
        "%d cannot create it in %s: Permission denied" % (sbx.dir, uid,
                                                          sbx.dir),
        "dave: state directory relative/state is not an absolute path "
        "(mailward_state_dir)",
    ]
    # (the config line is printed once, before the users)
    assert lines == expected, r.stdout
    os.chmod(key, 0o600)
    os.chown(key, 0, 0)
    rc, lines, r = check(sbx, "-u", "alice")
    assert rc == EX_CONFIG
    assert lines == [
        "config: service mailward-audit: writer key (-K) %s is owned by uid "
        "0, not by the writer's user %s (uid %d)" % (
            key, mwharness.AUDIT_USER, mwharness.ensure_audit_user()[0])], \
        r.stdout
    auid, agid = mwharness.ensure_audit_user()
    os.chown(key, auid, agid)


def test_state_dir_tilde_and_home_expanded(sandbox_factory):
    # issue 13 item 6: the sample's "mailward_state_dir = ~/mailward" was
    # used as a relative path (./~/mailward); ~ and %h are the home now
    sbx = sandbox_factory(
        users={"alice": {"mailward_state_dir": "~/mw-tilde"},
               "bob": {}},
        # (Dovecot 2.4 expands only %{home}; a literal %h is kept and
        # refused as a relative path)
        plugin={"mailward_state_dir": {"2.3": "%h/mw-percent",
                                       "2.4": "%{home}/mw-percent"}})
    rc, lines, r = check(sbx)
    assert (rc, lines) == (0, []), r.stdout + r.stderr
    for user in ("alice", "bob"):
        p = pop3(sbx, user)
        p.quit()
    mwharness.wait_session_end(sbx, "alice")
    mwharness.wait_session_end(sbx, "bob")
    assert os.path.exists(os.path.join(sbx.home("alice"), "mw-tilde",
                                       "data.mdb"))
    assert os.path.exists(os.path.join(sbx.home("bob"), "mw-percent",
                                       "data.mdb"))
    # no store error (the sandbox has no mail_attribute_dict: the warning
    # that a lost state directory cannot be detected is expected)
    assert not re.search(r"(Error|Fatal): .*mailward: .*State store",
                         sbx.read_log())
    assert len(mwharness.devices(sbx, "alice")) == 1


def test_check_audit_spool(sandbox_factory):
    """The spool of a session's records while the writer is away
    (docs/audit-service.md §5): missing, not creatable for the mail uid,
    listable or without the sticky bit, and unset with audit on."""
    sbx = sandbox_factory(
        audit=True, plugin={"mailward_audit_spool": ""},
        users={"alice": {},
               "bob": {"mailward_audit_spool": "/nonexistent/spool"},
               "carol": {}, "dave": {}, "erin": {}})
    sbx.set_user_fields("alice", mailward_audit_spool=sbx.audit_spool)
    base = sbx.dir
    closed = os.path.join(base, "spool-closed")
    open_ = os.path.join(base, "spool-open")
    os.makedirs(closed, mode=0o755)
    os.makedirs(open_)
    os.chmod(open_, 0o777)
    sbx.set_user_fields("carol", mailward_audit_spool=closed)
    sbx.set_user_fields("dave", mailward_audit_spool=open_)
    rc, lines, r = check(sbx)
    assert rc == EX_CONFIG, r.stdout + r.stderr
    uid = sbx.uid
    assert lines == [
        "bob: audit spool /nonexistent/spool: stat() as uid %d failed: "
        "No such file or directory" % uid,
        "carol: audit spool %s: uid %d cannot create files in it: "
        "Permission denied (owner uid 0 gid 0 mode 0755; use mode 3733)"
        % (closed, uid),
        "dave: audit spool %s has mode 0777: other users can list it or "
        "remove files they did not create, or the writer cannot read the "
        "files (use mode 3733, owned by the writer's user and group)"
        % open_,
        "erin: audit is on but mailward_audit_spool is not set: records "
        "of sessions that end while the writer is away are lost",
    ], r.stdout
