"""NTLM / Negotiate authentication and WinRM message encryption, with real clients.

Clients: pywinrm (requests_ntlm: raw NTLMSSP under Negotiate; Debian's 0.3
in the core suite, with OpenSSL's legacy provider for MD4), a Go client on
masterzen/winrm's ClientNTLM (Azure/go-ntlmssp), and an NTLM context driven by
hand on one http.client connection (ntlm_wire.py: Debian's ntlm-auth for raw
NTLMSSP) for the wire details: the exact multipart/encrypted layout,
tampering, replay and channel binding.  The `pypi` suite adds pypsrp
(pyspnego: SPNEGO-wrapped NTLM with auth='negotiate', raw NTLMSSP with
auth='ntlm') and SPNEGO on the wire.

The NT hashes live in a store in the test's tmp directory, filled with
`build/winrmctl -f CONF ntlm set-password USER --stdin`; the daemons point
[Service/Auth] NtlmStore at it.

Run as root:  make check (or tests/integration/run.sh build core)
"""
import http.client
import os
import re
import secrets
import stat
import subprocess
import time
from types import SimpleNamespace

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError
try:
    from pypsrp.client import Client
except ImportError:  # only tests marked `pypi` use it; they run where PyPI is reachable
    Client = None

import go_client
from daemon_util import Daemon, stop_and_check
from wsman_util import (
    ALLOWED_GROUP, ERROR_ACCESS_DENIED, ERROR_WSMAN_INVALID_RESOURCE_URI, NS, RESOURCE_CMD_SHELL,
    SOAP_CONTENT_TYPE, basic_header, config_get_envelope, config_value, envelope, fault_code,
    log_records, parse, relates_to, shell_create_envelope, wait_for,
)
from ntlm_wire import (
    ENC_CONTENT_TYPE, ENC_PROTOCOL, WireConn, cert_der, frame, make_nt_store, ntlm_list, seal,
    sealed_parts, tls_server_end_point, unseal,
)

HERE = os.path.dirname(os.path.abspath(__file__))
ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
FAILURE_DELAY_MIN = 1.5         # the monitor delays failed logins by ~2 s
# SPNEGO-wrapped NTLM on the wire needs pyspnego (PyPI).
SPNEGO = pytest.param("negotiate", marks=pytest.mark.pypi)


# =========================================================================== fixtures

@pytest.fixture(scope="module")
def ntlm(tmp_path_factory, tls_cert, users):
    """The NT hash store (in a tmp dir) with admin, plain (not in an allowed
    group) and expired set to their Unix passwords, plus `nohash`, an allowed
    user whose NT hash is never set."""
    name = "wrtnoh%s" % secrets.token_hex(3)
    nohash = SimpleNamespace(name=name, password=secrets.token_urlsafe(18))
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-G", ALLOWED_GROUP, name],
                   check=True, capture_output=True)
    try:
        subprocess.run(["chpasswd"], input="%s:%s\n" % (name, nohash.password), check=True,
                       capture_output=True, text=True)
        store, conf = make_nt_store(tmp_path_factory.mktemp("ntlm-store"), tls_cert,
                                    (users.admin, users.plain, users.expired, users.locked))
        # winrmctl falls back to the built-in default path if it cannot read
        # CONF: make sure the hashes went where the daemons will look.
        st = os.stat(store)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert sorted(ntlm_list(conf)) == sorted([users.admin.name, users.plain.name,
                                                  users.expired.name, users.locked.name])
        yield SimpleNamespace(store=store, conf=conf, admin=users.admin, plain=users.plain,
                              expired=users.expired, locked=users.locked, nohash=nohash)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        subprocess.run(["userdel", "-r", name], capture_output=True)


def _module_daemon(tmp_path_factory, tls_cert, ntlm, tag, **auth):
    au = {"NtlmStore": ntlm.store}
    au.update(auth)
    d = Daemon(tmp_path_factory.mktemp(tag), *tls_cert, auth=au)
    d.start()
    return d


@pytest.fixture(scope="module")
def nd(tmp_path_factory, tls_cert, ntlm):
    """Default configuration (AllowUnencrypted=false, CbtHardeningLevel=Relaxed)."""
    d = _module_daemon(tmp_path_factory, tls_cert, ntlm, "winrmd-ntlm")
    yield d
    stop_and_check(d)


