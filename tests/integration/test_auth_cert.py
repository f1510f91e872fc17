"""Client certificate authentication on HTTPS (issue: auth and encryption).

A throw-away CA issues client certificates; [CertMapping] sections map them
to real local users.  pywinrm's `certificate` transport sends the TLS client
certificate plus the secprofile/https/mutual Authorization header, as
Windows' WinRM client does.
"""
import os
import subprocess

import pytest
import requests
import winrm

from daemon_util import Daemon, stop_and_check
from wsman_util import config_get_envelope, fault_code, SOAP_CONTENT_TYPE

CERT_AUTH = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _ca(d, name):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
             "-out", name + ".pem", "-days", "2", "-subj", "/CN=" + name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, name + ".pem")


def _client(d, ca, name, cn, upn=None, eku="clientAuth"):
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
             name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    ext = ["extendedKeyUsage=" + eku]
    if upn:
        ext.append("subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:" + upn)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("\n".join(ext) + "\n")
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext",
             cwd=d)
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory, users):
    d = str(tmp_path_factory.mktemp("pki"))
    ca = _ca(d, "ca")
    _ca(d, "otherca")                   # signs "foreign"
    return {
        "dir": d,
        "ca": ca,
        "admin_upn": _client(d, "ca", "admin_upn", "someone", upn=users.admin.name + "@localhost"),
        "admin_cn": _client(d, "ca", "admin_cn", users.admin.name),
        "plain": _client(d, "ca", "plain", users.plain.name),
        "locked": _client(d, "ca", "locked", users.locked.name),
        "unmapped": _client(d, "ca", "unmapped", "nobody-mapped"),
        "foreign": _client(d, "otherca", "foreign", users.admin.name),
        "server_only": _client(d, "ca", "server_only", users.admin.name, eku="serverAuth"),
    }


@pytest.fixture(scope="module")
def cd(tmp_path_factory, tls_cert, users, pki):
    """A daemon with certificate authentication and mappings for CN, UPN and a forbidden user."""
    d = Daemon(tmp_path_factory.mktemp("certd"), *tls_cert,
               auth={"Certificate": "true", "CAFile": pki["ca"]})
    with open(d.conf_path, "a") as f:
        f.write("\n[CertMapping by-upn]\nSubject = %s@localhost\nUser = %s\n"
                % (users.admin.name, users.admin.name))
        f.write("\n[CertMapping by-cn]\nSubject = %s\nIssuer = CN=ca\nUser = %s\n"
                % (users.admin.name, users.admin.name))
        f.write("\n[CertMapping plain]\nSubject = %s\nUser = %s\n" % (users.plain.name, users.plain.name))
        f.write("\n[CertMapping locked]\nSubject = %s\nUser = %s\n" % (users.locked.name, users.locked.name))
    d.start()
    yield d
    stop_and_check(d)


def _run(d, cert, cmd="id -un"):
    s = winrm.Session(d.https_url, auth=("", ""), transport="certificate", cert_pem=cert[0],
                      cert_key_pem=cert[1], server_cert_validation="ignore")
    return s.run_cmd(cmd)


def _get(d, cert, auth=CERT_AUTH):
    xml, _ = config_get_envelope()
    return requests.post(d.https_url, data=xml, cert=cert, verify=False, timeout=30,
                         headers={"Content-Type": SOAP_CONTENT_TYPE, "Authorization": auth})


def test_pywinrm_certificate_by_upn_runs_as_mapped_user(cd, pki, users):
    r = _run(cd, pki["admin_upn"])
    assert r.status_code == 0
    assert r.std_out.decode().strip() == users.admin.name
    assert 'WINRMD_AUTH_SCHEME="Certificate"' in cd.log()


def test_certificate_mapped_by_cn_and_issuer(cd, pki, users):
    r = _run(cd, pki["admin_cn"])
    assert r.std_out.decode().strip() == users.admin.name


def test_unmapped_certificate_is_refused(cd, pki):
    assert _get(cd, pki["unmapped"]).status_code == 401
    assert "no [CertMapping]" in cd.log()


def test_certificate_from_untrusted_ca_is_refused(cd, pki):
    assert _get(cd, pki["foreign"]).status_code == 401
    assert "not trusted" in cd.log()


def test_certificate_without_client_auth_purpose_is_refused(cd, pki):
    assert _get(cd, pki["server_only"]).status_code == 401


def test_mapped_user_outside_allowed_groups_gets_access_denied(cd, pki):
    r = _get(cd, pki["plain"])
    assert r.status_code == 500
    assert fault_code(r.content) == 5


def test_certificate_of_locked_account_is_refused(cd, pki, users):
    """usermod -L disables the account for every scheme, not only passwords."""
    start = len(cd.log())
    assert _get(cd, pki["locked"]).status_code == 401
    assert cd.wait_log("the account %s is locked" % users.locked.name, start=start), cd.log()[start:][-3000:]


def test_no_client_certificate_is_refused(cd):
    xml, _ = config_get_envelope()
    r = requests.post(cd.https_url, data=xml, verify=False, timeout=30,
                      headers={"Content-Type": SOAP_CONTENT_TYPE, "Authorization": CERT_AUTH})
    assert r.status_code == 401


def test_certificate_over_http_is_refused(cd, pki):
    xml, _ = config_get_envelope()
    r = requests.post(cd.http_url, data=xml, timeout=30,
                      headers={"Content-Type": SOAP_CONTENT_TYPE, "Authorization": CERT_AUTH})
    assert r.status_code == 401


def test_certificate_disabled_by_default(winrmd, pki):
    d = winrmd()
    r = _get(d, pki["admin_upn"])
    assert r.status_code == 401
