"""Core integration tests for winrmd: HTTP front end, authentication, Identify,
the config resource, faults, hostile XML, logging, reload and the process model.

Run as root:  build/venv/bin/pytest -q tests/integration/test_core.py
"""
import http.client
import os
import pwd
import re
import socket
import ssl
import subprocess
import textwrap
import time

import pytest
import requests

from wsman_util import (
    IDENTIFY_BODY, NS, SOAP_CONTENT_TYPE, ACTION_GET, RESOURCE_CONFIG,
    ERROR_ACCESS_DENIED, ERROR_WSMAN_INVALID_MESSAGE_INFORMATION_HEADER,
    ERROR_WSMAN_MESSAGE_INFORMATION_HEADER_REQUIRED, ERROR_WSMAN_ACTION_NOT_SUPPORTED,
    ERROR_WSMAN_INVALID_RESOURCE_URI, ERROR_WSMAN_INVALID_XML, ERROR_WSMAN_MIN_ENVELOPE_SIZE,
    envelope, config_get_envelope, shell_create_envelope, basic_header, post, parse,
    relates_to, assert_ok, assert_fault, assert_soap_content_type, describe,
    config_value, identify_product_version, log_records, new_message_id,
    WINRMD, WORKER_COMM, REQUEST_TIMEOUT, make_config, proc_argv0, wait_for,
)

UNAUTH_IDENTIFY = {"WSMANIDENTIFY": "unauthenticated"}


def config_get(url, user, **kw):
    """Authenticated config Get; returns the parsed reply (asserting 200)."""
    xml, mid = config_get_envelope(**kw)
    return assert_ok(post(url, xml, user=user), mid)


def assert_401(resp):
    assert resp.status_code == 401, describe(resp)


def assert_still_serving(d, user, worker_before=None):
    """The daemon answers a good request, and the worker did not crash and restart."""
    config_get(d.https_url, user)
    if worker_before is not None:
        assert d.worker_pid() == worker_before, \
            "the worker process changed (crashed and restarted?); log tail:\n" + d.log()[-3000:]


# =========================================================================== HTTP


def test_post_other_path_is_404(daemon, users):
    xml, _ = config_get_envelope()
    r = post(daemon.https_url.replace("/wsman", "/other"), xml, user=users.admin)
    assert r.status_code == 404, describe(r)


def test_get_wsman_is_405(daemon, users):
    r = requests.get(daemon.https_url, verify=False, timeout=REQUEST_TIMEOUT,
                     headers={"Authorization": basic_header(users.admin.name, users.admin.password)})
    assert r.status_code == 405, describe(r)


def test_keep_alive_across_401(daemon, users):
    """A 401 must not close the connection (NTLM/SPNEGO clients depend on it)."""
    ctx = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", daemon.https_port, context=ctx, timeout=REQUEST_TIMEOUT)
    try:
        xml, _ = config_get_envelope()
        hdrs = {"Content-Type": SOAP_CONTENT_TYPE}
        conn.request("POST", "/wsman", body=xml.encode(), headers=hdrs)
        r1 = conn.getresponse()
        r1.read()
        assert r1.status == 401, (r1.status, r1.getheaders())
        assert (r1.getheader("Connection") or "").lower() != "close", r1.getheaders()
        sock = conn.sock
        assert sock is not None, "the client saw the connection closed after the 401"

        xml, mid = config_get_envelope()
        hdrs["Authorization"] = basic_header(users.admin.name, users.admin.password)
        conn.request("POST", "/wsman", body=xml.encode(), headers=hdrs)
        r2 = conn.getresponse()
        body = r2.read().decode()
        assert r2.status == 200, (r2.status, body[:1000])
        assert conn.sock is sock, "the client had to reconnect after the 401"
        assert relates_to(body) == mid
    finally:
        conn.close()


# =========================================================================== Identify


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_identify_unauthenticated(daemon, scheme):
    url = daemon.https_url if scheme == "https" else daemon.http_url
    r = post(url, IDENTIFY_BODY, headers=UNAUTH_IDENTIFY)
    assert r.status_code == 200, describe(r)
    assert_soap_content_type(r)
    root = parse(r.text)
    assert root.find("s:Body/wsmid:IdentifyResponse", NS) is not None
    assert root.find("s:Body/wsmid:IdentifyResponse/wsmid:ProtocolVersion", NS).text == \
        "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
    assert identify_product_version(r.text) == "OS: 0.0.0 SP: 0.0 Stack: 3.0"


