"""Raw HTTP and WinRM message-encryption framing shared by the NTLM and
Kerberos wire tests (ntlm_wire.py, krb_wire.py).

The tests speak HTTP themselves, on one keep-alive connection they control,
so they can check exactly what winrmd sends and send what no client library
would.
"""
import base64
import hashlib
import http.client
import re
import ssl
import struct
import time
from types import SimpleNamespace

from wsman_util import SOAP_CONTENT_TYPE, REQUEST_TIMEOUT

# What Windows (and so pywinrm/pypsrp/Go) sends: TAB before each part header,
# no CRLF between the ciphertext and the closing delimiter.
SEALED_RE = re.compile(
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: (application/HTTP-[A-Za-z]+-session-encrypted)\r\n"
    rb"\tOriginalContent: type=application/soap\+xml;charset=UTF-8;Length=([0-9]+)\r\n"
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: application/octet-stream\r\n"
    rb"(.*)--Encrypted Boundary--\r\n", re.S)


def enc_content_type(protocol):
    return 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % protocol


def cert_der(cert_pem_path):
    with open(cert_pem_path, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode())


def tls_server_end_point_data(der):
    """RFC 5929 application data (our test certificates are signed with
    SHA-256, so the hash is SHA-256)."""
    return b"tls-server-end-point:" + hashlib.sha256(der).digest()


def frame(header, data, orig_len, protocol, tab=True):
    t = b"\t" if tab else b""
    return (b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: " + protocol.encode() + b"\r\n" +
            t + b"OriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n" % orig_len +
            b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: application/octet-stream\r\n" +
            struct.pack("<I", len(header)) + header + data +
            b"--Encrypted Boundary--\r\n")


def split_sealed(body):
    """(protocol, orig_len, header, ciphertext) of a body in the Windows
    layout; AssertionError otherwise."""
    m = SEALED_RE.fullmatch(body)
    assert m, "sealed body is not in the Windows layout: %r" % body[:400]
    payload = m.group(3)
    assert len(payload) >= 4
    (hl,) = struct.unpack("<I", payload[:4])
    assert 0 < hl < len(payload), "bad header length %d" % hl
    return m.group(1).decode(), int(m.group(2)), payload[4:4 + hl], payload[4 + hl:]


class Resp(SimpleNamespace):
    def www(self):
        return self.msg.get_all("WWW-Authenticate") or []

    def header(self, name):
        return self.msg.get(name)

    def token(self, scheme=None):
        """The base64 token of the (only) `<scheme> <b64>` WWW-Authenticate value."""
        found = []
        for v in self.www():
            m = re.fullmatch(r"(Negotiate|Kerberos|NTLM) ([A-Za-z0-9+/]+=*)", v.strip())
            if m and (scheme is None or m.group(1) == scheme):
                found.append(base64.b64decode(m.group(2)))
        assert len(found) <= 1, self.www()
        return found[0] if found else None

    def describe(self):
        return "HTTP %d headers=%r body=%r" % (self.status, self.msg.items(), self.body[:600])


class RawConn:
    """One keep-alive connection to the daemon on 127.0.0.1; never reconnects
    by itself, so a test sees when the server closed it."""

    def __init__(self, d, https=False, timeout=REQUEST_TIMEOUT):
        if https:
            tctx = ssl.create_default_context()
            tctx.check_hostname = False
            tctx.verify_mode = ssl.CERT_NONE
            self.c = http.client.HTTPSConnection("127.0.0.1", d.https_port, timeout=timeout,
                                                 context=tctx)
        else:
            self.c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=timeout)
        self.https = https
        self.c.connect()
        self.c.auto_open = 0            # a closed connection raises instead of reopening
        self.sock = self.c.sock
        self.ctx = None

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def peer_cert_der(self):
        return self.c.sock.getpeercert(binary_form=True)

    def post(self, body=b"", content_type=SOAP_CONTENT_TYPE, auth=None, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        h = {"Content-Type": content_type, "Connection": "Keep-Alive",
             "Content-Length": str(len(body))}
        if auth is not None:
            h["Authorization"] = auth
        if headers:
            h.update(headers)
        assert self.c.sock is self.sock, "the connection was reopened"
        t0 = time.monotonic()
        self.c.request("POST", "/wsman", body=body, headers=h)
        r = self.c.getresponse()
        data = r.read()
        return Resp(status=r.status, msg=r.msg, body=data, elapsed=time.monotonic() - t0,
                    will_close=r.will_close)
