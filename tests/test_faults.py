"""Faults: mail processes killed (SIGKILL) at each step of a session under
each policy, disks that fill up, concurrency, hostile labels. Afterwards no
message is lost that policy did not allow to go, the LMDB store opens and
is consistent, the audit log verifies, and the next session carries on.

Fault points inside a session come from a test-only build option
(--enable-fault-injection): the userdb field mailward_fault_inject=POINT
makes the mail process SIGKILL itself at POINT."""
import concurrent.futures
import csv
import imaplib
import io
import os
import poplib
import re
import signal
import subprocess
import threading
import time

import pytest

import mwharness
from mwharness import make_message, pop3, imap, imap_count, \
    wait_session_end

KILLED = r"killed with signal 9"


def mail_pid(sbx, user="alice", n=1):
    """The mail process pid of the user's n-th last login."""
    # Dovecot 2.3 logs "Login: user=<...>", 2.4 "Logged in: user=<...>"
    lines = sbx.wait_log(r"(Login|Logged in): user=<%s>.*mpid=\d+"
                         % re.escape(user))
    return int(re.search(r"mpid=(\d+)", lines[-n]).group(1))


def assert_store_ok(sbx, user):
    rows = sbx.doveadm_json("mailward", "devices", "-u", user)
    assert isinstance(rows, list)
    sbx.doveadm_json("mailward", "state", "-u", user)


@pytest.mark.parametrize("policy", ["client", "leave-on-server",
                                    "expunge-after-retrieval",
                                    "expunge-after-all-devices"])
def test_kill_before_quit(sandbox_factory, policy):
    sbx = sandbox_factory(users={"alice": {"mailward_pop3_policy": policy}})
    sbx.log_allow.append(KILLED)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3(sbx)
    p.retr(1)
    p.retr(2)
    p.dele(1)
    p.noop()
    os.kill(mail_pid(sbx), signal.SIGKILL)
    time.sleep(0.5)
    # no UPDATE state: nothing is lost, whatever the policy
    assert sbx.maildir_count("alice") == 3
    assert_store_ok(sbx, "alice")
    p = pop3(sbx)
    assert p.stat()[0] == 3
    p.quit()
    wait_session_end(sbx, "alice")


@pytest.mark.parametrize("point,on_disk,kept", [
    ("before-audit-intent", 3, 3),   # nothing durable: nothing expunged
    ("before-expunge-commit", 3, 3), # intent durable, expunge not done
    ("after-expunge-commit", 3, 2),  # expunged as policy allowed (maildir
                                     # unlinks at the next sync)
    ("before-state-write", 2, 2),    # expunged, state not yet written
])
def test_kill_during_quit_update(sandbox_factory, point, on_disk, kept):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "expunge-after-retrieval",
                         "mailward_fault_inject": point}},
        audit=True)
    sbx.log_allow.append(KILLED)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3(sbx)
    p.retr(1)
    # the reply goes out before the policy expunge at the session's end
    assert p.quit() == b"+OK Logging out."
    sbx.wait_log(r"fault injection: killing process at %s" % point)
    time.sleep(0.5)
    assert sbx.maildir_count("alice") == on_disk
    # policy allowed only the retrieved message ("message 0") to go
    subjects = sbx.maildir_subjects("alice")
    assert {"message 1", "message 2"} <= set(subjects)
    assert_store_ok(sbx, "alice")
    # the next session carries on (without the fault)
    sbx.set_user_fields("alice", mailward_fault_inject=None)
    p = pop3(sbx)
    assert p.stat()[0] == kept
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == kept
    assert imap_count(sbx) == kept
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0, out
    recs = sbx.audit_records()
    intents = [r for r in recs if r["event"] == "expunge_intent"]
    if point == "before-audit-intent":
        assert intents == []
    else:
        # the intent was durable before the expunge could commit
        assert len(intents) == 1 and intents[0]["uid"] == 1


