"""Per-device sync state in LMDB and device identity, against a real
Dovecot: three kinds of device identity, doveadm devices/state/forget with
JSON output, the device bound and expiry, per-message records (RETR not
TOP, DELE, pruned after expunge), concurrent POP3 + IMAP sessions, hostile
IMAP ID values, and a broken store making the session fail-safe."""
import glob
import os
import re
import socket
import time

from mwharness import devices, imap, imap_count, imap_id, make_message, \
    pop3, wait_session_end


def test_three_device_kinds_listed_and_forgotten(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "phone-app"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])

    # 1: explicit device (app password) over POP3: RETR 2, DELE 1
    p = pop3(sbx, password="phonepw")
    p.retr(1)
    p.retr(2)
    p.top(3, 0)
    p.dele(3)
    p.quit()
    wait_session_end(sbx, "alice")
    # 2: IMAP ID after login
    i = imap(sbx)
    imap_id(i, ["name", "Thunderbird", "version", "128.3", "os", "linux",
                "vendor", "Mozilla"])
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.fetch("2", "(BODY.PEEK[HEADER] RFC822.SIZE)")
    i.logout()
    # 3: network fallback over POP3 from ::1 (or 127.0.0.1)
    host = "::1" if sbx.have_v6 else "127.0.0.1"
    p = pop3(sbx, host=host)
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    time.sleep(0.3)

    devs = devices(sbx)
    assert set(devs) >= {"phone-app"}, devs
    phone = devs["phone-app"]
    assert phone["protocol"] == "pop3"
    assert phone["retrieved"] == "2" and phone["deleted"] == "1"
    assert phone["sessions"] == "1"
    assert len(phone["id"]) == 32
    tb = [d for l, d in devs.items() if "Thunderbird 128.3" in l]
    assert len(tb) == 1, devs
    assert tb[0]["protocol"] == "imap"
    assert tb[0]["label"].startswith('imap "Thunderbird 128.3" linux')
    assert tb[0]["retrieved"] == "1"        # one body fetch, not headers
    net = [d for l, d in devs.items() if l.startswith("pop3 from ")]
    assert len(net) == 1, devs
    assert net[0]["label"] == ("pop3 from ::/64" if sbx.have_v6
                               else "pop3 from 127.0.0.0/24")
    # no raw IP in the store: the id is a keyed hash
    data = open(os.path.join(sbx.state_dir("alice"), "data.mdb"), "rb").read()
    assert b"127.0.0.1" not in data

    # per-device per-mailbox state
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    by_dev = {r["device"]: r for r in rows}
    assert by_dev[phone["id"]]["retrieved"] == "2"
    assert by_dev[phone["id"]]["deleted"] == "1"
    assert by_dev[phone["id"]]["mailbox"] == "INBOX"
    assert by_dev[tb[0]["id"]]["retrieved"] == "1"
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice",
                            "-d", phone["id"], "INBOX")
    assert len(rows) == 1 and rows[0]["device"] == phone["id"]

    # forget
    out = sbx.doveadm_json("mailward", "forget", "-u", "alice", "-d",
                           phone["id"])
    assert out[0]["id"] == phone["id"]
    assert "phone-app" not in devices(sbx)
    r = sbx.doveadm("mailward", "forget", "-u", "alice", "-d", phone["id"],
                    check=False)
    assert r.returncode == 68, (r.returncode, r.stderr)   # EX_NOHOST: gone
    r = sbx.doveadm("mailward", "forget", "-u", "alice", check=False)
    assert r.returncode == 64, r.stderr                   # EX_USAGE


def test_records_retr_not_top_and_pruned_after_expunge(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server"}})
    sbx.deliver("alice", [make_message(i) for i in range(4)])
    p = pop3(sbx)
    p.retr(1)
    p.top(2, 5)
    p.dele(3)
    p.quit()
    wait_session_end(sbx, "alice")
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert len(rows) == 1
    assert (rows[0]["retrieved"], rows[0]["deleted"]) == ("1", "1")

    # an IMAP expunge of messages 1 and 3 prunes their records
    i = imap(sbx)
    i.select("INBOX")
    i.store("1,3", "+FLAGS", "\\Deleted")
    assert i.expunge()[0] == "OK"
    i.logout()
    time.sleep(0.3)
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    # the POP3 device's records are gone; the IMAP session's own row
    # remains, with nothing retrieved or deleted
    assert [(r["label"], r["retrieved"], r["deleted"]) for r in rows] == \
        [("imap from 127.0.0.0/24", "0", "0")], rows
    assert sbx.maildir_count("alice") == 2


def test_device_bound_and_expiry(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_device_max": "2",
                         "mailward_device_protect": "0"},
               "bob": {"mailward_device_expire": "2s"}},
        app_passwords={"alice": {"a1": "dev1", "a2": "dev2", "a3": "dev3"},
                       "bob": {"b1": "old", "b2": "new"}})
    for pw in ("a1", "a2"):
        pop3(sbx, "alice", password=pw).quit()
        time.sleep(1.1)     # distinct last-seen seconds
    assert set(devices(sbx)) == {"dev1", "dev2"}
    pop3(sbx, "alice", password="a3").quit()
    # least recently seen (dev1) evicted
    assert set(devices(sbx)) == {"dev2", "dev3"}
    sbx.wait_log(r"pop3\(alice\).*mailward: device [0-9a-f]{32} evicted "
                 r"\(device limit reached\): dev1")

    pop3(sbx, "bob", password="b1").quit()
    time.sleep(3)
    pop3(sbx, "bob", password="b2").quit()
    assert set(devices(sbx, "bob")) == {"new"}
    sbx.wait_log(r"pop3\(bob\).*mailward: device [0-9a-f]{32} expired "
                 r"\(idle too long\): old")


