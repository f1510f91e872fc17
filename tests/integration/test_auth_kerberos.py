"""Kerberos authentication and Kerberos message encryption, with a real KDC
and real clients.

A throw-away MIT realm WINRMD.TEST (krb_kdc.py: krb5kdc on a free loopback
port, all files in a tmp dir) holds HTTP/, host/ and WSMAN/localhost (in the
daemon's keytab), HTTP/otherhost (not in it), and user principals for the
conftest users admin (allowed), plain (outside AllowedGroups) and expired
(PAM account refuses), plus nosuchlocal (no local account).  Tickets are got
with kinit into file caches; KRB5_CONFIG / KRB5CCNAME point at them for the
duration of this module (the daemons inherit KRB5_CONFIG when started).

Clients: pywinrm transport='kerberos' (requests-kerberos/pykerberos: raw krb5
under Negotiate, mutual authentication REQUIRED; Debian's 0.3 in the core
suite), and python-gssapi driven by hand on one http.client connection
(krb_wire.py) for the wire details: the mutual-authentication token, sealing,
tampering, corrupted tokens and channel bindings.  The pypi suite adds pypsrp
auth='kerberos' and 'negotiate' (pyspnego/gssapi) and a pypsrp RunspacePool.

Clients connect to the host name `localhost` (the service principal is
HTTP/localhost).

Run as root:  make check (or tests/integration/run.sh build core)
"""
import base64
import http.client
import os
import pwd
import re
import shutil
import struct
import tempfile
import time
from types import SimpleNamespace

import pytest
import winrm
try:
    from pypsrp.client import Client
    from pypsrp.exceptions import AuthenticationError
    from pypsrp.powershell import PowerShell, RunspacePool
    from pypsrp.wsman import WSMan
except ImportError:  # only tests marked `pypi` use them; they run where PyPI is reachable
    Client = AuthenticationError = PowerShell = RunspacePool = WSMan = None

from daemon_util import Daemon, stop_and_check
from krb_kdc import KDC, REALM, SERVICE_PRINCIPALS
from krb_wire import (KERBEROS_PROTOCOL, SPNEGO_PROTOCOL, KrbConn, cert_der, enc_content_type,
                      seal, tls_server_end_point, unseal)
from psrp_util import call_with_timeout, session_conf, write_sessions
from wsman_util import (ERROR_ACCESS_DENIED, NS, RESOURCE_CMD_SHELL, config_get_envelope,
                        config_value, envelope, fault_code, log_records, parse, pywinrm_fault,
                        relates_to, shell_create_envelope, wait_for)

ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
PSRP_CONFIG = "Test.Runspace"
STEP = 60


# =========================================================================== fixtures

@pytest.fixture(scope="module")
def realm(users):
    """The KDC, the daemon keytab, and a ticket cache per test principal.
    Sets KRB5_CONFIG and KRB5CCNAME (admin's cache) for this module.

    The directory is world-searchable and krb5.conf world-readable: the
    daemon's unprivileged worker reads KRB5_CONFIG when it imports the
    context the monitor exported, and checks that the Keytab path exists
    before it offers `Kerberos` (pytest's own tmp dirs are root-only)."""
    d = tempfile.mkdtemp(prefix="winrmd-krb5-")
    os.chmod(d, 0o755)
    kdc = KDC(d)
    os.chmod(kdc.krb5_conf, 0o644)
    saved = {k: os.environ.get(k) for k in ("KRB5_CONFIG", "KRB5CCNAME", "KRB5_KTNAME")}
    try:
        kdc.start()
        for s in SERVICE_PRINCIPALS + ("HTTP/otherhost",):
            kdc.add_service(s)
        keytab = kdc.keytab(os.path.join(d, "winrmd.keytab"), SERVICE_PRINCIPALS)
        nosuch = "nosuchlocal"
        try:
            pwd.getpwnam(nosuch)
            pytest.fail("a local account %r exists; the test needs it not to" % nosuch)
        except KeyError:
            pass
        caches = {}
        for who, name in (("admin", users.admin.name), ("plain", users.plain.name),
                          ("expired", users.expired.name), ("locked", users.locked.name),
                          ("nosuch", nosuch)):
            pw = kdc.add_user(name)
            caches[who] = kdc.kinit(name, pw, os.path.join(d, "cc_" + who))
        os.environ["KRB5_CONFIG"] = kdc.krb5_conf
        os.environ["KRB5CCNAME"] = caches["admin"]
        os.environ.pop("KRB5_KTNAME", None)
        yield SimpleNamespace(kdc=kdc, keytab=keytab, caches=caches, dir=d,
                              admin=users.admin, plain=users.plain, expired=users.expired,
                              admin_principal="%s@%s" % (users.admin.name, REALM))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        kdc.stop()
        shutil.rmtree(d, ignore_errors=True)