def test_kill_imap_mid_fetch_and_expunge(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_fault_inject": "after-expunge-commit"}})
    sbx.log_allow.append(KILLED)
    sbx.deliver("alice", [make_message(i, size=200000) for i in range(4)])
    i = imap(sbx)
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.store("2", "+FLAGS", "\\Deleted")
    # killed before the reply
    with pytest.raises(imaplib.IMAP4.abort):
        i.expunge()
    time.sleep(0.5)
    # the expunge was committed; maildir unlinks at the next sync
    assert sbx.maildir_count("alice") == 4
    assert_store_ok(sbx, "alice")
    sbx.set_user_fields("alice", mailward_fault_inject=None)
    assert imap_count(sbx) == 3
    assert sbx.maildir_count("alice") == 3


def _tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                        "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % r.stderr)


def _fill(path):
    """Fills the filesystem to the last byte (bounded)."""
    try:
        fd = os.open(os.path.join(path, "filler"),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        return                              # already full
    try:
        for chunk in (1 << 20, 65536, 4096, 512, 64, 8, 1):
            for _ in range(10000):          # bounded
                try:
                    os.write(fd, b"\0" * chunk)
                except OSError:
                    break
    finally:
        os.close(fd)


def test_state_disk_full_is_fail_safe(sandbox_factory, tmp_path):
    full = "/tmp/mailward-full-%d" % os.getpid()
    _tmpfs(full, "1m")
    try:
        uid, gid = mwharness.ensure_test_user()
        os.chown(full, uid, gid)
        sbx = sandbox_factory(users={"alice": {
            "mailward_state_dir": full + "/alice",
            "mailward_pop3_policy": "expunge-after-retrieval"}})
        sbx.deliver("alice", [make_message(i) for i in range(3)])
        _fill(full)
        p = pop3(sbx)
        p.retr(1)
        p.quit()
        time.sleep(0.5)
        sbx.wait_log(r"pop3\(alice\).*Error: mailward: State store error")
        # fail-safe: the store is not usable, policy expunges nothing
        assert sbx.maildir_count("alice") == 3
    finally:
        subprocess.run(["umount", "-l", full])
        os.rmdir(full)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_audit_log_unwritable_or_full(sandbox_factory, fault):
    import tempfile
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    os.chmod(root, 0o755)
    full = os.path.join(root, "audit")
    _tmpfs(full, "2m")
    try:
        sbx = sandbox_factory(users={"alice": {}}, audit=True, root=root)
        sbx.deliver("alice", [make_message(i) for i in range(20)])
        pop3(sbx).quit()           # writer up, log created
        sbx.wait_log(r"pop3\(alice\).*Logged out")
        if fault == "read-only":
            # the log file becomes unwritable for the writer, which is
            # restarted (by Dovecot's master, on the next connection)
            os.chown(sbx.audit_log_path, 0, 0)
            os.chmod(sbx.audit_log_path, 0o444)
            sbx.log_allow.append(r"mailward-audit.*killed with signal")
            sbx.log_allow.append(r"mailward-audit.*Fatal")
            subprocess.run(["pkill", "-KILL", "-f",
                            "mailward-auditd .*%s" % root])
            time.sleep(0.3)
        else:
            _fill(full)
        # a full log may still hold a few records in its last page: the
        # expunges work until the first refusal (bounded: 20 messages),
        # and every one after it is refused as well
        refused = b"-ERR [SYS/TEMP] Audit log unavailable: message(s) " \
            b"not expunged"
        replies = []
        sessions = 1
        for _ in range(20):
            p = pop3(sbx)
            if p.stat()[0] == 0:
                p.quit()
                break
            p.dele(1)
            try:
                replies.append(p.quit())
            except poplib.error_proto as e:
                replies.append(e.args[0])
            sessions += 1
            wait_session_end(sbx, "alice", count=sessions)
            if replies[-1] == refused and replies.count(refused) == 2:
                break
        done = replies.index(refused)
        assert replies == [b"+OK Logging out, messages deleted."] * done + \
            [refused] * 2, replies
        gone = 20 - sbx.maildir_count("alice")
        assert gone == done
        if fault == "read-only":
            # nothing can be made durable: nothing is expunged
            assert gone == 0
        sbx.wait_log(r"Audit log unavailable, expunge refused")
        sbx.stop(check=False)
        # the invariant: no message is gone without a durable intent
        intents = [r for r in sbx.audit_records()
                   if r["event"] == "expunge_intent"]
        assert len(intents) >= gone, (gone, intents)
    finally:
        subprocess.run(["umount", "-l", full])


def test_concurrency_one_user_100_sessions(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"pw%d" % n: "dev%d" % n for n in range(4)}},
        audit=True, log_debug=False)
    sbx.deliver("alice", [make_message(i) for i in range(40)])

    def session(k):
        if k % 4 == 3:
            i = imap(sbx)
            i.select("INBOX")
            i.fetch("1:3", "(BODY[])")
            i.store(str(1 + k // 4 % 10), "+FLAGS", "\\Deleted")
            i.expunge()
            i.logout()
            return "imap"
        p = pop3(sbx, password="pw%d" % (k % 4))
        n = p.stat()[0]
        if n:
            try:
                p.retr(1)
                p.dele(min(n, 2))
            except poplib.error_proto as e:
                # expunged meanwhile by a concurrent IMAP session: Dovecot
                # answers "-ERR Message 1 expunged."
                assert re.fullmatch(rb"-ERR Message \d+ expunged\.",
                                    e.args[0]), e
        p.quit()
        return "pop3"

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        results = list(ex.map(session, range(100), timeout=180))
    assert time.time() - t0 < 180
    assert len(results) == 100
    time.sleep(1)
    # IMAP expunges are the only removals (leave-on-server)
    remaining = sbx.maildir_count("alice")
    assert 40 - 25 <= remaining <= 40
    for d in sbx.doveadm_json("mailward", "devices", "-u", "alice"):
        assert int(d["sessions"]) >= 1
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0, out
    recs = sbx.audit_records()
    assert sum(1 for r in recs if r["event"] == "login") == 100
    # several sessions may expunge the same message concurrently (IMAP
    # EXPUNGE removes every \Deleted message): each records its request,
    # the message is gone once
    done = {r["msg_guid"] for r in recs if r["event"] == "expunge_done"}
    assert len(done) == 40 - remaining, done


def test_concurrency_many_users_200_sessions(sandbox_factory):
    users = {"u%02d" % n: {"mailward_pop3_policy":
                           ["client", "leave-on-server",
                            "expunge-after-retrieval"][n % 3]}
             for n in range(20)}
    sbx = sandbox_factory(users=users, log_debug=False)
    for u in users:
        sbx.deliver(u, [make_message(i) for i in range(20)])

    # Sessions of different users run at once; one user's sessions take
    # turns (as Dovecot's pop3_lock_session would make them), so each of
    # them removes a different message and the counts below are exact.
    locks = {u: threading.Lock() for u in users}

    def session(k):
        u = "u%02d" % (k % 20)
        with locks[u]:
            p = pop3(sbx, u)
            if p.stat()[0]:
                p.retr(1)
                p.dele(1)
            p.quit()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as ex:
        list(ex.map(session, range(200), timeout=240))
    time.sleep(1)
    for n, u in enumerate(sorted(users)):
        count = sbx.maildir_count(u)
        if n % 3 == 1:
            assert count == 20, u          # leave-on-server keeps all
        else:
            assert count == 10, u          # 10 sessions each removed one


def test_hostile_labels_audit_and_csv(sandbox_factory, tmp_path):
    evil = '=HYPERLINK("http://x")\x1b[31m"q"'
    sbx = sandbox_factory(users={"alice": {}}, audit=True,
                          app_passwords={"alice": {"pw": evil.replace(
                              " ", "_")}})
    sbx.deliver("alice", [make_message(1)])
    p = pop3(sbx, password="pw")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice")
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0, out
    raw = open(sbx.audit_log_path, "rb").read()
    assert b"\x1b" not in raw                     # escaped, no terminal codes
    assert all(line.startswith(b"{") for line in raw.splitlines())
    r = subprocess.run([mwharness.AUDIT_CLI, "export", "--csv",
                        sbx.audit_log_path], capture_output=True)
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "\x1b" not in text
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    col = header.index("device_label")
    labels = [row[col] for row in rows[1:] if row[col]]
    assert labels, rows[:3]
    for label in labels:
        # formula injection defused
        assert not label.startswith(("=", "+", "-", "@")), label
