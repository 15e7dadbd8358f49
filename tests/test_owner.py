"""Decisions follow the owner of the mail, not the session user acting on
it: a shared namespace (Dovecot's acl plugin) uses the owner's hold,
policy and imap_expunge; a public namespace, which no user owns, uses the
global settings; doveadm acting on a user is named as the actor. Audit
records of such acts carry user = owner and actor = who acted."""
import json
import os
import subprocess
import tempfile
import time

from mwharness import make_message, imap, ensure_test_user, AUDIT_CLI


ACL_PLUGINS = ["acl", "imap_acl"]


def shared_conf(sbx_dir):
    """The inbox, shared and public namespaces per Dovecot line (2.3:
    location =, %%u; 2.4: mail_driver/mail_path, %{owner_home}, prefix
    $user) and the acl sharing map (2.4: acl_sharing_map; 2.3: plugin
    acl_shared_dict)."""
    auth = """service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
"""
    conf23 = f"""namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace shared {{
  type = shared
  separator = /
  prefix = shared/%%u/
  location = maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%u
  subscriptions = no
  list = children
}}
namespace public {{
  type = public
  separator = /
  prefix = public/
  location = maildir:{sbx_dir}/public
  subscriptions = no
  list = children
}}
"""
    conf24 = f"""namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
namespace shared {{
  type = shared
  separator = /
  prefix = shared/$user/
  mail_driver = maildir
  mail_path = %{{owner_home}}/Maildir
  mail_index_private_path = ~/Maildir/shared/%{{owner_user}}
  subscriptions = no
  list = children
}}
namespace public {{
  type = public
  separator = /
  prefix = public/
  mail_driver = maildir
  mail_path = {sbx_dir}/public
  subscriptions = no
  list = children
}}
acl_sharing_map {{
  dict file {{
    path = {sbx_dir}/acl/shared-mailboxes.db
  }}
}}
"""
    return {"2.3": conf23 + auth, "2.4": conf24 + auth}


def acl_plugin_settings(root):
    """The acl plugin's settings per line (2.4: acl_driver; its sharing
    map is in shared_conf())."""
    return {"acl": {"2.3": "vfile"},
            "acl_driver": {"2.4": "vfile"},
            "acl_shared_dict": {
                "2.3": "file:%s/acl/shared-mailboxes.db" % root}}


def acl_sandbox(sandbox_factory, users, plugin=None):
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    # the shared-mailboxes dict is written by the mail processes
    uid, gid = ensure_test_user()
    os.makedirs(os.path.join(root, "acl"))
    os.chown(os.path.join(root, "acl"), uid, gid)
    plugin = dict(plugin or {})
    plugin.update(acl_plugin_settings(root))
    sbx = sandbox_factory(users=users, audit=True, plugin=plugin,
                          plugins=ACL_PLUGINS, root=root,
                          extra_conf=shared_conf(root))
    return sbx


def public_mailbox(sbx, name, count):
    """A public namespace mailbox everyone may do anything in."""
    base = os.path.join(sbx.dir, "public", "." + name)
    for sub in ("new", "cur", "tmp"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "dovecot-acl"), "w") as f:
        f.write("anyone lrwstipekxa\n")
    for i in range(count):
        with open(os.path.join(base, "new", "%d.M%dP1.pub" % (time.time(), i)),
                  "wb") as f:
            f.write(make_message(i))
    for dirpath, dirnames, filenames in os.walk(os.path.join(sbx.dir,
                                                             "public")):
        os.chown(dirpath, sbx.uid, sbx.gid)
        for fn in filenames:
            os.chown(os.path.join(dirpath, fn), sbx.uid, sbx.gid)


def public_count(sbx, name):
    base = os.path.join(sbx.dir, "public", "." + name)
    return sum(len(os.listdir(os.path.join(base, s))) for s in ("new", "cur"))


def grant(sbx, owner, actor, *mailboxes):
    i = imap(sbx, owner)
    for box in mailboxes:
        typ, data = i._simple_command("SETACL", box, actor, "lrswipkxtecda")
        assert typ == "OK", data
    i.logout()


