"""PowerShell's own client engine against winrmd and real `pwsh -s` runspaces.

The client is tests/pwsh/client (a WS-Man transport for pwsh's remoting
engine, built by tests/pwsh/build.sh).  Each test writes a PowerShell script,
runs it in a real pwsh process (as root, the client side) and checks what the
remote runspace (real pwsh, started by winrmd as the test user) sent back.
Nothing is mocked: a missing pwsh or client build fails loudly.

Run: tests/pwsh/build.sh && /usr/bin/python3 -m pytest tests/pwsh -v
"""
import time

import pytest

from daemon_util import Daemon, stop_and_check
from psrp_util import session_conf, write_sessions
from pwsh_util import CONFIG, RUNSPACE_COMMAND, pwsh


@pytest.fixture(scope="module")
def pd(tmp_path_factory, tls_cert, users):
    d = Daemon(tmp_path_factory.mktemp("winrmd-pwsh"), *tls_cert)
    write_sessions(d.conf_path, {CONFIG: session_conf(CONFIG, command=RUNSPACE_COMMAND)})
    d.start()
    yield d
    stop_and_check(d)


def test_invoke_command_round_trip(pd, users):
    assert pwsh(pd, users.admin, "Invoke-Command -Session $s { 1+1 }") == [2]


def test_runs_as_authenticated_user(pd, users):
    r = pwsh(pd, users.admin, "Invoke-Command -Session $s { [Environment]::UserName; $PSVersionTable.PSVersion.ToString() }")
    assert r[0] == users.admin.name
    assert r[1].startswith("7.")


def test_streams(pd, users):
    r = pwsh(pd, users.admin, r"""
$ps = [powershell]::Create()
$ps.Runspace = $s.Runspace
[void]$ps.AddScript(@'
    Write-Output 'out1'
    Write-Error 'err1'
    Write-Warning 'warn1'
    Write-Verbose 'verb1' -Verbose
    Write-Information 'info1' -Tags t1
    Write-Debug 'dbg1' -Debug
    Write-Host 'host1'
    Write-Output 'out2'
'@)
$out = $ps.Invoke()
[pscustomobject]@{
    out = @($out | ForEach-Object { "$_" })
    error = @($ps.Streams.Error | ForEach-Object { "$_" })
    errid = "$($ps.Streams.Error[0].FullyQualifiedErrorId)"
    warning = @($ps.Streams.Warning | ForEach-Object { $_.Message })
    verbose = @($ps.Streams.Verbose | ForEach-Object { $_.Message })
    debug = @($ps.Streams.Debug | ForEach-Object { $_.Message })
    info = @($ps.Streams.Information | ForEach-Object { "$($_.MessageData)/$($_.Tags -join ',')" })
    had = $ps.HadErrors
}
""")[0]
    assert r["out"] == ["out1", "out2"]
    assert r["error"] == ["err1"] and r["errid"].startswith("Microsoft.PowerShell.Commands.WriteErrorException")
    assert r["warning"] == ["warn1"] and r["verbose"] == ["verb1"] and r["debug"] == ["dbg1"]
    assert r["info"][0] == "info1/t1" and r["info"][1].startswith("host1/")
    assert r["had"] is True


