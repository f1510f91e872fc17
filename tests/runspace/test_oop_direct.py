"""Drive tests/runspace/psrp_runspace.py directly over the OutOfProc framing
(no daemon): psrpcore's client pool/pipelines, raw packets, and pypsrp's
RunspacePool/PowerShell through an OutOfProc stand-in for WinRS.

Run:  build/venv/bin/pytest -q tests/runspace
"""
import base64
import os
import pwd
import re
import sys
import time
import uuid

import pytest
import psrpcore
from psrpcore.types import HostMethodIdentifier, PSInvocationState, RunspacePoolState

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oop_client import OOPError, OOPProcess, PsrpClient, pypsrp_pool  # noqa: E402

# pypsrp/psrpcore and the stand-in runspace come from PyPI: the pypi suite.
pytestmark = pytest.mark.pypi

LINE_RE = re.compile(
    rb"^(<Data Stream='Default' PSGuid='[0-9a-f-]{36}'>[A-Za-z0-9+/=]*</Data>"
    rb"|<(DataAck|CommandAck|SignalAck|CloseAck) PSGuid='[0-9a-f-]{36}' />)$")


@pytest.fixture
def proc():
    p = OOPProcess()
    yield p
    p.kill()


@pytest.fixture
def client(proc):
    return PsrpClient(proc).open()


def cmd(client, name, *args, **params):
    ps = psrpcore.ClientPowerShell(client.pool)
    ps.add_command(name)
    for a in args:
        ps.add_argument(a)
    for k, v in params.items():
        ps.add_parameter(k, v)
    return ps


def script(client, text, no_input=True):
    ps = psrpcore.ClientPowerShell(client.pool, no_input=no_input)
    ps.add_script(text)
    return ps


def outputs(events):
    return [e.data for e in events if isinstance(e, psrpcore.PipelineOutputEvent)]


def close_pipe(client, ps):
    ps.close()
    client.proc.send_guid("Close", ps.pipeline_id)


# --------------------------------------------------------------------------- pool

def test_open_and_close(proc):
    c = PsrpClient(proc)
    c.open()
    assert c.pool.state == RunspacePoolState.Opened
    assert "PSVersionTable" in c.pool.application_private_data
    kinds = [type(e).__name__ for e in c.events]
    assert kinds == ["SessionCapabilityEvent", "ApplicationPrivateDataEvent", "RunspacePoolStateEvent"]
    proc.send_guid("Close")  # CloseAck for the pool
    # Like pwsh: the process keeps reading until EOF, then exits with 4000 (& 0xff on Linux).
    proc.close_stdin()
    assert proc.wait() == 4000 & 0xFF
    assert "session ended" in proc.stderr
    for line in proc.raw_lines:
        assert LINE_RE.match(line), line


def test_empty_line_ends_session(client, proc):
    proc.write(b"\n")
    assert proc.wait() == 4000 & 0xFF
    assert "empty line" in proc.stderr


def test_eof_ends_session_without_open(proc):
    proc.close_stdin()
    assert proc.wait() == 4000 & 0xFF


def test_one_fragment_per_line_and_big_output(client, proc):
    ps = cmd(client, "Write-Blob", Size=100000, Count=2)
    state, events = client.run(ps)
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["x" * 100000] * 2
    # Each Data line carries exactly one fragment, at most 32 KiB.
    for line in proc.raw_lines:
        assert LINE_RE.match(line), line[:200]
        if line.startswith(b"<Data "):
            data = base64.b64decode(line.split(b">")[1].split(b"<")[0])
            assert len(data) <= 32768
            assert int.from_bytes(data[17:21], "big") == len(data) - 21


def test_coalesce_option():
    p = OOPProcess(args=["--coalesce"])
    try:
        c = PsrpClient(p).open()
        state, events = c.run(cmd(c, "Write-Output", "a", "b", "c"))
        assert outputs(events) == ["a", "b", "c"]
    finally:
        p.kill()