@pytest.fixture(scope="module")
def nd_strict(tmp_path_factory, tls_cert, ntlm):
    """CbtHardeningLevel=Strict: NTLM over HTTPS must carry the right CBT."""
    d = _module_daemon(tmp_path_factory, tls_cert, ntlm, "winrmd-ntlm-strict",
                       CbtHardeningLevel="Strict")
    yield d
    stop_and_check(d)


@pytest.fixture(scope="module")
def go_ntlm_client(tmp_path_factory):
    return go_client.build(tmp_path_factory)

# =========================================================================== helpers

def find_record(d, pred, start=0, timeout=15.0):
    return wait_for(lambda: next((r for r in log_records(d.log()[start:]) if pred(r)), None),
                    timeout)


def records(d, pred, start=0):
    return [r for r in log_records(d.log()[start:]) if pred(r)]


def assert_negotiate_logged(d, user, start):
    rec = find_record(d, lambda r: r.get("WINRMD_USER") == user.name
                      and r.get("WINRMD_AUTH_SCHEME") == "Negotiate"
                      and r.get("WINRMD_HTTP_STATUS") == "200"
                      and r.get("WINRMD_ACTION"), start)
    assert rec, ('no log record with WINRMD_AUTH_SCHEME="Negotiate" WINRMD_USER="%s" for a '
                 "served request; log tail:\n%s" % (user.name, d.log()[start:][-4000:]))
    assert not records(d, lambda r: r.get("WINRMD_USER") == user.name
                       and r.get("WINRMD_AUTH_SCHEME") == "Basic", start), \
        "the client fell back to Basic"


def shells_created(d, user, start):
    return records(d, lambda r: r.get("WINRMD_RESULT") == "shell-created"
                   and r.get("WINRMD_USER") == user.name, start)


def login(c, user, **kw):
    r, legs = c.handshake(user.name, user.password, **kw)
    assert r.status == 200, "NTLM login of %s failed: %s" % (user.name, r.describe())
    assert c.ctx.complete
    return r, legs


def post_or_closed(c, *a, **kw):
    """A request on a connection the daemon may have closed: the response, or
    None if the connection is gone (which also means nothing was served)."""
    try:
        return c.post(*a, **kw)
    except (http.client.HTTPException, ConnectionError, OSError):
        return None


def delete_shell(d, user, shell_id):
    with WireConn(d) as c:
        login(c, user)
        xml, _ = envelope(ACT_DELETE, RESOURCE_CMD_SHELL, selectors={"ShellId": shell_id},
                          to=d.http_url)
        r = c.post_sealed(xml)
        assert r.status == 200, r.describe()


def shell_id_of(plain):
    el = parse(plain).find("s:Body/rsp:Shell/rsp:ShellId", NS)
    assert el is not None and el.text, plain[:2000]
    return el.text


# =========================================================================== real clients

def test_pywinrm_ntlm_http_is_sealed(nd, ntlm):
    u = ntlm.admin
    start = len(nd.log())
    s = winrm.Session(nd.http_url, auth=(u.name, u.password), transport="ntlm")
    r = s.run_cmd("echo hello-ntlm; echo err-ntlm >&2; exit 3")
    assert (r.std_out, r.std_err, r.status_code) == (b"hello-ntlm\n", b"err-ntlm\n", 3)
    # message_encryption='auto' over http: pywinrm really set up encryption
    assert s.protocol.transport.encryption is not None
    assert_negotiate_logged(nd, u, start)


def test_pywinrm_ntlm_https_sends_cbt(nd_strict, ntlm):
    """Over HTTPS pywinrm does not seal; under Strict the login succeeds only
    because requests_ntlm sends the tls-server-end-point binding."""
    u = ntlm.admin
    start = len(nd_strict.log())
    s = winrm.Session(nd_strict.https_url, auth=(u.name, u.password), transport="ntlm",
                      server_cert_validation="ignore")
    r = s.run_cmd("echo over-tls; exit 5")
    assert (r.std_out, r.status_code) == (b"over-tls\n", 5)
    assert s.protocol.transport.encryption is None
    assert_negotiate_logged(nd_strict, u, start)


