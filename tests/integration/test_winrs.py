"""WinRS (remote shell) integration tests for winrmd, with real clients.

Clients: pywinrm (Basic over HTTPS, plaintext over HTTP: Debian's 0.3 in the
core suite, the latest from PyPI in the pypi suite), Debian's python3-winrm 0.3
in a subprocess of the system Python, a Go client built on masterzen/winrm
(tests/integration/go: Debian's package in core, the module proxy's in pypi),
raw SOAP over requests / a TLS socket for the wire details, and in the pypi
suite pypsrp's WinRS layer.

Run as root:  make check (or tests/integration/run.sh build core)
"""
import base64
import hashlib
import json
import os
import pwd
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
import winrm
from winrm.exceptions import WinRMError
from winrm.protocol import Protocol
try:
    from pypsrp.client import Client
    from pypsrp.shell import CommandState, Process, SignalCode, WinRS
    from pypsrp.wsman import WSMan
except ImportError:  # only tests marked `pypi` use them; they run where PyPI is reachable
    Client = CommandState = Process = SignalCode = WinRS = WSMan = None

from daemon_util import Daemon, make_user, remove_user, stop_and_check
from go_client import build as go_build, clean_env, result as go_result, run as go_run
from wsman_util import (
    ALLOWED_GROUP, NS, RESOURCE_CMD_SHELL, basic_header, describe, envelope,
    log_records, parse, post, assert_ok, assert_fault, pywinrm_fault, shell_create_envelope, user_pids,
    wait_for, ACT_SHELL, ACT_COMMAND, ACT_RECEIVE, ACT_SEND, ACT_SIGNAL, ACT_DELETE, ACT_ENUMERATE,
    RESOURCE_SHELL, SIGNAL_TERMINATE, STATE_DONE, RawShell, parse_receive, xml_escape, pgrep,
)

HERE = os.path.dirname(os.path.abspath(__file__))


ERROR_SHELL_NOT_FOUND = 2150858843
ERROR_OPERATION_TIMEOUT = 2150858793
ERROR_QUOTA_SHELLS = 2150859173
ERROR_PROCESS_FAILED = 2150858883
ERROR_COMMAND_ID_CONFLICT = 2150859222
ERROR_COMMAND_ID_INVALID = 2150859220

OPENSSL_KEY = "000102030405060708090a0b0c0d0e0f"
OPENSSL_IV = "0f0e0d0c0b0a09080706050403020100"
BIG = 100 * 1024 * 1024


# =========================================================================== fixtures

@pytest.fixture(scope="module")
def shell_users(users):
    """admin (A) from conftest, plus admin2 (B): a second allowed user who is
    also in an extra group (for the supplementary-groups check)."""
    extra = "wrsgrp%s" % secrets.token_hex(3)
    subprocess.run(["groupadd", extra], check=True, capture_output=True)
    b = make_user("wrsadm2", (ALLOWED_GROUP, extra))
    try:
        yield SimpleNamespace(a=users.admin, b=b, extra_group=extra)
    finally:
        remove_user(b)
        subprocess.run(["groupdel", extra], capture_output=True)


@pytest.fixture(scope="module")
def wd(tmp_path_factory, tls_cert, shell_users):
    """A daemon for the shell tests: HTTP allowed unencrypted (for pywinrm's
    'plaintext' transport) and room for 60 shells per user (the concurrency
    test opens 50 at once)."""
    d = Daemon(tmp_path_factory.mktemp("winrmd-winrs"), *tls_cert,
               service={"AllowUnencrypted": "true"},
               winrs={"MaxShellsPerUser": "60"})
    d.start()
    yield d
    stop_and_check(d)


def session(d, user, https=True):
    """A pywinrm (venv, 0.5) Session: Basic over HTTPS or plaintext over HTTP."""
    if https:
        return winrm.Session(d.https_url, auth=(user.name, user.password), transport="basic",
                             server_cert_validation="ignore")
    return winrm.Session(d.http_url, auth=(user.name, user.password), transport="plaintext")


def protocol(d, user, **kw):
    return Protocol(d.https_url, transport="basic", username=user.name, password=user.password,
                    server_cert_validation="ignore", **kw)


