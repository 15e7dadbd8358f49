"""make install (into a DESTDIR): the man pages and the guides they point
to are installed, and they agree with docs/audit-service.md (issue 13
item 6)."""

import os
import subprocess

import pytest

import mwharness
from mwharness import BUILD, REPO


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    dest = str(tmp_path_factory.mktemp("destdir"))
    r = subprocess.run(["make", "-C", BUILD, "install", "DESTDIR=" + dest],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return dest


def _prefix():
    for line in open(os.path.join(BUILD, "config.status")):
        if line.startswith("S[\"prefix\"]="):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no prefix in config.status")


def test_man_pages_and_guides_installed(destdir):
    share = destdir + _prefix() + "/share"
    for page in ("mailward-audit.1", "doveadm-mailward.1"):
        path = os.path.join(share, "man", "man1", page)
        assert os.path.exists(path), path
        # renders without groff warnings
        r = subprocess.run(["man", "--warnings", "-l", path],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANWIDTH="80"))
        assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["man", "-l", os.path.join(
        share, "man", "man1", "doveadm-mailward.1")], capture_output=True,
        text=True, timeout=60)
    assert "doveadm [-f formatter] mailward check [-u user|-A]" in r.stdout
    # what SEE ALSO names exists
    for doc in ("admin-guide.md", "audit-service.md", "audit-log.md"):
        assert os.path.exists(os.path.join(share, "doc", "mailward", doc))


def _dovecot_config(key):
    for line in open("/usr/lib/dovecot/dovecot-config"):
        if line.startswith(key + "="):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no %s in dovecot-config" % key)


def test_plugins_installed_where_dovecot_loads_them(destdir):
    # Dovecot 2.4's dovecot.m4 defaults the module directory to
    # $(libdir)/dovecot, where Dovecot loads nothing from: the plugins go
    # to the installed Dovecot's module directory on both lines
    moddir = destdir + _dovecot_config("dovecot_moduledir")
    names = ["lib20_mailward_plugin.so", "lib95_pop3_mailward_plugin.so",
             "lib95_imap_mailward_plugin.so",
             "doveadm/lib10_doveadm_mailward_plugin.so"]
    if mwharness.DOVECOT_24:
        # read by the config process from its compiled-in directory
        names.append("settings/lib20_mailward_settings.so")
    missing = [n for n in names if not os.path.exists(
        os.path.join(moddir, n))]
    assert missing == [], (moddir, missing)


def test_man_page_paths_match_audit_service_guide():
    guide = open(os.path.join(REPO, "docs", "audit-service.md")).read()
    man = open(os.path.join(REPO, "docs", "mailward-audit.1")).read()
    for path in ("/var/lib/mailward-audit/keys", "/var/log/mailward/"
                 "audit.jsonl", "mailward-audit keygen"):
        assert path in guide
        assert path.replace("-", "\\-") in man or path in man, path
    # the writer's user of the guide, never an older name
    assert "\\-o mailward-audit" in man
    assert "\\-o mailward " not in man


def test_make_install_keeps_edited_config(tmp_path):
    # issue 13 item 3: a rebuild + make install after every Dovecot
    # upgrade must not turn audit off by replacing the admin's edits
    dest = str(tmp_path / "d")
    conf = dest + "/etc/dovecot/conf.d/90-mailward.conf"
    cmd = ["make", "-C", BUILD, "install", "DESTDIR=" + dest,
           "sysconfdir=/etc"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    sample = open(conf).read()
    assert not os.path.exists(conf + ".sample")
    # unchanged: an install replaces it (a newer sample may differ)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    assert open(conf).read() == sample
    assert not os.path.exists(conf + ".sample")
    edited = sample + "plugin {\n  mailward_audit_socket = mailward-audit\n}\n"
    with open(conf, "w") as f:
        f.write(edited)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    assert open(conf).read() == edited
    assert open(conf + ".sample").read() == sample
    assert "differs from the sample: not overwritten" in r.stdout
