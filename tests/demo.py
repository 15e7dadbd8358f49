"""The scripted session of the Quick start demo (tests/demo.sh)."""
import inspect
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwharness  # noqa: E402
from mwharness import make_message, pop3, imap  # noqa: E402


def say(text):
    print("\n== " + text)


def show(rows, cols):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows))
              for c in cols] if rows else [len(c) for c in cols]
    print("  " + "  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  " + "  ".join(str(r.get(c, "")).ljust(w)
                               for c, w in zip(cols, widths)))


def log_excerpt_line(line):
    """A Dovecot log line as the demo shows it: without the date, pid and
    session id, but with the process and user it belongs to
    ("pop3(alice): Info: mailward: ...")."""
    m = re.match(r"^\w{3} +\d+ [\d:]+ ([^<:\s]+(?:\([^)]*\))?)(?:<[^>]*>)*: "
                 r"(.*)$", line)
    return "%s: %s" % (m.group(1), m.group(2)) if m else line


def mailward_log(sbx, since):
    for line in sbx.read_log().splitlines()[since:]:
        if "mailward:" in line and "Debug:" not in line:
            print("  " + log_excerpt_line(line))


def main():
    kw = dict(
        users={"alice": {"mailward_pop3_policy": "leave-on-server"},
               "bob": {"mailward_pop3_policy": "expunge-after-retrieval"},
               "carol": {"mailward_hold": "yes"}},
        plugin={"mailward_pop3_policy": "client"},
        app_passwords={"alice": {"phone-secret": "alice-phone",
                                 "laptop-secret": "alice-laptop"}})
    audit = "audit" in inspect.signature(mwharness.Sandbox).parameters
    if audit:
        kw["audit"] = True
    sbx = mwharness.Sandbox(**kw)
    sbx.start()
    try:
        say("sandbox Dovecot %s %s: IMAP 127.0.0.1:%d, POP3 127.0.0.1:%d, "
            "log %s" % (".".join(map(str, mwharness.DOVECOT_VERSION)),
                        sbx.dir, sbx.imap_port, sbx.pop3_port, sbx.log))
        for u in ("alice", "bob", "carol"):
            sbx.deliver(u, [make_message(i, subject="%s's mail #%d" % (u, i))
                            for i in range(1, 4)])
        say("policy per user (plugin {} default + userdb overrides)")
        show([r for r in sbx.doveadm_json("mailward", "settings", "-A")
              if r["setting"] in ("mailward_pop3_policy", "mailward_hold",
                                  "audit")],
             ["user", "setting", "value", "source"])
        say("doveadm mailward check -A: the configuration has no mistake")
        r = sbx.doveadm("mailward", "check", "-A", check=False)
        print("  exit %d%s" % (r.returncode, "".join(
            "\n  " + l for l in r.stdout.splitlines())))

        n = len(sbx.read_log().splitlines())
        say("alice's phone (app password) fetches and deletes over POP3: "
            "policy leave-on-server")
        p = pop3(sbx, "alice", password="phone-secret")
        print("  STAT:", p.stat(), " CAPA EXPIRE:", p.capa().get("EXPIRE"))
        for k in range(1, 4):
            p.retr(k)
            p.dele(k)
        p.quit()
        time.sleep(0.3)
        p = pop3(sbx, "alice", password="phone-secret")
        print("  phone's next session lists", p.stat()[0], "messages")
        p.quit()
        p = pop3(sbx, "alice", password="laptop-secret")
        print("  laptop's session lists", p.stat()[0], "messages")
        p.retr(1)
        p.quit()
        print("  on the server:", sbx.maildir_count("alice"), "messages")

        say("alice reads one on her IMAP phone (ID: K-9 Mail)")
        import imaplib
        imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
        i = imap(sbx, "alice")
        i._simple_command("ID", '("name" "K-9 Mail" "version" "6.8")')
        i.select("INBOX")
        i.fetch("2", "(BODY[])")
        i.logout()

        say("bob fetches over POP3 without DELE: policy "
            "expunge-after-retrieval")
        p = pop3(sbx, "bob")
        p.retr(1)
        p.retr(2)
        p.quit()
        time.sleep(0.3)
        print("  on the server:", sbx.maildir_count("bob"), "of 3 messages")

        say("carol is under legal hold: POP3 DELE and IMAP EXPUNGE")
        p = pop3(sbx, "carol")
        p.dele(1)
        p.quit()
        i = imap(sbx, "carol")
        i.select("INBOX")
        i.store("1", "+FLAGS", "\\Deleted")
        tag = i._command("EXPUNGE")
        typ, data = i._command_complete("EXPUNGE", tag)
        print("  IMAP EXPUNGE answered:", typ, data)
        i.logout()
        time.sleep(0.3)
        print("  on the server:", sbx.maildir_count("carol"), "of 3 messages")

        say("what mailward logged")
        mailward_log(sbx, n)

        say("doveadm mailward devices -u alice")
        show(sbx.doveadm_json("mailward", "devices", "-u", "alice"),
             ["id", "label", "protocol", "sessions", "retrieved", "deleted"])
        say("doveadm mailward state -u alice")
        show(sbx.doveadm_json("mailward", "state", "-u", "alice"),
             ["label", "mailbox", "retrieved", "deleted", "pending_expunge",
              "highest_uid"])
        if audit:
            sbx.stop(check=False)
            say("audit log %s (%d records), verified with mailward-audit"
                % (sbx.audit_log_path, len(sbx.audit_records())))
            for rec in sbx.audit_records()[-12:]:
                print("  " + json.dumps({k: rec[k] for k in
                                         ("seq", "event", "user", "outcome",
                                          "cause") if k in rec}))
            rc, out = sbx.audit_verify()
            print("  " + out.strip().replace("\n", "\n  "))
        else:
            say("audit log: the writer service is not built in this "
                "version")
    finally:
        if os.environ.get("MAILWARD_DEMO_KEEP"):
            print("\nsandbox left running; stop it with: doveadm -c %s stop"
                  % sbx.conf)
        else:
            sbx.stop(check=False)
            sbx.cleanup()
            # the sandbox's system users, if this run created them
            mwharness.remove_created_users()


if __name__ == "__main__":
    main()
