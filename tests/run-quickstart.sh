#!/bin/sh
# `make run`: start winrmd in the foreground on the embedded default
# (HTTP 127.0.0.1:5985, HTTPS 127.0.0.1:5986) and say how to connect.
#
# A throw-away account `winrmdemo` (group winrm-users) is created with a
# random password, kept in build/run/demo-password, so the printed commands
# work as they are.  Listeners are on loopback only.
#
# `make run-clean` (this script with --clean) undoes it: the account, with
# its home and group membership, build/run/, and the TLS files, but those
# only if they did not exist before `make run` (build/run/generated-tls lists
# what winrmd was left to create).  The group winrm-users stays: other
# accounts may be in it.
#
# The tests (tests/integration/test_make_targets.py) point WINRMD_RUN_USER,
# WINRMD_RUN_DIR and WINRMD_RUN_TLS elsewhere; nobody else needs to.
set -eu
bin=${1:-build/winrmd}
user=${WINRMD_RUN_USER:-winrmdemo}
run=${WINRMD_RUN_DIR:-build/run}
# Where the embedded default's HTTPS listener has its certificate and key.
tls=${WINRMD_RUN_TLS:-/etc/winrmd/tls}
[ "$(id -u)" = 0 ] || { echo "make run: run as root (winrmd is a root daemon that drops privileges)" >&2; exit 1; }

if [ "${1:-}" = --clean ]; then
	if id "$user" >/dev/null 2>&1; then
		# userdel refuses while the account has processes (a shell left open).
		pkill -KILL -u "$user" 2>/dev/null || true
		userdel --remove "$user" 2>/dev/null || userdel "$user"
		echo "removed the account $user"
	fi
	if [ -f "$run/generated-tls" ]; then
		# Files first, then the directories winrmd made, each only if empty.
		while read -r path; do
			if [ -d "$path" ]; then
				rmdir "$path" 2>/dev/null || echo "kept $path: not empty"
			elif [ -e "$path" ]; then
				rm -f "$path" && echo "removed $path"
			fi
		done < "$run/generated-tls"
	fi
	rm -rf "$run"
	exit 0
fi

mkdir -p "$run"
chmod 700 "$run"
getent group winrm-users >/dev/null || groupadd --system winrm-users
if ! id "$user" >/dev/null 2>&1; then
	useradd --create-home --groups winrm-users --shell /bin/bash "$user"
fi
if [ ! -s "$run/demo-password" ]; then
	( umask 077; openssl rand -base64 18 | tr -d '/+=' > "$run/demo-password" )
fi
pw=$(cat "$run/demo-password")
printf '%s:%s\n' "$user" "$pw" | chpasswd
# winrmd creates a self-signed pair when neither file exists.  Remember that
# it was this run's doing (once: a later run finds them and must not forget),
# and which directories it will have to make, for run-clean.
if [ ! -e "$tls/winrmd.crt" ] && [ ! -e "$tls/winrmd.key" ] && [ ! -f "$run/generated-tls" ]; then
	{
		echo "$tls/winrmd.crt"
		echo "$tls/winrmd.key"
		[ -d "$tls" ] || echo "$tls"
		[ -d "$(dirname "$tls")" ] || dirname "$tls"
	} > "$run/generated-tls"
fi

# Where pwsh is installed (conf_pwsh_path looks in the same places), the
# embedded default also serves Microsoft.PowerShell: say how to reach it.
pwsh_msg() {
	for p in /usr/bin/pwsh /usr/local/bin/pwsh /opt/microsoft/powershell/7/pwsh /snap/bin/pwsh; do
		[ -x "$p" ] || continue
		cat <<PW
  PowerShell remoting: the configurations Microsoft.PowerShell and PowerShell.7 run
  $p as the user who logs in.  PowerShell's own client engine speaks to them
  through the test transport in tests/pwsh/client (see docs/INTEROP.md); any
  WinRS client also reaches real pwsh through a 'powershell' command line:

    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE /usr/bin/python3 -c 'import winrm; s = winrm.Session("https://127.0.0.1:5986/wsman", auth=("$user", "$pw"), transport="basic", server_cert_validation="ignore"); r = s.run_ps("\$PSVersionTable.PSVersion.ToString(); whoami"); print(r.status_code, r.std_out.decode())'
PW
		return
	done
}

cat <<MSG

  winrmd is starting on the embedded default configuration:
    HTTPS  https://127.0.0.1:5986/wsman  (self-signed certificate, Basic authentication)
    HTTP   http://127.0.0.1:5985/wsman   (Basic is refused here, as on Windows, unless AllowUnencrypted = true)

  Account: $user (group winrm-users), password: $pw
  (any local account in the groups sudo, wheel or winrm-users, or root, works the same way)

  Connect from another terminal with pywinrm (Debian's python3-winrm):

    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE /usr/bin/python3 -c 'import winrm; s = winrm.Session("https://127.0.0.1:5986/wsman", auth=("$user", "$pw"), transport="basic", server_cert_validation="ignore"); r = s.run_cmd("uname", ["-a"]); print(r.status_code, r.std_out.decode())'

  or with curl, the unauthenticated Identify that Test-WSMan sends:

    curl -s -H 'WSMANIDENTIFY: unauthenticated' -H 'Content-Type: application/soap+xml;charset=UTF-8' --data '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>' http://127.0.0.1:5985/wsman
$(pwsh_msg)
  Stop with Ctrl-C; \`make run-clean\` then removes the account and what this run created.

MSG
exec "$bin" -d -E