def test_concurrent_pop3_and_imap_sessions(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "phone"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3(sbx, password="phonepw")
    i = imap(sbx)
    imap_id(i, ["name", "K-9 Mail", "version", "6.8"])
    i.select("INBOX")
    p.retr(1)
    i.fetch("2:3", "(BODY[])")
    p.retr(3)
    i.logout()
    p.quit()
    wait_session_end(sbx, "alice")
    time.sleep(0.3)
    devs = devices(sbx)
    assert devs["phone"]["retrieved"] == "2"
    k9 = [d for l, d in devs.items() if "K-9 Mail" in l][0]
    assert k9["retrieved"] == "2"
    rows = {r["device"]: r for r in
            sbx.doveadm_json("mailward", "state", "-u", "alice")}
    assert rows[devs["phone"]["id"]]["retrieved"] == "2"
    assert rows[k9["id"]]["retrieved"] == "2"


def _imap_raw(sbx):
    s = socket.create_connection(("127.0.0.1", sbx.imap_port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"a LOGIN alice secret\r\n")
    while not f.readline().startswith(b"a "):
        pass
    return s, f


def _until_tag(f, tag):
    lines = []
    while True:
        line = f.readline()
        assert line, "connection closed"
        lines.append(line)
        if line.startswith(tag + b" "):
            return lines


def test_hostile_imap_id_values(sandbox_factory):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(1)])
    s, f = _imap_raw(sbx)
    big = b"A" * 10240
    evil = b"x\x01\x1b[31m\"quoted\\\" \xff\xfe invalid utf8"
    # 10 KB literal name, control characters, quotes, invalid UTF-8
    s.sendall(b"b ID (\"name\" {%d}\r\n" % len(big))
    assert f.readline().startswith(b"+")
    s.sendall(big + b" \"os\" {%d}\r\n" % len(evil))
    assert f.readline().startswith(b"+")
    s.sendall(evil + b" \"vendor\" \"v\\\"\\\\\")\r\n")
    assert _until_tag(f, b"b")[-1].startswith(b"b OK")
    # 100 parameters
    params = b" ".join(b"\"k%d\" \"v%d\"" % (n, n) for n in range(100))
    s.sendall(b"c ID (\"name\" \"Many\" " + params + b")\r\n")
    assert _until_tag(f, b"c")[-1].startswith(b"c OK ID completed")
    s.sendall(b"d SELECT INBOX\r\n")
    assert _until_tag(f, b"d")[-1].startswith(b"d OK")
    s.sendall(b"e FETCH 1 BODY[]\r\n")
    assert _until_tag(f, b"e")[-1].startswith(b"e OK")
    s.sendall(b"f LOGOUT\r\n")
    _until_tag(f, b"f")
    s.close()
    time.sleep(0.3)
    for label, d in devices(sbx).items():
        assert len(label.encode()) <= 128, label
        assert not any(ord(c) < 0x20 or ord(c) == 0x7f for c in label), label
        assert "\ufffd" not in label and "\x1b" not in label
    labels = list(devices(sbx))
    assert any(l.startswith('imap "AAAA') for l in labels), labels


def test_unwritable_store_is_fail_safe(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}, "bob": {}})
    for u in ("alice", "bob"):
        sbx.deliver(u, [make_message(i) for i in range(3)])
        pop3(sbx, u).quit()      # creates the store
        wait_session_end(sbx, u)
    # alice: data file not writable by the mail uid
    os.chmod(os.path.join(sbx.state_dir("alice"), "data.mdb"), 0o400)
    # bob: data file truncated mid-file (damaged: moved aside, fresh
    # store; tests/test_store_damage.py has the rest)
    path = os.path.join(sbx.state_dir("bob"), "data.mdb")
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    for u, err in (("alice", "State store error: "),
                   ("bob", "State store %s was damaged: moved aside to "
                    % sbx.state_dir("bob"))):
        p = pop3(sbx, u)
        assert p.stat()[0] == 3
        p.retr(1)
        p.dele(1)
        p.dele(2)
        p.quit()
        sbx.wait_log(r"pop3\(%s\).*Error: mailward: %s.*%s"
                     % (u, re.escape(err), sbx.state_dir(u)))
        sbx.wait_log(r"pop3\(%s\).*session is fail-safe" % u)
        # client policy, but fail-safe: nothing expunged
        assert sbx.maildir_count(u) == 3
        assert imap_count(sbx, u) == 3
    r = sbx.doveadm("mailward", "devices", "-u", "alice", check=False)
    assert r.returncode == 75, (r.returncode, r.stderr)     # EX_TEMPFAIL
    assert sbx.state_dir("alice") in r.stderr
    assert len(glob.glob(path + ".corrupt.*")) == 1
    # bob's fresh store works: it knows the devices of the sessions since
    assert sorted(d["protocol"] for d in sbx.doveadm_json(
        "mailward", "devices", "-u", "bob")) == ["imap", "pop3"]