@pytest.mark.pypi
@pytest.mark.parametrize("auth", ["negotiate", "ntlm"])
def test_pypsrp_http_encrypted(nd, ntlm, auth):
    u = ntlm.admin
    start = len(nd.log())
    with Client("127.0.0.1", port=nd.http_port, ssl=False, username=u.name, password=u.password,
                auth=auth, cert_validation=False, encryption="auto") as c:
        out, err, rc = c.execute_cmd("echo psrp-%s; exit 4" % auth)
    assert (out.strip(), rc) == ("psrp-%s" % auth, 4), (out, err, rc)
    assert_negotiate_logged(nd, u, start)


@pytest.mark.pypi
@pytest.mark.parametrize("encryption", ["never", "always"])
@pytest.mark.parametrize("auth", ["negotiate", "ntlm"])
def test_pypsrp_https(nd_strict, ntlm, auth, encryption):
    """Strict CBT: pyspnego must send the right tls-server-end-point."""
    u = ntlm.admin
    start = len(nd_strict.log())
    with Client("127.0.0.1", port=nd_strict.https_port, ssl=True, username=u.name,
                password=u.password, auth=auth, cert_validation=False,
                encryption=encryption) as c:
        out, err, rc = c.execute_cmd("echo tls-%s-%s" % (auth, encryption))
    assert (out.strip(), rc) == ("tls-%s-%s" % (auth, encryption), 0), (out, err, rc)
    assert_negotiate_logged(nd_strict, u, start)


def run_go_ntlm(client, d, user, password, stdin, *cmd, https=True):
    return go_client.run(client, d.https_port if https else d.http_port, user, password, stdin,
                         *cmd, https=https, auth="ntlm")


def test_go_masterzen_ntlm_https(go_ntlm_client, nd, ntlm):
    """masterzen/winrm ClientNTLM (go-ntlmssp: no signing, no MIC, no CBT)."""
    u = ntlm.admin
    # RunWithInput sends stdin while a Receive is out, so a second connection
    # logs in meanwhile, and go-ntlmssp may send that login's AUTHENTICATE on
    # whichever pooled connection is free.  NTLM is bound to its connection
    # (HTTP.sys refuses the same), so winrmd must refuse that attempt and say
    # so; the client's race is not ours, so such an attempt, and only such an
    # attempt, is retried.
    for attempt in range(3):
        start = len(nd.log())
        p = run_go_ntlm(go_ntlm_client, nd, u.name, u.password, "in1\nin2\n", "cat; echo go-ntlm; exit 6")
        if p.returncode == 0 or "ntlm-out-of-order" not in nd.log()[start:]:
            break
    assert p.returncode == 0, "go NTLM client: rc %d\n%s\n%s\nlog tail:\n%s" % (
        p.returncode, p.stdout, p.stderr, nd.log()[start:][-3000:])
    out, _, code = go_client.result(p)
    assert (out, code) == (b"in1\nin2\ngo-ntlm\n", 6)
    assert_negotiate_logged(nd, u, start)


def test_go_masterzen_ntlm_wrong_password(go_ntlm_client, nd, ntlm):
    p = run_go_ntlm(go_ntlm_client, nd, ntlm.admin.name, "wrong-" + secrets.token_hex(4), "",
                    "echo no")
    assert p.returncode == 2 and "401" in p.stdout, (p.stdout, p.stderr)


# =========================================================================== the wire