def run_in_shell(d, user, command, args=(), **shell_kw):
    """open_shell(**shell_kw) -> run -> output -> cleanup -> close (pywinrm 0.5)."""
    p = protocol(d, user)
    sid = p.open_shell(**shell_kw)
    try:
        cid = p.run_command(sid, command, list(args))
        out, err, code = p.get_command_output(sid, cid)
        p.cleanup_command(sid, cid)
    finally:
        p.close_shell(sid)
    return out, err, code


def pypsrp_wsman(d, user, **kw):
    return WSMan("127.0.0.1", port=d.https_port, username=user.name, password=user.password,
                 ssl=True, auth="basic", cert_validation=False, **kw)


# =========================================================================== raw SOAP

def kill_user_procs(user, argv):
    for pid in pgrep(user, argv):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


# =========================================================================== pywinrm (venv)

@pytest.mark.parametrize("https", [True, False], ids=["basic-https", "plaintext-http"])
def test_pywinrm_echo_exit_stderr(wd, shell_users, https):
    s = session(wd, shell_users.a, https=https)
    r = s.run_cmd("echo hello world")
    assert (r.status_code, r.std_out, r.std_err) == (0, b"hello world\n", b"")
    r = s.run_cmd("echo to-out; echo to-err >&2; exit 7")
    assert r.status_code == 7
    assert r.std_out == b"to-out\n"
    assert r.std_err == b"to-err\n"
    r = s.run_cmd("uname", ["-a"])
    assert r.status_code == 0
    assert r.std_out.decode() == subprocess.run(["uname", "-a"], capture_output=True,
                                                text=True).stdout


def test_pywinrm_env_and_cwd(wd, shell_users):
    # One variable per shell: pywinrm 0.3 (Debian) sends only the last of
    # several (a client bug, fixed in 0.4); test_identity_and_environment
    # sends several at once with raw SOAP.
    for value in ("one", "two words", "x=y"):
        out, err, code = run_in_shell(wd, shell_users.a, 'echo "[$WRS_A]"', env_vars={"WRS_A": value})
        assert (out, err, code) == (b"[%s]\n" % value.encode(), b"", 0)
    out, err, code = run_in_shell(wd, shell_users.a, "pwd", working_directory="/tmp")
    assert (out, code) == (b"/tmp\n", 0), err


def test_pywinrm_unicode(wd, shell_users):
    s = session(wd, shell_users.a)
    r = s.run_cmd(r"printf 'caf\303\251 \342\234\223\n'")
    assert r.status_code == 0 and r.std_out == "café ✓\n".encode("utf-8")
    # and UTF-8 in the command text itself
    r = s.run_cmd("echo 'é ✓ 日本'")
    assert r.status_code == 0 and r.std_out == "é ✓ 日本\n".encode("utf-8"), r.std_out


def test_pywinrm_binary_output(wd, shell_users):
    s = session(wd, shell_users.a)
    cmd = ('f=$(mktemp); head -c 65536 /dev/urandom > "$f"; sha256sum < "$f" | cut -d" " -f1 >&2; '
           'cat "$f"; rm -f "$f"')
    r = s.run_cmd(cmd)
    assert r.status_code == 0, r.std_err
    assert len(r.std_out) == 65536
    assert hashlib.sha256(r.std_out).hexdigest() == r.std_err.decode().strip()
    # every byte value survives
    fmt = "".join("\\%03o" % i for i in range(256))
    r = s.run_cmd("printf '%s'" % fmt)
    assert r.status_code == 0, r.std_err
    assert r.std_out == bytes(range(256))


def test_pywinrm_100mb_stdout(wd, shell_users):
    gen = ("head -c %d /dev/zero | openssl enc -aes-128-ctr -K %s -iv %s"
           % (BIG, OPENSSL_KEY, OPENSSL_IV))
    expected = hashlib.sha256(subprocess.run(["sh", "-c", gen], capture_output=True,
                                             check=True).stdout).hexdigest()
    s = session(wd, shell_users.a)
    t0 = time.monotonic()
    r = s.run_cmd(gen)
    took = time.monotonic() - t0
    assert r.status_code == 0, r.std_err[:2000]
    assert len(r.std_out) == BIG
    assert hashlib.sha256(r.std_out).hexdigest() == expected
    print("100 MB through pywinrm in %.1f s" % took)


# Where the daemon looks for pwsh (config/conf.c: conf_pwsh_path).
PWSH = any(os.access(p, os.X_OK) for p in
           ("/usr/bin/pwsh", "/usr/local/bin/pwsh", "/opt/microsoft/powershell/7/pwsh", "/snap/bin/pwsh"))


