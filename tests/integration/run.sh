#!/bin/sh
# Run the integration suite against the daemon in $1 (build directory).
# pytest's own summary line is the last thing printed.
set -eu
build=${1:-build}
venv=${VENV:-build/venv}
export WINRMD_BIN="$(cd "$(dirname "$build/winrmd")" && pwd)/winrmd"
exec "$venv/bin/pytest" -q -p no:cacheprovider tests/runspace tests/integration tests/hostile
