"""A legal hold set in the user's userdb field is absolute: an override
given on the doveadm command line (doveadm -o, which beats userdb
fields) does not lift it; the admin is told how to lift it."""
import time

from mwharness import DOVECOT_24, make_message

# doveadm -o's key for a mailward setting on each Dovecot line
OVERRIDE = "mailward_hold=no" if DOVECOT_24 else "plugin/mailward_hold=no"


def _records(sbx, event, count):
    deadline = time.time() + 10
    while True:
        recs = [r for r in sbx.audit_records() if r["event"] == event]
        if len(recs) >= count or time.time() > deadline:
            return recs
        time.sleep(0.05)


def test_doveadm_override_does_not_lift_userdb_hold(sandbox_factory):
    sbx = sandbox_factory(users={"alice": {"mailward_hold": "yes"}},
                          audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    for args in (("expunge", "-u", "alice", "mailbox", "INBOX", "all"),
                 ("move", "-u", "alice", "Moved", "mailbox", "INBOX",
                  "all")):
        if args[0] == "move":
            sbx.doveadm("mailbox", "create", "-u", "alice", "Moved")
        r = sbx.doveadm("-o", OVERRIDE, *args, check=False)
        assert r.returncode == 77, (args, r.stderr)  # EX_NOPERM
        assert "legal hold" in r.stderr, r.stderr
        assert ("Warning: mailward: mailward_hold is overridden to no for "
                "user alice, but the userdb field says yes: the legal hold "
                "stays (change the userdb field to lift it)") in r.stderr, \
            r.stderr
        assert sbx.maildir_count("alice") == 3
    assert sbx.maildir_count("alice", "Moved") == 0
    recs = _records(sbx, "expunge_suppressed", 6)
    assert len(recs) == 6, recs
    assert all(r["cause"] == "hold" and r["policy"] == "hold"
               for r in recs), recs
    assert not [r for r in sbx.audit_records()
                if r["event"] in ("expunge_intent", "expunge_done")]
    sbx.stop()
    rc, out = sbx.audit_verify()
    assert rc == 0, out


def test_doveadm_override_lifts_nothing_else(sandbox_factory):
    """Without a hold in userdb the override is the admin's to make."""
    sbx = sandbox_factory(users={"alice": {}},
                          plugin={"mailward_hold": "no"}, audit=True)
    sbx.deliver("alice", [make_message(i) for i in range(2)])
    r = sbx.doveadm("-o", OVERRIDE, "expunge", "-u", "alice", "mailbox",
                    "INBOX", "all", check=False)
    assert r.returncode == 0, r.stderr
    assert "overridden" not in r.stderr, r.stderr
    assert sbx.maildir_count("alice") == 0
