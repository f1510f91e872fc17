"""The running daemon and the real users behind the winrmd tests.

A plain module (not conftest.py) so that test files in tests/integration and
tests/hostile can import it by one unambiguous name when pytest collects both
directories in one run.
"""
import os
import secrets
import signal
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
import requests

from wsman_util import (ALLOWED_GROUP, IDENTIFY_BODY, SOAP_CONTENT_TYPE, WINRMD, WORKER_COMM, make_config, pid_alive,
                        proc_argv0, proc_children, wait_for)

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
READY_TIMEOUT = 30.0


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def make_user(prefix, groups=(ALLOWED_GROUP,)):
    """A real local user with a random name and password (PAM checks it)."""
    name = "%s%s" % (prefix, secrets.token_hex(3))
    password = secrets.token_urlsafe(18)  # no ':' so chpasswd is safe
    cmd = ["useradd", "-m", "-s", "/bin/bash"]
    if groups:
        cmd += ["-G", ",".join(groups)]
    run(cmd + [name])
    run(["chpasswd"], input="%s:%s\n" % (name, password))
    return SimpleNamespace(name=name, password=password)


def remove_user(u):
    subprocess.run(["pkill", "-KILL", "-u", u.name], capture_output=True)
    subprocess.run(["userdel", "-r", u.name], capture_output=True)


def daemon_env():
    """The daemon's environment: the test runner's, less what is meant for the
    test clients only (OPENSSL_CONF loads OpenSSL's legacy provider so that
    pywinrm 0.3 and ntlm-auth can compute MD4; the daemon must not get it)."""
    return {k: v for k, v in os.environ.items() if k not in CLIENT_ONLY_ENV}


CLIENT_ONLY_ENV = ("OPENSSL_CONF", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """One running build/winrmd -d -f CONF."""

    def __init__(self, workdir, cert, key, service=None, auth=None, winrs=None):
        self.dir = str(workdir)
        self.cert, self.key = cert, key
        self.http_port, self.https_port = free_port(), free_port()
        while self.https_port == self.http_port:
            self.https_port = free_port()
        self.http_url = "http://127.0.0.1:%d/wsman" % self.http_port
        self.https_url = "https://127.0.0.1:%d/wsman" % self.https_port
        self.conf_path = os.path.join(self.dir, "winrmd.conf")
        self.log_path = os.path.join(self.dir, "winrmd.log")
        with open(self.conf_path, "w") as f:
            f.write(self.config_text(service=service, auth=auth, winrs=winrs))
        self.proc = None
        self.exit_code = None

    def config_text(self, service=None, auth=None, winrs=None):
        """A configuration for this daemon's ports/cert with some keys changed."""
        return make_config(self.http_port, self.https_port, self.cert, self.key,
                           service=service, auth=auth, winrs=winrs)

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        assert os.access(WINRMD, os.X_OK), "%s is not built (run make)" % WINRMD
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen([WINRMD, "-d", "-f", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, start_new_session=True,
                                     env=daemon_env())
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail("winrmd exited with %s during start-up; log:\n%s"
                            % (self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("winrmd did not accept on HTTPS port %d within %ss; log:\n%s"
                            % (self.https_port, START_TIMEOUT, self.log()))
            time.sleep(0.1)
        # The port is bound by the monitor before the worker is up; wait until a
        # request is answered at all (any status) so tests never sit on a dead worker.
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                requests.post(self.https_url, data=IDENTIFY_BODY, verify=False, timeout=5,
                              headers={"Content-Type": SOAP_CONTENT_TYPE,
                                       "WSMANIDENTIFY": "unauthenticated"})
                return self
            except requests.RequestException as e:
                err = e
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail("winrmd did not answer a request within %ss (%s); log:\n%s"
                            % (READY_TIMEOUT, err, self.log()[-5000:]))
            time.sleep(0.2)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=15.0, start=0):
        """Wait until `needle` appears in the log after offset `start`."""
        return wait_for(lambda: needle in self.log()[start:], timeout)

    def children(self):
        return proc_children(self.pid)

    def worker_pid(self, timeout=START_TIMEOUT):
        """pid of the network worker child (waits for it); None if there is none.
        Found by argv[0] or comm "winrmd-net" (test_core checks both separately)."""
        def find():
            for pid, comm in self.children().items():
                if comm == WORKER_COMM or proc_argv0(pid) == WORKER_COMM:
                    return pid
            return None
        return wait_for(find, timeout)

    def reload(self, new_conf_text, timeout=15.0):
        """Rewrite the configuration file and SIGHUP the monitor.  Waits until
        the monitor logs something about the reload (it reports either
        success or "reload failed"); returns the log written since."""
        start = len(self.log())
        with open(self.conf_path, "w") as f:
            f.write(new_conf_text)
        os.kill(self.pid, signal.SIGHUP)
        wait_for(lambda: "reload" in self.log()[start:].lower(), timeout)
        return self.log()[start:]

    def stop(self):
        """SIGTERM, wait up to 10 s, then SIGKILL.  Returns True if it exited
        on its own after SIGTERM."""
        if self.proc is None or self.exit_code is not None:
            return True
        clean = True
        if self.proc.poll() is None:
            kids = list(self.children())
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                clean = False
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
            # The worker (and any runspace) must not outlive the monitor.
            left = wait_for(lambda: not any(pid_alive(p) for p in kids), STOP_TIMEOUT) is False
            if left:
                for p in kids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                clean = False
        self.exit_code = self.proc.returncode
        self._logf.close()
        return clean


def stop_and_check(d):
    clean = d.stop()
    assert clean, ("winrmd pid %d did not stop within %ss of SIGTERM (or left children "
                   "behind); log tail:\n%s" % (d.pid, STOP_TIMEOUT, d.log()[-4000:]))
    assert d.exit_code is not None