def test_pywinrm_powershell_command_line(wd, shell_users):
    """pywinrm's run_ps sends `powershell -encodedcommand`: pwsh runs it when
    installed, else the client gets cmd.exe's unknown-program answer, 9009."""
    s = session(wd, shell_users.a)
    script = base64.b64encode("Write-Output hi".encode("utf-16-le")).decode()
    r = s.run_cmd("powershell", ["-encodedcommand", script])
    if PWSH:
        assert r.status_code == 0, r.std_err
        assert r.std_out.strip() == b"hi"
    else:
        assert r.status_code == 9009
        assert b"is not recognized" in r.std_err
        assert r.std_out == b""


# =========================================================================== pywinrm 0.3 (Debian)

def run_pywinrm03(d, user, ops):
    job = {"url": d.https_url, "user": user.name, "password": user.password,
           "transport": "basic", "ops": ops}
    path = os.path.join(d.dir, "job-%s.json" % secrets.token_hex(4))
    with open(path, "w") as f:
        json.dump(job, f)
    p = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "pywinrm03_client.py"), path],
                       capture_output=True, text=True, timeout=300, env=clean_env(),
                       cwd="/")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["file"].startswith("/usr/lib/python3/dist-packages/"), res["file"]
    out = []
    for r in res["results"]:
        assert "error" not in r, r["error"]
        out.append((base64.b64decode(r["out"]), base64.b64decode(r["err"]), r["code"]))
    return out


def test_pywinrm03_debian(wd, shell_users):
    script = base64.b64encode("Write-Output hi".encode("utf-16-le")).decode()
    res = run_pywinrm03(wd, shell_users.a, [
        {"kind": "run_cmd", "command": "echo", "args": ["hello", "0.3"]},
        {"kind": "run_cmd", "command": "echo out; echo err >&2; exit 7"},
        # pywinrm 0.3 only sends the last variable (client bug): use one
        {"kind": "shell", "command": 'echo "[$WRS_ONE]"', "env": {"WRS_ONE": "v 1"}},
        {"kind": "shell", "command": "pwd", "cwd": "/tmp"},
        {"kind": "run_cmd", "command": r"printf 'caf\303\251 \342\234\223\n'"},
        {"kind": "run_cmd", "command": "uname", "args": ["-a"]},
        {"kind": "run_cmd", "command": "powershell", "args": ["-encodedcommand", script]},
    ])
    assert res[0] == (b"hello 0.3\n", b"", 0)
    assert res[1] == (b"out\n", b"err\n", 7)
    assert res[2] == (b"[v 1]\n", b"", 0)
    assert res[3][0] == b"/tmp\n" and res[3][2] == 0
    assert res[4] == ("café ✓\n".encode(), b"", 0)
    assert res[5][0].decode() == os.uname().sysname + " " + res[5][0].decode().split(" ", 1)[1]
    assert res[5][2] == 0
    if PWSH:
        assert res[6] == (b"hi\n", b"", 0), res[6]
    else:
        assert res[6][2] == 9009 and b"is not recognized" in res[6][1]


def test_pywinrm03_binary(wd, shell_users):
    cmd = ('f=$(mktemp); head -c 65536 /dev/urandom > "$f"; sha256sum < "$f" | cut -d" " -f1 >&2; '
           'cat "$f"; rm -f "$f"')
    (out, err, code), = run_pywinrm03(wd, shell_users.a, [{"kind": "run_cmd", "command": cmd}])
    assert code == 0 and len(out) == 65536
    assert hashlib.sha256(out).hexdigest() == err.decode().strip()


# =========================================================================== pypsrp

@pytest.mark.pypi
def test_pypsrp_execute_cmd(wd, shell_users):
    u = shell_users.a
    with Client("127.0.0.1", port=wd.https_port, username=u.name, password=u.password,
                ssl=True, auth="basic", cert_validation=False) as c:
        out, err, rc = c.execute_cmd("echo hello; echo oops >&2; exit 4")
        assert (out, err, rc) == ("hello\n", "oops\n", 4)
        out, err, rc = c.execute_cmd('echo "$WRS_PS"', environment={"WRS_PS": "from pypsrp"})
        assert (out, rc) == ("from pypsrp\n", 0), err