class ccache:
    """Use another principal's ticket cache for the duration of a with block."""

    def __init__(self, realm, who):
        self.path = realm.caches[who]

    def __enter__(self):
        self.saved = os.environ.get("KRB5CCNAME")
        os.environ["KRB5CCNAME"] = self.path
        return self

    def __exit__(self, *exc):
        os.environ["KRB5CCNAME"] = self.saved


def _krb_daemon(tmp_path_factory, tls_cert, realm, tag, sessions=False, **auth):
    au = {"Kerberos": "true", "Keytab": realm.keytab}
    au.update(auth)
    d = Daemon(tmp_path_factory.mktemp(tag), *tls_cert, auth=au)
    if sessions:
        write_sessions(d.conf_path, {PSRP_CONFIG: session_conf(PSRP_CONFIG)})
    assert os.environ.get("KRB5_CONFIG") == realm.kdc.krb5_conf
    d.start()
    return d


@pytest.fixture(scope="module")
def kd(tmp_path_factory, tls_cert, realm):
    """Default configuration (AllowUnencrypted=false, CbtHardeningLevel=Relaxed)
    with the test keytab and one PSRP session configuration."""
    d = _krb_daemon(tmp_path_factory, tls_cert, realm, "winrmd-krb", sessions=True)
    yield d
    stop_and_check(d)


@pytest.fixture(scope="module")
def kd_strict(tmp_path_factory, tls_cert, realm):
    d = _krb_daemon(tmp_path_factory, tls_cert, realm, "winrmd-krb-strict",
                    CbtHardeningLevel="Strict")
    yield d
    stop_and_check(d)


# =========================================================================== helpers

def http_url(d):
    return "http://localhost:%d/wsman" % d.http_port


def https_url(d):
    return "https://localhost:%d/wsman" % d.https_port


def records(d, pred, start=0):
    return [r for r in log_records(d.log()[start:]) if pred(r)]


def find_record(d, pred, start=0, timeout=15.0):
    return wait_for(lambda: next((r for r in log_records(d.log()[start:]) if pred(r)), None),
                    timeout)


def assert_kerberos_logged(d, user, start, schemes=("Negotiate", "Kerberos")):
    rec = find_record(d, lambda r: r.get("WINRMD_USER") == user.name
                      and r.get("WINRMD_AUTH_SCHEME") in schemes
                      and r.get("WINRMD_HTTP_STATUS") == "200"
                      and r.get("WINRMD_ACTION"), start)
    assert rec, ("no log record with WINRMD_AUTH_SCHEME in %s and WINRMD_USER=%s for a served "
                 "request; log tail:\n%s" % (schemes, user.name, d.log()[start:][-4000:]))
    assert not records(d, lambda r: r.get("WINRMD_USER") == user.name
                       and r.get("WINRMD_AUTH_SCHEME") == "Basic", start), "fell back to Basic"
    return rec


def shells_created(d, user, start):
    return records(d, lambda r: r.get("WINRMD_RESULT") == "shell-created"
                   and r.get("WINRMD_USER") == user.name, start)


def shell_id_of(plain):
    el = parse(plain).find("s:Body/rsp:Shell/rsp:ShellId", NS)
    assert el is not None and el.text, plain[:2000]
    return el.text


def login_ok(c, **kw):
    r, ctx = c.login(**kw)
    assert r.status == 200, r.describe()
    assert ctx.complete, "the 200 did not complete the context: %s" % r.describe()
    return r, ctx


def pywinrm_session(d, https):
    if https:
        return winrm.Session(https_url(d), auth=(None, None), transport="kerberos",
                             server_cert_validation="ignore")
    return winrm.Session(http_url(d), auth=(None, None), transport="kerberos")


def pypsrp_client(d, realm, auth, https, **kw):
    return Client("localhost", port=d.https_port if https else d.http_port, ssl=https,
                  username=realm.admin_principal, auth=auth, cert_validation=False, **kw)


