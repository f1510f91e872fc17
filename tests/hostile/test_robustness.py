"""Regression tests for the security review of issue 10.

Each test runs the attack, then proves that the same worker process still
serves and that a bystander (another user's `sleep 5; echo alive` in its own
shell, started before the attack) finishes normally.

Run as root:  /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/hostile/test_robustness.py
"""
import base64
import hashlib
import hmac
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace

import pytest
import requests

from hostile_util import (ACT_COMMAND, ACT_DELETE, ACT_SIGNAL, ERROR_SCHEMA_VALIDATION,
                          ERROR_SHELL_NOT_FOUND, SIGNAL_TERMINATE, RawShell, assert_serving,
                          kill_user_procs, pgrep)
from wire_util import RawConn
from wsman_util import (ACTION_GET, RESOURCE_CMD_SHELL, SOAP_CONTENT_TYPE, WINRMD, assert_fault,
                        assert_ok, basic_header, config_get_envelope, envelope, make_config, post,
                        shell_create_envelope, wait_for)

URI_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
ERROR_INVALID_XML = 2150858819
WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(os.path.dirname(WINRMD), "winrmctl")


# --------------------------------------------------------------------------- fixtures

class Bystander:
    """Another user's command, running through the attack."""

    def __init__(self, d, user):
        self.sh = RawShell(d, user)
        self.sid = self.sh.create()
        self.cid = self.sh.command(self.sid, "sleep 5; echo alive")

    def check(self):
        out, err, code = self.sh.receive_all(self.sid, self.cid, limit=60)
        assert (out, code) == (b"alive\n", 0), (out, err, code)
        r, mid = self.sh.delete(self.sid)
        assert_ok(r, mid)


@pytest.fixture
def target(winrmd, users, other_user):
    """target(service=..., auth=...) -> a daemon, its worker pid and a running bystander."""
    def start(**kw):
        d = winrmd(**kw)
        t = SimpleNamespace(d=d, worker=d.worker_pid(), admin=users.admin, other=other_user)
        t.by = Bystander(d, other_user)
        return t
    return start


def survived(t):
    assert_serving(t.d, t.admin, t.worker)
    t.by.check()
    assert_serving(t.d, t.admin, t.worker)


def keepalive(user):
    """A requests session that keeps its connection (one password check)."""
    s = requests.Session()
    s.verify = False
    s.headers.update({"Content-Type": SOAP_CONTENT_TYPE,
                      "Authorization": basic_header(user.name, user.password)})
    return s


# --------------------------------------------------------------------------- 1: Get on .../shell

@pytest.mark.parametrize("selectors", [None, {"ShellId": "7D3B0A5E-0000-4000-8000-000000000000"}],
                         ids=["no-selector", "unknown-shellid"])
def test_get_on_shell_resource_without_a_shell(target, selectors):
    """Get on .../windows/shell (no /cmd) whose shell lookup fails: one fault, no double free."""
    t = target()
    for _ in range(3):
        xml, mid = envelope(ACTION_GET, URI_SHELL, selectors=selectors)
        assert_fault(post(t.d.https_url, xml, user=t.admin), ERROR_SHELL_NOT_FOUND, mid)
    survived(t)