def test_identify_authenticated_reports_os_version(daemon, users):
    r = post(daemon.https_url, IDENTIFY_BODY, user=users.admin)
    assert r.status_code == 200, describe(r)
    assert_soap_content_type(r)
    m = re.fullmatch(r"OS: (\S+) SP: 0\.0 Stack: 3\.0", identify_product_version(r.text))
    assert m, identify_product_version(r.text)
    assert m.group(1) != "0.0.0" and m.group(1)[0].isdigit(), m.group(1)


def test_identify_unauthenticated_disabled(winrmd):
    d = winrmd(service={"EnableUnauthenticatedIdentify": "false"})
    assert_401(post(d.https_url, IDENTIFY_BODY, headers=UNAUTH_IDENTIFY))


# =========================================================================== fail closed (CVE-2021-38647)


def _omigod_requests():
    return {
        "identify-without-header": (IDENTIFY_BODY, {}),
        "config-get": (config_get_envelope()[0], {}),
        "shell-create": (shell_create_envelope()[0], {}),
        # The Identify bypass header must not unlock anything but Identify.
        "config-get-with-identify-header": (config_get_envelope()[0], UNAUTH_IDENTIFY),
        "shell-create-with-identify-header": (shell_create_envelope()[0], UNAUTH_IDENTIFY),
    }


@pytest.mark.parametrize("case", sorted(_omigod_requests()))
@pytest.mark.parametrize("scheme", ["https", "http"])
def test_no_authorization_header_is_401(daemon, case, scheme):
    body, headers = _omigod_requests()[case]
    url = daemon.https_url if scheme == "https" else daemon.http_url
    r = post(url, body, headers=headers)
    assert r.status_code == 401, describe(r)


def test_401_offers_basic_on_https(daemon):
    r = post(daemon.https_url, config_get_envelope()[0])
    assert_401(r)
    assert 'Basic realm="WSMAN"' in r.headers.get("WWW-Authenticate", ""), describe(r)


def test_401_does_not_offer_basic_on_http_when_encryption_required(daemon):
    r = post(daemon.http_url, config_get_envelope()[0])
    assert_401(r)
    assert "basic" not in r.headers.get("WWW-Authenticate", "").lower(), describe(r)


# =========================================================================== Basic / PAM


def test_basic_admin_over_https(daemon, users):
    root = config_get(daemon.https_url, users.admin)
    assert config_value(root, "MaxEnvelopeSizekb") == "500"


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user", "locked", "expired",
                                 "empty-credentials"])
def test_basic_rejected_is_401(daemon, users, who):
    name, password = {
        "wrong-password": (users.admin.name, users.admin.password + "x"),
        "unknown-user": ("wrtnosuchuser", "whatever-Pa55"),
        "locked": (users.locked.name, users.locked.password),
        "expired": (users.expired.name, users.expired.password),
        "empty-credentials": ("", ""),
    }[who]
    t0 = time.monotonic()
    r = post(daemon.https_url, config_get_envelope()[0], auth=basic_header(name, password))
    assert_401(r)
    assert 'Basic realm="WSMAN"' in r.headers.get("WWW-Authenticate", ""), describe(r)
    if who != "empty-credentials":
        # Failed logins are answered after a ~2 s delay (brute-force brake).
        assert time.monotonic() - t0 >= 1.0
    assert_still_serving(daemon, users.admin)


SLOW_PAM = """\
# Written by test_core: the password check of {user} takes {secs} s longer.
auth [success=1 default=ignore] pam_succeed_if.so quiet user notin {user}
auth optional pam_exec.so quiet /bin/sleep {secs}
@include common-auth
@include common-account
@include common-session-noninteractive
"""


