"""enable-remoting / disable-remoting, the firewall step in network
namespaces, the systemd units, the Debian package and the man pages.

Run as root with real tools (openssl, nft, ip, curl, systemd-analyze,
dpkg-buildpackage).  Everything the tests write goes to a scratch --root or a
network namespace, except the Debian package test, which installs the
package system-wide and purges it again (restoring /etc/pam.d/winrmd and
/etc/winrmd if they existed before).
"""
import glob
import ipaddress
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from setup_util import (DISABLE, ENABLE, REPO, WINRMCTL, WINRMD, NetNS, conf_get, make_root,
                        remoting, sh, snapshot, wait_answer)


@pytest.fixture
def root(tmp_path):
    assert os.geteuid() == 0, "the setup tests must run as root"
    return make_root(str(tmp_path / "root"))


def conf_path(root):
    return os.path.join(root, "etc", "winrmd", "winrmd.conf")


def enable(root, *args, **kw):
    return remoting(ENABLE, root, "--force", *args, **kw)


def disable(root, *args, **kw):
    return remoting(DISABLE, root, "--force", *args, **kw)


# --------------------------------------------------------------------------- enable-remoting

def test_help_documents_every_option():
    text = open(ENABLE).read()
    opts = set(re.findall(r"^\t(--[a-z-]+)[|)]", text, re.M)) | set(re.findall(r"\|(--[a-z-]+)\)", text))
    opts -= {"--disable", "--help"}
    assert len(opts) >= 15, opts
    out = sh([ENABLE, "-h"]).stdout
    missing = [o for o in opts if o not in out and o != "--purge"]
    assert not missing, "enable-remoting -h does not document %s" % missing
    assert "--purge" in sh([DISABLE, "-h"]).stdout


def test_enable_writes_config_certificate_sessions_and_users(root):
    r = enable(root, "--no-firewall", "--no-verify")
    assert "WinRM has been updated for remote management" in r.stdout
    conf = conf_path(root)
    sh([WINRMD, "-t", "-f", conf])
    assert conf_get(conf, "Listener https", "Transport") == "HTTPS"
    assert conf_get(conf, "Listener https", "Port") == "5986"
    assert conf_get(conf, "Listener https", "Address") == "*"
    assert conf_get(conf, "Listener https", "Enabled") == "true"
    assert conf_get(conf, "Listener http", "Transport") == "HTTP"
    assert conf_get(conf, "Listener http", "Port") == "5985"
    assert conf_get(conf, "Listener http", "Enabled") == "true"
    assert conf_get(conf, "Service", "AllowUnencrypted") == "false"

    tls = os.path.join(root, "etc", "winrmd", "tls")
    cert, key = os.path.join(tls, "winrmd.crt"), os.path.join(tls, "winrmd.key")
    assert conf_get(conf, "Listener https", "CertificateFile") == cert
    assert conf_get(conf, "Listener https", "KeyFile") == key
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tls).st_mode) == 0o700
    text = sh(["openssl", "x509", "-in", cert, "-noout", "-text"]).stdout
    assert "Public-Key: (3072 bit)" in text
    assert "sha256WithRSAEncryption" in text
    assert "TLS Web Server Authentication" in text
    host = sh(["hostname"]).stdout.strip().split(".")[0]
    fqdn = sh(["hostname", "-f"], check=False).stdout.strip() or host
    san = text.split("Subject Alternative Name:")[1].split("\n")[1]
    for name in ("DNS:" + host, "DNS:" + fqdn, "DNS:localhost", "IP Address:127.0.0.1"):
        assert name in san, (name, san)
    ips = {ipaddress.ip_address(e.split(":", 1)[1]) for e in san.strip().split(", ")
           if e.startswith("IP Address:")}
    for addr in sh(["hostname", "-I"]).stdout.split() + ["::1"]:
        assert ipaddress.ip_address(addr) in ips, (addr, san)
    assert sh(["openssl", "x509", "-in", cert, "-noout", "-checkend", str(300 * 86400)]).returncode == 0

    cmd = open(os.path.join(root, "etc", "winrmd", "sessions.d", "cmd.conf")).read()
    assert "[SessionConfiguration]" in cmd
    assert re.search(r"^Name = cmd$", cmd, re.M)
    assert re.search(r"^ResourceURI = http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd$", cmd, re.M)
    assert re.search(r"^Enabled = true$", cmd, re.M)
    assert cmd.count("[") == 1

    passwd = open(os.path.join(root, "etc", "passwd")).read()
    group = open(os.path.join(root, "etc", "group")).read()
    assert re.search(r"^winrmd:x:\d+:\d+:[^:]*:/nonexistent:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^winrm-users:x:\d+:", group, re.M)


