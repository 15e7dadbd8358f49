"""Which Dovecot a benchmark runs against (--dovecot), and the build it
measures.

host: this machine's Dovecot (Debian 12: 2.3.19). trixie: Dovecot 2.4.1
in the Debian 13 chroot that tests/trixie.sh builds and keeps
(/var/cache/mailward-trixie): the entry point runs itself again inside
it, in this tree's copy there (tests/trixie.sh syncs it), and copies its
output files back.

Build: MAILWARD_BUILD_DIR when set (used as it is); otherwise ./build-bench,
configured without sanitizers and fault injection and made when out of
date (tests/setup.sh mw_build), so that what is measured is what a
server runs.
"""

import os
import re
import shlex
import subprocess
import sys

import mwharness

from . import REPO
from .common import log

TRIXIE_ROOT = os.path.join(os.environ.get("MW_TRIXIE",
                                          "/var/cache/mailward-trixie"),
                           "root")
BUILD_FLAGS = "--disable-sanitizers --disable-fault-injection"
# what profile.py needs in the chroot beyond tests/setup.sh's packages
CHROOT_TOOLS = {"strace": "strace", "valgrind": "valgrind"}


def add_argument(ap):
    ap.add_argument("--dovecot", choices=("host", "trixie"), default="host",
                    help="host: this machine's Dovecot; trixie: Dovecot "
                    "2.4 in the Debian 13 chroot of tests/trixie.sh "
                    "(default %(default)s)")


def _on_24():
    return mwharness.DOVECOT_24


def _git():
    try:
        return subprocess.run(["git", "-C", REPO, "describe", "--always",
                               "--dirty"], capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def chroot_tree():
    """This tree's copy in the chroot (as tests/trixie.sh names it)."""
    return "/trees/" + re.sub(r"[^A-Za-z0-9_.-]", "+", REPO).lstrip("+")


def _inner_script(entry, argv, tools):
    """The shell command run in the chroot's tree copy: tools, release
    build, then the entry point with its arguments."""
    inst = ""
    for tool in tools:
        pkg = CHROOT_TOOLS[tool]
        inst += ("command -v %s >/dev/null || { apt-get install -y -qq "
                 "--no-install-recommends %s >/dev/null 2>&1 || "
                 "{ apt-get update -qq && apt-get install -y -qq "
                 "--no-install-recommends %s >/dev/null; }; }; "
                 % (tool, pkg, pkg))
    return ("set -e; export DEBIAN_FRONTEND=noninteractive; %s"
            "export MAILWARD_BUILD_DIR=%s/build-bench "
            "MAILWARD_CONFIGURE_FLAGS=%s MAILWARD_BENCH_GIT=%s; "
            "bash -c 'source tests/setup.sh && mw_build'; "
            "exec /usr/bin/python3 %s %s"
            % (inst, chroot_tree(), shlex.quote(BUILD_FLAGS), shlex.quote(_git()), entry,
               " ".join(shlex.quote(a) for a in argv)))


def _build_host():
    """Makes ./build-bench (no sanitizers) and returns its path."""
    build = os.path.join(REPO, "build-bench")
    env = dict(os.environ, MAILWARD_BUILD_DIR=build,
               MAILWARD_CONFIGURE_FLAGS=BUILD_FLAGS)
    subprocess.run(["bash", "-c", "source tests/setup.sh && mw_build"],
                   cwd=REPO, env=env, check=True)
    return build


def relaunch(args, entry, argv, outputs=(), dirs=(), tools=()):
    """Runs entry (path relative to the tree) again where it must run:
    in the Debian 13 chroot for --dovecot trixie (unless this is Dovecot
    2.4 already), or with the release build when MAILWARD_BUILD_DIR is
    not set. outputs: argument names of output files, copied back from
    the chroot; dirs: of output directories (left in the chroot, named);
    tools: commands the run needs in the chroot (CHROOT_TOOLS).
    Returns True when the run happened in the relaunched process (its
    exit status is raised as SystemExit when it failed), False when the
    caller runs here."""
    want24 = args.dovecot == "trixie"
    if not want24 or _on_24():
        if os.environ.get("MAILWARD_BUILD_DIR"):
            return False
        env = dict(os.environ, MAILWARD_BUILD_DIR=_build_host())
        r = subprocess.run([sys.executable, os.path.join(REPO, entry)] +
                           argv, env=env)
        if r.returncode:
            raise SystemExit(r.returncode)
        return True
    tag = "trixie-%d" % os.getpid()
    inner = list(argv)
    back = []
    for name in outputs:
        path = getattr(args, name, None)
        if path:
            ipath = "/tmp/mwbench-%s-%s" % (tag, os.path.basename(path))
            inner += ["--" + name, ipath]
            back.append((ipath, path))
    for name in dirs:
        path = getattr(args, name, None)
        if path:
            log("NOTE: --%s %s is %s%s on this machine" % (
                name, path, TRIXIE_ROOT, path))
    cmd = ["bash", os.path.join(REPO, "tests", "trixie.sh"), "bash", "-c",
           _inner_script(entry, inner, tools)]
    r = subprocess.run(cmd, cwd=REPO)
    for ipath, path in back:
        src = TRIXIE_ROOT + ipath
        if os.path.exists(src):
            with open(src, "rb") as f, open(path, "wb") as g:
                g.write(f.read())
            os.unlink(src)
            log("(copied from the chroot: %s)" % path)
    if r.returncode:
        raise SystemExit(r.returncode)
    return True
