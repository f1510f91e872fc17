"""Client side of the OutOfProc framing, for driving tests/runspace/psrp_runspace.py
(or any `pwsh -s`-like program) directly over its stdin/stdout.

OOPProcess   the child process; sends packets and waits for their acks like the
             PowerShell client (OutOfProcTransportManager.cs: one packet at a
             time per target, next only after the ack); collects Data packets.
PsrpClient   psrpcore's ClientRunspacePool on top of an OOPProcess.
OOPWinRS     a stand-in for pypsrp's WinRS object that maps the WS-Man shell
             operations onto OutOfProc packets the way the winrmd bridge is meant
             to (wire-clients.md §12.5), so pypsrp's RunspacePool/PowerShell can
             be run against the runspace without a daemon.
"""
import base64
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from xml.etree import ElementTree as ET

import psrpcore

HERE = os.path.dirname(os.path.abspath(__file__))
RUNSPACE = os.path.join(HERE, "psrp_runspace.py")
EMPTY = uuid.UUID(int=0)
TIMEOUT = 20.0


class OOPError(Exception):
    pass


def guid_str(g):
    return str(g or EMPTY).lower()


class OOPProcess:
    def __init__(self, args=(), env=None, argv=None):
        e = dict(os.environ)
        e.update(env or {})
        self.argv = argv or [sys.executable, RUNSPACE] + list(args)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=e)
        self.raw_lines = []          # every stdout line, verbatim (bytes, without the newline)
        self.data = queue.Queue()    # (guid, stream, bytes) for each Data packet
        self.stderr_chunks = []
        self._acks = {}
        self._cond = threading.Condition()
        self._eof = False
        self._write_lock = threading.Lock()
        self._t_out = threading.Thread(target=self._read_stdout, daemon=True)
        self._t_err = threading.Thread(target=self._read_stderr, daemon=True)
        self._t_out.start()
        self._t_err.start()

    # ---- reading
    def _read_stdout(self):
        try:
            for raw in self.proc.stdout:
                line = raw.rstrip(b"\n")
                self.raw_lines.append(line)
                el = ET.fromstring(line)
                g = uuid.UUID(el.get("PSGuid"))
                if el.tag == "Data":
                    self.data.put((g, el.get("Stream"), base64.b64decode(el.text or "")))
                else:
                    with self._cond:
                        key = (el.tag, g)
                        self._acks[key] = self._acks.get(key, 0) + 1
                        self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            self.data.put(None)

    def _read_stderr(self):
        for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
            self.stderr_chunks.append(chunk)

    @property
    def stderr(self):
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    # ---- writing
    def write(self, line):
        with self._write_lock:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()

    def _send_and_wait(self, line, ack_tag, g, timeout):
        key = (ack_tag, g or EMPTY)
        with self._cond:
            before = self._acks.get(key, 0)
        self.write(line)
        with self._cond:
            ok = self._cond.wait_for(lambda: self._acks.get(key, 0) > before or self._eof, timeout)
            if not ok or self._acks.get(key, 0) <= before:
                raise OOPError("no %s for %s within %ss (eof=%s); stderr:\n%s"
                               % (ack_tag, key[1], timeout, self._eof, self.stderr))
            self._acks[key] -= 1

    def send_data(self, data, pipeline_id=None, prompt_response=False, timeout=TIMEOUT):
        stream = "PromptResponse" if prompt_response else "Default"
        line = b"<Data Stream='%s' PSGuid='%s'>%s</Data>\n" % (
            stream.encode(), guid_str(pipeline_id).encode(), base64.b64encode(data))
        self._send_and_wait(line, "DataAck", pipeline_id, timeout)

    def send_guid(self, tag, pipeline_id=None, timeout=TIMEOUT):
        line = b"<%s PSGuid='%s' />\n" % (tag.encode(), guid_str(pipeline_id).encode())
        self._send_and_wait(line, tag + "Ack", pipeline_id, timeout)

    def next_data(self, timeout=TIMEOUT):
        try:
            item = self.data.get(timeout=timeout)
        except queue.Empty:
            raise OOPError("no Data from the runspace within %ss; stderr:\n%s" % (timeout, self.stderr))
        if item is None:
            self.data.put(None)
            raise OOPError("runspace closed stdout (rc=%s); stderr:\n%s" % (self.proc.poll(), self.stderr))
        return item

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait(self, timeout=TIMEOUT):
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PsrpClient:
    """psrpcore ClientRunspacePool driven over an OOPProcess."""

    def __init__(self, proc, pool=None):
        self.proc = proc
        self.pool = pool or psrpcore.ClientRunspacePool()
        self.events = []

    def flush(self):
        while True:
            payload = self.pool.data_to_send()
            if payload is None:
                return
            self.proc.send_data(payload.data, payload.pipeline_id,
                                payload.stream_type == psrpcore.StreamType.prompt_response)

    def next_event(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            ev = self.pool.next_event()
            if ev is not None:
                self.events.append(ev)
                return ev
            g, _stream, data = self.proc.next_data(max(0.01, deadline - time.monotonic()))
            self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default,
                                                        None if g == EMPTY else g))

    def wait_event(self, cls, pred=None, timeout=TIMEOUT):
        """Events until one of type cls (matching pred); returns (event, skipped)."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            ev = self.next_event(max(0.01, deadline - time.monotonic()))
            if isinstance(ev, cls) and (pred is None or pred(ev)):
                return ev, skipped
            skipped.append(ev)

    def open(self):
        self.pool.open()
        self.flush()
        self.wait_event(psrpcore.RunspacePoolStateEvent,
                        lambda e: e.state == psrpcore.types.RunspacePoolState.Opened)
        return self

    def start(self, ps):
        ps.start()
        self.proc.send_guid("Command", ps.pipeline_id)
        self.flush()
        return ps

    def run(self, ps, inputs=None, timeout=TIMEOUT):
        """Start ps, send inputs (then EOF) if given, collect events until its final state."""
        self.start(ps)
        if inputs is not None:
            for i in inputs:
                ps.send(i)
            ps.send_eof()
            self.flush()
        return self.collect(ps, timeout)

    def collect(self, ps, timeout=TIMEOUT):
        state, events = self.wait_event(
            psrpcore.PipelineStateEvent,
            lambda e: e.pipeline_id == ps.pipeline_id and e.state in FINAL_STATES, timeout)
        return state, [e for e in events if getattr(e, "pipeline_id", None) == ps.pipeline_id]


FINAL_STATES = (psrpcore.types.PSInvocationState.Completed, psrpcore.types.PSInvocationState.Failed,
                psrpcore.types.PSInvocationState.Stopped)


# --------------------------------------------------------------------------- pypsrp adapter

class FakeConnection:
    """What pypsrp's RunspacePool needs of a WSMan object before we swap in OOPWinRS."""
    max_envelope_size = 512000
    max_payload_size = 153600 - 4096

    def update_max_payload_size(self, max_payload_size=None):
        pass


