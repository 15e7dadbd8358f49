"""bench/profile.py: deterministic per-session costs of mailward against
plain Dovecot (issue 14): system calls (strace) and instructions
(callgrind). See bench/profile.py's help and bench/README.md."""

import argparse
import collections
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import mwharness

from . import clients, lines, mailgen, measure

PW = mwharness.PASSWORD
DOVECOT_LIBEXEC = "/usr/lib/dovecot"

LOADS = {
    # name: (session function, port attribute, user, messages)
    "pop3-leave": (lambda p, u: clients.pop3_session(p, u, PW), "pop3_port",
                   "pl00", 20),
    "pop3-client": (lambda p, u: clients.pop3_session(p, u, PW), "pop3_port",
                    "pc00", 20),
    "login-pop3": (lambda p, u: clients.pop3_login(p, u, PW), "pop3_port",
                   "pl01", 20),
    "login-imap": (lambda p, u: clients.imap_login(p, u, PW), "imap_port",
                   "im01", 20),
    "imap-read": (lambda p, u: clients.imap_session(p, u, PW, expunge=0),
                  "imap_port", "im00", 20),
    # as bench/run.py's listing loads: device bench-a lists a mailbox
    # whose every message bench-a and bench-b retrieved (list_session)
    "list-pop3": (lambda p, u: list_session(clients.pop3_list_session, p, u),
                  "pop3_port", "ls00", 1000),
    "list-imap": (lambda p, u: list_session(clients.imap_list_session, p, u),
                  "imap_port", "ls00", 1000),
    # list-pop3 with a view that hides: bench-a also DELEd every other
    # message (leave-on-server keeps them, hidden from bench-a only)
    "list-pop3-hiding": (lambda p, u: list_session(
        clients.pop3_list_session, p, u, hide=True), "pop3_port", "lh00",
        1000),
    # expunge-after-all-devices with a delay: device bench-a's session of
    # 20 RETR after bench-b retrieved all: each message is due later
    # (the other device's record and a's due time are read); a's state
    # before the session is restored before each (alldev_session)
    "pop3-alldev-delay": (lambda p, u: alldev_session(p, u), "pop3_port",
                          "pa00", 20),
    # the bench's imap load (STORE \Deleted + EXPUNGE of the last 2) and
    # pop3-expunge (RETR+DELE of all under expunge-after-retrieval); the
    # mailbox is topped up to 20 before each session (no session runs)
    "imap": (lambda p, u: refilled(u, clients.imap_session, p, u, PW),
             "imap_port", "ix00", 20),
    "pop3-expunge": (lambda p, u: refilled(u, clients.pop3_session, p, u,
                                           PW, dele=True),
                     "pop3_port", "pe00", 20),
    # bench/run.py's imap-mix session (policy client), one seed: the
    # same 20 commands each time
    "imap-mix": (lambda p, u: clients.imap_mix_session(
        p, u, PW, 1000, _current["mixmsg"], 20), "imap_port", "mx00", 20),
}
USERS = {"pl00": "leave-on-server", "pl01": "leave-on-server",
         "pc00": "client", "im00": None, "im01": None,
         "ls00": "leave-on-server", "pa00": "expunge-after-all-devices"}
# --clients N: N concurrent sessions of users <prefix>00..<prefix>0N-1
MAX_CLIENTS = 8
CLIENT_USERS = dict([("ix%02d" % i, None) for i in range(MAX_CLIENTS)] +
                    [("pe%02d" % i, "expunge-after-retrieval")
                     for i in range(MAX_CLIENTS)])
MIX_USERS = {"mx00": "client"}
HIDE_USERS = {"lh00": "leave-on-server"}
# the older loads' users keep their place in the fill order (their mail)
FILL_ORDER = sorted(USERS) + sorted(CLIENT_USERS) + sorted(MIX_USERS) + \
    sorted(HIDE_USERS)
