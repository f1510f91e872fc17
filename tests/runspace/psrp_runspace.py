#!/usr/bin/env python3
"""A stand-in for `pwsh -s` (PowerShell's out-of-process server mode).

It speaks the OutOfProc framing on stdin/stdout exactly like pwsh does
(OutOfProcTransportManager.cs / OutOfProcServerMediator.cs): one XML element
per line, single-quoted attributes, lowercase GUIDs; PSGuid
00000000-0000-0000-0000-000000000000 is the runspace pool, anything else a
pipeline (command) id.

  in:  <Data Stream='Default|PromptResponse' PSGuid='g'>BASE64</Data>
       <Command PSGuid='g' />  <Signal PSGuid='g' />  <Close PSGuid='g' />
  out: <DataAck PSGuid='g' /> <CommandAck PSGuid='g' /> <SignalAck PSGuid='g' />
       <CloseAck PSGuid='g' /> <Data Stream='Default' PSGuid='g'>BASE64</Data>

EOF or an empty line on stdin ends the session: a message goes to stderr and
the process exits with code 4000, like pwsh (also after a pool Close: pwsh
keeps reading until EOF too).  Logging goes to stderr only; stdout carries
nothing but packets, each written as one line and flushed.

The PSRP layer is psrpcore's ServerRunspacePool/ServerPipeline.  Pipelines are
not PowerShell: a tiny command language is interpreted, from cmdlets
(PowerShell.add_cmdlet/add_parameter/add_argument) or from scripts
(add_script: statements separated by ';' or newlines, commands by '|',
tokens split like a POSIX shell, '-Name value' parameters):

  Write-Output [args|-InputObject x]   output each argument; without any, echo the pipeline input
  $input                               echo the pipeline input (PIPELINE_INPUT objects)
  Write-Error msg                      a (non-terminating) error record
  Write-Warning/-Verbose/-Debug msg    the respective stream
  Write-Information msg [-Tags a,b]    an information record
  Write-Progress activity [status] [-Id n] [-PercentComplete n] [-Completed]
  Write-Host msg                       host call WriteLine2 (void, no reply expected)
  Read-Host [prompt]                   host call ReadLine; outputs the string the client answered
  Start-Sleep [-Seconds] n | -Milliseconds n   stoppable (Signal / pool Close)
  Get-Uid                              outputs the process's user name (str), then its uid (int)
  Get-Pid / Get-Location / Get-Env NAME  process id / cwd / an environment variable ($null if unset)
  Write-Blob -Size n [-Count c]        c strings of n 'x' (exercises fragmentation)
  throw msg                            terminating error: PipelineState Failed with that reason
  Exit-Process [n]                     flushes what is queued, then os._exit(n) (simulates a crash)
  anything else                        PipelineState Failed, reason a CommandNotFoundException record

Runspace-pool messages are answered via psrpcore: SESSION_CAPABILITY +
INIT_RUNSPACEPOOL (APPLICATION_PRIVATE_DATA, RUNSPACEPOOL_STATE Opened),
CONNECT_RUNSPACEPOOL from a reconnecting client (SESSION_CAPABILITY,
RUNSPACEPOOL_INIT_DATA, APPLICATION_PRIVATE_DATA, RUNSPACEPOOL_STATE Opened),
PUBLIC_KEY (ENCRYPTED_SESSION_KEY), SET_MAX/SET_MIN_RUNSPACES,
RESET_RUNSPACE_STATE, GET_AVAILABLE_RUNSPACES (RUNSPACE_AVAILABILITY).

Options (argv or environment):
  --coalesce / PSRP_RUNSPACE_COALESCE=1   put all queued fragments for one target in one <Data>
                                          (default: one fragment per <Data> line, like pwsh)
  --fragment-size N / PSRP_RUNSPACE_FRAGMENT_SIZE   max fragment size incl. header (default 32768)
  --debug / PSRP_RUNSPACE_DEBUG=1         log every packet in and out to stderr
  PSRP_RUNSPACE_HOST_TIMEOUT              seconds to wait for a host response (default 600)

Only psrpcore and the standard library are used, so the project venv's python
can run it as any user.
"""
import base64
import os
import pwd
import shlex
import struct
import sys
import threading
import traceback
import uuid
from xml.etree import ElementTree as ET

