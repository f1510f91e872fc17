"""The pwsh suite: Ansible's winrm connection against the host.

Debian's Ansible (ansible-core with the ansible.windows collection from the
`ansible` package, python3-winrm 0.3 underneath) talks to winrmd as to a
Windows host.  Its PowerShell modules run in real pwsh; what cannot work on
Linux is listed in docs/INTEROP.md.

Run as root:  make check (or tests/integration/run.sh build pwsh)
"""
import json
import os
import subprocess

from test_pwsh_winrs import pwsh_installed


def ansible(d, user, module, args=None, tmp_path=None):
    inv = tmp_path / "inventory.ini"
    inv.write_text(
        "[win]\n127.0.0.1\n[win:vars]\n"
        "ansible_user=%s\nansible_password=%s\nansible_connection=winrm\n"
        "ansible_port=%d\nansible_winrm_transport=basic\n"
        "ansible_winrm_server_cert_validation=ignore\n" % (user.name, user.password, d.https_port))
    cmd = ["ansible", "-i", str(inv), "win", "-m", module, "-o"]
    if args:
        cmd += ["-a", args]
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update(ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"), HOME=str(tmp_path))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    return p


def one_line_result(p):
    """-o prints `host | STATUS => {json}` (or `| rc=N | (stdout) ...` for raw)."""
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    return line


def test_win_ping(daemon, users, tmp_path):
    """win_ping runs Ansible's PowerShell exec wrapper in real pwsh; the
    wrapper starts `PowerShell` again, found as the monitor's link to pwsh."""
    pwsh_installed()
    p = ansible(daemon, users.admin, "ansible.windows.win_ping", tmp_path=tmp_path)
    line = one_line_result(p)
    assert p.returncode == 0 and "SUCCESS" in line, p.stdout + p.stderr
    assert json.loads(line.split("=>", 1)[1])["ping"] == "pong", line


def test_raw_runs_as_the_user(daemon, users, tmp_path):
    pwsh_installed()
    p = ansible(daemon, users.admin, "raw", "whoami; uname -s", tmp_path=tmp_path)
    line = one_line_result(p)
    assert p.returncode == 0 and "rc=0" in line, p.stdout + p.stderr
    assert ("%s\\nLinux" % users.admin.name) in line, line
