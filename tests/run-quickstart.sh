#!/bin/sh
# `make run`: start winrmd in the foreground on the embedded default
# (HTTP 127.0.0.1:5985, HTTPS 127.0.0.1:5986) and say how to connect.
#
# A throw-away account `winrmdemo` (group winrm-users) is created with a
# random password, kept in build/run/demo-password, so the printed commands
# work as they are.  Listeners are on loopback only.
set -eu
bin=${1:-build/winrmd}
[ "$(id -u)" = 0 ] || { echo "make run: run as root (winrmd is a root daemon that drops privileges)" >&2; exit 1; }

mkdir -p build/run
chmod 700 build/run
getent group winrm-users >/dev/null || groupadd --system winrm-users
if ! id winrmdemo >/dev/null 2>&1; then
	useradd --create-home --groups winrm-users --shell /bin/bash winrmdemo
fi
if [ ! -s build/run/demo-password ]; then
	( umask 077; openssl rand -base64 18 | tr -d '/+=' > build/run/demo-password )
fi
pw=$(cat build/run/demo-password)
printf 'winrmdemo:%s\n' "$pw" | chpasswd

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

    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE /usr/bin/python3 -c 'import winrm; s = winrm.Session("https://127.0.0.1:5986/wsman", auth=("winrmdemo", "$pw"), transport="basic", server_cert_validation="ignore"); r = s.run_ps("\$PSVersionTable.PSVersion.ToString(); whoami"); print(r.status_code, r.std_out.decode())'
PW
		return
	done
}

cat <<MSG

  winrmd is starting on the embedded default configuration:
    HTTPS  https://127.0.0.1:5986/wsman  (self-signed certificate, Basic authentication)
    HTTP   http://127.0.0.1:5985/wsman   (Basic is refused here, as on Windows, unless AllowUnencrypted = true)

  Account: winrmdemo (group winrm-users), password: $pw
  (any local account in the groups sudo, wheel or winrm-users, or root, works the same way)

  Connect from another terminal with pywinrm (Debian's python3-winrm):

    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE /usr/bin/python3 -c 'import winrm; s = winrm.Session("https://127.0.0.1:5986/wsman", auth=("winrmdemo", "$pw"), transport="basic", server_cert_validation="ignore"); r = s.run_cmd("uname", ["-a"]); print(r.status_code, r.std_out.decode())'

  or with curl, the unauthenticated Identify that Test-WSMan sends:

    curl -s -H 'WSMANIDENTIFY: unauthenticated' -H 'Content-Type: application/soap+xml;charset=UTF-8' --data '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"><s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>' http://127.0.0.1:5985/wsman
$(pwsh_msg)
  Stop with Ctrl-C.

MSG
exec "$bin" -d -E
