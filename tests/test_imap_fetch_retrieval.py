"""Which IMAP fetches give a device the message (docs/admin-guide.md
"Which IMAP fetches count"), under expunge-after-all-devices with an IMAP
phone and a POP3 laptop: only the whole message's section (BODY[],
BODY.PEEK[], BINARY[], BINARY.PEEK[], RFC822), at once or in ranges of one
session that cover it from its first byte. A part, the text, a MIME header
or a range short of the end does not count, so the laptop's RETR+QUIT does
not expunge a message the phone never had whole.

Each case fetches message 1 with the form under test and message 2 with a
control of the opposite outcome (the whole BODY.PEEK[] beside a form that
does not count, BODY.PEEK[TEXT] beside one that does), then the laptop
RETRs both and QUITs: exactly the message the phone had whole is expunged,
and the audit log has one `fetch` record, of that message."""
import base64
import os

import pytest

import mwharness
from mwharness import imap, make_message, pop3, wait_session_end
from test_no_change_no_write import wait_no_mail_process


def multipart(n):
    """A two-part message (text + base64 attachment) of about 4 KB."""
    text = "".join("line %d of the text of message %d\r\n" % (k, n)
                   for k in range(80))
    blob = base64.encodebytes(bytes(range(256)) * 4).decode()
    blob = blob.replace("\n", "\r\n")
    return ("From: sender@test.invalid\r\nTo: user@test.invalid\r\n"
            "Subject: message %d\r\nMessage-ID: <fetch-%d@test.invalid>\r\n"
            "Date: Sat, 28 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n"
            "--b%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n"
            "--b%d\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b%d--\r\n"
            % (n, n, n, n, text, n, blob, n)).encode()


CHUNK = 1024


def chunks(item, size, step=CHUNK, start=0):
    """FETCH items of ranges of step bytes from start to size."""
    return ["%s<%d.%d>" % (item, o, step) for o in range(start, size, step)]


# form: (what the phone sends for message 1 as a function of
# (RFC822.SIZE, BINARY.SIZE[]): a list of FETCH item lists, one FETCH each;
# "UID" before a list sends UID FETCH, "RECONNECT" starts a new session),
# whether it gives the phone the message
FORMS = {
    # the whole message at once
    "BODY.PEEK[]": (lambda s, b: [["BODY.PEEK[]"]], True),
    "BODY[]": (lambda s, b: [["BODY[]"]], True),
    "RFC822": (lambda s, b: [["RFC822"]], True),
    "BINARY.PEEK[]": (lambda s, b: [["BINARY.PEEK[]"]], True),
    "BINARY[]": (lambda s, b: [["BINARY[]"]], True),
    "BODY.PEEK[]<0.size>": (
        lambda s, b: [["BODY.PEEK[]<0.%d>" % s]], True),
    "BODY.PEEK[]<0.more>": (
        lambda s, b: [["BODY.PEEK[]<0.%d>" % (s + 1000)]], True),
    "BODY.PEEK[]<0>": (lambda s, b: [["BODY.PEEK[]<0>"]], True),
    # in chunks (Thunderbird), over several FETCH commands or in one
    "chunks-commands": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s)], True),
    "chunks-one-command": (
        lambda s, b: [chunks("BODY.PEEK[]", s)], True),
    "chunks-uid-fetch": (
        lambda s, b: ["UID"] + [[c] for c in chunks("BODY.PEEK[]", s)],
        True),
    "chunks-overlapping": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s, 2 * CHUNK)]
        + [[c] for c in chunks("BODY.PEEK[]", s, CHUNK, CHUNK)], True),
    "chunks-binary": (
        lambda s, b: [[c] for c in chunks("BINARY.PEEK[]", b)], True),
    # partial sections and ranges: never the whole message
    "BODY.PEEK[]<0.1>": (lambda s, b: [["BODY.PEEK[]<0.1>"]], False),
    "BODY[]<0.1>": (lambda s, b: [["BODY[]<0.1>"]], False),
    "BODY.PEEK[]<0.size-1>": (
        lambda s, b: [["BODY.PEEK[]<0.%d>" % (s - 1)]], False),
    "BODY.PEEK[]<1>": (lambda s, b: [["BODY.PEEK[]<1>"]], False),
    "BODY.PEEK[TEXT]<0.5>": (lambda s, b: [["BODY.PEEK[TEXT]<0.5>"]], False),
    "BODY.PEEK[TEXT]": (lambda s, b: [["BODY.PEEK[TEXT]"]], False),
    "BODY[TEXT]": (lambda s, b: [["BODY[TEXT]"]], False),
    "RFC822.TEXT": (lambda s, b: [["RFC822.TEXT"]], False),
    "BODY.PEEK[1]": (lambda s, b: [["BODY.PEEK[1]"]], False),
    "BODY[2]": (lambda s, b: [["BODY[2]"]], False),
    "BODY.PEEK[1.MIME]": (lambda s, b: [["BODY.PEEK[1.MIME]"]], False),
    "BINARY.PEEK[1]": (lambda s, b: [["BINARY.PEEK[1]"]], False),
    "BINARY[2]": (lambda s, b: [["BINARY[2]"]], False),
    "BINARY.PEEK[]<0.10>": (lambda s, b: [["BINARY.PEEK[]<0.10>"]], False),
    "BODY.PEEK[HEADER]+[TEXT]": (
        lambda s, b: [["BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]"]], False),
    "BODY.PEEK[1]+[2]": (
        lambda s, b: [["BODY.PEEK[1]", "BODY.PEEK[2]"]], False),
    "chunks-short": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s)[:-1]], False),
    "chunks-gap": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s)[::2]], False),
    "chunks-later-first": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s)[1:]]
        + [[chunks("BODY.PEEK[]", s)[0]]], False),
    "chunks-two-sessions": (
        lambda s, b: [[c] for c in chunks("BODY.PEEK[]", s)[:2]]
        + ["RECONNECT"] + [[c] for c in chunks("BODY.PEEK[]", s)[2:]],
        False),
    "chunks-body-then-binary": (
        lambda s, b: [[chunks("BODY.PEEK[]", s)[0]]]
        + [[c] for c in chunks("BINARY.PEEK[]", b)[1:]], False),
}