# Where packages and admins install pwsh (conf.c: conf_pwsh_path), first wins.
PWSH_PLACES = ("/usr/bin/pwsh", "/usr/local/bin/pwsh", "/opt/microsoft/powershell/7/pwsh",
               "/snap/bin/pwsh")


def test_pwsh_registers_powershell_session_configurations(root, tmp_path):
    # A pwsh that is only on the caller's PATH is not the one the daemon would
    # run: enable-remoting registers the installed one, or none.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pwsh").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "pwsh").chmod(0o755)
    r = enable(root, "--no-firewall", "--no-verify", extra_path=str(bindir))
    installed = [p for p in PWSH_PLACES if os.access(p, os.X_OK)]
    sess = os.path.join(root, "etc", "winrmd", "sessions.d")
    if not installed:
        assert sorted(os.listdir(sess)) == ["cmd.conf"]
        assert "pwsh not found" in r.stdout + r.stderr
        return
    assert sorted(os.listdir(sess)) == ["Microsoft.PowerShell.conf", "PowerShell.7.conf", "cmd.conf"]
    for name in ("Microsoft.PowerShell", "PowerShell.7"):
        text = open(os.path.join(sess, name + ".conf")).read()
        assert re.search(r"^Name = %s$" % re.escape(name), text, re.M)
        assert "ResourceURI = http://schemas.microsoft.com/powershell/%s\n" % name in text
        assert "Protocol = psrp" in text
        assert "Command = %s -NoLogo -NoProfile -sshs\n" % installed[0] in text
        assert str(bindir) not in text
        assert "MaxShellsPerUser = 25" in text


def test_winrmctl_names_the_pwsh_the_daemon_runs():
    r = sh([WINRMCTL, "session-config", "pwsh"], check=False)
    installed = [p for p in PWSH_PLACES if os.access(p, os.X_OK)]
    if installed:
        assert (r.returncode, r.stdout) == (0, installed[0] + "\n")
    else:
        assert r.returncode == 1 and "not installed" in r.stderr
    # Only session-config knows the verb.
    assert sh([WINRMCTL, "listener", "pwsh"], check=False).returncode == 2


def test_second_run_changes_nothing(root):
    enable(root, "--no-firewall", "--no-verify")
    before = snapshot(root)
    r = enable(root, "--no-firewall", "--no-verify")
    assert "already set up" in r.stdout and "nothing changed" in r.stdout
    assert snapshot(root) == before


def test_dry_run_changes_nothing(root):
    before = snapshot(root)
    r = enable(root, "--dry-run", "--no-firewall", "--no-verify")
    assert snapshot(root) == before
    assert "would: create the system user winrmd" in r.stdout
    assert "would: generate a self-signed certificate" in r.stdout
    assert "would: create listener https" in r.stdout
    assert "would: register session configuration cmd" in r.stdout
    assert "nothing was changed" in r.stdout
    # On a configured root, a dry run of a different setup lists the changes only.
    enable(root, "--no-firewall", "--no-verify")
    before = snapshot(root)
    r = enable(root, "--dry-run", "--https-only", "--port", "6986", "--no-firewall", "--no-verify")
    assert "would: disable listener http" in r.stdout
    assert "would: update listener https" in r.stdout and "Port" in r.stdout
    assert snapshot(root) == before
    r = disable(root, "--dry-run", "--purge")
    assert "would: disable listener https" in r.stdout
    assert snapshot(root) == before


