"""Runs the core library's cmocka unit tests (built with ASan/UBSan by
tests/run-tests.sh); each test program is one pytest test."""
import os
import subprocess

import pytest

import mwharness

# the core only: run once, not per Dovecot release line
pytestmark = pytest.mark.core

UNIT_DIR = os.path.join(mwharness.BUILD, "tests", "unit")
PROGRAMS = sorted(n for n in (os.listdir(UNIT_DIR) if os.path.isdir(UNIT_DIR)
                              else []) if n.startswith("test-") and
                  os.access(os.path.join(UNIT_DIR, n), os.X_OK) and
                  "." not in n)


def test_unit_programs_built():
    assert len(PROGRAMS) >= 1, "no unit test programs in %s" % UNIT_DIR


@pytest.mark.parametrize("program", PROGRAMS)
def test_unit(program, tmp_path):
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([os.path.join(UNIT_DIR, program)], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert "[  PASSED  ]" in out, out[-8000:]
    assert "ERROR: AddressSanitizer" not in out, out[-8000:]
    assert "runtime error:" not in out, out[-8000:]