try:
    import psrpcore
    from psrpcore.types import (
        ErrorCategory,
        ErrorCategoryInfo,
        ErrorRecord,
        HostMethodIdentifier,
        NETException,
        ProgressRecordType,
        PSInvocationState,
    )
except Exception as _e:  # pragma: no cover - environment problem
    sys.stderr.write("psrp_runspace[%d]: cannot import psrpcore: %s\n" % (os.getpid(), _e))
    sys.stderr.flush()
    os._exit(4000)

EXIT_CODE_SESSION_END = 4000  # pwsh: EXITCODE_UNHANDLED_EXCEPTION (0xFA0)
EMPTY = uuid.UUID(int=0)

_argv = sys.argv[1:]


def _opt_flag(flag, env):
    return flag in _argv or os.environ.get(env, "") not in ("", "0")


def _opt_value(flag, env, default):
    if flag in _argv:
        i = _argv.index(flag)
        if i + 1 < len(_argv):
            return _argv[i + 1]
    return os.environ.get(env, default)


DEBUG = _opt_flag("--debug", "PSRP_RUNSPACE_DEBUG")
COALESCE = _opt_flag("--coalesce", "PSRP_RUNSPACE_COALESCE")
FRAGMENT_SIZE = max(22, int(_opt_value("--fragment-size", "PSRP_RUNSPACE_FRAGMENT_SIZE", "32768")))
HOST_TIMEOUT = float(os.environ.get("PSRP_RUNSPACE_HOST_TIMEOUT", "600"))


def log(msg, *args):
    try:
        text = msg % args if args else msg
        sys.stderr.write("psrp_runspace[%d]: %s\n" % (os.getpid(), text))
        sys.stderr.flush()
    except Exception:
        pass


# --------------------------------------------------------------------------- errors

class PipelineStopped(Exception):
    """The pipeline was stopped (Signal / Close); unwind without writing."""


class Terminating(Exception):
    """A terminating error: the pipeline ends Failed with this record."""

    def __init__(self, record):
        super().__init__(str(record))
        self.record = record


def make_error_record(message, error_id, category=ErrorCategory.NotSpecified, reason=None,
                      target=None, exc_types=None):
    exc = NETException(Message=message, HResult=-2146233087)
    if exc_types:
        exc.PSObject.type_names = list(exc_types) + list(exc.PSTypeNames)
    return ErrorRecord(
        Exception=exc,
        CategoryInfo=ErrorCategoryInfo(Category=category, Reason=reason or "RuntimeException",
                                       TargetName=target or ""),
        TargetObject=target,
        FullyQualifiedErrorId=error_id,
    )


def command_not_found(name):
    msg = ("The term '%s' is not recognized as a name of a cmdlet, function, script file, "
           "or executable program. (command not found)" % name)
    return make_error_record(
        msg, "CommandNotFoundException", ErrorCategory.ObjectNotFound, "CommandNotFoundException", name,
        ["System.Management.Automation.CommandNotFoundException",
         "System.Management.Automation.RuntimeException", "System.SystemException"])


# --------------------------------------------------------------------------- command language

def _split_script(text):
    """Script text -> list of statements, each a list of [name, token...] commands."""
    statements = []
    for raw_line in text.replace("\r\n", "\n").split("\n"):
        lex = shlex.shlex(raw_line, posix=True, punctuation_chars=";|")
        lex.whitespace_split = True
        lex.commenters = "#"
        stmt, cmd = [], []
        for tok in lex:
            if tok and set(tok) <= {";"}:
                if cmd:
                    stmt.append(cmd)
                if stmt:
                    statements.append(stmt)
                stmt, cmd = [], []
            elif tok and set(tok) <= {"|"}:
                if cmd:
                    stmt.append(cmd)
                cmd = []
            else:
                cmd.append(tok)
        if cmd:
            stmt.append(cmd)
        if stmt:
            statements.append(stmt)
    return statements


