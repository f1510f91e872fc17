"""PowerShell remoting (PSRP over WS-Man) integration tests, with pypsrp.

The daemon serves session configurations from sessions.d/ next to winrmd.conf;
each runs tests/runspace/psrp_runspace.py (a psrpcore-based stand-in for
`pwsh -s`, see its docstring for the little command language) as the runspace
process.  Configurations written here:

  Test.Runspace    AllowedGroups = winrm-users  (the contract's example)
  Test.RunAs       same, RunAsUser = a dedicated account
  Test.Restricted  AllowedGroups = a group nobody here is in
  Test.Disabled    Enabled = false

Clients use Basic auth over HTTPS (pypsrp WSMan auth="basic", ssl=True).

Run as root:  build/venv/bin/pytest -q tests/integration/test_psrp.py
"""
import os
import pwd
import secrets
import subprocess
import time
from types import SimpleNamespace

import pytest
import requests
from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError
from pypsrp.host import PSHost, PSHostUserInterface
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.complex_objects import PSInvocationState, RunspacePoolState
from pypsrp.wsman import WSMan

from daemon_util import Daemon, stop_and_check
from psrp_util import (ERROR_ACCESS_DENIED, ERROR_WSMAN_INVALID_RESOURCE_URI, RESOURCE_PREFIX, RUNSPACE,
                       VENV_PYTHON, Timeout, call_with_timeout, session_conf, write_sessions)
from wsman_util import pid_alive, wait_for

# pypsrp/psrpcore and the stand-in runspace come from PyPI: the pypi suite.
pytestmark = pytest.mark.pypi

CONFIG = "Test.Runspace"
RESOURCE_URI = RESOURCE_PREFIX + CONFIG
STEP = 60      # generous bound for any single client operation
PROMPT = 10    # "promptly"


# =========================================================================== fixtures

@pytest.fixture(scope="module")
def psrp_accounts(users):
    """A RunAs account and a group that no test user is in."""
    tag = secrets.token_hex(3)
    runas = "wrpsras%s" % tag
    group = "wrpsgrp%s" % tag
    subprocess.run(["groupadd", group], check=True, capture_output=True)
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", runas], check=True, capture_output=True)
    try:
        yield SimpleNamespace(runas=runas, runas_uid=pwd.getpwnam(runas).pw_uid, group=group)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", runas], capture_output=True)
        subprocess.run(["userdel", "-r", runas], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)


@pytest.fixture(scope="module")
def pd(tmp_path_factory, tls_cert, psrp_accounts):
    """The daemon for these tests, with sessions.d written before it starts."""
    assert os.access(VENV_PYTHON, os.X_OK), "no venv python at %s" % VENV_PYTHON
    assert os.path.exists(RUNSPACE)
    d = Daemon(tmp_path_factory.mktemp("winrmd-psrp"), *tls_cert)
    write_sessions(d.conf_path, {
        CONFIG: session_conf(CONFIG),
        "Test.RunAs": session_conf("Test.RunAs", run_as_user=psrp_accounts.runas),
        "Test.Restricted": session_conf("Test.Restricted", allowed_groups=psrp_accounts.group),
        "Test.Disabled": session_conf("Test.Disabled", enabled=False),
        "Test.Small": session_conf("Test.Small", MaxReceivedObjectSizeMB=1,
                                   MaxReceivedDataSizePerCommandMB=2),
    })
    d.start()
    yield d
    stop_and_check(d)


def wsman(d, user, **kw):
    kw.setdefault("operation_timeout", 20)
    kw.setdefault("read_timeout", 30)
    return WSMan("127.0.0.1", port=d.https_port, username=user.name, password=user.password,
                 ssl=True, auth="basic", cert_validation=False, **kw)


class UI(PSHostUserInterface):
    def __init__(self, answers=()):
        super().__init__()
        self.answers = list(answers)
        self.read_calls = 0

    def ReadLine(self, runspace, pipeline):
        self.read_calls += 1
        return self.answers.pop(0) if self.answers else ""


def make_host(answers=()):
    return PSHost(None, None, False, "winrmd-test", None, UI(answers), "1.0")


@pytest.fixture
def pool(pd, users):
    """An opened pool on Test.Runspace as the admin user; closed afterwards."""
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG, host=make_host(), max_runspaces=4)
    call_with_timeout(p.open, STEP, "RunspacePool.open")
    yield p
    try:
        call_with_timeout(p.close, STEP, "RunspacePool.close")
    except Exception:
        pass


def invoke(ps, timeout=STEP, **kw):
    return call_with_timeout(lambda: ps.invoke(**kw), timeout, "PowerShell.invoke")


def run_cmd(pool, name, *args, **params):
    ps = PowerShell(pool)
    ps.add_cmdlet(name)
    for a in args:
        ps.add_argument(a)
    for k, v in params.items():
        ps.add_parameter(k, v)
    out = invoke(ps)
    return ps, out


