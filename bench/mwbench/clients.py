"""Small raw-socket POP3 and IMAP clients (no poplib/imaplib line-by-line
parsing, so the load generator stays cheap) and run_sessions(), which
runs a bounded task list on N client threads with a deadline. Everything
talks to 127.0.0.1 only; every socket has a timeout."""

import random
import re
import socket
import threading
import time

HOST = "127.0.0.1"
SOCK_TIMEOUT = 60

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


def pop3_dele_every(port, user, password, step=2):
    """Warm-up helper: DELE messages 1, 1 + step, ... (pipelined), QUIT.
    Returns how many were deleted."""
    c = Conn(port, timeout=300)
    try:
        c.readline()
        _pop3_cmd(c, b"USER %s\r\n" % user.encode())
        _pop3_cmd(c, b"PASS %s\r\n" % password.encode())
        n = int(_pop3_cmd(c, b"STAT\r\n").split()[1])
        nums = list(range(1, n + 1, step))
        c.send(b"".join(b"DELE %d\r\n" % k for k in nums))
        for _ in nums:
            line = c.readline()
            if not line.startswith(b"+OK"):
                raise ProtoError("DELE -> %r" % line[:200])
        _pop3_cmd(c, b"QUIT\r\n")
        return len(nums)
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

    def append(self, data):
        """APPEND data to INBOX (a synchronizing literal); returns the
        untagged lines."""
        self.tagno += 1
        tag = b"a%d" % self.tagno
        self.c.send(tag + b" APPEND INBOX {%d}\r\n" % len(data))
        line = self.c.readline()
        if not line.startswith(b"+"):
            raise ProtoError("APPEND -> %r" % line[:200])
        self.c.send(data + b"\r\n")
        untagged = []
        while True:
            line = self.c.readline()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise ProtoError("APPEND -> %r" % line[:200])
                return untagged
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


# imaptest's default mix, roughly: its command probabilities (FETCH
# flags and bodies, STORE, SEARCH, STATUS, NOOP, APPEND, EXPUNGE)
MIX_OPS = (("fetch-flags", 25), ("fetch-body", 20), ("store", 15),
           ("search", 10), ("status", 5), ("noop", 5), ("append", 10),
           ("expunge", 10))


def _mix_count(untagged, n):
    """The message count after a command's untagged EXISTS/EXPUNGE."""
    for l in untagged:
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE)", l)
        if m:
            n = int(m.group(1)) if m.group(2) == b"EXISTS" else n - 1
    return n


def _mix_command(im, op, rng, n, message):
    """One command of the mix on a mailbox of n messages; returns
    (untagged lines, bodies fetched)."""
    k = rng.randint(1, n) if n else 0
    if op == "append" or not n:
        return im.append(message), 0
    if op == "fetch-flags":
        return im.cmd(b"FETCH 1:* (UID FLAGS)")[0], 0
    if op == "fetch-body":
        u, _, got = im.cmd(b"FETCH %d (BODY[])" % k)
        return u, got
    if op == "store":
        return im.cmd(b"STORE %d %sFLAGS (\\Seen \\Flagged)"
                      % (k, rng.choice((b"+", b"-"))))[0], 0
    if op == "search":
        return im.cmd(b"SEARCH UNSEEN")[0], 0
    if op == "status":
        return im.cmd(b"STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")[0], 0
    if op == "noop":
        return im.cmd(b"NOOP")[0], 0
    u = im.cmd(b"STORE %d +FLAGS.SILENT (\\Deleted)" % k)[0]
    return u + im.cmd(b"EXPUNGE")[0], 0


def imap_mix_session(port, user, password, seed, message, ops=20):
    """An imaptest-style random IMAP session: LOGIN, SELECT, `ops`
    commands drawn from MIX_OPS by a random generator seeded with `seed`
    (the same sessions for every configuration), LOGOUT. APPEND adds
    `message` (bytes, CRLF), EXPUNGE removes one message: the mailbox
    stays about its size. Returns (bodies fetched, bytes received)."""
    rng = random.Random(seed)
    names = [o for o, _ in MIX_OPS]
    weights = [w for _, w in MIX_OPS]
    im = Imap(port)
    try:
        im.cmd(b"LOGIN %s %s" % (user.encode(), password.encode()))
        n = _mix_count(im.cmd(b"SELECT INBOX")[0], 0)
        got = 0
        for _ in range(ops):
            op = rng.choices(names, weights)[0]
            untagged, g = _mix_command(im, op, rng, n, message)
            n = _mix_count(untagged, n)
            got += g
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
