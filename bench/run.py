#!/usr/bin/python3
"""mailward benchmark: what mailward costs a Dovecot server, measured side
by side with plain Dovecot (issue 7). See bench/README.md.

    /usr/bin/python3 bench/run.py [--quick] [--long] [--out FILE]

Starts one sandbox Dovecot per configuration with identical settings
(tests/mwharness.py): "plain" (mailward not loaded), "mailward", and
"mailward+audit" when the harness has an audit writer mode. Fills identical
mailboxes, then runs each load in rounds, interleaving the configurations
within every round (rotating the order from round to round) so machine
drift cancels. Prints a table, writes JSON (--out) and an SVG plot of the
with/without ratio vs mailbox size (--svg).
"""

import argparse
import collections
import inspect
import json
import os
import platform
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))
sys.path.insert(0, HERE)

import mwharness  # noqa: E402
import benchlib as bl  # noqa: E402

PW = mwharness.PASSWORD
DEV_PW = {"deva-secret": "bench-a", "devb-secret": "bench-b"}

MODES = {
    "quick": dict(rounds=2, users=6, msgs=25, concurrency=4,
                  login_sessions=20, storm_sessions=48, storm_conc=8,
                  listing=[1000], list_sessions=2, load_cap=40),
    "default": dict(rounds=10, users=16, msgs=40, concurrency=4,
                    login_sessions=40, storm_sessions=96, storm_conc=8,
                    listing=[100, 1000, 10000], list_sessions=3,
                    load_cap=120),
}

TARGETS = {
    "throughput_mailward": 0.97,
    "throughput_audit": 0.90,
    "setup_added_ms": 1.0,
    "state_bytes_per_device_message": 64,
}
# loads whose throughput ratio is held against the targets
THROUGHPUT_LOADS = ("pop3-client", "pop3-leave", "pop3-expunge", "imap")

PHASE_CAP = 90          # seconds, one configuration in one round
WARMUP_CAP = 600        # seconds, untimed warm-up of one load


def log(*a):
    print(*a, flush=True)


def harness_has_audit():
    """True when tests/mwharness.py's Sandbox takes audit=True and the
    writer is built."""
    try:
        params = inspect.signature(mwharness.Sandbox.__init__).parameters
    except (TypeError, ValueError):
        return False, "cannot inspect Sandbox"
    if "audit" not in params:
        return False, "tests/mwharness.py Sandbox has no audit= parameter"
    auditd = getattr(mwharness, "AUDITD", None)
    if auditd and not os.path.exists(auditd):
        return False, "%s is not built" % auditd
    return True, ""


# ---------------------------------------------------------------------------
# configurations
# ---------------------------------------------------------------------------