def _is_number(tok):
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _tokens_to_call(tokens):
    """[name, tok...] -> (name, positional args, {lower param: value})."""
    name, args, params = tokens[0], [], {}
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and len(tok) > 1 and not _is_number(tok):
            pname = tok[1:].rstrip(":").lower()
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is None or (nxt.startswith("-") and len(nxt) > 1 and not _is_number(nxt)):
                params[pname] = True
                i += 1
            else:
                val = nxt.split(",") if ("," in nxt and pname == "tags") else nxt
                params[pname] = val
                i += 2
        else:
            args.append(tok)
            i += 1
    return name, args, params


def pipeline_to_statements(pipeline):
    """psrpcore.PowerShell -> list of statements; a statement is a list of (name, args, params)."""
    statements, current = [], []
    for cmd in pipeline.commands:
        if cmd.is_script:
            script_stmts = [[_tokens_to_call(c) for c in s] for s in _split_script(cmd.command_text)]
            if not script_stmts:
                pass
            elif current or len(script_stmts) == 1:
                # A script in the middle of a pipeline: splice its (single) statement in.
                for s in script_stmts[:-1]:
                    statements.append(current + s)
                    current = []
                current = current + script_stmts[-1]
            else:
                statements.extend(script_stmts[:-1])
                current = script_stmts[-1]
        else:
            args, params = [], {}
            for pname, value in cmd.parameters:
                if pname is None:
                    args.append(value)
                else:
                    params[pname.lower()] = value
            current.append((cmd.command_text, args, params))
        if cmd.end_of_statement and current:
            statements.append(current)
            current = []
    if current:
        statements.append(current)
    return statements


def _as_list(v):
    if isinstance(v, (list, tuple)):
        return list(v)
    return [v]


def _param(params, args, names, index=None, default=None):
    for n in names:
        if n in params:
            return params[n]
    if index is not None and index < len(args):
        return args[index]
    return default


def _message(params, args, names=("message",)):
    v = _param(params, args, names)
    if v is None and args:
        v = " ".join(str(a) for a in args)
    return "" if v is None else str(v)


# --------------------------------------------------------------------------- the server

class Pipe:
    def __init__(self, server, pipeline_id):
        self.server = server
        self.id = pipeline_id
        self.ps = psrpcore.ServerPipeline(server.pool, pipeline_id)
        self.thread = None
        self.stopped = False
        self.no_input = True
        self.inputs = []
        self.input_done = False
        self.host_responses = {}

    # All of these run in the worker thread with server.lock held.
    def check(self):
        if self.stopped or self.ps.state != PSInvocationState.Running:
            raise PipelineStopped()

    def emit(self, func, *args, **kwargs):
        self.check()
        func(*args, **kwargs)
        self.server.flush()

    def input_iter(self):
        if self.no_input:
            return
        idx = 0
        cond = self.server.cond
        while True:
            cond.wait_for(lambda: self.stopped or idx < len(self.inputs) or self.input_done)
            self.check()
            if idx < len(self.inputs):
                item = self.inputs[idx]
                self.inputs[idx] = None
                idx += 1
                yield item
            elif self.input_done:
                return

    def sleep(self, seconds):
        self.server.cond.wait_for(lambda: self.stopped, timeout=max(0.0, seconds))
        self.check()

    def host_call(self, method, params=None):
        self.check()
        ci = self.ps.host_call(method, params or [])
        self.server.flush()
        if ci == -100:
            return None
        ok = self.server.cond.wait_for(lambda: self.stopped or ci in self.host_responses, timeout=HOST_TIMEOUT)
        self.check()
        if not ok:
            raise Terminating(make_error_record("host call %s timed out" % method.name, "HostCallTimeout"))
        event = self.host_responses.pop(ci)
        if event.error is not None:
            raise Terminating(event.error)
        return event.result


