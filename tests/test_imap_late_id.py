"""An IMAP ID that comes after many fetches is still the session's only
device: what the session fetched before it waits for it however much that
is (each message once), and is never recorded for a network device that a
late ID would then split from the client's own."""
import time

import pytest

from mwharness import devices, imap, imap_id, make_message

MANY = 1005     # more than the 1000 records that used to wait at most


def _fetch_all_then_id(sbx, count):
    i = imap(sbx)
    typ, data = i.select("INBOX")
    assert typ == "OK" and int(data[0]) == count, data
    typ, data = i.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK", typ
    # the same messages again: each waits once
    typ, data = i.fetch("1:10", "(BODY.PEEK[])")
    assert typ == "OK", typ
    imap_id(i, ["name", "Thunderbird", "version", "128.3"])
    i.fetch("1", "(BODY.PEEK[])")
    i.logout()


@pytest.mark.parametrize("audit", [False, True], ids=["noaudit", "audit"])
def test_late_id_after_many_fetches_is_one_device(sandbox_factory, audit):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy":
                         "expunge-after-all-devices"}}, audit=audit)
    sbx.deliver("alice", [make_message(n) for n in range(MANY)])
    _fetch_all_then_id(sbx, MANY)
    # the only device has every message: all expunged at the session end
    # (a second, network device would hold back what it did not fetch)
    sbx.wait_log(r"imap\(alice\).*mailward: expunged %d message" % MANY)
    devs = devices(sbx)
    assert len(devs) == 1, devs
    (label, dev), = devs.items()
    assert label.startswith('imap "Thunderbird 128.3" '), devs
    assert dev["sessions"] == "1", dev
    assert sbx.maildir_count("alice") == 0
    if audit:
        deadline = time.time() + 10
        while True:
            recs = [r for r in sbx.audit_records()
                    if r.get("user") == "alice"]
            if any(r["event"] == "logout" for r in recs) or \
                    time.time() > deadline:
                break
            time.sleep(0.1)
        regs = [r for r in recs if r["event"] == "device_registered"]
        assert [r["device_label"] for r in regs] == [label], regs
        # the fetch records that could not wait are named afterwards
        ident = [r for r in recs if r["event"] == "device_identified"]
        assert len(ident) == 1 and ident[0]["device_label"] == label, \
            ident
        assert ident[0]["cause"] == "imap-id"


def test_late_id_after_idle_is_one_device(sandbox_factory):
    # a session whose fetches wait for its ID does not move to
    # imap-hibernate (whose restored process could not give them to the
    # device the ID names): it stays, and the late ID is its one device
    from test_imap_device_identity import HIBERNATE_CONF
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy":
                         "expunge-after-all-devices"}},
        extra_conf=HIBERNATE_CONF)
    sbx.deliver("alice", [make_message(n) for n in range(3)])
    i = imap(sbx)
    i.select("INBOX")
    assert i.fetch("1:2", "(BODY.PEEK[])")[0] == "OK"
    tag = i._new_tag()
    i.send(tag + b" IDLE\r\n")
    assert i.readline().startswith(b"+")
    sbx.wait_log(r"imap\(alice\).*mailward: imap session stays out of "
                 r"imap-hibernate: its records wait for the client's IMAP "
                 r"ID")
    i.send(b"DONE\r\n")
    for _ in range(100):
        line = i.readline()
        if line.startswith(tag + b" "):
            assert b" OK" in line, line
            break
    imap_id(i, ["name", "Thunderbird", "version", "128.3"])
    assert i.fetch("3", "(BODY.PEEK[])")[0] == "OK"
    i.logout()
    sbx.wait_log(r"imap\(alice\).*mailward: expunged 3 message")
    devs = devices(sbx)
    assert len(devs) == 1, devs
    (label, dev), = devs.items()
    assert label.startswith('imap "Thunderbird 128.3" '), devs
    assert sbx.maildir_count("alice") == 0
