"""An outage of the audit writer loses no record and no policy decision
(issue 17 item 1). Real POP3/IMAP sessions run while the writer is away
(its socket closed to mail processes, or the writer killed and unable to
open its log); their records wait in the spool and enter the chain once
the writer is back, marked delayed with their original time, exactly
once; policy expunges refused meanwhile stay pending and are carried out
by the next session and by doveadm mailward expunge -A."""
import os
import shutil
import signal
import time

from mwharness import make_message, pop3, imap, imap_id, wait_session_end


def spool_files(sbx):
    return sorted(os.listdir(sbx.audit_spool))


def wait_for(pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def pending(sbx, user):
    rows = sbx.doveadm_json("mailward", "state", "-u", user)
    return sum(int(r["pending_expunge"]) for r in rows)


def session_key(r):
    return (r.get("session"), r["event"], r.get("uid"), r.get("mailbox"))


def run_outage_sessions(sbx, tag):
    """POP3 expunge-after-retrieval (two users) and IMAP sessions while
    the writer is away. Returns the sessions' ids by user."""
    for u in ("pr_" + tag, "pa_" + tag):
        p = pop3(sbx, u)
        p.retr(1)
        p.retr(2)
        p.quit()
        wait_session_end(sbx, u)
    i = imap(sbx, "ic_" + tag)
    imap_id(i, ["name", "OutageClient"])
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.logout()


def check_back(sbx, tag, before):
    """After the writer is back: the spool is drained, every record of the
    outage sessions is in the log once, delayed, with its original time."""
    assert wait_for(lambda: spool_files(sbx) == []), spool_files(sbx)
    recs = [r for r in sbx.audit_records() if r["seq"] > before and
            r.get("user", "").endswith("_" + tag)]
    delayed = [r for r in recs if "delayed" in r]
    for u, service, events in (
            ("pr_" + tag, "pop3", ["login", "retr", "retr",
                                   "expunge_intent", "expunge_intent",
                                   "expunge_rollback", "expunge_rollback",
                                   "logout"]),
            ("pa_" + tag, "pop3", ["login", "retr", "retr",
                                   "expunge_intent", "expunge_intent",
                                   "expunge_rollback", "expunge_rollback",
                                   "logout"]),
            ("ic_" + tag, "imap", ["login", "fetch", "logout"])):
        mine = [r for r in delayed if r["user"] == u and
                r["service"] == service and
                not r["event"].startswith("device_")]
        assert [r["event"] for r in mine if r["event"] != "state_error"] \
            == events, (u, [r["event"] for r in mine])
        keys = [session_key(r) for r in mine]
        assert len(keys) == len(set(keys)), keys     # exactly once
        for r in mine:
            assert r["delayed"] < r["time"], r
            name, line = r["spool"].rsplit(":", 1)
            assert int(line) >= 2 and not name.startswith("."), r
    return delayed


def stop_writers(sbx, quiet=1.0, limit=15.0):
    """SIGSTOPs the sandbox's writers until none new has appeared for
    `quiet` seconds (at most `limit`): a writer the master was starting
    for the deliveries' last connection may exec after a first look (seen
    under load), and would then take the spool files. Returns their
    pids."""
    stopped = []
    start = last_new = time.monotonic()
    while time.monotonic() - start < limit:
        new = [p for p in sbx.audit_writer_pids() if p not in stopped]
        for pid in new:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        if new:
            last_new = time.monotonic()
        elif time.monotonic() - last_new >= quiet:
            break
        time.sleep(0.1)
    return stopped


def test_writer_away_records_spooled_and_expunges_pending(sandbox_factory):
    users = {}
    for tag in ("a", "b"):
        users["pr_" + tag] = {"mailward_pop3_policy":
                              "expunge-after-retrieval"}
        users["pa_" + tag] = {"mailward_pop3_policy":
                              "expunge-after-retrieval"}
        users["ic_" + tag] = {}
    sbx = sandbox_factory(users=users, audit=True)
    # the writer is killed on purpose in the second outage
    sbx.log_allow.append(
        __import__("re").compile(r"mailward-audit.*killed with signal 9"))
    for u in users:
        sbx.deliver(u, [make_message(i, msgid="<%s-%d@o.invalid>" % (u, i))
                        for i in (1, 2, 3)])

    # --- outage a: the writer stopped (its socket refuses mail processes,
    # so none is started on demand; one still running from the deliveries
    # is stopped with SIGSTOP: it would take the spool files, which it
    # looks for every second, while they are looked at here)
    before = max([r["seq"] for r in sbx.audit_records()] + [0])
    os.chmod(sbx.audit_socket_path, 0)
    stopped = stop_writers(sbx)
    try:
        run_outage_sessions(sbx, "a")
        sbx.wait_log(r"audit: \d+ record\(s\) kept in spool file", count=3)
        # nothing reached the log; the refused policy expunges are kept
        # and pending (not hidden and forgotten)
        assert not [r for r in sbx.audit_records()
                    if r.get("user", "").endswith("_a")]
        for u in ("pr_a", "pa_a"):
            assert sbx.maildir_count(u) == 3, u
            assert pending(sbx, u) == 2, u
        # mail processes could add files but not list them
        assert len(spool_files(sbx)) == 3
        for f in spool_files(sbx):
            st = os.stat(os.path.join(sbx.audit_spool, f))
            assert st.st_mode & 0o777 == 0o640
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        os.chmod(sbx.audit_socket_path, 0o666)
    check_back(sbx, "a", before)

    # --- outage b: the writer killed, and its restart cannot open the log
    key = os.path.join(sbx.audit_writer_keys, "writer.key")
    moved = key + ".away"
    before = max([r["seq"] for r in sbx.audit_records()] + [0])
    shutil.move(key, moved)
    try:
        for pid in sbx.audit_writer_pids():
            os.kill(pid, signal.SIGKILL)
        run_outage_sessions(sbx, "b")
        sbx.wait_log(r"audit: \d+ record\(s\) kept in spool file", count=6)
        for u in ("pr_b", "pa_b"):
            assert sbx.maildir_count(u) == 3, u
            assert pending(sbx, u) == 2, u
    finally:
        shutil.move(moved, key)
    check_back(sbx, "b", before)

    # --- the pending expunges are carried out once the writer is back:
    # by the user's next session ...
    for tag in ("a", "b"):
        p = pop3(sbx, "pr_" + tag)
        p.quit()
    wait_session_end(sbx, "pr_b", count=2)
    # ... and by doveadm mailward expunge -A
    sbx.doveadm("mailward", "expunge", "-A")
    for tag in ("a", "b"):
        for u in ("pr_" + tag, "pa_" + tag):
            assert sbx.maildir_count(u) == 1, u
            assert pending(sbx, u) == 0, u
            done = [r for r in sbx.audit_records() if r.get("user") == u
                    and r["event"] == "expunge_done"]
            assert sorted(r["uid"] for r in done) == [1, 2], (u, done)
            assert all("delayed" not in r for r in done)
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def test_spool_replay_visible_bad_input_rejected(sandbox_factory):
    """The writer's side of the spool: a file taken twice (as after a
    writer crash between appending its records and removing it) gives
    copies with the same spool reference and original time; a line that
    fails the body check is dropped and logged; a file that is not a
    spool file is moved aside. The chain verifies."""
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    st = os.stat(sbx.audit_spool)
    auid, agid = st.st_uid, st.st_gid
    name = "20260101T000000.000001Z.1.0011223344556677"
    orig = "2026-01-01T00:00:00.000001Z"
    content = ("mailward-audit-spool 1\n"
               "%s\t\"service\":\"pop3\",\"session\":\"s1\",\"event\":"
               "\"retr\",\"outcome\":\"ok\",\"user\":\"alice\",\"uid\":7\n"
               "%s\t\"event\":\"seal\",\"records\":0\n" % (orig, orig))

    def put(fname, data):
        tmp = os.path.join(sbx.audit_spool, ".tmp." + fname)
        with open(tmp, "w") as f:
            f.write(data)
        os.chown(tmp, sbx.uid, agid)
        os.chmod(tmp, 0o640)
        os.rename(tmp, os.path.join(sbx.audit_spool, fname))

    def taken():
        return [r for r in sbx.audit_records()
                if r.get("spool") == name + ":2"]

    put(name, content)
    assert wait_for(lambda: len(taken()) == 1), taken()
    assert wait_for(lambda: name not in spool_files(sbx))
    put(name, content)
    assert wait_for(lambda: len(taken()) == 2), taken()
    a, b = taken()
    assert a["seq"] < b["seq"] and a["delayed"] == b["delayed"] == orig
    assert a["uid"] == b["uid"] == 7 and a["user"] == "alice"
    # the writer event in line 3 was never added
    assert not [r for r in sbx.audit_records()
                if r.get("spool", "").endswith(":3")]
    sbx.wait_log(r"mailward-audit: Error: spool .*%s line 3: rejected"
                 % name, count=2)
    put("junk", "hello\n")
    assert wait_for(lambda: ".bad.junk" in spool_files(sbx)), \
        spool_files(sbx)
    sbx.wait_log(r"spool .*junk: not a complete spool file")
    # a file the writer cannot read is logged once and left alone (no
    # error every second)
    put("unreadable", content)
    os.chmod(os.path.join(sbx.audit_spool, "unreadable"), 0o600)
    sbx.wait_log(r"spool .*unreadable: open failed: Permission denied")
    put(name + "x", content)      # taken by a later pass
    assert wait_for(lambda: name + "x" not in spool_files(sbx))
    log = sbx.read_log()
    assert log.count("unreadable: open failed") == 1, log[-3000:]
    assert "unreadable" in spool_files(sbx)
    assert auid == os.stat(sbx.audit_spool).st_uid
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def test_log_disk_full_sessions_spooled(sandbox_factory):
    """The writer's log on a full file system during real POP3 and IMAP
    sessions: their records wait in the spool (on another file system),
    the refused policy expunges stay pending, and once there is room
    again every record is in the log once and the expunges happen."""
    import subprocess
    import tempfile
    from test_audit_disk_full import fill
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    audit_dir = os.path.join(root, "audit")
    os.makedirs(audit_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0750",
                    "tmpfs", audit_dir], check=True)
    try:
        users = {"pr": {"mailward_pop3_policy": "expunge-after-retrieval"},
                 "ic": {}}
        sbx = sandbox_factory(users=users, audit=True, root=root)
        for u in users:
            sbx.deliver(u, [make_message(i) for i in (1, 2, 3)])
        assert wait_for(lambda: len(sbx.audit_records()) >= 2)
        ack = fill(sbx)
        assert ack[0] == "FAIL" and "No space left" in ack[1], ack
        p = pop3(sbx, "pr")
        p.retr(1)
        p.retr(2)
        p.quit()
        wait_session_end(sbx, "pr")
        i = imap(sbx, "ic")
        imap_id(i, ["name", "FullDisk"])
        i.select("INBOX")
        i.fetch("1", "(BODY[])")
        i.logout()
        sbx.wait_log(r"audit: \d+ record\(s\) kept in spool file", count=2)
        assert sbx.maildir_count("pr") == 3 and pending(sbx, "pr") == 2
        subprocess.run(["mount", "-o", "remount,size=8m", audit_dir],
                       check=True)
        assert wait_for(lambda: spool_files(sbx) == [], timeout=30), \
            spool_files(sbx)
        recs = [r for r in sbx.audit_records()
                if r.get("user") in ("pr", "ic") and "delayed" in r]
        keys = [session_key(r) for r in recs]
        assert len(keys) == len(set(keys)), keys
        events = sorted(r["event"] for r in recs
                        if not r["event"].startswith("device_"))
        assert events == sorted(
            ["login", "retr", "retr", "expunge_intent", "expunge_intent",
             "expunge_rollback", "expunge_rollback", "logout",
             "login", "fetch", "logout"]), events
        p = pop3(sbx, "pr")
        p.quit()
        wait_session_end(sbx, "pr", count=2)
        assert sbx.maildir_count("pr") == 1 and pending(sbx, "pr") == 0
        sbx.stop(check=True)
        rc, out = sbx.audit_verify()
        assert rc == 0 and "PASS" in out, out
    finally:
        subprocess.run(["umount", "-l", audit_dir])


