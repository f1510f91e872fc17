"""A PSSession's life against real pwsh runspaces: jobs, a runspace killed
under a running pipeline, 100 MB of output, an interactive Enter-PSSession in
a terminal, and IdleTimeout with and without a client.

Same client as test_pwsh_psrp.py (PowerShell's own engine over
tests/pwsh/client); the daemon here also serves a configuration with a short
IdleTimeoutMs.
"""
import base64
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from daemon_util import Daemon, stop_and_check
from psrp_util import session_conf, write_sessions
from pwsh_util import CONFIG, DOTNET, MODULE, PWSH_DLL, RUNSPACE_COMMAND, pwsh
from wsman_util import NS, assert_ok, envelope, post, user_pids, wait_for

IDLE_CONFIG = "Idle.PowerShell"
IDLE_MS = 4000
PSSC_CONFIG = "Restricted.PowerShell"
PSSC_ROLES_CONFIG = "Roles.PowerShell"


@pytest.fixture(scope="module", autouse=True)
def tmux_present():
    assert shutil.which("tmux"), "tmux missing: tests/deps.sh installs it"


@pytest.fixture(scope="module")
def pssc():
    """Session configuration files, made by pwsh itself, that the runspace
    (another user) can read: {config name: path}."""
    d = tempfile.mkdtemp(prefix="winrmd-pssc-")
    os.chmod(d, 0o755)
    files = {
        PSSC_CONFIG: "-VisibleCmdlets Get-Date, Get-Random",
        PSSC_ROLES_CONFIG: "-RoleDefinitions @{ 'winrm-users' = @{ VisibleCmdlets = 'Get-Random' } }",
    }
    paths = {}
    for name, extra in files.items():
        paths[name] = os.path.join(d, name + ".pssc")
        subprocess.run([DOTNET, PWSH_DLL, "-NoLogo", "-NoProfile", "-NonInteractive", "-Command",
                        "New-PSSessionConfigurationFile -Path '%s' -SessionType RestrictedRemoteServer "
                        "-LanguageMode NoLanguage %s" % (paths[name], extra)],
                       check=True, capture_output=True, timeout=120,
                       env=dict(os.environ, POWERSHELL_TELEMETRY_OPTOUT="1"))
        os.chmod(paths[name], 0o644)
    yield paths
    shutil.rmtree(d)


@pytest.fixture(scope="module")
def pd(tmp_path_factory, tls_cert, users, pssc):
    d = Daemon(tmp_path_factory.mktemp("winrmd-pwsh-sessions"), *tls_cert)
    write_sessions(d.conf_path, {
        CONFIG: session_conf(CONFIG, command=RUNSPACE_COMMAND),
        IDLE_CONFIG: session_conf(IDLE_CONFIG, command=RUNSPACE_COMMAND, IdleTimeoutMs=IDLE_MS),
        PSSC_CONFIG: session_conf(PSSC_CONFIG, command=RUNSPACE_COMMAND, ConfigurationFile=pssc[PSSC_CONFIG]),
        PSSC_ROLES_CONFIG: session_conf(PSSC_ROLES_CONFIG, command=RUNSPACE_COMMAND,
                                        ConfigurationFile=pssc[PSSC_ROLES_CONFIG]),
    })
    d.start()
    yield d
    stop_and_check(d)


def runspaces(user):
    """pids of the user's real pwsh runspaces (dotnet pwsh.dll ... -sshs)."""
    return user_pids(user.name, lambda argv: PWSH_DLL in argv and "-sshs" in argv)


def test_invoke_command_as_job(pd, users):
    r = pwsh(pd, users.admin, r"""
$j = Invoke-Command -Session $s -AsJob { 1..3 | ForEach-Object { $_ * 10 }; Start-Sleep -Seconds 1; 'done' }
$null = Wait-Job $j -Timeout 60
"$($j.State)"
Receive-Job $j
""")
    assert r == ["Completed", 10, 20, 30, "done"]


