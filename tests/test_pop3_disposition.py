"""mailward_pop3_disposition against a real Dovecot: what happens to the
server's copy when a message leaves a POP3 device's hands (expunge, keep,
seen, move:<mailbox>) under each policy, with a delay, under a legal hold,
with a destination that cannot be used, the leave-on-server contradiction,
CAPA EXPIRE and a real client (fetchmail). Each test checks the maildir
(INBOX, destination, \\Seen), each device's next listing and the audit
log."""
import os
import time

import pytest

import mwclients
from mwharness import make_message, pop3, imap, wait_session_end
from test_audit_writer import wait_records


def logouts(sbx, user, count):
    """The audit records once `count` POP3 logouts of user are in."""
    return wait_records(sbx, lambda r: len(
        [x for x in r if x.get("event") == "logout" and
         x.get("user") == user and x.get("service") == "pop3"]) >= count)

POLICIES = ["client", "leave-on-server", "expunge-after-retrieval",
            "expunge-after-all-devices"]
DISPOSITIONS = ["expunge", "keep", "seen", "move:Archive"]
DEVICES = {"phonepw": "phone", "laptoppw": "laptop"}

# The phone RETRs message 1 (Dovecot's POP3 sets \Seen on it), DELEs
# message 2 without reading it (only the disposition can set \Seen on
# it) and leaves message 3; under expunge-after-all-devices the laptop
# then DELEs all three (DELE counts as having them, and sets no \Seen).
# (policy, disposition) -> (INBOX, destination, \Seen in INBOX, the
# phone's next listing, the laptop's next listing), by message number.
EXPECTED = {
    ("client", "expunge"): ({1, 3}, set(), {1}, {1, 3}, {1, 3}),
    ("client", "keep"): ({1, 2, 3}, set(), {1}, {1, 3}, {1, 2, 3}),
    ("client", "seen"): ({1, 2, 3}, set(), {1, 2}, {1, 3}, {1, 2, 3}),
    ("client", "move:Archive"): ({1, 3}, {2}, {1}, {1, 3}, {1, 3}),
    ("leave-on-server", "keep"): ({1, 2, 3}, set(), {1}, {1, 3},
                                  {1, 2, 3}),
    ("leave-on-server", "seen"): ({1, 2, 3}, set(), {1, 2}, {1, 3},
                                  {1, 2, 3}),
    ("leave-on-server", "move:Archive"): ({1, 3}, {2}, {1}, {1, 3},
                                          {1, 3}),
    ("expunge-after-retrieval", "expunge"): ({3}, set(), set(), {3}, {3}),
    ("expunge-after-retrieval", "keep"): ({1, 2, 3}, set(), {1}, {3},
                                          {1, 2, 3}),
    ("expunge-after-retrieval", "seen"): ({1, 2, 3}, set(), {1, 2}, {3},
                                          {1, 2, 3}),
    ("expunge-after-retrieval", "move:Archive"): ({3}, {1, 2}, set(), {3},
                                                  {3}),
    ("expunge-after-all-devices", "expunge"): ({3}, set(), set(), {3},
                                               set()),
    ("expunge-after-all-devices", "keep"): ({1, 2, 3}, set(), {1}, {3},
                                            set()),
    ("expunge-after-all-devices", "seen"): ({1, 2, 3}, set(), {1, 2}, {3},
                                            set()),
    ("expunge-after-all-devices", "move:Archive"): ({3}, {1, 2}, set(),
                                                    {3}, set()),
}


def _user(policy, disposition):
    return ("%s_%s" % (policy.replace("-", ""),
                       disposition.replace("move:", "move"))).lower()


def _subject(user, n):
    return "%s %d" % (user, n)


def maildir_flags(sbx, user, folder=None):
    """{subject: maildir flags} of a maildir folder."""
    base = sbx.maildir(user, folder)
    out = {}
    if not os.path.isdir(base):
        return out
    for sub in ("new", "cur"):
        for n in os.listdir(os.path.join(base, sub)):
            flags = n.split(":2,", 1)[1] if ":2," in n else ""
            with open(os.path.join(base, sub, n), "rb") as f:
                for line in f:
                    if line.lower().startswith(b"subject:"):
                        out[line[8:].strip().decode()] = flags
                        break
    return out


def _numbers(user, subjects):
    return {int(s.rsplit(" ", 1)[1]) for s in subjects
            if s.startswith(user + " ")}


def listing(sbx, user, password):
    """Message numbers a device's POP3 listing shows (TOP, no retrieval)."""
    p = pop3(sbx, user, password=password)
    count = p.stat()[0]
    got = set()
    for i in range(1, count + 1):
        for line in p.top(i, 0)[1]:
            if line.lower().startswith(b"subject:"):
                got |= _numbers(user, [line[8:].strip().decode()])
    p.quit()
    return got


