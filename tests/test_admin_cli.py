"""Small things an administrator trips over (issue 13 item 7): doveadm
mailward expunge -A is silent when nothing is due, device ids are checked
and may be given as a prefix by state and forget alike, the demo's log
excerpt names the user, and mailward-audit explains bad option values,
rejects impossible dates and has --version."""

import os
import re
import subprocess
import time

import mwharness
from mwharness import make_message, pop3, wait_session_end, devices

import demo


def cli(*args):
    return subprocess.run([mwharness.AUDIT_CLI] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_expunge_all_silent_when_nothing_due(sandbox_factory):
    sbx = sandbox_factory(users={
        "alice": {"mailward_pop3_policy": "leave-on-server"},
        "bob": {"mailward_pop3_policy": "expunge-after-retrieval",
                "mailward_expunge_delay": "1s"}})
    sbx.deliver("bob", [make_message(i) for i in range(2)])
    sbx.deliver("alice", [make_message(1)])
    p = pop3(sbx, "alice")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice")
    # nothing due for anyone: no output at all (cron mails nothing)
    r = sbx.doveadm("mailward", "expunge", "-A")
    assert r.stdout == "", r.stdout
    r = sbx.doveadm("mailward", "expunge", "-u", "alice")
    assert r.stdout == "", r.stdout
    # something due: the header and the row
    p = pop3(sbx, "bob")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "bob")
    out = ""
    for _ in range(50):
        out = sbx.doveadm("mailward", "expunge", "-A").stdout
        if out:
            break
        time.sleep(0.2)
    lines = out.splitlines()
    assert len(lines) == 2, out
    # (-A adds doveadm's own Username column in front)
    assert lines[0].split()[-5:] == ["user", "mailbox", "uid", "guid",
                                     "due"], out
    assert lines[1].split()[-5:-2] == ["bob", "INBOX", "1"], out
    assert sbx.doveadm("mailward", "expunge", "-A").stdout == ""


def test_device_ids_checked_and_prefixes(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "phone", "laptoppw": "laptop"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    for pw in ("phonepw", "laptoppw"):
        p = pop3(sbx, "alice", password=pw)
        p.retr(1)
        p.quit()
    wait_session_end(sbx, "alice", count=2)
    devs = devices(sbx)
    phone = [d for label, d in devs.items() if "phone" in label][0]
    # malformed: a usage error (64), for state and forget, not "try later"
    for cmd in ("state", "forget"):
        for bad in ("xyz", "12345", "0123456789abcdef0123456789abcdef0",
                    phone["id"][:8] + "-"):
            r = sbx.doveadm("mailward", cmd, "-u", "alice", "-d", bad,
                            check=False)
            assert r.returncode == 64, (cmd, bad, r.returncode, r.stderr)
            assert "invalid device id" in r.stderr, r.stderr
    # state takes a prefix like forget (any case)
    prefix = phone["id"][:8].upper()
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice", "-d", prefix)
    assert rows and {r["device"] for r in rows} == {phone["id"]}, rows
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice",
                            "-d", phone["id"])
    assert {r["device"] for r in rows} == {phone["id"]}
    # a well-formed id of no device: not found (68), naming it
    other = ("0" if phone["id"][0] != "0" else "1") * 32
    r = sbx.doveadm("mailward", "state", "-u", "alice", "-d", other,
                    check=False)
    assert r.returncode == 68 and "has no device " + other in r.stderr, r
    # forget by prefix
    out = sbx.doveadm_json("mailward", "forget", "-u", "alice", "-d",
                           phone["id"][:6])
    assert out[0]["id"] == phone["id"]
    assert phone["id"] not in [d["id"] for d in devices(sbx).values()]


def test_demo_log_excerpt_names_the_user(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}, "bob": {}})
    n = len(sbx.read_log().splitlines())
    for u in ("alice", "bob"):
        p = pop3(sbx, u)
        p.quit()
        wait_session_end(sbx, u)
    lines = [demo.log_excerpt_line(l)
             for l in sbx.read_log().splitlines()[n:]
             if "mailward:" in l and "Debug:" not in l]
    for u in ("alice", "bob"):
        mine = [l for l in lines if l.startswith("pop3(%s): " % u)]
        assert any("mailward: pop3 session ended" in l for l in mine), lines
    for l in lines:
        # no date, pid or session id left
        assert not re.match(r"^\w{3} \d", l) and "<" not in l.split(":")[0]


def test_audit_cli_option_errors_dates_version(tmp_path):
    log = str(tmp_path / "audit.jsonl")
    with open(log, "w") as f:
        f.write('{"seq":1,"time":"2024-02-29T12:00:00.000000Z"}\n')
    r = cli("query", "--since", "garbage", log)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        "mailward-audit: --since: invalid value 'garbage': expected "
        "YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z] (UTC)\n"
        "Try 'mailward-audit --help'.\n"), r.stderr
    for opt, value, why in (
            ("--since", "2026-02-29", "no such day in that month"),
            ("--until", "2026-04-31", "no such day in that month"),
            ("--since", "2026-13-01", "no such month"),
            ("--since", "2026-00-10", "no such month"),
            ("--until", "2026-01-00", "no such day in that month"),
            ("--since", "2026-01-01T24:00",
             "no such time of day (00:00:00 to 23:59:59)"),
            ("--since", "2026-01-01T23:60:00",
             "no such time of day (00:00:00 to 23:59:59)")):
        r = cli("export", "--csv", opt, value, log)
        assert r.returncode == 2, (value, r)
        assert r.stderr.startswith("mailward-audit: %s: invalid value '%s': "
                                   "%s\n" % (opt, value, why)), r.stderr
    # real dates, leap day included, still work
    r = cli("query", "--since", "2024-02-29", "--until",
            "2024-02-29T23:59:59.999999Z", log)
    assert r.returncode == 0 and '"seq":1' in r.stdout, r
    r = cli("verify", "--expect-seq", "ten", log)
    assert r.returncode == 2
    assert "--expect-seq: invalid value 'ten': not a record number" in \
        r.stderr
    for opt in ("--version", "-V"):
        r = cli(opt)
        assert r.returncode == 0
        assert re.fullmatch(r"mailward-audit \(mailward\) \d+\.\d+\.\d+\n",
                            r.stdout), r.stdout
    assert os.path.exists(log)