def post_or_closed(c, *a, **kw):
    """None if the daemon closed the connection (then nothing was served either)."""
    try:
        return c.post(*a, **kw)
    except (http.client.HTTPException, OSError):
        return None


# =========================================================================== real clients

# Kerberos sealing in pywinrm needs pykerberos 1.2 (authGSSWinRMEncryptMessage);
# Debian's 1.1.14 has neither it nor channel bindings, so pywinrm 0.3 cannot
# seal over HTTP nor log in under CbtHardeningLevel = Strict.  krb_wire.py's
# python-gssapi tests prove both in the core suite.
@pytest.mark.pypi
def test_pywinrm_kerberos_http_is_sealed(kd, realm):
    start = len(kd.log())
    s = pywinrm_session(kd, https=False)
    r = s.run_cmd("echo hello-krb; echo err-krb >&2; id -un; exit 3")
    assert (r.std_out, r.std_err, r.status_code) == (
        b"hello-krb\n" + realm.admin.name.encode() + b"\n", b"err-krb\n", 3), r.__dict__
    # message_encryption='auto' over http: pywinrm set up Kerberos sealing
    assert s.protocol.transport.encryption is not None
    rec = assert_kerberos_logged(kd, realm.admin, start)
    assert rec["WINRMD_AUTH_SCHEME"] == "Negotiate", rec["_line"]   # pykerberos: raw krb5 under Negotiate


def test_pywinrm_kerberos_https(kd, realm):
    start = len(kd.log())
    s = pywinrm_session(kd, https=True)
    r = s.run_cmd("echo over-tls; exit 5")
    assert (r.std_out, r.status_code) == (b"over-tls\n", 5)
    assert s.protocol.transport.encryption is None
    assert_kerberos_logged(kd, realm.admin, start)


@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
@pytest.mark.pypi
def test_pypsrp_http_encrypted(kd, realm, auth):
    start = len(kd.log())
    with pypsrp_client(kd, realm, auth, https=False, encryption="always") as c:
        out, err, rc = c.execute_cmd("echo psrp-%s; id -un; exit 4" % auth)
    assert (out.split(), rc) == (["psrp-%s" % auth, realm.admin.name], 4), (out, err, rc)
    assert_kerberos_logged(kd, realm.admin, start)


@pytest.mark.parametrize("encryption", ["never", "always"])
@pytest.mark.parametrize("auth", ["kerberos", "negotiate"])
@pytest.mark.pypi
def test_pypsrp_https(kd, realm, auth, encryption):
    start = len(kd.log())
    with pypsrp_client(kd, realm, auth, https=True, encryption=encryption) as c:
        out, err, rc = c.execute_cmd("echo tls-%s-%s" % (auth, encryption))
    assert (out.strip(), rc) == ("tls-%s-%s" % (auth, encryption), 0), (out, err, rc)
    assert_kerberos_logged(kd, realm.admin, start)


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
@pytest.mark.pypi
def test_pypsrp_runspace_pool(kd, realm, https):
    wsman = WSMan("localhost", port=kd.https_port if https else kd.http_port, ssl=https,
                  username=realm.admin_principal, auth="kerberos", cert_validation=False,
                  operation_timeout=20, read_timeout=30)
    pool = RunspacePool(wsman, configuration_name=PSRP_CONFIG)
    call_with_timeout(pool.open, STEP, "RunspacePool.open")
    try:
        ps = PowerShell(pool)
        ps.add_cmdlet("Write-Output").add_argument("krb-psrp").add_argument(7)
        out = call_with_timeout(ps.invoke, STEP, "invoke")
        assert out == ["krb-psrp", 7]
        assert not ps.had_errors
    finally:
        call_with_timeout(pool.close, STEP, "RunspacePool.close")


# =========================================================================== mutual authentication

@pytest.mark.parametrize("scheme", ["Kerberos", "Negotiate"])
def test_mutual_auth_token_on_final_200(kd, realm, scheme):
    """Raw krb5 AP-REQ on an empty POST: 200 with exactly one
    `WWW-Authenticate: <scheme> <AP-REP>` that completes the context."""
    start = len(kd.log())
    with KrbConn(kd) as c:
        r, ctx = c.login(scheme=scheme)
        assert r.status == 200, r.describe() + "\nlog:\n" + kd.log()[start:][-3000:]
        www = r.www()
        assert len(www) == 1 and re.fullmatch(r"%s [A-Za-z0-9+/]+=*" % scheme, www[0]), www
        assert ctx.complete, "the AP-REP did not complete the context"
        assert r.body == b""
    assert find_record(kd, lambda x: x.get("WINRMD_USER") == realm.admin.name
                       and x.get("WINRMD_AUTH_SCHEME") == scheme
                       and x.get("WINRMD_HTTP_STATUS") == "200", start), kd.log()[start:][-3000:]