def run_script(pool, text, **kw):
    ps = PowerShell(pool)
    ps.add_script(text)
    out = invoke(ps, **kw)
    return ps, out


def runspace_pid(pool):
    _, out = run_cmd(pool, "Get-Pid")
    assert len(out) == 1 and isinstance(out[0], int), out
    return out[0]


def pool_ids(d, user):
    pools = call_with_timeout(lambda: RunspacePool.get_runspace_pools(wsman(d, user)), STEP, "enumerate")
    return {p.id.upper(): p for p in pools}


# =========================================================================== basics

def test_open_and_close(pd, users):
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(p.open, STEP, "open")
    assert p.state == RunspacePoolState.OPENED
    assert p.protocol_version == "2.3"
    assert p.application_private_data is not None
    assert p.id.upper() in pool_ids(pd, users.admin)
    call_with_timeout(p.close, STEP, "close")
    assert p.state == RunspacePoolState.CLOSED
    assert p.id.upper() not in pool_ids(pd, users.admin)


def test_runspace_process_ends_after_close(pd, users):
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(p.open, STEP, "open")
    pid = runspace_pid(p)
    assert pid_alive(pid)
    call_with_timeout(p.close, STEP, "close")
    assert wait_for(lambda: not pid_alive(pid), 15), "runspace pid %d still alive after Delete" % pid


def test_output(pool):
    ps, out = run_cmd(pool, "Write-Output", "hello", 42)
    assert out == ["hello", 42]
    assert ps.state == PSInvocationState.COMPLETED
    assert not ps.had_errors
    ps, out = run_script(pool, "Write-Output a; Write-Output 'b c'")
    assert out == ["a", "b c"]


def test_large_output_is_fragmented(pool):
    """Messages larger than one fragment / one envelope (pwsh fragments at 32 KiB)."""
    ps, out = run_cmd(pool, "Write-Blob", Size=300000, Count=3)
    assert ps.state == PSInvocationState.COMPLETED
    assert out == ["x" * 300000] * 3


def test_streams(pool):
    ps, out = run_script(pool, "Write-Warning w1; Write-Verbose v1; Write-Debug d1; Write-Error e1; "
                               "Write-Information i1; Write-Progress act stat -PercentComplete 40; "
                               "Write-Output done")
    assert out == ["done"]
    assert ps.state == PSInvocationState.COMPLETED
    assert [str(e) for e in ps.streams.error] == ["e1"]
    assert [w.message for w in ps.streams.warning] == ["w1"]
    assert [v.message for v in ps.streams.verbose] == ["v1"]
    assert [x.message for x in ps.streams.debug] == ["d1"]
    assert [i.message_data for i in ps.streams.information] == ["i1"]
    assert [(p.activity, p.percent_complete) for p in ps.streams.progress] == [("act", 40)]


def test_unknown_command_fails(pool):
    ps, out = run_cmd(pool, "Get-NoSuchThing")
    assert out == []
    assert ps.state == PSInvocationState.FAILED
    assert ps.had_errors
    assert "not recognized" in str(ps.streams.error[0])


def test_pipeline_input(pool):
    ps = PowerShell(pool)
    ps.add_script("$input | Write-Output")
    out = invoke(ps, input=["one", 2, "three"])
    assert out == ["one", 2, "three"]
    assert ps.state == PSInvocationState.COMPLETED


def test_host_call_read_line(pd, users):
    host = make_host(["first answer", "second answer"])
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG, host=host)
    call_with_timeout(p.open, STEP, "open")
    try:
        ps, out = run_script(p, "Write-Host hi; Read-Host; Read-Host")
        assert out == ["first answer", "second answer"]
        assert host.ui.read_calls == 2
        assert [s.strip() for s in host.ui.stdout] == ["hi"]
        assert ps.state == PSInvocationState.COMPLETED
    finally:
        call_with_timeout(p.close, STEP, "close")


def test_stop_sleeping_pipeline(pool):
    ps = PowerShell(pool)
    ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 300)
    call_with_timeout(ps.begin_invoke, STEP, "begin_invoke")
    time.sleep(1)
    t0 = time.monotonic()
    call_with_timeout(ps.stop, PROMPT, "PowerShell.stop")
    assert time.monotonic() - t0 < PROMPT
    assert ps.state == PSInvocationState.STOPPED
    # The pool is still usable, promptly.
    _, out = run_cmd(pool, "Write-Output", "after stop")
    assert out == ["after stop"]


