"""Device flooding: new device identities (IMAP ID names, POP3 device
labels) beyond mailward_device_max never push out a device that still
counts under expunge-after-all-devices or was seen within
mailward_device_protect: the new device is refused instead (not
registered, its session fail-safe, logged and audited as device_refused),
so the user's phone gets every message before it is expunged; at most
mailward_device_new_per_day new devices are registered per day."""
import time

from mwharness import (devices, imap, imap_id, make_message, pop3,
                       wait_session_end)

APP = {"alice": {"phonepw": "phone"}}
FLOOD = 6       # new IMAP IDs, more than mailward_device_max


def _flood(sbx, count, prefix="flood"):
    """count IMAP sessions, each with a new ID name, fetching every
    message."""
    for n in range(count):
        i = imap(sbx)
        imap_id(i, ["name", "%s-%d" % (prefix, n)])
        i.select("INBOX")
        assert i.fetch("1:*", "(BODY.PEEK[])")[0] == "OK"
        i.logout()
        sbx.wait_log(r"imap\(alice\).*Disconnected: Logged out",
                     count=n + 1)


def _audit(sbx, event, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        recs = [r for r in sbx.audit_records()
                if r.get("user") == "alice" and r["event"] == event]
        if len(recs) >= want or time.time() > deadline:
            return recs
        time.sleep(0.1)


def test_imap_id_flood_never_evicts_the_phone(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices",
            "mailward_device_max": "4"}},
        app_passwords=APP, audit=True)
    # the phone registers, then the mail arrives that it has not retrieved
    pop3(sbx, password="phonepw").quit()
    wait_session_end(sbx, "alice")
    sbx.deliver("alice", [make_message(n) for n in range(3)])

    _flood(sbx, FLOOD)
    # three flood devices fit beside the phone; the others were refused
    devs = devices(sbx)
    assert sorted(devs) == ["imap \"flood-%d\" from 127.0.0.0/24" % n
                            for n in range(3)] + ["phone"], devs
    sbx.wait_log(r"imap\(alice\).*Error: mailward: New device of user "
                 r"alice not registered: the user has mailward_device_max=4 "
                 r"devices and none may be evicted .* still counts for "
                 r"expunge-after-all-devices.* - device [0-9a-f]{32} "
                 r"\(imap \"flood-3\" from 127\.0\.0\.0/24\) runs without "
                 r"device state", count=1)
    refused = _audit(sbx, "device_refused", FLOOD - 3)
    assert [(r["outcome"], r["device_label"]) for r in refused] == \
        [("refused", "imap \"flood-%d\" from 127.0.0.0/24" % n)
         for n in range(3, FLOOD)], refused
    assert "mailward_device_max=4" in refused[0]["detail"]
    assert not _audit(sbx, "device_evicted", 1, timeout=0)
    # nothing expunged: the phone has nothing yet
    assert sbx.maildir_count("alice") == 3

    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 3
    for n in (1, 2, 3):
        p.retr(n)
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    # now every device that counts has them
    assert sbx.maildir_count("alice") == 0


def test_pop3_device_flood_keeps_recent_devices(sandbox_factory):
    # leave-on-server: a POP3 device seen within mailward_device_protect
    # keeps its view (what it deleted stays out of its listing)
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server",
                         "mailward_device_max": "2"}},
        app_passwords={"alice": {"phonepw": "phone", "x1": "new-1",
                                 "x2": "new-2", "x3": "new-3"}})
    sbx.deliver("alice", [make_message(n) for n in range(3)])
    p = pop3(sbx, password="phonepw")
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")
    for n, pw in enumerate(("x1", "x2", "x3")):
        p = pop3(sbx, password=pw)
        assert p.stat()[0] == 3
        p.quit()
        wait_session_end(sbx, "alice", count=n + 2)
    assert sorted(devices(sbx)) == ["new-1", "phone"]
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: New device of user "
                 r"alice not registered: the user has mailward_device_max=2 "
                 r"devices and none may be evicted \(each was seen within "
                 r"mailward_device_protect=604800s\)", count=2)
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 2
    p.quit()


def test_new_devices_per_day(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices",
            "mailward_device_new_per_day": "2"}},
        app_passwords=APP)
    pop3(sbx, password="phonepw").quit()
    wait_session_end(sbx, "alice")
    sbx.deliver("alice", [make_message(n) for n in range(2)])
    _flood(sbx, 3)
    sbx.wait_log(r"imap\(alice\).*Error: mailward: New device of user "
                 r"alice not registered: 2 new devices were registered "
                 r"today \(UTC\) already \(mailward_device_new_per_day=2\)")
    assert sorted(devices(sbx)) == ['imap "flood-0" from 127.0.0.0/24',
                                    "phone"]
    # the known phone is not refused
    p = pop3(sbx, password="phonepw")
    p.retr(1)
    p.retr(2)
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    assert sbx.maildir_count("alice") == 0


def test_device_limit_settings_validated(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_device_protect": "soon",
                         "mailward_pop3_policy": "expunge-after-retrieval"},
               "bob": {"mailward_device_new_per_day": "many",
                       "mailward_pop3_policy": "expunge-after-retrieval"},
               "carol": {"mailward_device_new_per_day": "70000"}})
    sbx.deliver("alice", [make_message(0)])
    p = pop3(sbx, "alice")
    p.retr(1)
    p.quit()
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: Invalid setting "
                 r"mailward_device_protect=soon for user alice: expected "
                 r"an interval")
    wait_session_end(sbx, "alice")
    # fail-safe: the retrieval expunged nothing
    assert sbx.maildir_count("alice") == 1
    for user, value in (("bob", "many"), ("carol", "70000")):
        r = sbx.doveadm("mailward", "settings", "-u", user, fmt="json")
        assert ("Invalid setting mailward_device_new_per_day=%s for user "
                "%s: expected a number of new devices per day from 0 "
                "(unlimited) to 65535" % (value, user)) in r.stderr, \
            r.stderr
