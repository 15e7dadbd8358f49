"""POP3 retrieval policy against a real Dovecot: every policy x {QUIT,
dropped connection} x {RETR, TOP, DELE}, the per-device view (UIDL with
gaps), two devices, the delay, CAPA EXPIRE, and real clients (fetchmail,
getmail6). Each test checks the server's maildir and IMAP view, not just
the POP3 replies."""
import poplib
import socket
import time

import pytest

import mwclients
import mwharness
from mwharness import make_message, pop3, pop3_drop, imap_count, \
    wait_session_end

POLICIES = ["client", "leave-on-server", "expunge-after-retrieval",
            "expunge-after-all-devices"]

# (policy, end, action) -> messages left on the server out of 3, and
# messages listed to the same device in its next session
EXPECTED = {}
for _p in POLICIES:
    for _end in ("quit", "drop"):
        for _act in ("retr", "top", "dele"):
            server, listed = 3, 3
            if _end == "quit":
                if _p == "client" and _act == "dele":
                    server, listed = 2, 2
                elif _p == "leave-on-server" and _act == "dele":
                    listed = 2
                elif _p in ("expunge-after-retrieval",
                            "expunge-after-all-devices") and \
                        _act in ("retr", "dele"):
                    server, listed = 2, 2
            EXPECTED[(_p, _end, _act)] = (server, listed)


def test_policy_matrix(sandbox_factory):
    users = {}
    for (policy, end, act) in EXPECTED:
        users["%s_%s_%s" % (policy, end, act)] = {
            "mailward_pop3_policy": policy}
    sbx = sandbox_factory(users=users)
    for user in users:
        sbx.deliver(user, [make_message(i, subject="%s %d" % (user, i))
                           for i in range(3)])
    for (policy, end, act) in EXPECTED:
        user = "%s_%s_%s" % (policy, end, act)
        p = pop3(sbx, user)
        assert p.stat()[0] == 3
        if act == "retr":
            lines = p.retr(2)[1]
            assert ("Subject: %s 1" % user).encode() in lines
        elif act == "top":
            p.top(2, 0)
        else:
            assert p.dele(2).startswith(b"+OK")
        if end == "quit":
            p.quit()
        else:
            pop3_drop(p)
    for i, (policy, end, act) in enumerate(EXPECTED):
        user = "%s_%s_%s" % (policy, end, act)
        wait_session_end(sbx, user)
        server, listed = EXPECTED[(policy, end, act)]
        assert sbx.maildir_count(user) == server, user
        assert imap_count(sbx, user) == server, user
        p = pop3(sbx, user)
        assert p.stat()[0] == listed, user
        p.quit()
        if end == "drop":
            # RFC 1939: no UPDATE state, nothing recorded as deleted
            sbx.wait_log(r"pop3\(%s\).*dropped without QUIT" % user)


def test_uidl_consistent_with_gaps(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server"}})
    sbx.deliver("alice", [make_message(i, subject="m%d" % i, size=100 * i)
                          for i in range(1, 8)])
    p = pop3(sbx)
    uidl_before = dict(l.split() for l in p.uidl()[1])
    sizes_before = dict(l.split() for l in p.list()[1])
    # hide the first, two in the middle and the last
    for n in (1, 3, 4, 7):
        p.dele(n)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 7

    p = pop3(sbx)
    count, total = p.stat()
    assert count == 3
    listing = [l.split() for l in p.list()[1]]
    uidls = [l.split() for l in p.uidl()[1]]
    assert [int(n) for n, _ in listing] == [1, 2, 3]
    assert [int(n) for n, _ in uidls] == [1, 2, 3]
    # the remaining messages keep their UIDLs and sizes
    remaining = [b"2", b"5", b"6"]
    assert [u for _, u in uidls] == [uidl_before[n] for n in remaining]
    assert [s for _, s in listing] == [sizes_before[n] for n in remaining]
    assert total == sum(int(sizes_before[n]) for n in remaining)
    for i, n in enumerate(remaining, start=1):
        assert ("Subject: m%s" % n.decode()).encode() in p.retr(i)[1]
        assert p.uidl(i).split()[2] == uidl_before[n]
        assert ("Subject: m%s" % n.decode()).encode() in p.top(i, 0)[1]
    with pytest.raises(poplib.error_proto) as e:
        p.retr(4)
    assert e.value.args[0] == b"-ERR There's no message 4."
    p.quit()


def test_two_devices_leave_on_server_each_gets_all_once(sandbox_factory,
                                                        tmp_path):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "phone", "laptoppw": "laptop"}})
    sbx.deliver("alice", [make_message(i) for i in range(4)])
    got = {}
    for dev, pw in (("phone", "phonepw"), ("laptop", "laptoppw")):
        for run in range(2):
            rc, out, subjects = mwclients.run_fetchmail(
                sbx, "alice", str(tmp_path / dev), keep=False, password=pw)
            # the first run fetches the mail, the second finds none
            # (fetchmail exits 1: no mail)
            assert rc == (0 if run == 0 else 1), out
            got[dev] = subjects
    assert got["phone"] == ["message %d" % i for i in range(4)]
    assert got["laptop"] == ["message %d" % i for i in range(4)]
    assert sbx.maildir_count("alice") == 4
    assert imap_count(sbx) == 4

    # a new message reaches each device exactly once more
    sbx.deliver("alice", [make_message(9)])
    for dev, pw in (("phone", "phonepw"), ("laptop", "laptoppw")):
        rc, out, subjects = mwclients.run_fetchmail(
            sbx, "alice", str(tmp_path / dev), keep=False, password=pw)
        assert subjects.count("message 9") == 1, out
        assert len(subjects) == 5, out
    assert sbx.maildir_count("alice") == 5


