#!/usr/bin/python3
"""mailward benchmark: what mailward costs a Dovecot server, measured side
by side with plain Dovecot (issues 7, 14). See bench/README.md.

    /usr/bin/python3 bench/run.py [--quick] [--long] [--out FILE]
                                  [--dovecot host|trixie]

Starts one sandbox Dovecot per configuration with identical settings
(tests/mwharness.py): "plain" (mailward not loaded), "mailward", and
"mailward+audit" when the harness has an audit writer mode. Fills identical
mailboxes, then runs each load in rounds, interleaving the configurations
within every round (rotating the order from round to round) so machine
drift cancels. Prints a table, writes JSON (--out) and an SVG plot of the
with/without ratio vs mailbox size (--svg). --dovecot trixie runs the same
against Dovecot 2.4.1 in the Debian 13 chroot of tests/trixie.sh. Without
MAILWARD_BUILD_DIR it measures ./build-bench (made without sanitizers).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mwbench import cli  # noqa: E402

if __name__ == "__main__":
    cli.main(__doc__)