class Server:
    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.out_lock = threading.Lock()
        self.pool = psrpcore.ServerRunspacePool()
        self.pipes = {}
        self.closed = set()
        self.pool_closed = False
        self.out = sys.stdout.buffer

    # ---- output
    def write_line(self, line):
        if DEBUG:
            log("out %s", line[:300].decode("ascii", "replace"))
        try:
            with self.out_lock:
                self.out.write(line + b"\n")
                self.out.flush()
        except (BrokenPipeError, OSError) as e:
            log("stdout closed (%s); exiting", e)
            os._exit(EXIT_CODE_SESSION_END)

    def ack(self, tag, guid):
        self.write_line(("<%s PSGuid='%s' />" % (tag, guid)).encode())

    def _data_line(self, guid, data):
        return b"<Data Stream='Default' PSGuid='%s'>%s</Data>" % (str(guid).encode(), base64.b64encode(data))

    def flush(self):
        """Write everything psrpcore has queued (caller holds self.lock)."""
        while True:
            payload = self.pool.data_to_send(FRAGMENT_SIZE)
            if payload is None:
                return
            guid = payload.pipeline_id or EMPTY
            data = payload.data
            if COALESCE:
                self.write_line(self._data_line(guid, data))
                continue
            off = 0
            while off < len(data):
                if len(data) - off < 21:
                    log("internal: short fragment header")
                    self.write_line(self._data_line(guid, data[off:]))
                    break
                length = struct.unpack(">I", data[off + 17:off + 21])[0]
                self.write_line(self._data_line(guid, data[off:off + 21 + length]))
                off += 21 + length

    # ---- input
    def run(self):
        stdin = sys.stdin.buffer
        first = True
        while True:
            raw = stdin.readline()
            if not raw:
                self.end_session("end of input on stdin")
            if first and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            first = False
            line = raw.strip()
            if not line:
                self.end_session("empty line on stdin")
            if DEBUG:
                log("in  %s", line[:300].decode("ascii", "replace"))
            try:
                self.handle(line)
            except SystemExit:
                raise
            except Exception:
                log("error handling %r:\n%s", line[:200], traceback.format_exc())

    def end_session(self, why):
        log("session ended: %s; exiting with %d", why, EXIT_CODE_SESSION_END)
        try:
            with self.out_lock:
                self.out.flush()
        except Exception:
            pass
        os._exit(EXIT_CODE_SESSION_END)

    def handle(self, line):
        try:
            el = ET.fromstring(line)
        except ET.ParseError as e:
            log("ignoring malformed packet (%s): %r", e, line[:200])
            return
        tag = el.tag
        try:
            guid = uuid.UUID(el.get("PSGuid", ""))
        except ValueError:
            log("ignoring packet with a bad PSGuid: %r", line[:200])
            return
        pid = None if guid == EMPTY else guid

        with self.lock:
            try:
                if tag == "Data":
                    stream = el.get("Stream", "Default")
                    try:
                        data = base64.b64decode(el.text or "", validate=False)
                    except Exception:
                        log("bad base64 in Data for %s", guid)
                        data = b""
                    try:
                        self.on_data(pid, data, stream)
                    finally:
                        self.flush()
                        self.ack("DataAck", guid)
                elif tag == "Command":
                    self.on_command(pid)
                    self.ack("CommandAck", guid)
                elif tag == "Signal":
                    try:
                        if pid is None:
                            log("Signal for the session (PSGuid 0) is an error in pwsh; ignored")
                        else:
                            self.stop_pipe(pid)
                        self.flush()
                    finally:
                        self.ack("SignalAck", guid)
                elif tag == "Close":
                    try:
                        if pid is None:
                            self.close_pool()
                        else:
                            self.close_pipe(pid)
                        self.flush()
                    finally:
                        self.ack("CloseAck", guid)
                elif tag in ("DataAck", "CommandAck", "SignalAck", "CloseAck"):
                    log("unexpected %s from the client (pwsh treats this as a protocol error); ignored", tag)
                else:
                    log("unknown packet <%s>; ignored", tag)
            finally:
                self.cond.notify_all()

    def on_command(self, pid):
        if pid is None:
            log("Command for PSGuid 0 ignored")
            return
        if pid in self.pipes:
            log("Command for existing pipeline %s", pid)
            return
        self.closed.discard(pid)
        self.pipes[pid] = Pipe(self, pid)

    def on_data(self, pid, data, stream):
        if pid is not None and pid not in self.pipes:
            if pid in self.closed:
                log("Data for closed pipeline %s dropped", pid)
                return
            # Be lenient: a CREATE_PIPELINE without a preceding <Command>.
            log("Data for unknown pipeline %s; creating it", pid)
            self.pipes[pid] = Pipe(self, pid)
        self.pool.receive_data(psrpcore.PSRPPayload(data, psrpcore.StreamType.default, pid))
        while True:
            try:
                event = self.pool.next_event()
            except Exception:
                log("PSRP error:\n%s", traceback.format_exc())
                # Drop whatever could not be parsed so later packets still work.
                self.pool._receive_buffer = bytearray()
                self.pool._incoming_fragments = {}
                continue
            if event is None:
                break
            try:
                self.on_event(event)
            except Exception:
                log("error processing %s:\n%s", type(event).__name__, traceback.format_exc())

    def on_event(self, event):
        if DEBUG:
            log("event %s", type(event).__name__)
        if isinstance(event, (psrpcore.SetMaxRunspacesEvent, psrpcore.SetMinRunspacesEvent,
                              psrpcore.ResetRunspaceStateEvent)):
            self.pool.runspace_availability_response(event.ci, True)
        elif isinstance(event, psrpcore.GetAvailableRunspacesEvent):
            busy = sum(1 for p in self.pipes.values() if p.ps.state == PSInvocationState.Running)
            self.pool.runspace_availability_response(event.ci, max(0, self.pool.max_runspaces - busy))
        elif isinstance(event, psrpcore.CreatePipelineEvent):
            pipe = self.pipes[event.pipeline_id]
            pipe.no_input = bool(event.pipeline.no_input)
            pipe.thread = threading.Thread(target=self.run_pipe, args=(pipe, event.pipeline),
                                           name="pipe-%s" % pipe.id, daemon=True)
            # Windows/pwsh send no PIPELINE_STATE Running; only the final state.
            pipe.ps._change_state(PSInvocationState.Running, emit=False)
            pipe.thread.start()
        elif isinstance(event, psrpcore.GetCommandMetadataEvent):
            pipe = self.pipes[event.pipeline_id]
            pipe.ps._change_state(PSInvocationState.Running, emit=False)
            pipe.ps._change_state(PSInvocationState.Failed, make_error_record(
                "GetCommandMetadata is not supported by this test runspace", "NotSupported"))
        elif isinstance(event, psrpcore.PipelineInputEvent):
            pipe = self.pipes.get(event.pipeline_id)
            if pipe is not None:
                pipe.inputs.append(event.data)
        elif isinstance(event, psrpcore.EndOfPipelineInputEvent):
            pipe = self.pipes.get(event.pipeline_id)
            if pipe is not None:
                pipe.input_done = True
        elif isinstance(event, psrpcore.PipelineHostResponseEvent):
            pipe = self.pipes.get(event.pipeline_id)
            if pipe is not None:
                pipe.host_responses[event.ci] = event
        elif isinstance(event, psrpcore.ConnectRunspacePoolEvent):
            log("client (re)connected to runspace pool %s", self.pool.runspace_pool_id)
        elif isinstance(event, psrpcore.InitRunspacePoolEvent):
            log("runspace pool %s opened (min %d, max %d)", self.pool.runspace_pool_id,
                self.pool.min_runspaces, self.pool.max_runspaces)

    # ---- stop / close
    def stop_pipe(self, pid):
        pipe = self.pipes.get(pid)
        if pipe is None:
            return
        pipe.stopped = True
        if pipe.ps.state == PSInvocationState.Running:
            pipe.ps.stop()

    def close_pipe(self, pid):
        self.stop_pipe(pid)
        pipe = self.pipes.pop(pid, None)
        self.closed.add(pid)
        if pipe is not None and pipe.ps.state != PSInvocationState.Running:
            try:
                pipe.ps.close()
            except Exception:
                self.pool.pipeline_table.pop(pid, None)

    def close_pool(self):
        for pid in list(self.pipes):
            self.close_pipe(pid)
        self.pool_closed = True
        # No RUNSPACEPOOL_STATE Closed is sent (the client closed the pool); like pwsh the
        # process then waits for EOF on stdin and exits with 4000.
        log("runspace pool closed")

    # ---- pipeline worker
    def run_pipe(self, pipe, pipeline):
        with self.lock:
            try:
                statements = pipeline_to_statements(pipeline)
                if DEBUG:
                    log("pipeline %s: %r", pipe.id, statements)
                for stmt in statements:
                    self.run_statement(pipe, stmt)
                pipe.check()
                pipe.ps.complete()
            except PipelineStopped:
                pass
            except Terminating as t:
                if not pipe.stopped and pipe.ps.state == PSInvocationState.Running:
                    pipe.ps._change_state(PSInvocationState.Failed, t.record)
            except Exception as e:
                log("pipeline %s crashed:\n%s", pipe.id, traceback.format_exc())
                if not pipe.stopped and pipe.ps.state == PSInvocationState.Running:
                    pipe.ps._change_state(PSInvocationState.Failed,
                                          make_error_record("internal error: %s" % e, "InternalError"))
            finally:
                try:
                    self.flush()
                except Exception:
                    log("flush failed:\n%s", traceback.format_exc())
                self.cond.notify_all()

    def run_statement(self, pipe, stmt):
        # Resolve every command first: an unknown one fails the statement before anything runs.
        funcs = []
        for name, args, params in stmt:
            func = COMMANDS.get(str(name).lower())
            if func is None:
                raise Terminating(command_not_found(str(name)))
            funcs.append((func, args, params))
        stream = pipe.input_iter()
        for func, args, params in funcs:
            stream = func(pipe, args, params, stream)
        for obj in stream:
            pipe.emit(pipe.ps.write_output, obj)


