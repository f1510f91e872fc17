"""The command lines of winrmd and winrmctl: what a newcomer types first."""
import os
import secrets
import socket
import subprocess

import pytest

from daemon_util import Daemon, stop_and_check
from wsman_util import WINRMD

# winrmctl from the same build as the daemon under test.
WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(os.path.dirname(WINRMD), "winrmctl")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.parametrize("prog", [WINRMD, WINRMCTL], ids=["winrmd", "winrmctl"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_to_stdout(prog, flag):
    r = run(prog, flag)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("usage: "), r.stdout
    assert "--help" in r.stdout and "-h" in r.stdout
    assert "invalid" not in r.stderr and "unrecognized" not in r.stderr, r.stderr


@pytest.mark.parametrize("prog", [WINRMD, WINRMCTL], ids=["winrmd", "winrmctl"])
def test_unknown_option_is_still_refused(prog):
    r = run(prog, "--no-such-option")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr and "usage: " in r.stderr and not r.stdout


def test_man_pages_list_help():
    man = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "man")
    for page in ("winrmd.8", "winrmctl.8"):
        with open(os.path.join(man, page)) as f:
            text = f.read()
        assert ".It Fl h , Fl \\-help" in text, page


# --------------------------------------------------------------------------- control socket

def control_path():
    # Short and under /run: sun_path holds 108 bytes, pytest's tmp_path can be longer.
    return "/run/winrmd/test-cli-%s.control" % secrets.token_hex(4)


def shells_list(conf):
    return run(WINRMCTL, "-f", conf, "shells", "list")


def test_second_daemon_on_the_same_control_socket_refuses_to_start(tmp_path, tls_cert):
    ctl = control_path()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Daemon(tmp_path / "a", *tls_cert, service={"ControlSocket": ctl}).start()
    try:
        assert shells_list(first.conf_path).returncode == 0
        # Another configuration (other ports) that names the same control socket.
        second = Daemon(tmp_path / "b", *tls_cert, service={"ControlSocket": ctl})
        r = run(WINRMD, "-d", "-f", second.conf_path, stdin=subprocess.DEVNULL)
        assert r.returncode != 0, r.stderr
        assert ctl in r.stderr and "another winrmd" in r.stderr, r.stderr
        # It stopped before opening its listeners.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", second.https_port), timeout=2).close()
        # The first still has its socket, and answers on it.
        out = shells_list(first.conf_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("SHELLID"), out.stdout
        assert first.proc.poll() is None
    finally:
        stop_and_check(first)
    assert not os.path.exists(ctl)


def test_stale_control_socket_is_replaced(tmp_path, tls_cert):
    """A socket file left by a daemon that died (nobody listens) is no reason to refuse."""
    ctl = control_path()
    os.makedirs(os.path.dirname(ctl), exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(ctl)
    stale.close()
    d = Daemon(tmp_path, *tls_cert, service={"ControlSocket": ctl})
    try:
        d.start()
        out = shells_list(d.conf_path)
        assert out.returncode == 0, out.stderr
    finally:
        stop_and_check(d)
        if os.path.exists(ctl):
            os.unlink(ctl)


# --------------------------------------------------------------------------- no configuration file

def test_session_config_list_and_show_without_a_file(tmp_path):
    """Like listener list, session-config list/show fall back to the embedded
    default when the file is missing, with the sessions.d/ beside it."""
    conf = str(tmp_path / "winrmd.conf")
    # Built in where pwsh is installed (conf_pwsh_path), as the embedded default serves them.
    builtin = []
    if any(os.access(p, os.X_OK) for p in
           ("/usr/bin/pwsh", "/usr/local/bin/pwsh", "/opt/microsoft/powershell/7/pwsh", "/snap/bin/pwsh")):
        builtin = ["Microsoft.PowerShell", "PowerShell.7"]
    r = run(WINRMCTL, "-f", conf, "session-config", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[::3] == builtin, r.stdout   # no sessions.d/
    assert run(WINRMCTL, "-f", conf, "listener", "list").returncode == 0
    (tmp_path / "sessions.d").mkdir()
    (tmp_path / "sessions.d" / "Cli.Fallback.conf").write_text(
        "[SessionConfiguration]\nName = Cli.Fallback\nCommand = /bin/cat\nEnabled = false\n")
    r = run(WINRMCTL, "-f", conf, "session-config", "list")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["Cli.Fallback", "disabled",
                                    "http://schemas.microsoft.com/powershell/Cli.Fallback"], r.stdout
    assert r.stdout.split()[3::3] == builtin, r.stdout
    r = run(WINRMCTL, "-f", conf, "session-config", "show", "Cli.Fallback")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[SessionConfiguration Cli.Fallback]") and "Command = /bin/cat" in r.stdout
    r = run(WINRMCTL, "-f", conf, "session-config", "show", "No.Such")
    assert r.returncode == 1 and "no session configuration No.Such" in r.stderr
    assert not os.path.exists(conf)   # looking does not create the file
