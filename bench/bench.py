#!/usr/bin/env python3
"""winrmd benchmark runner (issue 7): `make bench` runs this through bench/run.sh.

Everything happens on 127.0.0.1, as root, in one run on one machine, and every
figure is reported as a ratio against a reference measured in the same run:

  http       wrk (keep-alive) against winrmd: unauthenticated Identify and a
             Basic-authenticated Get of winrm/config, over HTTP
             (AllowUnencrypted = true) and HTTPS; reference nginx returning a
             static body of the Identify reply's size to POST /wsman.
  shell      bench/go (masterzen/winrm, compiled): WinRS round trip and stdout
             streaming; reference OpenSSH (a private sshd on a loopback port,
             key authentication, UsePAM yes), fresh and ControlMaster-multiplexed.
  memory     1000 idle WinRS shells from 4 users: growth of the monitor's and
             the worker's Pss (smaps_rollup), per shell.
  psrp       pypsrp RunspacePool on the Test.Runspace session configuration
             (tests/runspace/psrp_runspace.py): Write-Output round trip.
  pwsh       where PowerShell is installed (NuGet): PowerShell's own client
             engine (tests/pwsh/client) against real pwsh runspaces over HTTPS:
             Invoke-Command -Session { 1 } round trip, reference the same
             script in a local in-process runspace (the floor); Copy-Item
             -ToSession of 100 MiB, reference scp of the same file over the
             multiplexed ssh connection.

Servers (winrmd, nginx, sshd) are pinned to the last CPU, every client (wrk,
the Go client, ssh, python) to the first, when there are at least 2 CPUs.

Tunables (environment): BENCH_DURATION (s per wrk run, 5), BENCH_RUNS (wrk rounds
per figure, 5), BENCH_CONNS (wrk connections, 32), BENCH_N (round trips, 30),
BENCH_STREAM_MB (MiB streamed, 200), BENCH_STREAM_RUNS (3), BENCH_SHELLS (1000),
BENCH_COPY_MB (Copy-Item/scp size, 100), BENCH_PERF=1 (perf record the worker during
the wrk runs; report in the results dir).

Output: a markdown table on stdout and in <out>/latest.md, the raw figures in
<out>/latest.json, and the chart <out>/latest.png (gnuplot).
This is a measurement, never a test: it exits non-zero only when a measurement
could not be made, not when a target is missed.
"""
import argparse
import base64
import datetime
import grp
import json
import os
import platform
import pwd
import resource
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

for _k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_k, None)

import requests  # noqa: E402
import urllib3  # noqa: E402

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ALLOWED_GROUP = "winrm-users"
PAM_FILE = "/etc/pam.d/winrmd"
SOAP_CT = "application/soap+xml;charset=UTF-8"


def env_int(name, default):
    return int(os.environ.get(name, default))


DURATION = env_int("BENCH_DURATION", 5)
RUNS = env_int("BENCH_RUNS", 5)
CONNS = env_int("BENCH_CONNS", 32)
N_RTT = env_int("BENCH_N", 30)
STREAM_MB = env_int("BENCH_STREAM_MB", 200)
STREAM_RUNS = env_int("BENCH_STREAM_RUNS", 3)
N_SHELLS = env_int("BENCH_SHELLS", 1000)
COPY_MB = env_int("BENCH_COPY_MB", 100)
# Where tests/deps.sh installs the PowerShell .NET tool.
PWSH_DLL_DIR = "/opt/pwsh-7.6.10/.store/powershell/7.6.10/powershell/7.6.10/tools/net10.0/any/unix"
N_MEM_USERS = 4
PERF = os.environ.get("BENCH_PERF") == "1"
GLOBAL_TIMEOUT = env_int("BENCH_TIMEOUT", 900)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "cfg": "http://schemas.microsoft.com/wbem/wsman/1/config",
}
IDENTIFY_BODY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)
RES_CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"
RES_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ACT_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
ACT_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACT_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"


def log(msg, *a):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % a if a else msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


