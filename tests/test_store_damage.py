"""A damaged state store (random bytes over data pages: disk corruption,
a bad restore) never crashes a mail process: the damage is detected at
the first login (LMDB faults are caught), data.mdb is moved aside with an
error naming both paths, the session runs fail-safe (expunges nothing),
the reset is audited, and later logins work with a fresh store."""
import glob
import os
import random
import re
import shutil
import time

from mwharness import imap, make_message, pop3, wait_session_end

PAGE = 4096


def _damage(path, seed):
    """Random bytes over every page past the two meta pages."""
    size = os.path.getsize(path)
    rnd = random.Random(seed)
    with open(path, "r+b") as f:
        f.seek(2 * PAGE)
        f.write(bytes(rnd.getrandbits(8) for _ in range(size - 2 * PAGE)))


def _populate(sbx, n):
    """A normal IMAP session: the store gets a device and records."""
    i = imap(sbx)
    i.select("INBOX")
    assert i.fetch("1:*", "(BODY[])")[0] == "OK"
    i.logout()
    # the audit logout record follows the session's last state write
    recs = [r for r in _wait_audit(sbx, "logout", n, service="imap")]
    assert len(recs) >= n, recs


def _wait_audit(sbx, event, count, service=None):
    deadline = time.time() + 10
    while True:
        recs = [r for r in sbx.audit_records() if r["event"] == event and
                service in (None, r.get("service"))]
        if len(recs) >= count or time.time() > deadline:
            return recs
        time.sleep(0.05)


def test_damaged_store_moved_aside_no_crash(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-retrieval"}},
        audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(5)])
    state = sbx.state_dir("alice")
    data = os.path.join(state, "data.mdb")
    seeds = (1, 2, 3)
    pop3_ends = 0
    for n, seed in enumerate(seeds, 1):
        _populate(sbx, 2 * n - 1)
        _damage(data, seed)

        # the first login after the damage: RETR + QUIT under
        # expunge-after-retrieval, but state is lost: nothing expunged
        p = pop3(sbx)
        assert p.stat()[0] == 5
        p.retr(1)
        p.quit()
        pop3_ends += 1
        wait_session_end(sbx, "alice", count=pop3_ends)
        moved = sorted(glob.glob(data + ".corrupt.*"))
        assert len(moved) == n, moved
        assert re.fullmatch(re.escape(data) + r"\.corrupt\.\d{8}T\d{6}Z"
                            r"(\.\d+)?", moved[-1]), moved
        lines = sbx.wait_log(
            r"pop3\(alice\).*Error: mailward: State store %s was damaged: "
            r"moved aside to %s\.corrupt\.\S+, continuing with a fresh "
            r"store" % (re.escape(state), re.escape(data)), count=n)
        assert os.path.basename(moved[-1]) in "".join(lines)
        sbx.wait_log(r"pop3\(alice\).*pop3 session ended with QUIT: "
                     r"policy=expunge-after-retrieval \(fail-safe\).* "
                     r"retr=1 .*expunged=0 kept=1", count=n)
        assert sbx.maildir_count("alice") == 5

        # the next login (IMAP) works on the fresh store
        _populate(sbx, 2 * n)
        assert sbx.maildir_count("alice") == 5

    # later POP3 logins are normal sessions again, not fail-safe; the
    # fresh store remembers what the fail-safe session retrieved (hidden
    # from this device's view, still on the server)
    p = pop3(sbx)
    assert p.stat()[0] == 4
    p.quit()
    pop3_ends += 1
    wait_session_end(sbx, "alice", count=pop3_ends)
    last = sbx.wait_log(r"pop3\(alice\).*pop3 session ended",
                        count=pop3_ends)[-1]
    assert "fail-safe" not in last, last
    assert len(glob.glob(data + ".corrupt.*")) == len(seeds)
    assert sbx.maildir_count("alice") == 5

    # audited: one state_reset per damaged store, naming where it went
    resets = _wait_audit(sbx, "state_reset", len(seeds))
    assert len(resets) == len(seeds), resets
    for r, path in zip(resets, sorted(glob.glob(data + ".corrupt.*"))):
        assert r["user"] == "alice" and r["service"] == "pop3", r
        assert data + ".corrupt." in r["detail"], r
    # no expunge intent or expunge, only the suppressed policy expunges
    ev = [r["event"] for r in sbx.audit_records()
          if r["event"].startswith("expunge")]
    assert ev == ["expunge_suppressed"] * len(seeds), ev
    assert sbx.audit_verify()[0] == 0


