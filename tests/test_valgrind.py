"""Valgrind memcheck of the mail processes: a sandbox whose pop3 and imap
services run under valgrind (service { executable = valgrind ... }) with
mailward and the audit writer, a few POP3 sessions (RETR/DELE/QUIT under
leave-on-server, expunge-after-retrieval, a dropped connection) and IMAP
sessions (post-login ID with hostile values, FETCH, STORE + EXPUNGE,
EXPUNGE denied by policy).

Fails on any memcheck error (invalid read/write, uninitialised value,
bad free, ...) and on "definitely lost" / "indirectly lost" leaks whose
allocation stack runs through mailward (its plugins, the core linked
into lib20_mailward_plugin.so). Leaks of Dovecot's own are reported (as a
pytest warning and in the report file) but not failed.

The valgrind XML and text reports of each process and a summary
(report.txt) are written to pytest's tmp_path (<tmp>/valgrind/). Takes about a minute (each mail process starts
under valgrind in a few seconds)."""
import glob
import os
import re
import shutil
import time
import warnings
import xml.etree.ElementTree as ET

import pytest

import mwharness
from mwharness import make_message, pop3, pop3_drop, imap

import imaplib
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))

VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"
DOVECOT_LIBEXEC = next((d for d in ("/usr/lib/dovecot", "/usr/libexec/dovecot")
                        if os.path.exists(os.path.join(d, "imap"))),
                       "/usr/lib/dovecot")

pytestmark = pytest.mark.skipif(
    not os.access(VALGRIND, os.X_OK),
    reason="valgrind not installed (apt-get install valgrind)")

VG_EXIT = 99
# a stack frame in mailward's code: its modules (the core is linked into
# lib20_mailward_plugin.so) or its source files
MW_OBJ = re.compile(r"mailward")
MW_FILE = re.compile(r"^(mw-[a-z0-9-]+|mailward-[a-z0-9-]+|"
                     r"(pop3|imap|doveadm)-mailward-plugin)\.c$")
FAIL_LEAKS = ("Leak_DefinitelyLost", "Leak_IndirectlyLost")


def vg_service(name, outdir):
    """A service block running Dovecot's `name` binary under memcheck,
    one XML report (and one text log) per process."""
    args = [VALGRIND, "--tool=memcheck", "--vgdb=no",
            # keep symbols of plugins Dovecot dlclose()s before exit
            "--keep-debuginfo=yes",
            "--leak-check=full",
            "--show-leak-kinds=definite,indirect,possible",
            "--errors-for-leak-kinds=definite,indirect",
            "--num-callers=40", "--error-exitcode=%d" % VG_EXIT,
            "--xml=yes", "--xml-file=%s/%s.%%p.xml" % (outdir, name),
            "--log-file=%s/%s.%%p.log" % (outdir, name),
            os.path.join(DOVECOT_LIBEXEC, name)]
    return ("service %s {\n  executable = %s\n"
            # valgrind reserves far more address space than Dovecot's
            # default 256 MB vsz_limit allows (2.4 spells no limit
            # "unlimited", 2.3 "0")
            "  vsz_limit = %s\n}\n" % (
                name, " ".join(args),
                "unlimited" if mwharness.DOVECOT_24 else "0"))


def frames(err):
    stack = err.find("stack")
    out = []
    for fr in (stack.findall("frame") if stack is not None else []):
        out.append({k: fr.findtext(k) or "" for k in
                    ("obj", "fn", "dir", "file", "line")})
    return out


def is_mailward_frame(fr):
    return bool(MW_OBJ.search(os.path.basename(fr["obj"])) or
                MW_FILE.match(fr["file"]))


def format_error(path, err):
    kind = err.findtext("kind")
    what = err.findtext("what") or err.findtext("xwhat/text") or ""
    lines = ["%s (%s): %s" % (kind, os.path.basename(path), what)]
    for fr in frames(err):
        where = ("%s:%s" % (fr["file"], fr["line"]) if fr["file"]
                 else os.path.basename(fr["obj"]))
        lines.append("    %s %s%s" % (fr["fn"] or "???", where,
                                      "   <-- mailward"
                                      if is_mailward_frame(fr) else ""))
    return "\n".join(lines)


def parse_reports(outdir):
    """Returns (reports, problems): reports maps an XML path to its
    pid and error elements; problems lists unreadable reports."""
    reports, problems = {}, []
    for path in sorted(glob.glob(os.path.join(outdir, "*.xml"))):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            problems.append("%s: incomplete valgrind XML (%s)" % (path, e))
            continue
        reports[path] = {"pid": root.findtext("pid"),
                         "errors": root.findall("error")}
    return reports, problems


def complete_reports(outdir):
    n = 0
    for path in glob.glob(os.path.join(outdir, "*.xml")):
        with open(path, "rb") as f:
            if b"</valgrindoutput>" in f.read():
                n += 1
    return n


def imap_id(i, params):
    args = "(" + " ".join(params) + ")"
    typ, data = i._simple_command("ID", args)
    assert typ == "OK", data


