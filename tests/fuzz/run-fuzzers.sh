#!/bin/sh
# Builds the libFuzzer harnesses of the mailward core (tests/fuzz/fuzz-*.c,
# listed in harnesses.txt) with clang -fsanitize=fuzzer,address,undefined
# -- directly, not through automake, so the normal gcc build is untouched
# -- and runs each for a bounded time.
#
#   tests/fuzz/run-fuzzers.sh [SECONDS_EACH] [NAME...]   default: 60 s, all
#   tests/fuzz/run-fuzzers.sh --build-only
#   tests/fuzz/run-fuzzers.sh --gen-seeds     rewrite corpus/audit-verify/
#
# Seeds and regression inputs: tests/fuzz/corpus/<name>/ (read only here);
# inputs the fuzzer finds go to $OUT/work/<name>/, crashes to
# $OUT/artifacts/<name>/ (OUT defaults to build/fuzz, or $MW_FUZZ_OUT).
# Exits non-zero if a harness crashed (or failed to build). To turn a
# crash into a regression case: minimize it
#   $OUT/fuzz-<name> -minimize_crash=1 -max_total_time=60 CRASHFILE
# fix the bug, and copy the minimized input to tests/fuzz/corpus/<name>/
# (tests/test_fuzz_regression.py replays every corpus file).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${MW_FUZZ_OUT:-$REPO/build/fuzz}
CC=${FUZZ_CC:-clang}
CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
 -fno-sanitize-recover=all -I$REPO/src/core -I$HERE"
TIMEOUT=${FUZZ_TIMEOUT:-25}	# seconds per input before it counts as a hang
RSS=${FUZZ_RSS_MB:-2048}

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "run-fuzzers: $CC not found (apt-get install -y clang)" >&2
	exit 2
fi

harnesses() {
	grep -v '^#' "$HERE/harnesses.txt" | awk 'NF { print $1 }'
}

sources_of() {
	for s in $(grep -v '^#' "$HERE/harnesses.txt" |
		   awk -v n="$1" '$1 == n { $1 = ""; print }'); do
		echo "$REPO/src/core/$s"
	done
}

build() {
	mkdir -p "$OUT"
	for name in $(harnesses); do
		echo "== build fuzz-$name"
		# shellcheck disable=SC2046,SC2086
		$CC $CFLAGS -o "$OUT/fuzz-$name" "$HERE/fuzz-$name.c" \
			$(sources_of "$name") -lcrypto
	done
}

if [ "${1:-}" = "--gen-seeds" ]; then
	mkdir -p "$OUT" "$HERE/corpus/audit-verify"
	$CC -g -O1 -I"$REPO/src/core" -I"$HERE" -o "$OUT/gen-audit-seeds" \
		"$HERE/gen-audit-seeds.c" "$REPO/src/core/mw-json.c" \
		"$REPO/src/core/mw-audit-record.c" \
		"$REPO/src/core/mw-audit-body.c" \
		$(for s in crypto keys writer recover tree; do
			echo "$REPO/src/core/mw-audit-$s.c"; done) \
		"$REPO/src/core/mw-merkle.c" "$REPO/src/core/mw-util.c" -lcrypto
	"$OUT/gen-audit-seeds" "$HERE/corpus/audit-verify"
	echo "seeds written to $HERE/corpus/audit-verify"
	exit 0
fi

build
if [ "${1:-}" = "--build-only" ]; then
	exit 0
fi

SECONDS_EACH=${1:-60}
case "$SECONDS_EACH" in
	''|*[!0-9]*) echo "usage: $0 [SECONDS_EACH] [NAME...]" >&2; exit 2 ;;
esac
[ $# -gt 0 ] && shift
NAMES=${*:-$(harnesses)}

failed=""
summary=""
for name in $NAMES; do
	if [ ! -x "$OUT/fuzz-$name" ]; then
		echo "run-fuzzers: no harness $name" >&2
		failed="$failed $name"
		continue
	fi
	work="$OUT/work/$name"
	arts="$OUT/artifacts/$name"
	mkdir -p "$work" "$arts"
	log="$OUT/fuzz-$name.log"
	echo "== fuzz-$name for ${SECONDS_EACH}s (log: $log)"
	rc=0
	# -max_total_time bounds the run; -timeout flags a hang as a crash
	"$OUT/fuzz-$name" -max_total_time="$SECONDS_EACH" \
		-timeout="$TIMEOUT" -rss_limit_mb="$RSS" -print_final_stats=1 \
		-artifact_prefix="$arts/" "$work" "$HERE/corpus/$name" \
		>"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" |
		tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
	line="fuzz-$name: ${SECONDS_EACH}s, ${execs:-?} execs, $cov, exit $rc"
	summary="$summary
$line"
	if [ "$rc" -ne 0 ]; then
		failed="$failed $name"
		echo "!! fuzz-$name crashed (exit $rc); artifacts in $arts:"
		ls -1 "$arts" || true
		grep -E 'ERROR: |SUMMARY: |property failed' "$log" | head -n 5 \
			|| true
	fi
done
echo "== summary$summary"
if [ -n "$failed" ]; then
	echo "run-fuzzers: crashes in:$failed" >&2
	exit 1
fi
echo "run-fuzzers: no crashes"