def test_typed_objects(pd, users):
    r = pwsh(pd, users.admin, r"""
$o = Invoke-Command -Session $s {
    @{ a = 1; b = 'x'; c = @{ d = 2.5 } }
    [datetime]::new(2024, 5, 6, 7, 8, 9, 123, [DateTimeKind]::Utc)
    [pscustomobject]@{ name = 'outer'; inner = [pscustomobject]@{ m = 5; arr = 1, 2, 3 } }
    , [byte[]](0, 1, 127, 128, 255)
    [guid]'0f8fad5b-d9cb-469f-a165-70867728950e'
    [int64]::MaxValue
}
[pscustomobject]@{
    count = $o.Count
    ht = $o[0] -is [hashtable]; a = $o[0].a; b = $o[0].b; d = $o[0].c.d
    dt = $o[1] -is [datetime]; dts = $o[1].ToUniversalTime().ToString('o')
    outer = $o[2].name; m = $o[2].inner.m; arr = @($o[2].inner.arr)
    isbytes = $o[3] -is [byte[]]; bytes = [Convert]::ToBase64String($o[3])
    isguid = $o[4] -is [guid]; guid = "$($o[4])"
    big = "$($o[5])"; bigtype = $o[5].GetType().Name
}
""")[0]
    assert r["count"] == 6
    assert r["ht"] and r["a"] == 1 and r["b"] == "x" and r["d"] == 2.5
    assert r["dt"] and r["dts"] == "2024-05-06T07:08:09.1230000Z"
    assert r["outer"] == "outer" and r["m"] == 5 and r["arr"] == [1, 2, 3]
    assert r["isbytes"] and r["bytes"] == "AAF/gP8="
    assert r["isguid"] and r["guid"] == "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert r["big"] == "9223372036854775807" and r["bigtype"] == "Int64"


def test_using_variables(pd, users):
    r = pwsh(pd, users.admin, r"""
$greeting = 'hello'; $n = 41; $list = 'a', 'b'
Invoke-Command -Session $s { "$using:greeting world"; $using:n + 1; ($using:list) -join '+' }
""")
    assert r == ["hello world", 42, "a+b"]


def test_five_concurrent_pipelines_in_one_pool(pd, users):
    r = pwsh(pd, users.admin, r"""
$pool = New-WinrmdRunspacePool -Uri $uri -Credential $cred -MaxRunspaces 5
$sw = [Diagnostics.Stopwatch]::StartNew()
$jobs = foreach ($i in 1..5) {
    $ps = [powershell]::Create()
    $ps.RunspacePool = $pool
    [void]$ps.AddScript('param($i) Start-Sleep -Seconds 4; "$i/$PID"').AddArgument($i)
    [pscustomobject]@{ ps = $ps; h = $ps.BeginInvoke() }
}
$out = foreach ($j in $jobs) { $j.ps.EndInvoke($j.h); $j.ps.Dispose() }
$secs = $sw.Elapsed.TotalSeconds
$pool.Close()
[pscustomobject]@{ out = @($out | ForEach-Object { "$_" }); secs = $secs }
""")[0]
    ids = [o.split("/")[0] for o in r["out"]]
    pids = {o.split("/")[1] for o in r["out"]}
    assert ids == ["1", "2", "3", "4", "5"]
    assert len(pids) == 1, "all five ran in one runspace process: %s" % r["out"]
    # Five 4 s sleeps took well under 20 s: they ran at the same time.
    assert r["secs"] < 12, r


def test_stop_running_pipeline(pd, users):
    r = pwsh(pd, users.admin, r"""
$ps = [powershell]::Create()
$ps.Runspace = $s.Runspace
[void]$ps.AddScript('"started"; Start-Sleep -Seconds 120; "not stopped"')
$out = [System.Management.Automation.PSDataCollection[psobject]]::new()
$h = $ps.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]$null, $out)
$deadline = [datetime]::UtcNow.AddSeconds(60)
while ($out.Count -lt 1 -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
$sw = [Diagnostics.Stopwatch]::StartNew()
$ps.Stop()
$state = $ps.InvocationStateInfo.State
[pscustomobject]@{
    first = "$($out[0])"; count = $out.Count; state = "$state"; secs = $sw.Elapsed.TotalSeconds
    after = Invoke-Command -Session $s { 'still alive' }
}
""")[0]
    assert r["first"] == "started" and r["count"] == 1
    assert r["state"] == "Stopped"
    assert r["secs"] < 30
    assert r["after"] == "still alive"


def test_100000_objects_of_pipeline_input(pd, users):
    t0 = time.monotonic()
    r = pwsh(pd, users.admin, r"""
$r = 1..100000 | Invoke-Command -Session $s { $n = 0; $sum = 0; foreach ($i in $input) { $n++; $sum += $i }; "$n $sum" }
$r
""")
    assert r == ["100000 5000050000"]
    assert time.monotonic() - t0 < 200