def test_pool_messages(client):
    ci = client.pool.get_available_runspaces()
    client.flush()
    ev, _ = client.wait_event(psrpcore.GetRunspaceAvailabilityEvent)
    assert ev.ci == ci and ev.count == 1
    ci = client.pool.set_max_runspaces(4)
    client.flush()
    ev, _ = client.wait_event(psrpcore.SetRunspaceAvailabilityEvent)
    assert ev.ci == ci and ev.success is True
    assert client.pool.max_runspaces == 4


def test_connect_from_second_client(client, proc):
    """CONNECT_RUNSPACEPOOL (what a new client sends in rsp:Connect's connectXml)."""
    c2 = PsrpClient(proc, psrpcore.ClientRunspacePool(runspace_pool_id=client.pool.runspace_pool_id))
    c2.pool.connect()
    c2.flush()
    kinds = []
    while c2.pool.state != RunspacePoolState.Opened:
        kinds.append(type(c2.next_event()).__name__)
    assert "SessionCapabilityEvent" in kinds and "RunspacePoolInitDataEvent" in kinds
    state, events = c2.run(cmd(c2, "Write-Output", "after connect"))
    assert outputs(events) == ["after connect"]


# --------------------------------------------------------------------------- pipelines

def test_write_output(client):
    state, events = client.run(cmd(client, "Write-Output", "hello", 42))
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["hello", 42]


def test_script_statements(client):
    state, events = client.run(script(client, "Write-Output 'a b' c; Write-Output d\nWrite-Output -InputObject e"))
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["a b", "c", "d", "e"]


def test_streams(client):
    ps = script(client, "Write-Warning w1; Write-Verbose v1; Write-Debug d1; Write-Error e1; "
                        "Write-Information i1 -Tags t1,t2; Write-Progress act stat -PercentComplete 50; "
                        "Write-Output done")
    state, events = client.run(ps)
    assert state.state == PSInvocationState.Completed
    by = {type(e).__name__: e for e in events}
    assert by["WarningRecordEvent"].record.Message == "w1"
    assert by["VerboseRecordEvent"].record.Message == "v1"
    assert by["DebugRecordEvent"].record.Message == "d1"
    assert str(by["ErrorRecordEvent"].record) == "e1"
    assert by["InformationRecordEvent"].record.MessageData == "i1"
    assert list(by["InformationRecordEvent"].record.Tags) == ["t1", "t2"]
    assert by["ProgressRecordEvent"].record.Activity == "act"
    assert by["ProgressRecordEvent"].record.PercentComplete == 50
    assert outputs(events) == ["done"]


def test_unknown_command_fails(client):
    state, events = client.run(cmd(client, "Get-Nothing"))
    assert state.state == PSInvocationState.Failed
    assert "not recognized" in str(state.reason) and "Get-Nothing" in str(state.reason)
    assert state.reason.FullyQualifiedErrorId == "CommandNotFoundException"
    assert outputs(events) == []


def test_throw_fails(client):
    state, _ = client.run(script(client, "Write-Output x; throw 'boom'"))
    assert state.state == PSInvocationState.Failed
    assert str(state.reason) == "boom"


def test_pipeline_input(client):
    ps = script(client, "$input | Write-Output", no_input=False)
    state, events = client.run(ps, inputs=["one", 2, "three"])
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["one", 2, "three"]


def test_pipeline_input_streams(client):
    """Output for each input object arrives before the input ends."""
    ps = psrpcore.ClientPowerShell(client.pool, no_input=False)
    ps.add_command("Write-Output")
    client.start(ps)
    ps.send("first")
    client.flush()
    ev, _ = client.wait_event(psrpcore.PipelineOutputEvent)
    assert ev.data == "first"
    ps.send("second")
    ps.send_eof()
    client.flush()
    state, events = client.collect(ps)
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["second"]


