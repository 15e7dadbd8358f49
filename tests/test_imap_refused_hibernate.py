"""A refused IMAP device (device_new_per_day, device_max) runs fail-safe
without device state; it must stay so for the whole session. It used to
move to imap-hibernate like any session: the restored process did not know
its ID (only a registered device's ID goes with the session), waited for
one and at logout resolved the session as the network device, here an
ID-less phone: the tablet's fetch was credited to the phone and the
laptop's RETR+QUIT under expunge-after-all-devices expunged a message the
phone never had (attack review 5, n2/n6). A fail-safe session now stays
out of hibernation."""
import time

import pytest

from mwharness import imap, imap_id, make_message, pop3, wait_session_end
from test_imap_device_identity import HIBERNATE_CONF, _idle_done
from test_no_change_no_write import wait_no_mail_process

LIMITS = {"rate": {"mailward_device_new_per_day": "2"},
          "max": {"mailward_device_max": "2"}}
PHONE = 'imap from 127.0.0.0/24'


def _setup(sandbox_factory, limit):
    fields = {"mailward_pop3_policy": "expunge-after-all-devices"}
    fields.update(LIMITS[limit])
    sbx = sandbox_factory(users={"alice": fields},
                          app_passwords={"alice": {"laptoppw": "laptop"}},
                          extra_conf=HIBERNATE_CONF, audit=True)
    pop3(sbx, "alice", password="laptoppw").quit()
    wait_session_end(sbx, "alice")
    i = imap(sbx)                       # the phone: no ID
    i.select("INBOX")
    i.logout()
    wait_no_mail_process(sbx)
    sbx.deliver("alice", [make_message(1)])
    return sbx


@pytest.mark.parametrize("limit", ["rate", "max"])
@pytest.mark.parametrize("fetch_first", [False, True],
                         ids=["idle", "fetch-idle"])
def test_refused_device_stays_out_of_hibernation(sandbox_factory, limit,
                                                 fetch_first):
    sbx = _setup(sandbox_factory, limit)
    i = imap(sbx)
    imap_id(i, ["name", "NewTablet"])
    i.select("INBOX")
    if fetch_first:
        assert i.fetch("1", "(BODY.PEEK[])")[0] == "OK"
    tag = i._new_tag()
    i.send(tag + b" IDLE\r\n")
    assert i.readline().startswith(b"+")
    sbx.wait_log(r"imap\(alice\).*mailward: imap session stays out of "
                 r"imap-hibernate: the session is fail-safe", count=1)
    _idle_done(i, tag)
    assert i.fetch("1", "(BODY.PEEK[])")[0] == "OK"
    i.logout()
    wait_no_mail_process(sbx)
    assert "restored from hibernation" not in sbx.read_log()
    # the phone never fetched message 1: the laptop's RETR+QUIT keeps it
    p = pop3(sbx, "alice", password="laptoppw")
    p.retr(1)
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    assert sbx.maildir_subjects("alice") == ["message 1"]
    recs = sbx.audit_records()
    refused = [r for r in recs if r["event"] == "device_refused"]
    assert len(refused) == 1, refused
    assert refused[0]["device_label"].startswith('imap "NewTablet" '), \
        refused
    assert not [r for r in recs if r["event"] == "fetch" and
                r.get("device_label") == PHONE], recs


def _session_records(sbx, want_event, count):
    """The audit records once count records of want_event are there."""
    for _ in range(100):
        recs = sbx.audit_records()
        if len([r for r in recs if r["event"] == want_event]) >= count:
            return recs
        time.sleep(0.1)
    raise AssertionError("no %d %s records" % (count, want_event))


def test_refused_imap_device_named_and_logged(sandbox_factory):
    """A refused IMAP device's own records carry its device (known, not
    registered); its log line says what its session expunges."""
    sbx = _setup(sandbox_factory, "rate")
    i = imap(sbx)
    imap_id(i, ["name", "NewTablet"])
    i.select("INBOX")
    assert i.fetch("1", "(BODY.PEEK[])")[0] == "OK"
    i.logout()
    wait_no_mail_process(sbx)
    sbx.wait_log(r"imap\(alice\).*Error: mailward: New device of user alice "
                 r"not registered: .* runs without device state: session "
                 r"is fail-safe: no policy expunge \(the client's own "
                 r"EXPUNGE is carried out\)")
    recs = _session_records(sbx, "logout", 3)
    refused, = [r for r in recs if r["event"] == "device_refused"]
    fetch, = [r for r in recs if r["event"] == "fetch"]
    assert (fetch["device"], fetch["device_label"]) == \
        (refused["device"], refused["device_label"]), (fetch, refused)
    assert refused["device_label"].startswith('imap "NewTablet" ')


@pytest.mark.parametrize("policy", ["client", "expunge-after-retrieval"])
def test_refused_pop3_device_named_and_logged(sandbox_factory, policy):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": policy,
        "mailward_device_new_per_day": "1"}},
        app_passwords={"alice": {"laptoppw": "laptop"}}, audit=True)
    pop3(sbx, "alice", password="laptoppw").quit()
    wait_session_end(sbx, "alice")
    sbx.deliver("alice", [make_message(n) for n in (1, 2)])
    p = pop3(sbx)                       # network device: refused
    p.retr(1)
    p.dele(2)
    assert p.quit() == (b"+OK Logging out, messages kept (server in "
                        b"fail-safe mode).")
    wait_session_end(sbx, "alice", count=2)
    sbx.wait_log(r"pop3\(alice\).*Error: mailward: New device of user alice "
                 r"not registered: .* runs without device state: session "
                 r"is fail-safe: it expunges nothing \(no policy expunge; "
                 r"its DELEs are kept, under every policy\)")
    assert sorted(sbx.maildir_subjects("alice")) == ["message 1",
                                                     "message 2"]
    recs = _session_records(sbx, "logout", 2)
    refused, = [r for r in recs if r["event"] == "device_refused"]
    own = [r for r in recs if r["event"] in ("retr", "dele")]
    assert sorted(r["event"] for r in own) == ["dele", "retr"], own
    for r in own:
        assert (r["device"], r["device_label"]) == \
            (refused["device"], refused["device_label"]), (r, refused)
