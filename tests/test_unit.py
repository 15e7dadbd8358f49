"""Runs the core library's cmocka unit tests (built with ASan/UBSan by
tests/run-tests.sh); each test program is one pytest test. The programs are
named here: one that is missing (not built) or fails fails its test."""
import os
import subprocess

import pytest

import mwharness

# The core only: run once, not per Dovecot release line; except the state
# store's, which runs on each line: each has its own Debian LMDB (0.9.24 in
# Debian 12, 0.9.31 in Debian 13) and LMDB's locking differs between them
# (test_open_close_race).
PER_LINE = {"test-store"}

UNIT_DIR = os.path.join(mwharness.BUILD, "tests", "unit")
# every program of unit_tests in Makefile.am
PROGRAMS = [
    "test-policy",
    "test-device",
    "test-store",
    "test-imapid",
    "test-fetch",
    "test-json",
    "test-audit",
    "test-audit-tamper",
    "test-audit-body",
    "test-merkle",
    "test-util",
    "test-core-link",
]


@pytest.mark.core
def test_unit_programs_listed():
    """The list above is the list of Makefile.am: a unit program added
    there and forgotten here fails."""
    with open(os.path.join(mwharness.REPO, "Makefile.am")) as f:
        text = f.read()
    listed = []
    lines = text.split("\nunit_tests = \\\n", 1)[1].splitlines()
    for line in lines:
        listed.append(line.rstrip("\\").strip().split("/")[-1])
        if not line.endswith("\\"):
            break
    assert sorted(listed) == sorted(PROGRAMS)


@pytest.mark.parametrize("program", [
    pytest.param(p, marks=() if p in PER_LINE else pytest.mark.core)
    for p in PROGRAMS])
def test_unit(program, tmp_path):
    path = os.path.join(UNIT_DIR, program)
    assert os.access(path, os.X_OK), "unit test program not built: " + path
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([path], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert "[  PASSED  ]" in out, out[-8000:]
    assert "[  FAILED  ]" not in out, out[-8000:]
    assert "ERROR: AddressSanitizer" not in out, out[-8000:]
    assert "runtime error:" not in out, out[-8000:]


def _nm(*args):
    r = subprocess.run(["nm", "-g"] + list(args), capture_output=True,
                       text=True, check=True)
    return {line.split()[-1] for line in r.stdout.splitlines()
            if line.strip() and not line.endswith(":")}


def test_core_library_self_contained():
    """libmailward-core leaves no symbol of mailward's undefined: its
    crypto comes from a provider the program installs (mw-crypto.h),
    not from symbols whoever links it has to define."""
    lib = os.path.join(mwharness.BUILD, ".libs", "libmailward-core.a")
    undefined = _nm("--undefined-only", lib) - _nm("--defined-only", lib)
    ours = sorted(s for s in undefined
                  if s.startswith(("mw_", "mailward_")))
    assert ours == []


def test_crypto_providers_equal():
    """Dovecot's provider (what mail processes run) and OpenSSL's (CLI,
    writer, unit tests) give equal SHA-256, HMAC-SHA-256, device ids and
    message keys on a table of inputs (tests/crypto-provider-test.c)."""
    path = os.path.join(mwharness.BUILD, "tests", "crypto-provider-test")
    r = subprocess.run([path], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "12 inputs x 2 keys, 0 failed", \
        r.stdout
    assert "DIFFER" not in r.stdout, r.stdout