def test_read_host(client, proc):
    ps = script(client, "Write-Output before; Read-Host 'name?'")
    client.start(ps)
    call, skipped = client.wait_event(psrpcore.PipelineHostCallEvent)
    assert outputs(skipped) == ["before"]
    assert call.method_identifier == HostMethodIdentifier.ReadLine
    ps.host_response(call.ci, "typed text")
    payload = client.pool.data_to_send()
    assert payload.stream_type == psrpcore.StreamType.prompt_response
    proc.send_data(payload.data, payload.pipeline_id, prompt_response=True)
    state, events = client.collect(ps)
    assert state.state == PSInvocationState.Completed
    assert outputs(events) == ["typed text"]


def test_write_host_is_void_host_call(client):
    state, events = client.run(script(client, "Write-Host hi; Write-Output after"))
    calls = [e for e in events if isinstance(e, psrpcore.PipelineHostCallEvent)]
    assert [c.method_identifier for c in calls] == [HostMethodIdentifier.WriteLine2]
    assert calls[0].ci == -100 and calls[0].method_parameters == ["hi"]
    assert outputs(events) == ["after"]


def test_stop_sleeping_pipeline(client, proc):
    ps = script(client, "Write-Output started; Start-Sleep -Seconds 60; Write-Output never")
    client.start(ps)
    ev, _ = client.wait_event(psrpcore.PipelineOutputEvent)
    assert ev.data == "started"
    t0 = time.monotonic()
    proc.send_guid("Signal", ps.pipeline_id)
    state, events = client.collect(ps, timeout=10)
    assert time.monotonic() - t0 < 3
    assert state.state == PSInvocationState.Stopped
    assert outputs(events) == []
    close_pipe(client, ps)
    # The pool still works.
    state, events = client.run(cmd(client, "Write-Output", "still alive"))
    assert outputs(events) == ["still alive"]


def test_stop_read_host(client, proc):
    ps = cmd(client, "Read-Host")
    client.start(ps)
    client.wait_event(psrpcore.PipelineHostCallEvent)
    proc.send_guid("Signal", ps.pipeline_id)
    state, _ = client.collect(ps, timeout=5)
    assert state.state == PSInvocationState.Stopped


def test_signal_after_completion_is_acked(client, proc):
    ps = cmd(client, "Write-Output", 1)
    client.run(ps)
    proc.send_guid("Signal", ps.pipeline_id)   # raises if no SignalAck
    proc.send_guid("Close", ps.pipeline_id)
    proc.send_guid("Close", uuid.uuid4())      # unknown pipeline: still acked


def test_concurrent_pipelines(client, proc):
    client.pool.set_max_runspaces(3)
    client.flush()
    client.wait_event(psrpcore.SetRunspaceAvailabilityEvent)
    sleeper = cmd(client, "Start-Sleep", 30)
    client.start(sleeper)
    for i in range(3):
        state, events = client.run(cmd(client, "Write-Output", "n%d" % i))
        assert outputs(events) == ["n%d" % i]
        close_pipe(client, psrpcore.ClientPowerShell(client.pool))  # no-op close of a fresh object
    t0 = time.monotonic()
    client.proc.send_guid("Close")   # closing the pool stops the sleeper
    assert time.monotonic() - t0 < 5


def test_get_uid_and_pid(client, proc):
    state, events = client.run(cmd(client, "Get-Uid"))
    assert outputs(events) == [pwd.getpwuid(os.getuid()).pw_name, os.getuid()]
    state, events = client.run(cmd(client, "Get-Pid"))
    assert outputs(events) == [proc.proc.pid]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_runs_as_unprivileged_user(tmp_path):
    """The venv python can import psrpcore and run the runspace as nobody."""
    nobody = pwd.getpwnam("nobody")
    p = OOPProcess()
    p.kill()
    argv = ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups",
            sys.executable, p.argv[1]]
    p = OOPProcess(argv=argv, env={"HOME": "/"})
    try:
        c = PsrpClient(p).open()
        state, events = c.run(cmd(c, "Get-Uid"))
        assert outputs(events) == ["nobody", nobody.pw_uid]
    finally:
        p.kill()


