"""Helpers for test_setup.py: run enable-remoting against a scratch --root,
network namespaces with a veth pair, and snapshots of a directory tree."""
import os
import shutil
import subprocess
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENABLE = os.path.join(REPO, "config", "enable-remoting")
DISABLE = os.path.join(REPO, "config", "disable-remoting")
WINRMD = os.environ.get("WINRMD_BIN") or os.path.join(REPO, "build", "winrmd")
WINRMCTL = os.environ.get("WINRMCTL_BIN") or os.path.join(os.path.dirname(WINRMD), "winrmctl")
IDENTIFY_BODY = ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                 'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
                 '<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>')


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(cmd), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def make_root(path):
    """A scratch root: etc/passwd and etc/group without winrmd / winrm-users."""
    etc = os.path.join(path, "etc")
    os.makedirs(etc)
    for name in ("passwd", "group"):
        with open("/etc/" + name) as src, open(os.path.join(etc, name), "w") as dst:
            dst.writelines(l for l in src if not l.startswith(("winrmd:", "winrm-users:")))
    for name in ("shadow", "gshadow"):
        open(os.path.join(etc, name), "w").close()
        os.chmod(os.path.join(etc, name), 0o640)
    return path


def tool_env(extra_path=None):
    env = dict(os.environ, WINRMD=WINRMD, WINRMCTL=WINRMCTL, LC_ALL="C")
    if extra_path:
        env["PATH"] = extra_path + ":" + env["PATH"]
    return env


def remoting(script, root, *args, netns=None, extra_path=None, check=True):
    cmd = [script, "--root", str(root)] + list(args)
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    r = sh(cmd, check=False, env=tool_env(extra_path))
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def snapshot(root):
    """{relative path: (mode, content)} of every file and directory under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            data = None
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    data = f.read()
            out[os.path.relpath(p, root)] = (st.st_mode, st.st_mtime_ns, data)
    return out


def conf_get(conf, section, key):
    return sh([WINRMCTL, "-f", conf, "config", "get", section, key]).stdout.strip()


class NetNS:
    """Two namespaces joined by a veth pair: server SRV_ADDR, client CLI_ADDR."""

    def __init__(self, tag):
        self.srv, self.cli = "wrsrv" + tag, "wrcli" + tag
        self.srv_addr, self.cli_addr = "10.231.%d.1" % (int(tag) % 250), "10.231.%d.2" % (int(tag) % 250)
        for ns in (self.srv, self.cli):
            sh(["ip", "netns", "del", ns], check=False)
            sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "add", "wrv" + tag, "netns", self.srv, "type", "veth",
            "peer", "name", "wrp" + tag, "netns", self.cli])
        for ns, dev, addr in ((self.srv, "wrv" + tag, self.srv_addr), (self.cli, "wrp" + tag, self.cli_addr)):
            self.run(ns, ["ip", "addr", "add", addr + "/24", "dev", dev])
            self.run(ns, ["ip", "link", "set", dev, "up"])
            self.run(ns, ["ip", "link", "set", "lo", "up"])

    def run(self, ns, cmd, check=True):
        return sh(["ip", "netns", "exec", ns] + cmd, check=check)

    def curl(self, url, timeout=2):
        """curl's exit code from the client namespace: 0 answered, 7 refused, 28 timed out."""
        r = self.run(self.cli, ["curl", "-s", "-k", "-o", "/dev/null", "-w", "%{http_code}",
                                "--connect-timeout", str(timeout), "--max-time", "10",
                                "-H", "WSMANIDENTIFY: unauthenticated",
                                "-H", "Content-Type: application/soap+xml;charset=UTF-8",
                                "--data", IDENTIFY_BODY, url], check=False)
        return r.returncode, r.stdout

    def close(self):
        for ns in (self.srv, self.cli):
            sh(["ip", "netns", "del", ns], check=False)


def wait_answer(ns, url, timeout=20.0):
    """Wait until url answers an Identify from inside the server namespace."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = ns.run(ns.srv, ["curl", "-s", "-k", "--connect-timeout", "1", "--max-time", "3",
                            "-H", "WSMANIDENTIFY: unauthenticated",
                            "-H", "Content-Type: application/soap+xml;charset=UTF-8",
                            "--data", IDENTIFY_BODY, url], check=False)
        if r.returncode == 0 and "IdentifyResponse" in r.stdout:
            return True
        time.sleep(0.2)
    return False


def which(name):
    return shutil.which(name)
