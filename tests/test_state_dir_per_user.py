"""A state directory shared by several users (mailward_state_dir without
a per-user part, all users on one mail uid) is never used for a user it
does not belong to: their devices and records would mix (one user's
device list shown to another, one user's INBOX records carried over to
another's INBOX). The store records its user; any other user's session
is fail-safe with an error naming both users and the directory."""
import os
import re
import tempfile

from mwharness import make_message, pop3, wait_session_end


def test_shared_state_dir_is_not_mixed(sandbox_factory):
    # inside the sandbox's directory (removed with it)
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    shared = os.path.join(root, "shared-state")
    os.mkdir(shared)
    sbx = sandbox_factory(
        root=root,
        users={"alice": {}, "bob": {}},
        plugin={"mailward_state_dir": shared,
                "mailward_pop3_policy": "leave-on-server"},
        app_passwords={"alice": {"alicephone": "phone"},
                       "bob": {"bobphone": "phone"}})
    os.chown(shared, sbx.uid, sbx.gid)
    for user in ("alice", "bob"):
        sbx.deliver(user, [make_message(i) for i in range(3)])
    p = pop3(sbx, "alice", password="alicephone")
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")

    p = pop3(sbx, "bob", password="bobphone")
    assert p.stat()[0] == 3
    p.dele(2)
    p.quit()
    lines = wait_session_end(sbx, "bob")
    assert "(fail-safe)" in lines[-1] and "kept=1" in lines[-1], lines[-1]
    sbx.wait_log(r"pop3\(bob\).*Error: mailward: State store %s belongs to "
                 r"user alice, not bob: mailward_state_dir must be a "
                 r"directory per user" % re.escape(shared))
    assert "GUID changed" not in sbx.read_log()
    # bob's DELE kept his message (fail-safe), and nothing of bob's went
    # into alice's store: alice's view and device are hers alone
    assert sbx.maildir_count("bob") == 3
    devs = sbx.doveadm_json("mailward", "devices", "-u", "alice")
    assert [(d["label"], d["sessions"], d["deleted"]) for d in devs] == \
        [("phone", "1", "1")], devs
    p = pop3(sbx, "alice", password="alicephone")
    assert p.stat()[0] == 2
    p.quit()
    r = sbx.doveadm("mailward", "devices", "-u", "bob", fmt="json",
                    check=False)
    assert "alice" not in r.stdout, r.stdout
    assert "belongs to user alice, not bob" in r.stderr, r.stderr