def test_stdin_streaming(wd, shell_users):
    """The core twin of test_pypsrp_stdin_streaming, in raw SOAP as pypsrp sends it."""
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, "cat")
        chunks = [("chunk %d " % i).encode() * 50 + b"\n" for i in range(20)]
        raw.send_all(sid, cid, chunks)
        assert raw.receive_all(sid, cid) == (b"".join(chunks), b"", 0)

        # WINRS_SKIP_CMD_SHELL=TRUE: Arguments joined, then split cmd.exe-style
        cid = raw.command(sid, "/bin/sh", ["-c", '"read x; echo got:$x:$#"', "sh"], no_shell=True)
        raw.send_all(sid, cid, [b"line one\n"])
        assert raw.receive_all(sid, cid) == (b"got:line one:0\n", b"", 0)

        # with the shell, the joined line goes to /bin/sh -c: quoting is sh's
        cid = raw.command(sid, "printf", ["'%s|'", "a", "'b c'"])
        assert raw.receive_all(sid, cid) == (b"a|b c|", b"", 0)
    finally:
        raw.delete(sid)


def test_ctrl_c_ends_command(wd, shell_users):
    """The core twin of test_pypsrp_ctrl_c: Signal ctrl_c ends the command."""
    u = shell_users.a
    raw = RawShell(wd, u)
    sid = raw.create()
    try:
        cid = raw.command(sid, "sleep 4243")
        assert wait_for(lambda: pgrep(u.name, "sleep 4243"), 10), "sleep did not start"
        t0 = time.monotonic()
        assert_ok(*raw.signal(sid, cid, ACT_SHELL + "signal/ctrl_c"))
        out, err, code = raw.receive_all(sid, cid, limit=30)
        assert time.monotonic() - t0 < 10, "the command took too long to end after ctrl_c"
        assert code not in (None, 0), code
        assert not pgrep(u.name, "sleep 4243")
    finally:
        raw.delete(sid)


def test_large_stdin_flow_control_raw(wd, shell_users):
    """The core twin of test_large_stdin_flow_control: 8 MB through stdin
    (more than the daemon buffers) into a slow reader, in 96 KiB Sends."""
    data = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, "sleep 1; sha256sum | cut -d' ' -f1")
        step = 96 * 1024
        raw.send_all(sid, cid, [data[i:i + step] for i in range(0, len(data), step)])
        out, err, code = raw.receive_all(sid, cid)
        assert code == 0, err
        assert out.decode().strip() == hashlib.sha256(data).hexdigest()
    finally:
        raw.delete(sid)


@pytest.mark.pypi
def test_pypsrp_stdin_streaming(wd, shell_users):
    wsman = pypsrp_wsman(wd, shell_users.a)
    with WinRS(wsman) as shell:
        p = Process(shell, "cat")
        p.begin_invoke()
        chunks = [("chunk %d " % i).encode() * 50 + b"\n" for i in range(20)]
        for ch in chunks[:-1]:
            p.send(ch, end=False)
        p.send(chunks[-1], end=True)
        p.end_invoke()
        assert p.rc == 0
        assert p.stdout == b"".join(chunks)

        # no_shell: WINRS_SKIP_CMD_SHELL=True runs the program without /bin/sh -c.
        # As on Windows, the Arguments are joined into one command line and
        # split again cmd.exe-style, so an argument with blanks needs quotes.
        p = Process(shell, "/bin/sh", ["-c", '"read x; echo got:$x:$#"', "sh"], no_shell=True)
        p.begin_invoke()
        p.send(b"line one\n", end=True)
        p.end_invoke()
        assert (p.rc, p.stdout) == (0, b"got:line one:0\n"), p.stderr

        # with the shell, the joined line goes to /bin/sh -c: quoting is sh's
        p = Process(shell, "printf", ["'%s|'", "a", "'b c'"])
        p.invoke()
        assert (p.rc, p.stdout) == (0, b"a|b c|"), p.stderr


@pytest.mark.pypi
def test_pypsrp_ctrl_c(wd, shell_users):
    u = shell_users.a
    wsman = pypsrp_wsman(wd, u)
    with WinRS(wsman) as shell:
        p = Process(shell, "sleep 4242")
        p.begin_invoke()
        assert wait_for(lambda: pgrep(u.name, "sleep 4242"), 10), "sleep did not start"
        t0 = time.monotonic()
        p.signal(SignalCode.CTRL_C)
        while p.state != CommandState.DONE and time.monotonic() - t0 < 30:
            p.poll_invoke(timeout=5)
        took = time.monotonic() - t0
        assert p.state == CommandState.DONE, "ctrl_c did not end the command"
        assert took < 10, "the command took %.1f s to end after ctrl_c" % took
        assert p.rc not in (None, 0), p.rc
        assert not pgrep(u.name, "sleep 4242")