def test_exit_process(client, proc):
    ps = script(client, "Write-Output bye; Exit-Process 7")
    client.start(ps)
    ev, _ = client.wait_event(psrpcore.PipelineOutputEvent)
    assert ev.data == "bye"
    assert proc.wait() == 7
    with pytest.raises(OOPError):
        client.next_event(timeout=2)


def test_malformed_packets_are_ignored(client, proc):
    proc.write(b"<Nonsense\n")
    proc.write(b"<Data Stream='Default' PSGuid='not-a-guid'>AAAA</Data>\n")
    proc.write(b"<Frob PSGuid='00000000-0000-0000-0000-000000000000' />\n")
    # Garbage PSRP data is acked and dropped.
    proc.send_data(b"\x00" * 30)
    state, events = client.run(cmd(client, "Write-Output", "ok"))
    assert outputs(events) == ["ok"]
    assert "malformed" in proc.stderr


def test_data_without_command_is_tolerated(client, proc):
    ps = cmd(client, "Write-Output", "lenient")
    ps.start()
    client.flush()   # no <Command> first
    state, events = client.collect(ps)
    assert outputs(events) == ["lenient"]


# --------------------------------------------------------------------------- pypsrp through OutOfProc

@pytest.fixture
def pypsrp_proc():
    p = OOPProcess()
    yield p
    p.kill()


def test_pypsrp_open_output_streams(pypsrp_proc):
    from pypsrp.powershell import PowerShell
    pool = pypsrp_pool(pypsrp_proc)
    pool.open()
    ps = PowerShell(pool)
    ps.add_script("Write-Output hello; Write-Warning w; Write-Verbose v; Write-Error e; "
                  "Write-Information i; Write-Progress act stat")
    out = ps.invoke()
    assert out == ["hello"]
    assert len(ps.streams.error) == 1
    assert [str(w.message) for w in ps.streams.warning] == ["w"]
    assert [str(v.message) for v in ps.streams.verbose] == ["v"]
    assert [str(e) for e in ps.streams.error] == ["e"]
    assert [i.message_data for i in ps.streams.information] == ["i"]
    assert [p.activity for p in ps.streams.progress] == ["act"]
    ps2 = PowerShell(pool)
    ps2.add_cmdlet("Write-Output").add_parameter("InputObject", [1, 2])
    assert ps2.invoke() == [1, 2]
    ps3 = PowerShell(pool)
    ps3.add_cmdlet("No-Such-Thing")
    ps3.invoke()
    assert ps3.state == PSInvocationState.Failed.value
    assert "not recognized" in str(ps3.streams.error[0])
    pool.close()


def test_pypsrp_input_and_host(pypsrp_proc):
    from pypsrp.host import PSHost, PSHostUserInterface
    from pypsrp.powershell import PowerShell

    class UI(PSHostUserInterface):
        def ReadLine(self, runspace, pipeline):
            return "from host"

    pool = pypsrp_pool(pypsrp_proc, host=PSHost(None, None, False, "test", None, UI(), "1.0"))
    pool.open()
    ps = PowerShell(pool)
    ps.add_script("$input")
    assert ps.invoke(input=["a", 2, "c"]) == ["a", 2, "c"]
    ps = PowerShell(pool)
    ps.add_script("Write-Host hi; Read-Host")
    assert ps.invoke() == ["from host"]
    assert [s.strip() for s in pool.host.ui.stdout] == ["hi"]
    pool.close()


def test_pypsrp_stop(pypsrp_proc):
    from pypsrp.powershell import PowerShell
    pool = pypsrp_pool(pypsrp_proc)
    pool.open()
    ps = PowerShell(pool)
    ps.add_cmdlet("Start-Sleep").add_parameter("Seconds", 60)
    ps.begin_invoke()
    t0 = time.monotonic()
    ps.stop()
    assert time.monotonic() - t0 < 3
    ps2 = PowerShell(pool)
    ps2.add_cmdlet("Write-Output").add_argument("next")
    assert ps2.invoke() == ["next"]
    pool.close()
