"""PSRP with rsp:CompressionType xpress, as Windows PowerShell clients ask for it.

No client library in the suite compresses, so this drives the wire itself:
psrpcore's client produces and consumes PSRP messages, and the WS-Man
envelopes are built here.  Send data goes out in WinRM's XPRESS chunk
framing (u16 original-1, u16 compressed-1, data); Receive data must come
back in the same framing (stored chunks).  The Huffman decoder itself is
covered by the MS-XCA vectors in the unit tests.
"""
import base64
import struct
import uuid
import xml.etree.ElementTree as ET

import psrpcore
import pytest

from daemon_util import Daemon, stop_and_check
from psrp_util import RESOURCE_PREFIX, session_conf, write_sessions
from wsman_util import NS, envelope, post

# pypsrp/psrpcore and the stand-in runspace come from PyPI: the pypi suite.
pytestmark = pytest.mark.pypi

RSP = NS["rsp"]
PSH = "http://schemas.microsoft.com/powershell"
ACT = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
COMPRESSION = '<rsp:CompressionType mustUnderstand="true">xpress</rsp:CompressionType>'
URI = RESOURCE_PREFIX + "Test.Runspace"


def frame_stored(data, chunk=65536):
    """WinRM XPRESS framing with every chunk stored (original == compressed size)."""
    out = b""
    for i in range(0, len(data), chunk):
        part = data[i:i + chunk]
        out += struct.pack("<HH", len(part) - 1, len(part) - 1) + part
    return out


def unframe(data):
    out, off = b"", 0
    while off < len(data):
        orig, comp = struct.unpack_from("<HH", data, off)
        off += 4
        assert orig == comp, "the daemon should answer with stored chunks"
        out += data[off:off + comp + 1]
        off += comp + 1
    return out


@pytest.fixture(scope="module")
def cd(tmp_path_factory, tls_cert, users):
    d = Daemon(tmp_path_factory.mktemp("psrpx"), *tls_cert)
    write_sessions(d.conf_path, {"Test.Runspace": session_conf("Test.Runspace")})
    d.start()
    yield d
    stop_and_check(d)


class Client:
    def __init__(self, d, user):
        self.d, self.user = d, user
        self.pool = psrpcore.ClientRunspacePool()
        self.shell = str(self.pool.runspace_pool_id).upper()

    def call(self, action, body, selectors=None, options=None, compressed=True):
        xml, mid = envelope(action, URI, body, selectors=selectors, options=options,
                            header_padding=COMPRESSION if compressed else "",
                            max_envelope_size="512000")
        r = post(self.d.https_url, xml, user=self.user)
        assert r.status_code == 200, r.text[:2000]
        return ET.fromstring(r.content)

    def receive(self, command_id=None):
        attr = ' CommandId="%s"' % command_id if command_id else ""
        root = self.call(ACT + "Receive", '<rsp:Receive><rsp:DesiredStream%s>stdout</rsp:DesiredStream>'
                         '</rsp:Receive>' % attr, selectors={"ShellId": self.shell})
        for s in root.iter("{%s}Stream" % RSP):
            if s.text:
                data = unframe(base64.b64decode(s.text))
                self.pool.receive_data(psrpcore.PSRPPayload(
                    data, psrpcore.StreamType.default,
                    uuid.UUID(command_id) if command_id else None))
        return root

    def events_until(self, pred, command_id=None, rounds=20):
        seen = []
        for _ in range(rounds):
            while True:
                ev = self.pool.next_event()
                if ev is None:
                    break
                seen.append(ev)
                if pred(ev):
                    return seen
            self.receive(command_id)
        raise AssertionError("no matching event; saw %r" % seen)


def test_compressed_pool_and_pipeline(cd, users):
    c = Client(cd, users.admin)
    c.pool.open()
    creation = base64.b64encode(c.pool.data_to_send().data).decode()
    root = c.call(CREATE, '<rsp:Shell ShellId="%s"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
                  '<rsp:OutputStreams>stdout</rsp:OutputStreams>'
                  '<creationXml xmlns="%s">%s</creationXml></rsp:Shell>' % (c.shell, PSH, creation),
                  options={"protocolversion": "2.3"})
    mode = root.find(".//{%s}Shell/{%s}CompressionMode" % (RSP, RSP))
    assert mode is not None and mode.text == "XpressCompression"
    c.events_until(lambda e: isinstance(e, psrpcore.RunspacePoolStateEvent)
                   and e.state == psrpcore.types.RunspacePoolState.Opened)

    ps = psrpcore.ClientPowerShell(c.pool, no_input=False)
    ps.add_command("Write-Output")
    ps.start()
    first = c.pool.data_to_send()
    cid = str(ps.pipeline_id).upper()
    c.call(ACT + "Command", '<rsp:CommandLine CommandId="%s"><rsp:Command/><rsp:Arguments>%s'
           '</rsp:Arguments></rsp:CommandLine>' % (cid, base64.b64encode(first.data).decode()),
           selectors={"ShellId": c.shell})
    # Pipeline input sent compressed (framed), as a Windows client does.
    ps.send("compressed hello")
    ps.send("x" * 70000)       # more than one 64 KiB chunk
    ps.send_eof()
    while True:
        p = c.pool.data_to_send()
        if p is None:
            break
        c.call(ACT + "Send", '<rsp:Send><rsp:Stream Name="stdin" CommandId="%s">%s</rsp:Stream>'
               '</rsp:Send>' % (cid, base64.b64encode(frame_stored(p.data)).decode()),
               selectors={"ShellId": c.shell})
    seen = c.events_until(lambda e: isinstance(e, psrpcore.PipelineStateEvent) and
                          e.state == psrpcore.types.PSInvocationState.Completed, command_id=cid)
    out = [e.data for e in seen if isinstance(e, psrpcore.PipelineOutputEvent)]
    assert out == ["compressed hello", "x" * 70000]
    c.call(DELETE, "", selectors={"ShellId": c.shell})


def test_malformed_compressed_send_is_refused(cd, users):
    c = Client(cd, users.admin)
    c.pool.open()
    creation = base64.b64encode(c.pool.data_to_send().data).decode()
    c.call(CREATE, '<rsp:Shell ShellId="%s"><rsp:InputStreams>stdin pr</rsp:InputStreams>'
           '<rsp:OutputStreams>stdout</rsp:OutputStreams><creationXml xmlns="%s">%s</creationXml>'
           '</rsp:Shell>' % (c.shell, PSH, creation), options={"protocolversion": "2.3"})
    bad = base64.b64encode(struct.pack("<HH", 99, 9) + b"\xff" * 10).decode()
    xml, _ = envelope(ACT + "Send", URI, '<rsp:Send><rsp:Stream Name="stdin">%s</rsp:Stream></rsp:Send>'
                      % bad, selectors={"ShellId": c.shell}, header_padding=COMPRESSION)
    r = post(cd.https_url, xml, user=users.admin)
    assert r.status_code == 500
    c.call(DELETE, "", selectors={"ShellId": c.shell})
