"""Shared by the tests of tests/pwsh: where real pwsh and the client live, and
pwsh(), which runs a script in a client pwsh with a winrmd PSSession."""
import json
import os
import subprocess
import tempfile
import time

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
RUNSPACE_COMMAND = "dotnet %s -NoLogo -NoProfile -sshs" % PWSH_DLL
CONFIG = "Microsoft.PowerShell"
SCRIPT_TIMEOUT = 120  # every test takes < 15 s; a transport hang must not cost more


def pwsh(d, user, body, timeout=SCRIPT_TIMEOUT, session=True):
    """Run `body` in a client pwsh with $s = a winrmd PSSession (or $uri/$cred
    only); its output (a list, through JSON) is returned."""
    head = """
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
# A failure shows the .NET stack too: most bugs here are in the transport.
trap { [Console]::Error.WriteLine($_.Exception.ToString()); [Console]::Error.WriteLine($_.ScriptStackTrace); exit 1 }
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
