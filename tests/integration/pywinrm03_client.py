"""Run WinRS operations with Debian's pywinrm 0.3 (python3-winrm) and print JSON.

Run with Debian's system Python, never the test venv:
    /usr/bin/python3 pywinrm03_client.py JOB.json

JOB = {"url": ..., "user": ..., "password": ..., "transport": "basic",
       "ops": [{"kind": "run_cmd", "command": "echo", "args": ["hi"]},
               {"kind": "shell", "command": "pwd", "args": [],
                "env": {"A": "1"}, "cwd": "/tmp"}]}

Prints one JSON object: {"version": winrm version, "results": [{"out": b64,
"err": b64, "code": int} or {"error": "..."} per op]}.  The test strips
REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment: with them set,
pywinrm 0.3 verifies the server certificate despite
server_cert_validation='ignore'.
"""
import base64
import json
import sys

import winrm
from winrm.protocol import Protocol


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    results = []
    for op in job["ops"]:
        try:
            if op["kind"] == "run_cmd":
                s = winrm.Session(job["url"], auth=(job["user"], job["password"]),
                                  transport=job.get("transport", "basic"),
                                  server_cert_validation="ignore")
                r = s.run_cmd(op["command"], op.get("args", []))
                results.append({"out": b64(r.std_out), "err": b64(r.std_err),
                                "code": r.status_code})
            else:
                p = Protocol(job["url"], transport=job.get("transport", "basic"),
                             username=job["user"], password=job["password"],
                             server_cert_validation="ignore")
                sid = p.open_shell(env_vars=op.get("env") or None,
                                   working_directory=op.get("cwd"))
                cid = p.run_command(sid, op["command"], op.get("args", []))
                out, err, code = p.get_command_output(sid, cid)
                p.cleanup_command(sid, cid)
                p.close_shell(sid)
                results.append({"out": b64(out), "err": b64(err), "code": code})
        except Exception as e:  # reported to the test, which fails with it
            results.append({"error": "%s: %s" % (type(e).__name__, e)})
    print(json.dumps({"version": getattr(winrm, "__version__", "?"),
                      "file": winrm.__file__, "results": results}))


if __name__ == "__main__":
    main()
