"""A real Dovecot sandbox on loopback with mailward loaded from the build tree.

Works with Dovecot 2.3 and 2.4 (whichever `dovecot` runs here: Debian 12's
2.3.19 or Debian 13's 2.4.1); the configuration syntax differs, so tests
say what they want and the Sandbox writes it in the syntax of the running
release (see Sandbox.__init__ and DOVECOT_24).

Used by the pytest suite (tests/), the Quick start demo (tests/demo.py) and
the benchmarks (bench/). Each Sandbox gets its own directory with base_dir,
state_dir, log, passwd-file users, maildir homes and high ports, and is
stopped by stop() (the pytest fixture calls it also when a test fails).
"""

import errno
import json
import os
import random
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("MAILWARD_BUILD_DIR", os.path.join(REPO, "build"))
MODULES = os.path.join(BUILD, ".libs")
STOCK_MODULES = "/usr/lib/dovecot/modules"
DOVEADM_MODULEDIR = "/usr/lib/dovecot/modules/doveadm"
TEST_USER = "mailward-test"
AUDIT_USER = "mailward-audit"
AUDITD = os.path.join(BUILD, "mailward-auditd")
AUDIT_CLI = os.path.join(BUILD, "mailward-audit")
PASSWORD = "secret"



def _dovecot_version():
    try:
        out = subprocess.run(["dovecot", "--version"], capture_output=True,
                             text=True, timeout=30).stdout
    except OSError:
        return (0, 0, 0)
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", out.strip())
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


# (major, minor, patch) of the Dovecot that runs the sandboxes
DOVECOT_VERSION = _dovecot_version()
DOVECOT_24 = DOVECOT_VERSION >= (2, 4, 0)
# "2.3" or "2.4": the key of per-release variants (extra_conf dicts)
DOVECOT_LINE = "2.4" if DOVECOT_24 else "2.3"
# Dovecot 2.4's config process loads plugin settings only from here
# (compiled in): the build's settings module is copied there
SETTINGS_MODULEDIR = "/usr/lib/dovecot/modules/settings"


def for_line(value):
    """value itself, or for a dict {"2.3": ..., "2.4": ...} the entry of
    the running Dovecot's release line (missing: empty string)."""
    if isinstance(value, dict):
        return value.get(DOVECOT_LINE, "")
    return value


def var(name):
    """A Dovecot %-variable in the running release's syntax: %{user} on
    both; var("owner_user") (the owner in a shared namespace's mail_path)
    is %{owner_user} on 2.4 and %%{user} on 2.3."""
    if name == "owner_user":
        return "%{owner_user}" if DOVECOT_24 else "%%{user}"
    return "%{" + name + "}"


# Processes that were still starting when the sandbox is stopped (a test
# that ends right after start) fail to read their configuration from the
# config process that stop() ends: shutdown noise, not a failure, when it
# is logged while the sandbox stops (check_log()).
CONFIG_AT_STOP = re.compile(r"(Failed to read configuration|Error reading "
                            r"configuration).*Connection reset by peer")

# The Dovecot log must never show these (harness fails the test).
BAD_LOG = re.compile(r"Panic:|Fatal:|killed with signal|dumped core|"
                     r"AddressSanitizer|runtime error:")


# system users this process created (remove_created_users() removes them)
CREATED_USERS = []