# --------------------------------------------------------------------------- commands
# Each is a generator: (pipe, args, params, input iterator) -> output objects.
# They run with the server lock held; pipe.emit/sleep/host_call release it as needed.

def c_write_output(pipe, args, params, inp):
    objs = params.get("inputobject", None)
    if objs is None and args:
        objs = args
    if objs is None:
        yield from inp
        return
    for o in _as_list(objs):
        yield o


def c_input(pipe, args, params, inp):
    yield from inp


def _drain(inp):
    for _ in inp:
        pass
    return
    yield  # pragma: no cover


def c_write_error(pipe, args, params, inp):
    msg = _message(params, args)
    exc = NETException(Message=msg, HResult=-2146233087)
    exc.PSObject.type_names = ["Microsoft.PowerShell.Commands.WriteErrorException",
                               "System.SystemException"] + list(exc.PSTypeNames)
    pipe.emit(pipe.ps.write_error, exc,
              ErrorCategoryInfo(Category=ErrorCategory.NotSpecified, Reason="WriteErrorException"),
              None, "Microsoft.PowerShell.Commands.WriteErrorException")
    yield from _drain(inp)


def c_write_warning(pipe, args, params, inp):
    pipe.emit(pipe.ps.write_warning, _message(params, args))
    yield from _drain(inp)


