"""The masterzen/winrm (Go) test client: build it once per module, run it
against a daemon and read what it printed (see go/main.go).  The same main.go
builds against Debian's masterzen/winrm (2020) and the module proxy's."""
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


# Debian's golang-github-masterzen-winrm-dev and its dependencies live here.
DEBIAN_GOPATH = "/usr/share/gocode"


def build(tmp_path_factory, source="debian"):
    """Build go/main.go against masterzen/winrm from `source`: "debian" (the
    core suite: Debian's package, GOPATH mode, no network) or "proxy" (the
    pypi suite: the version go.mod pins, from the Go module proxy)."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert os.access(go, os.X_OK), "go is not installed"
    out = str(tmp_path_factory.mktemp("go") / "winrmd-gotest")
    if source == "debian":
        # GOPATH mode wants the package inside a GOPATH; a fresh one per build
        # holds only our main.go and finds everything else in Debian's.
        gopath = tmp_path_factory.mktemp("gopath")
        src = gopath / "src" / "winrmd-gotest"
        src.mkdir(parents=True)
        shutil.copy(os.path.join(HERE, "go", "main.go"), str(src))
        cwd, env = str(src), clean_env(GO111MODULE="off", GOFLAGS="",
                                       GOPATH="%s:%s" % (gopath, DEBIAN_GOPATH))
    else:
        cwd, env = os.path.join(HERE, "go"), clean_env(GOFLAGS="-buildvcs=false -mod=readonly")
    p = subprocess.run([go, "build", "-o", out, "."], cwd=cwd, capture_output=True, text=True,
                       timeout=600, env=env)
    assert p.returncode == 0, "go build (%s) failed:\n%s" % (source, p.stderr)
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