@pytest.mark.parametrize("protocol", ["ntlm", SPNEGO])
def test_sealed_wire_format(nd, ntlm, protocol):
    u = ntlm.admin
    with WireConn(nd) as c:
        r, legs = login(c, u, protocol=protocol)
        # The challenge 401 carries exactly one WWW-Authenticate: our token.
        assert legs[0].status == 401, legs[0].describe()
        www = legs[0].www()
        assert len(www) == 1 and re.fullmatch(r"Negotiate [A-Za-z0-9+/]+=*", www[0]), www
        assert len(legs) == 2 and r.body == b""

        xml, mid = config_get_envelope(to=nd.http_url)
        r = c.post_sealed(xml)
        assert r.status == 200, r.describe()
        assert r.header("Content-Type") == ENC_CONTENT_TYPE
        assert b"Envelope" not in r.body and b"AllowUnencrypted" not in r.body, \
            "the answer is not encrypted"
        orig_len, sig, data = sealed_parts(r.body)
        assert orig_len == len(data) and sig[:4] == b"\x01\x00\x00\x00"
        plain = unseal(c.ctx, r.body)
        assert relates_to(plain) == mid
        assert config_value(plain, "Service/AllowUnencrypted") == "false"

        # Ruby/OMI send the part headers without the TAB.
        xml, mid = config_get_envelope(to=nd.http_url)
        r = c.post_sealed(xml, tab=False)
        assert r.status == 200, r.describe()
        assert relates_to(unseal(c.ctx, r.body)) == mid

        # Faults to sealed requests are sealed too.
        xml, mid = envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get",
                            "http://schemas.example.org/no/such/resource", to=nd.http_url)
        r = c.post_sealed(xml)
        assert r.status == 500, r.describe()
        assert r.header("Content-Type") == ENC_CONTENT_TYPE
        plain = unseal(c.ctx, r.body)
        assert fault_code(plain) == ERROR_WSMAN_INVALID_RESOURCE_URI
        assert relates_to(plain) == mid

        # Still alive after a fault.
        xml, mid = config_get_envelope(to=nd.http_url)
        r = c.post_sealed(xml)
        assert r.status == 200 and relates_to(unseal(c.ctx, r.body)) == mid, r.describe()

        # Plaintext SOAP on the authenticated connection over HTTP: refused.
        r = c.post(config_get_envelope(to=nd.http_url)[0])
        assert r.status == 401, r.describe()
        assert b"AllowUnencrypted" not in r.body


def test_sealed_omi_padding_accepted(nd, ntlm):
    """OMI pads the plaintext with NULs to a multiple of 16 and announces either
    the exact or the padded length."""
    u = ntlm.admin
    with WireConn(nd) as c:
        login(c, u)
        for announce_padded in (False, True):
            xml, mid = config_get_envelope(to=nd.http_url)
            soap = xml.encode()
            padded = soap + b"\0" * (16 - len(soap) % 16)
            w = c.ctx.wrap_winrm(padded)
            body = frame(w.header, w.data, len(padded) if announce_padded else len(soap),
                         ENC_PROTOCOL, tab=False)
            r = c.post(body, content_type=ENC_CONTENT_TYPE)
            assert r.status == 200, (announce_padded, r.describe())
            assert relates_to(unseal(c.ctx, r.body)) == mid


def test_plaintext_soap_over_http_refused(nd, ntlm):
    """requests_ntlm / Go style: the SOAP body on every handshake leg, unsealed.
    Over HTTP with AllowUnencrypted=false the final leg is refused (401)."""
    u = ntlm.admin
    start = len(nd.log())
    with WireConn(nd) as c:
        xml, _ = shell_create_envelope(to=nd.http_url)
        r, legs = c.handshake(u.name, u.password, body=xml)
        assert len(legs) == 2 and r.status == 401, r.describe()
        assert b"Shell" not in r.body
    time.sleep(0.5)
    assert not shells_created(nd, u, start)


@pytest.fixture(scope="module")
def nd_unenc(tmp_path_factory, tls_cert, ntlm):
    """AllowUnencrypted=true: plaintext SOAP after NTLM over HTTP is served."""
    d = Daemon(tmp_path_factory.mktemp("winrmd-ntlm-unenc"), *tls_cert,
               service={"AllowUnencrypted": "true"}, auth={"NtlmStore": ntlm.store})
    d.start()
    yield d
    stop_and_check(d)


