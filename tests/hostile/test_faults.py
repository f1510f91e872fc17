"""Fault injection: runspace processes and the worker killed, clients vanishing,
SIGTERM with work in flight, SIGHUP under load.

Run as root:  build/venv/bin/pytest -q tests/hostile/test_faults.py
"""
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import requests
from winrm.protocol import Protocol

from hostile_util import (
    ACT_RECEIVE, ERROR_SHELL_NOT_FOUND, RawShell, assert_serving, config_get, kill_user_procs,
    pgrep, proc_stats, wait_fds_at_most,
)
from wsman_util import (RESOURCE_CMD_SHELL, SOAP_CONTENT_TYPE, assert_fault, assert_ok, basic_header,
                        envelope, pid_alive, wait_for)


def protocol(d, user):
    return Protocol(d.https_url, transport="basic", username=user.name, password=user.password,
                    server_cert_validation="ignore", operation_timeout_sec=20, read_timeout_sec=30)


def raw_tls_post(d, xml, user):
    body = xml.encode()
    req = ("POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
           "Content-Type: %s\r\nContent-Length: %d\r\n\r\n"
           % (d.https_port, basic_header(user.name, user.password), SOAP_CONTENT_TYPE, len(body))).encode() + body
    ctx = ssl._create_unverified_context()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", d.https_port), timeout=30),
                        server_hostname="localhost")
    s.sendall(req)
    return s


# =========================================================================== runspace killed

def test_winrs_command_killed_9_gives_137(winrmd, users):
    d = winrmd()
    worker = d.worker_pid()
    u = users.admin
    sh = RawShell(d, u)
    sid = sh.create()
    try:
        cid = sh.command(sid, "sleep 3101")
        pids = wait_for(lambda: pgrep(u.name, "sleep 3101"), 10)
        assert pids
        for p in pids:
            os.kill(p, signal.SIGKILL)
        assert sh.receive_all(sid, cid, limit=30)[2] == 137
        # The shell is still usable afterwards.
        cid = sh.command(sid, "echo after")
        assert sh.receive_all(sid, cid, limit=30) == (b"after\n", b"", 0)
    finally:
        kill_user_procs(u.name, "sleep 3101")
        sh.delete(sid)
    assert_serving(d, u, worker)


def test_winrs_command_killed_while_receive_is_parked(winrmd, users):
    """kill -9 while a Receive long-poll is waiting: the parked Receive itself
    answers with Done/137 promptly."""
    d = winrmd()
    u = users.admin
    sh = RawShell(d, u)
    sid = sh.create()
    try:
        cid = sh.command(sid, "sleep 3102")
        assert wait_for(lambda: pgrep(u.name, "sleep 3102"), 10)
        res = {}

        def recv():
            t0 = time.monotonic()
            res["r"] = sh.receive_once(sid, cid, timeout="PT30S")
            res["took"] = time.monotonic() - t0
        th = threading.Thread(target=recv)
        th.start()
        time.sleep(1)
        kill_user_procs(u.name, "sleep 3102")
        th.join(40)
        r, mid = res["r"]
        assert_ok(r, mid)
        assert res["took"] < 10, res["took"]
        assert "137" in r.text or sh.receive_all(sid, cid, limit=20)[2] == 137
    finally:
        kill_user_procs(u.name, "sleep 3102")
        sh.delete(sid)


# =========================================================================== worker killed

def test_worker_killed_is_restarted_and_its_shells_are_gone(winrmd, users):
    d = winrmd()
    u = users.admin
    old = d.worker_pid()
    sh = RawShell(d, u)
    sid = sh.create()
    cid = sh.command(sid, "sleep 3103")
    assert wait_for(lambda: pgrep(u.name, "sleep 3103"), 10), "the command did not start"
    # A Receive in flight when the worker dies.
    res = {}

    def inflight():
        try:
            r, _ = sh.receive_once(sid, cid, timeout="PT40S")
            res["r"] = r.status_code
        except requests.RequestException as e:
            res["r"] = e
    th = threading.Thread(target=inflight)
    th.start()
    time.sleep(1)
    logpos = len(d.log())
    t_kill = time.monotonic()
    os.kill(old, signal.SIGKILL)
    th.join(30)
    assert not th.is_alive(), "the in-flight client hung after the worker died"
    got = res["r"]
    assert isinstance(got, requests.ConnectionError) or (isinstance(got, int) and got >= 500), \
        "the in-flight Receive got %r" % (got,)
    new = wait_for(lambda: (lambda p: p if p and p != old else None)(d.worker_pid(timeout=0.5)), 10)
    assert new, "no new worker within 10 s; log:\n" + d.log()[logpos:][-3000:]
    restarted_in = time.monotonic() - t_kill
    assert d.wait_log("killed by signal 9", start=logpos, timeout=5), d.log()[logpos:][-3000:]
    assert d.wait_log("restarting worker", start=logpos, timeout=5)
    # A new client connects and works (the worker may take a moment to listen).
    assert wait_for(lambda: _try_get(d, u), 15), "no request succeeded after the restart"
    # The dead worker's shells are gone, and so are their processes.
    r, mid = sh.post(ACT_RECEIVE, sh.receive_body(cid), sid)
    assert_fault(r, ERROR_SHELL_NOT_FOUND, mid)
    left = wait_for(lambda: not pgrep(u.name, "sleep 3103"), 15)
    kill_user_procs(u.name, "sleep 3103")
    assert left, "the dead worker's command is still running"
    assert restarted_in < 5, "the worker was restarted after %.1f s" % restarted_in
    assert_serving(d, u, new)


