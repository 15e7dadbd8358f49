"""mailward's decisions are named Dovecot events: a metric {} block counts
them, read back with doveadm stats dump (issue 13, Metrics)."""

import json
import time
import urllib.request

import mwharness
from mwharness import make_message, pop3, imap

METRICS = """
metric mailward_session_finished {
  filter = event=mailward_session_finished
  fields = retr dele expunged kept
}
metric mailward_expunge_suppressed {
  filter = event=mailward_expunge_suppressed
%(group_by)s}
metric mailward_device_registered {
  filter = event=mailward_device_registered
}
metric mailward_fail_safe {
  filter = event=mailward_fail_safe
}
service stats {
  inet_listener http {
    %(address)s = 127.0.0.1
    port = %(port)d
  }
}
"""


def metrics_conf(port):
    """METRICS in 2.3 syntax (group_by = cause, inet_listener address)
    and 2.4 syntax (group_by is a named list filter: group_by cause { },
    inet_listener listen)."""
    return {"2.3": METRICS % {"group_by": "  group_by = cause\n",
                              "address": "address", "port": port},
            "2.4": METRICS % {"group_by": "  group_by cause {\n  }\n",
                              "address": "listen", "port": port}}


def stats(sbx):
    """{metric name[/field]: row} from doveadm stats dump."""
    r = sbx.doveadm("stats", "dump", fmt="json")
    return {row["metric_name"] + (("/" + row["field"]) if row.get("field")
                                  else ""): row
            for row in json.loads(r.stdout)}


def wait_stats(sbx, key, count, timeout=15):
    deadline = time.time() + timeout
    while True:
        s = stats(sbx)
        if key in s and s[key]["count"] >= count:
            return s
        if time.time() > deadline:
            raise AssertionError("stats never counted %d %s: %r" %
                                 (count, key, s))
        time.sleep(0.1)


def test_metric_counts_mailward_events(sandbox_factory):
    port = mwharness.free_port()
    sbx = sandbox_factory(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"},
               "carol": {"mailward_hold": "yes"},
               "dave": {"mailward_expunge_delay": "soon"}},
        extra_conf=metrics_conf(port))
    sbx.deliver("alice", [make_message(i) for i in range(3)])
    sbx.deliver("carol", [make_message(1)])
    p = pop3(sbx, "alice")
    for k in (1, 2, 3):
        p.retr(k)
        p.dele(k)
    p.quit()
    mwharness.wait_session_end(sbx, "alice")
    i = imap(sbx, "carol")
    i.select("INBOX")
    i.store("1", "+FLAGS", "\\Deleted")
    i.expunge()
    i.logout()
    p = pop3(sbx, "dave")
    p.quit()
    mwharness.wait_session_end(sbx, "dave")
    # the stats process receives events asynchronously: wait for the
    # last one (bounded), then every count is final
    s = wait_stats(sbx, "mailward_session_finished/duration", 2)
    got = {k: (v["count"], v["sum"]) for k, v in s.items()
           if not k.endswith("/duration")}
    assert got == {
        "mailward_session_finished/retr": (2, 3),
        "mailward_session_finished/dele": (2, 3),
        "mailward_session_finished/expunged": (2, 0),
        "mailward_session_finished/kept": (2, 3),
    }, got
    assert s["mailward_expunge_suppressed_refused/duration"]["count"] == 1
    assert s["mailward_device_registered/duration"]["count"] == 3
    assert s["mailward_fail_safe/duration"]["count"] == 1

    # the same through Dovecot's OpenMetrics exporter (docs/metrics.md)
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                  timeout=30).read().decode()
    for line in ("dovecot_mailward_session_finished_total 2",
                 'dovecot_mailward_expunge_suppressed_total{cause="refused"} 1',
                 "dovecot_mailward_device_registered_total 3",
                 "dovecot_mailward_fail_safe_total 1"):
        assert line in text.splitlines(), text