class OOPWinRS:
    """pypsrp.shell.WinRS look-alike over OutOfProc (the §12.5 mapping)."""

    PS_CTRL_C = ("powershell/signal/ctrl_c", "powershell/signal/crtl_c")

    def __init__(self, proc, resource_uri, shell_id, receive_timeout=5.0):
        self.proc = proc
        self.resource_uri = resource_uri
        self.id = shell_id
        self.opened = False
        self._selector_set = None
        self._buffers = {}
        self.receive_timeout = receive_timeout

    def _pump(self, timeout):
        try:
            g, _stream, data = self.proc.next_data(timeout)
        except OOPError:
            if self.proc.proc.poll() is not None:
                raise
            return False
        self._buffers.setdefault(g, []).append(data)
        return True

    def open(self, base_options=None, open_content=None):
        self.proc.send_data(base64.b64decode(open_content.text))
        self.opened = True

    def close(self):
        self.proc.send_guid("Close")

    def command(self, executable, arguments=None, command_id=None, **kw):
        pid = uuid.UUID(command_id)
        self.proc.send_guid("Command", pid)
        for a in arguments or []:
            self.proc.send_data(base64.b64decode(a), pid)
        resp = ET.fromstring(
            '<r xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
            "<rsp:CommandResponse><rsp:CommandId>%s</rsp:CommandId></rsp:CommandResponse></r>"
            % str(pid).upper())
        return resp

    def send(self, stream, data, end=None, command_id=None):
        pid = uuid.UUID(command_id) if command_id else None
        self.proc.send_data(data, pid, prompt_response=(stream == "pr"))

    def signal(self, code, command_id=None):
        pid = uuid.UUID(command_id)
        if code in self.PS_CTRL_C:
            self.proc.send_guid("Signal", pid)
        else:
            self.proc.send_guid("Close", pid)

    def receive(self, stream="stdout", command_id=None, timeout=None):
        g = uuid.UUID(command_id) if command_id else EMPTY
        deadline = time.monotonic() + (timeout or self.receive_timeout)
        while not self._buffers.get(g):
            left = deadline - time.monotonic()
            if left <= 0:
                from pypsrp.exceptions import WSManFaultError
                raise WSManFaultError(2150858793, "test", "The WS-Management service cannot complete "
                                      "the operation within the time specified in OperationTimeout.",
                                      None, None, None)
            self._pump(min(left, 0.5))
        while self._pump(0.05):  # take whatever else is already there
            pass
        data = b"".join(self._buffers.pop(g, []))
        return "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running", None, {"stdout": data}


def pypsrp_pool(proc, configuration_name="Test.Runspace", host=None):
    """A pypsrp RunspacePool whose WinRS is an OOPWinRS on proc (not opened yet)."""
    from pypsrp.powershell import RunspacePool
    pool = RunspacePool(FakeConnection(), configuration_name=configuration_name, host=host)
    pool.shell = OOPWinRS(proc, pool.shell.resource_uri, pool.id)
    return pool
