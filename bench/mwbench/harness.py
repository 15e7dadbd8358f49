"""Running loads: warm-up, interleaved timed rounds, perf profiles;
filling the mailboxes and reading the LMDB state."""

import collections
import json
import os
import signal
import subprocess
import time

from . import clients, mailgen, measure, stats
from .common import DEV_PW, PHASE_CAP, WARMUP_CAP, log

def txn_sum(cfg, users):
    if not cfg.mailward:
        return None
    tot = 0
    for u in users:
        info = measure.mdb_info(cfg.sbx.state_dir(u))
        if info:
            tot += info["txnid"]
    return tot


def run_phase(cfg, load, tasks):
    cpu0, q0 = cfg.cpu.sample()
    cl0 = measure.client_cpu()
    sy0 = measure.system_cpu()
    au0 = cfg.audit_size()
    r = clients.run_sessions(tasks, load.concurrency, PHASE_CAP)
    cl1 = measure.client_cpu()
    sy1 = measure.system_cpu()
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
        clients.run_sessions(load.make_tasks(cfg), load.concurrency, WARMUP_CAP)
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
    return stats.summarize(load, cfgs, phases, txn0, txn1)



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
            r = clients.run_sessions(tasks, load.concurrency, PHASE_CAP)
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
        for prefix in ("pc", "pl", "pe", "im", "mx"):
            for i, u in enumerate(groups[prefix]):
                mailgen.deliver(cfg.sbx, u, gen.mailbox(i, M), *uidgid)
    per_user = sum(len(m) for m in gen.mailbox(0, M))
    log("filled %d users x %d messages per configuration "
        "(user 0: %.1f MB) in %.1fs" % (
            5 * p["users"], M, per_user / 1e6, time.time() - t))
    sizes = sorted(len(m) for m in gen.pool)
    return {"pool_messages": len(sizes),
            "size_min": sizes[0], "size_median": measure.median(sizes),
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
            mailgen.deliver(cfg.sbx, u, gen.small(size), *uidgid)
        t1 = time.time()
        for cfg in cfgs:
            for pw in DEV_PW:
                clients.pop3_retr_all_pipelined(cfg.sbx.pop3_port, u, pw)
        log("listing mailbox %s: %d msgs written in %.1fs, 2 devices "
            "retrieved all in %.1fs" % (u, size, t1 - t, time.time() - t1))
        for cfg in cfgs:
            if not cfg.mailward:
                continue
            info = measure.mdb_info(cfg.sbx.state_dir(u))
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