def test_two_devices_expunge_after_all_devices(sandbox_factory, tmp_path):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy":
                         "expunge-after-all-devices"}},
        app_passwords={"alice": {"phonepw": "phone", "laptoppw": "laptop"}})
    # both devices are known before mail arrives
    for pw in ("phonepw", "laptoppw"):
        pop3(sbx, password=pw).quit()
    sbx.deliver("alice", [make_message(i) for i in range(3)])

    rc, out, phone = mwclients.run_fetchmail(
        sbx, "alice", str(tmp_path / "phone"), keep=True, password="phonepw")
    assert phone == ["message 0", "message 1", "message 2"], out
    wait_session_end(sbx, "alice", count=3)
    # the laptop has not got them yet: still on the server
    assert sbx.maildir_count("alice") == 3
    # the phone no longer lists what it took
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 0
    p.quit()

    rc, out, laptop = mwclients.run_fetchmail(
        sbx, "alice", str(tmp_path / "laptop"), keep=True,
        password="laptoppw")
    assert laptop == ["message 0", "message 1", "message 2"], out
    wait_session_end(sbx, "alice", count=5)
    assert sbx.maildir_count("alice") == 0
    assert imap_count(sbx) == 0


def test_expunge_delay_next_session_and_doveadm(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "expunge-after-retrieval",
                         "mailward_expunge_delay": "2s"},
               "bob": {"mailward_pop3_policy": "expunge-after-retrieval",
                       "mailward_expunge_delay": "2s"}},
        app_passwords={"alice": {"phonepw": "phone", "laptoppw": "laptop"}})
    for user in ("alice", "bob"):
        sbx.deliver(user, [make_message(i) for i in range(2)])
        p = pop3(sbx, user)
        p.retr(1)
        p.quit()
        wait_session_end(sbx, user)
        # kept until the delay has passed
        assert sbx.maildir_count(user) == 2
    # the retrieving device no longer lists it, another device still does
    p = pop3(sbx, "alice")
    assert p.stat()[0] == 1
    p.quit()
    p = pop3(sbx, "alice", password="laptoppw")
    assert p.stat()[0] == 2
    p.quit()
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert sum(int(r["pending_expunge"]) for r in rows) == 1

    time.sleep(2.5)
    # alice: the next session carries out the due expunge
    p = pop3(sbx, "alice", password="laptoppw")
    p.quit()
    sbx.wait_log(r"pop3\(alice\).*due_expunged=1")
    assert sbx.maildir_count("alice") == 1
    # bob: doveadm (cron) carries it out and prints it
    rows = sbx.doveadm_json("mailward", "expunge", "-u", "bob")
    assert len(rows) == 1 and rows[0]["user"] == "bob", rows
    assert sbx.maildir_count("bob") == 1
    assert sbx.doveadm_json("mailward", "expunge", "-u", "bob") == []