def test_several_pipelines_in_one_pool(pool):
    for i in range(5):
        _, out = run_cmd(pool, "Write-Output", "run%d" % i)
        assert out == ["run%d" % i]
    # Two at once (max_runspaces=4): a slow one and a quick one.
    slow = PowerShell(pool)
    slow.add_script("Start-Sleep 2; Write-Output slow")
    quick = PowerShell(pool)
    quick.add_cmdlet("Write-Output").add_argument("quick")
    call_with_timeout(slow.begin_invoke, STEP, "begin_invoke")
    call_with_timeout(quick.begin_invoke, STEP, "begin_invoke")
    assert call_with_timeout(quick.end_invoke, STEP, "end_invoke") == ["quick"]
    assert call_with_timeout(slow.end_invoke, STEP, "end_invoke") == ["slow"]


def test_get_available_runspaces(pool):
    n = call_with_timeout(pool.get_available_runspaces, STEP, "get_available_runspaces")
    assert isinstance(n, int) and n >= 1


# =========================================================================== disconnect / connect

def test_disconnect_and_reconnect(pool):
    pid = runspace_pid(pool)
    call_with_timeout(pool.disconnect, STEP, "disconnect")
    assert pool.state == RunspacePoolState.DISCONNECTED
    assert pid_alive(pid), "the runspace must survive a disconnect"
    call_with_timeout(pool.connect, STEP, "connect")
    assert pool.state == RunspacePoolState.OPENED
    _, out = run_cmd(pool, "Write-Output", "reconnected")
    assert out == ["reconnected"]
    assert runspace_pid(pool) == pid


def test_disconnect_with_running_pipeline(pool):
    """Output produced while disconnected is buffered and delivered after Connect."""
    ps = PowerShell(pool)
    ps.add_script("Start-Sleep 2; Write-Output late")
    call_with_timeout(ps.begin_invoke, STEP, "begin_invoke")
    call_with_timeout(pool.disconnect, STEP, "disconnect")
    assert ps.state == PSInvocationState.DISCONNECTED
    time.sleep(3)
    call_with_timeout(pool.connect, STEP, "connect")
    call_with_timeout(ps.connect_async, STEP, "PowerShell.connect_async")
    assert call_with_timeout(ps.end_invoke, STEP, "end_invoke") == ["late"]
    assert ps.state == PSInvocationState.COMPLETED


def test_enumerate_shows_pool_and_pipeline(pool, pd, users):
    ps = PowerShell(pool)
    ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 300)
    call_with_timeout(ps.begin_invoke, STEP, "begin_invoke")
    try:
        pools = pool_ids(pd, users.admin)
        assert pool.id.upper() in pools
        found = pools[pool.id.upper()]
        assert ps.id.upper() in {k.upper() for k in found.pipelines}
    finally:
        call_with_timeout(ps.stop, PROMPT, "stop")


def test_connect_from_second_client(pd, users):
    first = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(first.open, STEP, "open")
    pid = runspace_pid(first)
    call_with_timeout(first.disconnect, STEP, "disconnect")
    try:
        # A different client (new WSMan session id) finds and connects to it.
        conn2 = wsman(pd, users.admin)
        pools = {p.id.upper(): p for p in
                 call_with_timeout(lambda: RunspacePool.get_runspace_pools(conn2), STEP, "enumerate")}
        assert first.id.upper() in pools
        second = pools[first.id.upper()]
        # get_runspace_pools builds pools for the default configuration; the
        # shell lives under Test.Runspace's resource URI.
        second.shell.resource_uri = RESOURCE_URI
        call_with_timeout(second.connect, STEP, "connect (new client)")
        assert second.state == RunspacePoolState.OPENED
        _, out = run_cmd(second, "Write-Output", "second client")
        assert out == ["second client"]
        assert runspace_pid(second) == pid
        call_with_timeout(second.close, STEP, "close")
    finally:
        if pid_alive(pid):
            first.state = RunspacePoolState.OPENED
            try:
                call_with_timeout(first.connect, STEP, "cleanup")
                call_with_timeout(first.close, STEP, "cleanup")
            except Exception:
                pass
    assert wait_for(lambda: not pid_alive(pid), 15)


# =========================================================================== access / RunAs

def test_runspace_runs_as_connecting_user(pool, users):
    _, out = run_cmd(pool, "Get-Uid")
    assert out == [users.admin.name, pwd.getpwnam(users.admin.name).pw_uid]


def test_run_as_user(pd, users, psrp_accounts):
    p = RunspacePool(wsman(pd, users.admin), configuration_name="Test.RunAs")
    call_with_timeout(p.open, STEP, "open")
    try:
        _, out = run_cmd(p, "Get-Uid")
        assert out == [psrp_accounts.runas, psrp_accounts.runas_uid]
    finally:
        call_with_timeout(p.close, STEP, "close")


def test_user_outside_allowed_groups_is_refused(pd, users):
    p = RunspacePool(wsman(pd, users.admin), configuration_name="Test.Restricted")
    with pytest.raises(WSManFaultError) as ei:
        call_with_timeout(p.open, STEP, "open")
    assert ei.value.code == ERROR_ACCESS_DENIED