# =========================================================================== Go masterzen/winrm

@pytest.fixture(scope="module")
def go_client(tmp_path_factory):
    return go_build(tmp_path_factory)


def run_go(client, d, user, stdin, *cmd):
    return go_result(go_run(client, d.https_port, user.name, user.password, stdin, *cmd))


def check_go_stdin(client, d, user):
    out, err, code = run_go(client, d, user, "line1\nline2\n", "cat; echo done")
    assert (out, err, code) == (b"line1\nline2\ndone\n", b"", 0)
    out, err, code = run_go(client, d, user, "", "echo 'a&b'; exit 3")
    assert code == 3 and out == b"a&b\n", (out, err)


def test_go_masterzen_stdin(go_client, wd, shell_users):
    """Debian's masterzen/winrm (GOPATH build)."""
    check_go_stdin(go_client, wd, shell_users.a)


@pytest.mark.pypi
def test_go_masterzen_module_proxy_stdin(tmp_path_factory, wd, shell_users):
    """The masterzen/winrm version go.mod pins, from the Go module proxy."""
    check_go_stdin(go_build(tmp_path_factory, source="proxy"), wd, shell_users.a)


# =========================================================================== concurrency and quotas

def test_50_concurrent_shells(wd, shell_users):
    n = 50
    barrier = threading.Barrier(n, timeout=240)
    results = [None] * n

    def worker(i):
        try:
            p = protocol(wd, shell_users.a)
            sid = p.open_shell()
            try:
                barrier.wait()      # all 50 shells exist at once
                cid = p.run_command(sid, "sleep 1; echo worker-%d; id -un" % i)
                out, err, code = p.get_command_output(sid, cid)
                p.cleanup_command(sid, cid)
            finally:
                p.close_shell(sid)
            results[i] = (out, err, code)
        except Exception as e:
            barrier.abort()
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "workers hung"
    bad = [(i, r) for i, r in enumerate(results)
           if r != (("worker-%d\n%s\n" % (i, shell_users.a.name)).encode(), b"", 0)]
    assert not bad, bad[:5]


def test_max_shells_per_user(winrmd, users):
    d = winrmd(winrs={"MaxShellsPerUser": "2"})
    p = protocol(d, users.admin)
    s1, s2 = p.open_shell(), p.open_shell()
    xml, mid = shell_create_envelope()
    r = post(d.https_url, xml, user=users.admin)
    assert_fault(r, ERROR_QUOTA_SHELLS, mid)
    # pywinrm sees the same fault
    with pytest.raises(WinRMError) as ei:
        p.open_shell()
    assert pywinrm_fault(ei.value)[1] == ERROR_QUOTA_SHELLS, str(ei.value)
    # the first two still work, and closing one frees a slot
    cid = p.run_command(s1, "echo still")
    assert p.get_command_output(s1, cid) == (b"still\n", b"", 0)
    p.close_shell(s2)
    s3 = p.open_shell()
    p.close_shell(s3)
    p.close_shell(s1)


def test_max_processes_per_shell_counts_what_commands_start(winrmd, users):
    """MaxProcessesPerShell counts the shell's processes, not its commands:
    one command that started two more fills a quota of 3."""
    d = winrmd(winrs={"MaxProcessesPerShell": "3"})
    p = protocol(d, users.admin)
    sid = p.open_shell()

    def sleepers():
        return len(pgrep(users.admin.name, "sleep 41"))

    busy = p.run_command(sid, "sleep 41 & sleep 41 & wait")
    assert wait_for(lambda: sleepers() == 2, 10), "the two sleeps did not start"
    with pytest.raises(WinRMError) as ei:
        p.run_command(sid, "echo refused")
    _, code, text = pywinrm_fault(ei.value)
    assert code == ERROR_PROCESS_FAILED, text
    # The fault's message names the quota (pywinrm 0.3 keeps only the Reason).
    r, mid = RawShell(d, users.admin).command_raw(sid, "<rsp:Command>echo refused</rsp:Command>")
    assert_fault(r, ERROR_PROCESS_FAILED, mid)
    assert "MaxProcessesPerShell quota of 3 processes" in r.text, r.text
    # Terminating the command (its process group) frees the quota.
    p.cleanup_command(sid, busy)
    assert wait_for(lambda: sleepers() == 0, 10)
    cid = p.run_command(sid, "echo again")
    assert p.get_command_output(sid, cid) == (b"again\n", b"", 0)
    p.cleanup_command(sid, cid)
    p.close_shell(sid)