def test_plaintext_over_http_allowed_when_allow_unencrypted(nd_unenc, ntlm):
    d, u = nd_unenc, ntlm.admin
    with WireConn(d) as c:
        xml, mid = config_get_envelope(to=d.http_url)
        r, _ = c.handshake(u.name, u.password, body=xml)
        assert r.status == 200, r.describe()
        assert r.header("Content-Type").replace(" ", "").lower() == SOAP_CONTENT_TYPE.lower()
        assert relates_to(r.body) == mid
        # sealed is still fine on the same connection
        xml, mid = config_get_envelope(to=d.http_url)
        r = c.post_sealed(xml)
        assert r.status == 200 and relates_to(unseal(c.ctx, r.body)) == mid, r.describe()


def test_go_masterzen_ntlm_http_allow_unencrypted(go_ntlm_client, nd_unenc, ntlm):
    d, u = nd_unenc, ntlm.admin
    start = len(d.log())
    p = run_go_ntlm(go_ntlm_client, d, u.name, u.password, "", "echo go-http", https=False)
    assert p.returncode == 0 and "EXIT 0" in p.stdout, (p.stdout, p.stderr, d.log()[start:][-3000:])


def test_https_plaintext_after_ntlm(nd, ntlm):
    u = ntlm.admin
    with WireConn(nd, https=True) as c:
        cbt = tls_server_end_point(c.peer_cert_der())
        login(c, u, cbt=cbt)
        xml, mid = config_get_envelope()
        r = c.post(xml)
        assert r.status == 200, r.describe()
        assert relates_to(r.body) == mid


# =========================================================================== tampering and replay

def _flip(body, where):
    body = bytearray(body)
    marker = b"Content-Type: application/octet-stream\r\n"
    off = body.index(marker) + len(marker)
    if where == "ciphertext":
        body[off + 4 + 16 + 10] ^= 0x01
    elif where == "signature":
        body[off + 4 + 6] ^= 0x80       # inside the encrypted checksum
    else:                               # the sequence number
        body[off + 4 + 12] ^= 0x01
    return bytes(body)


@pytest.mark.parametrize("where", ["ciphertext", "signature", "seqnum"])
def test_tampered_sealed_request_not_dispatched(nd, ntlm, where):
    u = ntlm.admin
    start = len(nd.log())
    with WireConn(nd) as c:
        login(c, u)
        xml, _ = shell_create_envelope(to=nd.http_url)
        r = c.post(_flip(seal(c.ctx, xml), where), content_type=ENC_CONTENT_TYPE)
        assert r.status in (400, 401), r.describe()
        assert r.header("Content-Type") != ENC_CONTENT_TYPE and b"Shell" not in r.body
        # The context is dead: a correctly sealed next request fails too.
        xml, _ = config_get_envelope(to=nd.http_url)
        r2 = post_or_closed(c, seal(c.ctx, xml), content_type=ENC_CONTENT_TYPE)
        assert r2 is None or r2.status in (400, 401), r2.describe()
    assert find_record(nd, lambda r: r.get("WINRMD_RESULT") in ("bad-signature", "bad-encryption")
                       and r.get("WINRMD_USER") == u.name, start), nd.log()[start:][-3000:]
    time.sleep(1.0)
    assert not shells_created(nd, u, start), "a tampered Create was dispatched:\n" + \
        nd.log()[start:][-3000:]
    assert nd.proc.poll() is None


def test_replayed_sealed_request_refused(nd, ntlm):
    u = ntlm.admin
    start = len(nd.log())
    with WireConn(nd) as c:
        login(c, u)
        xml, mid = shell_create_envelope(to=nd.http_url)
        body = seal(c.ctx, xml)
        r = c.post(body, content_type=ENC_CONTENT_TYPE)
        assert r.status == 200, r.describe()
        sid = shell_id_of(unseal(c.ctx, r.body))
        assert wait_for(lambda: len(shells_created(nd, u, start)) == 1, 15)
        r2 = post_or_closed(c, body, content_type=ENC_CONTENT_TYPE)
        assert r2 is None or r2.status in (400, 401), r2.describe()
    assert find_record(nd, lambda r: r.get("WINRMD_RESULT") in ("bad-signature", "bad-encryption")
                       and r.get("WINRMD_USER") == u.name, start), nd.log()[start:][-3000:]
    time.sleep(1.0)
    assert len(shells_created(nd, u, start)) == 1, "the replayed Create was dispatched:\n" + \
        nd.log()[start:][-3000:]
    delete_shell(nd, u, sid)


