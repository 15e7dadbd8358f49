"""A session that changes no state writes nothing to the state store
(issue 14): no LMDB write transaction (the environment's last transaction
id stays), no fsync, no change of data.mdb. Repeated leave-on-server POP3
polls and repeated IMAP reads of messages the device has already
retrieved are the common case on a busy server."""
import os
import re
import subprocess
import time

from mwharness import imap, imap_id, make_message, pop3, wait_session_end


def txnid(sbx, user="alice"):
    r = subprocess.run(["mdb_stat", "-e", sbx.state_dir(user)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Last transaction ID: (\d+)", r.stdout)
    assert m, r.stdout
    return int(m.group(1))


def data_file(sbx, user="alice"):
    st = os.stat(os.path.join(sbx.state_dir(user), "data.mdb"))
    return (st.st_size, st.st_mtime_ns)


def pop3_poll(sbx, count):
    p = pop3(sbx)
    assert int(p.stat()[0]) == count
    p.uidl()
    for n in range(1, count + 1):
        p.retr(n)
    p.quit()


def wait_no_mail_process(sbx, timeout=10):
    """Waits until no imap/pop3 process of the sandbox is alive (the state
    is written at the end of the session, before the process exits)."""
    master = int(open(os.path.join(sbx.dir, "run", "master.pid")).read())
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)
                comm = open("/proc/%s/comm" % pid).read().strip()
            except OSError:
                continue
            ppid = int(fields[1].split()[1])
            if ppid == master and comm in ("imap", "pop3"):
                busy = True
        if not busy:
            return
        time.sleep(0.05)
    raise AssertionError("mail processes still running")


def test_repeated_pop3_poll_writes_nothing(sandbox_factory):
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])

    pop3_poll(sbx, 3)               # records the retrievals
    wait_session_end(sbx, "alice")
    before, data_before = txnid(sbx), data_file(sbx)

    pop3_poll(sbx, 3)               # the same again: nothing new
    pop3_poll(sbx, 3)
    wait_session_end(sbx, "alice", count=3)
    assert txnid(sbx) == before
    assert data_file(sbx) == data_before

    # a session that records something still writes, once
    sbx.deliver("alice", [make_message(9)])
    pop3_poll(sbx, 4)
    wait_session_end(sbx, "alice", count=4)
    assert txnid(sbx) == before + 1


def test_repeated_imap_read_writes_nothing(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])

    def session():
        i = imap(sbx)
        imap_id(i, ["name", "Thunderbird", "version", "128.3"])
        i.select("INBOX")
        i.fetch("1:*", "(UID FLAGS BODY.PEEK[])")
        i.logout()
        wait_no_mail_process(sbx)

    session()                       # records the retrievals
    before, data_before = txnid(sbx), data_file(sbx)
    session()
    session()
    assert txnid(sbx) == before
    assert data_file(sbx) == data_before


def test_short_device_expiry_writes_every_session(sandbox_factory):
    # last_seen may lag by MW_DEVICE_TOUCH_SECS (60 s) only next to an
    # expiry of 100 minutes or more: a shorter one gets every touch
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server",
                         "mailward_device_expire": "1h"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    pop3_poll(sbx, 2)
    wait_session_end(sbx, "alice")
    before = txnid(sbx)
    pop3_poll(sbx, 2)
    pop3_poll(sbx, 2)
    wait_session_end(sbx, "alice", count=3)
    assert txnid(sbx) == before + 2


def test_login_delay_writes_every_session(sandbox_factory):
    # the login delay counts from the device's last session: its
    # last_seen is written at every session end, not every minute
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server",
                         "mailward_pop3_login_delay": "2s"}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    pop3_poll(sbx, 2)
    wait_session_end(sbx, "alice")
    before = txnid(sbx)
    time.sleep(2.2)                 # past the delay
    pop3_poll(sbx, 2)
    wait_session_end(sbx, "alice", count=2)
    assert txnid(sbx) == before + 1