def run(cmd, timeout=120, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise BenchError("%s: rc %d\n%s\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError("nothing listens on 127.0.0.1:%d after %ss" % (port, timeout))


def median(xs):
    return statistics.median(xs)


def quantile(xs, q):
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    if lo + 1 >= len(s):
        return s[-1]
    return s[lo] + (pos - lo) * (s[lo + 1] - s[lo])


def mem_kib(pid):
    """{'Pss': KiB, 'Rss': KiB} from smaps_rollup (Rss only from status if absent)."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                m = re.match(r"^(Rss|Pss):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    if "Rss" not in out:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["Rss"] = int(line.split()[1])
    return out


def cpu_seconds(pid):
    """(own user+system, reaped children's user+system) CPU seconds of pid."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fl = st[st.rindex(")") + 2:].split()
    hz = os.sysconf("SC_CLK_TCK")
    return (int(fl[11]) + int(fl[12])) / hz, (int(fl[13]) + int(fl[14])) / hz


def children(ppid):
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv0 = f.read().split(b"\0")[0].decode("utf-8", "replace")
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == ppid and fields[0] != "Z":
            out[int(d)] = argv0
    return out


# --------------------------------------------------------------------------- WS-Man envelopes

def envelope(to, action, resource, body="", selectors=None, options=None, message_id=None):
    mid = message_id or "uuid:%s" % _uuid()
    h = ["<a:To>%s</a:To>" % to,
         '<a:ReplyTo><a:Address mustUnderstand="true">'
         'http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>',
         '<w:MaxEnvelopeSize mustUnderstand="true">153600</w:MaxEnvelopeSize>',
         "<a:MessageID>%s</a:MessageID>" % mid,
         '<w:Locale mustUnderstand="false" xml:lang="en-US"/>',
         '<p:DataLocale mustUnderstand="false" xml:lang="en-US"/>',
         "<w:OperationTimeout>PT20S</w:OperationTimeout>",
         '<w:ResourceURI mustUnderstand="true">%s</w:ResourceURI>' % resource,
         '<a:Action mustUnderstand="true">%s</a:Action>' % action]
    if selectors:
        h.append("<w:SelectorSet>%s</w:SelectorSet>" % "".join(
            '<w:Selector Name="%s">%s</w:Selector>' % kv for kv in selectors.items()))
    if options:
        h.append("<w:OptionSet>%s</w:OptionSet>" % "".join(
            '<w:Option Name="%s">%s</w:Option>' % kv for kv in options.items()))
    return ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<env:Envelope xmlns:env="%(s)s" xmlns:a="%(a)s" xmlns:w="%(w)s" xmlns:p="%(p)s" '
            'xmlns:rsp="%(rsp)s" xmlns:cfg="%(cfg)s">' % NS
            + "<env:Header>" + "".join(h) + "</env:Header><env:Body>" + body
            + "</env:Body></env:Envelope>")


def _uuid():
    import uuid
    return str(uuid.uuid4())


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# --------------------------------------------------------------------------- the run

class Bench:
    def __init__(self, out_dir, build):
        self.out_dir = out_dir
        self.build = build
        self.winrmd = os.path.join(build, "winrmd")
        self.tmp = tempfile.mkdtemp(prefix="winrmd-bench-")
        os.chmod(self.tmp, 0o755)
        self.cleanups = []          # LIFO
        self.results = {}
        self.notes = []
        ncpu = len(os.sched_getaffinity(0))
        cpus = sorted(os.sched_getaffinity(0))
        if ncpu >= 2:
            self.client_cpus = {cpus[0]}
            self.server_cpus = str(cpus[-1])
        else:
            self.client_cpus, self.server_cpus = None, None
        self.users = []
        self.daemon = None

    # ----------------------------------------------------------- housekeeping

    def on_cleanup(self, fn, what):
        self.cleanups.append((fn, what))

    def cleanup(self):
        while self.cleanups:
            fn, what = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - clean up as much as possible
                log("cleanup %s failed: %s", what, e)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def server_cmd(self, cmd):
        return (["taskset", "-c", self.server_cpus] if self.server_cpus else []) + cmd

    def start_proc(self, name, cmd, **kw):
        logf = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(self.server_cmd(cmd), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                             start_new_session=True, **kw)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
            logf.close()
        self.on_cleanup(stop, name)
        p.stop = stop
        p.logpath = logf.name
        return p

    # ----------------------------------------------------------- setup

    def setup(self):
        if self.client_cpus:
            os.sched_setaffinity(0, self.client_cpus)   # inherited by every client we start
        if not os.path.exists(PAM_FILE):
            shutil.copy(os.path.join(REPO, "packaging", "pam", "winrmd.debian"), PAM_FILE)
            self.on_cleanup(lambda: os.unlink(PAM_FILE), PAM_FILE)
        try:
            grp.getgrnam(ALLOWED_GROUP)
        except KeyError:
            run(["groupadd", ALLOWED_GROUP])
            self.on_cleanup(lambda: run(["groupdel", ALLOWED_GROUP], check=False), "group")
        for i in range(N_MEM_USERS):
            self.users.append(self.add_user("wrb%d%s" % (i, secrets.token_hex(3))))
        self.user = self.users[0]
        # TLS certificate for winrmd and nginx
        self.cert, self.key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
             "-out", self.cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        os.chmod(self.key, 0o600)
        self.gobin = os.environ.get("WINRMD_BENCH_GO") or self.build_go()

    def add_user(self, name):
        password = secrets.token_urlsafe(18)
        run(["useradd", "-m", "-s", "/bin/bash", "-G", ALLOWED_GROUP, name])

        def rm():
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
            time.sleep(0.2)
            run(["userdel", "-r", name], check=False)
        self.on_cleanup(rm, "user " + name)
        run(["chpasswd"], input="%s:%s\n" % (name, password))
        pw = pwd.getpwnam(name)
        return type("U", (), dict(name=name, password=password, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir))

    def build_go(self):
        """bench/go against Debian's masterzen/winrm in GOPATH mode: the same
        client on every machine, whichever registries it reaches."""
        go = shutil.which("go") or "/usr/local/go/bin/go"
        out = os.path.join(self.tmp, "winrmd-bench")
        src = os.path.join(self.tmp, "gopath", "src", "winrmd-bench")
        os.makedirs(src, exist_ok=True)
        shutil.copy(os.path.join(HERE, "go", "main.go"), src)
        env = dict(os.environ, GO111MODULE="off", GOFLAGS="",
                   GOPATH="%s:/usr/share/gocode" % os.path.join(self.tmp, "gopath"))
        run([go, "build", "-o", out, "."], cwd=src, timeout=600, env=env)
        return out

    # ----------------------------------------------------------- winrmd

    def write_config(self):
        self.http_port, self.https_port = free_port(), free_port()
        self.wdir = os.path.join(self.tmp, "winrmd")
        os.makedirs(os.path.join(self.wdir, "sessions.d"), exist_ok=True)
        self.conf = os.path.join(self.wdir, "winrmd.conf")
        per_user = (N_SHELLS + N_MEM_USERS - 1) // N_MEM_USERS + 20
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "# winrmd benchmark configuration (bench/bench.py): defaults except the lines below",
                "[Service]",
                "AllowUnencrypted = true",
                "[Winrs]",
                "MaxShellsPerUser = %d" % per_user,
                "MaxConcurrentUsers = %d" % (N_MEM_USERS + 10),
                "[Listener http]", "Transport = HTTP", "Address = 127.0.0.1", "Port = %d" % self.http_port,
                "[Listener https]", "Transport = HTTPS", "Address = 127.0.0.1",
                "Port = %d" % self.https_port, "CertificateFile = %s" % self.cert, "KeyFile = %s" % self.key,
            ]) + "\n")
        venv_python = os.path.join(REPO, "build", "venv", "bin", "python")
        with open(os.path.join(self.wdir, "sessions.d", "Test.Runspace.conf"), "w") as f:
            f.write("[SessionConfiguration]\nName = Test.Runspace\nCommand = %s %s\n"
                    "AllowedGroups = %s\nRunAsUser = \nEnabled = true\n"
                    % (venv_python, os.path.join(REPO, "tests", "runspace", "psrp_runspace.py"), ALLOWED_GROUP))
        run([self.winrmd, "-t", "-f", self.conf])
        self.http_url = "http://127.0.0.1:%d/wsman" % self.http_port
        self.https_url = "https://127.0.0.1:%d/wsman" % self.https_port

    def start_daemon(self, tag):
        # No -d: production logging (journal only), no debug messages.
        p = self.start_proc("winrmd-" + tag, [self.winrmd, "-f", self.conf])
        wait_port(self.https_port, p)
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.post(self.http_url, data=IDENTIFY_BODY, timeout=5,
                                  headers={"Content-Type": SOAP_CT, "WSMANIDENTIFY": "unauthenticated"})
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if p.poll() is not None or time.monotonic() > deadline:
                raise BenchError("winrmd did not answer Identify; log %s" % p.logpath)
            time.sleep(0.2)
        worker = None
        for _ in range(100):
            kids = children(p.pid)
            worker = next((k for k, a in kids.items() if a == "winrmd-net"), None)
            if worker:
                break
            time.sleep(0.1)
        if not worker:
            raise BenchError("no winrmd-net worker under pid %d" % p.pid)
        p.worker = worker
        self.daemon = p
        return p

    def stop_daemon(self):
        if self.daemon:
            self.daemon.stop()
            self.daemon = None

    # ----------------------------------------------------------- nginx

    def start_nginx(self, body):
        if "'" in body or "\\" in body:
            raise BenchError("reference body contains a quote or backslash")
        d = os.path.join(self.tmp, "nginx")
        os.makedirs(d, exist_ok=True)
        self.nginx_http, self.nginx_https = free_port(), free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:%(http)d;
        listen 127.0.0.1:%(https)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        location = /wsman {
            default_type "application/soap+xml;charset=UTF-8";
            return 200 '%(body)s';
        }
    }
}
""" % dict(d=d, http=self.nginx_http, https=self.nginx_https, cert=self.cert, key=self.key, body=body))
        run(["nginx", "-t", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf])
        p = self.start_proc("nginx", ["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf])
        wait_port(self.nginx_http, p)
        r = requests.post("http://127.0.0.1:%d/wsman" % self.nginx_http, data=IDENTIFY_BODY, timeout=5)
        if r.status_code != 200 or r.text != body:
            raise BenchError("nginx reference answered %d %r" % (r.status_code, r.text[:200]))
        return p

    # ----------------------------------------------------------- wrk

    STEADY_LUA = r"""