def wait_logouts(sbx, count):
    """Waits (bounded) until count IMAP sessions have written their logout
    record: a session's last records reach the log after its client
    saw the reply."""
    deadline = time.time() + 15
    while sum(1 for r in sbx.audit_records()
              if r["event"] == "logout") < count:
        assert time.time() < deadline, sbx.audit_records()
        time.sleep(0.05)


def recs(sbx, **match):
    return [r for r in sbx.audit_records()
            if all(r.get(k) == v for k, v in match.items())]


def stop_and_verify(sbx):
    sbx.stop(check=True)
    rc, out = sbx.audit_verify()
    assert rc == 0 and "PASS" in out, out


def mailbox_guid(sbx, user, box):
    rows = sbx.doveadm_json("mailbox", "status", "-u", user, "guid", box)
    return rows[0]["guid"]


def test_shared_mailbox_follows_owner_hold(sandbox_factory):
    """alice is held, bob is not: bob's EXPUNGE and DELETE in alice's
    shared mailboxes are refused; the records name alice and bob."""
    sbx = acl_sandbox(sandbox_factory, {"alice": {"mailward_hold": "yes"},
                                        "bob": {"mailward_hold": "no"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    sbx.deliver("alice", [make_message(i) for i in range(10, 12)],
                folder="Archive")
    grant(sbx, "alice", "bob", "INBOX", "Archive")

    i = imap(sbx, "bob")
    typ, data = i.select("shared/alice/INBOX")
    assert typ == "OK" and int(data[0]) == 3, data
    typ, data = i.fetch("1", "(BODY[])")
    assert typ == "OK"
    typ, data = i.store("1:*", "+FLAGS", "(\\Deleted)")
    assert typ == "OK", data
    typ, data = i.expunge()
    # nothing expunged, and the client is told why
    assert typ == "OK" and data == [None], data
    typ, data = i._simple_command("UID", "EXPUNGE", "1:*")
    assert typ == "OK"
    assert b"legal hold" in data[-1], data
    # MOVE's expunge half (what the copy does is issue 11 item 8)
    typ, data = i._simple_command("UID", "MOVE", "1", "INBOX")
    assert typ == "NO" and b"legal hold" in data[-1], data
    typ, data = i.delete("shared/alice/Archive")
    assert typ == "NO" and b"legal hold" in data[0], data
    i.logout()
    wait_logouts(sbx, 2)

    assert sbx.maildir_count("alice") == 3
    assert sbx.maildir_count("alice", "Archive") == 2
    sbx.wait_log(r"owner alice: Refused to expunge", count=3)

    sup = recs(sbx, event="expunge_suppressed")
    # EXPUNGE, UID EXPUNGE, MOVE, DELETE
    assert len(sup) == 3 * 2 + 1 + 2, sup
    assert [r["mailbox"] for r in sup[-2:]] == ["shared/alice/Archive"] * 2
    for r in sup:
        assert r["user"] == "alice" and r["actor"] == "bob", r
        assert r["policy"] == "hold" and r["cause"] == "hold", r
        assert r["service"] == "imap"
    fetch = recs(sbx, event="fetch", user="alice")
    assert len(fetch) == 1 and fetch[0]["actor"] == "bob"
    # bob's own records carry no actor
    assert all("actor" not in r for r in recs(sbx, user="bob"))

    # bob's device state holds nothing of alice's mailboxes
    guid = mailbox_guid(sbx, "alice", "INBOX")
    state = sbx.doveadm("mailward", "state", "-u", "bob", fmt="json").stdout
    assert guid not in state, state

    # alice's own DELETE of a mailbox with mail is refused as well
    i = imap(sbx, "alice")
    typ, data = i.delete("Archive")
    assert typ == "NO" and b"legal hold" in data[0], data
    i.logout()
    wait_logouts(sbx, 3)
    assert sbx.maildir_count("alice", "Archive") == 2
    own = recs(sbx, event="expunge_suppressed", user="alice",
               mailbox="Archive")
    assert len(own) == 2 and all("actor" not in r for r in own), own
    stop_and_verify(sbx)


def test_shared_mailbox_fetch_counts_only_whole(sandbox_factory):
    """bob reads alice's shared INBOX: only the message he fetched whole
    is audited as alice's `fetch` (actor bob); parts and ranges are not
    (docs/admin-guide.md "Which IMAP fetches count")."""
    sbx = acl_sandbox(sandbox_factory, {"alice": {}, "bob": {}})
    sbx.deliver("alice", [make_message(i, size=3000) for i in range(3)])
    grant(sbx, "alice", "bob", "INBOX")

    i = imap(sbx, "bob")
    typ, data = i.select("shared/alice/INBOX")
    assert typ == "OK" and int(data[0]) == 3, data
    for seq, item in (("1", "BODY.PEEK[]<0.100>"), ("1", "BODY.PEEK[TEXT]"),
                      ("2", "BODY.PEEK[]<0.2000>"),
                      ("2", "BODY.PEEK[]<2000.5000>"),
                      ("3", "BODY.PEEK[1]")):
        typ, data = i.fetch(seq, "(%s)" % item)
        assert typ == "OK", data
    i.logout()
    wait_logouts(sbx, 2)
    fetch = recs(sbx, event="fetch", user="alice")
    assert [(r["uid"], r["actor"]) for r in fetch] == [(2, "bob")], fetch
    stop_and_verify(sbx)


def test_shared_mailbox_owner_not_held(sandbox_factory):
    """The reverse: bob is held, alice is not. bob's expunge of alice's
    mail goes ahead (alice's settings decide), filed under alice."""
    sbx = acl_sandbox(sandbox_factory, {
        "alice": {}, "bob": {"mailward_hold": "yes"},
        "carol": {"mailward_imap_expunge": "deny"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    sbx.deliver("bob", [make_message(i) for i in range(2)])
    sbx.deliver("carol", [make_message(i) for i in range(2)])
    grant(sbx, "alice", "bob", "INBOX")
    grant(sbx, "carol", "bob", "INBOX")

    i = imap(sbx, "bob")
    typ, data = i.select("shared/alice/INBOX")
    assert typ == "OK" and int(data[0]) == 3, data
    i.store("1:2", "+FLAGS", "(\\Deleted)")
    typ, data = i.expunge()
    assert typ == "OK" and data == [b"2", b"1"], data
    # carol's mailward_imap_expunge=deny holds for bob too
    i.select("shared/carol/INBOX")
    i.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = i._simple_command("EXPUNGE")
    assert typ == "OK" and b"mailward_imap_expunge=deny" in data[-1], data
    # bob's own mail stays under bob's hold
    i.select("INBOX")
    i.store("1:*", "+FLAGS", "(\\Deleted)")
    typ, data = i._simple_command("EXPUNGE")
    assert typ == "OK" and b"legal hold" in data[-1], data
    i.logout()
    wait_logouts(sbx, 3)
    assert sbx.maildir_count("alice") == 1
    assert sbx.maildir_count("bob") == 2
    assert sbx.maildir_count("carol") == 2
    denied = recs(sbx, event="expunge_suppressed", user="carol")
    assert len(denied) == 1 and denied[0]["actor"] == "bob" and \
        denied[0]["cause"] == "policy", denied

    done = recs(sbx, event="expunge_intent", user="alice")
    assert len(done) == 2
    for r in done:
        assert r["actor"] == "bob" and r["cause"] == "client", r
        assert r["policy"] == "client" and r["mailbox"] == \
            "shared/alice/INBOX", r
    assert len(recs(sbx, event="expunge_done", user="alice",
                    actor="bob")) == 2
    assert recs(sbx, event="expunge_intent", user="bob") == []
    stop_and_verify(sbx)
    # the CLI finds them among alice's records, and by actor
    for flt in (["--user", "alice"], ["--actor", "bob"]):
        r = subprocess.run([AUDIT_CLI, "query", "--event", "expunge_done"]
                           + flt + [sbx.audit_log_path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        found = [json.loads(l) for l in r.stdout.splitlines()]
        assert [(x["user"], x["actor"]) for x in found] == \
            [("alice", "bob")] * 2, r.stdout


def test_public_namespace_uses_global_settings(sandbox_factory):
    """A public mailbox has no owner: the global (plugin {}) settings
    decide, whatever the acting user's own settings. Global hold: alice,
    not held herself, cannot expunge there; records name her as actor
    and no user."""
    sbx = acl_sandbox(sandbox_factory,
                      {"alice": {"mailward_hold": "no"}},
                      plugin={"mailward_hold": "yes"})
    public_mailbox(sbx, "News", 2)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    i = imap(sbx, "alice")
    typ, data = i.select("public/News")
    assert typ == "OK" and int(data[0]) == 2, data
    i.store("1:*", "+FLAGS", "(\\Deleted)")
    typ, data = i._simple_command("EXPUNGE")
    assert typ == "OK" and b"legal hold" in data[-1], data
    # alice's own mail: her settings (not held)
    i.select("INBOX")
    typ, data = i.delete("public/News")
    assert typ == "NO" and b"legal hold" in data[0], data
    i.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = i.expunge()
    assert typ == "OK" and data == [b"1"], data
    i.logout()
    wait_logouts(sbx, 1)
    assert public_count(sbx, "News") == 2
    assert sbx.maildir_count("alice") == 1
    sup = recs(sbx, event="expunge_suppressed")
    assert len(sup) == 4
    for r in sup:
        assert "user" not in r and r["actor"] == "alice", r
        assert r["policy"] == "hold" and r["policy_source"] == "config"
    stop_and_verify(sbx)


def test_public_namespace_actor_hold_does_not_apply(sandbox_factory):
    """No global hold, bob held: public mail is not bob's, so bob's hold
    does not keep it; bob's own mail stays held (a MOVE to the public
    mailbox is refused and leaves his INBOX as it was)."""
    sbx = acl_sandbox(sandbox_factory, {"bob": {"mailward_hold": "yes"}})
    public_mailbox(sbx, "News", 2)
    sbx.deliver("bob", [make_message(i) for i in range(2)])
    i = imap(sbx, "bob")
    i.select("public/News")
    i.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = i.expunge()
    assert typ == "OK" and data == [b"1"], data
    assert public_count(sbx, "News") == 1
    i.select("INBOX")
    typ, data = i._simple_command("MOVE", "1", "public/News")
    assert typ == "NO" and b"legal hold" in data[-1], data
    i.logout()
    wait_logouts(sbx, 1)
    assert sbx.maildir_count("bob") == 2
    r = recs(sbx, event="expunge_done", actor="bob")
    assert len(r) == 1 and "user" not in r[0]
    stop_and_verify(sbx)


def test_doveadm_acting_on_user_is_named(sandbox_factory):
    """doveadm -u alice acts with alice's settings; the records name the
    administrator running doveadm as the actor."""
    sbx = acl_sandbox(sandbox_factory, {"alice": {"mailward_hold": "yes"},
                                        "bob": {}})
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    sbx.deliver("bob", [make_message(i) for i in range(2)])
    r = sbx.doveadm("expunge", "-u", "alice", "mailbox", "INBOX", "all",
                    check=False)
    assert r.returncode == 77, r.stderr
    # doveadm as bob, through the shared namespace: alice's hold holds
    grant(sbx, "alice", "bob", "INBOX")
    r = sbx.doveadm("expunge", "-u", "bob", "mailbox", "shared/alice/INBOX",
                    "all", check=False)
    assert r.returncode == 77, r.stderr
    via = recs(sbx, event="expunge_suppressed",
               actor="doveadm:root(uid=0)/bob")
    assert len(via) == 2 and all(x["user"] == "alice" for x in via), via
    sbx.doveadm("expunge", "-u", "bob", "mailbox", "INBOX", "1")
    assert sbx.maildir_count("alice") == 2
    assert sbx.maildir_count("bob") == 1
    sup = recs(sbx, event="expunge_suppressed", user="alice",
               actor="doveadm:root(uid=0)")
    assert len(sup) == 2
    for x in sup:
        assert x["actor"] == "doveadm:root(uid=0)"
        assert x["service"] == "doveadm"
    done = recs(sbx, event="expunge_intent", user="bob")
    assert len(done) == 1 and done[0]["actor"] == "doveadm:root(uid=0)"
    assert done[0]["cause"] == "admin"
    stop_and_verify(sbx)
