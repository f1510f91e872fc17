"""Small helpers shared by the winrmd integration tests.

Everything here is client-side: building WS-Management envelopes the way real
clients do (namespace-correct, fresh uuid MessageID), sending them with
`requests`, and picking replies apart (faults, RelatesTo, cfg:Config values).
Replies are always parsed by namespace URI, never by prefix.
"""
import base64
import os
import pwd
import time
import re
import uuid
import xml.etree.ElementTree as ET

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
    "wsmid": "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd",
}

SOAP_CONTENT_TYPE = "application/soap+xml;charset=UTF-8"

ACTION_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
RESOURCE_CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"
RESOURCE_CMD_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# WSManFault/@Code values (decimal, as Windows sends them); see faults.md.
ERROR_ACCESS_DENIED = 5
ERROR_WSMAN_INVALID_MESSAGE_INFORMATION_HEADER = 2150858767
ERROR_WSMAN_MESSAGE_INFORMATION_HEADER_REQUIRED = 2150858769
ERROR_WSMAN_ACTION_NOT_SUPPORTED = 2150858771
ERROR_WSMAN_INVALID_RESOURCE_URI = 2150858811
ERROR_WSMAN_INVALID_XML = 2150858819
ERROR_WSMAN_MIN_ENVELOPE_SIZE = 2150858878

# seconds; generous on purpose (auth failures are delayed ~2 s)
REQUEST_TIMEOUT = float(os.environ.get("WINRMD_TEST_TIMEOUT", "60"))

IDENTIFY_BODY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)


def new_message_id(upper=False):
    """A fresh `uuid:` MessageID (pypsrp/Ruby send upper case, pywinrm/Go lower)."""
    u = str(uuid.uuid4())
    return "uuid:" + (u.upper() if upper else u)


def envelope(action, resource_uri, body="", message_id=None, *,
             to="https://localhost:5986/wsman",
             max_envelope_size="153600",
             operation_timeout="PT20S",
             selectors=None, options=None,
             include_message_id=True, header_padding=""):
    """Build a WS-Man request envelope in the pywinrm layout (env/a/w/p prefixes).

    Returns (xml_text, message_id).  Pass message_id=None for a fresh one;
    include_message_id=False leaves the header out entirely.  None for
    max_envelope_size / operation_timeout leaves that header out.
    """
    if message_id is None:
        message_id = new_message_id()
    h = []
    h.append("<a:To>%s</a:To>" % to)
    h.append('<a:ReplyTo><a:Address mustUnderstand="true">%s</a:Address></a:ReplyTo>' % ANONYMOUS)
    if max_envelope_size is not None:
        h.append('<w:MaxEnvelopeSize mustUnderstand="true">%s</w:MaxEnvelopeSize>' % max_envelope_size)
    if include_message_id:
        h.append("<a:MessageID>%s</a:MessageID>" % message_id)
    h.append('<w:Locale mustUnderstand="false" xml:lang="en-US"/>')
    h.append('<p:DataLocale mustUnderstand="false" xml:lang="en-US"/>')
    if operation_timeout is not None:
        h.append("<w:OperationTimeout>%s</w:OperationTimeout>" % operation_timeout)
    h.append('<w:ResourceURI mustUnderstand="true">%s</w:ResourceURI>' % resource_uri)
    h.append('<a:Action mustUnderstand="true">%s</a:Action>' % action)
    if selectors:
        h.append("<w:SelectorSet>%s</w:SelectorSet>" % "".join(
            '<w:Selector Name="%s">%s</w:Selector>' % kv for kv in selectors.items()))
    if options:
        h.append("<w:OptionSet>%s</w:OptionSet>" % "".join(
            '<w:Option Name="%s">%s</w:Option>' % kv for kv in options.items()))
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<env:Envelope xmlns:env="%(s)s" xmlns:a="%(a)s" xmlns:w="%(w)s" xmlns:p="%(p)s" '
        'xmlns:x="%(x)s" xmlns:rsp="%(rsp)s" xmlns:cfg="%(cfg)s">' % NS
        + "<env:Header>" + "".join(h) + header_padding + "</env:Header>"
        + "<env:Body>" + body + "</env:Body></env:Envelope>"
    )
    return xml, message_id


def config_get_envelope(**kw):
    """Get of http://schemas.microsoft.com/wbem/wsman/1/config (what pypsrp/Ruby send)."""
    return envelope(ACTION_GET, RESOURCE_CONFIG, **kw)


def shell_create_envelope(**kw):
    """A pywinrm-style cmd shell Create."""
    body = ("<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>")
    opts = {"WINRS_NOPROFILE": "FALSE", "WINRS_CODEPAGE": "437"}
    return envelope(ACTION_CREATE, RESOURCE_CMD_SHELL, body, options=opts, **kw)