def _capa_raw(sbx, user, pipelined):
    s = socket.create_connection(("127.0.0.1", sbx.pop3_port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"USER %s\r\nPASS %s\r\n" % (user.encode(),
                                           mwharness.PASSWORD.encode()))
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK")
    if pipelined:
        s.sendall(b"CAPA\r\nSTAT\r\nCAPA\r\nNOOP\r\n")
    else:
        s.sendall(b"CAPA\r\n")
    replies = []
    for _ in range(2 if pipelined else 1):
        assert f.readline().startswith(b"+OK")
        caps = []
        while True:
            line = f.readline().rstrip(b"\r\n")
            if line == b".":
                break
            caps.append(line.decode())
        replies.append(caps)
        if pipelined and len(replies) == 1:
            assert f.readline().startswith(b"+OK 0 0")
    if pipelined:
        assert f.readline().startswith(b"+OK")
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
    return replies


@pytest.mark.parametrize("policy,delay,hold,expire", [
    ("client", "0", "no", None),
    ("leave-on-server", "0", "no", "EXPIRE NEVER"),
    ("expunge-after-retrieval", "0", "no", "EXPIRE 0"),
    ("expunge-after-retrieval", "36h", "no", "EXPIRE 2"),
    ("expunge-after-all-devices", "0", "no", "EXPIRE 0"),
    ("client", "0", "yes", "EXPIRE NEVER"),
    ("expunge-after-retrieval", "0", "yes", "EXPIRE NEVER"),
])
def test_capa_expire(sandbox_factory, policy, delay, hold, expire):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": policy, "mailward_expunge_delay": delay,
        "mailward_hold": hold}})
    for pipelined in (False, True):
        for caps in _capa_raw(sbx, "alice", pipelined):
            expires = [c for c in caps if c.startswith("EXPIRE")]
            assert expires == ([] if expire is None else [expire]), caps
            assert caps[-1] == (expire or "AUTH-RESP-CODE"), caps
            assert "UIDL" in caps and "TOP" in caps


def test_capa_expire_does_not_touch_message_bodies(sandbox_factory):
    # a message whose text equals the CAPA reply must come out unchanged
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server"}})
    body = ("CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
            "AUTH-RESP-CODE\r\n")
    sbx.deliver("alice", [b"Subject: capa\r\n\r\n" + body.encode()])
    p = pop3(sbx)
    lines = p.retr(1)[1]
    assert b"EXPIRE NEVER" not in b"\r\n".join(lines)
    p.quit()


@pytest.mark.parametrize("policy", POLICIES)
def test_fetchmail_and_getmail(sandbox_factory, tmp_path, policy):
    users = {"fm_keep": {}, "fm_nokeep": {}, "gm_delete": {}}
    for u in users:
        users[u]["mailward_pop3_policy"] = policy
    sbx = sandbox_factory(users=users)
    subjects = ["message %d" % i for i in range(3)]
    for u in users:
        sbx.deliver(u, [make_message(i) for i in range(3)])

    rc, out, got = mwclients.run_fetchmail(sbx, "fm_keep",
                                           str(tmp_path / "k"), keep=True)
    assert rc == 0 and got == subjects, out
    rc, out, got = mwclients.run_fetchmail(sbx, "fm_nokeep",
                                           str(tmp_path / "n"), keep=False)
    assert rc == 0 and got == subjects, out
    rc, out, got = mwclients.run_getmail(sbx, "gm_delete",
                                         str(tmp_path / "g"), delete=True)
    assert rc == 0 and got == subjects, out
    for u in users:
        wait_session_end(sbx, u)

    removes = policy in ("expunge-after-retrieval",
                         "expunge-after-all-devices")
    expect = {
        "fm_keep": 0 if removes else 3,
        "fm_nokeep": 0 if removes or policy == "client" else 3,
        "gm_delete": 0 if removes or policy == "client" else 3,
    }
    for u, n in expect.items():
        assert sbx.maildir_count(u) == n, (u, sbx.read_log()[-3000:])
        assert imap_count(sbx, u) == n, u

    # a second run brings nothing new to the same device
    rc, out, got = mwclients.run_fetchmail(sbx, "fm_nokeep",
                                           str(tmp_path / "n"), keep=False)
    assert got == subjects, out   # same mbox: nothing appended


def test_hold_keeps_pop3_dele(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_pop3_policy": "client",
                                           "mailward_hold": "yes"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    p = pop3(sbx)
    p.retr(1)
    p.dele(1)
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 2
    assert imap_count(sbx) == 2


def test_delay_without_state_store_keeps_mail(sandbox_factory):
    # a delay needs the state store to remember when a message is due:
    # without it (mailward_state = no) the message is kept, not expunged
    # early
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_expunge_delay": "1h", "mailward_state": "no"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    p = pop3(sbx)
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 2
