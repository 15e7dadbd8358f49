"""mailward_pop3_login_delay (RFC 2449 LOGIN-DELAY) against a real
Dovecot: a POP3 device that logs in again too soon gets -ERR
[LOGIN-DELAY] and no session, another device of the same user is not
delayed, post-login CAPA advertises LOGIN-DELAY, and a refused login
changes nothing (mail, device state)."""
import poplib
import socket

import pytest

import mwclients
from mwharness import make_message, pop3, devices, wait_session_end
from test_audit_writer import wait_records

DEVICES = {"phonepw": "phone", "laptoppw": "laptop"}


def _raw_login(sbx, password, extra=b""):
    """USER/PASS on a raw socket; returns every line the server sent
    until it closed the connection (bounded)."""
    s = socket.create_connection(("127.0.0.1", sbx.pop3_port), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"+OK")
    s.sendall(b"USER alice\r\n")
    assert f.readline().startswith(b"+OK")
    s.sendall(b"PASS " + password.encode() + b"\r\n" + extra)
    lines = []
    for _ in range(20):
        line = f.readline()
        if line == b"":
            break
        lines.append(line)
    s.close()
    return lines


def test_login_delay_one_device_not_another(sandbox_factory, tmp_path):
    sbx = sandbox_factory(users={"alice": {
        "mailward_pop3_policy": "leave-on-server",
        "mailward_pop3_login_delay": "1h"}},
        app_passwords={"alice": DEVICES}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])

    # a device's first login is not delayed; CAPA says what applies
    p = pop3(sbx, password="phonepw")
    caps = p.capa()
    assert caps["LOGIN-DELAY"] == ["3600"], caps
    assert caps["EXPIRE"] == ["NEVER"], caps
    p.quit()
    wait_session_end(sbx, "alice")
    before = devices(sbx)["phone"]

    # the same device again at once: -ERR [LOGIN-DELAY] to PASS, no session
    with pytest.raises(poplib.error_proto) as e:
        pop3(sbx, password="phonepw")
    assert e.value.args[0].startswith(b"-ERR [LOGIN-DELAY] "), e.value
    sbx.wait_log(r"pop3\(alice\).*Disconnected: Login refused: LOGIN-DELAY")
    sbx.wait_log(r"pop3\(alice\).*mailward: POP3 login of device "
                 r"[0-9a-f]+ \(phone\) refused: .*"
                 r"mailward_pop3_login_delay=3600s")

    # pipelined commands after PASS are not run: nothing deleted
    lines = _raw_login(sbx, "phonepw", b"DELE 1\r\nDELE 2\r\nQUIT\r\n")
    assert len(lines) == 1 and lines[0].startswith(b"-ERR [LOGIN-DELAY] "), \
        lines
    assert sbx.maildir_count("alice") == 2

    # another device of the same user is not delayed
    p = pop3(sbx, password="laptoppw")
    assert p.stat()[0] == 2
    p.quit()
    # and a real client is told too (fetchmail reports the failure)
    rc, out, got = mwclients.run_fetchmail(sbx, "alice", str(tmp_path),
                                           keep=True, password="phonepw")
    assert rc != 0 and got == [], out
    assert "LOGIN-DELAY" in out, out

    # refused logins wrote nothing: the phone's record is unchanged
    after = devices(sbx)["phone"]
    assert after["last_seen"] == before["last_seen"], (before, after)
    assert after["sessions"] == before["sessions"], (before, after)
    # only accepted sessions end with mailward's session line
    wait_session_end(sbx, "alice", count=2)
    assert sbx.read_log().count("mailward: pop3 session ended") == 2

    recs = wait_records(sbx, lambda r: len(
        [x for x in r if x.get("event") == "login" and
         x.get("outcome") == "refused"]) >= 3)
    refused = [x for x in recs if x.get("event") == "login" and
               x.get("outcome") == "refused"]
    assert all(x["cause"] == "login_delay" and x["device_label"] == "phone"
               for x in refused), refused

    # without a delay (userdb change) the phone logs in again
    sbx.set_user_fields("alice", mailward_pop3_login_delay="0")
    p = pop3(sbx, password="phonepw")
    assert p.stat()[0] == 2
    assert "LOGIN-DELAY" not in p.capa()
    p.quit()


def test_no_login_delay_by_default(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {}})
    for _ in range(2):
        p = pop3(sbx)
        assert "LOGIN-DELAY" not in p.capa()
        p.quit()