USERS.update(MIX_USERS)
USERS.update(HIDE_USERS)
USERS.update(CLIENT_USERS)
EXTRA_FIELDS = {"pa00": {"mailward_expunge_delay": "30d"}}
APP_PASSWORDS = {u: {"deva-secret": "bench-a", "devb-secret": "bench-b"}
                 for u in ("pa00", "ls00", "lh00")}
# the sandbox being measured, and per (port, user) the LMDB files after
# bench-b's retrieval and bench-a's login
_current = {}
_alldev_ready = {}
_list_ready = set()
# sessions of the profiled service that loads ran besides their own
# (their callgrind files are waited for too)
_extra_sessions = [0]


def alldev_session(port, user):
    """bench-a retrieves every message, which bench-b retrieved; each
    time from the same state (a retrieved message is hidden from the
    device afterwards): the state files are put back first (no session
    is running then). The first call also runs bench-b's session and
    bench-a's login (2 more sessions)."""
    sdir = _current["sbx"].state_dir(user)
    snap = _alldev_ready.get((port, user))
    if snap is None:
        clients.pop3_session(port, user, "devb-secret")
        clients.pop3_login(port, user, "deva-secret")
        snap = {}
        for f in glob.glob(os.path.join(sdir, "*", "data.mdb")) + \
                glob.glob(os.path.join(sdir, "data.mdb")):
            with open(f, "rb") as fh:
                snap[f] = fh.read()
        _alldev_ready[(port, user)] = snap
        _extra_sessions[0] += 2
    for f, data in snap.items():
        with open(f, "r+b") as fh:
            fh.write(data)
            fh.truncate()
    return clients.pop3_session(port, user, "deva-secret")


def list_session(fn, port, user, hide=False):
    """fn (a listing session) as device bench-a; the first call has both
    devices retrieve every message first (2N records), and with hide
    bench-a DELE every other message (hidden from its listing)."""
    if (port, user) not in _list_ready:
        pop3 = _current["sbx"].pop3_port
        for pw in ("deva-secret", "devb-secret"):
            clients.pop3_retr_all_pipelined(pop3, user, pw)
        if hide:
            clients.pop3_dele_every(pop3, user, "deva-secret")
        _list_ready.add((port, user))
        if port == pop3:
            _extra_sessions[0] += 3 if hide else 2
    return fn(port, user, "deva-secret")


def refilled(user, fn, *args, **kwargs):
    """fn(*args) after the user's mailbox was topped up to its size (the
    same messages of the generator again, new files)."""
    sbx, gen = _current["sbx"], _current["gen"]
    want = LOADS_BY_USER.get(user, 20)
    missing = want - mailgen.maildir_count(sbx, user)
    if missing > 0:
        idx = FILL_ORDER.index(user)
        mailgen.deliver(sbx, user, gen.mailbox(idx, want)[:missing],
                        sbx.uid, sbx.gid)
    return fn(*args, **kwargs)


def make_sandbox(name, extra_conf=""):
    users = {u: dict({"mailward_pop3_policy": p} if p else {},
                     **EXTRA_FIELDS.get(u, {}))
             for u, p in USERS.items()}
    _current["sbx"] = mwharness.Sandbox(
        users=users, plugin={}, log_debug=False,
        mail_plugins=(name != "plain"), audit=(name == "mailward+audit"),
        app_passwords=APP_PASSWORDS, extra_conf=extra_conf)
    return _current["sbx"]


def fill(sbx, gen):
    _current["gen"] = gen
    _current["mixmsg"] = next(iter(gen.small(1))).replace(b"\n", b"\r\n")
    for i, u in enumerate(FILL_ORDER):
        n = LOADS_BY_USER.get(u, 20)
        msgs = gen.small(n) if u.startswith(("ls", "lh")) else \
            gen.mailbox(i, n)
        mailgen.deliver(sbx, u, msgs, sbx.uid, sbx.gid)


LOADS_BY_USER = {u: v[3] for v in LOADS.values() for u in USERS
                 if u[:2] == v[2][:2]}


def master_pid(sbx):
    return int(open(os.path.join(sbx.dir, "run", "master.pid")).read())


