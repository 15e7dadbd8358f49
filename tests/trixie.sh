#!/bin/bash
# Debian 13 "trixie" with Dovecot 2.4 in a chroot, built by this script on
# a Debian 12 machine (as root) and kept in $MW_TRIXIE (default
# /var/cache/mailward-trixie) between runs; rebuilt when it is broken or
# its package list changed. tests/run-tests.sh runs the real-Dovecot
# tests in it; by hand:
#   bash tests/trixie.sh CMD...     runs CMD in the chroot, in a copy of
#                                   this source tree ($MW_TRIXIE_TREE), e.g.
#   bash tests/trixie.sh bash tests/demo.sh
#   bash tests/trixie.sh python3 bench/run.py
# The chroot's mounts (/proc, /dev, and / of the chroot bound on itself,
# which doveadm's private mount namespaces need) live in a private mount
# namespace: nothing stays mounted when the command ends. Several source
# trees (work trees) can use the chroot at once: each has its own copy
# (/trees/<path of the tree>) and its own Dovecot settings module directory
# (a private one bound over /usr/lib/dovecot/modules/settings); runs of
# one tree take turns (a lock per tree), building the chroot takes a lock.

MW_TRIXIE="${MW_TRIXIE:-/var/cache/mailward-trixie}"
MW_TRIXIE_ROOT="$MW_TRIXIE/root"
# this source tree's copy in the chroot (run by hand, setup.sh is sourced
# only later: an empty MW_ROOT here made the copy /trees itself, and its
# sync deleted every other tree's copy)
MW_TRIXIE_TREE="/trees/$(printf '%s' "${MW_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}" | tr -c 'A-Za-z0-9_.-' '+' | sed 's/^+//')"
# the host's own Debian mirror (deb822 or one-line sources), else Debian's
mw_trixie_mirror() {
	local m
	m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE 'https?://[^ ]+' | head -n1)
	echo "${m:-http://deb.debian.org/debian}"
}

mw_trixie_security_mirror() {
	local m
	m=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+/debian-security/?( |$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE 'https?://[^ ]+' | head -n1)
	echo "${m:-http://deb.debian.org/debian-security}"
}

# "unshare -m --propagation private" needs / to be a mount point; where it
# is not (a chroot or container whose / is a plain directory) unshare fails
# with "cannot change root filesystem propagation": then the namespace keeps
# the propagation it has and every mount is undone explicitly at the end.
mw_trixie_propagation() {
	if unshare -m --propagation private true 2>/dev/null; then
		echo private
	else
		echo unchanged
	fi
}

# runs "$@" (a shell command string in $1) inside the chroot with its
# mounts, in a mount namespace of its own (private where / is a mount point)
mw_trixie_exec() {
	: "${MW_TRIXIE_PROPAGATION:=$(mw_trixie_propagation)}"
	unshare -m --propagation "$MW_TRIXIE_PROPAGATION" /bin/bash -c '
		set -e
		R="$1"; shift
		S="$R/usr/lib/dovecot/modules/settings"
		T=
		# undoes the mounts (needed where the namespace is not private)
		mw_undo() {
			if [ -n "$T" ]; then
				umount "$S" 2>/dev/null || true
				umount "$T" 2>/dev/null || true
				rmdir "$T" 2>/dev/null || true
			fi
			umount "$R/dev/shm" 2>/dev/null || true
			umount "$R/dev" 2>/dev/null || true
			umount "$R/proc" 2>/dev/null || true
			umount "$R" 2>/dev/null || true
		}
		trap mw_undo EXIT
		mount --bind "$R" "$R"
		mount -t proc proc "$R/proc"
		mount --bind /dev "$R/dev"
		mount -t tmpfs tmpfs "$R/dev/shm" 2>/dev/null || true
		# this run'"'"'s own settings module directory (the harness
		# installs the build'"'"'s mailward settings module there)
		# (none before Dovecot is installed)
		if [ -d "$S" ]; then
			T=$(mktemp -d /tmp/mailward-settings.XXXXXX)
			mount -t tmpfs tmpfs "$T"
			cp -a "$S/." "$T/"
			rm -f "$T/lib20_mailward_settings.so"
			mount --bind "$T" "$S"
		fi
		rc=0
		chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
			MAILWARD_LONG="${MAILWARD_LONG:-}" \
			MAILWARD_KEEP="${MAILWARD_KEEP:-}" \
			MAILWARD_DEMO_KEEP="${MAILWARD_DEMO_KEEP:-}" \
			MAILWARD_SKIP_CORE="${MAILWARD_SKIP_CORE:-}" \
			MAILWARD_JUNIT="${MAILWARD_JUNIT:-}" \
			/bin/bash -c "$@" || rc=$?
		exit $rc
	' sh "$MW_TRIXIE_ROOT" "$@"
}

mw_trixie_ok() {
	[ -f "$MW_TRIXIE_ROOT/.mailward-ready" ] &&
	[ "$(cat "$MW_TRIXIE_ROOT/.mailward-ready")" = "$MW_PACKAGES $MW_TEST_PACKAGES" ] &&
	mw_trixie_exec 'dovecot --version | grep -q "^2\.4\." &&
		dpkg -s dovecot-dev >/dev/null 2>&1' 2>/dev/null
}

# Makes sure the chroot exists, works and has the packages of setup.sh.
mw_trixie_prepare() {
	mkdir -p "$MW_TRIXIE"
	(
		flock 9
		mw_trixie_prepare_locked
	) 9>"$MW_TRIXIE/prepare.lock"
}

