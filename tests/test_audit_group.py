"""The audit log readable by an auditors' group (issue 13 item 6): the
writer's -g makes the log mode 0640, so a member of the log's group reads
it without root; without -g it stays 0600."""

import os
import stat
import subprocess

import pytest

from mwharness import AUDIT_CLI, make_message, pop3
from test_audit_writer import wait_records


def _query_as_group_member(sbx):
    """mailward-audit query, run as uid nobody with only the log's group
    (an auditor who is a member of that group)."""
    gid = os.stat(sbx.audit_log_path).st_gid
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=%d" % gid, "--clear-groups",
         AUDIT_CLI, "query", "--user", "alice", sbx.audit_log_path],
        capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("group_readable", [True, False])
def test_audit_log_group_readable(sandbox_factory, group_readable):
    sbx = sandbox_factory(audit=True,
                          audit_args="-g" if group_readable else "")
    sbx.deliver("alice", [make_message(1)])
    p = pop3(sbx)
    p.retr(1)
    p.quit()
    wait_records(sbx, lambda recs: "logout" in [
        x.get("event") for x in recs if x.get("user") == "alice"])
    mode = stat.S_IMODE(os.stat(sbx.audit_log_path).st_mode)
    r = _query_as_group_member(sbx)
    if group_readable:
        assert mode == 0o640
        assert r.returncode == 0, r.stderr
        assert "login" in r.stdout and "logout" in r.stdout, r.stdout
    else:
        assert mode == 0o600
        assert r.returncode == 3, r.stderr
        assert "Permission denied" in r.stderr, r.stderr
