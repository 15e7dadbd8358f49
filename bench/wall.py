#!/usr/bin/python3
"""Wall clock and server CPU per session of builds side by side (issue 14).

    /usr/bin/python3 bench/wall.py LOAD N LABEL=BUILD:CONFIG ...

e.g. the audit log's cost before and after a change:

    bench/wall.py login-pop3 400 mailward=OLD/build-bench:mailward \\
        before+audit=OLD/build-bench:mailward+audit \\
        after+audit=NEW/build-bench:mailward+audit

One sandbox per LABEL (bench/profile.py's users, mailboxes and settings;
CONFIG plain, mailward or mailward+audit) with the plugins and writer of
BUILD (a build directory, e.g. ./build-bench). LOAD is one of
bench/profile.py's loads. N sessions per sandbox, run back to back (one
client) in blocks of 20, the sandboxes' blocks in rotating order. Per
LABEL: the median wall time of a session (connect to the last reply) and
its difference to the first LABEL, and the server CPU per session (the
master and all its children, bench/mwbench/measure.py) with the audit
writer's part. Back to back is the point: a session's audit flush runs
after its client has gone, while the next session starts. For Dovecot 2.4
run it inside the chroot: bash tests/trixie.sh bash -c '... bench/wall.py
...' with builds made there. Runs as root with Debian's python3."""

import os
import shutil
import statistics
import sys
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "tests"))
sys.path.insert(0, os.path.join(_ROOT, "bench"))

import mwharness  # noqa: E402
from mwbench import mailgen, measure  # noqa: E402
from mwbench import profiling as P  # noqa: E402

BLOCK = 20


def writer_cpu(sc):
    """CPU seconds of the audit writer: /proc/<pid>/schedstat's run time
    (nanoseconds; utime+stime count 10 ms ticks, too coarse for ~1 ms a
    session)."""
    stats = measure._all_stats()
    total = 0.0
    for p in sc.descendants(stats):
        if p in stats and stats[p]["comm"].startswith("mailward-audit"):
            try:
                with open("/proc/%d/schedstat" % p) as f:
                    total += int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                total += stats[p]["self"] / measure.CLK_TCK
    return total


def start(specs):
    gen = mailgen.MailGen()
    sbxs = {}
    for label, spec in specs:
        build, name = spec.split(":")
        mwharness.MODULES = os.path.join(build, ".libs")
        mwharness.AUDITD = os.path.join(build, "mailward-auditd")
        s = P.make_sandbox(name)
        P.fill(s, gen)
        s.start()
        sbxs[label] = s
    return sbxs


def run(load, n, labels, sbxs):
    fn, portattr, user, _ = P.LOADS[load]
    res = {nm: {"wall": [], "cpu": 0.0, "wcpu": 0.0} for nm in labels}
    for nm in labels:
        P._current["sbx"] = sbxs[nm]  # the sandbox refilled() tops up
        for _ in range(3):
            fn(getattr(sbxs[nm], portattr), user)
    for b in range(max(1, n // BLOCK)):
        k = b % len(labels)
        for nm in labels[k:] + labels[:k]:
            P._current["sbx"] = sbxs[nm]
            port = getattr(sbxs[nm], portattr)
            sc = measure.ServerCPU(P.master_pid(sbxs[nm]))
            c0, w0 = sc.sample()[0], writer_cpu(sc)
            for _ in range(BLOCK):
                t = time.perf_counter()
                fn(port, user)
                res[nm]["wall"].append((time.perf_counter() - t) * 1000)
            res[nm]["cpu"] += sc.sample()[0] - c0
            res[nm]["wcpu"] += writer_cpu(sc) - w0
    return res


def report(load, labels, res):
    base = None
    for nm in labels:
        r = res[nm]
        k = len(r["wall"])
        med, cpu = statistics.median(r["wall"]), r["cpu"] * 1000 / k
        if base is None:
            base = (med, cpu)
        print("%-12s %-16s n=%d wall median %6.2f ms (%+.2f) | server CPU "
              "%.3f ms/session (%+.3f), audit writer %.3f" %
              (load, nm, k, med, med - base[0], cpu, cpu - base[1],
               r["wcpu"] * 1000 / k))


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in P.LOADS:
        sys.exit(__doc__)
    load, n = sys.argv[1], int(sys.argv[2])
    specs = [a.split("=", 1) for a in sys.argv[3:]]
    labels = [label for label, _ in specs]
    sbxs = start(specs)
    try:
        report(load, labels, run(load, n, labels, sbxs))
    finally:
        for s in sbxs.values():
            s.stop(check=False)
            shutil.rmtree(s.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
