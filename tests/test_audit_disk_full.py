"""A lasting writer fault (issue 17 item 4): with the audit log's file
system full, the writer reports the fault once with its cause (ENOSPC),
then only at a slow, bounded rate, leaves no empty torn files behind, and
says when it has recovered; records flow again and the chain verifies."""

import glob
import os
import re
import subprocess
import tempfile
import time

from test_audit_writer import AuditConn, body, verify_pass, wait_records

FIELDS = ('"service":"pop3","session":"%s","event":"retr",'
          '"user":"full","device":"%s","device_label":"%s",'
          '"mailbox":"%s","uid":%d,"message_id":"%s"')


def fill(sbx):
    """Sends records until the writer answers FAIL (disk full)."""
    big = "x" * 250
    for batch in range(400):
        try:
            c = AuditConn(sbx.audit_socket_path)
            for i in range(10):
                c.event(FIELDS % (big, big, big, big, batch * 10 + i, big))
            ack, rej = c.flush()
            assert rej == []
            c.close()
        except (OSError, EOFError) as e:
            ack = ["EXC", str(e)]
        if ack[0] != "OK":
            return ack
    raise AssertionError("the file system never filled up")


def writer_lines(sbx, level):
    return [l for l in sbx.read_log().splitlines()
            if re.search(r"mailward-audit: %s: " % level, l)]


def test_full_disk_reported_once_no_litter(sandbox_factory):
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    audit_dir = os.path.join(root, "audit")
    os.makedirs(audit_dir)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k,mode=0750",
                    "tmpfs", audit_dir], check=True)
    try:
        sbx = sandbox_factory(audit=True, root=root)
        wait_records(sbx, lambda r: len(r) >= 2)
        errors_before = len(writer_lines(sbx, "Error"))
        ack = fill(sbx)
        assert ack[0] == "FAIL", ack
        assert "No space left on device" in ack[1], ack
        # keep the fault going across several reopen attempts (each one
        # logged, at debug level once rate limited), sessions still sending
        attempts = 0
        for _ in range(200):
            c = AuditConn(sbx.audit_socket_path)
            c.event(body("while-full"))
            ack, _ = c.flush()
            c.close()
            assert ack[0] == "FAIL", ack
            attempts = len([l for l in writer_lines(sbx, "(Debug|Error)")
                            if " unavailable: " in l])
            if attempts >= 4:
                break
            time.sleep(0.2)
        assert attempts >= 4, sbx.read_log()[-3000:]
        errors = writer_lines(sbx, "Error")[errors_before:]
        # one error, with its cause; nothing else at error level
        assert len(errors) == 1, "\n".join(errors)
        assert "No space left on device" in errors[0], errors
        assert "audit log %s" % sbx.audit_log_path in errors[0]
        # no litter: no torn file without content
        for f in glob.glob(sbx.audit_log_path + ".torn.*"):
            assert os.path.getsize(f) > 0, f
        # room again: records flow, one info line says so
        subprocess.run(["mount", "-o", "remount,size=4m", audit_dir],
                       check=True)
        for _ in range(100):
            c = AuditConn(sbx.audit_socket_path)
            c.event(body("after-full"))
            ack, _ = c.flush()
            c.close()
            if ack == ["OK"]:
                break
            time.sleep(0.2)
        assert ack == ["OK"]
        # the writer's log lines reach the log file through Dovecot's log
        # process, maybe after the client's OK
        sbx.wait_log(r"mailward-audit: Info: .*recovered after")
        info = [l for l in writer_lines(sbx, "Info") if "recovered" in l]
        assert len(info) == 1, info
        m = re.search(r"recovered after (\d+) s \((\d+) more failure\(s\) "
                      r"not logged\)", info[0])
        assert m and int(m.group(2)) >= 3, info
        assert len(writer_lines(sbx, "Error")[errors_before:]) == 1
        recs = sbx.audit_records()
        users = [r.get("user") for r in recs]
        assert "after-full" in users and "while-full" not in users
        # the torn tail of the failed write: saved (with content) and
        # recorded, or none at all
        torn = glob.glob(sbx.audit_log_path + ".torn.*")
        recovered = [r for r in recs if r["event"] == "recovered"]
        assert len(torn) == len(recovered), (torn, recovered)
        for f in torn:
            assert os.path.getsize(f) > 0, f
        verify_pass(sbx)
        sbx.stop()
    finally:
        subprocess.run(["umount", "-l", audit_dir])