# =========================================================================== identity and environment

def test_identity_and_environment(wd, shell_users):
    u = shell_users.b
    pw = pwd.getpwnam(u.name)
    cmd = ('id -u; id -g; id -G; echo "$HOME|$USER|$LOGNAME"; '
           'echo "LD=${LD_PRELOAD-unset}"; echo "OK=${WRS_OK-unset}"; env')
    out, err, code = run_in_shell(wd, u, cmd,
                                  env_vars={"LD_PRELOAD": "/nonexistent/evil.so", "WRS_OK": "yes"})
    assert code == 0, err
    lines = out.decode().splitlines()
    assert int(lines[0]) == pw.pw_uid
    assert int(lines[1]) == pw.pw_gid
    assert sorted(map(int, lines[2].split())) == sorted(set(os.getgrouplist(u.name, pw.pw_gid)))
    assert lines[3] == "%s|%s|%s" % (pw.pw_dir, u.name, u.name)
    assert lines[4] == "LD=unset"
    assert lines[5] == "OK=yes"          # other variables do arrive
    assert not any(l.startswith("LD_PRELOAD=") for l in lines[6:])
    assert b"evil.so" not in err


# =========================================================================== isolation between users

def _fault_shape(resp, ids):
    """The fault minus the ShellId / MessageIDs: (status, normalized s:Fault xml)."""
    root = parse(resp.text)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, describe(resp)
    text = ET.tostring(fault, encoding="unicode")
    for i in ids:
        text = re.sub(re.escape(i), "SHELLID", text, flags=re.I)
    return resp.status_code, text


def test_other_user_cannot_touch_shell(wd, shell_users):
    a, b = RawShell(wd, shell_users.a), RawShell(wd, shell_users.b)
    sid = a.create()
    cid = a.command(sid, "sleep 5; echo from-a")
    bogus = str(uuid.uuid4()).upper()
    ops = [
        ("command", lambda s: b.command_raw(s, "<rsp:Command>id</rsp:Command>")),
        ("receive", lambda s: b.receive_once(s, cid, timeout="PT2S")),
        ("signal", lambda s: b.signal(s, cid)),
        ("delete", lambda s: b.delete(s)),
    ]
    for name, op in ops:
        ra, mida = op(sid)
        assert_fault(ra, ERROR_SHELL_NOT_FOUND, mida)
        rb, midb = op(bogus)
        assert_fault(rb, ERROR_SHELL_NOT_FOUND, midb)
        assert _fault_shape(ra, [sid]) == _fault_shape(rb, [bogus]), \
            "%s: another user's shell answers differently from a missing one:\n%s\n%s" % (
                name, ra.text, rb.text)
    assert sid.upper() not in b.enumerate_ids()
    assert sid.upper() in a.enumerate_ids()
    # B's own shell works (so B really is an allowed user)
    sb = b.create()
    assert sb.upper() in b.enumerate_ids() and sb.upper() not in a.enumerate_ids()
    b.delete(sb)
    # A's shell and command are untouched
    out, err, code = a.receive_all(sid, cid)
    assert (out, code) == (b"from-a\n", 0), err
    r, mid = a.delete(sid)
    assert_ok(r, mid)


# =========================================================================== process lifecycle

def test_idle_timeout_reaps_shell_and_processes(winrmd, users):
    d = winrmd(winrs={"IdleTimeout": "3000"})
    u = users.admin
    raw = RawShell(d, u)
    sid = raw.create()
    cid = raw.command(sid, "sleep 3011")
    try:
        assert wait_for(lambda: pgrep(u.name, "sleep 3011"), 10), "sleep did not start"
        time.sleep(6)
        assert wait_for(lambda: not pgrep(u.name, "sleep 3011"), 10), \
            "the idle shell's command still runs: %s" % pgrep(u.name, "sleep 3011")
        r, mid = raw.receive_once(sid, cid)
        assert_fault(r, ERROR_SHELL_NOT_FOUND, mid)
        recs = log_records(d.log())
        assert any(rec.get("WINRMD_RESULT") == "shell-idle-timeout"
                   and rec.get("WINRMD_SHELL_ID", "").upper() == sid.upper() for rec in recs), \
            d.log()[-3000:]
    finally:
        kill_user_procs(u.name, "sleep 3011")