def test_refuses_without_force_when_not_a_terminal(root):
    r = remoting(ENABLE, root, "--no-firewall", "--no-verify", check=False)
    assert r.returncode == 1 and "--force" in r.stderr
    assert not os.path.exists(conf_path(root))


def test_options_https_only_port_address(root):
    enable(root, "--no-firewall", "--no-verify")
    enable(root, "--no-firewall", "--no-verify", "--https-only", "--port", "6986", "--address", "127.0.0.1")
    conf = conf_path(root)
    sh([WINRMD, "-t", "-f", conf])
    assert conf_get(conf, "Listener https", "Port") == "6986"
    assert conf_get(conf, "Listener https", "Address") == "127.0.0.1"
    assert conf_get(conf, "Listener http", "Enabled") == "false"
    enable(root, "--no-firewall", "--no-verify", "--http-only", "--port", "8085")
    assert conf_get(conf, "Listener http", "Port") == "8085"
    assert conf_get(conf, "Listener http", "Enabled") == "true"
    assert conf_get(conf, "Listener https", "Enabled") == "false"
    r = remoting(ENABLE, root, "--force", "--http-only", "--https-only", check=False)
    assert r.returncode == 1
    r = remoting(ENABLE, root, "--force", "--port", "99999", check=False)
    assert r.returncode == 1 and "invalid port" in r.stderr
    r = remoting(ENABLE, root, "--bogus", check=False)
    assert r.returncode == 2


def test_given_certificate_is_used_not_generated(root, tmp_path):
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
        "-days", "10", "-subj", "/CN=given"])
    os.chmod(key, 0o644)
    r = enable(root, "--no-firewall", "--no-verify", "--cert", cert, "--key", key)
    conf = conf_path(root)
    assert conf_get(conf, "Listener https", "CertificateFile") == cert
    assert conf_get(conf, "Listener https", "KeyFile") == key
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert not os.path.exists(os.path.join(root, "etc", "winrmd", "tls", "winrmd.crt"))
    assert "expires within 30 days" in r.stderr
    other = str(tmp_path / "other.pem")
    sh(["openssl", "genpkey", "-algorithm", "RSA", "-out", other])
    r = remoting(ENABLE, root, "--force", "--no-firewall", "--cert", cert, "--key", other, check=False)
    assert r.returncode == 1 and "is not the key of" in r.stderr


def test_expiring_self_signed_certificate_is_renewed(root):
    tls = os.path.join(root, "etc", "winrmd", "tls")
    os.makedirs(tls, mode=0o700)
    cert, key = os.path.join(tls, "winrmd.crt"), os.path.join(tls, "winrmd.key")
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
        "-days", "5", "-subj", "/CN=old"])
    os.chmod(key, 0o600)
    old_serial = sh(["openssl", "x509", "-in", cert, "-noout", "-serial"]).stdout
    r = enable(root, "--no-firewall", "--no-verify")
    assert "renew the self-signed certificate" in r.stdout
    assert sh(["openssl", "x509", "-in", cert, "-noout", "-serial"]).stdout != old_serial
    assert sh(["openssl", "x509", "-in", cert, "-noout", "-checkend", str(300 * 86400)]).returncode == 0
    # A fresh one is left alone.
    r = enable(root, "--no-firewall", "--no-verify")
    assert "nothing changed" in r.stdout


