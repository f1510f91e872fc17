"""systemd integration without systemd as PID 1: socket activation and the journal.

systemd-socket-activate hands winrmd listening sockets the way winrmd.socket
does (LISTEN_FDS); a private systemd-journald receives the structured
records, which journalctl then filters by field like an admin would.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from daemon_util import Daemon
from wsman_util import (IDENTIFY_BODY, SOAP_CONTENT_TYPE, WINRMD, basic_header,
                        config_get_envelope, post, wait_for)

JOURNAL_DIR = "/run/systemd/journal"


def identify(url):
    return requests.post(url, data=IDENTIFY_BODY, verify=False, timeout=30,
                         headers={"Content-Type": SOAP_CONTENT_TYPE, "WSMANIDENTIFY": "unauthenticated"})


def test_socket_activation(tmp_path, tls_cert, users):
    """Both listeners' ports come from systemd-socket-activate; winrmd binds nothing itself."""
    d = Daemon(tmp_path, *tls_cert)
    cmd = ["systemd-socket-activate", "-l", "127.0.0.1:%d" % d.http_port,
           "-l", "127.0.0.1:%d" % d.https_port, WINRMD, "-d", "-f", d.conf_path]
    log = open(d.log_path, "wb")
    p = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    try:
        assert wait_for(lambda: d.log().count("Listening on") == 2, 20), d.log()
        # Like systemd, it starts winrmd on the first connection, which then waits in the backlog.
        r = identify(d.http_url)
        assert r.status_code == 200, r.text
        assert "using socket-activated descriptor" in d.log(), d.log()
        xml, mid = config_get_envelope()
        r = post(d.https_url, xml, user=users.admin)
        assert r.status_code == 200, r.text
        assert d.log().count("using socket-activated descriptor") == 2
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=15)
    assert p.returncode == 0


@pytest.fixture
def journald():
    """A private systemd-journald on the standard sockets, removed again afterwards."""
    if os.path.exists(os.path.join(JOURNAL_DIR, "socket")):
        # Only when no journald is serving there already (this machine has none).
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.connect(os.path.join(JOURNAL_DIR, "socket"))
            s.close()
            pytest.fail("a journald is already running; this test starts its own")
        except OSError:
            shutil.rmtree(JOURNAL_DIR, ignore_errors=True)
    p = subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    assert wait_for(lambda: os.path.exists(os.path.join(JOURNAL_DIR, "socket")), 10)
    yield p
    p.terminate()
    p.wait(timeout=10)
    # A socket file with nothing behind it would mislead later daemons.
    shutil.rmtree(JOURNAL_DIR, ignore_errors=True)


def test_structured_journal_records(tmp_path, tls_cert, users, journald):
    d = Daemon(tmp_path, *tls_cert)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() - 1))
    d.start()
    try:
        xml, _ = config_get_envelope()
        assert post(d.https_url, xml, user=users.admin).status_code == 200
        xml, _ = config_get_envelope()
        r = post(d.https_url, xml, auth=basic_header(users.admin.name, "wrong-password"))
        assert r.status_code == 401

        def records(user):
            out = subprocess.run(["journalctl", "--no-pager", "-o", "json", "--since", since,
                                  "WINRMD_USER=" + user], capture_output=True, text=True).stdout
            return [json.loads(line) for line in out.splitlines() if line.strip()]

        assert wait_for(lambda: any(r.get("WINRMD_RESULT") == "bad-credentials"
                                    for r in records(users.admin.name)), 15)
        recs = records(users.admin.name)
        ok = [r for r in recs if r.get("WINRMD_HTTP_STATUS") == "200"]
        assert ok, recs
        assert ok[0]["WINRMD_REMOTE_ADDR"] == "127.0.0.1"
        assert ok[0]["WINRMD_AUTH_SCHEME"] == "Basic"
        assert ok[0]["WINRMD_ACTION"] == "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
        assert ok[0]["WINRMD_RESOURCE_URI"] == "http://schemas.microsoft.com/wbem/wsman/1/config"
        assert ok[0]["SYSLOG_IDENTIFIER"] == "winrmd-net"
        bad = [r for r in recs if r.get("WINRMD_RESULT") == "bad-credentials"]
        assert bad[0]["WINRMD_HTTP_STATUS"] == "401"
        assert "wrong-password" not in json.dumps(recs)
    finally:
        d.stop()