def quiesce(sbx):
    cpu = measure.ServerCPU(master_pid(sbx))
    cpu.wait_quiescent(10)


SYSCALL = re.compile(r"^(\d+)\s+(?:\d+:\d+:\d+\.\d+\s+)?"
                     r"(?:<\.\.\. (\w+) resumed>|(\w+)\()")


def parse_trace(path):
    """{program: Counter(syscall)} and {program: number of processes}."""
    prog = {}
    counts = collections.defaultdict(collections.Counter)
    procs = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            m = SYSCALL.match(line)
            if not m:
                continue
            pid = int(m.group(1))
            if m.group(2):      # "resumed" halves are not new calls
                continue
            name = m.group(3)
            if name == "execve" and "= 0" in line[-12:] or (
                    name == "execve" and '"' in line):
                em = re.search(r'execve\("([^"]+)"', line)
                if em:
                    p = os.path.basename(em.group(1))
                    if prog.get(pid) != p:
                        prog[pid] = p
                        procs[p] += 1
            counts[prog.get(pid, "master/forked")][name] += 1
    return counts, procs


def writer_pid(sbx):
    """The audit writer (a child of the master), or None."""
    master = str(master_pid(sbx))
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except (OSError, IndexError):
            continue
        if ppid == master and b"mailward-auditd" in cmd:
            return int(d)
    return None


def run_round(args, fn, port, user):
    """One measured round: the load's session, or with --clients N, N
    sessions at once (users <prefix>00..)."""
    if args.clients <= 1:
        fn(port, user)
        return
    th = [threading.Thread(target=fn, args=(port, "%s%02d" % (user[:2], i)))
          for i in range(args.clients)]
    for t in th:
        t.start()
    for t in th:
        t.join(120)


def strace_attach(pid, out):
    return subprocess.Popen(["strace", "-f", "-qq", "-o", out, "-p",
                             str(pid)])


def run_strace(args):
    gen = mailgen.MailGen()
    results = {}
    for name in args.configs.split(","):
        sbx = make_sandbox(name)
        fill(sbx, gen)
        sbx.start()
        try:
            fn, portattr, user, _ = LOADS[args.load]
            port = getattr(sbx, portattr)
            for _ in range(args.warmup):
                run_round(args, fn, port, user)
            quiesce(sbx)
            out = os.path.join(args.dir, "%s-%s.trace" % (args.load, name))
            tracers = [strace_attach(master_pid(sbx), out)]
            wpid = writer_pid(sbx) if args.writer else None
            if wpid:
                tracers.append(strace_attach(wpid, out + ".writer"))
            time.sleep(1.0)
            for _ in range(args.sessions):
                run_round(args, fn, port, user)
            quiesce(sbx)
            time.sleep(0.3)
            for st in tracers:
                st.send_signal(signal.SIGINT)
                st.wait(30)
            results[name] = parse_trace(out)
            if wpid:
                wc, _ = parse_trace(out + ".writer")
                results[name][0]["mailward-auditd"] = sum(
                    wc.values(), collections.Counter())
        finally:
            sbx.stop(check=False)
            if not args.keep:
                shutil.rmtree(sbx.dir, ignore_errors=True)
    report_strace(args, results)


def report_strace(args, results):
    n = args.sessions * max(args.clients, 1)
    base = results.get("plain")
    print("== %s: system calls per session (%d sessions, %d at once, "
          "after %d warm-up)" % (args.load, n, max(args.clients, 1),
                                 args.warmup))
    for name, (counts, procs) in results.items():
        tot = {p: sum(c.values()) / n for p, c in counts.items()}
        print("%-16s total %.1f  %s" % (name, sum(tot.values()), "  ".join(
            "%s=%.1f" % kv for kv in sorted(tot.items()))))
        w = counts.get("mailward-auditd")
        if w:
            print("%-16s writer: %d fdatasync, %d write, %d read/recvfrom "
                  "in %d sessions (%.2f fdatasync a session)" % (
                      name, w["fdatasync"], w["write"] + w["writev"],
                      w["read"] + w["recvfrom"], n, w["fdatasync"] / n))
    if not base:
        return
    for name, (counts, procs) in results.items():
        if name == "plain":
            continue
        for p in sorted(set(counts) | set(base[0])):
            a = base[0].get(p, collections.Counter())
            b = counts.get(p, collections.Counter())
            diff = {k: (b[k] - a[k]) / n for k in set(a) | set(b)
                    if b[k] != a[k]}
            if not diff:
                continue
            print("%s vs plain, %s: %+.1f  %s" % (
                name, p, sum(diff.values()), " ".join(
                    "%s%+.1f" % (k, v) for k, v in
                    sorted(diff.items(), key=lambda kv: -abs(kv[1]))
                    if abs(v) >= 0.1)))