def _try_get(d, u):
    try:
        config_get(d, u, timeout=5)
        return True
    except (AssertionError, requests.RequestException):
        return False


def test_worker_killed_repeatedly_is_rate_limited_but_recovers(winrmd, users):
    d = winrmd()
    u = users.admin
    pids = []
    for _ in range(3):
        w = d.worker_pid()
        pids.append(w)
        os.kill(w, signal.SIGKILL)
        wait_for(lambda: (lambda p: p and p != w)(d.worker_pid(timeout=0.5)), 10)
    assert len(set(pids)) == 3
    assert wait_for(lambda: _try_get(d, u), 20)
    assert d.proc.poll() is None


# =========================================================================== clients vanishing

def test_clients_dropping_during_receive(winrmd, users):
    """20 Receives abandoned mid long-poll (TCP closed) and 5 abandoned while
    output streams: the worker's descriptors return, the command's output is
    still delivered in full to the next Receive."""
    d = winrmd()
    u = users.admin
    worker = d.worker_pid()
    config_get(d, u)
    time.sleep(0.5)
    fds0, _ = proc_stats(worker)
    sh = RawShell(d, u)
    sid = sh.create()
    try:
        cid = sh.command(sid, "sleep 4; echo late")
        xml, _ = envelope(ACT_RECEIVE, RESOURCE_CMD_SHELL, sh.receive_body(cid),
                          selectors={"ShellId": sid}, operation_timeout="PT20S")
        for _ in range(20):
            s = raw_tls_post(d, xml, u)
            time.sleep(0.05)
            s.close()
        out, err, code = sh.receive_all(sid, cid, limit=30)
        assert (out, err, code) == (b"late\n", b"", 0)
        # Dropped while a large output is being sent back.
        cid = sh.command(sid, "head -c 30000000 /dev/zero | tr '\\0' x")
        xml, _ = envelope(ACT_RECEIVE, RESOURCE_CMD_SHELL, sh.receive_body(cid),
                          selectors={"ShellId": sid}, operation_timeout="PT20S")
        for _ in range(5):
            s = raw_tls_post(d, xml, u)
            s.recv(1000)
            s.close()
        out, err, code = sh.receive_all(sid, cid, limit=120)
        assert code == 0 and err == b""
        assert len(out) <= 30000000 and set(out) <= {ord("x")}
    finally:
        sh.delete(sid)
    assert wait_fds_at_most(worker, fds0 + 3) <= fds0 + 3, "worker fds %d, were %d" % (proc_stats(worker)[0], fds0)
    assert_serving(d, u, worker)


# =========================================================================== signals

def test_sigterm_drains_running_command(winrmd, users):
    d = winrmd()
    u = users.admin
    sh = RawShell(d, u)
    sid = sh.create()
    sh.command(sid, "sleep 300")
    assert wait_for(lambda: pgrep(u.name, "sleep 300"), 10), "sleep 300 did not start"
    worker = d.worker_pid()
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    gone = wait_for(lambda: not pgrep(u.name, "sleep 300"), 3)
    kill_user_procs(u.name, "sleep 300")
    assert rc is not None, "winrmd did not exit within 10 s of SIGTERM"
    assert took < 6.5, "winrmd took %.1f s to stop" % took
    assert rc == 0, "exit status %s; log:\n%s" % (rc, d.log()[-3000:])
    assert gone, "sleep 300 outlived the daemon"
    assert not pid_alive(worker)
    d.stop()


def test_sighup_under_load(winrmd, users):
    """Four clients run commands in a loop while the daemon is reloaded five
    times: no request fails."""
    d = winrmd(winrs={"MaxShellsPerUser": "50"})
    u = users.admin
    worker = d.worker_pid()
    stop = threading.Event()
    errors, done = [], [0]
    lock = threading.Lock()

    def client(i):
        p = protocol(d, u)
        while not stop.is_set():
            try:
                sid = p.open_shell()
                cid = p.run_command(sid, "echo", ["load-%d" % i])
                out, err, code = p.get_command_output(sid, cid)
                p.cleanup_command(sid, cid)
                p.close_shell(sid)
                assert (out, code) == (b"load-%d\n" % i, 0), (out, err, code)
                with lock:
                    done[0] += 1
            except Exception as e:  # noqa: B902 - collected and reported
                with lock:
                    errors.append("%s: %r" % (time.strftime("%H:%M:%S"), e))
                p = protocol(d, u)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    try:
        time.sleep(2)
        for _ in range(5):
            d.reload(d.config_text(winrs={"MaxShellsPerUser": "50"}))
            time.sleep(2)
        time.sleep(2)
    finally:
        stop.set()
        for th in threads:
            th.join(60)
    assert done[0] > 20, "only %d commands completed" % done[0]
    assert not errors, "%d of %d operations failed during reloads: %s" % (len(errors), done[0] + len(errors),
                                                                        errors[:5])
    assert_serving(d, u, worker)
