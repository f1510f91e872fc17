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

import gssapi
import gssapi.raw
from gssapi.raw import IOV, IOVBufferType

# cert_der and tls_server_end_point are part of this module's interface for the tests.
from wire_util import RawConn, cert_der, enc_content_type, frame, split_sealed  # noqa: F401
from wire_util import tls_server_end_point_data as tls_server_end_point  # noqa: F401
from wsman_util import SOAP_CONTENT_TYPE

KRB5_OID = gssapi.OID.from_int_seq("1.2.840.113554.1.2.2")
SPNEGO_OID = gssapi.OID.from_int_seq("1.3.6.1.5.5.2")

KERBEROS_PROTOCOL = "application/HTTP-Kerberos-session-encrypted"
SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"


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


def sealed_parts(body):
    """(protocol, orig_len, header, ciphertext) of a body in the Windows layout."""
    return split_sealed(body)


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


class KrbConn(RawConn):
    """One keep-alive connection to the daemon at 127.0.0.1 (the Kerberos
    service name is localhost regardless)."""

    def __init__(self, d, https=False, **kw):
        super().__init__(d, https=https, **kw)
        self.url = "%s://localhost:%d/wsman" % (("https", d.https_port) if https else ("http", d.http_port))
        self.protocol = KERBEROS_PROTOCOL

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