def test_slow_password_check_holds_up_no_one_else(winrmd, users):
    """A login whose PAM stack is slow (an LDAP or sssd timeout, say) runs in
    its own child of the monitor: meanwhile another user logs in on a new
    connection, opens a shell and runs a command."""
    from concurrent.futures import ThreadPoolExecutor
    from winrm.protocol import Protocol
    from daemon_util import make_user, remove_user

    secs = "7.25"
    slow = make_user("wrtslw")
    pam_path = "/etc/pam.d/winrmd-slowtest"

    def sleeping():
        for pid in os.listdir("/proc"):
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if f.read() == b"/bin/sleep\0" + secs.encode() + b"\0":
                        return True
            except (OSError, ValueError):
                pass
        return False

    try:
        with open(pam_path, "w") as f:
            f.write(SLOW_PAM.format(user=slow.name, secs=secs))
        d = winrmd(service={"PamService": "winrmd-slowtest"})
        with ThreadPoolExecutor(1) as ex:
            slow_login = ex.submit(config_get, d.https_url, slow)
            assert wait_for(sleeping, 10), "the slow PAM check never started"
            p = Protocol(d.https_url, transport="basic", username=users.admin.name,
                         password=users.admin.password, server_cert_validation="ignore")
            sid = p.open_shell()
            cid = p.run_command(sid, "echo", ["not held up"])
            out = p.get_command_output(sid, cid)
            assert out == (b"not held up\n", b"", 0)
            assert not slow_login.done() and sleeping(), \
                "the other login had to wait for the slow one"
            p.close_shell(sid)
            slow_login.result(timeout=60)     # and the slow one still succeeds
    finally:
        remove_user(slow)
        os.unlink(pam_path)


def test_user_not_in_allowed_groups_gets_access_denied(daemon, users):
    xml, mid = config_get_envelope()
    r = post(daemon.https_url, xml, user=users.plain)
    assert_fault(r, ERROR_ACCESS_DENIED, mid)


def test_allowed_users_admits_a_plain_user(winrmd, users):
    d = winrmd(service={"AllowedUsers": users.plain.name})
    config_get(d.https_url, users.plain)


def test_basic_over_http_refused_when_unencrypted_not_allowed(daemon, users):
    r = post(daemon.http_url, config_get_envelope()[0], user=users.admin)
    assert_401(r)


def test_pywinrm_refused_over_http_when_unencrypted_not_allowed(daemon, users):
    import winrm.exceptions
    from winrm.protocol import Protocol
    p = Protocol(daemon.http_url, transport="plaintext", username=users.admin.name,
                 password=users.admin.password)
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        p.send_message(config_get_envelope()[0])


def test_pywinrm_plaintext_over_http_when_allowed(winrmd, users):
    from winrm.protocol import Protocol
    d = winrmd(service={"AllowUnencrypted": "true"})
    p = Protocol(d.http_url, transport="plaintext", username=users.admin.name,
                 password=users.admin.password)
    xml, mid = config_get_envelope()
    reply = p.send_message(xml)
    assert relates_to(reply) == mid
    assert config_value(reply, "Service/AllowUnencrypted") == "true"
    # ... and the 401 on HTTP now offers Basic.
    r = post(d.http_url, config_get_envelope()[0])
    assert_401(r)
    assert 'Basic realm="WSMAN"' in r.headers.get("WWW-Authenticate", ""), describe(r)


# =========================================================================== config resource


def test_config_get_reflects_defaults(daemon, users):
    xml, mid = config_get_envelope(message_id=new_message_id(upper=True))
    root = assert_ok(post(daemon.https_url, xml, user=users.admin), mid)
    assert config_value(root, "MaxEnvelopeSizekb") == "500"
    assert config_value(root, "MaxTimeoutms") == "60000"
    assert int(config_value(root, "MaxBatchItems")) > 0
    assert config_value(root, "Service/AllowUnencrypted") == "false"
    assert root.find("s:Body/cfg:Config/cfg:Winrs", NS) is not None


def test_config_get_reflects_config_file(winrmd, users):
    d = winrmd(service={"MaxEnvelopeSizekb": "300", "MaxTimeoutms": "90000"},
               winrs={"MaxShellsPerUser": "7"})
    root = config_get(d.https_url, users.admin)
    assert config_value(root, "MaxEnvelopeSizekb") == "300"
    assert config_value(root, "MaxTimeoutms") == "90000"
    assert config_value(root, "Winrs/MaxShellsPerUser") == "7"


@pytest.mark.pypi
def test_pypsrp_update_max_payload_size(daemon, users):
    from pypsrp.wsman import WSMan
    wsman = WSMan("127.0.0.1", port=daemon.https_port, username=users.admin.name,
                  password=users.admin.password, ssl=True, cert_validation=False,
                  auth="basic", encryption="never")
    try:
        wsman.update_max_payload_size()
        assert wsman.max_envelope_size == 500 * 1024
        assert 0 < wsman.max_payload_size < 500 * 1024
    finally:
        wsman.close()


