"""Client-side NTLM / WinRM message encryption helpers for test_auth_ntlm.py.

A `WireConn` is one persistent HTTP(S) connection (http.client, never
silently reopened) on which the tests run an NTLM or SPNEGO/NTLM handshake,
exactly as pywinrm/pypsrp do, and then send sealed (multipart/encrypted) or
plaintext SOAP.  Raw NTLMSSP (protocol='ntlm') uses Debian's ntlm-auth, the
library under pywinrm 0.3's NTLM transport; SPNEGO-wrapped NTLM
(protocol='negotiate') needs pyspnego from PyPI, so those tests carry the
`pypi` mark.  Everything the daemon sends back
is kept verbatim (all WWW-Authenticate values separately, the raw body), so
the tests can check the wire format byte for byte.
"""
import os
import base64
import re
import subprocess

from ntlm_auth.gss_channel_bindings import GssChannelBindingsStruct
from ntlm_auth.ntlm import NtlmContext

# cert_der and frame are part of this module's interface for the tests.
from wire_util import RawConn, cert_der, enc_content_type, frame, split_sealed, tls_server_end_point_data  # noqa: F401
from wsman_util import REPO, SOAP_CONTENT_TYPE, make_config

WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(REPO, "build", "winrmctl")

ENC_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENC_CONTENT_TYPE = enc_content_type(ENC_PROTOCOL)


def set_nt_password(conf_path, user, password):
    """build/winrmctl -f CONF ntlm set-password USER --stdin."""
    p = subprocess.run([WINRMCTL, "-f", conf_path, "ntlm", "set-password", user, "--stdin"],
                       input=password + "\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, "winrmctl ntlm set-password %s: rc %d\n%s%s" % (
        user, p.returncode, p.stdout, p.stderr)


def make_nt_store(workdir, tls_cert, users):
    """An NT hash store in workdir with each user's hash set to their Unix
    password; returns (store, conf), conf being a winrmctl configuration that
    names the store (its other keys only make the file valid)."""
    store = os.path.join(str(workdir), "ntlm.db")
    conf = os.path.join(str(workdir), "winrmctl.conf")
    with open(conf, "w") as f:
        f.write(make_config(1, 2, *tls_cert, auth={"NtlmStore": store}))
    for u in users:
        set_nt_password(conf, u.name, u.password)
    return store, conf


def ntlm_list(conf_path):
    p = subprocess.run([WINRMCTL, "-f", conf_path, "ntlm", "list"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def tls_server_end_point(der):
    """RFC 5929 tls-server-end-point channel bindings for a certificate, as
    application data (make_ctx wraps it for the library in use)."""
    return tls_server_end_point_data(der)


class NtlmAuthCtx:
    """Debian's ntlm-auth NtlmContext behind the few calls the tests make of a
    pyspnego context: step(), complete, wrap_winrm(), unwrap_winrm().
    NTLMv2 (compatibility level 3), as pywinrm 0.3 sends it."""

    def __init__(self, user, password, cbt):
        bindings = None
        if cbt is not None:
            bindings = GssChannelBindingsStruct()
            bindings[GssChannelBindingsStruct.APPLICATION_DATA] = cbt
        self._ctx = NtlmContext(user, password, domain="", workstation="", cbt_data=bindings,
                                ntlm_compatibility=3)

    @property
    def complete(self):
        return self._ctx.complete

    def step(self, token=None):
        return self._ctx.step(token)

    def wrap_winrm(self, data):
        w = self._ctx.wrap(data)
        return _Wrapped(w[:16], w[16:])

    def unwrap_winrm(self, header, data):
        return self._ctx.unwrap(header + data)


class _Wrapped:
    def __init__(self, header, data):
        self.header, self.data = header, data


def make_ctx(user, password, protocol="ntlm", cbt=None):
    """A client context: ntlm-auth for raw NTLMSSP, pyspnego for SPNEGO (as
    pypsrp builds it, wrapping_winrm)."""
    if protocol == "ntlm":
        return NtlmAuthCtx(user, password, cbt)
    import spnego  # PyPI only: callers are tests marked `pypi`
    from spnego.channel_bindings import GssChannelBindings
    return spnego.client(user, password, hostname="127.0.0.1", service="HTTP",
                         channel_bindings=None if cbt is None else GssChannelBindings(application_data=cbt),
                         protocol=protocol, options=spnego.NegotiateOptions.wrapping_winrm)


def seal(ctx, soap, tab=True):
    """Seal a SOAP message (str/bytes) the way pywinrm/pypsrp do."""
    if isinstance(soap, str):
        soap = soap.encode("utf-8")
    w = ctx.wrap_winrm(soap)
    return frame(w.header, w.data, len(soap), ENC_PROTOCOL, tab=tab)


def sealed_parts(body):
    """Split a sealed body laid out exactly as Windows sends it into
    (orig_len, signature header, ciphertext); AssertionError otherwise."""
    protocol, orig_len, header, data = split_sealed(body)
    assert protocol == ENC_PROTOCOL, protocol
    assert len(header) == 16, "NTLM signature header length %d, want 16" % len(header)
    return orig_len, header, data


def unseal(ctx, body):
    orig_len, header, data = sealed_parts(body)
    plain = ctx.unwrap_winrm(header, data)
    assert len(plain) == orig_len, "decrypted %d bytes, Length=%d" % (len(plain), orig_len)
    return plain


class WireConn(RawConn):
    """One keep-alive connection for an NTLM/SPNEGO exchange."""

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
