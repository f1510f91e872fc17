#!/bin/sh
# build.sh - builds the pwsh test client (tests/pwsh/client/bin/WinrmdClient.dll)
# against the installed pwsh's System.Management.Automation.dll.  Run by
# hand or by `make check` before tests/pwsh/test_pwsh_psrp.py.
#   PWSH_DLL_DIR  folder holding pwsh.dll and System.Management.Automation.dll
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${PWSH_DLL_DIR:-/opt/pwsh-7.6.10/.store/powershell/7.6.10/powershell/7.6.10/tools/net10.0/any/unix}
[ -f "$dir/System.Management.Automation.dll" ] || { echo "build.sh: no System.Management.Automation.dll in $dir" >&2; exit 1; }
cd "$here/client"
DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 dotnet build -c Release -nologo -v q \
    -p:PwshDir="$dir" -o "$here/client/bin" WinrmdClient.csproj
# The runspace runs as the test user and the client dll is read by pwsh: world-readable.
chmod -R a+rX "$here/client/bin"
