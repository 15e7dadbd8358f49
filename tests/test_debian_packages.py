"""Debian packages (issue 13, Build): dpkg-buildpackage builds
dovecot-mailward and mailward-audit, lintian reports no error, and both
install with apt-get into a fresh chroot of the Debian release the build's
Dovecot comes from (Debian 12 for 2.3, Debian 13 for 2.4), where a POP3
session runs under a mailward policy. Takes several minutes (debootstrap,
package downloads): runs only with MAILWARD_LONG=1."""

import glob
import os
import poplib
import shutil
import subprocess
import tempfile

import pytest

from mwharness import REPO, DOVECOT_24, free_port, make_message

pytestmark = pytest.mark.skipif(
    os.environ.get("MAILWARD_LONG") != "1",
    reason="slow (debootstrap + apt): set MAILWARD_LONG=1")

MIRROR = "http://deb.debian.org/debian"
# the release whose Dovecot the packages are built against
SUITE = "trixie" if DOVECOT_24 else "bookworm"


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, "%s failed (%d):\n%s\n%s" % (
        cmd, r.returncode, r.stdout[-4000:], r.stderr[-4000:])
    return r


def chroot(root, script, check=True):
    r = subprocess.run(["chroot", root, "/usr/bin/env", "-i",
                        "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
                        "DEBIAN_FRONTEND=noninteractive", "sh", "-ec",
                        script], capture_output=True, text=True, timeout=1200)
    if check:
        assert r.returncode == 0, "%s:\n%s\n%s" % (script, r.stdout[-4000:],
                                                   r.stderr[-4000:])
    return r


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="mailward-deb-")
    root = os.path.join(d, "root")
    yield d
    subprocess.run(["umount", os.path.join(root, "proc")],
                   stderr=subprocess.DEVNULL)
    pidfile = os.path.join(root, "run", "dovecot", "master.pid")
    if os.path.exists(pidfile):
        chroot(root, "doveadm stop </dev/null >/dev/null 2>&1 || true",
               check=False)
    shutil.rmtree(d, ignore_errors=True)


def test_debian_packages_build_install_and_run(workdir):
    src = os.path.join(workdir, "mailward")
    if os.path.isdir(os.path.join(REPO, ".git")):
        run(["git", "clone", "-q", REPO, src])
    else:
        # the copy of the tree in tests/trixie.sh's chroot: no git
        # history, the chroot's own builds left out (dh_autoreconf makes
        # the autotools files again)
        shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
            "build", "autom4te.cache", "__pycache__", ".pytest_cache"))
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=1200)
    debs = sorted(glob.glob(os.path.join(workdir, "*.deb")))
    names = [os.path.basename(d).split("_")[0] for d in debs]
    assert {"dovecot-mailward", "mailward-audit"} <= set(names), names
    changes = glob.glob(os.path.join(workdir, "*.changes"))[0]
    r = subprocess.run(["lintian", changes], capture_output=True, text=True,
                       timeout=600)
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert errors == [], r.stdout

    info = run(["dpkg-deb", "-f", debs[names.index("dovecot-mailward")],
                "Depends"]).stdout
    abi = open("/usr/share/dovecot/dovecot-abi").read().strip()
    assert "dovecot-abi-%s" % abi in info, info
    info = run(["dpkg-deb", "-f", debs[names.index("mailward-audit")],
                "Depends"]).stdout
    assert "dovecot" not in info, info

    # a fresh Debian 12 (13), the packages installed as an administrator
    # would
    root = os.path.join(workdir, "root")
    run(["debootstrap", "--variant=minbase", SUITE, root, MIRROR],
        timeout=1800)
    shutil.copy("/etc/resolv.conf", os.path.join(root, "etc"))
    run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
    for name in ("dovecot-mailward", "mailward-audit"):
        shutil.copy(debs[names.index(name)], os.path.join(root, "tmp"))
    # packages must not start services in the chroot
    with open(os.path.join(root, "usr/sbin/policy-rc.d"), "w") as f:
        f.write("#!/bin/sh\nexit 101\n")
    os.chmod(os.path.join(root, "usr/sbin/policy-rc.d"), 0o755)
    chroot(root, "apt-get update -qq && apt-get install -y -qq "
           "--no-install-recommends dovecot-imapd dovecot-pop3d "
           "./tmp/dovecot-mailward_*.deb ./tmp/mailward-audit_*.deb "
           ">/tmp/apt.log 2>&1 || { tail -30 /tmp/apt.log; exit 1; }")

    # postinst: the writer's user and directories, nothing enabled
    r = chroot(root, "getent passwd mailward-audit; "
               "stat -c '%U %a %n' /var/log/mailward /var/lib/mailward-audit "
               "/var/lib/mailward-audit/keys; mailward-audit --version")
    assert "mailward-audit:" in r.stdout
    assert "mailward-audit 750 /var/log/mailward" in r.stdout
    assert "mailward-audit 700 /var/lib/mailward-audit/keys" in r.stdout
    r = chroot(root, "dpkg-query -W -f='${Conffiles}' dovecot-mailward")
    assert "/etc/dovecot/conf.d/90-mailward.conf" in r.stdout

    # a smoke session: passwd-file user under leave-on-server
    port = free_port()
    conf = (smoke_conf_24 if DOVECOT_24 else smoke_conf_23)(port)
    with open(os.path.join(root, "etc/dovecot/local.conf"), "w") as f:
        f.write(conf)
    smoke_session(root, port)