def c_write_verbose(pipe, args, params, inp):
    pipe.emit(pipe.ps.write_verbose, _message(params, args))
    yield from _drain(inp)


def c_write_debug(pipe, args, params, inp):
    pipe.emit(pipe.ps.write_debug, _message(params, args))
    yield from _drain(inp)


def c_write_information(pipe, args, params, inp):
    data = _param(params, args, ("messagedata",), 0, "")
    tags = params.get("tags")
    tags = [str(t) for t in _as_list(tags)] if tags not in (None, True) else []
    pipe.emit(pipe.ps.write_information, data, "Write-Information", tags=tags)
    yield from _drain(inp)


def c_write_progress(pipe, args, params, inp):
    activity = str(_param(params, args, ("activity",), 0, "Activity"))
    status = str(_param(params, args, ("status",), 1, "Processing"))
    activity_id = int(_param(params, args, ("id",), None, 0))
    percent = int(_param(params, args, ("percentcomplete",), None, -1))
    current = _param(params, args, ("currentoperation",), None, None)
    completed = bool(params.get("completed", False))
    pipe.emit(pipe.ps.write_progress, activity, activity_id, status,
              current_operation=None if current is None else str(current),
              percent_complete=percent,
              record_type=ProgressRecordType.Completed if completed else ProgressRecordType.Processing)
    yield from _drain(inp)