def test_pywinrm_requires_mutual_auth_and_gets_it(kd, realm):
    """pywinrm's vendored requests_kerberos runs with mutual_authentication=
    REQUIRED and raises MutualAuthenticationError if the final answer lacks
    the AP-REP; a successful command proves the daemon sent it."""
    try:
        from winrm.vendor.requests_kerberos import REQUIRED   # pywinrm 0.4+
    except ImportError:
        from requests_kerberos import REQUIRED               # Debian's 0.3 uses the package
    s = pywinrm_session(kd, https=True)
    transport = s.protocol.transport
    auth = (transport.build_session() or transport.session).auth   # 0.3 returns None, sets .session
    assert auth.mutual_authentication == REQUIRED
    r = s.run_cmd("echo mutual")
    assert r.std_out == b"mutual\n"
    assert auth.auth_done, "requests_kerberos did not verify the server's AP-REP"


def test_spnego_krb5_token_answered_in_spnego(kd, realm):
    """SPNEGO NegTokenInit with krb5 first (what pypsrp/Go send): the final 200
    carries a SPNEGO accept-completed NegTokenResp that completes the context."""
    start = len(kd.log())
    with KrbConn(kd) as c:
        r, ctx = c.login(scheme="Negotiate", mech="spnego")
        assert r.status == 200, r.describe() + "\nlog:\n" + kd.log()[start:][-3000:]
        tok = r.token("Negotiate")
        assert tok is not None and tok[0] == 0xa1, "not a SPNEGO NegTokenResp: %r" % tok
        assert ctx.complete
        xml, mid = config_get_envelope(to=c.url)
        r = c.post_sealed(xml)
        assert r.status == 200, r.describe()
        proto, plain = unseal(ctx, r.body)
        assert proto == SPNEGO_PROTOCOL
        assert relates_to(plain) == mid


# =========================================================================== sealing on the wire

@pytest.mark.parametrize("scheme", ["Kerberos", "Negotiate"])
def test_sealed_wire_format(kd, realm, scheme):
    with KrbConn(kd) as c:
        r, ctx = login_ok(c, scheme=scheme)
        want_proto = KERBEROS_PROTOCOL if scheme == "Kerberos" else SPNEGO_PROTOCOL

        xml, mid = config_get_envelope(to=c.url)
        r = c.post_sealed(xml)
        assert r.status == 200, r.describe()
        assert r.header("Content-Type") == enc_content_type(want_proto), r.describe()
        assert b"Envelope" not in r.body and b"AllowUnencrypted" not in r.body, \
            "the answer is not encrypted"
        proto, plain = unseal(ctx, r.body)
        assert proto == want_proto
        assert relates_to(plain) == mid
        assert config_value(plain, "Service/AllowUnencrypted") == "false"

        # Ruby/OMI lay the part headers out without the TAB.
        xml, mid = config_get_envelope(to=c.url)
        r = c.post_sealed(xml, tab=False)
        assert r.status == 200, r.describe()
        assert relates_to(unseal(ctx, r.body)[1]) == mid

        # Faults to sealed requests are sealed too.
        xml, mid = envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
                            "http://schemas.example.org/no/such/resource", to=c.url)
        r = c.post_sealed(xml)
        assert r.status == 500, r.describe()
        assert r.header("Content-Type") == enc_content_type(want_proto), r.describe()
        plain = unseal(ctx, r.body)[1]
        assert relates_to(plain) == mid and fault_code(plain) > 0

        # Plaintext SOAP on the authenticated connection over HTTP: refused.
        r = c.post(config_get_envelope(to=c.url)[0])
        assert r.status == 401, r.describe()
        assert b"AllowUnencrypted" not in r.body


def test_plaintext_soap_over_http_refused(kd, realm):
    """The AP-REQ on a request that carries plaintext SOAP, over HTTP with
    AllowUnencrypted=false: refused, nothing dispatched."""
    start = len(kd.log())
    with KrbConn(kd) as c:
        xml, _ = shell_create_envelope(to=c.url)
        r, _ = c.login(scheme="Negotiate", body=xml)
        assert r.status == 401, r.describe()
        assert b"Shell" not in r.body
    time.sleep(0.5)
    assert not shells_created(kd, realm.admin, start)


