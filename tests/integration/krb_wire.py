"""Client-side Kerberos wire helpers for test_auth_kerberos.py.

A `KrbConn` is one persistent HTTP(S) connection to the daemon (http.client;
never silently reopened, since a Kerberos login is bound to its TCP
connection).  On it the tests run the one-leg Kerberos exchange with MIT
GSSAPI (python-gssapi) exactly as the clients do -- raw krb5 tokens under
`Kerberos` or `Negotiate`, or SPNEGO -- and then send sealed
(multipart/encrypted, gss_wrap_iov) or plaintext SOAP.  Responses are kept
verbatim (every WWW-Authenticate value, the raw body).

The realm (KRB5_CONFIG) and the credential cache (KRB5CCNAME) come from the
environment, which the test module sets.
"""
import base64
import hashlib
import http.client
import re
import ssl
import struct
import time
from types import SimpleNamespace

import gssapi
import gssapi.raw
from gssapi.raw import IOV, IOVBufferType

from wsman_util import SOAP_CONTENT_TYPE, REQUEST_TIMEOUT

KRB5_OID = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")
SPNEGO_OID = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")

KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"


def enc_content_type(protocol):
    return 'multipart/encrypted;protocol="%s";boundary="Encrypted Boundary"' % protocol


def cert_der(cert_pem_path):
    with open(cert_pem_path, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode())


def tls_server_end_point(der):
    """RFC 5929 application data (our test certificate is signed with SHA-256)."""
    return b"tls-server-end-point:" + hashlib.sha256(der).digest()


def initiator(host="localhost", service="HTTP", mech="krb5", cb_app_data=None, mutual=True):
    """A GSSAPI initiator context for service@host (credentials: KRB5CCNAME)."""
    name = gssapi.Name("%s@%s" % (service, host), gssapi.NameType.hostbased_service)
    flags = (gssapi.RequirementFlag.confidentiality | gssapi.RequirementFlag.integrity |
             gssapi.RequirementFlag.replay_detection | gssapi.RequirementFlag.out_of_sequence_detection)
    if mutual:
        flags |= gssapi.RequirementFlag.mutual_authentication
    cb = None
    if cb_app_data is not None:
        cb = gssapi.raw.ChannelBindings(application_data=cb_app_data)
    return gssapi.SecurityContext(name=name, usage="initiate", flags=flags,
                                  mech=KRB5_OID if mech == "krb5" else SPNEGO_OID,
                                  channel_bindings=cb)


def frame(header, data, orig_len, protocol, tab=True):
    t = b"\t" if tab else b""
    return (b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: " + protocol.encode() + b"\r\n" +
            t + b"OriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n" % orig_len +
            b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: application/octet-stream\r\n" +
            struct.pack("<I", len(header)) + header + data +
            b"--Encrypted Boundary--\r\n")


def wrap(ctx, plain):
    """gss_wrap_iov(HEADER, DATA, PADDING), as pyspnego's wrap_winrm does."""
    iov = IOV(IOVBufferType.header, plain, IOVBufferType.padding, std_layout=False)
    assert gssapi.raw.wrap_iov(ctx, iov, confidential=True), "not encrypted"
    header, data, padding = (b.value or b"" for b in iov)
    return header, data + padding, len(padding)


def seal(ctx, soap, protocol, tab=True):
    if isinstance(soap, str):
        soap = soap.encode("utf-8")
    header, data, pad = wrap(ctx, soap)
    return frame(header, data, len(soap) + pad, protocol, tab=tab)


SEALED_RE = re.compile(
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: (application/HTTP-[A-Za-z]+-session-encrypted)\r\n"
    rb"\tOriginalContent: type=application/soap\+xml;charset=UTF-8;Length=([0-9]+)\r\n"
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: application/octet-stream\r\n"
    rb"(.*)--Encrypted Boundary--\r\n", re.S)


def sealed_parts(body):
    """(protocol, orig_len, header, ciphertext) of a body in the Windows layout."""
    m = SEALED_RE.fullmatch(body)
    assert m, "sealed body is not in the Windows layout: %r" % body[:400]
    payload = m.group(3)
    (hl,) = struct.unpack("<I", payload[:4])
    assert 0 < hl < len(payload), "bad header length %d" % hl
    return m.group(1).decode(), int(m.group(2)), payload[4:4 + hl], payload[4 + hl:]


def unwrap(ctx, header, data):
    iov = IOV((IOVBufferType.header, False, header), data, std_layout=False)
    res = gssapi.raw.unwrap_iov(ctx, iov)
    assert res.encrypted, "the answer was not encrypted"
    return iov[1].value


def unseal(ctx, body):
    """Decrypt a sealed answer; returns (protocol, plaintext bytes)."""
    protocol, orig_len, header, data = sealed_parts(body)
    plain = unwrap(ctx, header, data)
    assert len(plain) == orig_len, "decrypted %d bytes, Length=%d" % (len(plain), orig_len)
    return protocol, plain


class Resp(SimpleNamespace):
    def www(self):
        return self.msg.get_all("WWW-Authenticate") or []

    def header(self, name):
        return self.msg.get(name)

    def token(self, scheme=None):
        """The base64 token of the (only) `<scheme> <b64>` WWW-Authenticate value."""
        found = []
        for v in self.www():
            m = re.fullmatch(r"(Negotiate|Kerberos) ([A-Za-z0-9+/]+=*)", v.strip())
            if m and (scheme is None or m.group(1) == scheme):
                found.append(base64.b64decode(m.group(2)))
        assert len(found) <= 1, self.www()
        return found[0] if found else None

    def describe(self):
        return "HTTP %d headers=%r body=%r" % (self.status, self.msg.items(), self.body[:600])


class KrbConn:
    """One keep-alive connection to the daemon at 127.0.0.1 (the Kerberos
    service name is localhost regardless)."""

    def __init__(self, d, https=False, timeout=REQUEST_TIMEOUT):
        if https:
            tctx = ssl.create_default_context()
            tctx.check_hostname = False
            tctx.verify_mode = ssl.CERT_NONE
            self.c = http.client.HTTPSConnection("127.0.0.1", d.https_port, timeout=timeout,
                                                 context=tctx)
            self.url = "https://localhost:%d/wsman" % d.https_port
        else:
            self.c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=timeout)
            self.url = "http://localhost:%d/wsman" % d.http_port
        self.https = https
        self.c.connect()
        self.c.auto_open = 0
        self.sock = self.c.sock
        self.ctx = None
        self.protocol = KERBEROS_PROTOCOL

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

    def login(self, scheme="Kerberos", mech="krb5", body=b"", content_type=SOAP_CONTENT_TYPE,
              host="localhost", service="HTTP", cb_app_data=None, token_filter=None):
        """Send the initiator's first token under `scheme` with `body`; feed
        the answer's token (if any) back.  Returns (response, context)."""
        self.ctx = ctx = initiator(host=host, service=service, mech=mech, cb_app_data=cb_app_data)
        tok = ctx.step()
        if token_filter:
            tok = token_filter(tok)
        self.protocol = KERBEROS_PROTOCOL if scheme == "Kerberos" else SPNEGO_PROTOCOL
        r = self.post(body, content_type=content_type,
                      auth="%s %s" % (scheme, base64.b64encode(tok).decode()))
        if r.status == 200 or (r.status == 500 and r.token() is not None):
            t = r.token(scheme)
            if t is not None and not ctx.complete:
                ctx.step(t)
        return r, ctx

    def post_sealed(self, soap, tab=True):
        return self.post(seal(self.ctx, soap, self.protocol, tab=tab),
                         content_type=enc_content_type(self.protocol))