def _ensure_system_user(name):
    """A system user without home or shell (created if missing)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell",
                        "/usr/sbin/nologin", name], check=True)
        CREATED_USERS.append(name)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def install_settings_module():
    """Dovecot 2.4: copies the build's lib20_mailward_settings.so into
    Dovecot's settings module dir (a compiled-in path) unless the same
    file is there; without it doveconf rejects the mailward settings."""
    src = os.path.join(MODULES, "lib20_mailward_settings.so")
    dst = os.path.join(SETTINGS_MODULEDIR, "lib20_mailward_settings.so")
    with open(src, "rb") as f:
        data = f.read()
    try:
        with open(dst, "rb") as f:
            if f.read() == data:
                return
    except OSError:
        pass
    os.makedirs(SETTINGS_MODULEDIR, exist_ok=True)
    with open(dst + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(dst + ".tmp", 0o644)
    os.rename(dst + ".tmp", dst)


def remove_created_users():
    """Removes the system users (and their groups) this process created,
    so that a one-off run such as the demo leaves none behind. Call it
    after every sandbox is stopped and cleaned up."""
    while CREATED_USERS:
        name = CREATED_USERS.pop()
        subprocess.run(["userdel", name], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ensure_test_user():
    """The mail uid of sandbox users: a system user, never root."""
    return _ensure_system_user(TEST_USER)


def ensure_audit_user():
    """The audit writer's own system user (owns the log and its keys)."""
    return _ensure_system_user(AUDIT_USER)


