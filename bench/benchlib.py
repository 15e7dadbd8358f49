"""Building blocks of the mailward benchmark (bench/run.py).

- MailGen: deterministic messages of realistic sizes, written straight
  into maildir new/ the way an LDA does (LF line ends, ,S=,W= in the name)
- pop3_session / imap_session / *_login: small raw-socket clients (no
  poplib/imaplib line-by-line parsing, so the load generator stays cheap)
- run_sessions: N concurrent client threads over a bounded task list with
  a deadline
- ServerCPU: CPU time of one Dovecot master and all its descendants, from
  /proc/<pid>/stat (utime+stime of live processes, cutime+cstime for the
  reaped ones)
- LMDB figures via mdb_stat, small statistics helpers and a hand-written
  SVG line plot.

Everything talks to 127.0.0.1 only, every socket has a timeout, every
loop is bounded in count and time.
"""

import os
import random
import re
import resource
import socket
import subprocess
import threading
import time

HOST = "127.0.0.1"
SOCK_TIMEOUT = 60
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------
# message generation
# ---------------------------------------------------------------------------

WORDS = ("the of and to in is for on that with as this by be are from at "
         "or it an was have not will your our can all more has new about "
         "report meeting invoice quarter budget server mailbox policy team "
         "please thanks regards attached review project schedule customer "
         "update draft contract release deploy storage network office "
         "tomorrow monday friday agenda minutes summary notes figures "
         "account payment order shipping delivery support request").split()