def c_write_host(pipe, args, params, inp):
    msg = _message(params, args, ("object", "message"))
    pipe.host_call(HostMethodIdentifier.WriteLine2, [msg])
    yield from _drain(inp)


def c_read_host(pipe, args, params, inp):
    result = pipe.host_call(HostMethodIdentifier.ReadLine)
    yield "" if result is None else str(result)


def c_start_sleep(pipe, args, params, inp):
    if "milliseconds" in params or "m" in params:
        secs = float(params.get("milliseconds", params.get("m"))) / 1000.0
    else:
        secs = float(_param(params, args, ("seconds", "s"), 0, 1))
    pipe.sleep(secs)
    return
    yield  # pragma: no cover


def c_get_uid(pipe, args, params, inp):
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    yield name
    yield uid


def c_get_pid(pipe, args, params, inp):
    yield os.getpid()


def c_get_location(pipe, args, params, inp):
    yield os.getcwd()


def c_get_env(pipe, args, params, inp):
    yield os.environ.get(str(_param(params, args, ("name",), 0, "")))


def c_write_blob(pipe, args, params, inp):
    size = int(_param(params, args, ("size",), 0, 1024))
    count = int(_param(params, args, ("count",), 1, 1))
    for _ in range(count):
        yield "x" * size


def c_throw(pipe, args, params, inp):
    msg = _message(params, args) or "ScriptHalted"
    raise Terminating(make_error_record(msg, msg, ErrorCategory.OperationStopped, "RuntimeException"))
    yield  # pragma: no cover


def c_exit_process(pipe, args, params, inp):
    code = int(_param(params, args, ("code", "exitcode"), 0, 1))
    pipe.server.flush()
    log("Exit-Process %d", code)
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)
    yield  # pragma: no cover


COMMANDS = {
    "write-output": c_write_output,
    "echo": c_write_output,
    "write": c_write_output,
    "$input": c_input,
    "write-error": c_write_error,
    "write-warning": c_write_warning,
    "write-verbose": c_write_verbose,
    "write-debug": c_write_debug,
    "write-information": c_write_information,
    "write-progress": c_write_progress,
    "write-host": c_write_host,
    "read-host": c_read_host,
    "start-sleep": c_start_sleep,
    "sleep": c_start_sleep,
    "get-uid": c_get_uid,
    "get-pid": c_get_pid,
    "get-location": c_get_location,
    "pwd": c_get_location,
    "get-env": c_get_env,
    "write-blob": c_write_blob,
    "throw": c_throw,
    "exit-process": c_exit_process,
}


def main():
    log("started (uid %d, pid %d)", os.getuid(), os.getpid())
    Server().run()


if __name__ == "__main__":
    main()
