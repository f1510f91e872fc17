"""Helpers for test_psrp.py: session-configuration files and pypsrp plumbing."""
import os
import threading

from wsman_util import REPO

VENV_PYTHON = os.path.join(REPO, "build", "venv", "bin", "python")
RUNSPACE = os.path.join(REPO, "tests", "runspace", "psrp_runspace.py")
RUNSPACE_COMMAND = "%s %s" % (VENV_PYTHON, RUNSPACE)
RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"

ERROR_ACCESS_DENIED = 5
ERROR_WSMAN_INVALID_RESOURCE_URI = 2150858811
ERROR_OPERATION_TIMEOUT = 2150858793


def session_conf(name, command=RUNSPACE_COMMAND, allowed_groups="winrm-users", run_as_user="",
                 enabled=True, **extra):
    lines = ["[SessionConfiguration]", "Name = %s" % name, "Command = %s" % command,
             "AllowedGroups = %s" % allowed_groups, "RunAsUser = %s" % run_as_user,
             "Enabled = %s" % ("true" if enabled else "false")]
    lines += ["%s = %s" % kv for kv in extra.items()]
    return "\n".join(lines) + "\n"


def write_sessions(conf_path, confs):
    """Write sessions.d/<Name>.conf next to conf_path; confs = {name: text}."""
    d = os.path.join(os.path.dirname(conf_path), "sessions.d")
    os.makedirs(d, exist_ok=True)
    for name, text in confs.items():
        with open(os.path.join(d, "%s.conf" % name), "w") as f:
            f.write(text)
    return d


class Timeout(AssertionError):
    pass


def call_with_timeout(fn, timeout, what="call"):
    """Run fn() in a thread; return its result, re-raise its exception, or fail
    with Timeout if it has not finished after `timeout` seconds (the thread is
    left behind as a daemon)."""
    box = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: B902 - handed back to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Timeout("%s did not finish within %ss" % (what, timeout))
    if "error" in box:
        raise box["error"]
    return box.get("result")