def test_sealed_without_login_refused(nd, ntlm):
    """Sealed bytes on a connection that never logged in: no context, refused."""
    with WireConn(nd) as a:
        login(a, ntlm.admin)
        body = seal(a.ctx, config_get_envelope(to=nd.http_url)[0])
    with WireConn(nd) as b:
        r = b.post(body, content_type=ENC_CONTENT_TYPE)
        assert r.status in (400, 401), r.describe()


# =========================================================================== credentials

def test_wrong_password_401_after_delay(nd, ntlm):
    u = ntlm.admin
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(u.name, "wrong-" + secrets.token_hex(6),
                              body=config_get_envelope()[0])
        assert len(legs) == 2 and r.status == 401, r.describe()
        assert r.elapsed >= FAILURE_DELAY_MIN, "no failure delay: %.2fs" % r.elapsed
        assert "Negotiate" in r.www() and b"Envelope" not in r.body
    with pytest.raises(InvalidCredentialsError):
        winrm.Session(nd.http_url, auth=(u.name, "wrong-" + secrets.token_hex(6)),
                      transport="ntlm").run_cmd("echo no")


def test_unknown_user_401(nd, ntlm):
    ghost = "wrtghost" + secrets.token_hex(3)
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(ghost, "Secr3t-" + secrets.token_hex(6), body=config_get_envelope()[0])
        assert len(legs) == 2 and r.status == 401, r.describe()


def test_user_without_nt_hash_401_and_hint_logged(nd, ntlm):
    u = ntlm.nohash
    start = len(nd.log())
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=config_get_envelope()[0])
        assert len(legs) == 2 and r.status == 401, r.describe()
    line = wait_for(lambda: next((ln for ln in nd.log()[start:].splitlines()
                                  if u.name in ln and "winrmctl ntlm set-password" in ln), None), 10)
    assert line, "no log line pointing at winrmctl ntlm set-password:\n" + nd.log()[start:][-3000:]
    assert u.password not in nd.log()


def test_expired_account_401(nd, ntlm):
    """The NT hash is right but PAM account management refuses the account
    (chage -E 0)."""
    u = ntlm.expired
    start = len(nd.log())
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=config_get_envelope()[0])
        assert len(legs) == 2 and r.status == 401, r.describe()
    assert nd.wait_log("PAM account management refused %s" % u.name, start=start), nd.log()[start:][-3000:]


def test_locked_account_401(nd, ntlm):
    """The NT hash is right but the Unix account is locked (usermod -L).
    pam_unix's account check ignores the lock, which only disables the Unix
    password; winrmd refuses it to NTLM as Windows refuses a disabled account."""
    u = ntlm.locked
    start = len(nd.log())
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=config_get_envelope()[0])
        assert len(legs) == 2 and r.status == 401, r.describe()
    assert nd.wait_log("the account %s is locked" % u.name, start=start), nd.log()[start:][-3000:]


@pytest.mark.parametrize("https", [True, False])
def test_user_outside_allowed_groups_access_denied(nd, ntlm, https):
    u = ntlm.plain
    start = len(nd.log())
    with WireConn(nd, https=https) as c:
        xml, mid = config_get_envelope()
        r, legs = c.handshake(u.name, u.password, body=xml if https else b"",
                              cbt=tls_server_end_point(c.peer_cert_der()) if https else None)
        assert len(legs) == 2 and r.status == 500, r.describe()
        assert fault_code(r.body) == ERROR_ACCESS_DENIED
        # The connection is not logged in: a plaintext or sealed request is refused.
        r2 = post_or_closed(c, xml)
        assert r2 is None or r2.status == 401, r2.describe()
    time.sleep(0.5)
    assert not records(nd, lambda r: r.get("WINRMD_USER") == u.name
                       and r.get("WINRMD_HTTP_STATUS") == "200", start)


# =========================================================================== channel binding

def _other_cert_cbt(der):
    """Bindings computed from a different certificate's hash."""
    other = bytearray(der)
    other[-10] ^= 0xFF
    return tls_server_end_point(bytes(other))


