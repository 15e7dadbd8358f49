"""Records that gate no act are acknowledged once written, not synced
(issue 14): a flush request whose id begins with '~' is answered after
the records are in the log file, without an fdatasync() per request; the
writer syncs them within a second or with the next durable flush. The
expunge path keeps its durable flush (audit before act). See
docs/audit-log.md, "Writer protocol" and "Durability"."""

import os
import re
import signal
import subprocess
import time

from mwharness import make_message, pop3
from test_audit_writer import AuditConn, body, verify_pass, wait_records, \
    wait_writer


class WriterTrace:
    """strace of the writer's reads, writes and fdatasync() calls, in
    the order it made them (one process, one thread)."""

    def __init__(self, pid, path):
        self.path = path
        self.st = subprocess.Popen(
            ["strace", "-e", "trace=read,write,fdatasync",
             "-s", "65536", "-o", str(path), "-p", str(pid)],
            stderr=subprocess.PIPE, text=True)
        # attached once strace says so
        line = self.st.stderr.readline()
        assert "attached" in line, line

    def stop(self):
        self.st.send_signal(signal.SIGINT)
        self.st.wait(30)
        return self.path.read_text().splitlines()


def _events(lines):
    """[(kind, text)]: ('req', line read), ('ack', reply written),
    ('sync', fdatasync)"""
    out = []
    for l in lines:
        if l.startswith("fdatasync("):
            out.append(("sync", l))
        elif l.startswith("read("):
            out.append(("req", l))
        elif l.startswith("write(") and '"F\\t' in l:
            out.append(("ack", l))
    return out


def _syncs_between(evs, req_pat, ack_pat):
    """fdatasync calls after the read matching req_pat and before the
    write of the ack matching ack_pat."""
    start = next(i for i, (k, t) in enumerate(evs)
                 if k == "req" and re.search(req_pat, t))
    end = next(i for i, (k, t) in enumerate(evs)
               if i > start and k == "ack" and re.search(ack_pat, t))
    return sum(1 for k, _ in evs[start:end] if k == "sync")


def test_written_flush_acked_before_sync(sandbox_factory, tmp_path):
    """F ~1 is answered once its record is written (no fdatasync before
    the answer); F 2 after it is answered after an fdatasync, which also
    covers the first. A writer killed (SIGKILL) after answering F ~N
    does not lose the record: it is in the file, the chain verifies."""
    sbx = sandbox_factory(audit=True)
    sbx.log_allow.append(r"service\(mailward-audit\): child \d+ killed "
                         r"with signal 9")
    wait_records(sbx, lambda r: len(r) >= 2)
    c = AuditConn(sbx.audit_socket_path)
    # a durable flush first: nothing written-only is waiting for a sync
    assert c.flush("0")[0] == ["OK"]
    pid = sbx.audit_writer_pids()[0]
    tr = WriterTrace(pid, tmp_path / "writer.trace")
    try:
        c.event(body("lazy", uid=1))
        assert c.flush("~1") == (["OK"], [])
        recs = [r for r in sbx.audit_records() if r.get("user") == "lazy"]
        assert [r["uid"] for r in recs] == [1]
        c.event(body("lazy", uid=2))
        assert c.flush("2") == (["OK"], [])
    finally:
        evs = _events(tr.stop())
    assert _syncs_between(evs, r"F\\t~1\\n", r'"F\\t~1\\tOK') == 0, evs
    assert _syncs_between(evs, r"F\\t2\\n", r'"F\\t2\\tOK') >= 1, evs

    c.event(body("lazy", uid=3))
    assert c.flush("~3") == (["OK"], [])
    os.kill(pid, signal.SIGKILL)
    c.close()
    wait_writer(sbx, old=[pid])

    def restarted(recs):
        i = [n for n, x in enumerate(recs)
             if x.get("user") == "lazy" and x.get("uid") == 3]
        return i and any(x["event"] == "writer_start" for x in recs[i[0]:])
    wait_records(sbx, restarted)
    recs = [r for r in sbx.audit_records() if r.get("user") == "lazy"]
    assert [r["uid"] for r in recs] == [1, 2, 3]
    verify_pass(sbx)


def test_sessions_flush_written_expunge_durable(sandbox_factory, tmp_path):
    """A POP3 session that expunges nothing sends its records (login,
    retr, logout) with a written-only flush, answered without an
    fdatasync; a session under expunge-after-retrieval sends its
    expunge intents with a durable flush, answered after an fdatasync,
    before the expunge (its expunge_done comes after the intent)."""
    users = {"leave": {"mailward_pop3_policy": "leave-on-server"},
             "retr": {"mailward_pop3_policy": "expunge-after-retrieval"}}
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [make_message(1, msgid="<%s@test.invalid>" % u)])
    wait_records(sbx, lambda r: len(r) >= 2)
    # nothing written-only waits for a sync (a durable flush clears it)
    c = AuditConn(sbx.audit_socket_path)
    assert c.flush("0")[0] == ["OK"]
    c.close()
    pid = sbx.audit_writer_pids()[0]
    tr = WriterTrace(pid, tmp_path / "writer.trace")
    try:
        p = pop3(sbx, "leave")
        p.retr(1)
        p.quit()
        wait_records(sbx, lambda r: any(x["event"] == "logout" and
                                        x.get("user") == "leave"
                                        for x in r))
        p = pop3(sbx, "retr")
        p.retr(1)
        p.quit()
        wait_records(sbx, lambda r: any(x["event"] == "logout" and
                                        x.get("user") == "retr" for x in r))
    finally:
        evs = _events(tr.stop())
    reqs = [t for k, t in evs
            if k == "req" and re.search(r'(?:"|\\n)F\\t', t)]
    leave = [t for t in reqs if '\\"user\\":\\"leave\\"' in t]
    assert leave and all(re.search(r"\\nF\\t~\d+\\n", t) for t in leave), \
        reqs
    assert _syncs_between(evs, r'user\\":\\"leave\\".*\\nF\\t~\d+\\n',
                          r'"F\\t~\d+\\tOK') == 0, evs
    intent = [t for t in reqs if "expunge_intent" in t]
    assert len(intent) == 1 and re.search(r"\\nF\\t\d+\\n", intent[0]), reqs
    m = re.search(r"\\nF\\t(\d+)\\n", intent[0])
    assert _syncs_between(evs, r"expunge_intent",
                          r'"F\\t%s\\tOK' % m.group(1)) >= 1, evs
    names = [r["event"] for r in sbx.audit_records()
             if r.get("user") == "retr"]
    assert names.index("expunge_intent") < names.index("expunge_done")
    assert sbx.audit_writer_pids() == [pid]
    verify_pass(sbx)
