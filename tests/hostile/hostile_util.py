"""Helpers shared by the hostile, fault and soak tests (client side only)."""
import base64
import struct
import uuid
import http.client
import os
import socket
import ssl
import time

from wsman_util import (NS, RESOURCE_CMD_SHELL, SOAP_CONTENT_TYPE, assert_ok, basic_header,  # noqa: F401
                        config_get_envelope, envelope, post, shell_create_envelope,
                        user_pids, wait_for, ACT_SHELL, ACT_COMMAND, ACT_RECEIVE, ACT_SEND,
                        ACT_SIGNAL, ACT_DELETE, STATE_DONE, SIGNAL_TERMINATE, RawShell, pgrep)

ERROR_SHELL_NOT_FOUND = 2150858843
ERROR_OPERATION_TIMEOUT = 2150858793
ERROR_SCHEMA_VALIDATION = 2150858817
ERROR_INVALID_OPTIONS = 2150858809


# --------------------------------------------------------------------------- process stats

def proc_stats(pid):
    """(open descriptors, VmRSS in kB) of a process."""
    fds = len(os.listdir("/proc/%d/fd" % pid))
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return fds, rss


def wait_fds_at_most(pid, limit, timeout=20.0):
    """Wait until the process has at most `limit` descriptors; return the count."""
    wait_for(lambda: proc_stats(pid)[0] <= limit, timeout, interval=0.2)
    return proc_stats(pid)[0]


def config_get(d, user, timeout=30):
    xml, mid = config_get_envelope()
    return assert_ok(post(d.https_url, xml, user=user, timeout=timeout), mid)


def assert_serving(d, user, worker=None, timeout=30):
    """An authenticated config Get succeeds and the worker is the same process."""
    assert d.proc.poll() is None, "winrmd exited (%s); log:\n%s" % (d.proc.returncode, d.log()[-3000:])
    config_get(d, user, timeout=timeout)
    if worker is not None:
        now = d.worker_pid()
        assert now == worker, ("the worker changed from %s to %s (crashed and restarted?); log tail:\n%s"
                               % (worker, now, d.log()[-4000:]))


# --------------------------------------------------------------------------- raw sockets

def tls_wrap(raw):
    ctx = ssl._create_unverified_context()
    return ctx.wrap_socket(raw, server_hostname="localhost")


def connect(d, tls=True, timeout=30):
    port = d.https_port if tls else d.http_port
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return tls_wrap(s) if tls else s


def head(d, headers, tls=True, method="POST", path="/wsman", version="HTTP/1.1"):
    port = d.https_port if tls else d.http_port
    h = {"Host": "127.0.0.1:%d" % port}
    h.update(headers)
    return ("%s %s %s\r\n" % (method, path, version)
            + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n").encode("latin-1")


CLOSED = "closed"


def read_status(s):
    """Status of the next response on socket s, or CLOSED if the server closed
    (or reset) the connection without one."""
    try:
        r = http.client.HTTPResponse(s)
        r.begin()
        try:
            r.read()
        except (OSError, http.client.HTTPException):
            pass
        return r.status
    except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError, http.client.BadStatusLine,
            http.client.IncompleteRead):
        return CLOSED
    except OSError:
        return CLOSED


def exchange(d, data, tls=True, timeout=30):
    """Send raw bytes on a fresh connection and return the status (or CLOSED)."""
    s = connect(d, tls, timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        return read_status(s)
    finally:
        s.close()


def auth_headers(user, extra=None, length=None):
    h = {"Content-Type": SOAP_CONTENT_TYPE, "Authorization": basic_header(user.name, user.password)}
    if length is not None:
        h["Content-Length"] = str(length)
    h.update(extra or {})
    return h


# --------------------------------------------------------------------------- WinRS over raw SOAP

def kill_user_procs(user, argv):
    for pid in pgrep(user, argv):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def post_from(source, d, xml, auth, timeout=60):
    """POST to the daemon's HTTPS listener from a given loopback source address
    (127.0.0.0/8 is all ours): one client host among several."""
    ctx = ssl._create_unverified_context()
    c = http.client.HTTPSConnection("127.0.0.1", d.https_port, context=ctx, timeout=timeout,
                                    source_address=(source, 0))
    try:
        c.request("POST", "/wsman", body=xml.encode(),
                  headers={"Content-Type": SOAP_CONTENT_TYPE, "Authorization": auth})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# ---- raw PSRP shells ----------------------------------------------------------

def psrp_fragment_b64(mtype, payload, pid=bytes(16)):
    """One whole PSRP fragment (object 1) holding one message to the server, in base64."""
    blob = struct.pack("<II", 2, mtype) + bytes(16) + pid + payload
    return base64.b64encode(struct.pack(">QQBI", 1, 0, 3, len(blob)) + blob).decode()


def psrp_create(url, user, uri, creation_b64):
    """A raw PSRP Create with this creationXml: (response, message id, ShellId)."""
    sid = str(uuid.uuid4()).upper()
    body = ('<rsp:Shell ShellId="%s"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
            "<rsp:OutputStreams>stdout</rsp:OutputStreams>"
            '<creationXml xmlns="http://schemas.microsoft.com/powershell">%s</creationXml></rsp:Shell>'
            % (sid, creation_b64))
    xml, mid = envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Create", uri, body,
                        options={"protocolversion": "2.3"})
    return post(url, xml, user=user, timeout=30), mid, sid
