#!/bin/sh
# tests/hostile/seqfuzz-coverage.sh [SECONDS] - line coverage of the shell and PSRP
# endpoints (endpoints/shell.c, park.c, winrs.c, psrp.c, psrp_runspace.c) reached by the operation-sequence fuzzer (seqfuzz.py).
#
# Builds the daemon with gcc --coverage into build-cov/ (-O0), makes the object
# directories writable for the worker (it runs as user winrmd and writes its
# .gcda files next to the objects), replays the corpus and runs new seeds for
# SECONDS (default 120), then prints gcov's line coverage of both files.
# The two known crashers are avoided unless WINRMD_SEQFUZZ_AVOID is set (a crashed
# worker writes no .gcda).
# Run as root from the repository root (`make fuzz-seq-cov`).
set -eu
secs=${1:-${WINRMD_SEQFUZZ_SECONDS:-120}}
repo=$(pwd)
CFLAGS="-O0 -g --coverage" LDFLAGS="--coverage" make --no-print-directory BUILD=build-cov build-cov/winrmd >/dev/null
find build-cov -name '*.gcda' -delete
# the worker (user winrmd) and the monitor both write .gcda files
chmod -R a+rwX build-cov
WINRMD_SEQFUZZ_AVOID=${WINRMD_SEQFUZZ_AVOID-get-unknown-shell,race-pending-spawn} \
	WINRMD_BIN="$repo/build-cov/winrmd" WINRMD_SEQFUZZ_SECONDS="$secs" WINRMD_SUITE=core \
	/usr/bin/python3 -m pytest -q -s -p no:cacheprovider tests/hostile/test_seqfuzz.py || status=$?
cd build-cov/endpoints
for f in shell park winrs psrp psrp_runspace; do
	gcov -n -o . "$repo/endpoints/$f.c" 2>/dev/null | grep -A1 "^File '.*endpoints/$f.c'" | \
		sed -n "s#^Lines executed:#seqfuzz coverage: endpoints/$f.c lines executed: #p"
done
exit ${status:-0}
