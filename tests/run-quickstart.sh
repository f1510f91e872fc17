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

cat <<MSG

  winrmd is starting on the embedded default configuration:
    HTTPS  https://127.0.0.1:5986/wsman  (self-signed certificate, Basic authentication)
    HTTP   http://127.0.0.1:5985/wsman   (Basic is refused here, as on Windows, unless AllowUnencrypted = true)

  Account: winrmdemo (group winrm-users), password: $pw
  (any local account in the groups sudo, wheel or winrm-users, or root, works the same way)

  Connect from another terminal with pywinrm (Debian's python3-winrm):

    env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE /usr/bin/python3 -c 'import winrm; s = winrm.Session("https://127.0.0.1:5986/wsman", auth=("winrmdemo", "$pw"), transport="basic", server_cert_validation="ignore"); r = s.run_cmd("uname", ["-a"]); print(r.status_code, r.std_out.decode())'

  or with pypsrp (build/venv after \`make check\`):

    build/venv/bin/python -c 'from pypsrp.client import Client; c = Client("127.0.0.1", username="winrmdemo", password="$pw", ssl=True, cert_validation=False, auth="basic"); print(c.execute_cmd("id"))'

  Stop with Ctrl-C.

MSG
exec "$bin" -d -E
