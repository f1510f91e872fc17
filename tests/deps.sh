#!/bin/sh
# Install what winrmd needs on a Debian 12 machine, as root.
#   deps.sh build   - compiler and libraries (for `make`, `make run`)
#   deps.sh check   - plus everything the test suites drive, and build/suites:
#                     which suites this machine can run, and why not the others
# Only missing packages are installed; a second run does nothing new.
#
# The suites (README.md, "What make check runs"):
#   core  every machine; all its clients come from Debian
#   pypi  where PyPI is reachable: pypsrp, psrpcore, pyspnego, pywinrm latest
#         into build/venv, and the Go client from the module proxy
#   pwsh  where NuGet is reachable: real pwsh, the .NET global tool PowerShell
#         7.6.10 (7.7 does not run on .NET 10), in $PWSH_DIR
set -eu
mode=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

build_pkgs="gcc clang make pkg-config libmicrohttpd-dev libxml2-dev libssl-dev
 libsystemd-dev libpam0g-dev libkrb5-dev libgnutls28-dev openssl passwd login python3
 python3-winrm"
# core's clients: pywinrm 0.3 with requests-ntlm/ntlm-auth and requests-kerberos,
# python-gssapi, Go masterzen/winrm (GOPATH mode), Debian's pytest.
check_pkgs="python3-venv python3-pip python3-pytest python3-requests python3-requests-ntlm
 python3-ntlm-auth python3-requests-kerberos python3-kerberos python3-gssapi
 golang-go golang-github-masterzen-winrm-dev winrmcp krb5-kdc krb5-admin-server krb5-user
 libkrb5-dev libgssapi-krb5-2 nftables iptables iproute2 mandoc procps psmisc util-linux
 libclang-rt-14-dev llvm-14 strace curl systemd shellcheck debhelper dpkg-dev fakeroot
 tmux"

want=$build_pkgs
[ "$mode" = check ] && want="$build_pkgs $check_pkgs"

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
if [ ! -f /etc/pam.d/winrmd ] && [ "$(id -u)" = 0 ]; then
	install -m 0644 "$repo/packaging/pam/winrmd.debian" /etc/pam.d/winrmd
fi

[ "$mode" = check ] || exit 0

# ------------------------------------------------------------------ optional suites
# Each registry is probed with its own client as configured on this machine
# (no host is named here): a machine either answers at once or refuses at once.
suites="$repo/build/suites"
mkdir -p "$repo/build"
: > "$suites.new"
say() { printf '%s\n' "$*" >> "$suites.new"; }
say "core run clients from Debian"

pypi_reachable() {
	/usr/bin/python3 -m pip index versions --retries 0 --timeout 20 pip >/dev/null 2>&1
}
if pypi_reachable; then
	venv=${VENV:-$repo/build/venv}
	if [ ! -x "$venv/bin/pytest" ]; then
		# Debian's interpreter: runspace tests run the venv's python as other
		# users, and a python under /root (pyenv) is not theirs to execute.
		/usr/bin/python3 -m venv "$venv"
		"$venv/bin/pip" install -q --upgrade pip
	fi
	# Installing is part of the suite: a reachable registry that fails here
	# fails `make check` (set -e).
	"$venv/bin/pip" install -q -r "$here/integration/requirements.txt"
	say "pypi run PyPI reachable: pypsrp, psrpcore, pyspnego, pywinrm in build/venv"
else
	say "pypi not-run PyPI not reachable (pip index versions failed)"
fi

PWSH_VERSION=7.6.10
PWSH_DIR=${PWSH_DIR:-/opt/pwsh-$PWSH_VERSION}
nuget_reachable() {
	command -v dotnet >/dev/null 2>&1 || return 1
	src=$(dotnet nuget list source --format short 2>/dev/null | awk '$1 ~ /^E/ { print $2; exit }')
	[ -n "$src" ] && curl -sf -o /dev/null -m 20 "$src"
}
if [ -x "$PWSH_DIR/pwsh" ] || nuget_reachable; then
	if [ ! -x "$PWSH_DIR/pwsh" ]; then
		# A folder outside root's home, readable by every user: runspaces run
		# as the authenticated user.
		dotnet tool install PowerShell --version "$PWSH_VERSION" --tool-path "$PWSH_DIR" >/dev/null
		chmod -R a+rX "$PWSH_DIR"
	fi
	# The daemon looks for pwsh where packages put it, never in a PATH
	# (conf_pwsh_path); a link in /usr/local/bin is how an admin makes a
	# tool-path install available, and what make run and the tests rely on.
	if [ ! -e /usr/local/bin/pwsh ]; then
		ln -s "$PWSH_DIR/pwsh" /usr/local/bin/pwsh
	fi
	# shellcheck disable=SC2016 # a PowerShell expression, for pwsh to expand
	got=$("$PWSH_DIR/pwsh" -NoLogo -NoProfile -c '$PSVersionTable.PSVersion.ToString()')
	if [ "$got" != "$PWSH_VERSION" ]; then
		echo "deps.sh: $PWSH_DIR/pwsh is $got, want $PWSH_VERSION" >&2
		exit 1
	fi
	# Ansible's winrm connection runs its PowerShell modules in real pwsh:
	# Debian's ansible brings the ansible.windows collection (win_ping).
	if ! dpkg-query -W -f='${Status}' ansible 2>/dev/null | grep -q "ok installed"; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible >/dev/null
	fi
	say "pwsh run NuGet reachable: pwsh $got in $PWSH_DIR"
else
	if command -v dotnet >/dev/null 2>&1; then
		say "pwsh not-run NuGet not reachable (its configured source did not answer)"
	else
		say "pwsh not-run no .NET SDK and NuGet not reachable"
	fi
fi
mv "$suites.new" "$suites"
# The first thing make check says: which suites will run here, and why not the others.
echo "== suites on this machine (build/suites; tests/check.sh prints them again at the end)"
while read -r name state reason; do
	[ "$state" = run ] && printf '   %-5s runs      %s\n' "$name" "$reason" || printf '   %-5s not run:  %s\n' "$name" "$reason"
done < "$suites"
