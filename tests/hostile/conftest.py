"""Fixtures for the hostile-input, fault and soak tests of winrmd.

These reuse tests/integration/conftest.py (users, tls_cert, the winrmd
factory, the shared daemon, the Daemon class) and wsman_util.py.  The
integration conftest is loaded under its own module name, so that this file
(which pytest imports as "conftest") does not shadow it, and its fixtures are
re-exported here.

Run as root, from the repository root:  build/venv/bin/pytest -q tests/hostile
"""
import importlib.util
import os
import secrets
import subprocess
import sys
from types import SimpleNamespace

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.normpath(os.path.join(HERE, "..", "integration"))
for p in (INTEGRATION, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

_spec = importlib.util.spec_from_file_location("winrmd_integration_conftest",
                                               os.path.join(INTEGRATION, "conftest.py"))
_ic = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _ic
_spec.loader.exec_module(_ic)

# Hooks and fixtures of the integration suite, re-exported.
pytest_configure = _ic.pytest_configure
no_ca_bundle_env = _ic.no_ca_bundle_env
pam_service = _ic.pam_service
users = _ic.users
tls_cert = _ic.tls_cert
winrmd = _ic.winrmd
daemon = _ic.daemon
Daemon = _ic.Daemon
stop_and_check = _ic._stop_and_check

from wsman_util import ALLOWED_GROUP  # noqa: E402


def make_user(prefix, groups=(ALLOWED_GROUP,)):
    name = "%s%s" % (prefix, secrets.token_hex(3))
    password = secrets.token_urlsafe(18)
    cmd = ["useradd", "-m", "-s", "/bin/bash"]
    if groups:
        cmd += ["-G", ",".join(groups)]
    subprocess.run(cmd + [name], check=True, capture_output=True)
    subprocess.run(["chpasswd"], input="%s:%s\n" % (name, password), check=True,
                   capture_output=True, text=True)
    return SimpleNamespace(name=name, password=password)


def remove_user(u):
    subprocess.run(["pkill", "-KILL", "-u", u.name], capture_output=True)
    subprocess.run(["userdel", "-r", u.name], capture_output=True)


@pytest.fixture(scope="session")
def other_user(users):
    """A second allowed user (for "another user's ShellId")."""
    u = make_user("wrhoth")
    try:
        yield u
    finally:
        remove_user(u)
