"""Per-device records survive a regenerated mailbox GUID (lost index files
of an mbox INBOX, lost dovecot-uidlist of a maildir), and two different
mbox messages that share one Dovecot GUID (same headers, no Message-ID)
are told apart: hiding one does not hide the other. A deleted mailbox's
records go with it."""
import glob
import os
import re
import shutil
import subprocess
import time

from mwharness import imap, imap_id, make_message, pop3, wait_session_end

# mbox:~/mail:INBOX=~/inbox (2.3), mail_inbox_path (2.4)
MBOX_CONF = dict(mail_driver="mbox",
                 mail_path={"2.3": "~/mail:INBOX=~/inbox", "2.4": "~/mail"},
                 settings={"mail_inbox_path": {"2.4": "~/inbox"}})


def _write_mbox(sbx, user, messages):
    home = sbx.home(user)
    os.makedirs(os.path.join(home, "mail"), exist_ok=True)
    with open(os.path.join(home, "inbox"), "wb") as f:
        for msg in messages:
            f.write(b"From sender@test.invalid Sat Nov 28 12:00:00 2026\n")
            f.write(msg.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n\n")
    sbx._chown_tree(home)


def _subjects(p):
    subjects = []
    for n in range(1, p.stat()[0] + 1):
        for line in p.top(n, 0)[1]:
            if line.lower().startswith(b"subject:"):
                subjects.append(line[8:].strip().decode())
    return subjects


def _db_entries(sbx, db, user="alice"):
    """Entries of one LMDB database of the user's state store."""
    r = subprocess.run(["mdb_stat", "-s", db, sbx.state_dir(user)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return int(re.search(r"Entries: (\d+)", r.stdout).group(1))


def _wait_exit(log_line):
    """Waits until the mail process that logged the line has exited (it
    may write index files until then)."""
    pid = int(re.search(r"\)<(\d+)><", log_line).group(1))
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("process %d did not exit" % pid)


def _sandbox(sandbox_factory, mail=None):
    return sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "phone"}},
        **(mail or {}))


def _dele_two_and_lose_index(sbx, lose_index):
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 5
    p.dele(1)
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    p = pop3(sbx, password="phonepw")
    before = _subjects(p)
    p.quit()
    lines = wait_session_end(sbx, "alice", count=2)
    assert before == ["message 2", "message 3", "message 4"]
    _wait_exit(lines[-1])
    lose_index()
    p = pop3(sbx, password="phonepw")
    after = _subjects(p)
    p.quit()
    wait_session_end(sbx, "alice", count=3)
    assert after == before
    sbx.wait_log(r"pop3\(alice\).*mailward: Mailbox INBOX: GUID changed "
                 r"from [0-9a-f]{32} to [0-9a-f]{32} \(index rebuilt\): "
                 r"device records carried over")
    # the old GUID's records moved: one mailbox in the state
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert len(rows) == 1 and rows[0]["deleted"] == "2", rows


def test_mbox_index_lost_keeps_device_view(sandbox_factory):
    sbx = _sandbox(sandbox_factory, MBOX_CONF)
    _write_mbox(sbx, "alice", [make_message(i) for i in range(5)])

    def lose_index():
        index = os.path.join(sbx.home("alice"), "mail", ".imap", "INBOX")
        assert glob.glob(os.path.join(index, "dovecot.index*"))
        shutil.rmtree(index)

    _dele_two_and_lose_index(sbx, lose_index)
    with open(os.path.join(sbx.home("alice"), "inbox"), "rb") as f:
        assert f.read().count(b"\nFrom sender@") + 1 == 5


def test_maildir_uidlist_lost_keeps_device_view(sandbox_factory):
    sbx = _sandbox(sandbox_factory)
    sbx.deliver("alice", [make_message(i) for i in range(5)])

    def lose_index():
        files = glob.glob(os.path.join(sbx.maildir("alice"), "dovecot*"))
        assert any(f.endswith("dovecot-uidlist") for f in files), files
        for f in files:
            os.unlink(f)

    _dele_two_and_lose_index(sbx, lose_index)
    assert sbx.maildir_count("alice") == 5


def test_mbox_messages_sharing_a_guid(sandbox_factory):
    sbx = _sandbox(sandbox_factory, MBOX_CONF)

    def twin(body):
        # no Message-ID, same Date, same headers: Dovecot's mbox GUID
        # (a hash of the headers) is the same for both
        return ("From: monitor@test.invalid\nTo: alice@test.invalid\n"
                "Subject: disk alert\nDate: Sat, 28 Nov 2026 12:00:00 "
                "+0000\n\n%s\n" % body).encode()

    _write_mbox(sbx, "alice", [make_message(1), twin("disk A full"),
                               twin("disk B full"), make_message(4)])
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 4
    bodies = [b"\n".join(p.retr(n)[1]) for n in (2, 3)]
    assert b"disk A" in bodies[0] and b"disk B" in bodies[1]
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 3
    listed = [b"\n".join(p.retr(n)[1]) for n in (1, 2, 3)]
    p.quit()
    assert not [b for b in listed if b"disk A" in b]
    assert [b for b in listed if b"disk B" in b]


