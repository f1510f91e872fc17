"""The masterzen/winrm (Go) test client: build it once per module, run it
against a daemon and read what it printed (see go/main.go)."""
import base64
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))

# requests' CA bundle variables leak into Go's environment via the test runner;
# the clients skip verification anyway, so keep the environment plain.
CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in CA_ENV}
    env.update(extra)
    return env


def build(tmp_path_factory):
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert os.access(go, os.X_OK), "go is not installed"
    out = str(tmp_path_factory.mktemp("go") / "winrmd-gotest")
    p = subprocess.run([go, "build", "-o", out, "."], cwd=os.path.join(HERE, "go"),
                       capture_output=True, text=True, timeout=600,
                       env=clean_env(GOFLAGS="-buildvcs=false -mod=readonly"))
    assert p.returncode == 0, "go build failed:\n" + p.stderr
    return out


def run(client, port, user, password, stdin, *cmd, https=True, auth="basic"):
    """Runs one command through the Go client; returns the CompletedProcess."""
    return subprocess.run([client, "-host", "127.0.0.1", "-port", str(port), "-user", user,
                           "-pass", password, "-https=%s" % ("true" if https else "false"),
                           "-auth", auth, "-stdin", stdin, "--"] + list(cmd),
                          capture_output=True, text=True, timeout=180, env=clean_env())


def result(p):
    """(stdout bytes, stderr bytes, exit code) the client reported."""
    assert p.returncode == 0, "go client: rc %d\n%s\n%s" % (p.returncode, p.stdout, p.stderr)
    f = dict(line.split(" ", 1) if " " in line else (line, "")
             for line in p.stdout.splitlines())
    return base64.b64decode(f["STDOUT-B64"]), base64.b64decode(f["STDERR-B64"]), int(f["EXIT"])
