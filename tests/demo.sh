#!/bin/bash
# Quick start demo: sets up (Debian packages), builds mailward, starts a
# sandbox Dovecot on 127.0.0.1 with the plugins loaded, runs a scripted
# POP3/IMAP session against it and prints what mailward did: policy,
# device state and the audit log. The sandbox is stopped at the end
# (MAILWARD_DEMO_KEEP=1 keeps it running and prints how to reach it).
source "$(dirname "$0")/setup.sh"
mw_install_packages
mw_build
exec /usr/bin/python3 "$MW_ROOT/tests/demo.py" "$@"