def test_slow_writer_records_spooled(sandbox_factory):
    """A writer too slow to answer (stopped with SIGSTOP) during a real
    POP3 session: the policy expunge is refused after the client's
    timeout, the session's records go to the spool and the expunge stays
    pending; when the writer goes on, every record is in the log (a
    record it had received before the timeout may also come from the
    spool: that copy is marked delayed, as documented), the chain
    verifies and the next session carries out the expunge."""
    users = {"slow": {"mailward_pop3_policy": "expunge-after-retrieval"}}
    sbx = sandbox_factory(users=users, audit=True)
    sbx.deliver("slow", [make_message(i) for i in (1, 2)])
    assert wait_for(lambda: len(sbx.audit_records()) >= 2)
    pids = sbx.audit_writer_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        p = pop3(sbx, "slow")
        p.retr(1)
        p.quit()
        wait_session_end(sbx, "slow")
        sbx.wait_log(r"audit: \d+ record\(s\) kept in spool file",
                     timeout=30)
        assert sbx.maildir_count("slow") == 2 and pending(sbx, "slow") == 1
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert wait_for(lambda: spool_files(sbx) == [], timeout=30)
    recs = [r for r in sbx.audit_records() if r.get("user") == "slow"]
    live = {session_key(r) for r in recs if "delayed" not in r}
    delayed = [session_key(r) for r in recs if "delayed" in r]
    # from the spool: each record once; a record also in the log from
    # before the timeout is the same event, once live and once delayed
    assert len(delayed) == len(set(delayed)), delayed
    events = sorted(k[1] for k in set(delayed) | live
                    if not k[1].startswith("device_"))
    assert events == sorted(["login", "retr", "expunge_intent",
                             "expunge_rollback", "logout"]), events
    p = pop3(sbx, "slow")
    p.quit()
    wait_session_end(sbx, "slow", count=2)
    assert sbx.maildir_count("slow") == 1 and pending(sbx, "slow") == 0
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def expected_replays(log_path):
    """The replays of docs/audit-log.md §8 computed from the log's lines:
    a spooled record whose spool value an earlier record had, and a
    record not from the spool whose body (the members between host and
    delayed/epoch) a spooled record has; the later copy is the replay."""
    import json
    import re
    rx = re.compile(rb'^\{"seq":(\d+),"time":"[^"]*","host":"[^"]*"(.*?)'
                    rb'(,"delayed":"[^"]*","spool":"[^"]*")?,"epoch":')
    recs = []
    with open(log_path, "rb") as f:
        for line in f.read().splitlines():
            m = rx.match(line)
            if m and b'"session":' in m.group(2):
                recs.append((int(m.group(1)), m.group(2),
                             json.loads(line).get("spool")))
    found, spools, bodies = {}, {}, {}
    for seq, body, spool in recs:
        if spool is None:
            continue
        if spool in spools:
            found.setdefault(seq, (spools[spool], True))
        else:
            spools[spool] = seq
            bodies.setdefault(body, seq)
    for seq, body, spool in recs:
        if spool is None and body in bodies:
            a, b = sorted((seq, bodies[body]))
            found.setdefault(b, (a, False))
    return [{"seq": s, "of_seq": o, "same_spool": same}
            for s, (o, same) in sorted(found.items())]


