"""What a load costs: CPU time of one Dovecot master and all its
descendants (ServerCPU, from /proc/<pid>/stat), the runner's own and the
system's CPU, LMDB figures via mdb_stat, and small statistics helpers."""

import os
import resource
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------
# CPU accounting
# ---------------------------------------------------------------------------

def _read_stat(pid):
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    comm = data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace")
    rest = data[data.rindex(b")") + 2:].split()
    # rest[k] is field k+3 of proc(5): state=3 ppid=4 utime=14 stime=15
    # cutime=16 cstime=17
    return dict(comm=comm, state=rest[0].decode(), ppid=int(rest[1]),
                self=int(rest[11]) + int(rest[12]),
                children=int(rest[13]) + int(rest[14]))


def _all_stats():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                out[int(name)] = _read_stat(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return out


class ServerCPU:
    """CPU seconds of a Dovecot master and everything below it.

    total = sum over the master and its live descendants of
            utime+stime (their own) + cutime+cstime (their reaped
            children). With service_count=1 every session's login and
            pop3/imap process is a child of the master: once it exits and
            is reaped, its CPU appears in the master's cutime/cstime; the
            long-lived ones (auth, log, config, anvil, stats, the audit
            writer) are counted live. Sampled only when quiescent (no
            session process alive), so nothing moves from 'live' to
            'reaped' during a sample."""

    TRANSIENT = ("pop3", "imap", "pop3-login", "imap-login")

    def __init__(self, master_pid):
        self.master = master_pid

    def descendants(self, stats):
        kids = {}
        for pid, st in stats.items():
            kids.setdefault(st["ppid"], []).append(pid)
        out, todo = [], [self.master]
        while todo and len(out) < 100000:
            p = todo.pop()
            out.append(p)
            todo.extend(kids.get(p, ()))
        return out

    def wait_quiescent(self, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            stats = _all_stats()
            busy = [p for p in self.descendants(stats)
                    if p != self.master and (
                        stats[p]["comm"] in self.TRANSIENT or
                        stats[p]["state"] == "Z")]
            if not busy:
                return True, stats
            if time.time() > deadline:
                return False, stats
            time.sleep(0.01)

    def sample(self):
        """(seconds, quiescent?)"""
        ok, stats = self.wait_quiescent()
        tot = 0
        for p in self.descendants(stats):
            st = stats.get(p)
            if st:
                tot += st["self"] + st["children"]
        return tot / CLK_TCK, ok


def client_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def system_cpu():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    total = sum(v[:8])
    return total - idle, total


# ---------------------------------------------------------------------------
# LMDB
# ---------------------------------------------------------------------------

def mdb_info(path):
    """mdb_stat -efa of an LMDB environment, condensed: page size, pages
    used, free pages, last txn id, entries and pages per DB, file size."""
    r = subprocess.run(["mdb_stat", "-efa", path], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        return None
    info = {"dbs": {}}
    cur = None
    for line in r.stdout.splitlines():
        s = line.strip()
        if s.startswith("Status of "):
            cur = s[len("Status of "):]
            info["dbs"][cur] = {}
            continue
        if s == "Freelist Status":
            cur = "(freelist)"
            info["dbs"][cur] = {}
            continue
        if ":" not in s:
            continue
        k, v = [x.strip() for x in s.split(":", 1)]
        try:
            v = int(v)
        except ValueError:
            continue
        if cur is None:
            info[k] = v
        else:
            info["dbs"][cur][k] = v
    try:
        info["file_bytes"] = os.path.getsize(os.path.join(path, "data.mdb"))
    except OSError:
        info["file_bytes"] = 0
    psize = info.get("Page size", 4096)
    free = info["dbs"].get("(freelist)", {}).get("Free pages", 0)
    info["used_bytes"] = (info.get("Number of pages used", 0) - free) * psize
    info["records"] = info["dbs"].get("messages", {}).get("Entries", 0)
    info["txnid"] = info.get("Last transaction ID", 0)
    return info


# ---------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------

def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def median(values):
    return percentile(values, 50)