def _phone_session(sbx, user):
    p = pop3(sbx, user, password="phonepw")
    assert p.stat()[0] == 3
    assert ("Subject: %s" % _subject(user, 1)).encode() in p.retr(1)[1]
    assert p.dele(2).startswith(b"+OK")
    p.quit()


def test_disposition_matrix(sandbox_factory):
    users = {}
    for policy, disposition in EXPECTED:
        users[_user(policy, disposition)] = {
            "mailward_pop3_policy": policy,
            "mailward_pop3_disposition": disposition}
    sbx = sandbox_factory(users=users, audit=True,
                          app_passwords={u: DEVICES for u in users})
    for (policy, disposition), expect in EXPECTED.items():
        user = _user(policy, disposition)
        if policy == "expunge-after-all-devices":
            # both devices are known before the mail arrives
            for pw in DEVICES:
                pop3(sbx, user, password=pw).quit()
        sbx.deliver(user, [make_message(i, subject=_subject(user, i))
                           for i in (1, 2, 3)])
        _phone_session(sbx, user)
        ends = 1
        if policy == "expunge-after-all-devices":
            ends = 4
            wait_session_end(sbx, user, count=3)
            p = pop3(sbx, user, password="laptoppw")
            for i in (1, 2, 3):
                p.dele(i)
            p.quit()
        wait_session_end(sbx, user, count=ends)

        inbox, dest, seen, phone, laptop = expect
        flags = maildir_flags(sbx, user)
        assert _numbers(user, flags) == inbox, (user, flags)
        assert _numbers(user, maildir_flags(sbx, user, "Archive")) == \
            dest, user
        assert _numbers(user, [s for s, f in flags.items()
                               if "S" in f]) == seen, (user, flags)
        assert listing(sbx, user, "phonepw") == phone, user
        assert listing(sbx, user, "laptoppw") == laptop, user
        # IMAP sees the same INBOX, and the destination when there is one
        i = imap(sbx, user)
        typ, data = i.select("INBOX", readonly=True)
        assert int(data[0]) == len(inbox), user
        if dest:
            typ, data = i.select("Archive", readonly=True)
            assert typ == "OK" and int(data[0]) == len(dest), user
        i.logout()

    sbx.wait_log(r"mailward: .*Created mailbox Archive")
    for policy, disposition in EXPECTED:
        user = _user(policy, disposition)
        records = logouts(sbx, user, 6 if policy.endswith("devices") else 3)
    for (policy, disposition), expect in EXPECTED.items():
        user = _user(policy, disposition)
        disposed = [r for r in records if r.get("event") == "disposed" and
                    r.get("user") == user]
        action = disposition.split(":")[0]
        if action in ("expunge", "keep"):
            assert disposed == [], user
            continue
        # one record per message disposed of, naming what and where
        n = (1 if policy in ("client", "leave-on-server") else 2) \
            if action == "seen" else len(expect[1])
        assert len(disposed) == n, (user, disposed)
        for r in disposed:
            assert r["outcome"] == "ok" and r["action"] == action, r
            assert r["policy"] == policy and r["cause"] == "policy", r
            assert r["mailbox"] == "INBOX" and r["msg_guid"], r
            if action == "move":
                assert r["destination"] == "Archive", r
                assert len(r["destination_guid"]) == 32, r
            else:
                assert "destination" not in r, r
    sbx.audit_verify()