def test_pssenderinfo(pd, users):
    # pwsh -s alone has an empty user and no configuration name; wsmprovhost
    # fills both from WinRM, and winrmd's monitor does (mon_pwsh_init_script).
    r = pwsh(pd, users.admin, r"""
Invoke-Command -Session $s {
    $null -ne $PSSenderInfo
    "$($PSSenderInfo.ApplicationArguments.PSVersionTable.PSVersion)"
    $PSSenderInfo.UserInfo.Identity.Name
    $PSSenderInfo.ConnectedUser
    "$($PSSenderInfo.UserInfo.Identity.IsAuthenticated)"
    $PSSenderInfo.ConfigurationName
    $PSSenderInfo.ConnectionString
    # a second runspace of the pool (one per concurrent pipeline) gets it too
} | ForEach-Object { "$_" }
"$($PSVersionTable.PSVersion)"
$pool = New-WinrmdRunspacePool -Uri $uri -Credential $cred -MaxRunspaces 2
$jobs = foreach ($i in 1..2) {
    $ps = [powershell]::Create(); $ps.RunspacePool = $pool
    [void]$ps.AddScript('Start-Sleep -Milliseconds 800; $PSSenderInfo.ConnectedUser')
    [pscustomobject]@{ ps = $ps; h = $ps.BeginInvoke() }
}
foreach ($j in $jobs) { $j.ps.EndInvoke($j.h) | ForEach-Object { "$_" }; $j.ps.Dispose() }
$pool.Close()
""")
    assert r[0] == "True"
    # The client's PSVersionTable travelled in INIT_RUNSPACEPOOL's ApplicationArguments.
    assert r[1] == r[7] and r[1].startswith("7.")
    assert r[2:6] == [users.admin.name, users.admin.name, "True", CONFIG]
    # The URL the client addressed, as WinRM gives wsmprovhost (pwsh alone says http://localhost).
    assert r[6] == "%s?PSVersion=%s" % (pd.https_url, r[1])
    assert r[8:] == [users.admin.name] * 2


def test_start_process_no_new_window_keeps_the_shell(pd, users):
    r = pwsh(pd, users.admin, r"""
Invoke-Command -Session $s { Start-Process -NoNewWindow -Wait /bin/echo 'a stray line on stdout'; 'after' }
# No newline: the text sticks to the front of pwsh's next packet.
Invoke-Command -Session $s { Start-Process -NoNewWindow -Wait /usr/bin/printf 'no newline'; 'glued' }
Invoke-Command -Session $s { 'still alive' }
""")
    # A child started without redirection writes to pwsh's stdout, i.e. into
    # the bridge's packet stream; the shell must survive it.
    assert r == ["after", "glued", "still alive"]


def test_children_do_not_inherit_the_packet_stream(pd, users):
    # pwsh -s/-sshs reads packets from fd 0 and writes them to fd 1, and its
    # children inherit both.  A child that reads stdin (cat, or a native
    # command pwsh does not feed) stole the client's next packets and wedged
    # the shell; one that writes more than a pipe buffer could tear a packet.
    # wsmprovhost's children never see its transport; here the monitor's
    # init script points fds 0 and 1 at /dev/null once pwsh holds its own
    # copies.
    r = pwsh(pd, users.admin, r"""
Invoke-Command -Session $s { Start-Process -NoNewWindow -Wait /bin/cat; 'cat saw end of input' }
Invoke-Command -Session $s { $p = Start-Process -NoNewWindow -PassThru /bin/sh -ArgumentList '-c', 'head -c 100000 /dev/zero | tr \\0 x'; $p.WaitForExit(); 'big writer done' }
Invoke-Command -Session $s { (/usr/bin/readlink /proc/$PID/fd/0) + ' ' + (/usr/bin/readlink /proc/$PID/fd/1) }
# The init script leaves nothing in the user's scope.
Invoke-Command -Session $s { "still alive, $(@(Get-Variable -Name b, c, d, h, fd, t, n, id -ErrorAction Ignore).Count) leftovers" }
""", timeout=60)
    assert r == ["cat saw end of input", "big writer done", "/dev/null /dev/null", "still alive, 0 leftovers"]


