"""Fixtures shared by every winrmd test suite (integration, hostile, runspace).

These tests run as root on loopback: they create real local users (PAM does
the password checks), write a configuration with free ports and a fresh
self-signed certificate, and start the real daemon, build/winrmd -d -f CONF,
with its stderr (the log) captured to a file.

Fixtures:
  users           session: admin (in winrm-users), plain (in no allowed group),
                  locked (usermod -L, in winrm-users), expired (chage -E 0,
                  in winrm-users); each has .name and .password.
  tls_cert        session: (cert_path, key_path), key mode 0600.
  winrmd          function: a factory, winrmd(service={...}, winrs={...}, ...)
                  -> a running Daemon, stopped at the end of the test.
  daemon          session: one Daemon with the default configuration, shared by
                  the tests that do not change anything.
"""
import os
import grp
import subprocess
from types import SimpleNamespace

import pytest

from daemon_util import Daemon, make_user, remove_user, run, stop_and_check
from wsman_util import ALLOWED_GROUP

PAM_FILE = "/etc/pam.d/winrmd"

DEBIAN_PAM = """\
# PAM configuration for winrmd (written by the integration tests)
@include common-auth
@include common-account
@include common-session-noninteractive
"""


# --------------------------------------------------------------------------- suites
#
# make check runs up to three suites (tests/suites.sh decides which, from what
# the machine can install, and says why):
#   core  - every machine: clients from Debian only (python3-winrm 0.3,
#           requests-ntlm/ntlm-auth, requests-kerberos, gssapi, Go masterzen/winrm
#           in GOPATH mode, raw SOAP), run by Debian's python3
#   pypi  - where PyPI is reachable: tests marked `pypi` (pypsrp, pyspnego,
#           psrpcore and its stand-in runspace, pywinrm latest), run by build/venv
#   pwsh  - where NuGet is reachable: real pwsh runspaces (tests/pwsh)
# WINRMD_SUITE names the one being run; tests of other suites are deselected
# (not skipped), and the runner prints their count and the reason.
SUITE_MARKS = ("pypi",)


def pytest_configure(config):
    # The test daemon uses a fresh self-signed certificate; every client skips verification.
    config.addinivalue_line("filterwarnings", "ignore::urllib3.exceptions.InsecureRequestWarning")
    config.addinivalue_line("markers", "pypi: needs a client from PyPI (pypsrp, pyspnego, psrpcore)")


def pytest_collection_modifyitems(config, items):
    suite = os.environ.get("WINRMD_SUITE")
    if not suite:
        return
    keep, drop = [], []
    for item in items:
        marks = {m for m in SUITE_MARKS if item.get_closest_marker(m)}
        mine = (suite in marks) if suite in SUITE_MARKS else not marks
        (keep if mine else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session", autouse=True)
def no_ca_bundle_env():
    """REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE make requests (and pywinrm 0.3, which
    merges them over server_cert_validation='ignore') verify our self-signed
    certificate; the tests talk to loopback only, so drop them."""
    saved = {k: os.environ.pop(k) for k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
             if k in os.environ}
    yield
    os.environ.update(saved)


# --------------------------------------------------------------------------- users

@pytest.fixture(scope="session")
def users():
    assert os.geteuid() == 0, "the integration tests must run as root"
    created_group = False
    try:
        grp.getgrnam(ALLOWED_GROUP)
    except KeyError:
        run(["groupadd", ALLOWED_GROUP])
        created_group = True
    made = []
    try:
        admin = make_user("wrtadm"); made.append(admin)
        plain = make_user("wrtpln", ()); made.append(plain)
        locked = make_user("wrtlck"); made.append(locked)
        run(["usermod", "-L", locked.name])
        expired = make_user("wrtexp"); made.append(expired)
        run(["chage", "-E", "0", expired.name])
        yield SimpleNamespace(admin=admin, plain=plain, locked=locked, expired=expired)
    finally:
        for u in made:
            remove_user(u)
        if created_group:
            subprocess.run(["groupdel", ALLOWED_GROUP], capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def pam_service():
    """/etc/pam.d/winrmd is installed by `make install`; write Debian's if missing."""
    created = False
    if not os.path.exists(PAM_FILE):
        with open(PAM_FILE, "w") as f:
            f.write(DEBIAN_PAM)
        created = True
    yield PAM_FILE
    if created:
        try:
            os.unlink(PAM_FILE)
        except OSError:
            pass


# --------------------------------------------------------------------------- TLS

@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
    os.chmod(key, 0o600)
    return cert, key


# --------------------------------------------------------------------------- daemon

@pytest.fixture
def winrmd(tmp_path_factory, tls_cert, users):
    """Factory: winrmd(service={...}, auth={...}, winrs={...}) -> running Daemon."""
    started = []

    def start(service=None, auth=None, winrs=None):
        d = Daemon(tmp_path_factory.mktemp("winrmd"), *tls_cert,
                   service=service, auth=auth, winrs=winrs)
        started.append(d)
        return d.start()

    yield start
    for d in started:
        stop_and_check(d)


@pytest.fixture(scope="session")
def daemon(tmp_path_factory, tls_cert, users):
    """The shared daemon with the default (Windows-like) configuration."""
    d = Daemon(tmp_path_factory.mktemp("winrmd-shared"), *tls_cert)
    d.start()
    yield d
    stop_and_check(d)