def test_expunge_under_leave_on_server_is_a_contradiction(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server",
        "mailward_pop3_disposition": "expunge"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    p = pop3(sbx)
    p.retr(1)
    p.dele(1)
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    log = sbx.read_log()
    assert "mailward_pop3_disposition" in log
    assert "expunge contradicts mailward_pop3_policy=leave-on-server" in log
    sbx.wait_log(r"pop3\(alice\).*policy=leave-on-server \(fail-safe\)")
    assert sbx.maildir_count("alice") == 2


@pytest.mark.parametrize("disposition", ["seen", "move:Archive"])
def test_disposition_after_delay(sandbox_factory, disposition):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "expunge-after-retrieval",
                         "mailward_pop3_disposition": disposition,
                         "mailward_expunge_delay": "2s"}},
        app_passwords={"alice": DEVICES}, audit=True)
    sbx.deliver("alice", [make_message(i, subject=_subject("alice", i))
                          for i in (1, 2)])
    p = pop3(sbx, password="phonepw")
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    # nothing done before the delay has passed
    flags = maildir_flags(sbx, "alice")
    assert _numbers("alice", flags) == {1, 2}
    assert "S" not in flags[_subject("alice", 2)]
    assert maildir_flags(sbx, "alice", "Archive") == {}
    assert listing(sbx, "alice", "phonepw") == {1}
    assert listing(sbx, "alice", "laptoppw") == {1, 2}
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    assert sum(int(r["pending_expunge"]) for r in rows) == 1

    time.sleep(2.5)
    # the next session (another device's) carries it out
    pop3(sbx, password="laptoppw").quit()
    wait_session_end(sbx, "alice", count=4)
    flags = maildir_flags(sbx, "alice")
    if disposition == "seen":
        assert _numbers("alice", flags) == {1, 2}
        assert "S" in flags[_subject("alice", 2)]
        # it left the phone's view only
        assert listing(sbx, "alice", "phonepw") == {1}
        assert listing(sbx, "alice", "laptoppw") == {1, 2}
        rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
        assert sum(int(r["pending_expunge"]) for r in rows) == 0
    else:
        assert _numbers("alice", flags) == {1}
        assert _numbers("alice", maildir_flags(sbx, "alice",
                                               "Archive")) == {2}
        assert listing(sbx, "alice", "phonepw") == {1}
        assert listing(sbx, "alice", "laptoppw") == {1}
    # done once: later sessions do not dispose of it again
    pop3(sbx, password="laptoppw").quit()
    wait_session_end(sbx, "alice", count=7)
    disposed = [r for r in logouts(sbx, "alice", 7)
                if r.get("event") == "disposed"]
    assert len(disposed) == 1, disposed
    assert disposed[0]["cause"] == "delay"
    assert disposed[0]["action"] == disposition.split(":")[0]


def test_hold_refuses_a_move(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval",
        "mailward_pop3_disposition": "move:Archive",
        "mailward_hold": "yes"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    p = pop3(sbx)
    p.retr(1)
    p.dele(2)
    p.quit()
    wait_session_end(sbx, "alice")
    # nothing copied, nothing removed
    assert sbx.maildir_count("alice") == 2
    assert not os.path.exists(sbx.maildir("alice", "Archive"))
    sup = [r for r in logouts(sbx, "alice", 1)
           if r.get("event") == "expunge_suppressed"]
    assert len(sup) == 2, sup
    for r in sup:
        assert r["cause"] == "hold" and r["action"] == "move", r
        assert r["destination"] == "Archive", r
    assert [r for r in sbx.audit_records()
            if r.get("event") == "disposed"] == []


def test_bad_destination_keeps_the_message(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server",
        "mailward_pop3_disposition": "move:Blocked"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    # a file where the destination's maildir directory would be
    blocked = sbx.maildir("alice", "Blocked")
    with open(blocked, "w") as f:
        f.write("not a maildir\n")
    p = pop3(sbx)
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")
    line = sbx.wait_log(r"Error: .*mailward_pop3_disposition=move:Blocked "
                        r"of user alice: .*Blocked")
    assert "kept" in str(line)
    assert sbx.maildir_count("alice") == 2
    assert os.path.isfile(blocked)
    failed = [r for r in logouts(sbx, "alice", 1)
              if r.get("event") == "disposed"]
    assert len(failed) == 1 and failed[0]["outcome"] == "failed", failed
    assert failed[0]["destination"] == "Blocked"
    assert "message kept" in failed[0]["detail"]


@pytest.mark.parametrize("policy,disposition,expire", [
    ("expunge-after-retrieval", "expunge", "EXPIRE 0"),
    ("expunge-after-retrieval", "keep", "EXPIRE NEVER"),
    ("expunge-after-retrieval", "seen", "EXPIRE NEVER"),
    ("expunge-after-all-devices", "move:Archive", "EXPIRE NEVER"),
    ("leave-on-server", "move:Archive", "EXPIRE NEVER"),
])
def test_capa_expire_follows_disposition(sandbox_factory, policy,
                                         disposition, expire):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": policy,
        "mailward_pop3_disposition": disposition}})
    p = pop3(sbx)
    caps = p.capa()
    p.quit()
    assert ["EXPIRE " + " ".join(caps["EXPIRE"])] == [expire], caps


def test_fetchmail_with_move(sandbox_factory, tmp_path):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server",
        "mailward_pop3_disposition": "move:Archive"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    subjects = ["message %d" % i for i in range(3)]
    rc, out, got = mwclients.run_fetchmail(sbx, "alice", str(tmp_path),
                                           keep=False)
    assert rc == 0 and got == subjects, out
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 0
    assert sbx.maildir_subjects("alice", "Archive") == subjects
    # nothing more for this or any POP3 device; IMAP still has them
    rc, out, got = mwclients.run_fetchmail(sbx, "alice", str(tmp_path),
                                           keep=False)
    assert got == subjects, out
    i = imap(sbx)
    typ, data = i.select("Archive", readonly=True)
    assert int(data[0]) == 3
    typ, data = i.lsub('""', "Archive")
    assert typ == "OK" and b"Archive" in data[0], data
    i.logout()