@pytest.mark.pypi
def test_pypsrp_http_without_encryption_refused(kd, realm):
    """pypsrp with encryption='never' over HTTP sends plaintext SOAP: refused."""
    start = len(kd.log())
    with pytest.raises(AuthenticationError):
        with pypsrp_client(kd, realm, "kerberos", https=False, encryption="never") as c:
            c.execute_cmd("echo should-not-run")
    assert find_record(kd, lambda x: x.get("WINRMD_RESULT") == "unencrypted-refused", start), \
        kd.log()[start:][-3000:]
    assert not shells_created(kd, realm.admin, start)


def test_https_plaintext_after_kerberos(kd, realm):
    with KrbConn(kd, https=True) as c:
        login_ok(c, scheme="Kerberos",
                 cb_app_data=tls_server_end_point(c.peer_cert_der()))
        xml, mid = config_get_envelope(to=c.url)
        r = c.post(xml)
        assert r.status == 200, r.describe()
        assert relates_to(r.body) == mid


def _flip(body, where):
    body = bytearray(body)
    marker = b"Content-Type: application/octet-stream\r\n"
    off = body.index(marker) + len(marker)
    (hl,) = struct.unpack("<I", bytes(body[off:off + 4]))
    if where == "ciphertext":
        body[off + 4 + hl + 10] ^= 0x01
    else:                               # inside the wrap token header (after the 16-byte prefix)
        body[off + 4 + min(hl - 1, 20)] ^= 0x80
    return bytes(body)


@pytest.mark.parametrize("where", ["ciphertext", "header"])
def test_tampered_sealed_request_not_dispatched(kd, realm, where):
    start = len(kd.log())
    with KrbConn(kd) as c:
        _, ctx = login_ok(c, scheme="Kerberos")
        xml, _ = shell_create_envelope(to=c.url)
        r = c.post(_flip(seal(ctx, xml, c.protocol), where),
                   content_type=enc_content_type(c.protocol))
        assert r.status in (400, 401), r.describe()
        assert b"Shell" not in r.body
        # The context is gone: a correctly sealed next request fails too.
        xml, _ = config_get_envelope(to=c.url)
        r2 = post_or_closed(c, seal(ctx, xml, c.protocol), content_type=enc_content_type(c.protocol))
        assert r2 is None or r2.status in (400, 401), r2.describe()
    assert find_record(kd, lambda x: x.get("WINRMD_RESULT") in ("bad-signature", "bad-encryption"),
                       start), kd.log()[start:][-3000:]
    time.sleep(1.0)
    assert not shells_created(kd, realm.admin, start), \
        "a tampered Create was dispatched:\n" + kd.log()[start:][-3000:]
    assert kd.proc.poll() is None


def test_replayed_sealed_request_refused(kd, realm):
    """The same sealed Create sent twice on the connection: the second is a
    replay (GSS_S_DUPLICATE_TOKEN) and must not create a second shell."""
    start = len(kd.log())
    with KrbConn(kd) as c:
        _, ctx = login_ok(c, scheme="Kerberos")
        xml, _ = shell_create_envelope(to=c.url)
        body = seal(ctx, xml, c.protocol)
        r = c.post(body, content_type=enc_content_type(c.protocol))
        assert r.status == 200, r.describe()
        sid = shell_id_of(unseal(ctx, r.body)[1])
        assert wait_for(lambda: len(shells_created(kd, realm.admin, start)) == 1, 15)
        r2 = post_or_closed(c, body, content_type=enc_content_type(c.protocol))
        replay_status = None if r2 is None else r2.status
    with KrbConn(kd) as c:
        _, ctx = login_ok(c, scheme="Kerberos")
        for s in {x.get("WINRMD_SHELL_ID") for x in shells_created(kd, realm.admin, start)} | {sid}:
            xml, _ = envelope(ACT_DELETE, RESOURCE_CMD_SHELL, selectors={"ShellId": s}, to=c.url)
            c.post_sealed(xml)
    time.sleep(0.5)
    n = len(shells_created(kd, realm.admin, start))
    assert replay_status in (None, 400, 401) and n == 1, (
        "replayed sealed Create answered %s, %d shells created:\n%s"
        % (replay_status, n, kd.log()[start:][-3000:]))


