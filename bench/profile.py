#!/usr/bin/python3
"""Deterministic per-session costs of mailward against plain Dovecot
(issue 14): system calls (strace) and instructions (callgrind).

    /usr/bin/python3 bench/profile.py strace [--load L] [--sessions N]
    /usr/bin/python3 bench/profile.py callgrind [--load L] [--sessions N]
    ... --dovecot trixie      the same against Dovecot 2.4 (Debian 13 chroot)

strace: one sandbox per configuration (plain, mailward, mailward+audit),
identical users and mailboxes; after warm-up sessions (so the repeated
sessions record nothing new), `strace -f` attaches to the master and N
identical sessions run one after the other. The trace is split by the
program each process exec'd (pop3, pop3-login, imap, ...); the table is
system calls per session by name, and the difference to plain.

callgrind: the pop3/imap service runs under valgrind --tool=callgrind;
the instruction count (Ir) of each session process is read from its
output file; the figure is the median over N sessions, plus the top
inclusive functions of mailward's own code in the last one.

Runs as root with Debian's python3 (starts Dovecot). Not a test; no
thresholds. MAILWARD_BUILD_DIR selects the build; unset, ./build-bench
(no sanitizers, no fault injection) is made and used.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mwbench import profiling  # noqa: E402

if __name__ == "__main__":
    profiling.main(__doc__)