def test_verify_reports_replayed_spool_records(sandbox_factory, tmp_path):
    """A spool file drained twice (as after a writer crash between
    appending its records and removing it) and records that came both
    over the socket and from the spool are reported by verify as replays
    naming the seqs (a finding, not a failure: delivery is at least
    once; attack review 5 finding 8)."""
    import json
    import subprocess
    import mwharness
    users = {"slow": {"mailward_pop3_policy": "expunge-after-retrieval"}}
    sbx = sandbox_factory(users=users, audit=True)
    sbx.deliver("slow", [make_message(i) for i in (1, 2)])
    assert wait_for(lambda: len(sbx.audit_records()) >= 2)
    pids = sbx.audit_writer_pids()
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        p = pop3(sbx, "slow")
        p.retr(1)
        p.quit()
        wait_session_end(sbx, "slow")
        sbx.wait_log(r"audit: \d+ record\(s\) kept in spool file",
                     timeout=30)
        names = [n for n in spool_files(sbx) if not n.startswith(".")]
        assert len(names) == 1, names
        path = os.path.join(sbx.audit_spool, names[0])
        with open(path, "rb") as f:
            data = f.read()
        st = os.stat(path)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert wait_for(lambda: spool_files(sbx) == [], timeout=30)
    n_spooled = len([r for r in sbx.audit_records() if "spool" in r])
    assert n_spooled > 0
    # the same file again: its records are added a second time
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, st.st_mode & 0o777)
    assert wait_for(lambda: len([r for r in sbx.audit_records()
                                 if "spool" in r]) == 2 * n_spooled,
                    timeout=30)
    sbx.stop(check=True)
    want = expected_replays(sbx.audit_log_path)
    assert sum(x["same_spool"] for x in want) == n_spooled, want
    key = os.path.join(sbx.audit_keys, "verify.key")
    r = subprocess.run([mwharness.AUDIT_CLI, "verify", "--json", "--key",
                        key, sbx.audit_log_path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(r.stdout)
    assert res["status"] == "PASS"
    assert res["replays"] == len(want) and res["replayed"] == want, \
        (res, want)
    r = subprocess.run([mwharness.AUDIT_CLI, "verify", "--key", key,
                        sbx.audit_log_path], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("PASS"), r.stdout
    line = [l for l in r.stdout.splitlines() if l.startswith("replayed:")]
    assert line == ["replayed: %d record(s) the log holds twice "
                    "(at-least-once delivery from the spool, not a "
                    "failure: count each event once): " % len(want) +
                    ", ".join("seq %d = seq %d (%s)" % (
                        x["seq"], x["of_seq"], "same spool"
                        if x["same_spool"] else
                        "same record, one from the spool")
                        for x in want)], r.stdout