def test_large_input_objects_split_across_sends(pd, users):
    # The engine reads its send queue in chunks of at most one fragment size,
    # so with a backlog of 20 KB objects a fragment continues in the next Send.
    r = pwsh(pd, users.admin, r"""
1..300 | ForEach-Object { [string]::new([char](65 + $_ % 26), 20000) } |
    Invoke-Command -Session $s { $n = 0; $len = 0; foreach ($i in $input) { $n++; $len += $i.Length }; "$n $len" }
""")
    assert r == ["300 6000000"]


def test_command_without_command_id(pd, users):
    # A client that leaves the CommandId to the server: pwsh must still find
    # the pipeline, whose id travels inside CREATE_PIPELINE.
    r = pwsh(pd, users.admin, r"""
$ci = New-WinrmdConnectionInfo -Uri $uri -Credential $cred -NoCommandId
$s2 = [Winrmd.Client.WinrmdSession]::Open($ci, $Host, $null)
try {
    Invoke-Command -Session $s2 { 'no id'; 1..3 | ForEach-Object { $_ * 2 } }
    1..3 | Invoke-Command -Session $s2 { ($input | Measure-Object -Sum).Sum }
} finally { Remove-PSSession $s2 }
""", timeout=90)
    assert r == ["no id", 2, 4, 6, 6]


def test_runspace_that_dies_breaks_the_session_at_once(pd, users):
    # The bridge faults the waiting Receives; the engine must report that, not hang.
    r = pwsh(pd, users.admin, r"""
$sw = [Diagnostics.Stopwatch]::StartNew()
$err = $null
$got = [System.Collections.Generic.List[object]]::new()
try { Invoke-Command -Session $s { 'before'; [Environment]::Exit(3) } | ForEach-Object { $got.Add("$_") } }
catch { $err = $_.Exception.Message }
[pscustomobject]@{ got = @($got); err = "$err"; state = "$($s.State)"; secs = $sw.Elapsed.TotalSeconds }
""", timeout=120)[0]
    assert r["got"] == ["before"]
    assert "runspace process ended" in r["err"], r
    assert r["state"] == "Broken"
    assert r["secs"] < 30


def test_command_with_empty_arguments_leaves_pwsh_alive(pd, users):
    # pwsh ends its process on an empty <Data></Data> packet; a raw Command with
    # an empty rsp:Arguments must be refused, not bridged, and the pool lives on.
    r = pwsh(pd, users.admin, r"""
$sid = [Winrmd.Client.WinrmdConnectionInfo]::LastShellId
$body = @"
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:To>$uri</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/powershell/Microsoft.PowerShell</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize><a:MessageID>uuid:$([guid]::NewGuid())</a:MessageID><w:OperationTimeout>PT20S</w:OperationTimeout><w:SelectorSet><w:Selector Name="ShellId">$sid</w:Selector></w:SelectorSet></s:Header><s:Body><rsp:CommandLine CommandId="$([guid]::NewGuid().ToString().ToUpper())"><rsp:Command/><rsp:Arguments/></rsp:CommandLine></s:Body></s:Envelope>
"@
$resp = Invoke-WebRequest -Uri $uri -Method Post -Body $body -ContentType 'application/soap+xml;charset=UTF-8' `
    -Credential $cred -Authentication Basic -SkipCertificateCheck -SkipHttpErrorCheck
Start-Sleep -Seconds 2   # pwsh needs a moment to die of a bad packet
[pscustomobject]@{ sid = "$sid"; status = [int]$resp.StatusCode; after = Invoke-Command -Session $s { 'alive' } }
""", timeout=120)[0]
    assert r["sid"]
    assert r["status"] == 500
    assert r["after"] == "alive"


