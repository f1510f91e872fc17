"""make clean and make run-clean leave nothing behind (tests/run-quickstart.sh).

The quick-start script is run with its account, run directory and TLS
directory pointed at throw-away ones, and a stand-in for winrmd that only
does what the real one does to the file system there: create the
self-signed pair when it is missing.
"""
import os
import secrets
import subprocess

import pytest

from daemon_util import remove_user
from wsman_util import ALLOWED_GROUP, REPO

SCRIPT = os.path.join(REPO, "tests", "run-quickstart.sh")

FAKE_WINRMD = """#!/bin/sh
[ "$*" = "-d -E" ] || exit 9
mkdir -p "$WINRMD_RUN_TLS"
[ -e "$WINRMD_RUN_TLS/winrmd.crt" ] || echo generated > "$WINRMD_RUN_TLS/winrmd.crt"
[ -e "$WINRMD_RUN_TLS/winrmd.key" ] || echo generated > "$WINRMD_RUN_TLS/winrmd.key"
"""


def user_exists(name):
    return subprocess.run(["id", name], capture_output=True).returncode == 0


@pytest.fixture
def quickstart(tmp_path):
    name = "rqs%s" % secrets.token_hex(3)
    fake = tmp_path / "winrmd"
    fake.write_text(FAKE_WINRMD)
    fake.chmod(0o755)
    env = dict(os.environ, WINRMD_RUN_USER=name, WINRMD_RUN_DIR=str(tmp_path / "run"),
               WINRMD_RUN_TLS=str(tmp_path / "etc" / "winrmd" / "tls"))

    def run(*args):
        r = subprocess.run(["sh", SCRIPT, *args], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r
    run.user, run.fake, run.dir = name, str(fake), tmp_path
    yield run
    if user_exists(name):
        remove_user(type("U", (), {"name": name}))


def test_run_clean_removes_what_make_run_created(quickstart):
    q, tls = quickstart, quickstart.dir / "etc" / "winrmd" / "tls"
    out = q(q.fake).stdout
    assert q.user in out and "run-clean" in out
    groups = subprocess.run(["id", "-nG", q.user], capture_output=True, text=True).stdout.split()
    assert ALLOWED_GROUP in groups
    assert (tls / "winrmd.crt").exists() and (q.dir / "run" / "demo-password").exists()
    q(q.fake)   # a second run finds the files, and still knows they are its own
    q("--clean")
    assert not user_exists(q.user)
    assert not (q.dir / "run").exists()
    assert not (q.dir / "etc" / "winrmd").exists(), "the TLS files or the directories made for them are left"
    assert subprocess.run(["getent", "group", ALLOWED_GROUP], capture_output=True).returncode == 0
    q("--clean")   # nothing left to do is not an error


def test_run_clean_keeps_tls_files_that_were_there_before(quickstart):
    q, tls = quickstart, quickstart.dir / "etc" / "winrmd" / "tls"
    tls.mkdir(parents=True)
    for f in ("winrmd.crt", "winrmd.key"):
        (tls / f).write_text("the administrator's\n")
    q(q.fake)
    q("--clean")
    assert not user_exists(q.user)
    assert (tls / "winrmd.crt").read_text() == "the administrator's\n"
    assert (tls / "winrmd.key").exists()


def test_make_clean_removes_every_build_directory():
    out = subprocess.run(["make", "-n", "clean"], cwd=REPO, capture_output=True, text=True).stdout
    removed = out.split()
    for d in ("build", "build-clang", "build-san", "build-fuzz"):
        assert d in removed, out
    out = subprocess.run(["make", "-n", "run-clean"], cwd=REPO, capture_output=True, text=True).stdout
    assert "run-quickstart.sh --clean" in out, out
