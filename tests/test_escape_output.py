"""Human-facing output cannot spoof a terminal or a spreadsheet (issue 17
item 3): a Message-ID, mailbox name and IMAP ID value with U+009B (C1 CSI)
and U+202E (RIGHT-TO-LEFT OVERRIDE) written to the audit log by the real
writer from a real IMAP session are escaped by `mailward-audit query`,
`export --csv`, `doveadm mailward state/devices` and mailward's log lines,
while `export --json` gives the log's bytes exactly."""

import base64
import json
import os
import subprocess

import mwharness
from mwharness import imap, imap_id, make_message
from test_audit_writer import AuditConn

CSI = "\u009b"
RLO = "\u202e"
ZWSP = "\u200b"
RAW = [s.encode() for s in (CSI, RLO, ZWSP)]
ESC = [b"\\xc2\\x9b", b"\\xe2\\x80\\xae", b"\\xe2\\x80\\x8b"]


def mutf7(s):
    """RFC 3501 modified UTF-7 mailbox name."""
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=")
                       .replace("/", ",") + "-")
            buf.clear()
    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def assert_escaped(data, what, need=(0, 1)):
    for raw in RAW:
        assert raw not in data, "%s has raw %r:\n%r" % (what, raw, data)
    for i in need:
        assert ESC[i] in data, "%s lacks %r:\n%r" % (what, ESC[i], data)


def cli(*args):
    return subprocess.run([mwharness.AUDIT_CLI] + list(args),
                          capture_output=True, timeout=60)


def test_outputs_escape_c1_and_bidi(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}},
                          audit=True)
    box = "Box" + CSI + "31m" + RLO + "X"
    msgid = "<a" + CSI + "[31m" + RLO + "@spoof.invalid>"
    i = imap(sbx)
    i._encoding = "utf-8"  # 8-bit ID values
    imap_id(i, ["name", "Evil" + CSI + "Mail" + ZWSP, "os", "x" + RLO + "y"])
    assert i.create('"%s"' % mutf7(box))[0] == "OK"
    assert i.append('"%s"' % mutf7(box), None, None,
                    make_message(1, msgid=msgid))[0] == "OK"
    assert i.select('"%s"' % mutf7(box))[0] == "OK"
    assert i.fetch("1", "(BODY[])")[0] == "OK"
    # a refused expunge (legal hold) is logged naming the mailbox
    i.store("1", "+FLAGS", "\\Deleted")
    try:
        i.expunge()
    except i.error:
        pass
    i.logout()
    sbx.wait_log(r"mailward: Refused to expunge 1 message\(s\) in "
                 r"Box\\xc2\\x9b31m\\xe2\\x80\\xaeX")
    # cells a spreadsheet would run as formulas, through the real writer
    c = AuditConn(sbx.audit_socket_path)
    c.event('"service":"pop3","session":"f1","event":"retr",'
            '"user":"alice","mailbox":"-2+3","uid":7,'
            '"message_id":"=HYPERLINK(\\"http://x.invalid\\")"')
    c.event('"service":"pop3","session":"f1","event":"retr",'
            '"user":"alice","mailbox":"@SUM(A1)","uid":8,'
            '"message_id":"\\tx\\\\y\\"z"')
    assert c.flush()[0] == ["OK"]
    c.close()

    # doveadm: the mailbox name and the device label, table and tab
    for fmt in (None, "tab"):
        out = sbx.doveadm("mailward", "state", "-u", "alice",
                          fmt=fmt).stdout.encode()
        assert_escaped(out, "doveadm mailward state")
        assert b"Box\\xc2\\x9b31m\\xe2\\x80\\xaeX" in out, out
        out = sbx.doveadm("mailward", "devices", "-u", "alice",
                          fmt=fmt).stdout.encode()
        assert_escaped(out, "doveadm mailward devices", need=(0, 1, 2))
    # mailward's own log lines quoting the label
    lines = [l for l in sbx.read_log().splitlines() if "mailward" in l]
    assert any("registered: imap" in l for l in lines)
    assert_escaped("\n".join(lines).encode(), "mailward log lines")
    sbx.stop(check=True)
    log = sbx.audit_log_path
    with open(log, "rb") as f:
        log_lines = f.read().splitlines()
    # the log itself keeps the exact text (JSON, reversible)
    fetch = [json.loads(l) for l in log_lines
             if b'"event":"fetch"' in l][0]
    assert fetch["mailbox"] == box and fetch["message_id"] == msgid, fetch

    r = cli("query", "--user", "alice", log)
    assert r.returncode == 0, r.stderr
    assert_escaped(r.stdout, "query")
    assert b'"mailbox":"Box\\xc2\\x9b31m\\xe2\\x80\\xaeX"' in r.stdout
    assert b"<a\\xc2\\x9b[31m\\xe2\\x80\\xae@spoof.invalid>" in r.stdout
    r = cli("query", "--msg", msgid, log)
    assert r.returncode == 0 and b'"event":"fetch"' in r.stdout
    assert_escaped(r.stdout, "query --msg")

    r = cli("export", "--csv", "--user", "alice", log)
    assert r.returncode == 0, r.stderr
    assert_escaped(r.stdout, "export --csv")
    rows = r.stdout.split(b"\r\n")
    assert b'"Box\\xc2\\x9b31m\\xe2\\x80\\xaeX"' in r.stdout
    assert b'"\'=HYPERLINK(""http://x.invalid"")"' in r.stdout, rows
    assert b'"\'-2+3"' in r.stdout and b'"\'@SUM(A1)"' in r.stdout, rows
    # TAB at the start: defused and escaped; '\' escaped (reversible)
    assert b'"\'\\x09x\\x5cy""z"' in r.stdout, rows

    # JSON stays exact: the records as the log holds them, byte for byte
    r = cli("export", "--json", "--user", "alice", log)
    assert r.returncode == 0, r.stderr
    mine = [l for l in log_lines if json.loads(l).get("user") == "alice"]
    assert r.stdout == b"[\n" + b",\n".join(mine) + b"\n]\n"
    assert RAW[0] in r.stdout and RAW[1] in r.stdout
    assert [x["message_id"] for x in json.loads(r.stdout)
            if x.get("uid") == 1 and x["event"] == "fetch"] == [msgid]

    # verify's text output: a file name with C1/bidi in a FAIL line
    tampered = os.path.join(os.path.dirname(log), "copy" + CSI + RLO +
                            ".jsonl")
    data = b"\n".join(log_lines) + b"\n"
    with open(tampered, "wb") as f:
        f.write(data.replace(b'"user":"alice"', b'"user":"alicf"', 1))
    r = cli("verify", "--key", os.path.join(sbx.audit_keys, "verify.key"),
            tampered)
    assert r.returncode == 1 and r.stdout.startswith(b"FAIL: "), r
    assert_escaped(r.stdout, "verify FAIL line")
    assert b"copy\\xc2\\x9b\\xe2\\x80\\xae.jsonl" in r.stdout, r.stdout
    r = cli("verify", "--key", os.path.join(sbx.audit_keys, "verify.key"),
            tampered + "x")
    assert r.returncode == 3
    assert_escaped(r.stderr, "verify error")
    r = cli("query", "--user", "alice", tampered + "x")
    assert r.returncode == 3
    assert r.stderr == b"mailward-audit: open(" + tampered.encode().replace(
        RAW[0], ESC[0]).replace(RAW[1], ESC[1]) + \
        b"x) failed: No such file or directory\n", r.stderr


# Invisible and blank-looking characters (attack review 5, finding 9): one
# of each kind the escaping covers: soft hyphen, combining grapheme joiner,
# Hangul fillers, no-break/ogham/en/narrow/ideographic spaces, paragraph
# separator, variation selectors 16 and 17, a tag, the last default
# ignorable U+E0FFF and a Mongolian free variation selector.
INVISIBLE = ["\u00ad", "\u034f", "\u115f", "\u1160", "\u3164", "\uffa0",
             "\u00a0", "\u1680", "\u2000", "\u202f", "\u3000", "\u2029",
             "\ufe0f", "\U000e0100", "\U000e0041", "\U000e0fff", "\u180b"]


