"""Client-side NTLM / WinRM message encryption helpers for test_auth_ntlm.py.

A `WireConn` is one persistent HTTP(S) connection (http.client, never
silently reopened) on which the tests run an NTLM or SPNEGO/NTLM handshake
with pyspnego, exactly as pywinrm/pypsrp do, and then send sealed
(multipart/encrypted) or plaintext SOAP.  Everything the daemon sends back
is kept verbatim (all WWW-Authenticate values separately, the raw body), so
the tests can check the wire format byte for byte.
"""
import base64
import hashlib
import http.client
import os
import re
import ssl
import struct
import subprocess
import time
from types import SimpleNamespace

import spnego
from spnego.channel_bindings import GssChannelBindings

from wsman_util import REPO, SOAP_CONTENT_TYPE, REQUEST_TIMEOUT

WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(REPO, "build", "winrmctl")

ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENC_CONTENT_TYPE = ('multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";'
                    'boundary="Encrypted Boundary"')

# What Windows (and so pywinrm/pypsrp/Go) sends: TAB before each part header,
# no CRLF between the ciphertext and the closing delimiter.
SEALED_RE = re.compile(
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n"
    rb"\tOriginalContent: type=application/soap\+xml;charset=UTF-8;Length=([0-9]+)\r\n"
    rb"--Encrypted Boundary\r\n"
    rb"\tContent-Type: application/octet-stream\r\n"
    rb"(.*)--Encrypted Boundary--\r\n", re.S)


def set_nt_password(conf_path, user, password):
    """build/winrmctl -f CONF ntlm set-password USER --stdin."""
    p = subprocess.run([WINRMCTL, "-f", conf_path, "ntlm", "set-password", user, "--stdin"],
                       input=password + "\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "winrmctl ntlm set-password %s: rc %d\n%s%s" % (
        user, p.returncode, p.stdout, p.stderr)


def ntlm_list(conf_path):
    p = subprocess.run([WINRMCTL, "-f", conf_path, "ntlm", "list"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def cert_der(cert_pem_path):
    with open(cert_pem_path, "rb") as f:
        return ssl.PEM_cert_to_DER_cert(f.read().decode())


def tls_server_end_point(der):
    """RFC 5929 tls-server-end-point channel binding data for a certificate
    (our test certificates are signed with SHA-256, so the hash is SHA-256)."""
    return GssChannelBindings(application_data=b"tls-server-end-point:" +
                              hashlib.sha256(der).digest())


def make_ctx(user, password, protocol="ntlm", cbt=None):
    """A pyspnego client context as pypsrp builds it (wrapping_winrm)."""
    return spnego.client(user, password, hostname="127.0.0.1", service="HTTP",
                         channel_bindings=cbt, protocol=protocol,
                         options=spnego.NegotiateOptions.wrapping_winrm)


def frame(header, data, orig_len, tab=True, protocol=ENC_PROTOCOL):
    t = b"\t" if tab else b""
    return (b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: " + protocol.encode() + b"\r\n" +
            t + b"OriginalContent: type=application/soap+xml;charset=UTF-8;Length=%d\r\n" % orig_len +
            b"--Encrypted Boundary\r\n" +
            t + b"Content-Type: application/octet-stream\r\n" +
            struct.pack("<I", len(header)) + header + data +
            b"--Encrypted Boundary--\r\n")


def seal(ctx, soap, tab=True):
    """Seal a SOAP message (str/bytes) the way pywinrm/pypsrp do."""
    if isinstance(soap, str):
        soap = soap.encode("utf-8")
    w = ctx.wrap_winrm(soap)
    return frame(w.header, w.data, len(soap), tab=tab)


def sealed_parts(body):
    """Split a sealed body laid out exactly as Windows sends it into
    (orig_len, signature header, ciphertext); AssertionError otherwise."""
    m = SEALED_RE.fullmatch(body)
    assert m, "sealed body is not in the Windows layout: %r" % body[:400]
    orig_len, payload = int(m.group(1)), m.group(2)
    assert len(payload) >= 4
    (hl,) = struct.unpack("<I", payload[:4])
    assert hl == 16, "NTLM signature header length %d, want 16" % hl
    return orig_len, payload[4:4 + hl], payload[4 + hl:]


def unseal(ctx, body):
    orig_len, header, data = sealed_parts(body)
    plain = ctx.unwrap_winrm(header, data)
    assert len(plain) == orig_len, "decrypted %d bytes, Length=%d" % (len(plain), orig_len)
    return plain


class Resp(SimpleNamespace):
    def www(self):
        return self.msg.get_all("WWW-Authenticate") or []

    def header(self, name):
        return self.msg.get(name)

    def describe(self):
        return "HTTP %d headers=%r body=%r" % (self.status, self.msg.items(), self.body[:600])


class WireConn:
    """One keep-alive connection to the daemon; never reconnects by itself."""

    def __init__(self, d, https=False, timeout=REQUEST_TIMEOUT):
        if https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.c = http.client.HTTPSConnection("127.0.0.1", d.https_port, timeout=timeout,
                                                 context=ctx)
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

    def post_sealed(self, soap, tab=True):
        return self.post(seal(self.ctx, soap, tab=tab), content_type=ENC_CONTENT_TYPE)

    def handshake(self, user, password, protocol="ntlm", scheme="Negotiate", cbt=None, body=b"",
                  content_type=SOAP_CONTENT_TYPE):
        """Run the NTLM (protocol='ntlm', raw NTLMSSP) or SPNEGO ('negotiate')
        exchange with pyspnego on this connection, sending `body` on every leg
        (requests_ntlm and Go do; pywinrm/pypsrp send an empty body first).
        Returns (final response, list of all responses); self.ctx is the
        context, complete if the server accepted."""
        self.ctx = ctx = make_ctx(user, password, protocol, cbt)
        tok = ctx.step()
        legs = []
        while True:
            r = self.post(body, content_type=content_type,
                          auth="%s %s" % (scheme, base64.b64encode(tok).decode()))
            legs.append(r)
            token = None
            for v in r.www():
                m = re.match(r"^(Negotiate|NTLM) ([A-Za-z0-9+/=]+)$", v)
                if m:
                    token = base64.b64decode(m.group(2))
            if token is not None and not ctx.complete:
                tok = ctx.step(token)
                if r.status == 401 and tok:
                    continue
            return r, legs