# =========================================================================== refusals

def test_principal_without_local_account_401(kd, realm):
    start = len(kd.log())
    with ccache(realm, "nosuch"), KrbConn(kd) as c:
        r, _ = c.login(scheme="Kerberos")
        assert r.status == 401, r.describe()
        assert r.token() is None, "no mutual-auth token on a refusal: %r" % r.www()
    assert kd.wait_log("nosuchlocal", start=start), kd.log()[start:][-3000:]


def test_principal_without_local_account_pywinrm(kd, realm):
    with ccache(realm, "nosuch"):
        s = pywinrm_session(kd, https=True)
        with pytest.raises(winrm.exceptions.InvalidCredentialsError):
            s.run_cmd("echo no")


@pytest.mark.parametrize("https", [False, True], ids=["http", "https"])
def test_user_outside_allowed_groups_access_denied(kd, realm, https):
    start = len(kd.log())
    with ccache(realm, "plain"), KrbConn(kd, https=https) as c:
        cb = tls_server_end_point(c.peer_cert_der()) if https else None
        xml, mid = config_get_envelope(to=c.url)
        r, _ = c.login(scheme="Negotiate", body=xml if https else b"", cb_app_data=cb)
        assert r.status == 500, r.describe()
        assert fault_code(r.body) == ERROR_ACCESS_DENIED, r.describe()
        if https:
            assert relates_to(r.body) == mid
    assert kd.wait_log("login of %s from 127.0.0.1 refused" % realm.plain.name, start=start), \
        kd.log()[start:][-3000:]


def test_user_outside_allowed_groups_pywinrm(kd, realm):
    with ccache(realm, "plain"):
        s = pywinrm_session(kd, https=True)
        with pytest.raises(winrm.exceptions.WinRMError) as ei:
            s.run_cmd("echo no")
    status, code, text = pywinrm_fault(ei.value)
    assert (status, code) == (500, ERROR_ACCESS_DENIED), text


def test_expired_account_401(kd, realm):
    """PAM account management refuses the (chage -E 0) account."""
    start = len(kd.log())
    with ccache(realm, "expired"), KrbConn(kd) as c:
        r, _ = c.login(scheme="Kerberos")
        assert r.status == 401, r.describe()
    assert kd.wait_log("PAM account management refused", start=start), kd.log()[start:][-3000:]


def test_locked_account_401(kd, realm, users):
    """A valid ticket for a local account that usermod -L locked: refused,
    although pam_unix's account check alone would let it through."""
    start = len(kd.log())
    with ccache(realm, "locked"), KrbConn(kd) as c:
        r, _ = c.login(scheme="Kerberos")
        assert r.status == 401, r.describe()
    assert kd.wait_log("the account %s is locked" % users.locked.name, start=start), kd.log()[start:][-3000:]


def test_ticket_for_service_not_in_keytab_401(kd, realm):
    """A valid ticket for HTTP/otherhost (a real principal, not in the daemon's
    keytab) sent to localhost."""
    start = len(kd.log())
    with KrbConn(kd) as c:
        r, _ = c.login(scheme="Kerberos", host="otherhost")
        assert r.status == 401, r.describe()
    assert kd.wait_log("Kerberos login from 127.0.0.1 failed", start=start), kd.log()[start:][-3000:]


def _corrupt(tok):
    t = bytearray(tok)
    # keep the GSS framing (0x60 + krb5 OID) so it is handled as Kerberos;
    # scramble the AP-REQ's encrypted part near the end
    for i in range(len(t) - 40, len(t) - 20):
        t[i] ^= 0x5a
    return bytes(t)


