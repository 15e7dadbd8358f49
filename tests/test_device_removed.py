"""A device removed while one of its sessions is open (evicted by the
device limit, expired, forgotten by doveadm): the session's records are
discarded, never given to another device, and never expunge anything;
a removed device's number is not handed to the next device."""
import time

from mwharness import devices, imap, make_message, pop3, wait_session_end

APP = {"alice": {"phonepw": "phone", "laptoppw": "laptop",
                 "tabletpw": "tablet"}}
REMOVED = (r"pop3\(alice\).*Warning: mailward: device [0-9a-f]{32} "
           r"\(phone\) was removed from the state store during this session")


def _state_by_device(sbx):
    devs = {d["id"]: l for l, d in devices(sbx).items()}
    rows = sbx.doveadm_json("mailward", "state", "-u", "alice")
    return {devs.get(r["device"], r["device"]): r for r in rows}


def _retr_all(p):
    for n in range(1, p.stat()[0] + 1):
        p.retr(n)


def _check_phone_discarded(sbx, laptop):
    # the phone's QUIT gave its records to nobody and expunged nothing
    assert sbx.maildir_count("alice") == 3
    sbx.wait_log(REMOVED)
    sbx.wait_log(r"pop3\(alice\).*state record\(s\) of this session "
                 r"discarded, not given to another device")
    devs = devices(sbx)
    assert "phone" not in devs, devs
    assert devs["tablet"]["retrieved"] == "0", devs["tablet"]
    assert devs["tablet"]["sessions"] == "1", devs["tablet"]
    state = _state_by_device(sbx)
    assert "tablet" not in state, state
    assert "phone" not in state, state
    if laptop:
        assert state["laptop"]["retrieved"] == "3", state


def test_evicted_device_records_not_given_to_new_device(sandbox_factory):
    # (under expunge-after-all-devices a POP3 device that counts is never
    # evicted: see test_device_flood.py; a device not seen within
    # mailward_device_protect may be under the other policies)
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "leave-on-server",
            "mailward_device_protect": "0",
            "mailward_device_max": "2"}},
        app_passwords=APP)
    # phone first: on equal last-seen times the lowest number is evicted
    pop3(sbx, password="phonepw").quit()
    pop3(sbx, password="laptoppw").quit()
    wait_session_end(sbx, "alice", count=2)
    sbx.deliver("alice", [make_message(i) for i in range(3)])

    lap = pop3(sbx, password="laptoppw")
    _retr_all(lap)
    lap.quit()
    wait_session_end(sbx, "alice", count=3)
    assert sbx.maildir_count("alice") == 3      # the phone has none yet

    phone = pop3(sbx, password="phonepw")
    _retr_all(phone)
    # the tablet's login evicts the least recently seen device: phone
    pop3(sbx, password="tabletpw").quit()
    wait_session_end(sbx, "alice", count=4)
    sbx.wait_log(r"pop3\(alice\).*mailward: device [0-9a-f]{32} evicted "
                 r"\(device limit reached\): phone")
    assert set(devices(sbx)) == {"laptop", "tablet"}
    phone.quit()
    wait_session_end(sbx, "alice", count=5)
    _check_phone_discarded(sbx, laptop=True)

    # the phone comes back as a new device and starts empty
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 3
    p.quit()
    wait_session_end(sbx, "alice", count=6)
    assert sbx.maildir_count("alice") == 3


def test_forgotten_device_records_not_given_to_new_device(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices"}},
        app_passwords=APP)
    pop3(sbx, password="phonepw").quit()
    pop3(sbx, password="laptoppw").quit()
    wait_session_end(sbx, "alice", count=2)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    lap = pop3(sbx, password="laptoppw")
    _retr_all(lap)
    lap.quit()
    wait_session_end(sbx, "alice", count=3)

    phone = pop3(sbx, password="phonepw")
    _retr_all(phone)
    phone_id = devices(sbx)["phone"]["id"]
    sbx.doveadm("mailward", "forget", "-u", "alice", "-d", phone_id)
    pop3(sbx, password="tabletpw").quit()
    wait_session_end(sbx, "alice", count=4)
    phone.quit()
    wait_session_end(sbx, "alice", count=5)
    _check_phone_discarded(sbx, laptop=True)


def test_expired_device_records_not_given_to_new_device(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices",
            "mailward_device_expire": "2s"}},
        app_passwords=APP)
    pop3(sbx, password="phonepw").quit()
    wait_session_end(sbx, "alice")
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    phone = pop3(sbx, password="phonepw")
    _retr_all(phone)
    time.sleep(3)       # the phone is idle past mailward_device_expire
    pop3(sbx, password="tabletpw").quit()
    wait_session_end(sbx, "alice", count=2)
    sbx.wait_log(r"pop3\(alice\).*mailward: device [0-9a-f]{32} expired "
                 r"\(idle too long\): phone")
    phone.quit()
    wait_session_end(sbx, "alice", count=3)
    _check_phone_discarded(sbx, laptop=False)


def test_evicted_imap_device_records_not_given_to_new_device(
        sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {
            "mailward_pop3_policy": "expunge-after-all-devices",
            # the IMAP phone does not count, so it may be evicted
            "mailward_imap_counts_as_retrieval": "no",
            "mailward_device_protect": "0",
            "mailward_device_max": "1"}},
        app_passwords=APP)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    i = imap(sbx, password="phonepw")
    i.select("INBOX")
    assert i.fetch("1:3", "(BODY[])")[0] == "OK"
    # the tablet's login evicts the phone (limit 1) while it fetches
    pop3(sbx, password="tabletpw").quit()
    wait_session_end(sbx, "alice")
    sbx.wait_log(r"pop3\(alice\).*mailward: device [0-9a-f]{32} evicted "
                 r"\(device limit reached\): phone")
    i.logout()
    sbx.wait_log(r"imap\(alice\).*Warning: mailward: device [0-9a-f]{32} "
                 r"\(phone\) was removed from the state store during this "
                 r"session .*state record\(s\) of this session discarded")
    sbx.wait_log(r"imap\(alice\).*Disconnected: Logged out")
    assert sbx.maildir_count("alice") == 3
    assert set(devices(sbx)) == {"tablet"}
    assert _state_by_device(sbx) == {}
    # the tablet lists everything: it retrieved nothing
    p = pop3(sbx, password="tabletpw")
    assert p.stat()[0] == 3
    p.quit()
    wait_session_end(sbx, "alice", count=2)
    assert sbx.maildir_count("alice") == 3