def callgrind_conf(outdir, service):
    args = ["/usr/bin/valgrind", "--tool=callgrind",
            "--callgrind-out-file=%s/%s.%%p.out" % (outdir, service),
            os.path.join(DOVECOT_LIBEXEC, service)]
    # 2.4: vsz_limit must be >= 1M or unlimited
    vsz = mwharness.for_line({"2.3": "0", "2.4": "unlimited"})
    return ("service %s {\n  executable = %s\n  vsz_limit = %s\n"
            "}\n" % (service, " ".join(args), vsz))


# what the audit writer does for mail processes (connections, their
# input, group commits, their end): collected only inside these
WRITER_WORK = ("auditd_client_connected", "auditd_client_input",
               "auditd_commit", "auditd_client_destroy")


def callgrind_writer(sbx, wdir):
    """The sandbox's audit writer runs under callgrind (its file in wdir
    at its exit), counting only its work for mail processes."""
    orig = sbx._audit_conf
    vsz = mwharness.for_line({"2.3": "0", "2.4": "unlimited"})
    opts = " ".join(["--collect-atstart=no"] + ["--toggle-collect=" + f
                                                for f in WRITER_WORK])

    def conf():
        return orig().replace(
            "executable = " + mwharness.AUDITD,
            "executable = /usr/bin/valgrind --tool=callgrind %s "
            "--callgrind-out-file=%s/auditd.%%p.out %s"
            % (opts, wdir, mwharness.AUDITD)).replace(
            "  process_limit = 1\n",
            "  process_limit = 1\n  vsz_limit = %s\n" % vsz)
    sbx._audit_conf = conf