class Config:
    def __init__(self, name, sbx):
        self.name = name
        self.sbx = sbx
        self.cpu = None
        self.mailward = not name.startswith("plain")
        self.audit = getattr(sbx, "audit", False)

    def start(self):
        self.sbx.start()
        try:
            self.cpu = bl.ServerCPU(self.master_pid())
        except Exception:
            self.sbx.stop(check=False)
            raise

    def master_pid(self, timeout=10):
        """The master's pid (master.pid can appear a moment after the
        listeners)."""
        path = os.path.join(self.sbx.dir, "run", "master.pid")
        deadline = time.time() + timeout
        while True:
            try:
                return int(open(path).read().strip())
            except (OSError, ValueError):
                if time.time() > deadline:
                    raise RuntimeError("no %s" % path)
                time.sleep(0.05)

    def audit_size(self):
        if not self.audit:
            return 0
        try:
            return os.path.getsize(self.sbx.audit_log_path)
        except OSError:
            return 0

    def audit_read(self, start, end):
        if not self.audit or end <= start:
            return b""
        with open(self.sbx.audit_log_path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


def user_table(p):
    users = {}
    groups = {}
    for prefix, policy in (("pc", "client"), ("pl", "leave-on-server"),
                           ("pe", "expunge-after-retrieval"),
                           ("im", None)):
        names = ["%s%02d" % (prefix, i) for i in range(p["users"])]
        groups[prefix] = names
        for n in names:
            users[n] = ({"mailward_pop3_policy": policy} if policy else {})
    for size in p["listing"]:
        users["ls%d" % size] = {"mailward_pop3_policy": "leave-on-server"}
    return users, groups


def snapshot_build():
    """Copies the plugin modules (and the audit writer) of the build tree to
    a private directory and points the harness at it, so a rebuild in the
    shared build tree during the run cannot change or break what is
    measured (tests/mwharness.py symlinks modules from MODULES and runs
    AUDITD; both are module-level settings of the harness)."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="mailward-bench-build-")
    os.chmod(d, 0o755)
    libs = os.path.join(d, ".libs")
    os.makedirs(libs)
    for n in os.listdir(mwharness.MODULES):
        if n.endswith(".so"):
            shutil.copy2(os.path.join(mwharness.MODULES, n), libs)
    mwharness.MODULES = libs
    auditd = getattr(mwharness, "AUDITD", None)
    if auditd and os.path.exists(auditd):
        dst = os.path.join(d, os.path.basename(auditd))
        shutil.copy2(auditd, dst)
        mwharness.AUDITD = dst
    return d


def make_configs(p, args):
    users, groups = user_table(p)
    apppw = {"ls%d" % s: dict(DEV_PW) for s in p["listing"]}
    common = dict(users=users, plugin={}, log_debug=False,
                  app_passwords=apppw)
    notes = []
    want = args.configs.split(",") if args.configs else None
    cfgs = []

    def wanted(n):
        return want is None or n in want
    if wanted("plain"):
        cfgs.append(Config("plain", mwharness.Sandbox(mail_plugins=False,
                                                      **common)))
    if want is not None and "plain2" in want:
        # a second plain Dovecot: plain vs plain2 is the noise floor
        cfgs.append(Config("plain2", mwharness.Sandbox(mail_plugins=False,
                                                       **common)))
    if wanted("mailward"):
        cfgs.append(Config("mailward", mwharness.Sandbox(mail_plugins=True,
                                                         **common)))
    ok, why = harness_has_audit()
    if wanted("mailward+audit"):
        if ok:
            cfgs.append(Config("mailward+audit", mwharness.Sandbox(
                mail_plugins=True, audit=True, **common)))
        else:
            notes.append("mailward+audit skipped: " + why)
    return cfgs, groups, notes


# ---------------------------------------------------------------------------
# loads
# ---------------------------------------------------------------------------

class Load:
    def __init__(self, name, desc, make_tasks, concurrency, refill=None,
                 users=(), kind="main", size=None, txn_users=()):
        self.name = name
        self.desc = desc
        self.make_tasks = make_tasks     # (cfg) -> [callable]
        self.concurrency = concurrency
        self.refill = refill             # (cfg) -> None, untimed
        self.users = users
        self.kind = kind
        self.size = size
        self.txn_users = txn_users


def build_loads(p, groups, gen, uidgid, sel):
    C = p["concurrency"]
    M = p["msgs"]
    loads = []

    def refill_full(prefix):
        def f(cfg):
            for i, u in enumerate(groups[prefix]):
                have = bl.maildir_count(cfg.sbx, u)
                if have < M:
                    msgs = gen.mailbox(i, M)[have:]
                    bl.deliver(cfg.sbx, u, msgs, *uidgid)
        return f

    def pop3_tasks(prefix, dele):
        def mk(cfg):
            port = cfg.sbx.pop3_port
            return [(lambda u=u: bl.pop3_session(port, u, PW, dele=dele))
                    for u in groups[prefix]]
        return mk

    loads.append(Load(
        "pop3-client", "POP3 login STAT UIDL RETR-all QUIT, policy client, "
        "%d users x %d msgs, %d clients" % (len(groups["pc"]), M, C),
        pop3_tasks("pc", False), C, users=groups["pc"],
        txn_users=groups["pc"]))
    loads.append(Load(
        "pop3-leave", "same, policy leave-on-server (per-device view)",
        pop3_tasks("pl", False), C, users=groups["pl"],
        txn_users=groups["pl"]))
    loads.append(Load(
        "pop3-expunge", "RETR+DELE all, QUIT; policy expunge-after-"
        "retrieval (plain: client DELE); refilled between rounds",
        pop3_tasks("pe", True), C, refill=refill_full("pe"),
        users=groups["pe"], txn_users=groups["pe"]))

    def imap_tasks(cfg):
        port = cfg.sbx.imap_port
        return [(lambda u=u: bl.imap_session(port, u, PW))
                for u in groups["im"]]
    loads.append(Load(
        "imap", "IMAP LOGIN ID SELECT, FETCH headers, FETCH bodies, "
        "STORE \\Deleted x2, EXPUNGE, LOGOUT; topped up between rounds",
        imap_tasks, C, refill=refill_full("im"), users=groups["im"],
        txn_users=groups["im"]))

    def login_tasks(proto, n):
        def mk(cfg):
            if proto == "pop3":
                port, fn, us = cfg.sbx.pop3_port, bl.pop3_login, groups["pc"]
            else:
                port, fn, us = cfg.sbx.imap_port, bl.imap_login, groups["im"]
            return [(lambda u=us[i % len(us)]: fn(port, u, PW))
                    for i in range(n)]
        return mk

    ls = p["login_sessions"]
    ss = p["storm_sessions"]
    loads.append(Load("login-pop3", "POP3 USER PASS QUIT, one client "
                      "(session setup cost)", login_tasks("pop3", ls), 1,
                      kind="login"))
    loads.append(Load("login-imap", "IMAP LOGIN LOGOUT, one client",
                      login_tasks("imap", ls), 1, kind="login"))
    loads.append(Load("storm-pop3", "POP3 login storm, %d clients"
                      % p["storm_conc"], login_tasks("pop3", ss),
                      p["storm_conc"], kind="storm"))
    loads.append(Load("storm-imap", "IMAP login storm, %d clients"
                      % p["storm_conc"], login_tasks("imap", ss),
                      p["storm_conc"], kind="storm"))

    for size in p["listing"]:
        u = "ls%d" % size

        def mk_pop(cfg, u=u):
            port = cfg.sbx.pop3_port
            return [(lambda: bl.pop3_list_session(port, u, "deva-secret"))
                    for _ in range(p["list_sessions"])]

        def mk_imap(cfg, u=u):
            port = cfg.sbx.imap_port
            return [(lambda: bl.imap_list_session(port, u, "deva-secret"))
                    for _ in range(p["list_sessions"])]
        loads.append(Load("list-pop3-%d" % size, "POP3 STAT UIDL LIST of "
                          "%d msgs, device with state for all" % size,
                          mk_pop, 1, kind="listing", size=size, users=[u],
                          txn_users=[u]))
        loads.append(Load("list-imap-%d" % size, "IMAP SELECT, UID FETCH "
                          "1:* (FLAGS RFC822.SIZE) of %d msgs" % size,
                          mk_imap, 1, kind="listing", size=size, users=[u],
                          txn_users=[u]))
    if sel:
        import re
        rx = re.compile(sel)
        loads = [l for l in loads if rx.search(l.name)]
    return loads


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

def txn_sum(cfg, users):
    if not cfg.mailward:
        return None
    tot = 0
    for u in users:
        info = bl.mdb_info(cfg.sbx.state_dir(u))
        if info:
            tot += info["txnid"]
    return tot


def run_phase(cfg, load, tasks):
    cpu0, q0 = cfg.cpu.sample()
    cl0 = bl.client_cpu()
    sy0 = bl.system_cpu()
    au0 = cfg.audit_size()
    r = bl.run_sessions(tasks, load.concurrency, PHASE_CAP)
    cl1 = bl.client_cpu()
    sy1 = bl.system_cpu()
    cpu1, q1 = cfg.cpu.sample()
    au1 = cfg.audit_size()
    r["server_cpu"] = cpu1 - cpu0
    r["client_cpu"] = cl1 - cl0
    r["quiescent"] = q0 and q1
    busy, total = sy1[0] - sy0[0], sy1[1] - sy0[1]
    r["system_busy"] = busy / total if total else None
    if cfg.audit:
        data = cfg.audit_read(au0, au1)
        events = collections.Counter()
        for line in data.split(b"\n"):
            if line.strip():
                try:
                    events[json.loads(line).get("event", "?")] += 1
                except ValueError:
                    events["(unparsed)"] += 1
        r["audit_bytes"] = len(data)
        r["audit_records"] = sum(events.values())
        r["audit_events"] = dict(events)
    return r


def run_load(load, cfgs, rounds, load_cap):
    log("== %s: %s" % (load.name, load.desc))
    # warm-up round (untimed): indexes, caches, LMDB environments
    t = time.time()
    for cfg in cfgs:
        bl.run_sessions(load.make_tasks(cfg), load.concurrency, WARMUP_CAP)
        if load.refill:
            load.refill(cfg)
    log("   warm-up %.1fs" % (time.time() - t))
    txn0 = {c.name: txn_sum(c, load.txn_users) for c in cfgs}
    phases = {c.name: [] for c in cfgs}
    t0 = time.time()
    for rnd in range(rounds):
        k = rnd % len(cfgs)
        order = cfgs[k:] + cfgs[:k]
        line = []
        for cfg in order:
            r = run_phase(cfg, load, load.make_tasks(cfg))
            r["round"] = rnd
            phases[cfg.name].append(r)
            if load.refill:
                load.refill(cfg)
            line.append("%s %.1f/s%s" % (cfg.name, r["sessions"] / r["wall"]
                                         if r["wall"] else 0,
                                         " ERR%d" % r["errors"]
                                         if r["errors"] else ""))
        log("   round %d: %s" % (rnd + 1, ", ".join(line)))
        if time.time() - t0 > load_cap and rnd >= 1:
            log("   (time cap %ds reached after %d rounds)" % (load_cap,
                                                                rnd + 1))
            break
    txn1 = {c.name: txn_sum(c, load.txn_users) for c in cfgs}
    return summarize(load, cfgs, phases, txn0, txn1)


def summarize(load, cfgs, phases, txn0, txn1):
    out = {"name": load.name, "desc": load.desc, "kind": load.kind,
           "size": load.size, "concurrency": load.concurrency,
           "configs": {}}
    base = None
    for cfg in cfgs:
        ph = phases[cfg.name]
        wall = sum(x["wall"] for x in ph)
        n = sum(x["sessions"] for x in ph)
        msgs = sum(x["messages"] for x in ph)
        nbytes = sum(x["bytes"] for x in ph)
        lat = [v for x in ph for v in x["latencies"]]
        scpu = sum(x["server_cpu"] for x in ph)
        ccpu = sum(x["client_cpu"] for x in ph)
        busy = [x["system_busy"] for x in ph if x["system_busy"] is not None]
        s = {
            "rounds": len(ph), "sessions": n, "wall_s": wall,
            "errors": sum(x["errors"] for x in ph),
            "skipped": sum(x["skipped"] for x in ph),
            "error_samples": [e for x in ph for e in x["error_samples"]][:5],
            "sessions_per_s": n / wall if wall else None,
            "messages_per_s": msgs / wall if wall else None,
            "mb_per_s": nbytes / 1e6 / wall if wall else None,
            "messages": msgs, "bytes": nbytes,
            "latency_p50_ms": _ms(bl.percentile(lat, 50)),
            "latency_p99_ms": _ms(bl.percentile(lat, 99)),
            "server_cpu_ms_per_session": scpu * 1000 / n if n else None,
            "client_cpu_ms_per_session": ccpu * 1000 / n if n else None,
            "system_busy": sum(busy) / len(busy) if busy else None,
            "quiescent": all(x["quiescent"] for x in ph),
            "round_sessions_per_s": [x["sessions"] / x["wall"]
                                     if x["wall"] else None for x in ph],
            "round_latency_p50_ms": [_ms(bl.median(x["latencies"]))
                                     for x in ph],
        }
        if load.kind == "listing" and load.size and n:
            s["server_cpu_us_per_listed_message"] = \
                scpu * 1e6 / n / load.size
        if txn0.get(cfg.name) is not None and n:
            s["lmdb_write_txns_per_session"] = \
                (txn1[cfg.name] - txn0[cfg.name]) / n
        if cfg.audit:
            recs = sum(x.get("audit_records", 0) for x in ph)
            ab = sum(x.get("audit_bytes", 0) for x in ph)
            ev = collections.Counter()
            for x in ph:
                ev.update(x.get("audit_events", {}))
            s["audit_records"] = recs
            s["audit_bytes"] = ab
            s["audit_bytes_per_record"] = ab / recs if recs else None
            s["audit_records_per_s"] = recs / wall if wall else None
            s["audit_records_per_session"] = recs / n if n else None
            s["audit_events"] = dict(ev)
        out["configs"][cfg.name] = s
        if cfg.name == "plain":
            base = s
    if base:
        bph = phases["plain"]
        for cfg in cfgs:
            if cfg.name == "plain":
                continue
            s = out["configs"][cfg.name]
            s["ratio_throughput"] = _div(s["sessions_per_s"],
                                         base["sessions_per_s"])
            s["ratio_server_cpu"] = _div(s["server_cpu_ms_per_session"],
                                         base["server_cpu_ms_per_session"])
            per = []
            for a, b in zip(phases[cfg.name], bph):
                if a["wall"] and b["wall"] and b["sessions"]:
                    per.append((a["sessions"] / a["wall"]) /
                               (b["sessions"] / b["wall"]))
            s["round_ratios"] = per
            s["ratio_round_median"] = bl.median(per)
            s["ratio_round_min"] = min(per) if per else None
            s["ratio_round_max"] = max(per) if per else None
            if s["latency_p50_ms"] is not None and \
                    base["latency_p50_ms"] is not None:
                s["latency_p50_added_ms"] = (s["latency_p50_ms"] -
                                             base["latency_p50_ms"])
                # median over rounds of the paired per-round difference
                d = [a - b for a, b in zip(s["round_latency_p50_ms"],
                                           base["round_latency_p50_ms"])
                     if a is not None and b is not None]
                s["latency_p50_added_ms_round_median"] = bl.median(d)
            if s["server_cpu_ms_per_session"] is not None:
                s["server_cpu_added_ms_per_session"] = (
                    s["server_cpu_ms_per_session"] -
                    base["server_cpu_ms_per_session"])
    return out


def _ms(v):
    return None if v is None else v * 1000


def _div(a, b):
    return a / b if a is not None and b else None


PROFILE_COMMS = "pop3,imap,pop3-login,imap-login,auth,log,anvil,config," \
    "stats,dovecot,mailward-auditd"


def profile_load(load, cfgs, outdir, repeat=5):
    """perf record -a (software cpu-clock, no call graphs) while the load's
    task list runs `repeat` times against one configuration; then perf
    report by process name + shared object, and by symbol. Bounded by the
    phase cap; needs /usr/bin/perf."""
    os.makedirs(outdir, exist_ok=True)
    for cfg in cfgs:
        data = os.path.join(outdir, "%s-%s.data" % (load.name, cfg.name))
        rec = subprocess.Popen(["perf", "record", "-a", "-F", "4999",
                                "-o", data, "-q"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            tasks = load.make_tasks(cfg) * repeat
            r = bl.run_sessions(tasks, load.concurrency, PHASE_CAP)
            if load.refill:
                load.refill(cfg)
        finally:
            rec.send_signal(signal.SIGINT)
            try:
                rec.wait(60)
            except subprocess.TimeoutExpired:
                rec.kill()
                rec.wait(10)
        rep = os.path.join(outdir, "%s-%s.txt" % (load.name, cfg.name))
        with open(rep, "w") as f:
            for sort in ("comm,dso", "dso,sym"):
                out = subprocess.run(
                    ["perf", "report", "-i", data, "--stdio", "--no-children",
                     "--comms", PROFILE_COMMS, "--sort", sort,
                     "--percent-limit", "0.3"],
                    capture_output=True, text=True, timeout=300).stdout
                f.write("### perf report --sort %s (%d sessions)\n%s\n"
                        % (sort, r["sessions"], out))
        log("   profile %s %s: %d sessions -> %s" % (load.name, cfg.name,
                                                     r["sessions"], rep))


# ---------------------------------------------------------------------------
# filling and state
# ---------------------------------------------------------------------------

def fill(cfgs, groups, p, gen, uidgid):
    t = time.time()
    M = p["msgs"]
    for cfg in cfgs:
        for prefix in ("pc", "pl", "pe", "im"):
            for i, u in enumerate(groups[prefix]):
                bl.deliver(cfg.sbx, u, gen.mailbox(i, M), *uidgid)
    per_user = sum(len(m) for m in gen.mailbox(0, M))
    log("filled %d users x %d messages per configuration "
        "(user 0: %.1f MB) in %.1fs" % (
            4 * p["users"], M, per_user / 1e6, time.time() - t))
    sizes = sorted(len(m) for m in gen.pool)
    return {"pool_messages": len(sizes),
            "size_min": sizes[0], "size_median": bl.median(sizes),
            "size_mean": sum(sizes) / len(sizes), "size_max": sizes[-1],
            "large_attachments": sum(1 for s in sizes if s > 1000000)}


def fill_listing(cfgs, p, gen, uidgid):
    """The listing mailboxes: N small messages each, then two devices
    (app passwords bench-a, bench-b) RETR everything once, so under
    mailward every message has a record for each of the two devices."""
    out = {}
    for size in p["listing"]:
        u = "ls%d" % size
        t = time.time()
        for cfg in cfgs:
            bl.deliver(cfg.sbx, u, gen.small(size), *uidgid)
        t1 = time.time()
        for cfg in cfgs:
            for pw in DEV_PW:
                bl.pop3_retr_all_pipelined(cfg.sbx.pop3_port, u, pw)
        log("listing mailbox %s: %d msgs written in %.1fs, 2 devices "
            "retrieved all in %.1fs" % (u, size, t1 - t, time.time() - t1))
        for cfg in cfgs:
            if not cfg.mailward:
                continue
            info = bl.mdb_info(cfg.sbx.state_dir(u))
            if info:
                out.setdefault(cfg.name, {})[size] = {
                    "records": info["records"],
                    "used_bytes": info["used_bytes"],
                    "file_bytes": info["file_bytes"],
                    "messages_db_pages": sum(
                        info["dbs"].get("messages", {}).get(k, 0)
                        for k in ("Branch pages", "Leaf pages",
                                  "Overflow pages")),
                    "page_size": info.get("Page size", 4096),
                }
    return out


def state_summary(state):
    """bytes per device-message: total (used pages / records) per size and
    the marginal figure between the two largest sizes (excludes the fixed
    few pages every environment has)."""
    res = {}
    for name, by in state.items():
        sizes = sorted(by)
        rows = {}
        for s in sizes:
            d = by[s]
            rows[s] = dict(d, bytes_per_record=(d["used_bytes"] /
                                                d["records"]
                                                if d["records"] else None))
        marg = None
        if len(sizes) >= 2:
            a, b = by[sizes[-2]], by[sizes[-1]]
            if b["records"] > a["records"]:
                marg = ((b["used_bytes"] - a["used_bytes"]) /
                        (b["records"] - a["records"]))
        res[name] = {"by_size": rows, "marginal_bytes_per_record": marg}
    return res


# ---------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------

def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def print_table(results, cfgs):
    hdr = ("%-16s %-15s %5s %8s %8s %7s %8s %8s %8s %7s %16s %6s"
           % ("load", "config", "sess", "sess/s", "msg/s", "MB/s", "p50 ms",
              "p99 ms", "cpu ms/s", "+cpu ms", "ratio [rnd range]",
              "cpu x"))
    log("")
    log(hdr)
    log("-" * len(hdr))
    for r in results:
        for cfg in cfgs:
            s = r["configs"].get(cfg.name)
            if not s:
                continue
            ratio = ""
            if "ratio_throughput" in s:
                ratio = "%.3f [%s-%s]" % (
                    s["ratio_throughput"] or 0,
                    fmt(s["ratio_round_min"], "%.2f"),
                    fmt(s["ratio_round_max"], "%.2f"))
            flag = ""
            if s["errors"] or s["skipped"]:
                flag = " !err=%d skip=%d" % (s["errors"], s["skipped"])
            log("%-16s %-15s %5d %8s %8s %7s %8s %8s %8s %7s %16s %6s%s" % (
                r["name"], cfg.name, s["sessions"],
                fmt(s["sessions_per_s"]), fmt(s["messages_per_s"], "%.0f"),
                fmt(s["mb_per_s"]), fmt(s["latency_p50_ms"], "%.2f"),
                fmt(s["latency_p99_ms"], "%.2f"),
                fmt(s["server_cpu_ms_per_session"], "%.2f"),
                fmt(s.get("server_cpu_added_ms_per_session"), "%+.2f"),
                ratio, fmt(s.get("ratio_server_cpu"), "%.3f"), flag))
    log("")
    log("sess/s msg/s MB/s: per configuration over all its timed rounds; "
        "p50/p99: session latency (connect..close); cpu ms/s: server CPU "
        "(master + all descendants) per session; +cpu ms: added vs plain; "
        "ratio: sessions/s vs plain over all rounds [min-max of per-round "
        "ratios]; cpu x: server CPU per session vs plain.")


def evaluate_targets(results, state, cfgs):
    verdicts = []
    by = {r["name"]: r for r in results}

    def add(what, value, target, ok, unit=""):
        verdicts.append({"target": what, "value": value, "limit": target,
                         "met": ok})

    for cname, key in (("mailward", "throughput_mailward"),
                       ("mailward+audit", "throughput_audit")):
        if cname not in [c.name for c in cfgs]:
            continue
        for ln in THROUGHPUT_LOADS:
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("ratio_throughput") is not None:
                add("%s %s throughput ratio >= %.2f" % (cname, ln,
                                                        TARGETS[key]),
                    round(s["ratio_throughput"], 3), TARGETS[key],
                    s["ratio_throughput"] >= TARGETS[key])
    for cname in [c.name for c in cfgs if c.mailward]:
        for ln in ("login-pop3", "login-imap"):
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("latency_p50_added_ms") is not None:
                add("%s %s session setup added <= %.1f ms (median)"
                    % (cname, ln, TARGETS["setup_added_ms"]),
                    round(s["latency_p50_added_ms"], 3),
                    TARGETS["setup_added_ms"],
                    s["latency_p50_added_ms"] <= TARGETS["setup_added_ms"])
    for cname, st in state.items():
        sizes = sorted(st["by_size"])
        if not sizes:
            continue
        big = st["by_size"][sizes[-1]]
        add("%s LMDB bytes per device-message at %d msgs x 2 devices <= %d"
            % (cname, sizes[-1], TARGETS["state_bytes_per_device_message"]),
            round(big["bytes_per_record"], 1),
            TARGETS["state_bytes_per_device_message"],
            big["bytes_per_record"] <=
            TARGETS["state_bytes_per_device_message"])
        if st["marginal_bytes_per_record"] is not None:
            m = st["marginal_bytes_per_record"]
            add("%s LMDB marginal bytes per device-message <= %d"
                % (cname, TARGETS["state_bytes_per_device_message"]),
                round(m, 1), TARGETS["state_bytes_per_device_message"],
                m <= TARGETS["state_bytes_per_device_message"])
    for cname in [c.name for c in cfgs if c.mailward]:
        for ln in THROUGHPUT_LOADS + tuple(
                r["name"] for r in results if r["kind"] == "listing"):
            s = by.get(ln, {}).get("configs", {}).get(cname)
            if s and s.get("lmdb_write_txns_per_session") is not None:
                v = s["lmdb_write_txns_per_session"]
                limit = 1.0 if ln.startswith(("pop3", "list-pop3")) else None
                if limit is None:
                    continue
                add("%s %s LMDB write txns per session <= 1 (not per "
                    "message)" % (cname, ln), round(v, 2), limit,
                    v <= limit + 1e-9)
    return verdicts


def print_extras(results, state, verdicts, cfgs):
    log("")
    log("LMDB state (2 devices retrieved every message of the listing "
        "mailbox):")
    for cname, st in state.items():
        for size, d in sorted(st["by_size"].items()):
            log("  %-15s %7d msgs: %7d records, %9d bytes used (%d file), "
                "%s B/device-message" % (cname, size, d["records"],
                                         d["used_bytes"], d["file_bytes"],
                                         fmt(d["bytes_per_record"])))
        log("  %-15s marginal: %s B/device-message" % (
            cname, fmt(st["marginal_bytes_per_record"])))
    log("")
    log("LMDB write transactions per session (mailward configurations):")
    for r in results:
        row = []
        for cfg in cfgs:
            s = r["configs"].get(cfg.name, {})
            if s.get("lmdb_write_txns_per_session") is not None:
                row.append("%s %.2f" % (cfg.name,
                                        s["lmdb_write_txns_per_session"]))
        if row:
            log("  %-16s %s" % (r["name"], ", ".join(row)))
    lst = [r for r in results if r["kind"] == "listing"]
    if lst:
        log("")
        log("Listing scaling, server CPU per listed message (us):")
        for r in lst:
            log("  %-16s %s" % (r["name"], ", ".join(
                "%s %s" % (c.name, fmt(r["configs"][c.name].get(
                    "server_cpu_us_per_listed_message"), "%.2f"))
                for c in cfgs if c.name in r["configs"])))
    if any(c.audit for c in cfgs):
        log("")
        log("Audit log (mailward+audit):")
        for r in results:
            for cfg in cfgs:
                s = r["configs"].get(cfg.name, {})
                if cfg.audit and s.get("audit_records") is not None:
                    log("  %-16s %6d records, %s B/record, %s records/s, "
                        "%s records/session  %s" % (
                            r["name"], s["audit_records"],
                            fmt(s["audit_bytes_per_record"], "%.0f"),
                            fmt(s["audit_records_per_s"], "%.0f"),
                            fmt(s["audit_records_per_session"], "%.1f"),
                            json.dumps(s["audit_events"], sort_keys=True)))
    log("")
    log("Targets:")
    for v in verdicts:
        log("  [%s] %s: %s" % ("met " if v["met"] else "MISS", v["target"],
                               v["value"]))


def write_svg(results, cfgs, path):
    series = {}
    for r in results:
        if r["kind"] != "listing":
            continue
        proto = r["name"].split("-")[1]
        for cfg in cfgs:
            s = r["configs"].get(cfg.name, {})
            if s.get("ratio_throughput") is None:
                continue
            series.setdefault("%s %s" % (proto.upper(), cfg.name), []) \
                .append((r["size"], s["ratio_throughput"]))
    for k in series:
        series[k].sort()
    targets = {"0.97 target (mailward)": TARGETS["throughput_mailward"]}
    if any(c.audit for c in cfgs):
        targets["0.90 target (audit)"] = TARGETS["throughput_audit"]
    return bl.svg_plot(series, targets,
                       "mailward / plain Dovecot: listing sessions/s vs "
                       "mailbox size", "messages in mailbox (log)",
                       "throughput ratio (sessions/s)", path)


def build_fingerprint(libdir, auditd):
    """sha256 (16 hex digits) of the plugin modules and the audit writer."""
    import hashlib
    out = {}
    try:
        names = sorted(n for n in os.listdir(libdir) if n.endswith(".so"))
    except OSError:
        names = []
    for path in [os.path.join(libdir, n) for n in names] + [auditd or ""]:
        if path and os.path.exists(path):
            with open(path, "rb") as f:
                out[os.path.basename(path)] = hashlib.sha256(
                    f.read()).hexdigest()[:16]
    return out


def foreign_activity(own_dirs):
    """Other Dovecot masters on this host (e.g. a test suite running in
    parallel) and the load average: both add noise to the figures."""
    masters = 0
    for _pid, argv in mwharness.proc_cmdlines():
        if argv and argv[0].endswith(b"dovecot") and b"-c" in argv and \
                not any(d.encode() in a for d in own_dirs for a in argv):
            masters += 1
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    return {"other_dovecot_masters": masters, "loadavg": load}


def env_info():
    def cmd(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True,
                                  timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "kernel": platform.release(),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "dovecot": cmd("dovecot", "--version"),
        "git": cmd("git", "-C", REPO, "describe", "--always", "--dirty"),
        "build": mwharness.BUILD,
    }


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke check, about a minute")
    ap.add_argument("--long", action="store_true",
                    help="add the 100k-message listing mailbox")
    ap.add_argument("--out", default="/tmp/mailward-bench.json",
                    help="JSON result file (default %(default)s)")
    ap.add_argument("--svg", default=None,
                    help="SVG plot (default: --out with .svg)")
    ap.add_argument("--rounds", type=int, help="timed rounds per load")
    ap.add_argument("--loads", help="regex: run only matching loads")
    ap.add_argument("--configs", help="comma list of plain,mailward,"
                    "mailward+audit (default all available); plain2 adds "
                    "a second plain Dovecot (noise floor)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", metavar="DIR",
                    help="after the timed rounds, run each selected load "
                    "once more per configuration under 'perf record -a' "
                    "and write perf.data files and reports to DIR")
    ap.add_argument("--keep", action="store_true",
                    help="leave the sandbox directories in place")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("run as root (the sandboxes start Dovecot)")
    p = dict(MODES["quick" if args.quick else "default"])
    if args.long:
        p["listing"] = sorted(set(p["listing"] + [100000]))
        p["load_cap"] = max(p["load_cap"], 300)
    if args.rounds:
        p["rounds"] = args.rounds
    if args.loads:
        import re
        rx = re.compile(args.loads)
        p["listing"] = [s for s in p["listing"]
                        if rx.search("list-pop3-%d" % s) or
                        rx.search("list-imap-%d" % s)]
    svg = args.svg or (os.path.splitext(args.out)[0] + ".svg")

    t_start = time.time()
    build_libs = mwharness.MODULES
    build_auditd = getattr(mwharness, "AUDITD", None)
    snapdir = snapshot_build()
    fp0 = build_fingerprint(mwharness.MODULES,
                            getattr(mwharness, "AUDITD", None))
    gen = bl.MailGen(seed=args.seed)
    uidgid = mwharness.ensure_test_user()
    cfgs, groups, notes = make_configs(p, args)
    for n in notes:
        log("NOTE: " + n)
    log("configurations: %s; mode %s%s; %d timed rounds per load" % (
        ", ".join(c.name for c in cfgs), "quick" if args.quick else "default",
        " +long" if args.long else "", p["rounds"]))

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    started = []
    results = []
    state = {}
    logcheck = {}
    try:
        for cfg in cfgs:
            try:
                cfg.start()
                started.append(cfg)
            except Exception as ex:  # noqa: BLE001
                if cfg.audit:
                    notes.append("mailward+audit skipped: start failed: %s"
                                 % str(ex).splitlines()[0])
                    log("NOTE: " + notes[-1])
                    cfg.sbx.stop(check=False)
                    continue
                raise
        cfgs = started
        mailinfo = fill(cfgs, groups, p, gen, uidgid)
        state_raw = fill_listing(cfgs, p, gen, uidgid)
        state = state_summary(state_raw)
        loads = build_loads(p, groups, gen, uidgid, args.loads)
        own = [c.sbx.dir for c in cfgs]
        for load in loads:
            act = foreign_activity(own)
            results.append(run_load(load, cfgs, p["rounds"], p["load_cap"]))
            results[-1]["activity_before"] = act
            results[-1]["activity_after"] = foreign_activity(own)
            if act["other_dovecot_masters"] or \
                    results[-1]["activity_after"]["other_dovecot_masters"]:
                log("   note: other Dovecot instances were running on this "
                    "host (%d before, %d after): expect noise" % (
                        act["other_dovecot_masters"],
                        results[-1]["activity_after"][
                            "other_dovecot_masters"]))
            if args.profile:
                profile_load(load, cfgs, args.profile)
    finally:
        for cfg in started:
            cfg.sbx.stop(check=False)
            text = cfg.sbx.read_log()
            bad = [l for l in text.splitlines()
                   if mwharness.BAD_LOG.search(l)]
            errs = [l for l in text.splitlines() if " Error: " in l]
            logcheck[cfg.name] = {"crash_lines": bad[:5],
                                  "error_lines": len(errs),
                                  "error_samples": errs[:5],
                                  "sandbox": cfg.sbx.dir}
            if not args.keep:
                cfg.sbx.cleanup()
        if not args.keep:
            import shutil
            shutil.rmtree(snapdir, ignore_errors=True)

    print_table(results, cfgs)
    verdicts = evaluate_targets(results, state, cfgs)
    print_extras(results, state, verdicts, cfgs)
    for name, lc in logcheck.items():
        if lc["crash_lines"] or lc["error_lines"]:
            log("WARNING: %s Dovecot log: %d error lines, crashes: %s; e.g. "
                "%s" % (name, lc["error_lines"], lc["crash_lines"],
                        lc["error_samples"][:2]))
    for cfg in cfgs:
        if cfg.audit and results and not any(
                r["configs"].get(cfg.name, {}).get("audit_records")
                for r in results):
            notes.append("%s: the audit writer ran but no audit records "
                         "were written during the loads (plugin does not "
                         "emit events yet?)" % cfg.name)
    if build_fingerprint(build_libs, build_auditd) != fp0:
        notes.append("the build tree was rebuilt during the run; this run "
                     "measured the snapshot taken at its start")
    for n in notes:
        log("NOTE: " + n)
    doc = {
        "env": env_info(), "mode": "quick" if args.quick else "default",
        "long": args.long, "params": p, "seed": args.seed,
        "configs": [c.name for c in cfgs], "notes": notes,
        "mail": mailinfo, "targets": TARGETS, "verdicts": verdicts,
        "state": state, "loads": results, "dovecot_logs": logcheck,
        "elapsed_s": time.time() - t_start, "build": fp0,
    }
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1, default=str)
    wrote = write_svg(results, cfgs, svg)
    log("")
    log("results: %s%s   (elapsed %.0fs)" % (
        args.out, ", plot: " + svg if wrote else "",
        time.time() - t_start))


if __name__ == "__main__":
    main()