def test_damaged_store_imap_first(sandbox_factory):
    """The same for a store first opened by IMAP after the damage."""
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "expunge-after-retrieval"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    data = os.path.join(sbx.state_dir("alice"), "data.mdb")
    _populate(sbx, 1)
    _damage(data, 7)
    _populate(sbx, 2)
    assert len(glob.glob(data + ".corrupt.*")) == 1
    sbx.wait_log(r"imap\(alice\).*Error: mailward: State store .* was "
                 r"damaged: moved aside to %s\.corrupt\." % re.escape(data))
    for _ in range(2):
        p = pop3(sbx)
        assert p.stat()[0] == 3
        p.quit()
    wait_session_end(sbx, "alice", count=2)
    assert len(glob.glob(data + ".corrupt.*")) == 1
    assert sbx.maildir_count("alice") == 3


def test_reset_store_never_expunges_for_unknown_devices(sandbox_factory):
    """After a reset the store no longer knows the laptop: the phone
    alone must not count as "all devices" until devices seen before the
    reset could have expired."""
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices",
            "mailward_device_expire": "30d"}},
        app_passwords={"alice": {"phonepw": "phone",
                                 "laptoppw": "laptop"}},
        audit=True)
    for pw in ("phonepw", "laptoppw"):
        pop3(sbx, password=pw).quit()
    wait_session_end(sbx, "alice", count=2)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    data = os.path.join(sbx.state_dir("alice"), "data.mdb")
    _damage(data, 5)
    for n in (3, 4):
        # the first session resets the store (fail-safe), the second is
        # a normal one whose store knows only the phone
        p = pop3(sbx, password="phonepw")
        for k in range(1, p.stat()[0] + 1):
            p.retr(k)
        p.quit()
        wait_session_end(sbx, "alice", count=n)
        assert sbx.maildir_count("alice") == 3
    assert len(glob.glob(data + ".corrupt.*")) == 1
    sbx.wait_log(r"pop3\(alice\).*Info: mailward: expunge-after-all-devices "
                 r"keeps every message until \d{4}-\d\d-\d\dT[\d:]+Z: the "
                 r"state store was reset at ")
    last = sbx.wait_log(r"pop3\(alice\).*pop3 session ended", count=4)[-1]
    assert "fail-safe" not in last and "expunged=0" in last, last
    # the laptop comes back: it still gets all three
    p = pop3(sbx, password="laptoppw")
    assert p.stat()[0] == 3
    p.quit()


def test_lost_data_file_never_expunges_for_unknown_devices(sandbox_factory):
    """A data.mdb truncated to nothing or deleted while its lock.mdb
    stays (disk full, a restore without it) is lost state, not a new
    user: LMDB would silently start a fresh store and the phone alone
    would count as "all devices"."""
    for how in ("truncate", "unlink"):
        sbx = sandbox_factory(
            users={"alice": {
                "mailward_pop3_policy": "expunge-after-all-devices"}},
            app_passwords={"alice": {"phonepw": "phone",
                                     "laptoppw": "laptop"}},
            audit=True)
        for pw in ("phonepw", "laptoppw"):
            pop3(sbx, password=pw).quit()
        wait_session_end(sbx, "alice", count=2)
        sbx.deliver("alice", [make_message(i) for i in range(3)])
        data = os.path.join(sbx.state_dir("alice"), "data.mdb")
        if how == "truncate":
            os.truncate(data, 0)
        else:
            os.unlink(data)
        for n in (3, 4):
            p = pop3(sbx, password="phonepw")
            for k in range(1, p.stat()[0] + 1):
                p.retr(k)
            p.quit()
            wait_session_end(sbx, "alice", count=n)
            assert sbx.maildir_count("alice") == 3, how
        sbx.wait_log(r"pop3\(alice\).*Error: mailward: State store %s lost "
                     r"its data: %s is missing or empty while the store's "
                     r"lock file remained, continuing with a fresh store"
                     % (re.escape(sbx.state_dir("alice")), re.escape(data)))
        sbx.wait_log(r"pop3\(alice\).*Info: mailward: "
                     r"expunge-after-all-devices keeps every message until ")
        resets = _wait_audit(sbx, "state_reset", 1)
        assert len(resets) == 1 and "lost its data" in resets[0]["detail"]
        # the laptop comes back: it still gets all three
        p = pop3(sbx, password="laptoppw")
        assert p.stat()[0] == 3
        p.quit()
        sbx.stop()


