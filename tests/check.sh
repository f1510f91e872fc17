#!/bin/sh
# `make check`, after the build and tests/deps.sh check: every step, in order,
# with the suite table first and last and one verdict line at the end.
#
#   C unit tests, the short fuzz pass, then each suite build/suites says this
#   machine can run (core always; pypi where PyPI is reachable; pwsh where
#   NuGet is), against the normal build and again against the ASan+UBSan
#   build (build-san/).
#
# A step that fails does not stop the others; the exit status is 1 if any
# failed, if core did not run, or if a test was skipped without a reason.
# Environment: WINRMD_SOAK_SECONDS (soak length, normal build), SAN=0 to leave
# out the sanitizer pass (for a quick local run; CI never sets it).
set -u
cd "$(dirname "$0")/.." || exit 1
suites=build/suites
results=build/check-results
: > "$results"
rm -f build/junit-*.xml build-san/junit-*.xml build/unit.log build-san/unit.log
start=$(date +%s)

[ -s "$suites" ] || { echo "check: $suites is missing (tests/deps.sh check makes it)" >&2; exit 1; }

table() {
	echo "== suites on this machine"
	while read -r name state reason; do
		case "$state" in
		run) printf '   %-5s runs      %s\n' "$name" "$reason" ;;
		*)   printf '   %-5s not run:  %s\n' "$name" "$reason" ;;
		esac
	done < "$suites"
}
runs() { awk -v s="$1" '$1 == s && $2 == "run" { f = 1 } END { exit !f }' "$suites"; }

# step NAME CMD...: run a step, record "NAME ok|FAILED seconds".
step() {
	name=$1; shift
	echo
	echo "== $name: $*"
	t0=$(date +%s)
	if "$@"; then verdict=ok; else verdict=FAILED; fi
	echo "$name $verdict $(( $(date +%s) - t0 ))" >> "$results"
	echo "== $name: $verdict"
}

# A pytest step also checks its JUnit file: every skip must carry a reason.
suite_step() {
	build=$1 suite=$2
	step "$suite($build)" sh tests/integration/run.sh "$build" "$suite"
	step "$suite($build)-skips" /usr/bin/python3 tests/junit_report.py "$build/junit-$suite.xml"
}

table
runs core || { echo "check: the core suite must run on every machine" >&2; exit 1; }

step unit sh -c "build/unit > build/unit.log 2>&1; rc=\$?; tail -1 build/unit.log; exit \$rc"
step fuzz-short make --no-print-directory fuzz-short
for s in core pypi pwsh; do
	runs "$s" && suite_step build "$s"
done
if [ "${SAN:-1}" != 0 ]; then
	step san-build make --no-print-directory SANITIZE=1 all
	step unit-san sh -c "build-san/unit > build-san/unit.log 2>&1; rc=\$?; tail -1 build-san/unit.log; exit \$rc"
	export ASAN_OPTIONS=detect_leaks=0 WINRMD_SOAK_SECONDS=40
	for s in core pypi pwsh; do
		runs "$s" && suite_step build-san "$s"
	done
fi

echo
table
echo "== steps"
failed=0
while read -r name verdict secs; do
	printf '   %-24s %-7s %5ss\n' "$name" "$verdict" "$secs"
	[ "$verdict" = ok ] || failed=$((failed + 1))
done < "$results"
echo "   wall time: $(( $(date +%s) - start ))s"
# Totals over every test that ran (C unit tests and every pytest case).
set -- build/unit.log build/junit-*.xml
[ "${SAN:-1}" != 0 ] && set -- "$@" build-san/unit.log build-san/junit-*.xml
/usr/bin/python3 tests/junit_report.py --total "$@"
[ "$failed" = 0 ] && exit 0
echo "check: $failed step(s) failed" >&2
exit 1
