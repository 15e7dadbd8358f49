"""The run's environment: build fingerprint, other activity on the host,
versions."""

import hashlib
import os
import platform
import subprocess
import time

import mwharness

from . import REPO

def build_fingerprint(libdir, auditd):
    """sha256 (16 hex digits) of the plugin modules and the audit writer."""
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
        "git": (os.environ.get("MAILWARD_BENCH_GIT") or
                cmd("git", "-C", REPO, "describe", "--always", "--dirty")),
        # relative to the repository: results are committed
        "build": os.path.relpath(mwharness.BUILD, REPO),
    }

