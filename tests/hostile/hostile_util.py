"""Helpers shared by the hostile, fault and soak tests (client side only)."""
import base64
import struct
import uuid
import http.client
import os
import socket
import ssl
import time

from wsman_util import (NS, RESOURCE_CMD_SHELL, SOAP_CONTENT_TYPE, assert_ok, basic_header,
                        config_get_envelope, envelope, post, shell_create_envelope,
                        user_pids, wait_for)

ACT_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACT_COMMAND = ACT_SHELL + "Command"
ACT_RECEIVE = ACT_SHELL + "Receive"
ACT_SEND = ACT_SHELL + "Send"
ACT_SIGNAL = ACT_SHELL + "Signal"
ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
STATE_DONE = ACT_SHELL + "CommandState/Done"
SIGNAL_TERMINATE = ACT_SHELL + "signal/terminate"

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

class RawShell:
    def __init__(self, d, user):
        self.d, self.user = d, user

    def post(self, action, body="", shell_id=None, options=None, timeout="PT20S", http_timeout=90,
             resource=RESOURCE_CMD_SHELL):
        sel = {"ShellId": shell_id} if shell_id else None
        xml, mid = envelope(action, resource, body, selectors=sel, options=options,
                            operation_timeout=timeout)
        return post(self.d.https_url, xml, user=self.user, timeout=http_timeout), mid

    def create(self):
        xml, mid = shell_create_envelope()
        root = assert_ok(post(self.d.https_url, xml, user=self.user), mid)
        sel = root.find(".//w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        assert sel is not None and sel.text
        return sel.text

    def command(self, sid, command):
        body = ("<rsp:CommandLine><rsp:Command>%s</rsp:Command></rsp:CommandLine>"
                % command.replace("&", "&amp;").replace("<", "&lt;"))
        r, mid = self.post(ACT_COMMAND, body, sid, options={"WINRS_SKIP_CMD_SHELL": "FALSE"})
        root = assert_ok(r, mid)
        return root.find("s:Body/rsp:CommandResponse/rsp:CommandId", NS).text

    def receive_body(self, cid):
        return ('<rsp:Receive><rsp:DesiredStream CommandId="%s">stdout stderr</rsp:DesiredStream>'
                "</rsp:Receive>" % cid)

    def receive_once(self, sid, cid, timeout="PT5S"):
        return self.post(ACT_RECEIVE, self.receive_body(cid), sid, timeout=timeout)

    def receive_all(self, sid, cid, limit=60.0):
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            r, mid = self.receive_once(sid, cid)
            if r.status_code == 500 and str(ERROR_OPERATION_TIMEOUT) in r.text:
                continue
            root = assert_ok(r, mid)
            rr = root.find("s:Body/rsp:ReceiveResponse", NS)
            for st in rr.findall("rsp:Stream", NS):
                data = base64.b64decode(st.text or "")
                (out if st.get("Name") == "stdout" else err).extend(data)
            state = rr.find("rsp:CommandState", NS)
            if state is not None and state.get("State") == STATE_DONE:
                return bytes(out), bytes(err), int(state.find("rsp:ExitCode", NS).text)
        raise AssertionError("command %s did not finish within %ss" % (cid, limit))

    def send(self, sid, cid, b64text, end=True):
        body = ('<rsp:Send><rsp:Stream Name="stdin" CommandId="%s" End="%s">%s</rsp:Stream></rsp:Send>'
                % (cid, "true" if end else "false", b64text))
        return self.post(ACT_SEND, body, sid)

    def signal(self, sid, cid):
        body = '<rsp:Signal CommandId="%s"><rsp:Code>%s</rsp:Code></rsp:Signal>' % (cid, SIGNAL_TERMINATE)
        return self.post(ACT_SIGNAL, body, sid)

    def delete(self, sid):
        return self.post(ACT_DELETE, "", sid)


def pgrep(user, argv):
    """pids of `user`'s processes whose argv is exactly `argv` (see user_pids)."""
    return user_pids(user, argv)


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
