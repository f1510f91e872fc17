#!/bin/sh
# Run one pytest suite against the daemon in BUILD:  run.sh BUILD SUITE
#   core  Debian's python3 and clients: tests/integration, tests/hostile
#   pypi  build/venv (PyPI clients): the tests marked pypi, and tests/runspace
#   pwsh  Debian's python3 against real pwsh runspaces: tests/pwsh
# Tests of the other suites are deselected, never skipped (tests/conftest.py).
# pytest's own summary line is the last thing printed; -rsxX lists every skip
# and xfail with its reason.
set -eu
build=${1:-build}
suite=${2:-core}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WINRMD_BIN="$(cd "$(dirname "$build/winrmd")" && pwd)/winrmd"
export WINRMD_BIN
export WINRMD_SUITE="$suite"
junit="$repo/$build/junit-$suite.xml"
set -- -q -rsxX -p no:cacheprovider --junitxml="$junit"
case "$suite" in
core)
	# pywinrm 0.3 and ntlm-auth compute MD4 through OpenSSL 3, which keeps it
	# in the legacy provider: load it for the test clients only (the daemon
	# is started without OPENSSL_CONF, daemon_util.daemon_env).
	export OPENSSL_CONF="$here/openssl-legacy.cnf"
	exec /usr/bin/python3 -m pytest "$@" tests/integration tests/hostile ;;
pypi)
	exec "${VENV:-$repo/build/venv}/bin/pytest" "$@" -m pypi tests/runspace tests/pypi tests/integration tests/hostile ;;
pwsh)
	# PowerShell's own client engine over our WS-Man transport (tests/pwsh/client).
	sh tests/pwsh/build.sh
	exec /usr/bin/python3 -m pytest "$@" tests/pwsh ;;
*)
	echo "run.sh: unknown suite $suite (core, pypi, pwsh)" >&2
	exit 2 ;;
esac
