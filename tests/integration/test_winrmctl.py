"""winrmctl against real files and a running daemon.

config get/set and listener add/remove edit the file and validate with the
daemon's parser; session-config manages sessions.d/ (applied on SIGHUP);
shells list/kill go through the monitor's root-only control socket.
"""
import os
import signal
import subprocess
import time

import pytest
try:
    from pypsrp.powershell import PowerShell, RunspacePool
    from pypsrp.wsman import WSMan
    from pypsrp.exceptions import WSManFaultError
except ImportError:  # only tests marked `pypi` use them; they run where PyPI is reachable
    PowerShell = RunspacePool = WSMan = WSManFaultError = None
import winrm

from daemon_util import Daemon, stop_and_check
from psrp_util import RUNSPACE_COMMAND
from wsman_util import REPO, WINRMD, user_pids, wait_for

WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(REPO, "build", "winrmctl")


def ctl(conf, *args, check=True):
    r = subprocess.run([WINRMCTL, "-f", conf, *args], capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def test_config_get_set_validates(tmp_path, tls_cert):
    d = Daemon(tmp_path, *tls_cert)
    before = open(d.conf_path).read()
    assert ctl(d.conf_path, "config", "get", "Service", "MaxEnvelopeSizekb").stdout.strip() == "500"
    ctl(d.conf_path, "config", "set", "Service", "MaxEnvelopeSizekb", "1024")
    assert ctl(d.conf_path, "config", "get", "Service", "MaxEnvelopeSizekb").stdout.strip() == "1024"
    r = ctl(d.conf_path, "config", "set", "Service", "MaxEnvelopeSizekb", "lots", check=False)
    assert r.returncode == 1 and "MaxEnvelopeSizekb" in r.stderr
    r = ctl(d.conf_path, "config", "set", "Service", "NoSuchKey", "1", check=False)
    assert r.returncode == 1
    assert "MaxEnvelopeSizekb = 1024" in open(d.conf_path).read()
    assert open(d.conf_path).read() != before
    assert subprocess.run([WINRMD, "-t", "-f", d.conf_path], capture_output=True).returncode == 0


def test_listener_add_list_remove(tmp_path, tls_cert):
    d = Daemon(tmp_path, *tls_cert)
    ctl(d.conf_path, "listener", "add", "extra", "--transport", "HTTP", "--address", "127.0.0.2",
        "--port", "15999", "--disabled")
    out = ctl(d.conf_path, "listener", "list").stdout
    assert "extra" in out and "127.0.0.2" in out and "disabled" in out
    r = ctl(d.conf_path, "listener", "add", "extra", "--transport", "HTTP", check=False)
    assert r.returncode == 1
    r = ctl(d.conf_path, "listener", "add", "clash", "--transport", "HTTP", "--address", "127.0.0.1",
            "--port", str(d.http_port), check=False)
    assert r.returncode == 1 and "overlaps" in r.stderr
    ctl(d.conf_path, "listener", "remove", "extra")
    assert "extra" not in ctl(d.conf_path, "listener", "list").stdout
    assert ctl(d.conf_path, "listener", "remove", "extra", check=False).returncode == 1


def test_options_cannot_smuggle_keys(tmp_path, tls_cert):
    d = Daemon(tmp_path, *tls_cert)
    before = open(d.conf_path).read()
    # A newline in a value would add a key of the caller's choosing.
    r = ctl(d.conf_path, "listener", "add", "x", "--transport", "HTTP", "--address",
            "127.0.0.3\nEnabled = false", check=False)
    assert r.returncode == 1 and "newlines" in r.stderr
    r = ctl(d.conf_path, "listener", "add", "x", "--transport", "HTTP", "--colour", "red", check=False)
    assert r.returncode == 2 and "unknown option --colour" in r.stderr
    r = ctl(d.conf_path, "session-config", "register", "Smuggle", "--command", "pwsh # -s", check=False)
    assert r.returncode == 1 and "newlines or #" in r.stderr
    assert open(d.conf_path).read() == before
    assert not os.path.exists(os.path.join(os.path.dirname(d.conf_path), "sessions.d", "Smuggle.conf"))


@pytest.mark.pypi
def test_session_config_lifecycle_applies_on_reload(tmp_path, tls_cert, users):
    d = Daemon(tmp_path, *tls_cert)
    d.start()
    try:
        ctl(d.conf_path, "session-config", "register", "Ctl.Test", "--command", RUNSPACE_COMMAND,
            "--allowed-groups", "winrm-users")
        assert "Ctl.Test" in ctl(d.conf_path, "session-config", "list").stdout
        assert "AllowedGroups = winrm-users" in ctl(d.conf_path, "session-config", "show", "Ctl.Test").stdout
        r = ctl(d.conf_path, "session-config", "register", "Bad.One", "--run-as", "no such", check=False)
        assert r.returncode == 1 and not os.path.exists(
            os.path.join(os.path.dirname(d.conf_path), "sessions.d", "Bad.One.conf"))
        os.kill(d.pid, signal.SIGHUP)
        assert wait_for(lambda: d.log().count("configuration reloaded") >= 1, 15)
        time.sleep(0.5)

        def run():
            w = WSMan("127.0.0.1", port=d.https_port, username=users.admin.name,
                      password=users.admin.password, ssl=True, cert_validation=False, auth="basic",
                      encryption="never")
            with RunspacePool(w, configuration_name="Ctl.Test") as pool:
                ps = PowerShell(pool)
                ps.add_cmdlet("Write-Output").add_argument("via winrmctl")
                return ps.invoke()

        assert run() == ["via winrmctl"]
        ctl(d.conf_path, "session-config", "disable", "Ctl.Test")
        os.kill(d.pid, signal.SIGHUP)
        assert wait_for(lambda: d.log().count("configuration reloaded") >= 2, 15)
        time.sleep(0.5)
        with pytest.raises(WSManFaultError) as e:
            run()
        assert e.value.code == 2150858811
        ctl(d.conf_path, "session-config", "unregister", "Ctl.Test")
        assert "Ctl.Test" not in ctl(d.conf_path, "session-config", "list").stdout
    finally:
        stop_and_check(d)


def test_shells_list_and_kill(tmp_path, tls_cert, users):
    d = Daemon(tmp_path, *tls_cert, service={"ControlSocket": str(tmp_path / "control")})
    d.start()
    try:
        p = winrm.Protocol(d.https_url, username=users.admin.name, password=users.admin.password,
                           transport="basic", server_cert_validation="ignore")
        sid = p.open_shell()
        p.run_command(sid, "sleep", ["300"])
        assert wait_for(lambda: user_pids(users.admin.name, "sleep 300"), 10)
        out = ctl(d.conf_path, "shells", "list").stdout
        assert sid in out and users.admin.name in out and "127.0.0.1" in out
        ctl(d.conf_path, "shells", "kill", sid)
        assert wait_for(lambda: not user_pids(users.admin.name, "sleep 300"), 10)
        assert sid not in ctl(d.conf_path, "shells", "list").stdout
        assert ctl(d.conf_path, "shells", "kill", sid, check=False).returncode == 1
        with pytest.raises(winrm.exceptions.WinRMError):
            p.run_command(sid, "true")
        # The socket is root's alone.
        st = os.stat(str(tmp_path / "control"))
        assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o600
    finally:
        stop_and_check(d)
