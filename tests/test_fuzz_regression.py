"""Replays the fuzz corpus (seeds and regression inputs of past crashes,
tests/fuzz/corpus/<name>/) through every libFuzzer harness of the core
(tests/fuzz/fuzz-<name>.c, listed in tests/fuzz/harnesses.txt), built
without libFuzzer: the harness plus the replay driver tests/fuzz/
replay-main.c, with ASan/UBSan (and LeakSanitizer at exit), by clang if
installed, else gcc. Asserts that no input crashes, trips a sanitizer or
fails a harness property. Runs in a few seconds; the fuzzing itself is
tests/fuzz/run-fuzzers.sh."""
import os
import shutil
import subprocess

import pytest

import mwharness

# the core only: run once, not per Dovecot release line
pytestmark = pytest.mark.core

FUZZ = os.path.join(mwharness.REPO, "tests", "fuzz")
CORE = os.path.join(mwharness.REPO, "src", "core")
CORPUS = os.path.join(FUZZ, "corpus")


def harnesses():
    out = {}
    with open(os.path.join(FUZZ, "harnesses.txt")) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                out[words[0]] = words[1:]
    return out


HARNESSES = harnesses()


def compiler():
    for cc in (os.environ.get("FUZZ_REPLAY_CC"), "clang", "gcc"):
        if cc and shutil.which(cc):
            return cc
    pytest.skip("neither clang nor gcc installed")


@pytest.fixture(scope="module")
def replay_bins(tmp_path_factory):
    """Builds all replay binaries (in parallel); returns {name: path or
    build error text}."""
    cc = compiler()
    outdir = tmp_path_factory.mktemp("fuzz-replay")
    procs = {}
    for name, sources in HARNESSES.items():
        exe = str(outdir / ("replay-" + name))
        cmd = [cc, "-g", "-O1", "-fno-omit-frame-pointer",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-Wall", "-I" + CORE, "-I" + FUZZ, "-o", exe,
               os.path.join(FUZZ, "replay-main.c"),
               os.path.join(FUZZ, "fuzz-%s.c" % name)] + \
            [os.path.join(CORE, s) for s in sources] + ["-lcrypto"]
        procs[name] = (exe, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    bins = {}
    for name, (exe, p) in procs.items():
        out, _ = p.communicate(timeout=300)
        bins[name] = exe if p.returncode == 0 else \
            "build failed (%s):\n%s" % (cc, out)
    return bins


def test_harness_list_complete():
    """Every fuzz-*.c is listed, and every listed harness has a corpus."""
    files = sorted(n[len("fuzz-"):-2] for n in os.listdir(FUZZ)
                   if n.startswith("fuzz-") and n.endswith(".c"))
    assert files == sorted(HARNESSES)
    for name in HARNESSES:
        d = os.path.join(CORPUS, name)
        assert os.path.isdir(d) and os.listdir(d), "no corpus for " + name


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_replay_corpus(name, replay_bins, tmp_path):
    exe = replay_bins[name]
    assert os.path.exists(exe), exe
    d = os.path.join(CORPUS, name)
    files = sorted(os.path.join(d, n) for n in os.listdir(d)
                   if os.path.isfile(os.path.join(d, n)))
    env = dict(os.environ)
    env["TMPDIR"] = str(tmp_path)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    r = subprocess.run([exe] + files, env=env, capture_output=True,
                       text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert "replayed %d input(s)" % len(files) in out, out[-8000:]
    assert "ERROR: AddressSanitizer" not in out, out[-8000:]
    assert "runtime error:" not in out, out[-8000:]