def basic_header(user, password):
    token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return "Basic " + token


def post(url, data, *, user=None, auth=None, headers=None, timeout=REQUEST_TIMEOUT):
    """POST a SOAP body.  `user` is anything with .name/.password (Basic auth);
    `auth` an explicit Authorization header value.  TLS is not verified
    (the test daemon uses a fresh self-signed certificate)."""
    h = {"Content-Type": SOAP_CONTENT_TYPE}
    if user is not None:
        h["Authorization"] = basic_header(user.name, user.password)
    if auth is not None:
        h["Authorization"] = auth
    if headers:
        h.update(headers)
    if isinstance(data, str):
        data = data.encode("utf-8")
    return requests.post(url, data=data, headers=h, verify=False, timeout=timeout)


def parse(text):
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return ET.fromstring(text)


def relates_to(text):
    el = parse(text).find("s:Header/a:RelatesTo", NS)
    return None if el is None else el.text


def fault_code(text):
    """The s:Detail/f:WSManFault/@Code of a fault reply, as an int."""
    root = parse(text)
    fault = root.find("s:Body/s:Fault", NS)
    assert fault is not None, "no s:Body/s:Fault in reply: %r" % text[:2000]
    wf = fault.find("s:Detail/f:WSManFault", NS)
    assert wf is not None, "no s:Detail/f:WSManFault in fault: %r" % text[:2000]
    code = wf.get("Code")
    assert code is not None and re.fullmatch(r"[0-9]+", code), \
        "WSManFault/@Code must be decimal digits, got %r" % code
    return int(code)


def assert_soap_content_type(resp):
    ct = resp.headers.get("Content-Type", "")
    assert ct.replace(" ", "").lower() == SOAP_CONTENT_TYPE.lower(), \
        "Content-Type %r, want %r" % (ct, SOAP_CONTENT_TYPE)


def describe(resp):
    return "HTTP %d %r headers=%r body=%r" % (
        resp.status_code, resp.reason, dict(resp.headers), resp.text[:1500])


def assert_ok(resp, message_id=None):
    """HTTP 200, SOAP content type, and RelatesTo = our MessageID verbatim."""
    assert resp.status_code == 200, describe(resp)
    assert_soap_content_type(resp)
    if message_id is not None:
        assert relates_to(resp.text) == message_id, describe(resp)
    return parse(resp.text)


def assert_fault(resp, code, message_id=None):
    """HTTP 500 SOAP fault with WSManFault/@Code == code (and RelatesTo if given)."""
    assert resp.status_code == 500, describe(resp)
    assert_soap_content_type(resp)
    got = fault_code(resp.text)
    assert got == code, "WSManFault Code %d, want %d: %s" % (got, code, describe(resp))
    if message_id is not None:
        assert relates_to(resp.text) == message_id, describe(resp)


def config_value(root_or_text, path):
    """Text of cfg:Config/<path> in a config Get reply ("Service/AllowUnencrypted")."""
    root = parse(root_or_text) if isinstance(root_or_text, (str, bytes)) else root_or_text
    cfg = root.find("s:Body/cfg:Config", NS)
    assert cfg is not None, "no s:Body/cfg:Config in reply"
    xp = "/".join("cfg:" + part for part in path.split("/"))
    el = cfg.find(xp, NS)
    assert el is not None, "no cfg:Config/%s in reply: %s" % (
        xp, ET.tostring(cfg, encoding="unicode")[:2000])
    return el.text


def identify_product_version(text):
    el = parse(text).find("s:Body/wsmid:IdentifyResponse/wsmid:ProductVersion", NS)
    assert el is not None, "no IdentifyResponse/ProductVersion: %r" % text[:2000]
    return el.text


LOG_FIELD_RE = re.compile(r'\b(WINRMD_[A-Z_]+)="((?:[^"\\]|\\.)*)"')