def test_kill_9_gives_done_137(wd, shell_users):
    u = shell_users.a
    raw = RawShell(wd, u)
    sid = raw.create()
    try:
        cid = raw.command(sid, "sleep 3012")
        pids = wait_for(lambda: pgrep(u.name, "sleep 3012"), 10)
        assert pids, "sleep did not start"
        for pid in pids:
            os.kill(pid, 9)
        out, err, code = raw.receive_all(sid, cid, limit=30)
        assert code == 137, (out, err, code)
    finally:
        kill_user_procs(u.name, "sleep 3012")
        raw.delete(sid)


def _raw_tls_post(d, xml, user):
    body = xml.encode()
    req = ("POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
           "Content-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: %d\r\n\r\n"
           % (d.https_port, basic_header(user.name, user.password), len(body))).encode() + body
    ctx = ssl._create_unverified_context()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", d.https_port), timeout=30),
                        server_hostname="localhost")
    s.sendall(req)
    return s


def test_vanished_receive_loses_no_output(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, "sleep 2; echo late")
        body = ('<rsp:Receive><rsp:DesiredStream CommandId="%s">stdout stderr</rsp:DesiredStream>'
                "</rsp:Receive>" % cid)
        xml, _ = envelope(ACT_RECEIVE, RESOURCE_CMD_SHELL, body, selectors={"ShellId": sid},
                          operation_timeout="PT20S")
        s = _raw_tls_post(wd, xml, shell_users.a)
        time.sleep(0.3)         # let the daemon park it
        s.close()
        time.sleep(4)
        out, err, code = raw.receive_all(sid, cid, limit=30)
        assert (out, err, code) == (b"late\n", b"", 0)
    finally:
        raw.delete(sid)


def test_receive_long_poll_timeout(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, "sleep 30")
        t0 = time.monotonic()
        r, mid = raw.receive_once(sid, cid, timeout="PT2S")
        took = time.monotonic() - t0
        assert_fault(r, ERROR_OPERATION_TIMEOUT, mid)
        assert "OperationTimeout" in r.text
        assert 1.5 <= took <= 6, "the Receive answered after %.2f s" % took
        r, mid = raw.signal(sid, cid)
        assert_ok(r, mid)
    finally:
        raw.delete(sid)


# =========================================================================== client quirks on the wire

def test_ruby_quoted_command(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, None, inner='<rsp:Command>"echo hi"</rsp:Command>')
        assert raw.receive_all(sid, cid) == (b"hi\n", b"", 0)
        # Ruby also sends upper-case client CommandIds
        want = str(uuid.uuid4()).upper()
        body = ('<rsp:CommandLine CommandId="%s"><rsp:Command>"echo id"</rsp:Command>'
                "</rsp:CommandLine>" % want)
        r, mid = raw.post(ACT_COMMAND, body, sid)
        root = assert_ok(r, mid)
        assert root.find("s:Body/rsp:CommandResponse/rsp:CommandId", NS).text.upper() == want
        assert raw.receive_all(sid, want) == (b"id\n", b"", 0)
        # The id is still the shell's (no terminate Signal yet): reusing it is refused,
        # and so is an id that is not a GUID.
        r, mid = raw.post(ACT_COMMAND, body.replace(want, want.lower()), sid)
        assert_fault(r, ERROR_COMMAND_ID_CONFLICT, mid)
        r, mid = raw.post(ACT_COMMAND, body.replace(want, "not-a-guid"), sid)
        assert_fault(r, ERROR_COMMAND_ID_INVALID, mid)
    finally:
        raw.delete(sid)


def test_go_cdata_and_pypsrp_arguments(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, None, inner='<rsp:Command><![CDATA[echo "a<b>&c"]]></rsp:Command>')
        assert raw.receive_all(sid, cid) == (b"a<b>&c\n", b"", 0)
        cid = raw.command(sid, None, inner="<rsp:Command><![CDATA[printf '%s|' x]]></rsp:Command>"
                                            "<rsp:Arguments><![CDATA['y&z']]></rsp:Arguments>")
        assert raw.receive_all(sid, cid) == (b"x|y&z|", b"", 0)
        cid = raw.command(sid, "printf", ["%s-", "one", "two"])
        assert raw.receive_all(sid, cid) == (b"one-two-", b"", 0)
    finally:
        raw.delete(sid)


