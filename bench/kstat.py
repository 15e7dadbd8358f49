#!/usr/bin/python3
"""Kernel-side cost of the pop3/imap process per session (issue 14):
the resource usage of each session process, builds side by side.

    /usr/bin/python3 bench/kstat.py LOAD N LABEL=BUILD:CONFIG ...

e.g. plain against mailward of one build:

    bench/kstat.py login-imap 200 plain=build-bench:plain \\
        mailward=build-bench:mailward

One sandbox per LABEL (bench/profile.py's users, mailboxes and settings),
whose pop3/imap service runs under a small wrapper (compiled here with
cc) that forks it and records its wait4() resource usage: CPU time
(user + system: the sum is the precise run time, the split is sampled
and unreliable on a VM), minor page faults, voluntary and involuntary
context switches; the session process only, not its login process,
auth or the master. N sessions per LABEL, back to back, in blocks of
20 in rotating order (after 3 untimed warm-up sessions each). Per LABEL: the mean
and median of each figure per session process and the difference of the
means to the first LABEL. For Dovecot 2.4 run it inside the chroot, as
bench/wall.py. Runs as root with Debian's python3. Not a test.

KSTAT_WRAP=PREFIX runs each session process under another tool instead
(a shell command prefix; {out} is a directory per LABEL, $$ the shell's
pid) and prints those directories, e.g. a profile of each process:
KSTAT_WRAP='/usr/bin/perf record -q -F 19999 -g -o {out}/s.$$.data'
(host only: no perf in the chroot)."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(_ROOT, "tests"))
sys.path.insert(0, os.path.join(_ROOT, "bench"))

import mwharness  # noqa: E402
from mwbench import mailgen  # noqa: E402
from mwbench import profiling as P  # noqa: E402

BLOCK = 20
FIELDS = ("cpu", "user", "sys", "minflt", "nvcsw", "nivcsw")
WRAPPER_C = r"""
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	struct rusage ru;
	int status = 1;
	FILE *f;
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
		return 1;
	if ((f = fopen(argv[1], "a")) != NULL) {
		fprintf(f, "%ld %ld %ld %ld %ld\n",
			ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
			ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec,
			ru.ru_minflt, ru.ru_nvcsw, ru.ru_nivcsw);
		fclose(f);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
"""


def build_wrapper(tmp):
    src, exe = os.path.join(tmp, "wrap.c"), os.path.join(tmp, "wrap")
    with open(src, "w") as f:
        f.write(WRAPPER_C)
    subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
    return exe


def service_conf(out, service):
    args = [os.path.join(os.path.dirname(out), "wrap"), out,
            os.path.join(P.DOVECOT_LIBEXEC, service)]
    wrap = os.environ.get("KSTAT_WRAP")
    if wrap:
        os.makedirs(out + ".d")
        sh = out + ".sh"
        with open(sh, "w") as f:
            f.write("#!/bin/sh\nexec %s -- %s\n" % (
                wrap.replace("{out}", out + ".d"),
                os.path.join(P.DOVECOT_LIBEXEC, service)))
        os.chmod(sh, 0o755)
        args = [sh]
    vsz = mwharness.for_line({"2.3": "0", "2.4": "unlimited"})
    return ("service %s {\n  executable = %s\n  vsz_limit = %s\n"
            "}\n" % (service, " ".join(args), vsz))


def parse(path):
    """The wrapper's lines in path: one dict per session process."""
    out = []
    for line in open(path) if os.path.exists(path) else ():
        v = [int(x) for x in line.split()]
        if len(v) == 5:
            out.append({"cpu": (v[0] + v[1]) / 1000.0, "user": v[0] / 1000.0,
                        "sys": v[1] / 1000.0, "minflt": v[2],
                        "nvcsw": v[3], "nivcsw": v[4]})
    return out


def start(specs, load, tmp):
    service = "imap" if P.LOADS[load][1] == "imap_port" else "pop3"
    gen = mailgen.MailGen()
    sbxs, outs = {}, {}
    for label, spec in specs:
        build, name = spec.split(":")
        mwharness.MODULES = os.path.join(build, ".libs")
        mwharness.AUDITD = os.path.join(build, "mailward-auditd")
        outs[label] = os.path.join(tmp, label + ".usage")
        s = P.make_sandbox(name, service_conf(outs[label], service))
        P.fill(s, gen)
        s.start()
        sbxs[label] = s
    return sbxs, outs


def wait_written(path, n):
    deadline = time.time() + 30
    while len(parse(path)) < n and time.time() < deadline:
        time.sleep(0.05)


def run(load, n, labels, sbxs, outs):
    fn, portattr, user, _ = P.LOADS[load]
    for nm in labels:
        P._current["sbx"] = sbxs[nm]
        for _ in range(3):
            fn(getattr(sbxs[nm], portattr), user)
    done = {nm: 0 for nm in labels}
    for nm in labels:
        if os.environ.get("KSTAT_WRAP"):
            break
        wait_written(outs[nm], 3)
        done[nm] = len(parse(outs[nm]))
    for b in range(max(1, n // BLOCK)):
        k = b % len(labels)
        for nm in labels[k:] + labels[:k]:
            P._current["sbx"] = sbxs[nm]
            port = getattr(sbxs[nm], portattr)
            for _ in range(BLOCK):
                fn(port, user)
    res = {}
    if os.environ.get("KSTAT_WRAP"):
        time.sleep(2)
        print("output: " + " ".join(outs[nm] + ".d" for nm in labels))
        return None
    for nm in labels:
        wait_written(outs[nm], done[nm] + n)
        res[nm] = parse(outs[nm])[done[nm]:]
    return res


def report(load, labels, res):
    if res is None:
        return
    base = None
    for nm in labels:
        rows = res[nm]
        means = {f: statistics.mean(r[f] for r in rows) for f in FIELDS}
        meds = {f: statistics.median(r[f] for r in rows) for f in FIELDS}
        if base is None:
            base = means
        print("%-10s %-14s n=%d" % (load, nm, len(rows)))
        for f in FIELDS:
            print("    %-17s mean %9.3f  median %9.3f  (%+.3f)" %
                  (f + (" ms" if f in ("cpu", "user", "sys")
                        else ""), means[f], meds[f], means[f] - base[f]))


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in P.LOADS:
        sys.exit(__doc__)
    load, n = sys.argv[1], int(sys.argv[2])
    specs = [a.split("=", 1) for a in sys.argv[3:]]
    labels = [label for label, _ in specs]
    tmp = tempfile.mkdtemp(prefix="mw-kstat-")
    os.chmod(tmp, 0o755)
    build_wrapper(tmp)
    sbxs, outs = start(specs, load, tmp)
    try:
        report(load, labels, run(load, n, labels, sbxs, outs))
    finally:
        for s in sbxs.values():
            s.stop(check=False)
            shutil.rmtree(s.dir, ignore_errors=True)
        if not os.environ.get("KSTAT_WRAP"):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