def log_records(text):
    """Parse `ident[pid]: prio: message K="v" ...` stderr lines into dicts."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(winrmd(?:-net)?)\[(\d+)\]: (\w+): (.*)$", line)
        if not m:
            continue
        rec = dict(LOG_FIELD_RE.findall(m.group(4)))
        rec.update(_ident=m.group(1), _pid=int(m.group(2)), _prio=m.group(3), _line=line)
        out.append(rec)
    return out


# --------------------------------------------------------------------------- processes

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# WINRMD_BIN selects another build (e.g. a sanitizer build); default build/winrmd.
WINRMD = os.environ.get("WINRMD_BIN") or os.path.join(REPO, "build", "winrmd")
WORKER_COMM = "winrmd-net"
ALLOWED_GROUP = "winrm-users"


def make_config(http_port, https_port, cert, key, service=None, auth=None, winrs=None):
    """Render a winrmd.conf.  service/auth/winrs override single keys."""
    svc = {
        "AllowUnencrypted": "false",
        "MaxEnvelopeSizekb": "500",
        "MaxTimeoutms": "60000",
        "AllowedGroups": "sudo wheel " + ALLOWED_GROUP,
        "AllowedUsers": "",
        "EnableUnauthenticatedIdentify": "true",
        "PamService": "winrmd",
        # Its own control socket: winrmd refuses to start on one a live daemon
        # answers on, and the tests run several at once.  The ports are this
        # daemon's own, so the name is unique among the running ones.
        "ControlSocket": "/run/winrmd/test-%d-%d.control" % (http_port, https_port),
    }
    svc.update(service or {})
    au = {"Basic": "true"}
    au.update(auth or {})
    lines = ["# winrmd integration test configuration", "[Service]"]
    lines += ["%s = %s" % kv for kv in svc.items()]
    lines += ["[Service/Auth]"] + ["%s = %s" % kv for kv in au.items()]
    if winrs:
        lines += ["[Winrs]"] + ["%s = %s" % kv for kv in winrs.items()]
    lines += [
        "[Listener http]", "Transport = HTTP", "Address = 127.0.0.1", "Port = %d" % http_port,
        "[Listener https]", "Transport = HTTPS", "Address = 127.0.0.1", "Port = %d" % https_port,
        "CertificateFile = %s" % cert, "KeyFile = %s" % key,
    ]
    return "\n".join(lines) + "\n"


def proc_children(ppid):
    """{pid: comm} of the live (non-zombie) children of ppid."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            with open("/proc/%s/comm" % d) as f:
                comm = f.read().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, parent = fields[0], int(fields[1])
        if parent == ppid and state != "Z":
            out[int(d)] = comm
    return out