def test_disable_reverses_and_purge_removes(root):
    enable(root, "--no-firewall", "--no-verify")
    conf = conf_path(root)
    r = disable(root, "--no-firewall")
    assert "has been disabled" in r.stdout
    assert conf_get(conf, "Listener https", "Enabled") == "false"
    assert conf_get(conf, "Listener http", "Enabled") == "false"
    sh([WINRMD, "-t", "-f", conf])
    cert = os.path.join(root, "etc", "winrmd", "tls", "winrmd.crt")
    assert os.path.exists(cert), "certificates are kept without --purge"
    before = snapshot(root)
    r = disable(root, "--no-firewall")
    assert "already disabled" in r.stdout
    assert snapshot(root) == before
    disable(root, "--no-firewall", "--purge")
    assert not os.path.exists(cert)
    assert not os.path.exists(cert.replace(".crt", ".key"))
    assert os.listdir(os.path.join(root, "etc", "winrmd", "sessions.d")) == []
    assert os.path.exists(conf), "the configuration itself stays"
    # enable after purge sets everything up again
    enable(root, "--no-firewall", "--no-verify")
    assert os.path.exists(cert)


# --------------------------------------------------------------------------- firewall in namespaces

BASELINE_NFT = """
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
    }
}
"""


@pytest.fixture
def netns():
    for tool in ("ip", "nft", "curl"):
        assert shutil.which(tool), "%s is missing (apt-get install iproute2 nftables curl)" % tool
    ns = NetNS(str(os.getpid() % 200 + 20))
    yield ns
    ns.close()


class NsDaemon:
    def __init__(self, ns, conf, log):
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns.srv, WINRMD, "-d", "-f", conf],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     start_new_session=True)

    def hup(self):
        os.kill(self.proc.pid, signal.SIGHUP)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def test_firewall_nftables_in_network_namespaces(root, netns, tmp_path):
    ns = netns
    a = ns.srv_addr
    http, https = "http://%s:5985/wsman" % a, "https://%s:5986/wsman" % a
    ns.run(ns.srv, ["nft", "-f", "-"], check=False)
    sh(["ip", "netns", "exec", ns.srv, "nft", "-f", "-"], input=BASELINE_NFT)

    r = enable(root, "--firewall", "nftables", "--address", a, "--no-service", netns=ns.srv)
    assert "firewall (nftables): TCP 5985, 5986 open" in r.stdout
    ruleset = ns.run(ns.srv, ["nft", "list", "ruleset"]).stdout
    assert "table inet winrmd" in ruleset
    assert 'comment "winrmd"' in ruleset, "accept rule inserted into the drop-policy chain"
    nftfile = os.path.join(root, "etc", "winrmd", "winrmd.nft")
    assert os.path.exists(nftfile)

    d = NsDaemon(ns, conf_path(root), str(tmp_path / "winrmd.log"))
    try:
        assert wait_answer(ns, http), open(str(tmp_path / "winrmd.log")).read()[-3000:]
        assert wait_answer(ns, https)
        assert ns.curl(http) == (0, "200")
        assert ns.curl(https) == (0, "200")

        # A second run (now with a daemon to answer) changes nothing and verifies.
        r = enable(root, "--firewall", "nftables", "--address", a, "--no-service", netns=ns.srv)
        assert "nothing changed" in r.stdout
        assert "http://%s:5985/wsman: answered" % a in r.stdout
        assert "https://%s:5986/wsman: answered" % a in r.stdout

        # disable-remoting: rules gone, listeners off -> unreachable.
        disable(root, "--no-service", netns=ns.srv)
        ruleset = ns.run(ns.srv, ["nft", "list", "ruleset"]).stdout
        assert "winrmd" not in ruleset
        assert "table inet filter" in ruleset, "the admin's own table is untouched"
        d.hup()
        time.sleep(1.5)
        assert ns.curl(http)[0] in (7, 28)
        assert ns.curl(https)[0] in (7, 28)

        # --source that excludes the client: refused (TCP reset), though loopback still works.
        enable(root, "--firewall", "nftables", "--address", a, "--no-service", "--no-verify",
               "--source", "10.99.0.0/16", netns=ns.srv)
        d.hup()
        assert wait_answer(ns, http)
        assert ns.curl(http)[0] == 7
        assert ns.curl(https)[0] == 7

        # --source that includes it: reachable again.
        enable(root, "--firewall", "nftables", "--address", a, "--no-service", "--no-verify",
               "--source", "%s/32,10.99.0.0/16" % ns.cli_addr, netns=ns.srv)
        assert ns.curl(http) == (0, "200")
        assert ns.curl(https) == (0, "200")
    finally:
        d.stop()
    disable(root, "--no-service", "--purge", netns=ns.srv)
    assert "winrmd" not in ns.run(ns.srv, ["nft", "list", "ruleset"]).stdout
    assert not os.path.exists(nftfile)