def callgrind_total(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return None


def written(outdir):
    n = 0
    for f in glob.glob(outdir + "/*.out"):
        try:
            if os.stat(f).st_uid != 0 and callgrind_total(f):
                n += 1
        except OSError:
            pass
    return n


def start_unroot(dirs):
    """callgrind creates its output file when the process starts (as
    root) and writes it at exit (as the mail or writer uid, which cannot
    open root's file): a thread removes the empty root-owned files in
    dirs meanwhile, so that the exit creates its own. Returns its stop
    function."""
    stop = threading.Event()

    def unroot():
        while not stop.is_set():
            for d in dirs:
                for f in glob.glob(d + "/*.out"):
                    try:
                        st = os.stat(f)
                        if st.st_uid == 0 and st.st_size == 0:
                            os.unlink(f)
                    except OSError:
                        pass
            stop.wait(0.01)
    th = threading.Thread(target=unroot, daemon=True)
    th.start()

    def halt():
        stop.set()
        th.join(5)
    return halt


def callgrind_sessions(args, fn, port, user, outdir):
    """The warm-up sessions (files removed), then the measured ones:
    their totals, sorted."""
    for i in range(args.warmup):
        fn(port, user)
        deadline = time.time() + 60
        # (+ the sessions the load's preparation ran)
        while (written(outdir) <= i + _extra_sessions[0] and
               time.time() < deadline):
            time.sleep(0.1)
    for f in glob.glob(outdir + "/*.out"):
        os.unlink(f)
    for i in range(args.sessions):
        fn(port, user)
        # callgrind writes its file when the process exits
        deadline = time.time() + 60
        while (written(outdir) <= i and time.time() < deadline):
            time.sleep(0.1)
    time.sleep(0.5)
    return sorted(t for t in (callgrind_total(f) for f in
                              glob.glob(outdir + "/*.out")) if t)


def report_writer(args, name, wdir):
    """The writer's file is written when it exits (sandbox stop); it
    counts the warm-up sessions too."""
    n = args.warmup + args.sessions + _extra_sessions[0]
    deadline = time.time() + 60
    while (not any(callgrind_total(f) for f in
                   glob.glob(wdir + "/auditd.*.out")) and
           time.time() < deadline):
        time.sleep(0.2)
    wtot = sum(callgrind_total(f) or 0 for f in
               glob.glob(wdir + "/auditd.*.out"))
    print("%-16s audit writer: %d Ir in %d sessions, %.0f a session  [%s]"
          % (name, wtot, n, wtot / n, wdir))


def run_callgrind(args):
    gen = mailgen.MailGen()
    fn, portattr, user, _ = LOADS[args.load]
    service = "imap" if portattr == "imap_port" else "pop3"
    res = {}
    for name in args.configs.split(","):
        outdir = tempfile.mkdtemp(prefix="mw-cg-", dir=args.dir)
        _extra_sessions[0] = 0
        os.chmod(outdir, 0o777)
        sbx = make_sandbox(name, callgrind_conf(outdir, service))
        wdir = None
        if args.writer and sbx.audit:
            wdir = outdir + "-writer"
            os.mkdir(wdir)
            os.chmod(wdir, 0o777)
            callgrind_writer(sbx, wdir)
        fill(sbx, gen)
        sbx.start()
        halt = start_unroot([outdir] + ([wdir] if wdir else []))
        try:
            res[name] = (callgrind_sessions(args, fn, getattr(sbx, portattr),
                                            user, outdir), outdir)
        finally:
            halt()
            sbx.stop(check=False)
            if not args.keep:
                shutil.rmtree(sbx.dir, ignore_errors=True)
        if wdir:
            report_writer(args, name, wdir)
    base = None
    print("== %s: instructions (Ir) of the %s process per session"
          % (args.load, service))
    for name, (tots, outdir) in res.items():
        med = tots[len(tots) // 2] if tots else 0
        if name == "plain":
            base = med
        print("%-16s median %d (%d sessions: %s)%s  [%s]" % (
            name, med, len(tots), " ".join(str(t) for t in tots),
            "  x%.4f vs plain (%+d)" % (med / base, med - base)
            if base and name != "plain" else "", outdir))


def main(doc):
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("mode", choices=("strace", "callgrind"))
    ap.add_argument("--load", default="pop3-leave", choices=sorted(LOADS))
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--configs", default="plain,mailward")
    ap.add_argument("--dir", default="/tmp/mw-profile")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--clients", type=int, default=1,
                    help="strace: sessions at once per round (imap, "
                    "pop3-expunge; at most %d)" % MAX_CLIENTS)
    ap.add_argument("--writer", action="store_true",
                    help="the audit writer too (mailward+audit): strace: "
                    "its calls; callgrind: its instructions for mail "
                    "processes, warm-up sessions included")
    ap.add_argument("--messages", type=int, default=None,
                    help="list-pop3, list-pop3-hiding, list-imap: messages "
                    "of the listing mailbox (default 1000)")
    lines.add_argument(ap)
    args = ap.parse_args()
    if args.messages is not None:
        if args.messages < 1:
            ap.error("--messages must be at least 1")
        for u in LOADS_BY_USER:
            if u.startswith(("ls", "lh")):
                LOADS_BY_USER[u] = args.messages
    if lines.relaunch(args, "bench/profile.py", sys.argv[1:],
                      dirs=("dir",), tools=("strace",) if args.mode == "strace" else ("valgrind",)):
        return
    os.makedirs(args.dir, exist_ok=True)
    os.chmod(args.dir, 0o755)
    if args.mode == "strace":
        run_strace(args)
    else:
        run_callgrind(args)

