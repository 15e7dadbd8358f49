"""The audit writer service (mailward-auditd) in a real sandbox Dovecot,
driven over its unix socket by Python protocol clients and by the
plugin's C client (tests/audit-client-test)."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest

import mwharness

CLIENT_TEST = os.path.join(mwharness.BUILD, "tests", "audit-client-test")


class AuditConn:
    """One protocol connection (docs/audit-log.md, "Writer protocol")."""

    def __init__(self, path, timeout=15, handshake=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.rfile = self.sock.makefile("rb")
        self.version = self.readline()
        if handshake:
            self.send(b"VERSION\tmailward-audit\t1\t0")

    def send(self, line):
        self.sock.sendall(line + b"\n")

    def event(self, body):
        self.send(b"E\t" + (body.encode() if isinstance(body, str)
                            else body))

    def readline(self):
        line = self.rfile.readline()
        if not line:
            raise EOFError("writer closed the connection")
        assert line.endswith(b"\n"), line
        return line[:-1].decode()

    def flush(self, fid="1"):
        """Sends F and returns (reply fields of the ack, [R lines])."""
        self.send(b"F\t" + fid.encode())
        return self.flush_reply(fid)

    def flush_reply(self, fid):
        """Reads up to the ack of F fid: (its reply fields, [R lines])."""
        rejects = []
        while True:
            line = self.readline()
            fields = line.split("\t")
            if fields[0] == "R":
                rejects.append(fields)
            elif fields[0] == "F" and fields[1] == fid:
                return fields[2:], rejects
            else:
                raise AssertionError("unexpected reply %r" % line)

    def close(self):
        self.rfile.close()
        self.sock.close()


def body(user, event="retr", uid=None, service="pop3", session="s1"):
    b = '"service":"%s","session":"%s","event":"%s","user":"%s"' % (
        service, session, event, user)
    if uid is not None:
        b += ',"uid":%d' % uid
    return b


def verify_pass(sbx):
    rc, out = sbx.audit_verify()
    assert rc == 0, out
    assert out.startswith("PASS"), out
    return out


def events(sbx, name):
    return [r for r in sbx.audit_records() if r["event"] == name]


def wait_writer(sbx, old=(), timeout=15):
    """Waits for a writer process other than the pids in old, and for
    its log to be open (a writer_start record after the old ones)."""
    deadline = time.time() + timeout
    next_poke = time.time() + 3
    while True:
        pids = [p for p in sbx.audit_writer_pids() if p not in old]
        if pids:
            return pids[0]
        if time.time() > deadline:
            raise AssertionError("no writer process:\n" +
                                 sbx.read_log()[-3000:])
        # A writer killed right after it started makes the master
        # throttle the service; it is then started again on demand
        # only: a connection to its socket is that demand.
        if time.time() > next_poke:
            next_poke = time.time() + 1
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(sbx.audit_socket_path)
            except OSError:
                pass
        time.sleep(0.05)


def wait_records(sbx, pred, timeout=15):
    deadline = time.time() + timeout
    while True:
        recs = sbx.audit_records()
        if pred(recs):
            return recs
        if time.time() > deadline:
            raise AssertionError("audit log never matched; last records: "
                                 "%r" % recs[-5:])
        time.sleep(0.05)


def run_client(sbx, *cmds, timeout=60, socket_path=None):
    r = subprocess.run([CLIENT_TEST, socket_path or sbx.audit_socket_path]
                       + list(cmds), capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines(), r.stderr


# ----- start, protocol, validation -----

def test_writer_starts_with_dovecot(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    recs = wait_records(sbx, lambda r: any(x["event"] == "writer_start"
                                           for x in r))
    assert [r["event"] for r in recs[:2]] == ["epoch", "writer_start"]
    assert recs[0]["seq"] == 1 and recs[0]["reason"] == "new-chain"
    assert all(r["host"] == "sandbox" for r in recs)
    assert len(sbx.audit_writer_pids()) == 1
    # the writer runs as its own user and owns the log
    pid = sbx.audit_writer_pids()[0]
    st = os.stat("/proc/%d" % pid)
    assert st.st_uid == mwharness.ensure_audit_user()[0]
    assert os.stat(sbx.audit_log_path).st_uid == st.st_uid
    assert os.stat(sbx.audit_log_path).st_mode & 0o077 == 0
    verify_pass(sbx)


def test_protocol_roundtrip(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    c = AuditConn(sbx.audit_socket_path)
    assert c.version == "VERSION\tmailward-audit\t1\t0"
    for uid in (1, 2, 3):
        c.event(body("bob", uid=uid))
    # an escaped newline inside a string is fine: it stays escaped
    c.event('"service":"imap","event":"fetch","user":"a\\nb"')
    ack, rejects = c.flush("x1")
    assert ack == ["OK"] and rejects == []
    # durable when acknowledged: already in the file
    recs = sbx.audit_records()
    mine = [r for r in recs if r.get("user") in ("bob", "a\nb")]
    assert [r.get("uid") for r in mine] == [1, 2, 3, None]
    assert mine[0]["service"] == "pop3" and mine[0]["session"] == "s1"
    assert mine[3]["user"] == "a\nb"
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(1, len(recs) + 1))
    # a second flush with nothing new is answered too
    ack, _ = c.flush("x2")
    assert ack == ["OK"]
    # the old 3-field VERSION line is accepted as well
    c2 = AuditConn(sbx.audit_socket_path, handshake=False)
    c2.send(b"VERSION\tmailward-audit\t1")
    c2.event(body("carol"))
    assert c2.flush("1")[0] == ["OK"]
    c.close()
    c2.close()
    verify_pass(sbx)


BAD_BODIES = [
    # chain and header fields a mail process must not set
    '"event":"retr","user":"x","epoch":7',
    '"seq":99,"event":"retr"',
    '"event":"retr","prev":"' + "0" * 64 + '"',
    '"event":"retr","mac":"' + "0" * 64 + '"',
    # a writer event
    '"event":"writer_start"',
    '"event":"seal","records":1',
    # unknown key, wrong order, wrong type, duplicate
    '"event":"retr","evil":"x"',
    '"user":"x","event":"retr"',
    '"event":"retr","uid":"12"',
    '"event":"retr","user":"a","user":"b"',
    # not canonical: whitespace, braces, optional escape
    '"event": "retr"',
    '{"event":"retr"}',
    '"event":"retr","user":"\\u0041"',
    # raw control character, missing event
    '"event":"retr","user":"a\tb"',
    '"user":"x"',
    # an over-long string
    '"event":"retr","user":"' + "u" * 300 + '"',
]


def test_invalid_bodies_rejected(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    before = sbx.audit_records()
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("good1"))
    for b in BAD_BODIES:
        c.event(b)
    c.event(body("good2"))
    ack, rejects = c.flush()
    assert ack == ["OK"]
    # one R per bad body, numbered by E line on this connection
    assert [int(r[1]) for r in rejects] == \
        list(range(2, 2 + len(BAD_BODIES)))
    assert all(len(r) == 3 and r[2] for r in rejects)
    after = sbx.audit_records()
    new = after[len(before):]
    assert [r.get("user") for r in new] == ["good1", "good2"]
    assert not any(r.get("evil") or r["seq"] == 99 for r in after)
    sbx.wait_log(r"mailward-audit: Error: client pid=\d+ uid=0: rejected "
                 r"event body #2: ", count=1)
    lines = sbx.wait_log(r"rejected event body #", count=len(BAD_BODIES))
    assert len(lines) == len(BAD_BODIES)
    # a raw newline cannot smuggle a record: the rest of the line is a
    # protocol error and ends the connection, nothing is written
    c.send(b'E\t"event":"retr","user":"x"}\n{"seq":1000,"event":"retr"')
    r = c.readline().split("\t")
    assert r[0] == "R" and r[1] == str(len(BAD_BODIES) + 3), r
    assert c.readline().startswith("ERROR\tunknown command")
    with pytest.raises(EOFError):
        c.readline()
    c.close()
    assert not any(r["seq"] == 1000 or r.get("user") == "x"
                   for r in sbx.audit_records())
    verify_pass(sbx)


def test_protocol_errors_disconnect(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    cases = [
        b"HELLO",                                   # no VERSION first
        b"VERSION\tmailward-audit\t2\t0",           # wrong major
        b"VERSION\tdict\t1\t0",                     # wrong protocol
    ]
    for first in cases:
        c = AuditConn(sbx.audit_socket_path, handshake=False)
        c.send(first)
        assert c.readline().startswith("ERROR\t")
        with pytest.raises(EOFError):
            c.readline()
        c.close()
    # unknown command, over-long line, bad flush id, NUL byte
    for line in (b"X\tfoo", b"E\t" + b"a" * 70000, b"F\t" + b"1" * 100,
                 b"F\tbad id", b"E\t\"event\":\"retr\"\0"):
        c = AuditConn(sbx.audit_socket_path)
        try:
            c.send(line)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with pytest.raises((EOFError, ConnectionResetError)):
            while True:
                reply = c.readline()
                assert reply.startswith("ERROR\t"), reply
        c.close()
    # the writer is still there and the chain is intact
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("after"))
    assert c.flush()[0] == ["OK"]
    c.close()
    verify_pass(sbx)


# ----- concurrency: one chain, group commit -----

def _client_thread(path, idx, n, results):
    try:
        c = AuditConn(path, timeout=60)
        for uid in range(1, n + 1):
            c.event(body("user%02d" % idx, uid=uid,
                         session="sess%02d" % idx))
        results[idx] = c.flush("f%d" % idx)
        c.close()
    except Exception as e:  # reported by the main thread
        results[idx] = e


def test_fifty_concurrent_clients(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    nclients, nevents = 50, 20
    results = [None] * nclients
    threads = [threading.Thread(target=_client_thread,
                                args=(sbx.audit_socket_path, i, nevents,
                                      results))
               for i in range(nclients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for r in results:
        assert r == (["OK"], []), r
    recs = sbx.audit_records()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    for i in range(nclients):
        mine = [r for r in recs if r.get("user") == "user%02d" % i]
        # all there, once each, in the order the client sent them
        assert [r["uid"] for r in mine] == list(range(1, nevents + 1))
        assert all(r["session"] == "sess%02d" % i for r in mine)
    total = [r for r in recs if r.get("user", "").startswith("user")]
    assert len(total) == nclients * nevents
    out = verify_pass(sbx)
    assert "MACs: verified; checkpoint signatures: verified" in out


def _proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_group_commit_syncs_all_input_once(sandbox_factory, tmp_path):
    """Records and a flush request that a client sent while the writer
    was busy (here: stopped) are written and synced once, however many
    input buffers they fill (issue 14: the writer synced once per 8 KB
    it read, ~6 times per expunging POP3 session)."""
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    c = AuditConn(sbx.audit_socket_path)
    assert c.flush("0")[0] == ["OK"]
    pid = sbx.audit_writer_pids()[0]
    trace = tmp_path / "writer.trace"
    st = subprocess.Popen(["strace", "-e", "trace=fdatasync", "-o",
                           str(trace), "-p", str(pid)],
                          stderr=subprocess.PIPE, text=True)
    try:
        # attached once strace says so
        assert "attached" in st.stderr.readline()
        os.kill(pid, signal.SIGSTOP)
        deadline = time.time() + 15
        while _proc_state(pid) not in ("T", "t"):
            assert time.time() < deadline, "writer did not stop"
            time.sleep(0.01)
        # ~56 KB (seven 8 KB reads of the old writer), sent at once:
        # what a socket holds for a stopped reader is counted in
        # buffers, not bytes
        n = 200
        c.sock.sendall(b"".join(
            b"E\t" + body("bulk", uid=uid,
                          session="s" + "x" * 200).encode() + b"\n"
            for uid in range(1, n + 1)) + b"F\t1\n")
        os.kill(pid, signal.SIGCONT)
        ack, rejects = c.flush_reply("1")
        assert ack == ["OK"] and rejects == []
    finally:
        os.kill(pid, signal.SIGCONT)
        st.send_signal(signal.SIGINT)
        st.wait(30)
    syncs = [l for l in trace.read_text().splitlines() if "fdatasync(" in l]
    assert len(syncs) == 1, syncs
    mine = [r for r in sbx.audit_records() if r.get("user") == "bulk"]
    assert [r["uid"] for r in mine] == list(range(1, n + 1))
    c.close()
    verify_pass(sbx)


def test_checkpoints_and_epochs_on_timer(sandbox_factory):
    """The writer's timer drives epochs and checkpoints without clients."""
    sbx = sandbox_factory(audit=True, audit_args="-e 2 -t 1")
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("tick"))
    assert c.flush()[0] == ["OK"]
    c.close()
    # (a reader can catch the writer between two lines of one write():
    # wait for the whole picture)
    recs = wait_records(sbx, lambda r: sum(x["event"] == "seal"
                                           for x in r) >= 2 and
                        max(x["epoch"] for x in r) >= 3, timeout=20)
    assert any(r["event"] == "checkpoint" for r in recs)
    verify_pass(sbx)


