"""Error messages name what failed, where and why (issue 13 item 4): the
auditor CLI's key, public key and log errors, the writer's key errors and
the mail process's connect() error on the writer's socket."""

import atexit
import os
import re
import pwd
import shutil
import signal
import subprocess
import tempfile

import mwharness
from test_audit_writer import AuditConn, body, wait_records, wait_writer

CLI = mwharness.AUDIT_CLI
CLIENT_TEST = os.path.join(mwharness.BUILD, "tests", "audit-client-test")


def runnable_by_others(path):
    """path, or a copy in a directory everybody can traverse: the build
    tree may be under a directory only root enters (a clone in /root)."""
    d = tempfile.mkdtemp(prefix="mailward-bin-")
    atexit.register(shutil.rmtree, d, True)
    os.chmod(d, 0o755)
    copy = os.path.join(d, os.path.basename(path))
    shutil.copy2(path, copy)
    os.chmod(copy, 0o755)
    return copy


def cli(*args, user=None):
    cmd = [CLI] + list(args)
    if user is not None:
        cmd = ["runuser", "-u", user, "--", runnable_by_others(CLI)] + \
            list(args)
    return subprocess.run(cmd, capture_output=True, timeout=60)


def keys(tmp_path):
    d = tmp_path / "keys"
    d.mkdir()
    os.chmod(str(d), 0o755)
    subprocess.run([CLI, "keygen", "--out", str(d)], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    return d


def test_verify_errors_name_file_and_reason(tmp_path):
    d = keys(tmp_path)
    log = tmp_path / "audit.jsonl"
    log.write_bytes(b"")
    cases = [
        (["--key", "/nonexistent.key", str(log)],
         "verify key file: open(/nonexistent.key) failed: No such file "
         "or directory"),
        # the wrong file given as the public key
        (["--pubkey", str(d / "verify.key"), str(log)],
         "%s is not an Ed25519 public key (PEM)" % (d / "verify.key")),
        # a mistyped log path
        (["--key", str(d / "verify.key"), str(tmp_path / "audit.jsnl")],
         "log file %s: open failed: No such file or directory"
         % (tmp_path / "audit.jsnl")),
        (["--key", str(d / "verify.key"), "--checkpoint-file",
          str(tmp_path / "kept"), str(log)],
         "checkpoint file %s: open failed: No such file or directory"
         % (tmp_path / "kept")),
    ]
    for args, msg in cases:
        r = cli("verify", *args)
        assert r.returncode == 3, (args, r)
        assert r.stdout == b""
        assert r.stderr == ("mailward-audit: verify: %s\n" % msg).encode(), \
            (args, r.stderr)


def test_verify_permission_error_names_uids(tmp_path):
    """Permission denied names the process's uid and the owner and mode of
    the file, or of the directory on the way that blocks it."""
    import tempfile
    top = tempfile.mkdtemp(prefix="mw-perm-")
    try:
        os.chmod(top, 0o755)
        d = keys(type(tmp_path)(top))
        log = tmp_path / "audit.jsonl"
        log.write_bytes(b"")
        os.chmod(str(tmp_path), 0o755)
        nobody = pwd.getpwnam("nobody")
        key = d / "verify.key"
        prefix = "mailward-audit: verify: verify key file: open(%s) failed: " \
            "Permission denied (process uid %d gid %d; " % (
                key, nobody.pw_uid, nobody.pw_gid)
        r = cli("verify", "--key", str(key), top + "/audit.jsonl",
                user="nobody")
        assert r.returncode == 3, r
        assert r.stderr.decode() == prefix + \
            "%s owned by uid 0 gid 0 mode 0600)\n" % key
        os.chmod(str(d), 0o700)
        r = cli("verify", "--key", str(key), top + "/audit.jsonl",
                user="nobody")
        assert r.returncode == 3, r
        assert r.stderr.decode() == prefix + \
            "%s: directory %s owned by uid 0 gid 0 mode 0700 is not " \
            "searchable)\n" % (key, d)
    finally:
        subprocess.run(["rm", "-rf", top])


def test_writer_key_not_owned_by_writer(sandbox_factory):
    """writer.key owned by root: the writer's error says which file, why,
    and which uid it runs as (before: 'unavailable: ' and nothing)."""
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    key = os.path.join(sbx.audit_writer_keys, "writer.key")
    os.chown(key, 0, 0)
    auid = pwd.getpwnam(mwharness.AUDIT_USER)
    try:
        # SIGKILL: a clean stop would replace writer.key (new epoch)
        sbx.log_allow.append(r"service\(mailward-audit\): child \d+ "
                             r"killed with signal 9")
        old = sbx.audit_writer_pids()
        os.kill(old[0], signal.SIGKILL)
        wait_writer(sbx, old)
        line = sbx.wait_log(r"mailward-audit: Error: audit log .* "
                            r"unavailable")[0]
        assert line.endswith(
            "audit log %s unavailable: open(%s) failed: Permission denied "
            "(process uid %d gid %d; %s owned by uid 0 gid 0 mode 0600)"
            % (sbx.audit_log_path, key, auid.pw_uid, auid.pw_gid, key)), line
    finally:
        os.chown(key, auid.pw_uid, auid.pw_gid)


def test_socket_connect_denied_names_uid_and_owner(sandbox_factory):
    sbx = sandbox_factory(audit=True)
    wait_records(sbx, lambda r: len(r) >= 2)
    sock = sbx.audit_socket_path
    st = os.stat(sock)
    os.chmod(sock, 0o600)
    for d in (sbx.dir, os.path.dirname(sock)):
        os.chmod(d, os.stat(d).st_mode | 0o005)
    nobody = pwd.getpwnam("nobody")
    r = subprocess.run(["runuser", "-u", "nobody", "--",
                        runnable_by_others(CLIENT_TEST), sock,
                        "queue-n:1:u", "flush", "queued"],
                       capture_output=True, text=True, timeout=60)
    os.chmod(sock, st.st_mode & 0o7777)
    out = r.stdout.splitlines()
    assert out[0] == (
        "flush FAIL audit writer %s: connect() failed: Permission denied "
        "(process uid %d gid %d; %s owned by uid %d gid %d mode 0600)"
        % (sock, nobody.pw_uid, nobody.pw_gid, sock, st.st_uid,
           st.st_gid)), r
    # a writer reachable again takes records as before
    c = AuditConn(sock)
    c.event(body("after"))
    assert c.flush()[0] == ["OK"]
    c.close()


def test_state_store_permission_error_names_uids(sandbox_factory):
    """A state directory the mail uid cannot use: the fail-safe reason
    names the process's uid and the directory's owner and mode."""
    sbx = sandbox_factory(users={"alice": {}})
    d = sbx.state_dir("alice")
    os.makedirs(d, exist_ok=True)
    os.chown(d, 0, 0)
    os.chmod(d, 0o700)
    st = os.stat(sbx.home("alice"))
    p = mwharness.pop3(sbx, "alice")
    p.quit()
    uid = st.st_uid
    line = sbx.wait_log(r"pop3\(alice\).*session is fail-safe")[0]
    m = re.search(r"open\((\S+)\) failed: Permission denied \(process "
                  r"uid (\d+) gid \d+; \S+: directory (\S+) owned by uid 0 "
                  r"gid 0 mode 0700 is not searchable\)", line)
    assert m, line
    assert m.group(1) == os.path.join(d, "lock.mdb"), line
    assert int(m.group(2)) == uid and m.group(3) == d, line
