#!/bin/bash
# Sets up (Debian packages), builds, and runs all of mailward's tests:
# the core unit tests (cmocka, under ASan/UBSan) once, and every
# integration test against real sandbox Dovecot instances on 127.0.0.1,
# twice: on this machine's Dovecot (Debian 12: 2.3.19) and on Dovecot 2.4.1
# in a Debian 13 chroot that tests/trixie.sh builds (and keeps in
# /var/cache/mailward-trixie). The last line counts the tests of both:
#   N passed, N failed
#   bash tests/run-tests.sh [pytest args...]
# Environment: MAILWARD_LONG=1 also runs the long stress tests;
# MAILWARD_DOVECOT=host or =trixie runs only one of the two lines.
source "$(dirname "$0")/setup.sh"
source "$MW_ROOT/tests/trixie.sh"

# pytest's arguments: the whole suite unless paths are given
mw_paths() {
	local a
	for a in "$@"; do
		case "$a" in
		-*) ;;
		*) [ -e "${a%%::*}" ] && return 0 ;;
		esac
	done
	return 1
}
if [ -n "${MAILWARD_INNER:-}" ]; then
	# inside the chroot: build and run one line, results in $MAILWARD_JUNIT
	mw_build
	cd "$MW_ROOT"
	set +e
	suite=tests
	mw_paths "$@" && suite=
	/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
		--junitxml="$MAILWARD_JUNIT" $suite "$@"
	rc=$?
	# no test selected on this line (e.g. core tests only): the summary
	# decides
	[ $rc -eq 5 ] && rc=0
	exit $rc
fi

suite=tests
mw_paths "$@" && suite=

mw_install_packages "$MW_TEST_PACKAGES"
lines="${MAILWARD_DOVECOT:-both}"
if [ "$lines" = both ] && dovecot --version | grep -q '^2\.4\.'; then
	# a Debian 13 machine: its own Dovecot is the 2.4 line already
	echo "== this machine runs Dovecot 2.4: no Debian 13 chroot needed"
	lines=host
fi
results="$MW_BUILD/test-results"
mkdir -p "$results"
rm -f "$results"/junit-*.xml
rc=0

run_host() {
	cd "$MW_ROOT"
	echo "== running tests on this machine's Dovecot $(dovecot --version)"
	# pytest's temporary directories: one directory, removed at the end
	# (MAILWARD_KEEP=1 keeps it, with the sandboxes of failed tests)
	local tmp r
	tmp="$(mktemp -d /tmp/mailward-pytest.XXXXXX)"
	/usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
		--basetemp="$tmp/t" \
		--junitxml="$results/junit-host.xml" $suite "$@"
	r=$?
	if [ -z "${MAILWARD_KEEP:-}" ]; then
		rm -rf "$tmp"
	else
		echo "== pytest's temporary files kept in $tmp"
	fi
	# exit 5 (no test selected here): the summary decides
	[ $r -eq 0 ] || [ $r -eq 5 ]
}

run_trixie() {
	echo "== running tests on Dovecot 2.4 (Debian 13 chroot, $MW_TRIXIE_TREE)"
	local args="" a skip_core=1 junit r=0
	for a in "$@"; do
		args="$args $(printf '%q' "$a")"
	done
	# the core unit tests run on the host line (when both lines run)
	[ "$lines" = trixie ] && skip_core=
	junit="$MW_TRIXIE_TREE/build/junit-trixie.xml"
	(
		# runs of this tree take turns in its copy
		flock 9
		rm -f "$MW_TRIXIE_ROOT$junit"
		mw_trixie_sync
		MAILWARD_SKIP_CORE=$skip_core MAILWARD_JUNIT=$junit \
			mw_trixie_exec "cd $MW_TRIXIE_TREE && \
				MAILWARD_INNER=1 bash tests/run-tests.sh $args"
	) 9>"$MW_TRIXIE/tree-$(basename "$MW_TRIXIE_TREE").lock" || r=1
	cp "$MW_TRIXIE_ROOT$junit" "$results/junit-trixie.xml" 2>/dev/null
	return $r
}

[ "$lines" != trixie ] && mw_build
# from here on failures are counted, not fatal
set +e
if [ "$lines" != host ] && ! mw_trixie_prepare; then
	echo "== could not build the Debian 13 chroot: Dovecot 2.4 tests not run"
	rc=1
	[ "$lines" = both ] && lines=host-only
fi
case "$lines" in
both)
	if [ -n "${MAILWARD_SERIAL:-}" ]; then
		run_host "$@" || rc=1
		run_trixie "$@" || rc=1
	else
		# the two lines at once (the tests mostly wait on Dovecot);
		# their output follows each other when both are done
		echo "== running both Dovecot lines at once (MAILWARD_SERIAL=1: one after the other)"
		run_host "$@" >"$results/host.log" 2>&1 &
		host_pid=$!
		run_trixie "$@" >"$results/trixie.log" 2>&1 &
		trixie_pid=$!
		wait $host_pid || rc=1
		wait $trixie_pid || rc=1
		cat "$results/host.log" "$results/trixie.log"
	fi
	;;
host|host-only)
	run_host "$@" || rc=1
	[ "$lines" = host-only ] && lines=both
	;;
trixie)
	run_trixie "$@" || rc=1
	;;
esac

# one summary line for both lines (a missing result file is a failure)
/usr/bin/python3 - "$results" "$lines" <<'PY' || rc=1
import os, sys
import xml.etree.ElementTree as ET
d, lines = sys.argv[1], sys.argv[2]
want = {"both": ["host", "trixie"], "host": ["host"],
        "trixie": ["trixie"]}[lines]
passed = failed = skipped = total = 0
ok = True
for name in want:
    path = os.path.join(d, "junit-%s.xml" % name)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        print("%s: no test results" % name)
        failed += 1
        ok = False
        continue
    n = f = s = 0
    for tc in root.iter("testcase"):
        kinds = {c.tag for c in tc}
        n += 1
        if kinds & {"failure", "error"}:
            f += 1
        elif "skipped" in kinds:
            s += 1
    total += n
    print("%s: %d passed, %d failed, %d skipped" % (
        {"host": "Dovecot of this machine", "trixie": "Dovecot 2.4 (chroot)"}[name],
        n - f - s, f, s))
    passed += n - f - s
    failed += f
    skipped += s
print("%d passed, %d failed" % (passed, failed))
# a run that selected no test at all is a failure
sys.exit(0 if ok and failed == 0 and total > 0 else 1)
PY
exit $rc
