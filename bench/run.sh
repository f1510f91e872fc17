#!/bin/sh
# make bench: measure winrmd against nginx and OpenSSH on this machine (issue 7).
# Usage (as root, from the top of the tree): sh bench/run.sh [BUILD_DIR]
# Installs what it needs (wrk, nginx, OpenSSH server and client, gnuplot,
# Debian's masterzen/winrm; pypsrp in build/venv where PyPI is reachable),
# then runs bench/bench.py, which prints a markdown
# table and writes bench/results/latest.{md,json,png}.  It takes a few
# minutes; BENCH_* variables (see bench/bench.py) shorten or lengthen it.
# This is a measurement, not a test: missing a target does not fail it.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

if [ "$(id -u)" != 0 ]; then
	echo "bench: run as root (it creates users, starts winrmd and sshd)" >&2
	exit 1
fi

pkgs="wrk nginx-light openssh-server openssh-client gnuplot-nox util-linux procps openssl
 python3 python3-requests golang-go golang-github-masterzen-winrm-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "bench: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages' own services (nginx on :80, sshd on :22) from starting.
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy=1
	fi
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null || { [ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
	[ -n "$policy" ] && rm -f /usr/sbin/policy-rc.d
fi

# Debian's python3 runs the benchmark. The PSRP row needs pypsrp and the
# psrpcore stand-in from PyPI: where PyPI is reachable they go into build/venv,
# made from Debian's interpreter as the tests make it (the stand-in runs as
# the bench user, who cannot execute a python under /root).
python=/usr/bin/python3
venv=build/venv
if "$venv/bin/python" -c 'import requests, pypsrp, psrpcore' 2>/dev/null; then
	python=$venv/bin/python
elif /usr/bin/python3 -m pip index versions --retries 0 --timeout 20 pip >/dev/null 2>&1; then
	echo "bench: installing pypsrp and psrpcore into $venv"
	[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
	"$venv/bin/pip" install -q requests pypsrp psrpcore
	python=$venv/bin/python
else
	echo "bench: PyPI is not reachable: the PSRP row (pypsrp) is not measured"
fi

exec "$python" "$here/bench.py" --build "$build"
