#!/bin/sh
# Install what winrmd needs on a Debian 12 machine, as root.
#   deps.sh build   - compiler and libraries (for `make`, `make run`)
#   deps.sh check   - plus everything the test suite drives
# Only missing packages are installed; a second run does nothing.
set -eu
mode=${1:-build}

build_pkgs="gcc clang make pkg-config libmicrohttpd-dev libxml2-dev libssl-dev
 libsystemd-dev libpam0g-dev libkrb5-dev libgnutls28-dev openssl passwd login python3
 python3-winrm"
check_pkgs="python3-venv python3-pip winrmcp krb5-kdc krb5-admin-server krb5-user
 libkrb5-dev libgssapi-krb5-2 nftables iptables iproute2 mandoc procps psmisc util-linux
 libclang-rt-14-dev llvm-14 strace curl systemd shellcheck debhelper dpkg-dev fakeroot"

want=$build_pkgs
[ "$mode" = check ] && want="$build_pkgs $check_pkgs"
# The Go test clients need a Go toolchain; this machine kind ships one in /usr/local/go.
if [ "$mode" = check ] && ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
	want="$want golang-go"
fi

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
		exit 1
	fi
	echo "deps.sh: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# PAM service for winrmd (Debian layout), unless the admin already has one.
here=$(dirname "$0")
if [ ! -f /etc/pam.d/winrmd ] && [ "$(id -u)" = 0 ]; then
	install -m 0644 "$here/../packaging/pam/winrmd.debian" /etc/pam.d/winrmd
fi

if [ "$mode" = check ]; then
	venv=${VENV:-build/venv}
	if [ ! -x "$venv/bin/pytest" ]; then
		# Debian's interpreter: runspace tests run the venv's python as other
		# users, and a python under /root (pyenv) is not theirs to execute.
		/usr/bin/python3 -m venv "$venv"
		"$venv/bin/pip" install -q --upgrade pip
	fi
	"$venv/bin/pip" install -q -r "$here/integration/requirements.txt"
fi
