"""PowerShell's own client engine over Negotiate (NTLM) against real pwsh
runspaces: each connection logs in with .NET's NTLM (an implementation
independent of winrmd's), and over http:// every request and answer is sealed
(multipart/encrypted, HTTP-SPNEGO-session-encrypted) as Windows' WinRM client
does it.  The NT hashes are in a store made with winrmctl, as in
tests/integration/test_auth_ntlm.py.

Kerberos: .NET's "Negotiate" package through MIT GSSAPI (SPNEGO with
Kerberos, as Windows' client sends it) against the test KDC of
tests/integration/test_auth_kerberos.py, to HTTP/localhost.
"""

import pytest

from daemon_util import Daemon, stop_and_check
from ntlm_wire import make_nt_store
from psrp_util import session_conf, write_sessions
from pwsh_util import CONFIG, RUNSPACE_COMMAND, pwsh


@pytest.fixture(scope="module")
def nd(tmp_path_factory, tls_cert, users):
    store, _ = make_nt_store(tmp_path_factory.mktemp("ntlm-store"), tls_cert, [users.admin])
    d = Daemon(tmp_path_factory.mktemp("winrmd-pwsh-ntlm"), *tls_cert, auth={"NtlmStore": store})
    write_sessions(d.conf_path, {CONFIG: session_conf(CONFIG, command=RUNSPACE_COMMAND)})
    d.start()
    yield d
    stop_and_check(d)


def negotiate_requests(d):
    """Requests the daemon served for a Negotiate login (its audit record).
    Over http:// the daemon (AllowUnencrypted = false) refuses plain bodies,
    so every one of them that succeeded there was sealed."""
    return sum(1 for line in d.log().splitlines() if 'WINRMD_AUTH_SCHEME="Negotiate"' in line)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_invoke_command_over_negotiate(nd, users, scheme):
    url = nd.http_url if scheme == "http" else nd.https_url
    r = pwsh(nd, users.admin, r"""
$s2 = New-WinrmdSession -Uri '%s' -Credential $cred -Authentication Negotiate
try {
    Invoke-Command -Session $s2 { [Environment]::UserName; $PSSenderInfo.ConnectedUser }
    # Input and output large enough for several sealed Sends and Receives.
    1..3000 | Invoke-Command -Session $s2 { ($input | Measure-Object -Sum).Sum }
    (Invoke-Command -Session $s2 { 'x' * 300KB }).Length
} finally { Remove-PSSession $s2 }
""" % url, session=False)
    assert r == [users.admin.name, users.admin.name, 4501500, 300 * 1024], r
    assert negotiate_requests(nd) > 0


def test_wrong_password_over_negotiate_is_refused(nd, users):
    r = pwsh(nd, users.admin, r"""
$bad = [pscredential]::new('%s', (ConvertTo-SecureString 'not-the-password' -AsPlainText -Force))
try { $null = New-WinrmdSession -Uri '%s' -Credential $bad -Authentication Negotiate; 'opened' }
catch { $_.Exception.Message }
""" % (users.admin.name, nd.http_url), session=False)
    assert r != ["opened"] and "401" in r[0], r


# ---- Kerberos (SPNEGO) against the test KDC ---------------------------------

from test_auth_kerberos import realm  # noqa: E402,F401  (the KDC, keytab and ticket caches)


@pytest.fixture(scope="module")
def kd(tmp_path_factory, tls_cert, realm):  # noqa: F811
    d = Daemon(tmp_path_factory.mktemp("winrmd-pwsh-krb"), *tls_cert,
               auth={"Kerberos": "true", "Keytab": realm.keytab})
    write_sessions(d.conf_path, {CONFIG: session_conf(CONFIG, command=RUNSPACE_COMMAND)})
    d.start()
    yield d
    stop_and_check(d)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_invoke_command_over_kerberos(kd, realm, users, scheme):  # noqa: F811
    # SPNEGO with Kerberos: .NET gets a ticket for the principal's password
    # from the test KDC (KRB5_CONFIG, set by the realm fixture) for the
    # service HTTP/localhost; over http:// every body is sealed.
    port = kd.http_port if scheme == "http" else kd.https_port
    url = "%s://localhost:%d/wsman" % (scheme, port)
    realm.kdc.kadmin("cpw -pw %s %s" % (users.admin.password, realm.admin_principal))
    r = pwsh(kd, users.admin, r"""
$tgt = [pscredential]::new('%s', (ConvertTo-SecureString '%s' -AsPlainText -Force))
$s2 = New-WinrmdSession -Uri '%s' -Credential $tgt -Authentication Kerberos
try {
    Invoke-Command -Session $s2 { [Environment]::UserName }
    1..3000 | Invoke-Command -Session $s2 { ($input | Measure-Object -Sum).Sum }
    (Invoke-Command -Session $s2 { 'x' * 300KB }).Length
} finally { Remove-PSSession $s2 }
""" % (realm.admin_principal, users.admin.password, url), session=False)
    assert r == [users.admin.name, 4501500, 300 * 1024], r
    log = kd.log()
    assert any('WINRMD_AUTH_SCHEME="Negotiate"' in line and users.admin.name in line
               for line in log.splitlines())
    assert "ntlm-challenge" not in log, "the login fell back to NTLM"
