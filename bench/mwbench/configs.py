"""The configurations compared: one sandbox Dovecot each (plain, plain2
for the noise floor, mailward, mailward+audit), identical settings."""

import inspect
import os
import shutil
import tempfile
import time

import mwharness

from . import measure
from .common import DEV_PW

def harness_has_audit():
    """True when tests/mwharness.py's Sandbox takes audit=True and the
    writer is built."""
    try:
        params = inspect.signature(mwharness.Sandbox.__init__).parameters
    except (TypeError, ValueError):
        return False, "cannot inspect Sandbox"
    if "audit" not in params:
        return False, "tests/mwharness.py Sandbox has no audit= parameter"
    auditd = getattr(mwharness, "AUDITD", None)
    if auditd and not os.path.exists(auditd):
        return False, "%s is not built" % auditd
    return True, ""



class Config:
    def __init__(self, name, sbx):
        self.name = name
        self.sbx = sbx
        self.cpu = None
        self.mailward = not name.startswith("plain")
        self.audit = getattr(sbx, "audit", False)

    def start(self):
        self.sbx.start()
        try:
            self.cpu = measure.ServerCPU(self.master_pid())
        except Exception:
            self.sbx.stop(check=False)
            raise

    def master_pid(self, timeout=10):
        """The master's pid (master.pid can appear a moment after the
        listeners)."""
        path = os.path.join(self.sbx.dir, "run", "master.pid")
        deadline = time.time() + timeout
        while True:
            try:
                return int(open(path).read().strip())
            except (OSError, ValueError):
                if time.time() > deadline:
                    raise RuntimeError("no %s" % path)
                time.sleep(0.05)

    def audit_size(self):
        if not self.audit:
            return 0
        try:
            return os.path.getsize(self.sbx.audit_log_path)
        except OSError:
            return 0

    def audit_read(self, start, end):
        if not self.audit or end <= start:
            return b""
        with open(self.sbx.audit_log_path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


def user_table(p):
    users = {}
    groups = {}
    for prefix, policy in (("pc", "client"), ("pl", "leave-on-server"),
                           ("pe", "expunge-after-retrieval"),
                           ("im", None), ("mx", "client")):
        names = ["%s%02d" % (prefix, i) for i in range(p["users"])]
        groups[prefix] = names
        for n in names:
            users[n] = ({"mailward_pop3_policy": policy} if policy else {})
    for size in p["listing"]:
        users["ls%d" % size] = {"mailward_pop3_policy": "leave-on-server"}
    return users, groups


def snapshot_build():
    """Copies the plugin modules (and the audit writer) of the build tree to
    a private directory and points the harness at it, so a rebuild in the
    shared build tree during the run cannot change or break what is
    measured (tests/mwharness.py symlinks modules from MODULES and runs
    AUDITD; both are module-level settings of the harness)."""
    d = tempfile.mkdtemp(prefix="mailward-bench-build-")
    os.chmod(d, 0o755)
    libs = os.path.join(d, ".libs")
    os.makedirs(libs)
    for n in os.listdir(mwharness.MODULES):
        if n.endswith(".so"):
            shutil.copy2(os.path.join(mwharness.MODULES, n), libs)
    mwharness.MODULES = libs
    auditd = getattr(mwharness, "AUDITD", None)
    if auditd and os.path.exists(auditd):
        dst = os.path.join(d, os.path.basename(auditd))
        shutil.copy2(auditd, dst)
        mwharness.AUDITD = dst
    return d


def make_configs(p, args):
    users, groups = user_table(p)
    apppw = {"ls%d" % s: dict(DEV_PW) for s in p["listing"]}
    common = dict(users=users, plugin={}, log_debug=False,
                  app_passwords=apppw)
    notes = []
    want = args.configs.split(",") if args.configs else None
    cfgs = []

    def wanted(n):
        return want is None or n in want
    if wanted("plain"):
        cfgs.append(Config("plain", mwharness.Sandbox(mail_plugins=False,
                                                      **common)))
    if want is not None and "plain2" in want:
        # a second plain Dovecot: plain vs plain2 is the noise floor
        cfgs.append(Config("plain2", mwharness.Sandbox(mail_plugins=False,
                                                       **common)))
    if wanted("mailward"):
        cfgs.append(Config("mailward", mwharness.Sandbox(mail_plugins=True,
                                                         **common)))
    ok, why = harness_has_audit()
    if wanted("mailward+audit"):
        if ok:
            cfgs.append(Config("mailward+audit", mwharness.Sandbox(
                mail_plugins=True, audit=True, **common)))
        else:
            notes.append("mailward+audit skipped: " + why)
    return cfgs, groups, notes