def test_ruby_wrapped_base64_stdin(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        data = bytes(range(256)) * 3 + b"tail\n"
        cid = raw.command(sid, "head -c %d | od -An -tx1 | tr -d ' \\n'" % len(data))
        b64 = base64.b64encode(data).decode()
        wrapped = "\n".join(b64[i:i + 60] for i in range(0, len(b64), 60)) + "\n"
        r, mid = raw.send(sid, cid, wrapped)        # Ruby never sends End
        assert_ok(r, mid)
        out, err, code = raw.receive_all(sid, cid)
        assert code == 0, err
        assert out.decode() == data.hex()
    finally:
        raw.delete(sid)


# =========================================================================== audit log

def test_audit_log(wd, shell_users):
    token = secrets.token_hex(4)
    s = session(wd, shell_users.a)
    r = s.run_cmd("echo audit-%s; exit 5" % token)
    assert r.status_code == 5
    def find():
        recs = [x for x in log_records(wd.log()) if x.get("WINRMD_USER") == shell_users.a.name]
        started = [x for x in recs if x.get("WINRMD_RESULT") == "command-started"
                   and token in x.get("WINRMD_COMMAND_LINE", "")]
        if not started:
            return None
        sid = started[-1].get("WINRMD_SHELL_ID")
        by = {x.get("WINRMD_RESULT"): x for x in recs if x.get("WINRMD_SHELL_ID") == sid}
        if {"shell-created", "command-started", "command-exited", "shell-deleted"} <= set(by):
            return by
        return None
    by = wait_for(find, 10)
    assert by, "audit records missing; log tail:\n" + wd.log()[-4000:]
    assert by["command-exited"].get("WINRMD_EXIT_CODE") == "5", by["command-exited"]["_line"]
    assert token in by["command-exited"].get("WINRMD_COMMAND_LINE", "")
    for rec in by.values():
        assert rec.get("WINRMD_REMOTE_ADDR", "").startswith("127.0.0.1"), rec["_line"]


# =========================================================================== limits and cleanup

def test_receive_respects_max_envelope_size(wd, shell_users):
    raw = RawShell(wd, shell_users.a)
    sid = raw.create()
    try:
        cid = raw.command(sid, "head -c 3000000 /dev/zero | tr '\\0' 'q'; echo x >&2")
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + 60
        done = False
        while not done and time.monotonic() < deadline:
            r, mid = raw.receive_once(sid, cid, timeout="PT5S")   # MaxEnvelopeSize 153600
            if r.status_code == 500 and "2150858793" in r.text:
                continue
            assert len(r.content) <= 153600, "a Receive reply of %d bytes" % len(r.content)
            done, code = parse_receive(assert_ok(r, mid), out, err)
        assert done and code == 0
        assert bytes(out) == b"q" * 3000000 and bytes(err) == b"x\n"
    finally:
        raw.delete(sid)


@pytest.mark.pypi
def test_large_stdin_flow_control(wd, shell_users):
    """8 MB through stdin (more than the daemon buffers) into a slow reader."""
    data = hashlib.sha256(b"seed").digest() * (8 * 1024 * 1024 // 32)
    wsman = pypsrp_wsman(wd, shell_users.a)
    with WinRS(wsman) as shell:
        p = Process(shell, "sleep 1; sha256sum | cut -d' ' -f1")
        p.begin_invoke()
        step = 96 * 1024
        for i in range(0, len(data), step):
            p.send(data[i:i + step], end=i + step >= len(data))
        p.end_invoke()
        assert p.rc == 0, p.stderr
        assert p.stdout.decode().strip() == hashlib.sha256(data).hexdigest()


def test_delete_kills_running_command(wd, shell_users):
    u = shell_users.a
    raw = RawShell(wd, u)
    sid = raw.create()
    try:
        raw.command(sid, "sleep 3013")
        assert wait_for(lambda: pgrep(u.name, "sleep 3013"), 10), "sleep did not start"
        r, mid = raw.delete(sid)
        assert_ok(r, mid)
        assert wait_for(lambda: not pgrep(u.name, "sleep 3013"), 10), \
            "Delete left the command running"
    finally:
        kill_user_procs(u.name, "sleep 3013")