@pytest.mark.parametrize("proto", ["ntlm", SPNEGO])
def test_cbt_strict(nd_strict, ntlm, tls_cert, proto):
    u = ntlm.admin
    start = len(nd_strict.log())
    xml, mid = config_get_envelope()
    with WireConn(nd_strict, https=True) as c:
        der = c.peer_cert_der()
        assert der == cert_der(tls_cert[0])
        r, _ = c.handshake(u.name, u.password, body=xml, cbt=tls_server_end_point(der))
        assert r.status == 200 and relates_to(r.body) == mid, r.describe()
    with WireConn(nd_strict, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=xml, protocol=proto,
                              cbt=_other_cert_cbt(der))
        assert len(legs) == 2 and r.status == 401, (proto, r.describe())
    with WireConn(nd_strict, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=xml, protocol=proto, cbt=None)
        assert len(legs) == 2 and r.status == 401, (proto, r.describe())
    assert find_record(nd_strict, lambda r: r.get("WINRMD_RESULT") == "cbt-mismatch", start), \
        nd_strict.log()[start:][-3000:]


def test_cbt_relaxed(nd, ntlm):
    u = ntlm.admin
    xml, mid = config_get_envelope()
    with WireConn(nd, https=True) as c:
        der = c.peer_cert_der()
        r, _ = c.handshake(u.name, u.password, body=xml, cbt=None)
        assert r.status == 200 and relates_to(r.body) == mid, r.describe()
    with WireConn(nd, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=xml, cbt=_other_cert_cbt(der))
        assert len(legs) == 2 and r.status == 401, r.describe()
    with WireConn(nd, https=True) as c:
        r, _ = c.handshake(u.name, u.password, body=xml, cbt=tls_server_end_point(der))
        assert r.status == 200, r.describe()


def test_cbt_not_checked_over_http(nd_strict, ntlm):
    """Bindings only mean something on TLS: over HTTP even Strict ignores them."""
    with WireConn(nd_strict) as c:
        login(c, ntlm.admin, cbt=None)
        r = c.post_sealed(config_get_envelope(to=nd_strict.http_url)[0])
        assert r.status == 200, r.describe()


# =========================================================================== offered schemes

def _www_of_anonymous(d, https):
    with WireConn(d, https=https) as c:
        r = c.post(config_get_envelope()[0])
        assert r.status == 401, r.describe()
        return sorted(r.www())


def test_401_offers_enabled_schemes_default(nd):
    assert _www_of_anonymous(nd, True) == sorted(["Negotiate", 'Basic realm="WSMAN"'])
    # Basic over HTTP needs AllowUnencrypted.
    assert _www_of_anonymous(nd, False) == ["Negotiate"]


def test_401_without_negotiate(winrmd, ntlm):
    d = winrmd(auth={"NtlmStore": ntlm.store, "Negotiate": "false"})
    www = _www_of_anonymous(d, True)
    assert www == ['Basic realm="WSMAN"'], www
    assert not any("negotiate" in v.lower() or "ntlm" in v.lower() for v in _www_of_anonymous(d, False))
    u = ntlm.admin
    with WireConn(d, https=True) as c:
        r, legs = c.handshake(u.name, u.password, body=config_get_envelope()[0])
        assert len(legs) == 1 and r.status == 401, r.describe()
        assert not any(v.lower().startswith("negotiate") for v in r.www()), r.www()
    with WireConn(d, https=True) as c:
        r = c.post(config_get_envelope()[0], auth=basic_header(u.name, u.password))
        assert r.status == 200, r.describe()


def test_401_without_basic(winrmd, ntlm):
    d = winrmd(auth={"NtlmStore": ntlm.store, "Basic": "false"})
    assert _www_of_anonymous(d, True) == ["Negotiate"]
    assert _www_of_anonymous(d, False) == ["Negotiate"]
    u = ntlm.admin
    with WireConn(d, https=True) as c:
        r = c.post(config_get_envelope()[0], auth=basic_header(u.name, u.password))
        assert r.status == 401 and r.www() == ["Negotiate"], r.describe()
    with WireConn(d, https=True) as c:
        login(c, u, body=b"")
        r = c.post(config_get_envelope()[0])
        assert r.status == 200, r.describe()
