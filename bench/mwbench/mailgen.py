"""Deterministic test mail for the benchmark: MailGen makes messages of
realistic sizes; deliver() writes them into maildir new/ the way an LDA
does (LF line ends, ,S=,W= in the name)."""

import os
import random

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