def test_firewall_iptables_in_network_namespaces(root, netns, tmp_path):
    ns = netns
    assert shutil.which("iptables"), "iptables is missing (apt-get install iptables)"
    a = ns.srv_addr
    http = "http://%s:5985/wsman" % a
    enable(root, "--firewall", "iptables", "--address", a, "--no-service", "--no-verify",
           "--source", "10.99.0.0/16", netns=ns.srv)
    rules = ns.run(ns.srv, ["iptables", "-S"]).stdout
    assert "-N WINRMD" in rules and "-j WINRMD" in rules
    d = NsDaemon(ns, conf_path(root), str(tmp_path / "winrmd.log"))
    try:
        assert wait_answer(ns, http)
        assert ns.curl(http)[0] == 7
        r = enable(root, "--firewall", "iptables", "--address", a, "--no-service", "--no-verify",
                   "--source", "10.99.0.0/16", netns=ns.srv)
        assert "nothing changed" in r.stdout
        disable(root, "--no-service", netns=ns.srv)
        assert "WINRMD" not in ns.run(ns.srv, ["iptables", "-S"]).stdout
    finally:
        d.stop()


# --------------------------------------------------------------------------- units, man pages

def test_systemd_units_verify(tmp_path):
    """systemd-analyze verify on the units, with ExecStart pointing at the built binary
    (the package test verifies them again at their installed paths)."""
    units = []
    for name in ("winrmd.service", "winrmd.socket"):
        text = open(os.path.join(REPO, "packaging", "systemd", name)).read()
        text = text.replace("/usr/sbin/winrmd", os.path.abspath(WINRMD))
        p = tmp_path / name
        p.write_text(text)
        units.append(str(p))
    r = sh(["systemd-analyze", "verify", "--man=no"] + units, check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_make_install_honours_destdir_prefix_sysconfdir(tmp_path):
    dest = str(tmp_path / "dest")
    build = os.path.relpath(os.path.dirname(WINRMD), REPO)
    sh(["make", "-C", REPO, "install", "DESTDIR=" + dest, "PREFIX=/opt/w", "SYSCONFDIR=/opt/etc",
        "BUILD=" + build])
    for f in ("opt/w/sbin/winrmd", "opt/w/sbin/winrmctl", "opt/w/sbin/enable-remoting",
              "opt/w/sbin/disable-remoting", "opt/w/share/man/man8/enable-remoting.8",
              "opt/w/share/man/man8/winrmctl.8", "opt/w/share/man/man5/winrmd.conf.5",
              "lib/systemd/system/winrmd.service", "opt/etc/pam.d/winrmd",
              "opt/w/lib/sysusers.d/winrmd.conf", "opt/w/lib/tmpfiles.d/winrmd.conf",
              "opt/etc/ufw/applications.d/winrmd", "opt/etc/winrmd/winrmd.conf"):
        assert os.path.exists(os.path.join(dest, f)), f
    assert "ExecStart=/opt/w/sbin/winrmd" in open(os.path.join(dest, "lib/systemd/system/winrmd.service")).read()
    # The default configuration is never installed over an existing one.
    conf = os.path.join(dest, "opt/etc/winrmd/winrmd.conf")
    with open(conf, "a") as f:
        f.write("# local change\n")
    sh(["make", "-C", REPO, "install", "DESTDIR=" + dest, "PREFIX=/opt/w", "SYSCONFDIR=/opt/etc",
        "BUILD=" + build])
    assert open(conf).read().endswith("# local change\n")


def test_man_pages_lint_clean():
    r = sh(["make", "-C", REPO, "--no-print-directory", "lint-man"], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "enable-remoting.8" in " ".join(os.listdir(os.path.join(REPO, "man")))
    assert "winrmctl.8" in " ".join(os.listdir(os.path.join(REPO, "man")))


# --------------------------------------------------------------------------- Debian package

PKG_FILES = ["/usr/sbin/winrmd", "/usr/sbin/winrmctl", "/usr/sbin/enable-remoting",
             "/usr/sbin/disable-remoting", "/lib/systemd/system/winrmd.service",
             "/usr/lib/sysusers.d/winrmd.conf", "/etc/ufw/applications.d/winrmd",
             "/usr/share/man/man8/enable-remoting.8.gz"]


def test_make_deb_install_enable_purge(tmp_path):
    r = sh(["make", "-C", REPO, "--no-print-directory", "deb"], check=False)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    debs = [d for d in glob.glob(os.path.join(REPO, "build", "deb", "winrmd_*.deb"))]
    assert len(debs) == 1, debs
    assert sh(["dpkg-query", "-W", "winrmd"], check=False).returncode != 0, "winrmd is already installed"
    for f in PKG_FILES:
        assert not os.path.exists(f), "%s exists before the package is installed" % f

    # Keep what the machine already has; the package owns these paths.
    saved = tmp_path / "saved"
    saved.mkdir()
    had_pam = os.path.exists("/etc/pam.d/winrmd")
    had_etc = os.path.exists("/etc/winrmd")
    if had_pam:
        # The package ships it as a conffile; dpkg would ask about a foreign copy.
        shutil.copy2("/etc/pam.d/winrmd", str(saved / "pam"))
        os.unlink("/etc/pam.d/winrmd")
    if had_etc:
        shutil.copytree("/etc/winrmd", str(saved / "etc"), symlinks=True)
        shutil.rmtree("/etc/winrmd")
    try:
        sh(["dpkg", "--force-confold", "-i", debs[0]])
        for f in PKG_FILES:
            assert os.path.exists(f), f
        assert stat.S_IMODE(os.stat("/etc/winrmd/tls").st_mode) == 0o700
        sh(["getent", "passwd", "winrmd"])
        sh(["getent", "group", "winrm-users"])
        r = sh(["/usr/sbin/winrmd", "-t"])
        assert "is valid" in r.stderr
        r = sh(["systemd-analyze", "verify", "--man=no", "/lib/systemd/system/winrmd.service",
                "/lib/systemd/system/winrmd.socket"], check=False)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
        conf = "/etc/winrmd/winrmd.conf"
        assert conf_get(conf, "Listener http", "Enabled") == "false", "the package enables no listener"
        assert conf_get(conf, "Listener https", "Enabled") == "false"
        # Reinstall (upgrade path) is clean too.
        sh(["dpkg", "-i", debs[0]])
        # enable-remoting from the package on its own configuration (no service, no firewall).
        r = sh(["/usr/sbin/enable-remoting", "--force", "--no-service", "--no-firewall", "--no-verify"])
        assert conf_get(conf, "Listener https", "Enabled") == "true"
        sh(["/usr/sbin/winrmd", "-t"])
        assert os.path.exists("/etc/winrmd/tls/winrmd.key")
        sh(["dpkg", "--purge", "winrmd"])
        for f in PKG_FILES + ["/etc/winrmd", "/var/lib/winrmd", "/etc/pam.d/winrmd"]:
            assert not os.path.exists(f), "%s left after purge" % f
        assert sh(["dpkg-query", "-W", "winrmd"], check=False).returncode != 0
    finally:
        subprocess.run(["dpkg", "--purge", "winrmd"], capture_output=True)
        if had_etc:
            shutil.rmtree("/etc/winrmd", ignore_errors=True)
            shutil.copytree(str(saved / "etc"), "/etc/winrmd", symlinks=True)
        if had_pam:
            shutil.copy2(str(saved / "pam"), "/etc/pam.d/winrmd")