def proc_argv0(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode("utf-8", "replace")
    except OSError:
        return None


def user_pids(user, argv=None):
    """pids of the live processes running as `user` whose argv is exactly
    `argv` (a list, or a string split on blanks), or for which `argv(list)` is
    true when it is a callable; every process of `user` when argv is None.

    Read from /proc rather than with `pgrep -f`: that matches the pattern
    anywhere in the command line, so for `sleep 5` it also finds the
    `/bin/sh -c "sleep 5"` parent, and killing only that orphans the sleep."""
    uid = pwd.getpwnam(user).pw_uid
    if isinstance(argv, str):
        argv = argv.split()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            with open("/proc/%s/cmdline" % d, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        # Effective uid, as pgrep -u; zombies have no argv and hold nothing.
        if int(status["Uid"].split()[1]) != uid or status["State"].split()[0] == "Z":
            continue
        args = [a.decode("utf-8", "replace") for a in raw.split(b"\0")[:-1]]
        if argv is None or (argv(args) if callable(argv) else args == argv):
            out.append(int(d))
    return sorted(out)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def wait_for(pred, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def pywinrm_fault(exc):
    """(HTTP status, WS-Man fault code, text) of a fault pywinrm raised.
    pywinrm 0.4 and later raise WSManFaultError with the whole response;
    Debian's 0.3 raises WinRMError whose message holds the fault's Reason and
    a dict of its codes ('wsmanfault_code', 'http_status_code')."""
    if hasattr(exc, "wsman_fault_code"):
        return exc.code, exc.wsman_fault_code, exc.response
    text = str(exc)
    code = re.search(r"'wsmanfault_code': '(\d+)'", text)
    status = re.search(r"'http_status_code': (\d+)", text)
    return (int(status.group(1)) if status else None, int(code.group(1)) if code else None, text)


# ---- WinRS over hand-built SOAP, shared by the integration and hostile tests

ACT_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
ACT_COMMAND = ACT_SHELL + "Command"
ACT_RECEIVE = ACT_SHELL + "Receive"
ACT_SEND = ACT_SHELL + "Send"
ACT_SIGNAL = ACT_SHELL + "Signal"
ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACT_ENUMERATE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"
RESOURCE_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
SIGNAL_TERMINATE = ACT_SHELL + "signal/terminate"
STATE_DONE = ACT_SHELL + "CommandState/Done"


def pgrep(user, argv):
    """pids of `user`'s processes whose argv is exactly `argv` (see user_pids)."""
    return user_pids(user, argv)


class RawShell:
    """WinRS over hand-built SOAP (requests + Basic), for the wire details."""

    def __init__(self, d, user):
        self.d, self.user, self.url = d, user, d.https_url

    def post(self, action, body="", shell_id=None, resource=RESOURCE_CMD_SHELL, options=None,
             timeout="PT20S", http_timeout=90):
        sel = {"ShellId": shell_id} if shell_id else None
        xml, mid = envelope(action, resource, body, selectors=sel, options=options,
                            operation_timeout=timeout)
        return post(self.url, xml, user=self.user, timeout=http_timeout), mid

    def create(self):
        xml, mid = shell_create_envelope()
        root = assert_ok(post(self.url, xml, user=self.user), mid)
        sel = root.find(".//w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        assert sel is not None and sel.text
        return sel.text

    def command_raw(self, shell_id, inner, no_shell=False):
        body = "<rsp:CommandLine>%s</rsp:CommandLine>" % inner
        return self.post(ACT_COMMAND, body, shell_id,
                         options={"WINRS_CONSOLEMODE_STDIN": "TRUE",
                                  "WINRS_SKIP_CMD_SHELL": "TRUE" if no_shell else "FALSE"})

    def command(self, shell_id, command, args=(), inner=None, no_shell=False):
        if inner is None:
            inner = "<rsp:Command>%s</rsp:Command>" % xml_escape(command)
            inner += "".join("<rsp:Arguments>%s</rsp:Arguments>" % xml_escape(a) for a in args)
        r, mid = self.command_raw(shell_id, inner, no_shell=no_shell)
        root = assert_ok(r, mid)
        el = root.find("s:Body/rsp:CommandResponse/rsp:CommandId", NS)
        assert el is not None and el.text, describe(r)
        return el.text

    @staticmethod
    def receive_body(cid):
        return ('<rsp:Receive><rsp:DesiredStream CommandId="%s">stdout stderr</rsp:DesiredStream>'
                "</rsp:Receive>" % cid)

    def receive_once(self, shell_id, cid, timeout="PT20S", http_timeout=90):
        return self.post(ACT_RECEIVE, self.receive_body(cid), shell_id, timeout=timeout,
                         http_timeout=http_timeout)

    def receive_all(self, shell_id, cid, limit=120.0):
        """Receive until Done; returns (stdout bytes, stderr bytes, exit code)."""
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            r, mid = self.receive_once(shell_id, cid, timeout="PT5S")
            if r.status_code == 500 and "2150858793" in r.text:
                continue
            root = assert_ok(r, mid)
            done, code = parse_receive(root, out, err)
            if done:
                return bytes(out), bytes(err), code
        raise AssertionError("command %s did not finish within %ss" % (cid, limit))

    def send(self, shell_id, cid, b64text, end=None):
        """end: None sends no End attribute (as Ruby's client does), else End="true"/"false"."""
        if isinstance(end, bool):
            end = "true" if end else "false"
        attr = ' End="%s"' % end if end is not None else ""
        body = ('<rsp:Send><rsp:Stream Name="stdin" CommandId="%s"%s>%s</rsp:Stream></rsp:Send>'
                % (cid, attr, b64text))
        return self.post(ACT_SEND, body, shell_id)

    def send_all(self, shell_id, cid, chunks):
        """Send each chunk of bytes as its own Send, End on the last."""
        for i, ch in enumerate(chunks):
            r, mid = self.send(shell_id, cid, base64.b64encode(ch).decode(),
                               end="true" if i == len(chunks) - 1 else None)
            assert_ok(r, mid)

    def signal(self, shell_id, cid, code=SIGNAL_TERMINATE):
        body = '<rsp:Signal CommandId="%s"><rsp:Code>%s</rsp:Code></rsp:Signal>' % (cid, code)
        return self.post(ACT_SIGNAL, body, shell_id)

    def delete(self, shell_id):
        return self.post(ACT_DELETE, "", shell_id)

    def enumerate_ids(self):
        body = ('<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration">'
                "<w:OptimizeEnumeration/><w:MaxElements>32000</w:MaxElements></n:Enumerate>")
        r, mid = self.post(ACT_ENUMERATE, body, resource=RESOURCE_SHELL)
        root = assert_ok(r, mid)
        return [el.text.upper() for el in root.iter("{%s}ShellId" % NS["rsp"])]


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parse_receive(root, out, err):
    rr = root.find("s:Body/rsp:ReceiveResponse", NS)
    assert rr is not None, ET.tostring(root, encoding="unicode")[:2000]
    for st in rr.findall("rsp:Stream", NS):
        data = base64.b64decode(st.text or "")
        (out if st.get("Name") == "stdout" else err).extend(data)
    state = rr.find("rsp:CommandState", NS)
    if state is not None and state.get("State") == STATE_DONE:
        ec = state.find("rsp:ExitCode", NS)
        assert ec is not None, "Done without ExitCode"
        return True, int(ec.text)
    return False, None