def test_runspace_killed_mid_pipeline_faults_the_client(pd, users):
    # SIGKILL, not an orderly exit: the pipes just close under a running pipeline.
    r = pwsh(pd, users.admin, r"""
$rpid = Invoke-Command -Session $s { $PID }
$j = Invoke-Command -Session $s -AsJob { 'started'; Start-Sleep -Seconds 600 }
$deadline = (Get-Date).AddSeconds(30)
while (-not $j.ChildJobs[0].Output.Count -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
$sw = [Diagnostics.Stopwatch]::StartNew()
Stop-Process -Id $rpid -Force
$null = Wait-Job $j -Timeout 60
[pscustomobject]@{
    state = "$($j.State)"; secs = $sw.Elapsed.TotalSeconds; session = "$($s.State)"
    got = @(Receive-Job $j -ErrorAction SilentlyContinue | ForEach-Object { "$_" })
}
""", timeout=150)[0]
    assert r["got"] == ["started"]
    assert r["state"] == "Failed", r
    assert r["session"] == "Broken", r
    assert r["secs"] < 15, r


def test_100_mb_of_output(pd, users):
    r = pwsh(pd, users.admin, r"""
$n = 0; $bytes = 0
$sw = [Diagnostics.Stopwatch]::StartNew()
Invoke-Command -Session $s { $line = 'x' * 1MB; 1..100 | ForEach-Object { $line } } |
    ForEach-Object { $n++; $bytes += $_.Length }
[pscustomobject]@{ n = $n; bytes = $bytes; secs = $sw.Elapsed.TotalSeconds }
""", timeout=600)[0]
    assert (r["n"], r["bytes"]) == (100, 100 * 1024 * 1024)
    print("100 MB of output in %.1f s" % r["secs"])


def test_enter_pssession_in_a_terminal(pd, users, tmp_path):
    """What an admin does: Enter-PSSession, look at the remote prompt, run
    $PSVersionTable, exit back to the local prompt; in a real terminal."""
    u = users.admin
    tmux = ["tmux", "-L", "winrmd-test-%d" % os.getpid()]
    setup = tmp_path / "enter.ps1"
    setup.write_text("""
Import-Module '%s'
$cred = [pscredential]::new('%s', (ConvertTo-SecureString '%s' -AsPlainText -Force))
$s = New-WinrmdSession -Uri '%s' -Credential $cred
function prompt { 'LOCAL> ' }
""" % (MODULE, u.name, u.password, pd.https_url))
    env = dict(os.environ, TERM="xterm", POWERSHELL_TELEMETRY_OPTOUT="1", DOTNET_CLI_TELEMETRY_OPTOUT="1")

    def screen():
        return subprocess.run(tmux + ["capture-pane", "-p", "-J", "-S", "-200", "-t", "t"],
                              capture_output=True, text=True, env=env).stdout

    def keys(text):
        subprocess.run(tmux + ["send-keys", "-t", "t", "-l", text], check=True, env=env)
        subprocess.run(tmux + ["send-keys", "-t", "t", "Enter"], check=True, env=env)

    subprocess.run(tmux + ["new-session", "-d", "-s", "t", "-x", "200", "-y", "50",
                           DOTNET, PWSH_DLL, "-NoLogo", "-NoProfile", "-NoExit", "-File", str(setup)],
                   check=True, env=env)
    try:
        assert wait_for(lambda: "LOCAL> " in screen(), 90), "the local prompt"
        keys("Enter-PSSession -Session $s")
        # The remote prompt is the session's computer name in brackets.
        remote = re.compile(r"^\[127\.0\.0\.1\]: PS [^\n]*> ", re.M)
        assert wait_for(lambda: remote.search(screen()), 60), "the remote prompt"
        keys("'user=' + [Environment]::UserName; 'version=' + $PSVersionTable.PSVersion")
        assert wait_for(lambda: "version=7.6.10" in screen(), 60), "$PSVersionTable from the remote end"
        assert "user=%s" % u.name in screen()
        keys("exit")
        assert wait_for(lambda: screen().rstrip().endswith("LOCAL>"), 60), "the local prompt after exit"
        keys("'state=' + $s.State")
        assert wait_for(lambda: "state=Opened" in screen(), 30), "the session still open after exit"
    except AssertionError:
        print(screen())
        raise
    finally:
        subprocess.run(tmux + ["kill-server"], env=env)


def test_idle_timeout_spares_a_connected_client(pd, users):
    # A client with an open pool keeps a Receive waiting: that is not idleness,
    # even for longer than IdleTimeoutMs.
    r = pwsh(pd, users.admin, r"""
$s2 = New-WinrmdSession -Uri $uri -Credential $cred -ConfigurationName '%s'
try {
    $a = Invoke-Command -Session $s2 { 'first' }
    Start-Sleep -Milliseconds %d
    $b = Invoke-Command -Session $s2 { 'after idling' }
    @($a, $b, "$($s2.State)")
} finally { Remove-PSSession $s2 }
""" % (IDLE_CONFIG, IDLE_MS * 3), session=False, timeout=120)
    assert r == ["first", "after idling", "Opened"]


