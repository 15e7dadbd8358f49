#!/bin/bash
# Sets up (Debian packages), builds, and runs all of mailward's tests:
# the core unit tests (cmocka, under ASan/UBSan) and the integration tests
# against real sandbox Dovecot instances on 127.0.0.1.
#   bash tests/run-tests.sh [pytest args...]
# Environment: MAILWARD_LONG=1 also runs the long stress tests.
source "$(dirname "$0")/setup.sh"
mw_install_packages
mw_build
cd "$MW_ROOT"
echo "== running tests"
set +e
/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE tests "$@"
rc=$?
# pytest exits 5 when no test ran: that is a failure here
[ $rc -eq 5 ] && rc=1
exit $rc
