"""PowerShell's own client engine against winrmd and real `pwsh -s` runspaces.

The client is tests/pwsh/client (a WS-Man transport for pwsh's remoting
engine, built by tests/pwsh/build.sh).  Each test writes a PowerShell script,
runs it in a real pwsh process (as root, the client side) and checks what the
remote runspace (real pwsh, started by winrmd as the test user) sent back.
Nothing is mocked: a missing pwsh or client build fails loudly.

Run: tests/pwsh/build.sh && /usr/bin/python3 -m pytest tests/pwsh -v
"""
import json
import os
import subprocess
import tempfile
import time

import pytest

from daemon_util import Daemon, stop_and_check
from psrp_util import session_conf, write_sessions

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.join(HERE, "client", "WinrmdClient.psm1")
CLIENT_DLL = os.path.join(HERE, "client", "bin", "WinrmdClient.dll")
PWSH_DIR = os.environ.get(
    "PWSH_DLL_DIR",
    "/opt/pwsh-7.6.10/.store/powershell/7.6.10/powershell/7.6.10/tools/net10.0/any/unix")
PWSH_DLL = os.path.join(PWSH_DIR, "pwsh.dll")
DOTNET = "/usr/bin/dotnet"
# The runspace: real pwsh in server mode, started by the monitor as the user.
# dotnet is found by the monitor in /usr/bin; the pwsh tool's shim would need PATH.
RUNSPACE_COMMAND = "dotnet %s -NoLogo -NoProfile -s" % PWSH_DLL
CONFIG = "Microsoft.PowerShell"
SCRIPT_TIMEOUT = 240


@pytest.fixture(scope="module", autouse=True)
def prerequisites():
    # Fail, never skip: this suite exists to run real pwsh.
    assert os.access(DOTNET, os.X_OK), "%s missing: install the .NET SDK" % DOTNET
    assert os.path.exists(PWSH_DLL), "pwsh missing at %s (set PWSH_DLL_DIR)" % PWSH_DLL
    assert os.path.exists(CLIENT_DLL), "client not built: run tests/pwsh/build.sh"


@pytest.fixture(scope="module")
def pd(tmp_path_factory, tls_cert, users):
    d = Daemon(tmp_path_factory.mktemp("winrmd-pwsh"), *tls_cert)
    write_sessions(d.conf_path, {CONFIG: session_conf(CONFIG, command=RUNSPACE_COMMAND)})
    d.start()
    yield d
    stop_and_check(d)


def pwsh(d, user, body, timeout=SCRIPT_TIMEOUT, session=True):
    """Run `body` in a client pwsh with $s = a winrmd PSSession (or $uri/$cred
    only); its output (a list, through JSON) is returned."""
    head = """
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Import-Module '%s'
$uri = '%s'
$cred = [pscredential]::new('%s', (ConvertTo-SecureString '%s' -AsPlainText -Force))
""" % (MODULE, d.https_url, user.name, user.password)
    if session:
        head += "$s = New-WinrmdSession -Uri $uri -Credential $cred -ConfigurationName '%s'\n" % CONFIG
    tail = "\nif ($s) { Remove-PSSession $s }\n"
    fd, result = tempfile.mkstemp(prefix="pwsh-result-", suffix=".json")
    os.close(fd)
    fd, script_path = tempfile.mkstemp(prefix="pwsh-test-", suffix=".ps1")
    os.close(fd)
    # Strip what remoting adds to each object (PSComputerName, RunspaceId) so
    # tests compare plain values; JSON goes to a file, away from host noise.
    script = head + "$__r = & {\n" + body + "\n}\n" + tail + """
$__r = foreach ($o in @($__r)) {
    if ($null -ne $o -and $o.psobject.BaseObject -is [ValueType] -or $o -is [string]) { $o.psobject.BaseObject } else { $o }
}
ConvertTo-Json -Depth 6 -Compress -InputObject @($__r) | Set-Content -LiteralPath '%s' -Encoding utf8NoBOM
""" % result
    t0 = time.monotonic()
    env = dict(os.environ, TERM="dumb", NO_COLOR="1", POWERSHELL_TELEMETRY_OPTOUT="1",
               DOTNET_CLI_TELEMETRY_OPTOUT="1")
    with open(script_path, "w") as f:
        f.write(script)
    try:
        p = subprocess.run([DOTNET, PWSH_DLL, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", script_path],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=env)
        took = time.monotonic() - t0
        with open(result) as f:
            out = f.read().strip()
    finally:
        os.unlink(result)
        os.unlink(script_path)
    assert p.returncode == 0 and out, (
        "client pwsh failed (rc %s, %.1fs)\nstdout:\n%s\nstderr:\n%s\nserver log tail:\n%s"
        % (p.returncode, took, p.stdout[-4000:], p.stderr[-4000:], d.log()[-3000:]))
    r = json.loads(out)
    return r if isinstance(r, list) else [r]


def test_invoke_command_round_trip(pd, users):
    assert pwsh(pd, users.admin, "Invoke-Command -Session $s { 1+1 }") == [2]


def test_runs_as_authenticated_user(pd, users):
    r = pwsh(pd, users.admin, "Invoke-Command -Session $s { [Environment]::UserName; $PSVersionTable.PSVersion.ToString() }")
    assert r[0] == users.admin.name
    assert r[1].startswith("7.")