# ----- stop, restart, crash -----

def test_writer_restart_continues_chain(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("before", uid=1))
    assert c.flush()[0] == ["OK"]
    c.close()
    # SIGTERM to the writer, as Dovecot's master sends it: clean stop
    old = sbx.audit_writer_pids()
    assert len(old) == 1
    os.kill(old[0], signal.SIGTERM)
    # process_min_avail = 1: master starts a new writer
    wait_writer(sbx, old)
    recs = wait_records(sbx, lambda r: [x["event"] for x in r].count(
        "writer_start") == 2)
    evs = [r["event"] for r in recs]
    i = evs.index("writer_stop")
    assert evs[i:i + 5] == ["writer_stop", "checkpoint", "seal", "epoch",
                            "writer_start"]
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("after", uid=2))
    assert c.flush()[0] == ["OK"]
    c.close()
    # the whole Dovecot stopped and started again
    sbx.stop()
    recs = sbx.audit_records()
    assert recs[-1]["event"] == "seal" and recs[-1]["reason"] == "stop"
    sbx.start()
    wait_records(sbx, lambda r: [x["event"] for x in r].count(
        "writer_start") == 3)
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("restarted", uid=3))
    assert c.flush()[0] == ["OK"]
    c.close()
    recs = sbx.audit_records()
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    assert [r["uid"] for r in recs if "uid" in r] == [1, 2, 3]
    assert not events(sbx, "recovered")
    verify_pass(sbx)