-- steady state: count the responses after the first SKIP seconds (when every
-- connection has done its one PAM check), with a monotonic clock via LuaJIT ffi
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk, bench_timespec_t *tp);
]]
local ts = ffi.new("bench_timespec_t")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
count, n_mark, t_last, bad, tm = 0, 0, 0, 0, nil
local t_start = nil
function init(args) t_start = now() end
function response(status, headers, body)
  local t = now()
  count = count + 1
  if status ~= 200 then bad = bad + 1 end
  if tm == nil and t - t_start >= SKIP then tm = t; n_mark = count end
  t_last = t
end
function done(summary, latency, requests)
  for _, th in ipairs(threads) do
    local m = th:get("tm")
    if m then
      io.write(string.format("STEADY %d %.6f %d\n", th:get("count") - th:get("n_mark"), th:get("t_last") - m,
                             th:get("bad")))
    end
  end
end
"""

    def wrk_script(self, name, body, headers, steady=False):
        path = os.path.join(self.tmp, name + ".lua")
        if "]==]" in body:
            raise BenchError("body not representable")
        with open(path, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = [==[%s]==]\n' % body)
            for k, v in headers.items():
                f.write('wrk.headers["%s"] = "%s"\n' % (k, v))
            if steady:
                f.write("SKIP = %.3f\n" % self.steady_skip())
                f.write(self.STEADY_LUA)
        return path

    def steady_skip(self):
        return min(2.0, DURATION * 0.4)

    def wrk_once(self, url, script, duration):
        p = run(["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % duration, "--timeout", "10s", "--latency", "-s", script, url],
                timeout=duration + 60)
        out = p.stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not m:
            raise BenchError("wrk output without Requests/sec:\n" + out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if bad:
            raise BenchError("wrk: %s non-2xx answers from %s\n%s" % (bad.group(1), url, out))
        errs = re.search(r"Socket errors: (.*)", out)
        lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
        st = re.search(r"^STEADY (\d+) ([\d.]+) (\d+)", out, re.M)
        steady = None
        if st:
            if int(st.group(3)):
                raise BenchError("wrk: %s non-200 answers from %s" % (st.group(3), url))
            steady = int(st.group(1)) / float(st.group(2))
        return dict(rps=float(m.group(1)), steady=steady, err=errs.group(1) if errs else "", lat=lat)

    def wrk_interleaved(self, targets):
        """targets: [(key, url, script, perf_pid)].  Warm each up, then RUNS rounds in which
        every target gets one run in turn, so that load from anything else on the machine
        falls on all of them alike.  The figure is the median over the rounds; for a
        steady-state script it is the steady-state rate (after SKIP s), else wrk's req/s."""
        for key, url, script, _ in targets:
            self.wrk_once(url, script, 2)
        acc = {key: dict(runs=[], whole_runs=[], latency=[], socket_errors=[], url=url)
               for key, url, _, _ in targets}
        for i in range(RUNS):
            for key, url, script, perf_pid in targets:
                perf = self.perf_start(key, perf_pid, DURATION) if (PERF and perf_pid and i == 0) else None
                cpu0 = cpu_seconds(perf_pid)[0] if perf_pid else None
                t0 = time.monotonic()
                w = self.wrk_once(url, script, DURATION)
                el = time.monotonic() - t0
                if perf:
                    self.perf_finish(perf)
                a = acc[key]
                if perf_pid:   # is the (single-threaded) worker saturated, or waiting?
                    a.setdefault("worker_cpu", []).append((cpu_seconds(perf_pid)[0] - cpu0) / el)
                a["runs"].append(w["steady"] if w["steady"] is not None else w["rps"])
                a["whole_runs"].append(w["rps"])
                a["latency"].append(w["lat"])
                a["steady"] = w["steady"] is not None
                if w["err"]:
                    a["socket_errors"].append(w["err"])
        for key, a in acc.items():
            a["median"] = median(a["runs"])
            log("%-16s %8.0f req/s%s (runs %s; wrk whole-run req/s %s)%s", key, a["median"],
                " steady" if a["steady"] else "", ", ".join("%.0f" % v for v in a["runs"]),
                ", ".join("%.0f" % v for v in a["whole_runs"]),
                "  socket errors: " + "; ".join(a["socket_errors"]) if a["socket_errors"] else "")
        return acc

    def perf_start(self, label, pid, duration):
        if not shutil.which("perf"):
            return None
        out = os.path.join(self.tmp, "perf-%s.data" % label)
        p = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499", "-p", str(pid), "-o", out,
                              "--", "sleep", str(max(1, duration - 1))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return (p, out, label)

    def perf_finish(self, perf):
        p, out, label = perf
        p.wait(timeout=60)
        rep = run(["perf", "report", "-i", out, "--stdio", "--no-children", "--sort", "dso,sym",
                   "--percent-limit", "1", "-g", "none"], check=False, timeout=120)
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, "perf-%s.txt" % label), "w") as f:
            f.write(rep.stdout)

    def bench_http(self):
        log("HTTP: Identify and config Get against winrmd, reference nginx (wrk, interleaved rounds)")
        d = self.daemon
        r = requests.post(self.http_url, data=IDENTIFY_BODY, timeout=10,
                          headers={"Content-Type": SOAP_CT, "WSMANIDENTIFY": "unauthenticated"})
        if r.status_code != 200 or "IdentifyResponse" not in r.text:
            raise BenchError("Identify: %d %r" % (r.status_code, r.text[:300]))
        identify_reply = r.text
        auth = basic(self.user.name, self.user.password)
        get_http = envelope(self.http_url, ACT_GET, RES_CONFIG)
        get_https = envelope(self.https_url, ACT_GET, RES_CONFIG)
        for url, body in ((self.http_url, get_http), (self.https_url, get_https)):
            r = requests.post(url, data=body, timeout=30, verify=False,
                              headers={"Content-Type": SOAP_CT, "Authorization": auth})
            if r.status_code != 200 or "Config" not in r.text:
                raise BenchError("config Get on %s: %d %r" % (url, r.status_code, r.text[:300]))
        get_reply = r.text
        ng = self.start_nginx(identify_reply)
        ident = self.wrk_script("identify", IDENTIFY_BODY, {"Content-Type": SOAP_CT,
                                                            "WSMANIDENTIFY": "unauthenticated"})
        hdr = {"Content-Type": SOAP_CT, "Authorization": auth}
        g_http = self.wrk_script("get-http", get_http, hdr, steady=True)
        g_https = self.wrk_script("get-https", get_https, hdr, steady=True)
        ng_http = "http://127.0.0.1:%d/wsman" % self.nginx_http
        ng_https = "https://127.0.0.1:%d/wsman" % self.nginx_https
        res = {}
        res.update(self.wrk_interleaved([("nginx_http", ng_http, ident, None),
                                         ("identify_http", self.http_url, ident, d.worker),
                                         ("get_http", self.http_url, g_http, d.worker)]))
        res.update(self.wrk_interleaved([("nginx_https", ng_https, ident, None),
                                         ("identify_https", self.https_url, ident, d.worker),
                                         ("get_https", self.https_url, g_https, d.worker)]))
        res["identify_reply_bytes"] = len(identify_reply.encode())
        res["get_reply_bytes"] = len(get_reply.encode())
        res["steady_skip_s"] = self.steady_skip()
        ng.stop()
        self.results["http"] = res

    # ----------------------------------------------------------- shells (Go client)

    def go(self, *args, https=True, timeout=300):
        port = self.https_port if https else self.http_port
        cmd = [self.gobin, "-port", str(port), "-user", self.user.name] + (["-https"] if https else []) + list(args)
        p = run(cmd, timeout=timeout, env=dict(os.environ, WINRMD_BENCH_PASS=self.user.password))
        return json.loads(p.stdout)

    def bench_shell(self):
        log("WinRS: round trips and streaming with the Go client (masterzen/winrm)")
        res = {}
        n = str(N_RTT)
        for tr, https in (("https", True), ("http", False)):
            res["rtt_" + tr] = self.go("-mode", "rtt", "-n", n, https=https)
            res["cmd_" + tr] = self.go("-mode", "cmd", "-n", n, https=https)
            log("winrs %-5s run true (Create..Delete) median %.2f ms p95 %.2f; Command on open shell %.2f ms",
                tr, res["rtt_" + tr]["median"], res["rtt_" + tr]["p95"], res["cmd_" + tr]["median"])
        res["rtt_fresh_https"] = self.go("-mode", "rtt", "-fresh", "-n", str(max(5, N_RTT // 3)), "-warmup", "1")
        log("winrs https fresh client (TLS + PAM each time) median %.2f ms", res["rtt_fresh_https"]["median"])
        nbytes = str(STREAM_MB * 1024 * 1024)
        d = self.daemon
        for tr, https in (("https", True), ("http", False)):
            w0, m0 = cpu_seconds(d.worker), cpu_seconds(d.pid)
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            x = self.go("-mode", "stream", "-bytes", nbytes, "-n", str(STREAM_RUNS), "-warmup", "1",
                        https=https, timeout=600)
            wall = time.monotonic() - t0
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            w1, m1 = cpu_seconds(d.worker), cpu_seconds(d.pid)
            # CPU seconds spent while streaming (1 + runs) x nbytes: where is the time going?
            x["cpu"] = dict(wall=wall, client=(c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
                            worker=w1[0] - w0[0], monitor=m1[0] - m0[0], commands=m1[1] - m0[1])
            res["stream_" + tr] = x
            log("winrs %-5s stream %d MiB: median %.1f MB/s (runs %s); CPU s over %.1f s wall: Go client %.1f, "
                "worker %.1f, monitor %.1f, commands %.1f", tr, STREAM_MB, x["median"],
                ", ".join("%.1f" % v for v in x["samples"]), wall, x["cpu"]["client"], x["cpu"]["worker"],
                x["cpu"]["monitor"], x["cpu"]["commands"])
        self.results["shell"] = res

    # ----------------------------------------------------------- OpenSSH

    def bench_ssh(self):
        log("OpenSSH reference: private sshd on loopback, key authentication, UsePAM yes")
        d = os.path.join(self.tmp, "ssh")
        os.makedirs(d)
        hostkey, ckey = os.path.join(d, "host_ed25519"), os.path.join(d, "client_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ckey])
        u = self.user
        sshdir = os.path.join(u.home, ".ssh")
        os.makedirs(sshdir, mode=0o700, exist_ok=True)
        shutil.copy(ckey + ".pub", os.path.join(sshdir, "authorized_keys"))
        os.chmod(os.path.join(sshdir, "authorized_keys"), 0o600)
        for p in (sshdir, os.path.join(sshdir, "authorized_keys")):
            os.chown(p, u.uid, u.gid)
        if not os.path.isdir("/run/sshd"):          # privilege separation directory
            os.makedirs("/run/sshd", mode=0o755)
            self.on_cleanup(lambda: os.rmdir("/run/sshd"), "/run/sshd")
        port = free_port()
        conf = os.path.join(d, "sshd_config")
        with open(conf, "w") as f:
            f.write("\n".join([
                "Port %d" % port, "ListenAddress 127.0.0.1", "HostKey %s" % hostkey,
                "PidFile %s" % os.path.join(d, "sshd.pid"), "UsePAM yes", "PasswordAuthentication no",
                "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
                "AuthorizedKeysFile .ssh/authorized_keys", "AllowUsers %s" % u.name, "PermitRootLogin no",
                "X11Forwarding no", "PrintMotd no", "PrintLastLog no", "UseDNS no", "MaxSessions 50",
                "Subsystem sftp internal-sftp",     # scp speaks SFTP since OpenSSH 9
                "LogLevel ERROR"]) + "\n")
        run(["/usr/sbin/sshd", "-t", "-f", conf])
        sshd = self.start_proc("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", conf])
        wait_port(port, sshd)
        cpath = os.path.join(d, "cm-%C")
        base = ["ssh", "-F", "/dev/null", "-i", ckey, "-p", str(port), "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=%s" % os.path.join(d, "known_hosts"), "-o", "LogLevel=ERROR"]
        dest = "%s@127.0.0.1" % u.name
        fresh = base + ["-o", "ControlMaster=no", "-o", "ControlPath=none", dest]
        mux = base + ["-o", "ControlMaster=no", "-o", "ControlPath=%s" % cpath, dest]
        run(base + ["-o", "ControlMaster=yes", "-o", "ControlPath=%s" % cpath, "-o", "ControlPersist=300",
                    "-f", "-N", dest], timeout=30)
        self.on_cleanup(lambda: run(base + ["-o", "ControlPath=%s" % cpath, "-O", "exit", dest],
                                    check=False, timeout=15), "ssh master")

        def timed(cmd, n, warmup=2, stdout=subprocess.DEVNULL):
            xs = []
            for i in range(warmup + n):
                t0 = time.perf_counter()
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                                   timeout=120)
                el = time.perf_counter() - t0
                if p.returncode != 0:
                    raise BenchError("%s: rc %d %s" % (" ".join(cmd), p.returncode, p.stderr[-500:]))
                if i >= warmup:
                    xs.append(el)
            return xs

        res = {}
        for key, cmd, n in (("fresh", fresh, max(5, N_RTT // 3)), ("mux", mux, N_RTT)):
            xs = [x * 1000 for x in timed(cmd + ["true"], n)]
            res[key] = dict(median=median(xs), p95=quantile(xs, 0.95), samples=xs, unit="ms")
            log("ssh %-5s true: median %.2f ms p95 %.2f", key, res[key]["median"], res[key]["p95"])
        # The floor under any remote round trip: starting the command at all.
        xs = [x * 1000 for x in timed(["/bin/sh", "-c", "true"], N_RTT)]
        res["local_sh"] = dict(median=median(xs), p95=quantile(xs, 0.95), samples=xs, unit="ms")
        log("local /bin/sh -c true: median %.2f ms", res["local_sh"]["median"])
        # scp of the file Copy-Item -ToSession sends (bench_pwsh), over the open connection.
        scp = (["scp", "-q", "-F", "/dev/null", "-i", ckey, "-P", str(port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=%s" % os.path.join(d, "known_hosts"),
                "-o", "ControlPath=%s" % cpath, self.copy_src(), "%s:bench-scp.bin" % dest])
        xs = timed(scp, STREAM_RUNS, warmup=1)
        res["scp"] = dict(median=median(xs), p95=quantile(xs, 0.95), samples=xs, unit="s",
                          mib=COPY_MB)
        log("scp %d MiB: median %.2f s", COPY_MB, res["scp"]["median"])
        nbytes = STREAM_MB * 1024 * 1024
        xs = timed(mux + ["head -c %d /dev/zero" % nbytes], STREAM_RUNS, warmup=1)
        mbs = [nbytes / 1e6 / x for x in xs]
        res["stream"] = dict(median=median(mbs), p95=quantile(mbs, 0.05), samples=mbs, unit="MB/s")
        log("ssh stream %d MiB: median %.1f MB/s (runs %s)", STREAM_MB, res["stream"]["median"],
            ", ".join("%.1f" % v for v in mbs))
        run(base + ["-o", "ControlPath=%s" % cpath, "-O", "exit", dest], check=False, timeout=15)
        sshd.stop()
        self.results["ssh"] = res

    # ----------------------------------------------------------- memory per idle shell

    def create_shell(self, sess, url):
        body = ("<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>"
                "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>")
        env = envelope(url, ACT_CREATE, RES_CMD, body, options={"WINRS_NOPROFILE": "FALSE", "WINRS_CODEPAGE": "437"})
        r = sess.post(url, data=env, timeout=60)
        if r.status_code != 200:
            raise BenchError("shell Create: %d %s" % (r.status_code, r.text[:500]))
        root = ET.fromstring(r.content)
        for el in root.iter():
            if el.tag.endswith("}ShellId") and el.text:
                return el.text
            if el.tag.endswith("}Selector") and el.get("Name") == "ShellId":
                return el.text
        raise BenchError("no ShellId in Create reply: %s" % r.text[:500])

    def delete_shell(self, sess, url, sid):
        env = envelope(url, ACT_DELETE, RES_CMD, selectors={"ShellId": sid})
        r = sess.post(url, data=env, timeout=60)
        if r.status_code != 200:
            raise BenchError("shell Delete: %d %s" % (r.status_code, r.text[:500]))

    def session_for(self, u):
        s = requests.Session()
        s.headers.update({"Content-Type": SOAP_CT, "Authorization": basic(u.name, u.password)})
        return s

    def bench_memory(self):
        log("memory: %d idle WinRS shells from %d users (fresh daemon)", N_SHELLS, N_MEM_USERS)
        self.stop_daemon()
        d = self.start_daemon("mem")
        url = self.http_url
        sessions = [self.session_for(u) for u in self.users]
        # warm-up: every user authenticates and opens/closes a few shells
        for s in sessions:
            for _ in range(3):
                self.delete_shell(s, url, self.create_shell(s, url))
        time.sleep(1.0)
        before = {"monitor": mem_kib(d.pid), "worker": mem_kib(d.worker)}
        kids_before = len(children(d.pid))
        ids = [[] for _ in sessions]
        errors = []
        per = [N_SHELLS // len(sessions) + (1 if i < N_SHELLS % len(sessions) else 0) for i in range(len(sessions))]

        def opener(i):
            try:
                for _ in range(per[i]):
                    ids[i].append(self.create_shell(sessions[i], url))
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        t0 = time.monotonic()
        ths = [threading.Thread(target=opener, args=(i,)) for i in range(len(sessions))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(300)
        took = time.monotonic() - t0
        if errors:
            raise BenchError("opening shells: %s" % errors[0])
        opened = sum(len(x) for x in ids)
        time.sleep(1.0)
        after = {"monitor": mem_kib(d.pid), "worker": mem_kib(d.worker)}
        kids_after = len(children(d.pid))
        t1 = time.monotonic()

        def closer(i):
            try:
                for sid in ids[i]:
                    self.delete_shell(sessions[i], url, sid)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        ths = [threading.Thread(target=closer, args=(i,)) for i in range(len(sessions))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(300)
        del_took = time.monotonic() - t1
        time.sleep(1.0)
        deleted = {"monitor": mem_kib(d.pid), "worker": mem_kib(d.worker)}
        # A second cycle of the same shells: does the monitor grow again (a leak) or reuse its heap?
        ids2 = [[] for _ in sessions]
        for i, s in enumerate(sessions):
            for _ in range(per[i]):
                ids2[i].append(self.create_shell(s, url))
        for i, s in enumerate(sessions):
            for sid in ids2[i]:
                self.delete_shell(s, url, sid)
        time.sleep(1.0)
        cycle2 = {"monitor": mem_kib(d.pid), "worker": mem_kib(d.worker)}
        key = "Pss" if "Pss" in before["worker"] else "Rss"
        growth = {p: after[p][key] - before[p][key] for p in ("monitor", "worker")}
        res = dict(shells=opened, metric=key, before=before, after=after, after_delete=deleted, after_cycle2=cycle2,
                   growth_kib=growth, per_shell_kib=(growth["monitor"] + growth["worker"]) / opened,
                   worker_per_shell_kib=growth["worker"] / opened, monitor_per_shell_kib=growth["monitor"] / opened,
                   children_before=kids_before, children_after=kids_after,
                   create_seconds=took, delete_seconds=del_took, delete_errors=[str(e) for e in errors])
        log("memory: %d shells in %.1f s; %s growth monitor %d KiB, worker %d KiB -> %.1f KiB/shell; "
            "monitor children %d -> %d", opened, took, key, growth["monitor"], growth["worker"],
            res["per_shell_kib"], kids_before, kids_after)
        self.results["memory"] = res

    # ----------------------------------------------------------- PSRP

    def bench_psrp(self):
        try:
            from pypsrp.powershell import PowerShell, RunspacePool
            from pypsrp.wsman import WSMan
        except ImportError:
            log("PSRP (pypsrp): not measured, pypsrp needs PyPI")
            self.results["psrp"] = None
            return
        log("PSRP: pypsrp RunspacePool on Test.Runspace, Write-Output round trips")
        w = WSMan("127.0.0.1", port=self.http_port, username=self.user.name, password=self.user.password,
                  ssl=False, auth="basic", encryption="never", operation_timeout=20, read_timeout=30)
        box = {}

        def work():
            t0 = time.perf_counter()
            pool = RunspacePool(w, configuration_name="Test.Runspace")
            pool.open()
            box["open_ms"] = (time.perf_counter() - t0) * 1000
            xs = []
            try:
                for i in range(3 + N_RTT):
                    t0 = time.perf_counter()
                    ps = PowerShell(pool)
                    ps.add_cmdlet("Write-Output").add_argument("x")
                    out = ps.invoke()
                    el = (time.perf_counter() - t0) * 1000
                    if out != ["x"] or ps.had_errors:
                        raise BenchError("Write-Output x returned %r" % (out,))
                    if i >= 3:
                        xs.append(el)
            finally:
                pool.close()
            box["samples"] = xs

        box_err = []

        def guarded():
            try:
                work()
            except Exception as e:  # noqa: BLE001
                box_err.append(e)
        t = threading.Thread(target=guarded, daemon=True)
        t.start()
        t.join(300)
        if t.is_alive():
            raise BenchError("PSRP measurement did not finish in 300 s")
        if box_err:
            raise box_err[0]
        xs = box["samples"]
        res = dict(open_ms=box["open_ms"], median=median(xs), p95=quantile(xs, 0.95), samples=xs, unit="ms")
        log("psrp: pool open %.0f ms; Write-Output round trip median %.2f ms p95 %.2f",
            res["open_ms"], res["median"], res["p95"])
        self.results["psrp"] = res

    # ----------------------------------------------------------- PowerShell (real pwsh)

    def copy_src(self):
        """COPY_MB of random bytes, readable by the client processes (root)."""
        path = os.path.join(self.tmp, "copy-src.bin")
        if not os.path.exists(path):
            with open(path, "wb") as f:
                for _ in range(COPY_MB):
                    f.write(os.urandom(1024 * 1024))
        return path

    def bench_pwsh(self):
        pwsh_dll = os.path.join(os.environ.get("PWSH_DLL_DIR", PWSH_DLL_DIR), "pwsh.dll")
        module = os.path.join(REPO, "tests", "pwsh", "client", "WinrmdClient.psm1")
        if not (os.path.exists(pwsh_dll) and os.access("/usr/bin/dotnet", os.X_OK)):
            log("pwsh: not measured, PowerShell is not installed (it comes from NuGet)")
            self.results["pwsh"] = None
            return
        log("pwsh: PowerShell's client engine against real pwsh runspaces, HTTPS")
        run(["sh", os.path.join(REPO, "tests", "pwsh", "build.sh")], timeout=600)
        u = self.user
        script = os.path.join(self.tmp, "bench-pwsh.ps1")
        with open(script, "w") as f:
            f.write(r"""
$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue'
Import-Module '%(module)s'
$cred = [pscredential]::new('%(user)s', (ConvertTo-SecureString '%(password)s' -AsPlainText -Force))
function Measure-Ms([int] $n, [scriptblock] $f) {
    foreach ($i in 1..$n) { $t = [Diagnostics.Stopwatch]::StartNew(); $null = & $f; $t.Elapsed.TotalMilliseconds }
}
$t = [Diagnostics.Stopwatch]::StartNew()
$s = New-WinrmdSession -Uri '%(url)s' -Credential $cred -ConfigurationName Microsoft.PowerShell
$open = $t.Elapsed.TotalMilliseconds
$null = Measure-Ms 3 { Invoke-Command -Session $s { 1 } }
$remote = @(Measure-Ms %(n)d { Invoke-Command -Session $s { 1 } })
$rs = [runspacefactory]::CreateRunspace(); $rs.Open()
$local1 = { $p = [powershell]::Create(); $p.Runspace = $rs; $null = $p.AddScript('1').Invoke(); $p.Dispose() }
$null = Measure-Ms 3 $local1
$local = @(Measure-Ms %(n)d $local1)
$dst = Invoke-Command -Session $s { Join-Path $HOME 'bench-copy.bin' }
$copy = foreach ($i in 1..%(runs)d) {
    $t = [Diagnostics.Stopwatch]::StartNew()
    Copy-Item -Path '%(src)s' -Destination $dst -ToSession $s
    $t.Elapsed.TotalSeconds
}
Invoke-Command -Session $s { param($p) Remove-Item $p } -ArgumentList $dst
Remove-PSSession $s
[Console]::Out.WriteLine((@{ open_ms = $open; remote = $remote; local = $local; copy = @($copy) } |
    ConvertTo-Json -Compress))
""" % dict(module=module, user=u.name, password=u.password, url="https://127.0.0.1:%d/wsman" % self.https_port,
                 n=N_RTT, runs=STREAM_RUNS, src=self.copy_src()))
        env = dict(os.environ, POWERSHELL_TELEMETRY_OPTOUT="1", DOTNET_CLI_TELEMETRY_OPTOUT="1", NO_COLOR="1")
        p = subprocess.run(["/usr/bin/dotnet", pwsh_dll, "-NoLogo", "-NoProfile", "-NonInteractive", "-File", script],
                           capture_output=True, text=True, timeout=1200, env=env)
        if p.returncode != 0:
            raise BenchError("pwsh client failed (rc %d): %s" % (p.returncode, (p.stderr or p.stdout)[-2000:]))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        res = dict(open_ms=r["open_ms"],
                   remote=dict(median=median(r["remote"]), p95=quantile(r["remote"], 0.95), samples=r["remote"],
                               unit="ms"),
                   local=dict(median=median(r["local"]), p95=quantile(r["local"], 0.95), samples=r["local"],
                              unit="ms"),
                   copy=dict(median=median(r["copy"]), p95=quantile(r["copy"], 0.95), samples=r["copy"], unit="s",
                             mib=COPY_MB))
        log("pwsh: open %.0f ms; Invoke-Command { 1 } median %.2f ms, local runspace %.3f ms; "
            "Copy-Item -ToSession %d MiB median %.2f s", res["open_ms"], res["remote"]["median"],
            res["local"]["median"], COPY_MB, res["copy"]["median"])
        self.results["pwsh"] = res

    # ----------------------------------------------------------- machine

    def machine(self):
        def first(cmd):
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
                return (p.stdout + p.stderr).strip().splitlines()[0]
            except Exception:  # noqa: BLE001
                return "?"
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        rev = first(["git", "-C", REPO, "describe", "--always", "--dirty"])
        return dict(cpu=cpu, cpus=os.cpu_count(), kernel=platform.release(),
                    nginx=first(["nginx", "-v"]), openssh=first(["ssh", "-V"]),
                    wrk=first(["wrk", "-v"]), go=first([shutil.which("go") or "/usr/local/go/bin/go", "version"]),
                    winrmd=first([self.winrmd, "-V"]), git=rev,
                    pinning=("servers on CPU %s, clients on CPU %s" % (self.server_cpus, min(self.client_cpus))
                             if self.server_cpus else "none (1 CPU)"),
                    loadavg=open("/proc/loadavg").read().split()[:3])

    def main(self):
        t_start = time.monotonic()
        try:
            self.setup()
            self.write_config()
            self.start_daemon("main")
            log("winrmd %s, worker %d; HTTP %d, HTTPS %d", self.daemon.pid, self.daemon.worker,
                self.http_port, self.https_port)
            self.bench_http()
            self.bench_shell()
            self.bench_ssh()
            self.bench_psrp()
            self.bench_pwsh()
            self.bench_memory()
            self.stop_daemon()
        finally:
            self.cleanup()
        self.results["machine"] = self.machine()
        self.results["elapsed_s"] = time.monotonic() - t_start
        self.results["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.results["params"] = dict(duration_s=DURATION, runs=RUNS, conns=CONNS, n=N_RTT, stream_mib=STREAM_MB,
                                      stream_runs=STREAM_RUNS, shells=N_SHELLS)
        import report
        report.write(self.results, self.out_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: must run as root (it creates users and starts sshd and winrmd)")

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)

    def on_alarm(signum, frame):
        raise BenchError("the benchmark exceeded BENCH_TIMEOUT=%ds" % GLOBAL_TIMEOUT)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(GLOBAL_TIMEOUT)
    b = Bench(os.path.abspath(a.out), os.path.abspath(a.build))
    try:
        b.main()
    except BenchError as e:
        log("FAILED: %s", e)
        sys.exit(1)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
