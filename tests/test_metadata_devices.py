"""Users see their own devices: with imap_metadata = yes, GETMETADATA ""
/private/vendor/vendor.mailward/devices returns the user's own devices
(from the state store) as one JSON value; it is read-only and never
shows another user's devices, also not through a shared namespace."""
import imaplib
import json
import re
import tempfile
import os

import pytest

from mwharness import make_message, pop3, imap, imap_id, ensure_test_user, \
    wait_session_end
from test_owner import shared_conf, grant, ACL_PLUGINS, \
    acl_plugin_settings

ENTRY = "/private/vendor/vendor.mailward/devices"
# METADATA needs imap_metadata and an attribute dict
METADATA_SETTINGS = {"imap_metadata": "yes",
                     "mail_attribute_dict": {
                         "2.3": "file:%h/dovecot-attributes", "2.4": None}}
METADATA_CONF = {"2.3": "",
                 "2.4": "mail_attribute {\n  dict file {\n"
                        "    path = %{home}/dovecot-attributes\n  }\n}\n"}

imaplib.Commands.setdefault("GETMETADATA", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("SETMETADATA", ("AUTH", "SELECTED"))


def getmetadata(i, mailbox, entry=ENTRY):
    """The entry's value (str) or None for NIL; asserts OK."""
    typ, data = i._simple_command("GETMETADATA", '"%s"' % mailbox, entry)
    assert typ == "OK", data
    typ, data = i._untagged_response(typ, data, "METADATA")
    for item in data:
        if isinstance(item, tuple):
            # ('"" (/private/... {N}', b'<value>')
            assert entry.encode() in item[0], item
            return item[1].decode()
        if item is not None and entry.encode() in item:
            m = re.search(rb'%s (NIL|"(.*)")\)' % re.escape(entry.encode()),
                          item)
            assert m, item
            return None if m.group(1) == b"NIL" else m.group(2).decode()
    raise AssertionError("no METADATA response: %r" % data)


def setmetadata(i, mailbox, value):
    typ, data = i._simple_command("SETMETADATA", '"%s"' % mailbox,
                                  "(%s %s)" % (ENTRY, value))
    return typ, data


def metadata_sandbox(sandbox_factory, users, app_passwords, shared=False):
    if not shared:
        return sandbox_factory(users=users, app_passwords=app_passwords,
                               settings=METADATA_SETTINGS,
                               extra_conf=METADATA_CONF)
    root = tempfile.mkdtemp(prefix="mailward-sbx-")
    uid, gid = ensure_test_user()
    os.makedirs(os.path.join(root, "acl"))
    os.chown(os.path.join(root, "acl"), uid, gid)
    return sandbox_factory(
        users=users, app_passwords=app_passwords, root=root,
        plugins=ACL_PLUGINS,
        plugin=acl_plugin_settings(root),
        settings=METADATA_SETTINGS,
        extra_conf={line: conf + METADATA_CONF[line]
                    for line, conf in shared_conf(root).items()})


def test_getmetadata_own_devices_two_users(sandbox_factory):
    sbx = metadata_sandbox(
        sandbox_factory,
        users={"alice": {"mailward_pop3_policy": "expunge-after-all-devices"},
               "bob": {"mailward_pop3_policy": "leave-on-server"}},
        app_passwords={"alice": {"phonepw": "alice-phone"},
                       "bob": {"laptoppw": "bob-laptop"}})
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    sbx.deliver("bob", [make_message(i) for i in range(2)])
    p = pop3(sbx, "alice", password="phonepw")
    p.retr(1)
    p.retr(2)
    p.quit()
    p = pop3(sbx, "bob", password="laptoppw")
    p.dele(1)
    p.quit()
    wait_session_end(sbx, "alice")
    wait_session_end(sbx, "bob")

    i = imap(sbx, "alice")
    imap_id(i, ["name", "Thunderbird", "version", "115.0"])
    value = json.loads(getmetadata(i, ""))
    assert value["user"] == "alice"
    assert value["policy"] == "expunge-after-all-devices"
    devs = {d["label"]: d for d in value["devices"]}
    assert "alice-phone" in devs, value
    assert not [label for label in devs if "bob" in label], value
    phone = devs["alice-phone"]
    assert phone["protocol"] == "pop3"
    assert phone["retrieved"] == 2 and phone["deleted"] == 0, phone
    assert phone["counts_for_all_devices"] is True
    assert phone["this_session"] is False
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", phone["first_seen"])
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", phone["last_seen"])
    assert len(phone["id"]) == 32
    # the same devices as doveadm mailward devices shows the admin
    admin = {d["label"]: d for d in
             sbx.doveadm_json("mailward", "devices", "-u", "alice")}
    assert set(devs) == set(admin), (devs, admin)
    assert phone["id"] == admin["alice-phone"]["id"]
    # and doveadm reads the same entry (help desks)
    r = sbx.doveadm("mailbox", "metadata", "get", "-u", "alice", "-s", "",
                    ENTRY)
    assert "alice-phone" in r.stdout and "bob" not in r.stdout, r.stdout

    # read-only: SETMETADATA is refused and changes nothing
    typ, data = setmetadata(i, "", '"{}"')
    assert typ == "NO", data
    typ, data = setmetadata(i, "", "NIL")
    assert typ == "NO", data
    assert json.loads(getmetadata(i, ""))["devices"] == value["devices"]
    i.logout()
    # never stored (only mailward's state-created marker is)
    assert not os.path.exists(os.path.join(sbx.home("alice"),
                                           "dovecot-attributes")) or \
        b"vendor.mailward/devices" not in open(os.path.join(
            sbx.home("alice"), "dovecot-attributes"), "rb").read()

    # bob sees his own, not alice's
    i = imap(sbx, "bob")
    value = json.loads(getmetadata(i, ""))
    assert value["user"] == "bob"
    labels = [d["label"] for d in value["devices"]]
    assert "bob-laptop" in labels and "alice-phone" not in labels, value
    laptop = [d for d in value["devices"] if d["label"] == "bob-laptop"][0]
    assert laptop["deleted"] == 1 and laptop["retrieved"] == 0, laptop
    i.logout()


def test_getmetadata_not_through_shared_namespace(sandbox_factory):
    sbx = metadata_sandbox(
        sandbox_factory, users={"alice": {}, "bob": {}},
        app_passwords={"alice": {"phonepw": "alice-phone"}}, shared=True)
    sbx.deliver("alice", [make_message(1)])
    pop3(sbx, "alice", password="phonepw").quit()
    wait_session_end(sbx, "alice")
    grant(sbx, "alice", "bob", "INBOX")
    i = imap(sbx, "bob")
    typ, data = i.select("shared/alice/INBOX", readonly=True)
    assert typ == "OK", data
    # the server entry is bob's own; alice's mailbox has no such entry
    value = json.loads(getmetadata(i, ""))
    assert value["user"] == "bob"
    assert "alice-phone" not in json.dumps(value), value
    assert getmetadata(i, "shared/alice/INBOX") is None
    i.logout()


def test_getmetadata_without_state(sandbox_factory):
    # nothing is recorded (mailward_state = no): no value, not an error
    sbx = sandbox_factory(users={"alice": {"mailward_state": "no"}},
                          settings=METADATA_SETTINGS,
                          extra_conf=METADATA_CONF)
    i = imap(sbx, "alice")
    assert getmetadata(i, "") is None
    i.logout()
