"""The command lines of winrmd and winrmctl: what a newcomer types first."""
import os
import subprocess

import pytest

from wsman_util import WINRMD

# winrmctl from the same build as the daemon under test.
WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(os.path.dirname(WINRMD), "winrmctl")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, **kw)


@pytest.mark.parametrize("prog", [WINRMD, WINRMCTL], ids=["winrmd", "winrmctl"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_to_stdout(prog, flag):
    r = run(prog, flag)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("usage: "), r.stdout
    assert "--help" in r.stdout and "-h" in r.stdout
    assert "invalid" not in r.stderr and "unrecognized" not in r.stderr, r.stderr


@pytest.mark.parametrize("prog", [WINRMD, WINRMCTL], ids=["winrmd", "winrmctl"])
def test_unknown_option_is_still_refused(prog):
    r = run(prog, "--no-such-option")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr and "usage: " in r.stderr and not r.stdout


def test_man_pages_list_help():
    man = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "man")
    for page in ("winrmd.8", "winrmctl.8"):
        with open(os.path.join(man, page)) as f:
            text = f.read()
        assert ".It Fl h , Fl \\-help" in text, page