def test_host_calls_reach_the_client_host(pd, users):
    # Remote host calls travel to the client's host and its answers come back
    # (PIPELINE_HOST_CALL / HOST_RESPONSE): the value is the client's, and the
    # client pwsh is -NonInteractive, so Read-Host fails with the client's error.
    r = pwsh(pd, users.admin, r"""
$fg = "$($Host.UI.RawUI.ForegroundColor)"
$o = Invoke-Command -Session $s {
    "$($Host.UI.RawUI.ForegroundColor)"
    try { Read-Host -Prompt 'question'; 'no error' } catch { $_.Exception.Message }
}
[pscustomobject]@{ local = $fg; remote = "$($o[0])"; read = "$($o[1])" }
""", timeout=120)[0]
    assert r["remote"] == r["local"]
    assert "NonInteractive" in r["read"], r


def test_runspace_error_faults_the_client_and_ends_the_shell(pd, users):
    # A message whose XML is cut short, sent to the pool by a raw Send: pwsh
    # reports the error ("Remote transport error: ...") and stays alive.  As
    # wsmprovhost, the bridge must end the shell and fault the waiting Receive,
    # so the session breaks with pwsh's message instead of hanging on.
    r = pwsh(pd, users.admin, r"""
$sid = [Winrmd.Client.WinrmdConnectionInfo]::LastShellId
$rpid = Invoke-Command -Session $s { $PID }
# PSRP fragment: object id, fragment id, start|end, length; then the message:
# destination server, SET_MAX_RUNSPACES, pool id, no pipeline, broken XML.
$msg = [byte[]](2,0,0,0, 2,0x10,2,0) + [byte[]]::new(32) + [Text.Encoding]::UTF8.GetBytes('<Obj')
$len = [BitConverter]::GetBytes([int]$msg.Length); [Array]::Reverse($len)
$frag = [byte[]](0,0,0,0,0,0,0,9, 0,0,0,0,0,0,0,0, 3) + $len + $msg
$b64 = [Convert]::ToBase64String($frag)
$body = @"
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell"><s:Header><a:To>$uri</a:To><w:ResourceURI s:mustUnderstand="true">http://schemas.microsoft.com/powershell/Microsoft.PowerShell</w:ResourceURI><a:ReplyTo><a:Address s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><a:Action s:mustUnderstand="true">http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send</a:Action><w:MaxEnvelopeSize s:mustUnderstand="true">512000</w:MaxEnvelopeSize><a:MessageID>uuid:$([guid]::NewGuid())</a:MessageID><w:OperationTimeout>PT20S</w:OperationTimeout><w:SelectorSet><w:Selector Name="ShellId">$sid</w:Selector></w:SelectorSet></s:Header><s:Body><rsp:Send><rsp:Stream Name="stdin">$b64</rsp:Stream></rsp:Send></s:Body></s:Envelope>
"@
$sw = [Diagnostics.Stopwatch]::StartNew()
$resp = Invoke-WebRequest -Uri $uri -Method Post -Body $body -ContentType 'application/soap+xml;charset=UTF-8' `
    -Credential $cred -Authentication Basic -SkipCertificateCheck -SkipHttpErrorCheck
while ("$($s.State)" -ne 'Broken' -and $sw.Elapsed.TotalSeconds -lt 30) { Start-Sleep -Milliseconds 100 }
$secs = $sw.Elapsed.TotalSeconds
$alive = $true
for ($i = 0; $i -lt 100 -and $alive; $i++) { $alive = [bool](Get-Process -Id $rpid -ErrorAction SilentlyContinue); if ($alive) { Start-Sleep -Milliseconds 100 } }
[pscustomobject]@{
    status = [int]$resp.StatusCode; state = "$($s.State)"; secs = $secs; runspace_alive = $alive
    reason = "$($s.Runspace.RunspaceStateInfo.Reason.Message)"
}
$s = $null   # broken: nothing to remove
""", timeout=120)[0]
    assert r["status"] == 200, r
    assert r["state"] == "Broken", (r, pd.log()[-3000:])
    assert r["secs"] < 20, r
    assert "runspace reported an error: Remote transport error: Unexpected end of file" in r["reason"], r
    assert not r["runspace_alive"], r
    assert "reported an error" in pd.log()