USERS = {"f%d" % k: form for k, form in enumerate(FORMS)}


@pytest.fixture(scope="module")
def sbx():
    """One sandbox for every form, a user each: expunge-after-all-devices,
    a POP3 laptop and an IMAP phone (app passwords), audit on."""
    box = mwharness.Sandbox(
        users={u: {"mailward_pop3_policy": "expunge-after-all-devices"}
               for u in USERS},
        app_passwords={u: {"laptoppw": "laptop", "phonepw": "phone"}
                       for u in USERS},
        audit=True)
    box.start()
    yield box
    box.stop(check=True)
    if os.environ.get("MAILWARD_KEEP") is None:
        box.cleanup()


def sizes(i, seq):
    """RFC822.SIZE and BINARY.SIZE[] of message seq (neither counts)."""
    typ, data = i.fetch(seq, "(RFC822.SIZE BINARY.SIZE[])")
    assert typ == "OK", data
    words = data[0].decode().replace("(", " ").replace(")", " ").split()
    return (int(words[words.index("RFC822.SIZE") + 1]),
            int(words[words.index("BINARY.SIZE[]") + 1]))


def phone_fetches(sbx, user, commands, control):
    """The phone fetches message 1 by commands, message 2 by control."""
    i = imap(sbx, user, password="phonepw")
    i.select("INBOX")
    uid = False
    for cmd in commands:
        if cmd == "UID":
            uid = True
            continue
        if cmd == "RECONNECT":
            i.logout()
            i = imap(sbx, user, password="phonepw")
            i.select("INBOX")
            continue
        items = "(%s)" % " ".join(cmd)
        typ, data = (i.uid("FETCH", "1", items) if uid
                     else i.fetch("1", items))
        assert typ == "OK" and data[0] is not None, (cmd, data)
    typ, data = i.fetch("2", "(%s)" % control)
    assert typ == "OK", data
    i.logout()
    # the phone's session has written its state before the laptop's QUIT
    wait_no_mail_process(sbx)


@pytest.mark.parametrize("form", list(FORMS))
def test_fetch_form(sbx, form):
    user = [u for u, f in USERS.items() if f == form][0]
    commands, counts = FORMS[form]
    # both devices known before the mail arrives
    pop3(sbx, user, password="laptoppw").quit()
    wait_session_end(sbx, user)
    imap(sbx, user, password="phonepw").logout()
    sbx.deliver(user, [multipart(1), multipart(2)])

    i = imap(sbx, user, password="phonepw")
    i.select("INBOX")
    size, binary_size = sizes(i, "1")
    i.logout()
    control = "BODY.PEEK[TEXT]" if counts else "BODY.PEEK[]"
    phone_fetches(sbx, user, commands(size, binary_size), control)

    # the laptop downloads both: the one the phone has whole goes
    p = pop3(sbx, user, password="laptoppw")
    p.retr(1)
    p.retr(2)
    p.quit()
    wait_session_end(sbx, user, count=2)
    kept = "message 2" if counts else "message 1"
    assert sbx.maildir_subjects(user) == [kept], (form, size)

    # one `fetch` record, of the message the phone had whole
    fetched = [r["uid"] for r in sbx.audit_records()
               if r.get("user") == user and r["event"] == "fetch"]
    assert fetched == [1 if counts else 2], fetched
