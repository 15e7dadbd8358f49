"""Each record of a POP3 session names its own message's Message-ID when the
session reads several messages (issue 14: the Message-ID is parsed once per
message and session and kept in the session's record of the message, keyed
by UID). Messages are read out of order, some twice, by RETR and TOP, and
one has no Message-ID: every retr/top/expunge_intent/expunge_done/disposed
record must carry the Message-ID of the UID it names (none for the one
without)."""
from mwharness import pop3, wait_session_end
from test_audit_record_fields import wait_records


def message(n, msgid):
    head = "Message-ID: %s\r\n" % msgid if msgid else ""
    return ("From: sender@test.invalid\r\nTo: user@test.invalid\r\n"
            "Subject: message %d\r\n%sDate: Sat, 28 Nov 2026 12:00:00 "
            "+0000\r\n\r\nBody of message %d.\r\n" % (n, head, n)).encode()


def msgids(user):
    # message 3 has none
    return {1: "<%s-one@t.invalid>" % user, 2: "<%s-two@t.invalid>" % user,
            3: None, 4: "<%s-four@t.invalid>" % user}


def check(records, user, events):
    ids = msgids(user)
    seen = set()
    for r in records:
        if r["event"] not in events:
            continue
        seen.add((r["event"], r["uid"]))
        assert r.get("message_id") == ids[r["uid"]], r
    return seen


def test_pop3_records_name_each_message_id(sandbox_factory):
    users = {
        "ea": {"mailward_pop3_policy": "expunge-after-retrieval"},
        "cl": {"mailward_pop3_policy": "client"},
        "ds": {"mailward_pop3_policy": "expunge-after-retrieval",
               "mailward_pop3_disposition": "seen"},
    }
    sbx = sandbox_factory(users=users, audit=True)
    for u in users:
        sbx.deliver(u, [message(n, msgids(u)[n]) for n in (1, 2, 3, 4)])

    p = pop3(sbx, "ea")          # out of order, twice, TOP first
    p.top(4, 0)
    p.retr(3)
    p.retr(1)
    p.retr(4)
    p.retr(1)
    p.retr(2)
    p.quit()
    p = pop3(sbx, "cl")          # the client's DELEs, with and without RETR
    p.top(2, 1)
    p.retr(4)
    p.dele(2)
    p.dele(3)
    p.dele(4)
    p.quit()
    p = pop3(sbx, "ds")          # the disposition's records
    p.retr(4)
    p.retr(2)
    p.retr(3)
    p.quit()
    for u in users:
        wait_session_end(sbx, u)
    wait_records(sbx, lambda r: r["event"] == "logout", 3)
    recs = {u: [r for r in sbx.audit_records() if r.get("user") == u]
            for u in users}

    seen = check(recs["ea"], "ea", ("retr", "top", "expunge_intent",
                                    "expunge_done"))
    assert {("top", 4), ("retr", 1), ("retr", 2), ("retr", 3),
            ("retr", 4)} <= seen, recs["ea"]
    assert {("expunge_intent", n) for n in (1, 2, 3, 4)} <= seen
    assert {("expunge_done", n) for n in (1, 2, 3, 4)} <= seen

    seen = check(recs["cl"], "cl", ("retr", "top", "dele", "expunge_intent",
                                    "expunge_done"))
    assert {("top", 2), ("retr", 4)} <= seen, recs["cl"]
    assert {("expunge_intent", n) for n in (2, 3, 4)} <= seen
    assert {("expunge_done", n) for n in (2, 3, 4)} <= seen
    assert ("expunge_done", 1) not in seen

    seen = check(recs["ds"], "ds", ("retr", "disposed"))
    assert {("disposed", n) for n in (2, 3, 4)} <= seen, recs["ds"]
    assert ("disposed", 1) not in seen