mw_trixie_prepare_locked() {
	if mw_trixie_ok; then
		return 0
	fi
	local mirror sec
	mirror=$(mw_trixie_mirror)
	sec=$(mw_trixie_security_mirror)
	if [ -f "$MW_TRIXIE_ROOT/.mailward-ready" ] &&
	   mw_trixie_exec 'dovecot --version | grep -q "^2\.4\."' 2>/dev/null; then
		# a working chroot whose package list changed: add packages
		mw_trixie_packages && mw_trixie_ok && return 0
	fi
	echo "== building the Debian 13 chroot in $MW_TRIXIE_ROOT ($mirror)"
	if ! command -v debootstrap >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends debootstrap >/dev/null
	fi
	# a broken or outdated chroot is made again from scratch; refuse
	# to delete anything that is still mounted
	if [ -e "$MW_TRIXIE_ROOT" ]; then
		if grep -q " $MW_TRIXIE_ROOT[/ ]" /proc/mounts; then
			echo "$MW_TRIXIE_ROOT has mounts: not deleting it" >&2
			return 1
		fi
		rm -rf --one-file-system "$MW_TRIXIE_ROOT"
	fi
	mkdir -p "$MW_TRIXIE"
	debootstrap --variant=minbase trixie "$MW_TRIXIE_ROOT.new" "$mirror" \
		>"$MW_TRIXIE/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$MW_TRIXIE/debootstrap.log"; return 1; }
	mv "$MW_TRIXIE_ROOT.new" "$MW_TRIXIE_ROOT"
	cat >"$MW_TRIXIE_ROOT/etc/apt/sources.list" <<EOS
deb $mirror trixie main
deb $mirror trixie-updates main
deb $sec trixie-security main
EOS
	# packages must not start services in the chroot
	printf '#!/bin/sh\nexit 101\n' >"$MW_TRIXIE_ROOT/usr/sbin/policy-rc.d"
	chmod 755 "$MW_TRIXIE_ROOT/usr/sbin/policy-rc.d"
	mw_trixie_packages && mw_trixie_ok
}

mw_trixie_packages() {
	echo "== installing Debian 13 packages in the chroot"
	mw_trixie_exec "export DEBIAN_FRONTEND=noninteractive &&
		apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends $(echo $MW_PACKAGES $MW_TEST_PACKAGES) \
			>/tmp/apt.log 2>&1 || { tail -n 30 /tmp/apt.log; exit 1; }" ||
		return 1
	echo "$MW_PACKAGES $MW_TEST_PACKAGES" >"$MW_TRIXIE_ROOT/.mailward-ready"
}

# Copies this source tree into the chroot's $MW_TRIXIE_TREE: files whose content
# changed are rewritten (so make sees them as new), files gone here are
# removed there; the host's generated autotools files and builds are not
# copied (the chroot keeps its own, in $MW_TRIXIE_TREE/build).
mw_trixie_sync() {
	/usr/bin/python3 - "$MW_ROOT" "$MW_TRIXIE_ROOT$MW_TRIXIE_TREE" <<'PY'
import os, re, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
SKIP = re.compile(r"^(build|build-(?!aux$).*|autom4te\.cache|configure~?|"
                  r"aclocal\.m4|Makefile\.in|mailward-config\.h\.in~?|"
                  r"\.git|__pycache__|\.pytest_cache)$")
GENERATED = ("build", "autom4te.cache", "configure", "aclocal.m4",
             "Makefile.in", "mailward-config.h.in", "m4", "build-aux")
os.makedirs(dst, exist_ok=True)
want = set()
for top, dirs, files in os.walk(src):
    rel = os.path.relpath(top, src)
    dirs[:] = [d for d in dirs if not SKIP.match(d)]
    for f in files:
        if SKIP.match(f) or f.endswith(".pyc"):
            continue
        r = os.path.normpath(os.path.join(rel, f))
        if r.startswith("m4/") and r != "m4/.keep":
            continue
        if r.startswith("build-aux/") and r != "build-aux/run-test.sh.in":
            continue
        want.add(r)
        s, d = os.path.join(src, r), os.path.join(dst, r)
        with open(s, "rb") as fh:
            data = fh.read()
        try:
            with open(d, "rb") as fh:
                same = fh.read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(d), exist_ok=True)
            with open(d, "wb") as fh:
                fh.write(data)
        shutil.copymode(s, d)
# remove what is gone from the source (not the chroot's generated files)
for top, dirs, files in os.walk(dst):
    rel = os.path.relpath(top, dst)
    if rel == ".":
        dirs[:] = [d for d in dirs if d not in GENERATED]
    for f in files:
        r = os.path.normpath(os.path.join(rel, f))
        if rel == "." and f in GENERATED:
            continue
        if "__pycache__" in r.split(os.sep) or r.endswith(".pyc"):
            continue
        if r not in want:
            os.unlink(os.path.join(dst, r))
PY
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	# run by hand: bash tests/trixie.sh CMD...
	source "$(dirname "$0")/setup.sh"
	mw_trixie_prepare
	if [ $# -eq 0 ]; then
		set -- bash
	fi
	cmd="cd $MW_TRIXIE_TREE &&"
	for a in "$@"; do
		cmd="$cmd $(printf '%q' "$a")"
	done
	(
		flock 9
		mw_trixie_sync
		mw_trixie_exec "$cmd"
	) 9>"$MW_TRIXIE/tree-$(basename "$MW_TRIXIE_TREE").lock"
fi