def proc_cmdlines():
    """(pid, argv as a list of bytes) of every process still readable."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                yield int(name), f.read().split(b"\0")
        except OSError:
            continue


_deliver_seq = 0


def _have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# Ports for sandboxes: below the kernel's ephemeral range (so no client
# socket takes one between the choice and Dovecot's bind), one range per
# test run that may run at the same time as another (run-tests.sh runs the
# Debian 13 chroot's line, MAILWARD_INNER, beside the host's), and never
# the same port twice in one process.
_PORT_RANGE = (27000, 32700) if os.environ.get("MAILWARD_INNER") \
    else (20000, 26900)
_ports_issued = set()


def _port_bindable(port):
    for family, addr in ((socket.AF_INET, "127.0.0.1"),
                         (socket.AF_INET6, "::1")):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            s.bind((addr, port))
        except OSError as e:
            if family == socket.AF_INET6 and \
                    e.errno == errno.EADDRNOTAVAIL:
                continue    # no IPv6 on this machine
            return False
        finally:
            s.close()
    return True


def free_port():
    lo, hi = _PORT_RANGE
    for _ in range(hi - lo):
        port = random.randrange(lo, hi)
        if port in _ports_issued:
            continue
        _ports_issued.add(port)
        if _port_bindable(port):
            return port
    raise RuntimeError("no free port in %d-%d" % _PORT_RANGE)


def make_message(n, subject=None, size=0, msgid=None):
    subject = subject or "message %d" % n
    msgid = msgid or "<mw-%d-%d@test.invalid>" % (n, time.time_ns())
    body = "Body of message %d.\r\n" % n
    if size > len(body):
        line = ("x" * 70) + "\r\n"
        body += line * ((size - len(body)) // len(line) + 1)
    return ("From: sender@test.invalid\r\nTo: user@test.invalid\r\n"
            "Subject: %s\r\nMessage-ID: %s\r\nDate: Sat, 28 Nov 2026 "
            "12:00:00 +0000\r\n\r\n%s" % (subject, msgid, body)).encode()


class Sandbox:
    """One Dovecot master with its own directory, ports and log."""

    def __init__(self, users=None, plugin=None, extra_conf="",
                 app_passwords=None,
                 protocols="imap pop3", log_debug=True, root=None,
                 mail_plugins=True, audit=False, audit_args="",
                 plugins=(), settings=None, namespaces=(),
                 protocol_settings=None, mail_driver="maildir",
                 mail_path="~/Maildir", services=None):
        """What the sandbox should run, independent of Dovecot's syntax:
        users        {user: {userdb field: value}} (fields as written in
                     passwd-file, without the userdb_ prefix)
        plugin       plugin settings {name: value} (2.3: plugin {};
                     2.4: top level); values as in settings
        plugins      Dovecot's own mail plugins to load besides mailward,
                     e.g. ["acl", "imap_acl"]: imap_* ones in IMAP only,
                     pop3_* ones in POP3 only, the others in every
                     protocol (Dovecot orders them by their lib number, so
                     they load before mailward)
        settings     top-level settings {name: value}; a value may be a
                     {"2.3": v, "2.4": v} dict where the name or value
                     differs (a missing line or None leaves it out)
        protocol_settings  {"pop3": {name: value}, ...} per protocol
                     (2.4 checks pop3_deleted_flag with pop3_delete_type
                     in protocol pop3: set both here, not in settings)
        namespaces   [{"name": ..., "type": "shared", "prefix": ...,
                     "separator": "/", "mail_driver": "maildir",
                     "mail_path": "...", "list": "yes", ...}]: extra
                     namespaces; mail_path may use var("owner_user")
        mail_driver, mail_path  the users' mail storage (per-line dicts
                     allowed, e.g. 2.3 mail_path "~/mail:INBOX=~/inbox")
        services     {service name: {setting: value}} (service blocks)
        extra_conf   free text appended to the config: a string (same on
                     both lines) or a {"2.3": text, "2.4": text} dict
        protocols, mail_plugins (False: no mailward), audit, log_debug
        as before."""
        self.uid, self.gid = ensure_test_user()
        self.dir = root or tempfile.mkdtemp(prefix="mailward-sbx-")
        os.chmod(self.dir, 0o755)
        self.users = dict(users or {"alice": {}})
        # {user: {password: device}}: app passwords, one device each, as
        # a second passdb that sets mailward_device (as admins do)
        self.app_passwords = dict(app_passwords or {})
        self.app_passdbs = max([len(v) for v in self.app_passwords.values()]
                               + [0])
        self.have_v6 = _have_ipv6()
        self.plugin = dict(plugin or {})
        self.extra_conf = extra_conf
        self.plugins = list(plugins)
        self.settings = dict(settings or {})
        self.protocol_settings = {k: dict(v) for k, v in
                                  (protocol_settings or {}).items()}
        self.namespaces = [dict(n) for n in namespaces]
        self.mail_driver = mail_driver
        self.mail_path = mail_path
        self.services = {k: dict(v) for k, v in (services or {}).items()}
        self.protocols = protocols
        self.log_debug = log_debug
        self.mail_plugins = mail_plugins
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.log = os.path.join(self.dir, "dovecot.log")
        self.moddir = os.path.join(self.dir, "modules")
        self.doveadm_moddir = os.path.join(self.moddir, "doveadm")
        self.running = False
        self._log_checked_offset = 0
        # log ranges (character offsets) written while stop() ran
        self._stopping_ranges = []
        # regexes of log lines check_log() accepts although BAD_LOG
        # matches them (e.g. a test that kills a process on purpose)
        self.log_allow = []
        # audit mode: the mailward-audit writer service (mailward-auditd)
        # runs as AUDIT_USER; keys are generated at the first start
        self.audit = audit
        self.audit_args = audit_args
        self.audit_dir = os.path.join(self.dir, "audit")
        self.audit_log_path = os.path.join(self.audit_dir, "audit.jsonl")
        # writer.key + checkpoint.key (writer's user, 0700 directory)
        self.audit_writer_keys = os.path.join(self.dir, "audit-writer")
        # verify.key + checkpoint.pub (root: the auditor's material)
        self.audit_keys = os.path.join(self.dir, "audit-keys")
        self.audit_socket_path = os.path.join(self.dir, "run",
                                              "mailward-audit")
        # records of sessions that end while the writer is away
        # (docs/audit-service.md "Spool"): writer -S and the mail setting
        self.audit_spool = os.path.join(self.dir, "audit-spool")
        if audit:
            self.plugin.setdefault("mailward_audit_socket",
                                   self.audit_socket_path)
            self.plugin.setdefault("mailward_audit_spool", self.audit_spool)

    # ----- setup -----
    def home(self, user):
        return os.path.join(self.dir, "home", user)

    def maildir(self, user, folder=None):
        base = os.path.join(self.home(user), "Maildir")
        return base if folder is None else os.path.join(base, "." + folder)

    def state_dir(self, user):
        return os.path.join(self.home(user), "mailward")

    def _write_modules(self):
        os.makedirs(self.doveadm_moddir, exist_ok=True)
        for name in os.listdir(MODULES):
            if not name.endswith(".so") or "_settings" in name:
                continue
            dst = (self.doveadm_moddir if "doveadm" in name else self.moddir)
            link = os.path.join(dst, name)
            if not os.path.exists(link):
                os.symlink(os.path.join(MODULES, name), link)
        if not os.path.exists(os.path.join(MODULES,
                                           "lib20_mailward_plugin.so")):
            raise RuntimeError("plugins not built in %s: run make" % MODULES)
        # Dovecot's own plugins: mail_plugin_dir is one directory
        for plugin in self.plugins:
            suffix = "_%s_plugin.so" % plugin
            found = [n for n in os.listdir(STOCK_MODULES)
                     if n.startswith("lib") and n.endswith(suffix) and
                     n[3:-len(suffix)].isdigit()]
            if not found:
                raise RuntimeError("Dovecot plugin %s not in %s" %
                                   (plugin, STOCK_MODULES))
            link = os.path.join(self.moddir, found[0])
            if not os.path.exists(link):
                os.symlink(os.path.join(STOCK_MODULES, found[0]), link)
        if DOVECOT_24:
            install_settings_module()

    def _passwd_line(self, user, fields):
        extra = " ".join("userdb_%s=%s" % (k, v) for k, v in fields.items())
        return "%s:{PLAIN}%s:%d:%d::%s::%s\n" % (
            user, PASSWORD, self.uid, self.gid, self.home(user), extra)

    def write_users(self):
        # passwd-file takes one line per user: the i-th app password of
        # every user goes to the i-th passdb file
        for i in range(self.app_passdbs):
            with open(os.path.join(self.dir, "apppw%d" % i), "w") as f:
                for user, pws in self.app_passwords.items():
                    items = list(pws.items())
                    if i < len(items):
                        f.write("%s:{PLAIN}%s::::::userdb_mailward_device="
                                "%s\n" % (user, items[i][0], items[i][1]))
        path = os.path.join(self.dir, "users")
        with open(path + ".tmp", "w") as f:
            for user, fields in self.users.items():
                f.write(self._passwd_line(user, fields))
        os.rename(path + ".tmp", path)
        for user in self.users:
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(self.maildir(user), sub),
                            exist_ok=True)
            self._chown_tree(self.home(user))

    def set_user_fields(self, user, **fields):
        """Changes userdb fields; takes effect at the next login (no
        restart: passwd-file is re-read when it changes)."""
        self.users.setdefault(user, {}).update(
            {k: v for k, v in fields.items() if v is not None})
        for k, v in fields.items():
            if v is None:
                self.users[user].pop(k, None)
        self.write_users()
        # passwd-file stats its file at most once a second
        time.sleep(1.1)

    def _chown_tree(self, top):
        os.chown(os.path.join(self.dir, "home"), 0, 0)
        for dirpath, dirnames, filenames in os.walk(top):
            for path in [dirpath] + [os.path.join(dirpath, fn)
                                     for fn in filenames]:
                try:
                    os.chown(path, self.uid, self.gid)
                except FileNotFoundError:
                    # a file Dovecot removed meanwhile (a session still
                    # ending: e.g. its dovecot.autoexpunge.lock*)
                    pass

    def _setup_audit(self):
        """Keys (once) and directories for the audit writer."""
        auid, agid = ensure_audit_user()
        if not os.path.exists(AUDITD):
            raise RuntimeError("%s not built: run make" % AUDITD)
        os.makedirs(self.audit_dir, exist_ok=True)
        os.chown(self.audit_dir, auid, agid)
        os.chmod(self.audit_dir, 0o750)
        # mail uids create files there, cannot list or remove others'
        # (sticky), files get the writer's group (setgid)
        os.makedirs(self.audit_spool, exist_ok=True)
        os.chown(self.audit_spool, auid, agid)
        os.chmod(self.audit_spool, 0o3733)
        if not os.path.exists(os.path.join(self.audit_keys, "verify.key")):
            os.makedirs(self.audit_keys, exist_ok=True)
            os.chmod(self.audit_keys, 0o700)
            subprocess.run([AUDIT_CLI, "keygen", "--out", self.audit_keys],
                           check=True, stdout=subprocess.DEVNULL,
                           timeout=60)
            os.makedirs(self.audit_writer_keys, exist_ok=True)
            for name in ("writer.key", "checkpoint.key"):
                dst = os.path.join(self.audit_writer_keys, name)
                shutil.move(os.path.join(self.audit_keys, name), dst)
                os.chown(dst, auid, agid)
                os.chmod(dst, 0o600)
            # the writer replaces writer.key (tmp file + rename)
            os.chown(self.audit_writer_keys, auid, agid)
            os.chmod(self.audit_writer_keys, 0o700)

    def _audit_conf(self):
        if not self.audit:
            return ""
        return f"""service mailward-audit {{
  executable = {AUDITD} -l {self.audit_log_path} -K {self.audit_writer_keys}/writer.key -s {self.audit_writer_keys}/checkpoint.key -S {self.audit_spool} -H sandbox {self.audit_args}
  user = {AUDIT_USER}
  process_limit = 1
  process_min_avail = 1
  client_limit = 1000
  unix_listener mailward-audit {{
    mode = 0666
  }}
}}
"""

    # ----- audit -----
    def audit_records(self):
        """The audit log's complete lines, parsed (a torn tail is left
        out)."""
        try:
            with open(self.audit_log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        return [json.loads(l) for l in lines[:-1]]

    def audit_verify(self, *extra, files=None):
        """Runs mailward-audit verify with the auditor's verify.key and
        checkpoint.pub; returns (exit code, stdout + stderr)."""
        cmd = [AUDIT_CLI, "verify",
               "--key", os.path.join(self.audit_keys, "verify.key"),
               "--pubkey", os.path.join(self.audit_keys, "checkpoint.pub")]
        cmd += list(extra)
        cmd += list(files or [self.audit_log_path])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return r.returncode, r.stdout + r.stderr

    def audit_writer_pids(self):
        """Pids of this sandbox's mailward-auditd processes."""
        pids = []
        for pid, argv in proc_cmdlines():
            if (argv and argv[0].endswith(b"mailward-auditd") and
                    self.audit_log_path.encode() in argv):
                pids.append(pid)
        return pids

    @property
    def listen(self):
        return "127.0.0.1, ::1" if self.have_v6 else "127.0.0.1"

    # ----- configuration: intent -> 2.3 or 2.4 syntax -----
    def _mail_plugins(self, protocol=None):
        """The mail plugins of all protocols (protocol None) or the extra
        ones of one protocol, as a list."""
        if protocol is None:
            names = [p for p in self.plugins
                     if not p.startswith(("imap_", "pop3_"))]
            names += ["mailward"] if self.mail_plugins else []
        else:
            names = [p for p in self.plugins
                     if p.startswith(protocol + "_")]
            names += (["%s_mailward" % protocol] if self.mail_plugins
                      else [])
        return names

    @staticmethod
    def _block(head, lines, indent="  "):
        body = "".join("%s%s\n" % (indent, l) for l in lines)
        return "%s {\n%s}\n" % (head, body)

    @staticmethod
    def _kv(items):
        out = []
        for k, v in items.items():
            v = for_line(v)
            if v is None or (isinstance(v, str) and v == "" and
                             isinstance(items[k], dict)):
                continue
            out.append("%s = %s" % (k, v))
        return out

    def _services_conf(self):
        out = ""
        for name, items in self.services.items():
            out += self._block("service %s" % name, self._kv(items))
        return out

    def _namespaces_conf(self):
        out = ""
        for ns in self.namespaces:
            ns = dict(ns)
            name = ns.pop("name")
            driver = ns.pop("mail_driver", None)
            path = ns.pop("mail_path", None)
            lines = self._kv(ns)
            if driver is not None:
                if DOVECOT_24:
                    lines += ["mail_driver = %s" % driver,
                              "mail_path = %s" % path]
                else:
                    lines.append("location = %s:%s" % (driver, path))
            out += self._block("namespace %s" % name, lines)
        return out

    def _conf_23(self):
        plugin_lines = "\n".join("  " + l for l in self._kv(self.plugin))
        mp_all = " ".join(["$mail_plugins"] + self._mail_plugins())
        mp_pop3 = " ".join(["$mail_plugins"] + self._mail_plugins("pop3"))
        mp_imap = " ".join(["$mail_plugins"] + self._mail_plugins("imap"))
        debug = "log_debug = category=mailward\n" if self.log_debug else ""
        app_passdbs = "".join(
            "passdb {\n  driver = passwd-file\n  args = scheme=PLAIN "
            "%s/apppw%d\n}\n" % (self.dir, i)
            for i in range(self.app_passdbs))
        settings = "".join(l + "\n" for l in self._kv(self.settings))
        proto = {p: "".join("  %s\n" % l for l in self._kv(items))
                 for p, items in self.protocol_settings.items()}
        other_proto = "".join(
            self._block("protocol %s" % p, self._kv(items))
            for p, items in self.protocol_settings.items()
            if p not in ("pop3", "imap"))
        return f"""# mailward test sandbox (generated, Dovecot 2.3 syntax)
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
{debug}protocols = {self.protocols}
listen = {self.listen}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.dir}/users
}}
{app_passdbs}
userdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
mail_location = {for_line(self.mail_driver)}:{for_line(self.mail_path)}
mail_plugin_dir = {self.moddir}
mail_plugins = {mp_all}
pop3_uidl_format = %08Xu%08Xv
imap_id_retain = yes
{settings}service imap-login {{
  inet_listener imap {{
    address = {self.listen}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {self.listen}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
protocol pop3 {{
  mail_plugins = {mp_pop3}
{proto.get("pop3", "")}}}
protocol imap {{
  mail_plugins = {mp_imap}
{proto.get("imap", "")}}}
{other_proto}plugin {{
{plugin_lines}
}}
{self._namespaces_conf()}{self._services_conf()}{self._audit_conf()}{for_line(self.extra_conf)}
"""

    def _conf_24(self):
        def mail_plugins(names, indent):
            if not names:
                return ""
            return "%smail_plugins {\n%s%s}\n" % (
                indent, "".join("%s  %s = yes\n" % (indent, n)
                                for n in names), indent)
        debug = "log_debug = category=mailward\n" if self.log_debug else ""
        app_passdbs = "".join(
            "passdb apppw%d {\n  driver = passwd-file\n"
            "  passwd_file_path = %s/apppw%d\n}\n" % (i, self.dir, i)
            for i in range(self.app_passdbs))
        settings = "".join(l + "\n" for l in self._kv(self.settings))
        plugin_lines = "".join(l + "\n" for l in self._kv(self.plugin))
        protocols = ""
        for p in ["pop3", "imap"] + [p for p in self.protocol_settings
                                     if p not in ("pop3", "imap")]:
            body = mail_plugins(self._mail_plugins(p)
                                if p in ("pop3", "imap") else [], "  ")
            body += "".join("  %s\n" % l for l in
                            self._kv(self.protocol_settings.get(p, {})))
            protocols += "protocol %s {\n%s}\n" % (p, body)
        return f"""dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
# mailward test sandbox (generated, Dovecot 2.4 syntax)
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
{debug}protocols = {self.protocols}
listen = {self.listen}
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
passdb passwd-file {{
  passwd_file_path = {self.dir}/users
}}
{app_passdbs}
userdb passwd-file {{
  passwd_file_path = {self.dir}/users
}}
mail_driver = {for_line(self.mail_driver)}
mail_path = {for_line(self.mail_path)}
mail_plugin_dir = {self.moddir}
{mail_plugins(self._mail_plugins(), "")}pop3_uidl_format = %{{uid | hex(8)}}%{{uidvalidity | hex(8)}}
imap_id_retain = yes
{settings}service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
{protocols}{plugin_lines}
{self._namespaces_conf()}{self._services_conf()}{self._audit_conf()}{for_line(self.extra_conf)}
"""

    def write_config(self):
        conf = self._conf_24() if DOVECOT_24 else self._conf_23()
        with open(self.conf, "w") as f:
            f.write(conf)

    # ----- lifecycle -----
    def start(self):
        self._write_modules()
        if self.audit:
            self._setup_audit()
        self.write_users()
        self.write_config()
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "state"), exist_ok=True)
        # dovecot daemonizes: its children inherit stdio, so never pipe it
        errpath = os.path.join(self.dir, "dovecot.stderr")
        with open(errpath, "w") as err:
            r = subprocess.run(["dovecot", "-c", self.conf],
                               stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err)
        if r.returncode != 0:
            raise RuntimeError("dovecot failed to start: %s\n%s" % (
                open(errpath).read(), self.read_log()))
        self.running = True
        deadline = time.time() + 15
        for port in (self.imap_port, self.pop3_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        self.stop(check=False)
                        raise RuntimeError("dovecot did not listen on %d:\n%s"
                                           % (port, self.read_log()))
                    time.sleep(0.05)
        return self

    def stop(self, check=True):
        if self.running:
            stop_from = len(self.read_log())
            pidfile = os.path.join(self.dir, "run", "master.pid")
            pid = None
            try:
                pid = int(open(pidfile).read().strip())
            except (OSError, ValueError):
                pass
            subprocess.run(["doveadm", "-c", self.conf, "stop"],
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            deadline = time.time() + 10
            while pid is not None and time.time() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                if pid is not None:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            self.running = False
            self._stopping_ranges.append((stop_from, len(self.read_log())))
        if check:
            self.check_log()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)

    # ----- log -----
    def read_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def check_log(self):
        allow = [re.compile(p) for p in self.log_allow]
        bad = []
        pos = 0
        for l in self.read_log().splitlines(keepends=True):
            start, pos = pos, pos + len(l)
            if not BAD_LOG.search(l) or any(a.search(l) for a in allow):
                continue
            if CONFIG_AT_STOP.search(l) and any(
                    a <= start < b for a, b in self._stopping_ranges):
                continue
            bad.append(l.rstrip("\n"))
        if bad:
            raise AssertionError("Dovecot log shows a crash or fatal "
                                 "error:\n" + "\n".join(bad))

    def wait_log(self, pattern, timeout=10, count=1):
        """Waits until the log has `count` lines matching the regex."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            lines = [l for l in self.read_log().splitlines() if rx.search(l)]
            if len(lines) >= count:
                return lines
            if time.time() > deadline:
                raise AssertionError("log has no line matching %r:\n%s" %
                                     (pattern, self.read_log()[-4000:]))
            time.sleep(0.05)

    # ----- mail -----
    def deliver(self, user, messages, folder=None):
        """Writes messages into the user's maildir (new/), as the mail uid."""
        base = self.maildir(user, folder)
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        names = []
        global _deliver_seq
        for i, msg in enumerate(messages):
            # names sort in delivery order, so UIDs follow it
            _deliver_seq += 1
            name = "%d.M%09dP%d.mailward-test" % (
                time.time(), _deliver_seq, os.getpid())
            path = os.path.join(base, "new", name)
            with open(path, "wb") as f:
                f.write(msg)
            names.append(name)
        self._chown_tree(self.home(user))
        return names

    def maildir_count(self, user, folder=None):
        base = self.maildir(user, folder)
        return sum(len([n for n in os.listdir(os.path.join(base, sub))
                        if not n.startswith(".")])
                   for sub in ("new", "cur"))

    def maildir_subjects(self, user, folder=None):
        base = self.maildir(user, folder)
        subjects = []
        for sub in ("new", "cur"):
            for n in sorted(os.listdir(os.path.join(base, sub))):
                with open(os.path.join(base, sub, n), "rb") as f:
                    for line in f:
                        if line.lower().startswith(b"subject:"):
                            subjects.append(line[8:].strip().decode())
                            break
        return sorted(subjects)

    # ----- doveadm -----
    def doveadm(self, *args, fmt=None, check=True, input=None):
        """Runs doveadm with this sandbox's config and mailward's doveadm
        plugin from the build tree (bind-mounted over Dovecot's fixed
        doveadm module dir in a private mount namespace)."""
        cmd = ["doveadm", "-c", self.conf]
        if fmt:
            cmd += ["-f", fmt]
        cmd += list(args)
        r = _run_with_doveadm_modules(self.doveadm_moddir, cmd, input)
        if check and r.returncode != 0:
            raise AssertionError("doveadm %s failed (%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def doveadm_json(self, *args):
        r = self.doveadm(*args, fmt="json")
        return json.loads(r.stdout) if r.stdout.strip() else []


# "unshare -m --propagation private" needs / to be a mount point; in a
# chroot (or a container) where it is not, it fails with "cannot change
# root filesystem propagation". Then the bind mount is made with the
# propagation unchanged and undone explicitly (it may be visible in the
# parent namespace while doveadm runs).
_UNSHARE_PRIVATE = None


def _run_with_doveadm_modules(moddir, cmd, input=None):
    """Runs cmd (doveadm) with moddir bind-mounted over Dovecot's fixed
    doveadm module directory, in a mount namespace of its own."""
    global _UNSHARE_PRIVATE
    private = ('mount --bind "$1" %s && shift && exec "$@"'
               % DOVEADM_MODULEDIR)
    unchanged = ('mount --bind "$1" %s || exit 1; shift; "$@"; rc=$?; '
                 'umount %s; exit $rc' % (DOVEADM_MODULEDIR,
                                          DOVEADM_MODULEDIR))
    if _UNSHARE_PRIVATE is not False:
        r = subprocess.run(["unshare", "-m", "--propagation", "private",
                            "sh", "-c", private, "sh", moddir] + cmd,
                           capture_output=True, text=True, input=input,
                           timeout=120)
        if "cannot change root filesystem propagation" not in r.stderr:
            _UNSHARE_PRIVATE = True
            return r
        _UNSHARE_PRIVATE = False
    return subprocess.run(["unshare", "-m", "--propagation", "unchanged",
                           "sh", "-c", unchanged, "sh", moddir] + cmd,
                          capture_output=True, text=True, input=input,
                          timeout=120)


# ----- protocol helpers for tests -----
import imaplib as _imaplib  # noqa: E402
import poplib as _poplib  # noqa: E402


def pop3(sbx, user="alice", password=PASSWORD, host="127.0.0.1"):
    p = _poplib.POP3(host, sbx.pop3_port, timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def pop3_drop(p):
    """Drops a POP3 connection without QUIT (RFC 1939: no UPDATE state)."""
    p.sock.close()
    p.file.close()


def imap(sbx, user="alice", password=PASSWORD, host="127.0.0.1"):
    i = _imaplib.IMAP4(host, sbx.imap_port, timeout=30)
    i.login(user, password)
    return i


_imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))


def imap_id(i, params):
    """Sends RFC 2971 ID with params as quoted strings; asserts OK."""
    args = "(" + " ".join('"%s"' % p.replace("\\", "\\\\")
                          .replace('"', '\\"') for p in params) + ")"
    typ, data = i._simple_command("ID", args)
    assert typ == "OK", data


def devices(sbx, user="alice"):
    """doveadm mailward devices, by label."""
    return {d["label"]: d for d in
            sbx.doveadm_json("mailward", "devices", "-u", user)}


def imap_count(sbx, user="alice", folder="INBOX"):
    i = imap(sbx, user)
    typ, data = i.select(folder, readonly=True)
    i.logout()
    assert typ == "OK", data
    return int(data[0])


def wait_session_end(sbx, user, count=1, timeout=10):
    """Waits until `count` mailward pop3 session-end lines of user exist."""
    return sbx.wait_log(r"pop3\(%s\).*mailward: pop3 session (ended|dropped)"
                        % re.escape(user), timeout=timeout, count=count)
