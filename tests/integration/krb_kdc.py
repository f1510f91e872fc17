"""A throw-away MIT Kerberos realm for the winrmd Kerberos tests.

KDC(workdir) writes krb5.conf / kdc.conf for realm WINRMD.TEST on a free
loopback port, creates the database, and runs `krb5kdc -n` in the background
(stop() kills it).  Helpers add principals, write keytabs and get tickets
into file credential caches (kinit), all with KRB5_CONFIG/KRB5_KDC_PROFILE
pointing at the files here, never at /etc.
"""
import os
import secrets
import signal
import socket
import subprocess
import time

REALM = "WINRMD.TEST"
SERVICE_PRINCIPALS = ("HTTP/localhost", "host/localhost", "WSMAN/localhost")


def _free_tcp_udp_port():
    """A port free for both TCP and UDP on 127.0.0.1 (the KDC listens on both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free TCP+UDP port")


class KDC:
    def __init__(self, workdir):
        self.dir = str(workdir)
        self.port = _free_tcp_udp_port()
        self.krb5_conf = os.path.join(self.dir, "krb5.conf")
        self.kdc_conf = os.path.join(self.dir, "kdc.conf")
        self.log_path = os.path.join(self.dir, "kdc.log")
        self.proc = None
        with open(self.krb5_conf, "w") as f:
            f.write(
                "[libdefaults]\n"
                "\tdefault_realm = %(r)s\n"
                "\tdns_lookup_realm = false\n"
                "\tdns_lookup_kdc = false\n"
                "\trdns = false\n"
                "\tignore_acceptor_hostname = true\n"
                "\tudp_preference_limit = 1\n"
                "\tticket_lifetime = 10h\n"
                "[realms]\n"
                "\t%(r)s = {\n\t\tkdc = 127.0.0.1:%(p)d\n\t}\n"
                "[domain_realm]\n"
                "\tlocalhost = %(r)s\n"
                "\totherhost = %(r)s\n"
                % {"r": REALM, "p": self.port})
        with open(self.kdc_conf, "w") as f:
            f.write(
                "[kdcdefaults]\n"
                "\tkdc_ports = %(p)d\n"
                "\tkdc_tcp_ports = %(p)d\n"
                "[realms]\n"
                "\t%(r)s = {\n"
                "\t\tdatabase_name = %(d)s/principal\n"
                "\t\tkey_stash_file = %(d)s/stash\n"
                "\t\tacl_file = %(d)s/kadm5.acl\n"
                "\t\tmax_life = 10h\n"
                "\t}\n"
                "[logging]\n"
                "\tkdc = FILE:%(log)s\n"
                % {"r": REALM, "p": self.port, "d": self.dir, "log": self.log_path})
        open(os.path.join(self.dir, "kadm5.acl"), "w").close()

    # ------------------------------------------------------------------ plumbing

    def env(self, **extra):
        e = dict(os.environ)
        e.update(KRB5_CONFIG=self.krb5_conf, KRB5_KDC_PROFILE=self.kdc_conf)
        e.update(extra)
        return e

    def _run(self, cmd, input=None, **extra_env):
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           env=self.env(**extra_env), timeout=60)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s %s" % (cmd, r.returncode, r.stdout, r.stderr))
        return r.stdout

    def kadmin(self, query):
        return self._run(["kadmin.local", "-r", REALM, "-q", query])

    def start(self):
        self._run(["kdb5_util", "create", "-s", "-r", REALM, "-P", secrets.token_hex(16)])
        self._logf = open(os.path.join(self.dir, "krb5kdc.stderr"), "wb")
        self.proc = subprocess.Popen(["krb5kdc", "-n"], env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("krb5kdc exited with %s: %s" % (self.proc.returncode, self.log()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("krb5kdc did not listen on %d: %s" % (self.port, self.log()))
            time.sleep(0.1)

    def log(self):
        out = ""
        for p in (self.log_path, os.path.join(self.dir, "krb5kdc.stderr")):
            try:
                with open(p, "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._logf.close()
        self.proc = None

    # ------------------------------------------------------------------ realm contents

    def add_service(self, name):
        self.kadmin("addprinc -randkey %s" % name)

    def add_user(self, name, password=None):
        """A user principal name@REALM with a password; returns the password."""
        password = password or secrets.token_urlsafe(18)
        self.kadmin("addprinc -pw %s %s" % (password, name))
        return password

    def keytab(self, path, principals):
        """Write (a copy of the current keys of) principals into keytab `path`.
        ktadd -norandkey keeps the keys, so several keytabs agree."""
        self.kadmin("ktadd -norandkey -k %s %s" % (path, " ".join(principals)))
        os.chmod(path, 0o600)
        return path

    def kinit(self, principal, password, ccache):
        """Get a TGT for principal into FILE:ccache."""
        self._run(["kinit", "-c", "FILE:" + ccache, principal], input=password + "\n")
        return "FILE:" + ccache

    def get_service_ticket(self, ccache, service):
        self._run(["kvno", "-c", ccache, service])
