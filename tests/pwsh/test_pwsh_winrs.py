"""The pwsh suite, WinRS side: real pwsh behind the WinRS shell.

Runs where NuGet is reachable: tests/deps.sh installs the .NET global tool
PowerShell 7.6.10 into /opt/pwsh-7.6.10 and links /usr/local/bin/pwsh to it,
which is where the daemon looks (conf_pwsh_path, never a PATH).  The clients
are Debian's: pywinrm 0.3 (`run_ps`, which sends `powershell -encodedcommand`
in a cmd shell, as Ansible's winrm connection does) and raw SOAP.

Run as root:  make check (or tests/integration/run.sh build pwsh)
"""
import base64
import os
import subprocess

import winrm

from wsman_util import REPO

PWSH_VERSION = "7.6.10"
PWSH_LINK = "/usr/local/bin/pwsh"


def pwsh_installed():
    """The suite runs only where deps.sh installed pwsh: a missing one is a
    failed installation, never a reason to skip."""
    assert os.access(PWSH_LINK, os.X_OK), "%s is missing: tests/deps.sh check installs it" % PWSH_LINK
    return PWSH_LINK


def session(d, user):
    return winrm.Session(d.https_url, auth=(user.name, user.password), transport="basic",
                         server_cert_validation="ignore")


def test_installed_pwsh_is_the_pinned_version():
    out = subprocess.run([pwsh_installed(), "-NoLogo", "-NoProfile", "-c", "$PSVersionTable.PSVersion"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # The table PowerShell prints: a header row, a rule, then "7 6 10".
    assert out.stdout.strip().splitlines()[-1].split() == PWSH_VERSION.split("."), out.stdout


def test_run_ps_runs_real_pwsh_as_the_user(daemon, users):
    pwsh_installed()
    r = session(daemon, users.admin).run_ps(
        "$PSVersionTable.PSVersion.ToString(); [Environment]::UserName; $PSVersionTable.PSEdition")
    assert r.status_code == 0, r.std_err
    assert r.std_out.decode().split() == [PWSH_VERSION, users.admin.name, "Core"], r.std_out


def encoded(script):
    return base64.b64encode(script.encode("utf-16-le")).decode()


def run_encoded(d, user, script, cwd=None):
    """`powershell -NoProfile -EncodedCommand <UTF-16LE base64>` in a cmd
    shell: the command line Windows tools (and pywinrm's run_ps) send."""
    p = session(d, user).protocol
    sid = p.open_shell(working_directory=cwd) if cwd else p.open_shell()
    try:
        cid = p.run_command(sid, "powershell -NoProfile -NonInteractive -EncodedCommand %s" % encoded(script))
        out, err, code = p.get_command_output(sid, cid)
        p.cleanup_command(sid, cid)
    finally:
        p.close_shell(sid)
    return out, err, code


def test_error_stream_and_exit_code(daemon, users):
    pwsh_installed()
    out, err, code = run_encoded(daemon, users.admin,
                                 "Write-Output before; [Console]::Error.WriteLine('to-stderr'); exit 7")
    assert (out.split(), code) == ([b"before"], 7), err
    assert b"to-stderr" in err


def test_encoded_command_line_in_cmd_shell(daemon, users):
    """Arguments, working directory and UTF-8 output come through intact."""
    pwsh_installed()
    out, err, code = run_encoded(daemon, users.admin,
                                 "'{0}|{1}' -f ($args.Count), (Get-Location).Path; [char]0x263A", cwd="/tmp")
    assert code == 0, err
    assert out.decode("utf-8").split() == ["0|/tmp", "\u263a"], out


def test_embedded_default_serves_powershell_configurations():
    """With pwsh installed, the embedded default (what `make run` serves) has
    Microsoft.PowerShell and PowerShell.7 running it, as Enable-PSRemoting
    registers them on Windows."""
    pwsh_installed()
    daemon_bin = os.environ.get("WINRMD_BIN") or os.path.join(REPO, "build", "winrmd")
    r = subprocess.run([daemon_bin, "-T", "-E"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for name in ("Microsoft.PowerShell", "PowerShell.7"):
        section = r.stdout.split("[SessionConfiguration %s]" % name)
        assert len(section) == 2, r.stdout
        assert "Command = %s -NoLogo -NoProfile -sshs" % PWSH_LINK in section[1].split("\n[")[0]