@pytest.mark.parametrize("kind", ["corrupted-ap-req", "truncated", "garbage"])
def test_corrupted_token_401_and_daemon_keeps_serving(kd, realm, kind):
    filt = {"corrupted-ap-req": _corrupt,
            "truncated": lambda t: t[:len(t) // 2],
            "garbage": lambda t: b"\x60\x82\xff\xff" + os.urandom(64)}[kind]
    with KrbConn(kd) as c:
        r, _ = c.login(scheme="Kerberos", token_filter=filt)
        assert r.status == 401, r.describe()
    assert kd.proc.poll() is None
    with KrbConn(kd) as c:
        login_ok(c, scheme="Kerberos")
        xml, mid = config_get_envelope(to=c.url)
        r = c.post_sealed(xml)
        assert r.status == 200 and relates_to(unseal(c.ctx, r.body)[1]) == mid, r.describe()


def test_kerberos_token_replay_across_connections_refused(kd, realm):
    """The same AP-REQ presented on a second connection (the replay cache)."""
    with KrbConn(kd) as c:
        saved = {}

        def keep(t):
            saved["tok"] = t
            return t
        login_ok(c, scheme="Kerberos", token_filter=keep)
    with KrbConn(kd) as c2:
        r = c2.post(b"", auth="Kerberos " + base64.b64encode(saved["tok"]).decode())
        assert r.status == 401, r.describe()


# =========================================================================== channel binding

def test_cbt_strict_without_bindings_401(kd_strict, realm):
    with KrbConn(kd_strict, https=True) as c:
        r, _ = c.login(scheme="Kerberos")
        assert r.status == 401, r.describe()
    assert kd_strict.wait_log("no channel binding"), kd_strict.log()[-3000:]


@pytest.mark.parametrize("scheme,mech", [("Kerberos", "krb5"), ("Negotiate", "krb5"),
                                         ("Negotiate", "spnego")])
def test_cbt_strict_with_bindings_200(kd_strict, realm, tls_cert, scheme, mech):
    with KrbConn(kd_strict, https=True) as c:
        assert c.peer_cert_der() == cert_der(tls_cert[0])
        cb = tls_server_end_point(c.peer_cert_der())
        xml, mid = config_get_envelope(to=c.url)
        r, ctx = c.login(scheme=scheme, mech=mech, cb_app_data=cb, body=xml)
        assert r.status == 200, r.describe()
        assert ctx.complete
        assert relates_to(r.body) == mid


def test_cbt_strict_wrong_bindings_401(kd_strict, realm):
    with KrbConn(kd_strict, https=True) as c:
        r, _ = c.login(scheme="Kerberos", cb_app_data=b"tls-server-end-point:" + b"\0" * 32)
        assert r.status == 401, r.describe()


def test_cbt_relaxed_wrong_bindings_401(kd, realm):
    with KrbConn(kd, https=True) as c:
        r, _ = c.login(scheme="Kerberos", cb_app_data=b"tls-server-end-point:" + b"\x11" * 32)
        assert r.status == 401, r.describe()


def test_cbt_relaxed_without_bindings_200(kd, realm):
    with KrbConn(kd, https=True) as c:
        login_ok(c, scheme="Kerberos")


def test_cbt_strict_not_checked_over_http(kd_strict, realm):
    with KrbConn(kd_strict) as c:
        login_ok(c, scheme="Kerberos")


@pytest.mark.pypi
@pytest.mark.parametrize("client", ["pywinrm", "pypsrp-kerberos", "pypsrp-negotiate"])
def test_real_clients_send_cbt_under_strict(kd_strict, realm, client):
    start = len(kd_strict.log())
    if client == "pywinrm":
        r = pywinrm_session(kd_strict, https=True).run_cmd("echo strict")
        assert r.std_out == b"strict\n"
    else:
        with pypsrp_client(kd_strict, realm, client.split("-")[1], https=True) as c:
            out, err, rc = c.execute_cmd("echo strict")
        assert out.strip() == "strict"
    assert_kerberos_logged(kd_strict, realm.admin, start)


# =========================================================================== what the 401 offers

def test_401_offers_kerberos_when_keytab_exists(kd, realm):
    with KrbConn(kd) as c:
        r = c.post(config_get_envelope(to=c.url)[0])
        assert r.status == 401, r.describe()
        assert "Kerberos" in r.www() and "Negotiate" in r.www(), r.www()


def test_401_without_kerberos_when_keytab_missing(winrmd, realm):
    missing = os.path.join(realm.dir, "no-such.keytab")
    assert not os.path.exists(missing)
    d = winrmd(auth={"Kerberos": "true", "Keytab": missing})
    with KrbConn(d) as c:
        r = c.post(config_get_envelope(to=c.url)[0])
        assert r.status == 401, r.describe()
        assert "Kerberos" not in r.www() and "Negotiate" in r.www(), r.www()
    # and a Kerberos token is refused cleanly
    with KrbConn(d) as c:
        r, _ = c.login(scheme="Kerberos")
        assert r.status == 401, r.describe()
    assert d.proc.poll() is None