def test_deleted_mailbox_records_pruned(sandbox_factory):
    sbx = _sandbox(sandbox_factory)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.deliver("alice", [make_message(i) for i in range(3)],
                folder="Archive")
    # (delivered before any session: the harness writes files directly)
    sbx.deliver("alice", [make_message(7)], folder="Other")
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    for box in ("INBOX", "Archive"):
        i.select(box)
        i.fetch("1", "(BODY[])")
    i.close()
    i.logout()
    time.sleep(0.3)
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert sorted(r["retrieved"] for r in rows) == ["1", "1"], rows
    assert _db_entries(sbx, "mailboxes") == 2
    assert _db_entries(sbx, "summaries") == 2
    # IMAP DELETE and doveadm mailbox delete: the records (and the
    # mailbox's sync summaries and number) go with it
    i = imap(sbx)
    typ, data = i.delete("Archive")
    assert typ == "OK", data
    i.logout()
    time.sleep(0.3)
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert [r["mailbox"] for r in rows] == ["INBOX"], rows
    assert _db_entries(sbx, "mailboxes") == 1
    assert _db_entries(sbx, "summaries") == 1
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    i.select("Other")
    i.fetch("1", "(BODY[])")
    i.logout()
    time.sleep(0.3)
    assert len(sbx.doveadm_json("mailward", "state", "-u", "alice")) == 2
    sbx.doveadm("mailbox", "delete", "-u", "alice", "Other")
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert [r["mailbox"] for r in rows] == ["INBOX"], rows
    assert _db_entries(sbx, "mailboxes") == 1
    assert _db_entries(sbx, "summaries") == 1


def test_sweep_prunes_removed_mailboxes_only(sandbox_factory):
    sbx = _sandbox(sandbox_factory)
    sbx.deliver("alice", [make_message(i) for i in range(5)])
    sbx.deliver("alice", [make_message(i) for i in range(2)],
                folder="Archive")
    p = pop3(sbx, password="phonepw")
    p.dele(1)
    p.dele(2)
    p.quit()
    lines = wait_session_end(sbx, "alice")
    _wait_exit(lines[-1])
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    i.select("Archive")
    i.fetch("1", "(BODY[])")
    i.logout()
    lines = sbx.wait_log(r"imap\(alice\)<\d+><[^>]*>: Info: Disconnected")
    _wait_exit(lines[-1])
    assert _db_entries(sbx, "mailboxes") == 2

    # the admin removes Archive outside Dovecot, and INBOX's uidlist and
    # index (its GUID is regenerated); then the cron sweep runs
    shutil.rmtree(sbx.maildir("alice", "Archive"))
    for f in glob.glob(os.path.join(sbx.maildir("alice"), "dovecot*")):
        os.unlink(f)
    r = sbx.doveadm("mailward", "expunge", "-u", "alice")
    assert "Records of 1 mailbox(es) that no longer exist removed" in \
        r.stderr, r.stderr
    assert _db_entries(sbx, "mailboxes") == 1
    assert _db_entries(sbx, "summaries") == 0
    # INBOX's records were carried over, not pruned
    p = pop3(sbx, password="phonepw")
    assert _subjects(p) == ["message 2", "message 3", "message 4"]
    p.quit()


def test_sweep_keeps_records_of_list_no_namespaces(sandbox_factory):
    """The cron sweep prunes only mailboxes that are gone: an INBOX
    namespace with list = no (hidden, as in compatibility set-ups) and a
    list = no namespace with its own storage still exist, so the device's
    DELEs stay in effect."""
    sbx = _sandbox(sandbox_factory, dict(namespaces=[
        {"name": "inbox", "inbox": "yes", "separator": "/", "list": "no",
         "hidden": "yes"},
        {"name": "other", "prefix": "Other/", "separator": "/",
         "mail_driver": "maildir", "mail_path": "~/Other"},
        {"name": "archive", "prefix": "Hidden/", "separator": "/",
         "mail_driver": "maildir", "mail_path": "~/Hidden", "list": "no",
         "hidden": "yes"}]))
    sbx.deliver("alice", [make_message(i) for i in range(4)])
    hidden = os.path.join(sbx.home("alice"), "Hidden")
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(hidden, ".Box", sub))
    with open(os.path.join(hidden, ".Box", "new", "1.M1P1.x"), "wb") as f:
        f.write(make_message(10))
    sbx._chown_tree(sbx.home("alice"))
    p = pop3(sbx, password="phonepw")
    p.dele(1)
    p.dele(2)
    p.quit()
    lines = wait_session_end(sbx, "alice")
    _wait_exit(lines[-1])
    i = imap(sbx)
    imap_id(i, ["name", "Phone"])
    typ, data = i.select("Hidden/Box")
    assert typ == "OK", data
    i.fetch("1", "(BODY[])")
    i.logout()
    lines = sbx.wait_log(r"imap\(alice\)<\d+><[^>]*>: Info: Disconnected")
    _wait_exit(lines[-1])
    assert _db_entries(sbx, "mailboxes") == 2

    r = sbx.doveadm("mailward", "expunge", "-u", "alice")
    assert "no longer exist" not in r.stderr, r.stderr
    assert _db_entries(sbx, "mailboxes") == 2
    p = pop3(sbx, password="phonepw")
    assert _subjects(p) == ["message 2", "message 3"]
    p.quit()