def esc_utf8(ch):
    return "".join("\\x%02x" % b for b in ch.encode()).encode()


def assert_invisible_escaped(data, what, need=True):
    for ch in INVISIBLE:
        assert ch.encode() not in data, \
            "%s has raw U+%04X:\n%r" % (what, ord(ch), data)
        if need:
            assert esc_utf8(ch) in data, \
                "%s lacks U+%04X escaped:\n%r" % (what, ord(ch), data)


def test_outputs_escape_invisible_and_whitespace(sandbox_factory, tmp_path):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}},
                          audit=True, audit_args="-T 3")
    s = "".join(INVISIBLE)
    box = "Box" + s
    msgid = "<a" + s + "@spoof.invalid>"
    i = imap(sbx)
    i._encoding = "utf-8"
    imap_id(i, ["name", "Mail" + s])
    assert i.create('"%s"' % mutf7(box))[0] == "OK"
    assert i.append('"%s"' % mutf7(box), None, None,
                    make_message(1, msgid=msgid))[0] == "OK"
    assert i.select('"%s"' % mutf7(box))[0] == "OK"
    assert i.fetch("1", "(BODY[])")[0] == "OK"
    i.store("1", "+FLAGS", "\\Deleted")
    try:
        i.expunge()
    except i.error:
        pass
    i.logout()
    sbx.wait_log(r"mailward: Refused to expunge 1 message\(s\) in Box")
    for fmt in (None, "tab"):
        out = sbx.doveadm("mailward", "state", "-u", "alice",
                          fmt=fmt).stdout.encode()
        assert_invisible_escaped(out, "doveadm mailward state")
        out = sbx.doveadm("mailward", "devices", "-u", "alice",
                          fmt=fmt).stdout.encode()
        # the label is cut at 128 bytes: all of it is escaped
        assert_invisible_escaped(out, "doveadm mailward devices",
                                 need=False)
        assert b"Mail" + esc_utf8(INVISIBLE[0]) in out, out
    lines = [l for l in sbx.read_log().splitlines() if "mailward" in l]
    assert_invisible_escaped("\n".join(lines).encode(), "log lines")
    sbx.stop(check=True)
    log = sbx.audit_log_path
    with open(log, "rb") as f:
        log_lines = f.read().splitlines()
    fetch = [json.loads(l) for l in log_lines
             if b'"event":"fetch"' in l][0]
    assert fetch["mailbox"] == box and fetch["message_id"] == msgid, fetch

    r = cli("query", "--user", "alice", log)
    assert r.returncode == 0, r.stderr
    assert_invisible_escaped(r.stdout, "query")
    r = cli("export", "--csv", "--user", "alice", log)
    assert r.returncode == 0, r.stderr
    assert_invisible_escaped(r.stdout, "export --csv")
    key = os.path.join(sbx.audit_keys, "verify.key")
    pub = os.path.join(sbx.audit_keys, "checkpoint.pub")
    bundle = str(tmp_path / "alice.proof")
    r = cli("prove", "--user", "alice", "--key", key, "--pubkey", pub,
            "-o", bundle, log)
    assert r.returncode == 0, r
    r = cli("verify-proof", "--pubkey", pub, bundle)
    assert r.returncode == 0, r
    assert_invisible_escaped(r.stdout + r.stderr, "verify-proof")
    # verify's FAIL line names the file; its name has them all
    tampered = str(tmp_path / ("copy" + s + ".jsonl"))
    with open(tampered, "wb") as f:
        f.write(b"\n".join(log_lines).replace(b'"uid":1', b'"uid":7', 1)
                + b"\n")
    r = cli("verify", "--key", key, "--pubkey", pub, tampered)
    assert r.returncode == 1, r
    assert_invisible_escaped(r.stdout, "verify FAIL line")