def test_idle_timeout_reaps_a_pool_whose_client_went_away(pd, users):
    u = users.admin
    before = set(runspaces(u))
    fd, script = tempfile.mkstemp(suffix=".ps1")
    os.close(fd)
    with open(script, "w") as f:
        f.write("""
Import-Module '%s'
$cred = [pscredential]::new('%s', (ConvertTo-SecureString '%s' -AsPlainText -Force))
$s = New-WinrmdSession -Uri '%s' -Credential $cred -ConfigurationName '%s'
Invoke-Command -Session $s { 'open' }
[Console]::Out.Flush()
Start-Sleep -Seconds 600
""" % (MODULE, u.name, u.password, pd.https_url, IDLE_CONFIG))
    client = subprocess.Popen([DOTNET, PWSH_DLL, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", script],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=dict(os.environ, POWERSHELL_TELEMETRY_OPTOUT="1"))
    try:
        assert client.stdout.readline().strip() == "open"
        new = set(runspaces(u)) - before
        assert len(new) == 1, new
        start = len(pd.log())
        client.send_signal(signal.SIGKILL)     # no Delete, no more Receives
        client.wait(10)
        t0 = time.monotonic()
        assert wait_for(lambda: "shell-idle-timeout" in pd.log()[start:], 60), "the idle pool reaped"
        assert wait_for(lambda: not (new & set(runspaces(u))), 30), "its runspace process gone"
        took = time.monotonic() - t0
        assert took < IDLE_MS / 1000 + 30, took
    finally:
        if client.poll() is None:
            client.kill()
        os.unlink(script)


def test_command_metadata_pipeline_without_command_id(pd, users):
    # Enter-PSSession and implicit remoting start their pipeline with
    # GET_COMMAND_METADATA, not CREATE_PIPELINE: the server must find its id
    # there when the client leaves the CommandId to it.
    r = pwsh(pd, users.admin, r"""
$ci = New-WinrmdConnectionInfo -Uri $uri -Credential $cred -NoCommandId
$s2 = [Winrmd.Client.WinrmdSession]::Open($ci, $Host, $null)
try {
    $m = Import-PSSession -Session $s2 -CommandName Get-Date -Prefix Remote -AllowClobber -DisableNameChecking
    (Get-RemoteDate -Year 2001).Year
    @(Get-Command Get-RemoteDate).Count
} finally { Remove-PSSession $s2 }
""", session=False, timeout=120)
    assert r == [2001, 1]


def test_copy_item_to_and_from_session(pd, users):
    r = pwsh(pd, users.admin, r"""
$src = Join-Path ([IO.Path]::GetTempPath()) "winrmd-copy-$PID.bin"
$back = "$src.back"
$bytes = [byte[]]::new(5MB); [Random]::new(7).NextBytes($bytes)
[IO.File]::WriteAllBytes($src, $bytes)
try {
    $dst = Invoke-Command -Session $s { Join-Path $HOME 'copied.bin' }
    Copy-Item -Path $src -Destination $dst -ToSession $s
    $remote = Invoke-Command -Session $s { param($p) (Get-FileHash $p -Algorithm SHA256).Hash; (Get-Item $p).Length } -ArgumentList $dst
    Copy-Item -Path $dst -Destination $back -FromSession $s
    Invoke-Command -Session $s { param($p) Remove-Item $p } -ArgumentList $dst
    @((Get-FileHash $src -Algorithm SHA256).Hash, $remote[0], $remote[1], (Get-FileHash $back -Algorithm SHA256).Hash)
} finally { Remove-Item $src, $back -ErrorAction SilentlyContinue }
""", timeout=300)
    assert r[0] == r[1] == r[3] and r[2] == 5 * 1024 * 1024, r


def test_remove_pssession_lets_pwsh_close_the_pool(pd, users):
    # Windows closes the pool in wsmprovhost when the shell is deleted, so the
    # runspace's PowerShell.Exiting handlers and a stopped pipeline's finally
    # blocks run before the process ends. The bridge must wait for pwsh's
    # CloseAck before the session's processes are ended.
    u = users.admin
    marks = "/tmp/winrmd-close-%s" % u.name
    r = pwsh(pd, u, r"""
$marks = '%s'
Remove-Item -Force -ErrorAction SilentlyContinue "$marks-exiting", "$marks-finally"
$rpid = Invoke-Command -Session $s {
    $null = Register-EngineEvent -SourceIdentifier PowerShell.Exiting -Action { Set-Content -LiteralPath '%s-exiting' 'exiting' }
    $PID
}
$j = Invoke-Command -Session $s -AsJob { try { 'started'; Start-Sleep -Seconds 600 } finally { Set-Content -LiteralPath "$using:marks-finally" 'finally' } }
$deadline = (Get-Date).AddSeconds(30)
while (-not $j.ChildJobs[0].Output.Count -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
Remove-PSSession $s; $s = $null
$deadline = (Get-Date).AddSeconds(20)
while ((Get-Process -Id $rpid -ErrorAction SilentlyContinue) -and (Get-Date) -lt $deadline) { Start-Sleep -Milliseconds 100 }
[pscustomobject]@{
    gone = -not (Get-Process -Id $rpid -ErrorAction SilentlyContinue)
    exiting = Test-Path "$marks-exiting"; finally = Test-Path "$marks-finally"
}
""" % (marks, marks), timeout=150)[0]
    assert r["gone"], r
    assert r["finally"], r
    assert r["exiting"], r


# ---- Connect from a second client ------------------------------------------

PSH_NS = "http://schemas.microsoft.com/powershell"
SHELL_ACT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
CAPABILITY = (b'<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0</Version>'
              b'<Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>')


def psrp_frag(obj, mtype, rpid, body):
    msg = struct.pack("<II", 2, mtype) + rpid + bytes(16) + body
    return struct.pack(">QQBI", obj, 0, 3, len(msg)) + msg


def psrp_messages(data):
    """[(destination, type, rpid, text)] of whole fragments."""
    out, off = [], 0
    while off < len(data):
        obj, fid, flags, n = struct.unpack(">QQBI", data[off:off + 21])
        blob = data[off + 21:off + 21 + n]
        assert flags & 1, "a message split over fragments: %r" % blob[:80]
        dest, mtype = struct.unpack("<II", blob[:8])
        out.append((dest, mtype, blob[8:24], blob[40:].decode("utf-8-sig", "replace")))
        off += 21 + n
    return out


def received(resp):
    root = ET.fromstring(resp.content)
    streams = root.iter("{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}Stream")
    data = b"".join(base64.b64decode(s.text) for s in streams if s.text)
    state = root.find(".//{http://schemas.microsoft.com/wbem/wsman/1/windows/shell}CommandState")
    return psrp_messages(data), state is not None and state.get("State", "").endswith("/Done")


def test_connect_from_a_second_client_receives_output_made_while_disconnected(pd, users):
    """Receive-PSSession / Connect-PSSession from another process: the first
    client (PowerShell's engine) starts a pipeline and dies; the shell is
    disconnected while real pwsh keeps producing output; a second client
    connects with SESSION_CAPABILITY + CONNECT_RUNSPACEPOOL, which winrmd
    answers as wsmprovhost does (pwsh cannot out of process), attaches to the
    pipeline and receives the rest of its output and its end."""
    u = users.admin
    uri = "http://schemas.microsoft.com/powershell/" + CONFIG
    script = tempfile.NamedTemporaryFile("w", suffix=".ps1", delete=False)
    script.write("""
$ErrorActionPreference = 'Stop'
Import-Module '%s'
$cred = [pscredential]::new('%s', (ConvertTo-SecureString '%s' -AsPlainText -Force))
$s = New-WinrmdSession -Uri '%s' -Credential $cred -ConfigurationName '%s'
$j = Invoke-Command -Session $s -AsJob { foreach ($i in 1..40) { "tick $i"; Start-Sleep -Milliseconds 250 } }
while (-not $j.ChildJobs[0].Output.Count) { Start-Sleep -Milliseconds 50 }
'READY ' + [Winrmd.Client.WinrmdConnectionInfo]::LastShellId
Start-Sleep -Seconds 600
""" % (MODULE, u.name, u.password, pd.https_url, CONFIG))
    script.close()
    env = dict(os.environ, POWERSHELL_TELEMETRY_OPTOUT="1", DOTNET_CLI_TELEMETRY_OPTOUT="1")
    a = subprocess.Popen([DOTNET, PWSH_DLL, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", script.name],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = ""
        t0 = time.monotonic()
        while not line.startswith("READY") and time.monotonic() - t0 < 90:
            line = a.stdout.readline()
            assert line or a.poll() is None, "client A ended: %s" % a.stdout.read()
        sid = line.split()[1]
    finally:
        a.kill()
        a.wait()
        os.unlink(script.name)

    def call(action, body="", timeout="PT20S", **kw):
        xml, mid = envelope(action, uri, body, selectors={"ShellId": sid}, operation_timeout=timeout, **kw)
        return post(pd.https_url, xml, user=u, timeout=60), mid

    r, mid = call(SHELL_ACT + "Disconnect", "<rsp:Disconnect/>")
    assert_ok(r, mid)
    time.sleep(3)           # pwsh goes on: ticks made while nobody is connected
    rpid = uuid.UUID(sid).bytes_le
    # Not this pool's id: refused, and the shell stays disconnected.
    bad = base64.b64encode(psrp_frag(1, 0x00010002, rpid, CAPABILITY)
                           + psrp_frag(2, 0x00010008, uuid.uuid4().bytes_le, b"<S />")).decode()
    r, mid = call(SHELL_ACT + "Connect", '<rsp:Connect><connectXml xmlns="%s">%s</connectXml></rsp:Connect>'
                  % (PSH_NS, bad), options={"protocolversion": "2.3"})
    assert r.status_code == 500 and b"CONNECT_RUNSPACEPOOL names another" in r.content, r.content[:600]
    good = base64.b64encode(psrp_frag(1, 0x00010002, rpid, CAPABILITY)
                            + psrp_frag(2, 0x00010008, rpid, b"<S />")).decode()
    r, mid = call(SHELL_ACT + "Connect", '<rsp:Connect><connectXml xmlns="%s">%s</connectXml></rsp:Connect>'
                  % (PSH_NS, good), options={"protocolversion": "2.3"})
    assert_ok(r, mid)
    cx = ET.fromstring(r.content).find(".//{%s}connectResponseXml" % PSH_NS)
    msgs = psrp_messages(base64.b64decode(cx.text))
    assert [(m[0], m[1], m[2]) for m in msgs] == [(1, 0x00010002, rpid), (1, 0x0002100B, rpid)], msgs
    assert '<Version N="protocolversion">' in msgs[0][3]
    assert '<I32 N="MinRunspaces">1</I32><I32 N="MaxRunspaces">1</I32>' in msgs[1][3]
    # The pool's output: what the client waits for before it calls the pool Opened.
    pool = []
    while not any(m[1] == 0x00021005 for m in pool):
        r, mid = call(SHELL_ACT + "Receive", '<rsp:Receive><rsp:DesiredStream>stdout</rsp:DesiredStream></rsp:Receive>')
        assert_ok(r, mid)
        pool += received(r)[0]
    assert [m[1] for m in pool] == [0x00021009, 0x00021005], pool
    assert "PSVersionTable" in pool[0][3] and '<I32 N="RunspaceState">2</I32>' in pool[1][3]
    # The pipeline the first client started: attach, receive the rest.
    xml, mid = envelope("http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                        "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command",
                        '<wsen:Enumerate xmlns:wsen="http://schemas.xmlsoap.org/ws/2004/09/enumeration">'
                        '<w:Filter Dialect="http://schemas.dmtf.org/wbem/wsman/1/wsman/SelectorFilter">'
                        '<w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></w:Filter>'
                        '</wsen:Enumerate>' % sid)
    r = post(pd.https_url, xml, user=u, timeout=60)
    assert_ok(r, mid)
    cids = [e.text for e in ET.fromstring(r.content).iter("{%s}CommandId" % NS["rsp"])]
    assert len(cids) == 1, r.content
    r, mid = call(SHELL_ACT + "Connect", '<rsp:Connect CommandId="%s"/>' % cids[0])
    assert_ok(r, mid)
    ticks, done, t0 = [], False, time.monotonic()
    while not done and time.monotonic() - t0 < 60:
        r, mid = call(SHELL_ACT + "Receive", '<rsp:Receive><rsp:DesiredStream CommandId="%s">stdout'
                      '</rsp:DesiredStream></rsp:Receive>' % cids[0])
        assert_ok(r, mid)
        msgs, done = received(r)
        ticks += [re.search(r"tick \d+", m[3]).group(0) for m in msgs if m[1] == 0x00041004]
        final = [m[3] for m in msgs if m[1] == 0x00041006]
    assert done and final and '<I32 N="PipelineState">4</I32>' in final[0], final
    # The first client saw the first tick; the rest, made while disconnected
    # and after, came to the second, in order and each once.
    first = int(ticks[0].split()[1])
    assert ticks == ["tick %d" % i for i in range(first, 41)], ticks
    assert first <= 12, "ticks made while disconnected were lost: %s" % ticks
    r, mid = call("http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete")
    assert_ok(r, mid)


def test_configuration_file_is_enforced_by_pwsh(pd, users):
    """A configuration with ConfigurationFile (a .pssc: RestrictedRemoteServer,
    NoLanguage, two visible cmdlets): pwsh -sshs -ConfigurationFile enforces
    it, as wsmprovhost enforces a registered .pssc."""
    r = pwsh(pd, users.admin, r"""
$s2 = New-WinrmdSession -Uri $uri -Credential $cred -ConfigurationName '%s'
try {
    $visible = Invoke-Command -Session $s2 { Get-Command } | ForEach-Object Name | Sort-Object
    $date = Invoke-Command -Session $s2 { Get-Date }
    $blocked = try { Invoke-Command -Session $s2 { Get-ChildItem / }; 'ran' } catch { $_.FullyQualifiedErrorId }
    $script = try { Invoke-Command -Session $s2 { 1 + 1 }; 'ran' } catch { $_.FullyQualifiedErrorId }
    [pscustomobject]@{ visible = @($visible); date = ($date -is [datetime]); blocked = "$blocked"; script = "$script" }
} finally { Remove-PSSession $s2 }
""" % PSSC_CONFIG, session=False)[0]
    print("restricted session:", r)
    assert r["date"], r
    # RestrictedRemoteServer's own commands plus the two visible cmdlets, nothing else.
    assert "Get-Date" in r["visible"] and "Get-Random" in r["visible"], r
    assert "Get-ChildItem" not in r["visible"] and "Get-Process" not in r["visible"], r
    assert r["blocked"] != "ran" and "CommandNotFound" in r["blocked"], r
    assert r["script"] != "ran", r


def test_configuration_file_pwsh_cannot_apply_fails_with_its_reason(pd, users):
    """RoleDefinitions (and the other endpoint options of a .pssc) are applied
    by WinRM's plug-in registration on Windows; pwsh in server mode refuses the
    file.  The client must get pwsh's reason as a fault, at once."""
    r = pwsh(pd, users.admin, r"""
$sw = [Diagnostics.Stopwatch]::StartNew()
$err = try { $null = New-WinrmdSession -Uri $uri -Credential $cred -ConfigurationName '%s'; 'opened' } catch { $_.Exception.Message }
[pscustomobject]@{ err = "$err"; secs = $sw.Elapsed.TotalSeconds }
""" % PSSC_ROLES_CONFIG, session=False)[0]
    assert "unsupported configuration option: RoleDefinitions" in r["err"], r
    assert r["secs"] < 30, r


def test_disconnect_and_reconnect_on_the_wire(pd, users):
    """The client's shell is disconnected (WS-Man Disconnect) while a pipeline
    of real pwsh runs: nothing reaches the client meanwhile, pwsh goes on, and
    after Reconnect the engine receives everything, in order, and the end."""
    r = pwsh(pd, users.admin, r"""
$j = Invoke-Command -Session $s -AsJob { foreach ($i in 1..20) { "tick $i"; Start-Sleep -Milliseconds 200 } }
while (-not $j.ChildJobs[0].Output.Count) { Start-Sleep -Milliseconds 50 }
[Winrmd.Client.WinrmdWire]::Disconnect()
$at = $j.ChildJobs[0].Output.Count
Start-Sleep -Seconds 2
$during = $j.ChildJobs[0].Output.Count - $at
[Winrmd.Client.WinrmdWire]::Reconnect()
$null = Wait-Job $j -Timeout 60
[pscustomobject]@{ during = $during; state = "$($j.State)"; out = @(Receive-Job $j | ForEach-Object { "$_" }) }
""")[0]
    assert r["state"] == "Completed", r
    assert r["out"] == ["tick %d" % i for i in range(1, 21)], r
    # at most one Receive answer in flight when the Disconnect went out
    assert r["during"] <= 1, r
