"""Fixtures of the hostile-input, fault and soak tests of winrmd.

The shared ones (users, tls_cert, winrmd, daemon) live in tests/conftest.py.

Run as root, from the repository root:  build/venv/bin/pytest -q tests/hostile
"""
import pytest

from daemon_util import make_user, remove_user


@pytest.fixture(scope="session")
def other_user(users):
    """A second allowed user (for "another user's ShellId")."""
    u = make_user("wrhoth")
    try:
        yield u
    finally:
        remove_user(u)