# private mailbox attributes (the INBOX marker of the state store) need an
# attribute dict
ATTR_SETTINGS = {"mail_attribute_dict": {
    "2.3": "file:%h/dovecot-attributes", "2.4": None}}
ATTR_CONF = {"2.3": "",
             "2.4": "mail_attribute {\n  dict file {\n"
                    "    path = %{home}/dovecot-attributes\n  }\n}\n"}
MARK_KEY = "vendor/vendor.mailward/state-created"


def _log_lines(sbx, pattern):
    return [l for l in sbx.read_log().splitlines() if re.search(pattern, l)]


def test_lost_state_directory_never_expunges_for_unknown_devices(
        sandbox_factory):
    """The whole state directory deleted (or a restore without it) looks
    like a new user to the store; the INBOX marker written when the first
    store was created says otherwise: lost state, every message kept."""
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices"}},
        app_passwords={"alice": {"phonepw": "phone",
                                 "laptoppw": "laptop"}},
        settings=ATTR_SETTINGS, extra_conf=ATTR_CONF, audit=True)
    for pw in ("phonepw", "laptoppw"):
        pop3(sbx, password=pw).quit()
    wait_session_end(sbx, "alice", count=2)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    shutil.rmtree(sbx.state_dir("alice"))
    for n in (3, 4):
        # the first session finds the marker (fail-safe), the second is a
        # normal one whose store knows only the phone
        p = pop3(sbx, password="phonepw")
        for k in range(1, p.stat()[0] + 1):
            p.retr(k)
        p.quit()
        wait_session_end(sbx, "alice", count=n)
        assert sbx.maildir_count("alice") == 3
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: State store %s lost its "
                 r"data: the state directory is new but the INBOX marker "
                 r"/private/%s says a store existed since \d+ "
                 % (re.escape(sbx.state_dir("alice")), re.escape(MARK_KEY)))
    sbx.wait_log(r"pop3\(alice\).*Info: mailward: expunge-after-all-devices "
                 r"keeps every message until ")
    last = sbx.wait_log(r"pop3\(alice\).*pop3 session ended", count=4)[-1]
    assert "fail-safe" not in last and "expunged=0" in last, last
    resets = _wait_audit(sbx, "state_reset", 1)
    assert len(resets) == 1 and "INBOX marker" in resets[0]["detail"]
    # the laptop comes back: it still gets all three
    p = pop3(sbx, password="laptoppw")
    assert p.stat()[0] == 3
    p.quit()


def test_new_user_first_session_marks_inbox_and_expunges(sandbox_factory):
    """A brand-new user (no marker): the first all-devices session
    expunges as before, writes the marker; later sessions write none."""
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices"}},
        settings=ATTR_SETTINGS, extra_conf=ATTR_CONF)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    p = pop3(sbx)
    for k in range(1, 4):
        p.retr(k)
    p.quit()
    wait_session_end(sbx, "alice")
    assert sbx.maildir_count("alice") == 0
    with open(os.path.join(sbx.home("alice"), "dovecot-attributes")) as f:
        assert MARK_KEY in f.read()
    last = sbx.wait_log(r"pop3\(alice\).*pop3 session ended")[-1]
    assert "fail-safe" not in last, last
    assert not _log_lines(sbx, r"lost its data|INBOX marker|attributes "
                                r"unavailable")


def test_no_attribute_dict_warns_when_store_created(sandbox_factory):
    """Without mail_attribute_dict the marker cannot be kept: a warning
    when the store is created, and mail is expunged as before."""
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    for n in (1, 2):
        p = pop3(sbx)
        for k in range(1, p.stat()[0] + 1):
            p.retr(k)
        p.quit()
        wait_session_end(sbx, "alice", count=n)
    assert sbx.maildir_count("alice") == 0
    warned = _log_lines(sbx, r"Warning: mailward: State store %s: mailbox "
                          r"attributes unavailable .*set mail_attribute_dict"
                          % re.escape(sbx.state_dir("alice")))
    assert len(warned) == 1, warned