def _stream_thread(path, idx, stop, acked, errors):
    """Sends events in batches until stop; records acknowledged uids;
    reconnects when the writer goes away."""
    uid = 0
    deadline = time.time() + 60
    while not stop.is_set() and time.time() < deadline:
        try:
            c = AuditConn(path, timeout=10)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            while not stop.is_set() and time.time() < deadline:
                batch = list(range(uid + 1, uid + 11))
                for u in batch:
                    c.event(body("stream%d" % idx, uid=u))
                ack, rej = c.flush(str(batch[-1]))
                assert rej == []
                if ack == ["OK"]:
                    acked.extend((idx, u) for u in batch)
                    uid = batch[-1]
                else:
                    errors.append(ack)
                    break
        except (OSError, EOFError):
            errors.append("disconnected")
        finally:
            c.close()


def test_kill9_mid_stream_recovers(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    sbx.log_allow.append(r"service\(mailward-audit\): child \d+ killed "
                         r"with signal 9")
    wait_records(sbx, lambda r: len(r) >= 2)
    stop = threading.Event()
    acked, errors = [], []
    threads = [threading.Thread(target=_stream_thread,
                                args=(sbx.audit_socket_path, i, stop, acked,
                                      errors)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        deadline = time.time() + 20
        while len(acked) < 200 and time.time() < deadline:
            time.sleep(0.02)
        assert len(acked) >= 200, errors
        old = sbx.audit_writer_pids()
        os.kill(old[0], signal.SIGKILL)
        wait_writer(sbx, old)
        n = len(acked)
        deadline = time.time() + 20
        while len(acked) < n + 200 and time.time() < deadline:
            time.sleep(0.02)
        assert len(acked) >= n + 200, errors
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads)
    sbx.wait_log(r"child \d+ killed with signal 9")
    recs = sbx.audit_records()
    logged = {(int(r["user"][6:]), r["uid"]) for r in recs
              if r.get("user", "").startswith("stream")}
    # every acknowledged record is in the log
    assert set(acked) <= logged
    # the new writer sealed the crashed epoch and started a new one
    evs = [r["event"] for r in recs]
    assert evs.count("writer_start") == 2
    seal = [r for r in recs if r["event"] == "seal"]
    assert seal and seal[0]["reason"] == "restart"
    # a torn tail, if the kill left one, was moved aside and recorded
    for r in events(sbx, "recovered"):
        assert os.path.exists(os.path.join(sbx.audit_dir,
                                           os.path.basename(r["torn_file"])))
    verify_pass(sbx)


def test_torn_tail_recovered_at_start(sandbox_factory):
    """A partial last line (a crash between write and fsync) is moved
    aside at the writer's next start and recorded."""
    sbx = sandbox_factory(audit=True)
    sbx.log_allow.append(r"service\(mailward-audit\): child \d+ killed "
                         r"with signal 9")
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("pre", uid=1))
    assert c.flush()[0] == ["OK"]
    c.close()
    old = sbx.audit_writer_pids()
    os.kill(old[0], signal.SIGKILL)
    time.sleep(0.2)
    torn = b'{"seq":9999,"time":"2026-01-01T00:00:00.000000Z","ho'
    # master may already have started the next writer: stop Dovecot
    # first so the tail is added while nobody holds the log
    sbx.stop()
    with open(sbx.audit_log_path, "ab") as f:
        f.write(torn)
    rc, out = sbx.audit_verify()
    assert rc == 4 and "PASS (with a torn tail)" in out, out
    sbx.start()
    recs = wait_records(sbx, lambda r: any(x["event"] == "recovered"
                                           for x in r))
    rec = events(sbx, "recovered")[0]
    assert rec["torn_bytes"] == len(torn)
    path = os.path.join(sbx.audit_dir, os.path.basename(rec["torn_file"]))
    with open(path, "rb") as f:
        assert f.read() == torn
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    verify_pass(sbx)


def test_writer_unavailable_fails_fast(sandbox_factory):
    """The log cannot be opened (key unreadable): F is answered FAIL at
    once; when the key is back, the writer reopens by itself."""
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    key = os.path.join(sbx.audit_writer_keys, "writer.key")
    old = sbx.audit_writer_pids()
    os.kill(old[0], signal.SIGTERM)
    wait_writer(sbx, old)
    # the new writer may have opened the log already; stop it again
    # with the key hidden
    wait_records(sbx, lambda r: [x["event"] for x in r].count(
        "writer_start") == 2)
    os.chmod(sbx.audit_writer_keys, 0o000)
    try:
        old = sbx.audit_writer_pids()
        os.kill(old[0], signal.SIGTERM)
        wait_writer(sbx, old)
        c = AuditConn(sbx.audit_socket_path, timeout=20)
        t0 = time.time()
        c.event(body("lost"))
        ack, _ = c.flush()
        assert ack[0] == "FAIL" and "unavailable" in ack[1], ack
        assert time.time() - t0 < 8
        with pytest.raises(EOFError):
            c.readline()
        c.close()
    finally:
        os.chmod(sbx.audit_writer_keys, 0o700)
    sbx.wait_log(r"mailward-audit: Error: audit log .* unavailable")
    deadline = time.time() + 15
    while True:
        c = AuditConn(sbx.audit_socket_path)
        c.event(body("back"))
        ack, _ = c.flush()
        c.close()
        if ack == ["OK"] or time.time() > deadline:
            break
        time.sleep(0.3)
    assert ack == ["OK"]
    users = [r.get("user") for r in sbx.audit_records()]
    assert "lost" not in users and "back" in users
    assert os.path.exists(key)
    verify_pass(sbx)


def test_rotation_on_sighup(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    c = AuditConn(sbx.audit_socket_path)
    c.event(body("rot", uid=1))
    assert c.flush()[0] == ["OK"]
    pid = sbx.audit_writer_pids()[0]
    os.kill(pid, signal.SIGHUP)
    line = sbx.wait_log(r"mailward-audit: Info: audit log rotated: .* -> ")
    rotated = line[0].split(" -> ")[1].strip()
    assert os.path.exists(rotated)
    # the same connection goes on, into the new file
    c.event(body("rot", uid=2))
    assert c.flush()[0] == ["OK"]
    c.close()
    assert sbx.audit_writer_pids() == [pid]
    new = sbx.audit_records()
    assert new[0]["event"] == "epoch" and new[0]["reason"] == "rotate"
    assert [r.get("uid") for r in new if r.get("user") == "rot"] == [2]
    rc, out = sbx.audit_verify(files=[rotated, sbx.audit_log_path])
    assert rc == 0 and out.startswith("PASS"), out
    rc, out = sbx.audit_verify("--partial")
    assert rc == 0, out
    # the new file alone is not a whole chain
    rc, out = sbx.audit_verify()
    assert rc == 1, out


# ----- the plugin's client library -----

def test_client_library_roundtrip(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    out, err = run_client(sbx, "queue-n:5:libuser", "queued", "flush",
                          "queued", "queue-bad", "queued",
                          "queue:logout:libuser")
    assert out == ["queued 5", "flush OK", "queued 0", "queued 0"], err
    assert "writer_start" in err and "not recorded" in err
    recs = [r for r in sbx.audit_records() if r.get("user") == "libuser"]
    # the logout was flushed by deinit
    assert [r.get("uid") for r in recs] == [1, 2, 3, 4, 5, None]
    assert recs[-1]["event"] == "logout"
    assert recs[0]["service"] == "test" and recs[0]["session"] == "t"
    verify_pass(sbx)


def test_client_library_writer_unreachable(sandbox_factory, tmp_path):
    missing = str(tmp_path / "no-such-socket")
    sbx = sandbox_factory(audit=True)
    out, err = run_client(sbx, "queue-n:3:u", "flush", "queued",
                          socket_path=missing)
    assert out[0].startswith("flush FAIL audit writer %s: connect() "
                             "failed" % missing), out
    assert out[1] == "queued 3"
    # deinit reports the loss, naming the socket
    assert "3 record(s) lost at session end" in err and missing in err


def test_client_library_full_queue_goes_to_spool(sandbox_factory, tmp_path):
    """A session whose queue fills up while the writer is away moves the
    queue to the spool instead of dropping records; with what is left at
    its end, every record reaches the log exactly once."""
    missing = str(tmp_path / "no-such-socket")
    sbx = sandbox_factory(audit=True)
    out, err = run_client(sbx, "spool:" + sbx.audit_spool,
                          "queue-n:10005:spill", "queued",
                          socket_path=missing)
    assert out == ["queued 5"], (out, err[-2000:])
    assert "queue full: 10000 record(s) moved to spool file" in err
    assert "5 record(s) kept in spool file" in err
    assert "lost" not in err and "dropping" not in err
    deadline = time.time() + 60
    while time.time() < deadline and os.listdir(sbx.audit_spool):
        time.sleep(0.2)
    assert os.listdir(sbx.audit_spool) == []
    recs = [r for r in sbx.audit_records() if r.get("user") == "spill"]
    assert sorted(r["uid"] for r in recs) == list(range(1, 10006))
    assert all("delayed" in r for r in recs)
    assert not [r for r in sbx.audit_records() if r["event"] == "dropped"]
    verify_pass(sbx)


def test_client_library_survives_restarts(sandbox_factory):
    """Records stay queued while Dovecot is down and go out when it is
    back; a connection closed by a restarted writer is reopened once."""
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    p = subprocess.Popen([CLIENT_TEST, sbx.audit_socket_path,
                          "timeout:3000",
                          "queue-n:2:keep", "flush", "wait",
                          "queue:logout:keep", "flush", "queued", "wait",
                          "flush", "queued", "wait",
                          "queue:login:keep", "flush"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "flush OK"
        assert p.stdout.readline().strip() == "waiting"
        # 1) whole Dovecot down: flush fails, the record stays queued
        sbx.stop()
        p.stdin.write("go\n")
        p.stdin.flush()
        line = p.stdout.readline().strip()
        assert line.startswith("flush FAIL audit writer %s"
                               % sbx.audit_socket_path), line
        assert p.stdout.readline().strip() == "queued 1"
        assert p.stdout.readline().strip() == "waiting"
        # 2) Dovecot back: the queued record goes out
        sbx.start()
        wait_records(sbx, lambda r: [x["event"] for x in r].count(
            "writer_start") == 2)
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "flush OK"
        assert p.stdout.readline().strip() == "queued 0"
        assert p.stdout.readline().strip() == "waiting"
        # 3) the writer restarts while the client holds a connection:
        # the next flush reconnects once and succeeds
        old = sbx.audit_writer_pids()
        os.kill(old[0], signal.SIGTERM)
        wait_writer(sbx, old)
        wait_records(sbx, lambda r: [x["event"] for x in r].count(
            "writer_start") == 3)
        p.stdin.write("go\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "flush OK"
        p.stdin.close()
        assert p.wait(30) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    recs = [r for r in sbx.audit_records() if r.get("user") == "keep"]
    assert [r["event"] for r in recs] == ["retr", "retr", "logout", "login"]
    verify_pass(sbx)


def test_disk_full_fails_and_recovers(sandbox_factory, tmp_path):
    """A full file system: the writer answers FAIL (never crashes), drops
    the unacknowledged records, and recovers by itself once there is room
    again; the chain verifies."""
    import tempfile
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    audit_dir = os.path.join(root, "audit")
    os.makedirs(audit_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0750",
                    "tmpfs", audit_dir], check=True)
    try:
        sbx = sandbox_factory(audit=True, root=root)
        wait_records(sbx, lambda r: len(r) >= 2)
        big = "x" * 250
        fields = ('"service":"pop3","session":"%s","event":"retr",'
                  '"user":"full","device":"%s","device_label":"%s",'
                  '"mailbox":"%s","uid":%d,"message_id":"%s"')
        acks = []
        for batch in range(200):
            try:
                c = AuditConn(sbx.audit_socket_path)
                for i in range(10):
                    c.event(fields % (big, big, big, big,
                                      batch * 10 + i, big))
                ack, rej = c.flush()
                assert rej == []
                c.close()
            except (OSError, EOFError) as e:
                ack = ["EXC", str(e)]
            acks.append(ack)
            if ack[0] != "OK":
                break
        assert acks[-1][0] == "FAIL", acks[-3:]
        sbx.wait_log(r"mailward-audit: Error: audit log .*: flush failed")
        # still failing fast while the disk is full
        c = AuditConn(sbx.audit_socket_path)
        c.event(body("while-full"))
        t0 = time.time()
        ack, _ = c.flush()
        assert ack[0] == "FAIL" and time.time() - t0 < 8, ack
        c.close()
        # room again: the writer reopens, recovers the torn tail
        subprocess.run(["mount", "-o", "remount,size=4m", audit_dir],
                       check=True)
        deadline = time.time() + 20
        while True:
            c = AuditConn(sbx.audit_socket_path)
            c.event(body("after-full"))
            ack, _ = c.flush()
            c.close()
            if ack == ["OK"] or time.time() > deadline:
                break
            time.sleep(0.3)
        assert ack == ["OK"]
        recs = sbx.audit_records()
        users = [r.get("user") for r in recs]
        assert "after-full" in users and "while-full" not in users
        assert len(sbx.audit_writer_pids()) == 1
        verify_pass(sbx)
        sbx.stop()
    finally:
        subprocess.run(["umount", "-l", audit_dir])
