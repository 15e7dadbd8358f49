# Sourced by tests/run-tests.sh, tests/demo.sh and tests/trixie.sh:
# installs what mailward needs from Debian (12 or 13: the same package
# names) and builds it into ./build against the Dovecot installed here
# (2.3 or 2.4). Run as root.
set -euo pipefail

MW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MW_BUILD="${MAILWARD_BUILD_DIR:-$MW_ROOT/build}"
export MAILWARD_BUILD_DIR="$MW_BUILD"

# What the build and the demo need (tests/demo.sh installs only these)...
MW_PACKAGES="build-essential autoconf automake libtool pkg-config
  dovecot-dev dovecot-core dovecot-imapd dovecot-pop3d
  liblmdb-dev libssl-dev openssl libcmocka-dev
  python3 util-linux mount procps"
# ... and what only the test suite needs (tests/run-tests.sh): real
# clients, the fuzz replays' clang with its sanitizer runtime
# (libclang-rt-dev), valgrind, LMDB's tools, debootstrap for the
# Dovecot 2.4 chroot, man for the man page checks, strace for the audit
# writer's syncs (test_audit_writer.py).
MW_TEST_PACKAGES="python3-pytest fetchmail getmail6 isync lmdb-utils
  clang libclang-rt-dev valgrind debootstrap man-db strace"
# ... and what the long Debian package test builds and checks packages
# with (tests/test_debian_packages.py, MAILWARD_LONG=1)
if [ "${MAILWARD_LONG:-}" = 1 ]; then
	MW_TEST_PACKAGES="$MW_TEST_PACKAGES dpkg-dev debhelper lintian git"
fi

# mw_install_packages [extra package list]
mw_install_packages() {
	local missing=""
	for p in $MW_PACKAGES ${1:-}; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		echo "== installing Debian packages:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
	# Debian starts a system Dovecot on install; the sandboxes use their
	# own ports, so it may run, but it is not needed.
	true
}

mw_build() {
	echo "== building mailward in ${MW_BUILD#"$MW_ROOT"/}"
	cd "$MW_ROOT"
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
		autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	fi
	mkdir -p "$MW_BUILD"
	cd "$MW_BUILD"
	if [ ! -f Makefile ] || [ "$MW_ROOT/configure" -nt Makefile ]; then
		"$MW_ROOT/configure" --enable-werror --enable-sanitizers \
			--enable-fault-injection \
			${MAILWARD_CONFIGURE_FLAGS:-} >configure.log 2>&1 ||
			{ cat configure.log; exit 1; }
	fi
	make -j"$(nproc)" >make.log 2>&1 || { cat make.log; exit 1; }
	# build the unit test programs without running them (pytest runs them)
	make -j"$(nproc)" check TESTS= >make-check.log 2>&1 || { cat make-check.log; exit 1; }
	cd "$MW_ROOT"
}
