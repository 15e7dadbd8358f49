"""One real IMAP client is one device, whatever the order of its commands
(ID after other commands) and across IMAP hibernation (imap-hibernate
restores the session into a new imap process with no new ID, login or
device); a session counts once."""
import imaplib
import time

from mwharness import devices, imap, imap_id, make_message

imaplib.Commands.setdefault("ENABLE", ("AUTH", "SELECTED"))

HIBERNATE_CONF = """
imap_hibernate_timeout = 1s
service imap-hibernate {
  unix_listener imap-hibernate {
    mode = 0666
  }
}
service imap {
  unix_listener imap-master {
    user = dovecot
  }
}
"""


def _records(sbx, user, timeout=10, want=None):
    deadline = time.time() + timeout
    while True:
        recs = [r for r in sbx.audit_records() if r.get("user") == user]
        if want is None or want(recs) or time.time() > deadline:
            return recs
        time.sleep(0.1)


def test_records_sent_before_id_are_identified_later(sandbox_factory):
    """An expunge before the client's ID must be audited at once: the
    records before it go out without the device, and a device_identified
    record of the session names it once the ID comes."""
    sbx = sandbox_factory(users={"alice": {}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    i = imap(sbx)
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    i.store("3", "+FLAGS", "\\Deleted")
    i.expunge()
    imap_id(i, ["name", "Thunderbird", "version", "128.3"])
    i.fetch("2", "(BODY[])")
    i.logout()
    recs = _records(sbx, "alice", want=lambda rs: any(
        r["event"] == "logout" for r in rs))
    (label,) = devices(sbx).keys()
    seen = [(r["event"], r.get("device_label")) for r in recs
            if r["event"] in ("login", "fetch", "expunge_intent",
                              "expunge_done", "device_identified",
                              "logout")]
    # (expunge_done needs no hurry: it waited and names the device)
    assert seen == [("login", None), ("fetch", None),
                    ("expunge_intent", None), ("expunge_done", label),
                    ("device_identified", label), ("fetch", label),
                    ("logout", label)], seen
    ident = [r for r in recs if r["event"] == "device_identified"][0]
    assert ident["cause"] == "imap-id"
    assert ident["session"] == recs[0]["session"]
    assert sbx.maildir_count("alice") == 2


def test_id_after_other_commands_is_one_device(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy":
                         "expunge-after-all-devices"}}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    i = imap(sbx)
    typ, data = i._simple_command("ENABLE", "QRESYNC")
    assert typ == "OK", data
    i.select("INBOX")
    i.fetch("1", "(BODY[])")            # before the client says who it is
    imap_id(i, ["name", "Thunderbird", "version", "128.3"])
    i.fetch("2", "(BODY[])")
    i.logout()
    recs = _records(sbx, "alice", want=lambda rs: any(
        r["event"] == "logout" for r in rs))
    devs = devices(sbx)
    assert len(devs) == 1, devs
    (label, tb), = devs.items()
    assert label.startswith('imap "Thunderbird 128.3" '), devs
    assert tb["retrieved"] == "2" and tb["sessions"] == "1", tb
    regs = [r for r in recs if r["event"] == "device_registered"]
    assert [r["device_label"] for r in regs] == [label]
    # the records before ID (login, the first fetch) waited for the
    # device and name it: no device_identified record is needed
    fetches = [r for r in recs if r["event"] == "fetch"]
    assert [(r["uid"], r.get("device_label")) for r in fetches] == \
        [(1, label), (2, label)]
    login = [r for r in recs if r["event"] == "login"]
    assert [r.get("device_label") for r in login] == [label]
    assert not [r for r in recs if r["event"] == "device_identified"]
    # the only device has both: expunge-after-all-devices expunged them
    # at the session end (a second, network device would hold them back)
    sbx.wait_log(r"imap\(alice\).*mailward: expunged 2 message")
    assert sbx.maildir_count("alice") == 1


def test_client_without_id_is_its_network_device(sandbox_factory):
    sbx = sandbox_factory()
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    i = imap(sbx)
    i.select("INBOX")
    i.fetch("1:2", "(BODY[])")
    i.logout()
    time.sleep(0.3)
    devs = devices(sbx)
    assert len(devs) == 1, devs
    (label, dev), = devs.items()
    assert label.startswith("imap from "), devs
    assert dev["retrieved"] == "2" and dev["sessions"] == "1", dev


def _idle_until_hibernated(sbx, i, count):
    tag = i._new_tag()
    i.send(tag + b" IDLE\r\n")
    line = i.readline()
    assert line.startswith(b"+"), line
    sbx.wait_log(r"imap\(alice\).*mailward: imap session moves to "
                 r"imap-hibernate", count=count)
    return tag


def _idle_done(i, tag):
    i.send(b"DONE\r\n")
    for _ in range(100):
        line = i.readline()
        if line.startswith(tag + b" "):
            assert b" OK" in line, line
            return
    raise AssertionError("no tagged IDLE reply")


def test_hibernation_is_one_session_one_device(sandbox_factory):
    sbx = sandbox_factory(extra_conf=HIBERNATE_CONF, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    i = imap(sbx)
    imap_id(i, ["name", "Apple Mail", "version", "16.0"])
    i.select("INBOX")
    i.fetch("1", "(BODY[])")
    for n in (1, 2):
        # moved to imap-hibernate, then restored into a new imap process
        # that never sees the client's ID
        tag = _idle_until_hibernated(sbx, i, n)
        _idle_done(i, tag)
        sbx.wait_log(r"imap\(alice\).*mailward: imap session restored "
                     r"from hibernation", count=n)
        i.fetch(str(n + 1), "(BODY[])")
    i.logout()

    recs = _records(sbx, "alice", want=lambda rs: any(
        r["event"] == "logout" for r in rs))
    devs = devices(sbx)
    assert len(devs) == 1, devs
    (label, dev), = devs.items()
    assert label.startswith('imap "Apple Mail 16.0" '), devs
    assert dev["retrieved"] == "3", dev
    assert dev["sessions"] == "1", dev
    sessions = {r["session"] for r in recs}
    assert len(sessions) == 1, sessions
    evs = [r["event"] for r in recs]
    assert evs.count("login") == 1 and evs.count("logout") == 1, evs
    assert evs.count("hibernate") == 2 and evs.count("unhibernate") == 2
    assert evs.count("device_registered") == 1, evs
    fetches = [r for r in recs if r["event"] == "fetch"]
    assert [(r["uid"], r["device_label"]) for r in fetches] == \
        [(n, label) for n in (1, 2, 3)]