def run_sessions(sbx):
    """The sessions; returns how many mail processes they started."""
    n = 0
    # leave-on-server: RETR + DELE + QUIT, then the next session of the
    # same device sees the deleted message hidden
    p = pop3(sbx, "keep")
    assert p.stat()[0] == 4
    assert b"Subject: keep 0" in p.retr(1)[1]
    assert p.dele(2).startswith(b"+OK")
    p.uidl()
    p.quit()
    n += 1
    mwharness.wait_session_end(sbx, "keep", timeout=30)
    p = pop3(sbx, "keep")
    assert p.stat()[0] == 3
    p.top(1, 0)
    p.quit()
    n += 1
    assert sbx.maildir_count("keep") == 4

    # expunge-after-retrieval: RETR + DELE + QUIT expunges
    p = pop3(sbx, "gone")
    assert p.stat()[0] == 4
    p.retr(1)
    p.retr(2)
    p.dele(3)
    p.quit()
    n += 1
    mwharness.wait_session_end(sbx, "gone", timeout=30)
    assert sbx.maildir_count("gone") == 1
    # a connection dropped without QUIT (no UPDATE state)
    p = pop3(sbx, "gone")
    p.retr(1)
    pop3_drop(p)
    n += 1

    # IMAP: post-login ID (hostile values), FETCH, STORE + EXPUNGE
    i = imap(sbx, "keep")
    imap_id(i, ['"name"', '"vg \\"client\\" \\\\ \x7f"', '"version"',
                '"1.0"', '"os"', "{300}\r\n" + "x" * 300, '"vendor"',
                "NIL"])
    typ, data = i.select("INBOX")
    assert typ == "OK", data
    typ, data = i.fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])")
    assert typ == "OK", data
    typ, data = i.fetch("1", "(BODY[])")
    assert typ == "OK", data
    typ, data = i.store("1", "+FLAGS", "(\\Deleted)")
    assert typ == "OK", data
    typ, data = i.expunge()
    assert typ == "OK", data
    i.logout()
    n += 1
    # IMAP EXPUNGE refused by mailward_imap_expunge = deny
    i = imap(sbx, "deny")
    imap_id(i, ['"name"', '"vg-deny"'])
    i.select("INBOX")
    i.fetch("1:2", "(BODY.PEEK[])")
    i.store("1:2", "+FLAGS", "(\\Deleted)")
    i.expunge()
    i.close()
    i.logout()
    n += 1
    assert sbx.maildir_count("deny") == 4
    return n


def test_mail_processes_under_valgrind(sandbox_factory, tmp_path):
    outdir = str(tmp_path / "valgrind")
    os.makedirs(outdir)
    os.chmod(str(tmp_path), 0o755)
    os.chmod(outdir, 0o777)
    users = {"keep": {"mailward_pop3_policy": "leave-on-server"},
             "gone": {"mailward_pop3_policy": "expunge-after-retrieval"},
             "deny": {"mailward_imap_expunge": "deny"}}
    sbx = sandbox_factory(users=users, audit=True,
                          extra_conf=vg_service("pop3", outdir) +
                          vg_service("imap", outdir))
    # memcheck findings end a process with VG_EXIT: the XML reports
    # below are the verdict, not the master's log line
    sbx.log_allow.append(r"service\((pop3|imap)\): child \d+ returned "
                         r"error %d" % VG_EXIT)
    for user in users:
        sbx.deliver(user, [make_message(i, subject="%s %d" % (user, i))
                           for i in range(4)])

    started = run_sessions(sbx)

    # every mail process exits and writes its complete report
    deadline = time.time() + 60
    while complete_reports(outdir) < started and time.time() < deadline:
        time.sleep(0.2)
    sbx.stop(check=True)

    reports, problems = parse_reports(outdir)
    assert len(reports) >= started, (
        "expected %d valgrind reports, found %d in %s: are the mail "
        "processes running under valgrind?\n%s" % (
            started, len(reports), outdir, sbx.read_log()[-3000:]))
    failures, dovecot_leaks, other = {}, {}, {}
    for path, rep in reports.items():
        for err in rep["errors"]:
            kind = err.findtext("kind") or ""
            mw = any(is_mailward_frame(fr) for fr in frames(err))
            if not kind.startswith("Leak_") or (kind in FAIL_LEAKS and mw):
                bucket = failures
            elif kind in FAIL_LEAKS:
                bucket = dovecot_leaks
            else:
                bucket = other
            # the same finding in several processes is listed once
            key = (kind, tuple((fr["fn"], fr["file"], fr["line"])
                               for fr in frames(err)))
            if key in bucket:
                bucket[key][1] += 1
            else:
                bucket[key] = [format_error(path, err), 1]
    failures, dovecot_leaks, other = [
        ["%s\n    (reported %d time%s)" % (t, n, "" if n == 1 else "s")
         for t, n in b.values()] for b in (failures, dovecot_leaks, other)]

    summary = ("valgrind: %d mail processes, %d distinct failing findings, "
               "%d Dovecot-own leaks, %d possible leaks" % (
                   len(reports), len(failures), len(dovecot_leaks),
                   len(other)))
    with open(os.path.join(outdir, "report.txt"), "w") as f:
        f.write(summary + "\n\n" + "\n\n".join(
            ["FAIL " + t for t in failures] +
            ["DOVECOT " + t for t in dovecot_leaks] +
            ["POSSIBLE " + t for t in other]) + "\n")
    print(summary)
    if dovecot_leaks or other:
        warnings.warn("%s (not attributed to mailward):\n%s" % (
            summary, "\n\n".join(dovecot_leaks + other)[:6000]))
    assert not problems, "\n".join(problems)
    assert not failures, "%s\n\n%s" % (summary, "\n\n".join(failures))