def test_pywinrm_basic_over_https(daemon, users):
    from winrm.protocol import Protocol
    p = Protocol(daemon.https_url, transport="basic", username=users.admin.name,
                 password=users.admin.password, server_cert_validation="ignore")
    xml, mid = config_get_envelope()
    reply = p.send_message(xml)
    assert relates_to(reply) == mid
    assert config_value(reply, "MaxEnvelopeSizekb") == "500"


DEBIAN_PYWINRM_SCRIPT = textwrap.dedent("""
    import os, sys, warnings
    warnings.simplefilter("ignore")
    import winrm, winrm.protocol
    assert winrm.__file__.startswith("/usr/lib/python3/dist-packages/"), winrm.__file__
    p = winrm.protocol.Protocol(os.environ["URL"], transport="basic",
                                username=os.environ["WUSER"], password=os.environ["WPASS"],
                                server_cert_validation="ignore")
    reply = p.send_message(sys.stdin.read())
    sys.stdout.write(reply.decode("utf-8") if isinstance(reply, bytes) else reply)
""")


def test_debian_pywinrm_03_basic_over_https(daemon, users):
    """Debian's python3-winrm 0.3 (system python, not the venv) sends a raw Get."""
    xml, mid = config_get_envelope()
    env = dict(os.environ, URL=daemon.https_url, WUSER=users.admin.name,
               WPASS=users.admin.password, PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run(["/usr/bin/python3", "-c", DEBIAN_PYWINRM_SCRIPT], input=xml,
                       capture_output=True, text=True, env=env, timeout=120, cwd="/")
    assert p.returncode == 0, p.stderr
    assert relates_to(p.stdout) == mid
    assert config_value(p.stdout, "MaxEnvelopeSizekb") == "500"


# =========================================================================== faults


def _fault_cases():
    get = ACTION_GET
    return {
        "unknown-action": (
            dict(action="http://schemas.xmlsoap.org/ws/2004/09/transfer/Frobnicate",
                 resource_uri=RESOURCE_CONFIG), ERROR_WSMAN_ACTION_NOT_SUPPORTED, True),
        "unknown-resource-uri": (
            dict(action=get, resource_uri="http://schemas.microsoft.com/wbem/wsman/1/nosuchthing"),
            ERROR_WSMAN_INVALID_RESOURCE_URI, True),
        "missing-message-id": (
            dict(action=get, resource_uri=RESOURCE_CONFIG, include_message_id=False),
            ERROR_WSMAN_MESSAGE_INFORMATION_HEADER_REQUIRED, False),
        "negative-operation-timeout": (
            dict(action=get, resource_uri=RESOURCE_CONFIG, operation_timeout="PT-1S"),
            ERROR_WSMAN_INVALID_MESSAGE_INFORMATION_HEADER, True),
        "max-envelope-size-too-small": (
            dict(action=get, resource_uri=RESOURCE_CONFIG, max_envelope_size="100"),
            ERROR_WSMAN_MIN_ENVELOPE_SIZE, True),
    }


@pytest.mark.parametrize("case", sorted(_fault_cases()))
def test_wsman_faults(daemon, users, case):
    kw, code, has_mid = _fault_cases()[case]
    worker = daemon.worker_pid()
    xml, mid = envelope(**kw)
    r = post(daemon.https_url, xml, user=users.admin)
    assert_fault(r, code, mid if has_mid else None)
    assert_still_serving(daemon, users.admin, worker)


def test_malformed_xml(daemon, users):
    worker = daemon.worker_pid()
    xml, _ = config_get_envelope()
    for bad in (xml[: len(xml) // 2], "this is not xml", xml.replace("</env:Header>", "", 1),
                "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'>\x00</s:Envelope>"):
        r = post(daemon.https_url, bad, user=users.admin)
        assert_fault(r, ERROR_WSMAN_INVALID_XML)
    assert_still_serving(daemon, users.admin, worker)


XXE_FILE = """<?xml version="1.0"?>
<!DOCTYPE env:Envelope [<!ENTITY x SYSTEM "file:///etc/shadow">]>
""" 

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE env:Envelope [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def _with_doctype(doctype, entity):
    """A config Get whose MessageID and body reference an entity."""
    xml, _ = config_get_envelope(message_id="uuid:&%s;" % entity, body="&%s;" % entity)
    return doctype + xml.split("\n", 1)[1]   # replace the XML declaration


@pytest.mark.parametrize("case", ["xxe-file", "billion-laughs"])
def test_doctype_is_refused(daemon, users, case):
    worker = daemon.worker_pid()
    body = _with_doctype(XXE_FILE, "x") if case == "xxe-file" else _with_doctype(BILLION_LAUGHS, "lol9")
    t0 = time.monotonic()
    r = post(daemon.https_url, body, user=users.admin)
    assert time.monotonic() - t0 < 30
    assert_fault(r, ERROR_WSMAN_INVALID_XML)
    assert "root:" not in r.text and "lollol" not in r.text, describe(r)
    assert_still_serving(daemon, users.admin, worker)


def _tls_socket(port):
    ctx = ssl._create_unverified_context()
    raw = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _request_head(port, headers):
    return ("POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
            + "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n").encode()


def _post_expect_continue(port, body, headers):
    """POST with `Expect: 100-continue`: the body is sent only if the server asks
    for it, so a refusal based on Content-Length is read deterministically (no
    unread request bytes, hence no TCP reset racing the reply).  Returns the
    final status."""
    s = _tls_socket(port)
    try:
        h = dict(headers, **{"Content-Length": str(len(body)), "Expect": "100-continue"})
        s.sendall(_request_head(port, h))
        resp = http.client.HTTPResponse(s)
        resp.begin()                       # http.client skips interim 100 replies...
        return resp.status
    except http.client.RemoteDisconnected:
        pytest.fail("the server closed the connection without a reply")
    finally:
        s.close()


def _post_chunked(port, body, headers, chunk=64 * 1024):
    """POST with Transfer-Encoding: chunked (no Content-Length), so the size limit
    can only be enforced while reading the body.  Returns the status."""
    s = _tls_socket(port)
    try:
        s.sendall(_request_head(port, dict(headers, **{"Transfer-Encoding": "chunked"})))
        for i in range(0, len(body), chunk):
            part = body[i:i + chunk]
            s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        resp = http.client.HTTPResponse(s)
        resp.begin()
        return resp.status
    finally:
        s.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_oversized_body_is_413(daemon, users, framing):
    worker = daemon.worker_pid()
    xml, _ = config_get_envelope(header_padding=" " * (700 * 1024))
    headers = {"Content-Type": SOAP_CONTENT_TYPE,
               "Authorization": basic_header(users.admin.name, users.admin.password)}
    if framing == "content-length":
        status = _post_expect_continue(daemon.https_port, xml.encode(), headers)
    else:
        status = _post_chunked(daemon.https_port, xml.encode(), headers)
    assert status == 413
    assert_still_serving(daemon, users.admin, worker)


def test_body_just_under_max_envelope_size_is_accepted(daemon, users):
    """500 KB is what PowerShell/pypsrp send; a 480,000-byte request must pass."""
    xml, _ = config_get_envelope()
    xml, mid = config_get_envelope(header_padding=" " * (480000 - len(xml)))
    assert len(xml.encode()) == 480000
    assert_ok(post(daemon.https_url, xml, user=users.admin), mid)


# =========================================================================== process model


def test_worker_runs_as_winrmd_and_monitor_as_root(daemon):
    def status(pid):
        with open("/proc/%d/status" % pid) as f:
            return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)

    assert status(daemon.pid)["Uid"].split() == ["0"] * 4
    worker = daemon.worker_pid()
    assert worker is not None, "no winrmd-net child under monitor %d; children: %r" % (
        daemon.pid, daemon.children())
    assert daemon.children() == {worker: WORKER_COMM}, \
        "want exactly one child with /proc/PID/comm %r (ps/top show comm), got %r" % (
            WORKER_COMM, daemon.children())
    assert proc_argv0(worker) == WORKER_COMM
    pw = pwd.getpwnam("winrmd")
    assert pw.pw_uid != 0
    st = status(worker)
    assert st["Uid"].split() == [str(pw.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(pw.pw_gid)] * 4, st["Gid"]
    assert "0" not in st.get("Groups", "").split(), st.get("Groups")


# =========================================================================== logging


def _find_record(d, pred, start=0, timeout=15.0):
    """First parsed log record written after offset `start` that satisfies pred."""
    return wait_for(lambda: next((r for r in log_records(d.log()[start:]) if pred(r)), None),
                    timeout)


def test_log_records_for_accepted_and_rejected_requests(daemon, users):
    start = len(daemon.log())
    config_get(daemon.https_url, users.admin)
    ok = _find_record(daemon, lambda r: r.get("WINRMD_USER") == users.admin.name
                      and "WINRMD_RESULT" in r, start)
    assert ok, "no log record with WINRMD_USER=%s and WINRMD_RESULT; log tail:\n%s" % (
        users.admin.name, daemon.log()[-3000:])

    ghost, bad_password = "wrtghost" + os.urandom(3).hex(), "Secr3t-" + os.urandom(6).hex()
    assert_401(post(daemon.https_url, config_get_envelope()[0], auth=basic_header(ghost, bad_password)))
    bad = _find_record(daemon, lambda r: r.get("WINRMD_USER") == ghost and "WINRMD_RESULT" in r, start)
    assert bad, "no log record for the rejected user %s; log tail:\n%s" % (ghost, daemon.log()[-3000:])
    assert bad["WINRMD_RESULT"] != ok["WINRMD_RESULT"], \
        "accepted and rejected requests log the same WINRMD_RESULT:\n%s\n%s" % (ok["_line"], bad["_line"])

    text = daemon.log()
    assert users.admin.password not in text and bad_password not in text, "a password was logged"


# =========================================================================== reload


def test_sighup_reload_applies_and_bad_file_keeps_running_config(winrmd, users):
    d = winrmd()
    assert config_value(config_get(d.https_url, users.admin), "MaxEnvelopeSizekb") == "500"

    d.reload(d.config_text(service={"MaxEnvelopeSizekb": "256"}))
    got = wait_for(lambda: config_value(config_get(d.https_url, users.admin),
                                        "MaxEnvelopeSizekb") == "256", 15, 0.5)
    assert got, "MaxEnvelopeSizekb did not become 256 after SIGHUP; log tail:\n" + d.log()[-3000:]

    start = len(d.log())
    d.reload(d.config_text(service={"MaxEnvelopeSizekb": "banana"}))
    assert d.wait_log("reload failed", 15, start), d.log()[-3000:]
    assert d.proc.poll() is None
    assert config_value(config_get(d.https_url, users.admin), "MaxEnvelopeSizekb") == "256"
    assert d.worker_pid() is not None


# =========================================================================== -t / -T


def test_check_config_valid(daemon):
    p = subprocess.run([WINRMD, "-t", "-f", daemon.conf_path], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("lines,lineno,key", [
    (["[Service]", "AllowUnencrypted = false", "MaxEnvelopeSizekb = banana"], 3, "MaxEnvelopeSizekb"),
    (["# comment", "[Service]", "NoSuchKey = 1"], 3, "NoSuchKey"),
    (["[Service]", "", "MaxEnvelopeSizekb = 1"], 3, "MaxEnvelopeSizekb"),  # below the minimum
])
def test_check_config_invalid(tmp_path, lines, lineno, key):
    path = tmp_path / "bad.conf"
    path.write_text("\n".join(lines) + "\n")
    p = subprocess.run([WINRMD, "-t", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "%s:%d: %s: " % (path, lineno, key) in p.stderr, p.stderr


def test_dump_config_round_trips(tmp_path, tls_cert):
    conf = tmp_path / "winrmd.conf"
    conf.write_text(make_config(15985, 15986, *tls_cert,
                                service={"MaxEnvelopeSizekb": "300", "AllowedUsers": "alice bob"},
                                winrs={"MaxShellsPerUser": "7"}))
    d1 = subprocess.run([WINRMD, "-T", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert d1.returncode == 0, d1.stderr
    assert re.search(r"(?im)^\s*MaxEnvelopeSizekb\s*=\s*300\s*$", d1.stdout), d1.stdout
    path = tmp_path / "dump.conf"
    path.write_text(d1.stdout)
    d2 = subprocess.run([WINRMD, "-T", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert d2.returncode == 0, d2.stderr

    def settings(dump):   # the dump's comments may name the file it was read from
        return [line for line in dump.splitlines() if not line.lstrip().startswith("#")]
    assert settings(d2.stdout) == settings(d1.stdout)