def smoke_conf_23(port):
    return f"""ssl = no
disable_plaintext_auth = no
protocols = pop3 imap
listen = 127.0.0.1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN /etc/dovecot/users
}}
userdb {{
  driver = passwd-file
  args = /etc/dovecot/users
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def smoke_conf_24(port):
    # (Debian 13's dovecot.conf sets dovecot_config_version and includes
    # conf.d, with the package's 90-mailward.conf, and then local.conf)
    # (its conf.d/10-mail.conf sets mbox with INBOX in /var/mail/%{user};
    # "." is maildir's own default: INBOX in mail_path)
    return f"""ssl = no
auth_allow_cleartext = yes
listen = 127.0.0.1
log_path = /var/log/dovecot.log
mail_driver = maildir
mail_path = ~/Maildir
mail_inbox_path = .
passdb passwd-file {{
  passwd_file_path = /etc/dovecot/users
}}
userdb passwd-file {{
  passwd_file_path = /etc/dovecot/users
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def smoke_session(root, port):
    # a virtual user: the mail uid is vmail, alice is not a system user
    chroot(root, "useradd --system --no-create-home vmail && "
           "mkdir -p /home/alice/Maildir/new /home/alice/Maildir/cur "
           "/home/alice/Maildir/tmp")
    with open(os.path.join(root, "home/alice/Maildir/new/1.mw"), "wb") as f:
        f.write(make_message(1))
    chroot(root, "chown -R vmail: /home/alice && "
           "echo \"alice:{PLAIN}secret:$(id -u vmail):$(id -g vmail)::"
           "/home/alice::userdb_mailward_pop3_policy=leave-on-server\" "
           "> /etc/dovecot/users && "
           # (its processes keep stdio open: never a pipe)
           "dovecot </dev/null >/tmp/dovecot.out 2>&1")
    deadline_ok = False
    for _ in range(300):
        try:
            p = poplib.POP3("127.0.0.1", port, timeout=10)
            deadline_ok = True
            break
        except OSError:
            subprocess.run(["sleep", "0.1"])
    assert deadline_ok, "dovecot in the chroot did not listen"
    try:
        p.user("alice")
        p.pass_("secret")
        assert p.stat()[0] == 1
        assert p.capa().get("EXPIRE") == ["NEVER"]
        p.retr(1)
        p.dele(1)
        p.quit()
    except (AssertionError, poplib.error_proto) as e:
        log = chroot(root, "tail -30 /var/log/dovecot.log", check=False)
        raise AssertionError("%s\n%s" % (e, log.stdout))
    r = chroot(root, "ls /home/alice/Maildir/cur /home/alice/Maildir/new "
               "| grep -c mw; doveadm mailward devices -u alice; "
               "doveadm mailward check -u alice")
    lines = r.stdout.splitlines()
    assert lines[0] == "1", r.stdout      # leave-on-server kept it
    assert "pop3" in r.stdout and "127.0.0.0/24" in r.stdout, r.stdout
    chroot(root, "doveadm stop </dev/null >/dev/null 2>&1")