def test_user_outside_service_groups_is_refused(pd, users):
    """users.plain is in no allowed group at all: refused either at the HTTP
    layer (401) or with WSManFault Code 5, never given a runspace."""
    p = RunspacePool(wsman(pd, users.plain), configuration_name=CONFIG)
    with pytest.raises((AuthenticationError, WSManFaultError)) as ei:
        call_with_timeout(p.open, STEP, "open")
    if isinstance(ei.value, WSManFaultError):
        assert ei.value.code == ERROR_ACCESS_DENIED


def test_missing_configuration(pd, users):
    p = RunspacePool(wsman(pd, users.admin), configuration_name="No.Such.Configuration")
    with pytest.raises(WSManFaultError) as ei:
        call_with_timeout(p.open, STEP, "open")
    assert ei.value.code == ERROR_WSMAN_INVALID_RESOURCE_URI


def test_disabled_configuration(pd, users):
    p = RunspacePool(wsman(pd, users.admin), configuration_name="Test.Disabled")
    with pytest.raises(WSManFaultError) as ei:
        call_with_timeout(p.open, STEP, "open")
    assert ei.value.code == ERROR_WSMAN_INVALID_RESOURCE_URI


def test_received_size_limits(pd, users):
    """MaxReceivedObjectSizeMB (1) and MaxReceivedDataSizePerCommandMB (2) of
    Test.Small: refused with PowerShell's quota error ids, the pool lives on."""
    p = RunspacePool(wsman(pd, users.admin), configuration_name="Test.Small", host=make_host())
    call_with_timeout(p.open, STEP, "RunspacePool.open")
    try:
        ps = PowerShell(p)
        ps.add_cmdlet("Write-Output").add_argument("y" * (1536 * 1024))
        with pytest.raises(WSManFaultError) as ei:
            invoke(ps)
        assert ei.value.code == 871, ei.value
        # Three objects of 0.9 MB each: every one fits, together they do not.
        ps = PowerShell(p)
        ps.add_script("$input | Measure-Object")
        with pytest.raises(WSManFaultError) as ei:
            invoke(ps, input=["z" * (900 * 1024)] * 3)
        assert ei.value.code == 872, ei.value
        # Under the limits everything still works in the same pool.
        ps, out = run_script(p, "$input | Write-Output", input=["a" * (600 * 1024), "b"])
        assert out == ["a" * (600 * 1024), "b"]
    finally:
        try:
            call_with_timeout(p.close, STEP, "RunspacePool.close")
        except Exception:
            pass


# =========================================================================== failures

def test_runspace_crash_mid_pipeline(pd, users):
    """The runspace process dies (exit 3) while a pipeline runs: pypsrp must get
    an error or a Failed/Stopped pipeline promptly, not hang."""
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(p.open, STEP, "open")
    pid = runspace_pid(p)
    ps = PowerShell(p)
    ps.add_script("Write-Output before; Exit-Process 3")
    t0 = time.monotonic()
    try:
        out = call_with_timeout(ps.invoke, 30, "invoke of a crashing pipeline")
    except Timeout:
        raise
    except (WinRMError, WSManFaultError, requests.RequestException, Exception) as e:  # noqa: B014
        err = e
    else:
        err = None
        assert ps.state in (PSInvocationState.FAILED, PSInvocationState.STOPPED), (ps.state, out)
    assert time.monotonic() - t0 < 30
    assert wait_for(lambda: not pid_alive(pid), 10)
    # Closing the broken pool must not hang either (it may fault).
    try:
        call_with_timeout(p.close, 30, "close after crash")
    except Timeout:
        raise
    except Exception:
        pass
    # And the daemon carries on.
    q = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(q.open, STEP, "open after crash")
    _, out = run_cmd(q, "Write-Output", "fine")
    assert out == ["fine"]
    call_with_timeout(q.close, STEP, "close")
    del err


def test_runspace_killed_while_idle(pd, users):
    """SIGKILL of the runspace between pipelines: the next operation fails fast."""
    p = RunspacePool(wsman(pd, users.admin), configuration_name=CONFIG)
    call_with_timeout(p.open, STEP, "open")
    pid = runspace_pid(p)
    os.kill(pid, 9)
    assert wait_for(lambda: not pid_alive(pid), 10)
    ps = PowerShell(p)
    ps.add_cmdlet("Write-Output").add_argument("x")
    try:
        call_with_timeout(ps.invoke, 30, "invoke on a dead runspace")
    except Timeout:
        raise
    except Exception:
        pass
    else:
        assert ps.state in (PSInvocationState.FAILED, PSInvocationState.STOPPED)
    try:
        call_with_timeout(p.close, 30, "close")
    except Timeout:
        raise
    except Exception:
        pass