class MailGen:
    """A deterministic pool of messages (seeded), LF line ends.

    Size mix (body + headers): 60 % 2-10 KB plain text, 30 % 10-60 KB
    multipart/alternative text+HTML, 10 % 60-200 KB with a small inline
    image; and `attach_every`-th message (about 2 %) carries a 1-3 MB
    base64 attachment ("a few with large attachments")."""

    def __init__(self, seed=7, pool=200, attach_every=50):
        self.seed = seed
        self.rng = random.Random(seed)
        self.pool = [self._message(i, attach=(attach_every and
                                              i % attach_every ==
                                              attach_every // 2))
                     for i in range(pool)]
        self.small_pool = None

    def _text(self, nbytes):
        rng = self.rng
        out = []
        size = 0
        line = []
        ll = 0
        while size < nbytes:
            w = WORDS[rng.randrange(len(WORDS))]
            if ll + len(w) + 1 > 72:
                s = " ".join(line) + "\n"
                out.append(s)
                size += len(s)
                line, ll = [], 0
            line.append(w)
            ll += len(w) + 1
        return "".join(out)

    def _b64(self, nbytes):
        import base64
        raw = self.rng.randbytes(nbytes * 3 // 4)
        b = base64.encodebytes(raw).decode()   # 76-char lines
        return b

    def _headers(self, i, subject, ctype):
        day = 1 + i % 28
        return ("Return-Path: <sender%d@example.net>\n"
                "Received: from mx%d.example.net (mx%d.example.net "
                "[192.0.2.%d])\n\tby mail.example.org with ESMTPS id "
                "bench%06d\n\tfor <user@example.org>; Mon, %d Sep 2024 "
                "10:%02d:00 +0000\n"
                "From: \"Sender %d\" <sender%d@example.net>\n"
                "To: user@example.org\n"
                "Subject: %s\n"
                "Date: Mon, %d Sep 2024 10:%02d:00 +0000\n"
                "Message-ID: <bench-%d-%d@example.net>\n"
                "MIME-Version: 1.0\n"
                "Content-Type: %s\n\n"
                % (i % 97, i % 5, i % 5, 1 + i % 250, i, day, i % 60,
                   i % 97, i % 97, subject, day, i % 60, self.seed, i, ctype))

    def _message(self, i, attach=False, size=None):
        rng = self.rng
        subject = " ".join(WORDS[rng.randrange(len(WORDS))]
                           for _ in range(5))
        if size is None:
            r = rng.random()
            if r < 0.60:
                kind, size = "plain", rng.randint(2048, 10240)
            elif r < 0.90:
                kind, size = "alt", rng.randint(10240, 61440)
            else:
                kind, size = "img", rng.randint(61440, 204800)
        else:
            kind = "plain"
        if attach:
            kind = "attach"
        if kind == "plain":
            h = self._headers(i, subject, "text/plain; charset=utf-8")
            body = self._text(max(200, size - len(h)))
        else:
            bnd = "=_bench_%d" % i
            h = self._headers(i, subject,
                              'multipart/mixed; boundary="%s"' % bnd)
            if kind == "attach":
                text = self._text(rng.randint(2048, 8192))
                data = self._b64(rng.randint(1024 * 1024, 3 * 1024 * 1024))
                second = ("Content-Type: application/pdf; name=\"report-%d"
                          ".pdf\"\nContent-Transfer-Encoding: base64\n"
                          "Content-Disposition: attachment; filename=\""
                          "report-%d.pdf\"\n\n%s" % (i, i, data))
            else:
                budget = max(1024, size - len(h) - 400)
                if kind == "alt":
                    text = self._text(budget // 2)
                    html = "<html><body><p>" + self._text(budget // 2) \
                        .replace("\n", "</p>\n<p>") + "</p></body></html>\n"
                    second = ("Content-Type: text/html; charset=utf-8\n\n"
                              + html)
                else:
                    text = self._text(budget // 4)
                    second = ("Content-Type: image/png\n"
                              "Content-Transfer-Encoding: base64\n"
                              "Content-Disposition: inline\n\n"
                              + self._b64(budget * 3 // 4))
            body = ("This is a multi-part message in MIME format.\n\n"
                    "--%s\nContent-Type: text/plain; charset=utf-8\n\n%s\n"
                    "--%s\n%s\n--%s--\n" % (bnd, text, bnd, second, bnd))
        return (h + body).encode()

    def mailbox(self, user_index, count):
        """The message list of a user's mailbox: a deterministic window
        into the pool (the same for every configuration)."""
        n = len(self.pool)
        start = (user_index * 37) % n
        return [self.pool[(start + j) % n] for j in range(count)]

    def small(self, count):
        """`count` small text messages (2-4 KB), for the listing mailboxes
        (10k-100k messages). A pool of 64 distinct bodies is reused."""
        if self.small_pool is None:
            rng = random.Random(self.seed + 1)
            saved, self.rng = self.rng, rng
            self.small_pool = [self._message(100000 + i,
                                             size=rng.randint(2048, 4096))
                               for i in range(64)]
            self.rng = saved
        return (self.small_pool[j % 64] for j in range(count))


_seq = [0]


def deliver(sbx, user, messages, uid, gid):
    """Writes messages into the user's maildir new/ as an LDA would:
    tmp name, then link into new/ with ,S=<size>,W=<crlf size>, owned by
    the mail uid. Returns the number written."""
    base = sbx.maildir(user)
    new = os.path.join(base, "new")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    n = 0
    pid = os.getpid()
    for msg in messages:
        _seq[0] += 1
        vsize = len(msg) + msg.count(b"\n")
        name = "%d.M%dP%d.bench,S=%d,W=%d" % (1700000000 + _seq[0] // 1000,
                                               _seq[0], pid, len(msg), vsize)
        path = os.path.join(new, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, msg)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        n += 1
    return n


def maildir_count(sbx, user):
    base = sbx.maildir(user)
    return sum(len(os.listdir(os.path.join(base, s))) for s in ("new", "cur"))


# ---------------------------------------------------------------------------
# raw clients
# ---------------------------------------------------------------------------

class ProtoError(Exception):
    pass


class Conn:
    """A buffered socket reader that counts received bytes."""

    def __init__(self, port, timeout=SOCK_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.nbytes = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        d = self.sock.recv(1 << 18)
        if not d:
            raise ProtoError("connection closed by server")
        self.buf += d
        self.nbytes += len(d)

    def readline(self):
        rel = 0
        while True:
            i = self.buf.find(b"\r\n", self.pos + rel)
            if i >= 0:
                line = bytes(self.buf[self.pos:i + 2])
                self.pos = i + 2
                return line
            rel = max(0, len(self.buf) - self.pos - 1)
            self._fill()

    def skip(self, n):
        while len(self.buf) - self.pos < n:
            # skip what is there, then read on
            n -= len(self.buf) - self.pos
            self.pos = len(self.buf)
            self._fill()
        self.pos += n

    def pop3_multiline(self):
        """After a +OK status line: consumes up to and including the
        terminating ".\\r\\n" line."""
        # an empty body: the terminator follows the status line directly
        while len(self.buf) - self.pos < 3:
            self._fill()
        if self.buf[self.pos:self.pos + 3] == b".\r\n":
            self.pos += 3
            return
        rel = 0
        while True:
            i = self.buf.find(b"\r\n.\r\n", self.pos + rel)
            if i >= 0:
                self.pos = i + 5
                return
            rel = max(0, len(self.buf) - self.pos - 4)
            self._fill()


def _pop3_cmd(c, cmd, multiline=False):
    c.send(cmd)
    line = c.readline()
    if not line.startswith(b"+OK"):
        raise ProtoError("%r -> %r" % (cmd[:20], line[:200]))
    if multiline:
        c.pop3_multiline()
    return line


def pop3_session(port, user, password, dele=False):
    """login, STAT, UIDL, RETR all (DELE each if dele), QUIT.
    Returns (messages retrieved, bytes received)."""
    c = Conn(port)
    try:
        if not c.readline().startswith(b"+OK"):
            raise ProtoError("no greeting")
        _pop3_cmd(c, b"USER %s\r\n" % user.encode())
        _pop3_cmd(c, b"PASS %s\r\n" % password.encode())
        n = int(_pop3_cmd(c, b"STAT\r\n").split()[1])
        _pop3_cmd(c, b"UIDL\r\n", True)
        for i in range(1, n + 1):
            _pop3_cmd(c, b"RETR %d\r\n" % i, True)
            if dele:
                _pop3_cmd(c, b"DELE %d\r\n" % i)
        _pop3_cmd(c, b"QUIT\r\n")
        return n, c.nbytes
    finally:
        c.close()


def pop3_list_session(port, user, password):
    """The listing a POP3 client does at every poll: STAT, UIDL, LIST."""
    c = Conn(port)
    try:
        if not c.readline().startswith(b"+OK"):
            raise ProtoError("no greeting")
        _pop3_cmd(c, b"USER %s\r\n" % user.encode())
        _pop3_cmd(c, b"PASS %s\r\n" % password.encode())
        n = int(_pop3_cmd(c, b"STAT\r\n").split()[1])
        _pop3_cmd(c, b"UIDL\r\n", True)
        _pop3_cmd(c, b"LIST\r\n", True)
        _pop3_cmd(c, b"QUIT\r\n")
        return n, c.nbytes
    finally:
        c.close()


def pop3_retr_all_pipelined(port, user, password, batch=200):
    """Warm-up helper: RETR every message, RFC 2449 pipelined in batches
    (used to give a device state for every message). Returns count."""
    c = Conn(port, timeout=300)
    try:
        c.readline()
        _pop3_cmd(c, b"USER %s\r\n" % user.encode())
        _pop3_cmd(c, b"PASS %s\r\n" % password.encode())
        n = int(_pop3_cmd(c, b"STAT\r\n").split()[1])
        i = 1
        while i <= n:
            j = min(n, i + batch - 1)
            c.send(b"".join(b"RETR %d\r\n" % k for k in range(i, j + 1)))
            for _ in range(i, j + 1):
                line = c.readline()
                if not line.startswith(b"+OK"):
                    raise ProtoError("RETR -> %r" % line[:200])
                c.pop3_multiline()
            i = j + 1
        _pop3_cmd(c, b"QUIT\r\n")
        return n
    finally:
        c.close()


def pop3_login(port, user, password):
    c = Conn(port)
    try:
        if not c.readline().startswith(b"+OK"):
            raise ProtoError("no greeting")
        _pop3_cmd(c, b"USER %s\r\n" % user.encode())
        _pop3_cmd(c, b"PASS %s\r\n" % password.encode())
        _pop3_cmd(c, b"QUIT\r\n")
        return 0, c.nbytes
    finally:
        c.close()


_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


class Imap:
    def __init__(self, port):
        self.c = Conn(port)
        self.tagno = 0
        if not self.c.readline().startswith(b"* OK"):
            raise ProtoError("no IMAP greeting")

    def cmd(self, text):
        """Sends a command; returns (untagged lines, tagged line, number
        of literals skipped). Literal contents are skipped, not kept."""
        self.tagno += 1
        tag = b"a%d" % self.tagno
        self.c.send(tag + b" " + text + b"\r\n")
        untagged = []
        literals = 0
        while True:
            line = self.c.readline()
            while True:
                m = _LITERAL.search(line)
                if not m:
                    break
                self.c.skip(int(m.group(1)))
                literals += 1
                line = line + self.c.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ProtoError("%r -> %r" % (text[:30], line[:200]))
                return untagged, line, literals
            if len(untagged) < 100000:
                untagged.append(line[:200])

    def close(self):
        self.c.close()


IMAP_ID = b'ID ("name" "mailward-bench" "version" "1.0")'


def imap_session(port, user, password, expunge=2):
    """LOGIN, ID, SELECT, FETCH headers, FETCH bodies, STORE \\Deleted on
    the last `expunge` messages, EXPUNGE, LOGOUT.
    Returns (message bodies fetched, bytes received)."""
    im = Imap(port)
    try:
        im.cmd(b"LOGIN %s %s" % (user.encode(), password.encode()))
        im.cmd(IMAP_ID)
        untagged, _, _ = im.cmd(b"SELECT INBOX")
        n = 0
        for l in untagged:
            m = re.match(rb"\* (\d+) EXISTS", l)
            if m:
                n = int(m.group(1))
        got = 0
        if n:
            im.cmd(b"FETCH 1:* (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])")
            _, _, got = im.cmd(b"FETCH 1:* (BODY[])")
            k = min(expunge, n)
            if k:
                im.cmd(b"STORE %d:%d +FLAGS.SILENT (\\Deleted)"
                       % (n - k + 1, n))
                im.cmd(b"EXPUNGE")
        im.cmd(b"LOGOUT")
        return got, im.c.nbytes
    finally:
        im.close()


def imap_list_session(port, user, password):
    """The listing an IMAP client does on a full resync: SELECT and
    UID FETCH 1:* (UID FLAGS RFC822.SIZE)."""
    im = Imap(port)
    try:
        im.cmd(b"LOGIN %s %s" % (user.encode(), password.encode()))
        untagged, _, _ = im.cmd(b"SELECT INBOX")
        n = 0
        for l in untagged:
            m = re.match(rb"\* (\d+) EXISTS", l)
            if m:
                n = int(m.group(1))
        if n:
            im.cmd(b"UID FETCH 1:* (UID FLAGS RFC822.SIZE)")
        im.cmd(b"LOGOUT")
        return n, im.c.nbytes
    finally:
        im.close()


def imap_login(port, user, password):
    im = Imap(port)
    try:
        im.cmd(b"LOGIN %s %s" % (user.encode(), password.encode()))
        im.cmd(b"LOGOUT")
        return 0, im.c.nbytes
    finally:
        im.close()


# ---------------------------------------------------------------------------
# load driver
# ---------------------------------------------------------------------------

def run_sessions(tasks, concurrency, deadline_s):
    """Runs the callables in `tasks` (each returns (messages, bytes)) on
    `concurrency` threads. Stops starting new ones after deadline_s.
    Returns dict with wall time, per-session latencies, totals, errors."""
    lock = threading.Lock()
    idx = [0]
    lat = []
    totals = {"messages": 0, "bytes": 0, "errors": 0, "skipped": 0}
    errors = []
    t0 = time.perf_counter()
    stop_at = t0 + deadline_s

    def worker():
        while True:
            with lock:
                if idx[0] >= len(tasks):
                    return
                if time.perf_counter() > stop_at:
                    totals["skipped"] += len(tasks) - idx[0]
                    idx[0] = len(tasks)
                    return
                fn = tasks[idx[0]]
                idx[0] += 1
            s = time.perf_counter()
            try:
                msgs, nbytes = fn()
                e = time.perf_counter()
                with lock:
                    lat.append(e - s)
                    totals["messages"] += msgs
                    totals["bytes"] += nbytes
            except Exception as ex:  # noqa: BLE001 - counted and reported
                with lock:
                    totals["errors"] += 1
                    if len(errors) < 5:
                        errors.append("%s: %s" % (type(ex).__name__, ex))

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(1, min(concurrency, len(tasks))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline_s + SOCK_TIMEOUT * 2)
    wall = time.perf_counter() - t0
    return dict(wall=wall, latencies=lat, sessions=len(lat),
                error_samples=errors, **totals)


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


# ---------------------------------------------------------------------------
# SVG
# ---------------------------------------------------------------------------

def svg_plot(series, targets, title, xlabel, ylabel, path):
    """series: {name: [(x, y), ...]} with x > 0 (log axis); targets:
    {label: y}. Writes a small standalone SVG."""
    W, H, L, R, T, B = 720, 420, 70, 190, 40, 60
    pts = [p for s in series.values() for p in s if p[1] is not None]
    if not pts:
        return False
    import math
    xs = [math.log10(p[0]) for p in pts]
    ys = [p[1] for p in pts] + list(targets.values()) + [1.0]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs))
    if x1 == x0:
        x1 = x0 + 1
    y0 = min(0.8, math.floor(min(ys) * 20) / 20)
    y1 = max(1.1, math.ceil(max(ys) * 20) / 20)

    def X(x):
        return L + (math.log10(x) - x0) / (x1 - x0) * (W - L - R)

    def Y(y):
        return T + (y1 - y) / (y1 - y0) * (H - T - B)

    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
              "#8c564b", "#17becf", "#e377c2"]
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="12">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="14">%s</text>' % (L, _esc(title))]
    # grid + axes
    step = 0.05 if (y1 - y0) <= 0.5 else 0.1
    y = y0
    n = 0
    while y <= y1 + 1e-9 and n < 100:
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                 % (L, Y(y), W - R, Y(y)))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>'
                 % (L - 6, Y(y) + 4, y))
        y += step
        n += 1
    for e in range(x0, x1 + 1):
        xv = 10 ** e
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>'
                 % (X(xv), T, X(xv), H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
                 % (X(xv), H - B + 18, "{:,}".format(xv)))
    o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" '
             'stroke="#333"/>' % (L, T, W - L - R, H - T - B))
    o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>'
             % ((L + W - R) / 2, H - 18, _esc(xlabel)))
    o.append('<text x="16" y="%.1f" transform="rotate(-90 16 %.1f)" '
             'text-anchor="middle">%s</text>'
             % ((T + H - B) / 2, (T + H - B) / 2, _esc(ylabel)))
    for i, (label, yv) in enumerate(sorted(targets.items())):
        o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" '
                 'stroke-dasharray="6,4"/>' % (L, Y(yv), W - R, Y(yv)))
        o.append('<text x="%d" y="%.1f" fill="#666">%s</text>'
                 % (W - R + 4, Y(yv) + 4, _esc(label)))
    # legend in the right margin, below the target labels
    ly = max(T + (H - T - B) // 2, max([Y(v) for v in targets.values()] +
                                        [T]) + 10) - 40
    for i, (name, s) in enumerate(series.items()):
        col = colors[i % len(colors)]
        s = [p for p in s if p[1] is not None]
        if not s:
            continue
        d = " ".join("%s%.1f,%.1f" % ("M" if j == 0 else "L", X(x), Y(y))
                     for j, (x, y) in enumerate(s))
        o.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"/>'
                 % (d, col))
        for x, y in s:
            o.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s">'
                     '<title>%s: %s messages, ratio %.3f</title></circle>'
                     % (X(x), Y(y), col, _esc(name), x, y))
        ly += 18
        o.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" '
                 'stroke-width="2"/>' % (W - R + 8, ly + 40, W - R + 28,
                                          ly + 40, col))
        o.append('<text x="%d" y="%d">%s</text>' % (W - R + 32, ly + 44,
                                                    _esc(name)))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True


def _esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))
