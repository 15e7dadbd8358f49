"""mailward's benchmark as a package (bench/run.py and bench/profile.py
are its entry points; see bench/README.md).

- common: parameters, targets, log()
- mailgen: test mail and delivery; clients: raw POP3/IMAP clients and
  the session runner; measure: CPU accounting, LMDB figures, statistics;
  svg: the listing plot
- configs: one sandbox Dovecot per configuration; loads: the loads;
  harness: warm-up, interleaved timed rounds, filling, perf profiles;
  stats: per-load summary and ratios; report: table, targets, extras
- lines: runs an entry point on Dovecot 2.4 (Debian 13 chroot)
- cli: bench/run.py; profiling: bench/profile.py (strace, callgrind)
"""

import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
# tests/mwharness.py: the sandbox Dovecot the tests use
if os.path.join(REPO, "tests") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "tests"))
