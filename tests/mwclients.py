"""Third-party mail clients from Debian, driven against a Sandbox:
fetchmail, getmail6 and mbsync. Each run is bounded in time."""
import mailbox
import atexit
import os
import shutil
import subprocess
import tempfile

import mwharness


def run_fetchmail(sbx, user, workdir, keep=False, password=None,
                  timeout=60):
    """Fetches all messages of `user` over POP3 into workdir/out.mbox.
    Returns (returncode, output, messages)."""
    os.makedirs(workdir, exist_ok=True)
    mbox = os.path.join(workdir, "out.mbox")
    rc = os.path.join(workdir, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('set no syslog\n'
                'poll 127.0.0.1 service %d protocol pop3 auth password '
                'uidl\n'
                '  user "%s" there with password "%s" is "root" here\n'
                '  %s fetchall\n'
                '  sslproto ""\n'
                '  mda "/bin/sh -c \'cat >> %s\'"\n'
                % (sbx.pop3_port, user, password or mwharness.PASSWORD,
                   "keep" if keep else "nokeep", mbox))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=workdir)
    r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog",
                        "-i", os.path.join(workdir, "fetchids"),
                        "--pidfile", os.path.join(workdir, "fm.pid"), "-v"],
                       env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr, read_mbox_subjects(mbox)


def read_mbox_subjects(path):
    if not os.path.exists(path):
        return []
    # fetchmail's mda receives each message without a From_ line: split
    # on our test messages' first header
    data = open(path, "rb").read()
    parts = [p for p in data.split(b"From: sender@test.invalid") if p.strip()]
    subjects = []
    for p in parts:
        for line in p.splitlines():
            if line.lower().startswith(b"subject:"):
                subjects.append(line[8:].strip().decode())
                break
    return sorted(subjects)


def run_getmail(sbx, user, workdir, delete=True, timeout=60):
    """Fetches over POP3 with getmail6 into a Maildir of its own.
    Returns (returncode, output, subjects)."""
    # getmail refuses to deliver as root and runs as the test user, who
    # cannot enter pytest's private tmp_path: use a directory of our own
    if not hasattr(run_getmail, "dirs"):
        run_getmail.dirs = {}
    if workdir not in run_getmail.dirs:
        run_getmail.dirs[workdir] = tempfile.mkdtemp(prefix="mw-getmail-")
        atexit.register(shutil.rmtree, run_getmail.dirs[workdir], True)
        os.chmod(run_getmail.dirs[workdir], 0o755)
    workdir = run_getmail.dirs[workdir]
    md = os.path.join(workdir, "Maildir")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(md, sub), exist_ok=True)
    rc = os.path.join(workdir, "getmailrc")
    with open(rc, "w") as f:
        f.write("[retriever]\ntype = SimplePOP3Retriever\n"
                "server = 127.0.0.1\nport = %d\nusername = %s\n"
                "password = %s\n\n[destination]\ntype = Maildir\n"
                "path = %s/\n\n[options]\ndelete = %s\nread_all = false\n"
                "verbose = 2\n" % (sbx.pop3_port, user, mwharness.PASSWORD,
                                   md, "true" if delete else "false"))
    uid, gid = mwharness.ensure_test_user()
    for dirpath, dirnames, filenames in os.walk(workdir):
        os.chown(dirpath, uid, gid)
        for fn in filenames:
            os.chown(os.path.join(dirpath, fn), uid, gid)
    r = subprocess.run(["getmail", "--getmaildir", workdir, "--rcfile", rc],
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL, user=uid, group=gid,
                       env=dict(os.environ, HOME=workdir))
    subjects = []
    box = mailbox.Maildir(md, create=False)
    for key in box.keys():
        subjects.append(box[key]["Subject"])
    return r.returncode, r.stdout + r.stderr, sorted(subjects)


def run_mbsync(sbx, user, workdir, expunge="None", timeout=60):
    """Syncs the user's INBOX over IMAP with mbsync into workdir/local.
    Returns (returncode, output)."""
    os.makedirs(os.path.join(workdir, "local"), exist_ok=True)
    rc = os.path.join(workdir, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("IMAPAccount sbx\nHost 127.0.0.1\nPort %d\nUser %s\n"
                "Pass %s\nSSLType None\nAuthMechs LOGIN PLAIN\n\n"
                "IMAPStore remote\nAccount sbx\n\n"
                "MaildirStore local\nPath %s/local/\nInbox %s/local/INBOX\n\n"
                "Channel inbox\nFar :remote:INBOX\nNear :local:INBOX\n"
                "Sync All\nCreate Near\nExpunge %s\nSyncState *\n"
                % (sbx.imap_port, user, mwharness.PASSWORD, workdir, workdir,
                   expunge))
    r = subprocess.run(["mbsync", "-c", rc, "-V", "inbox"],
                       capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr
