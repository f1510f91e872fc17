"""A stateful operation-sequence fuzzer of the WS-Man shell handlers (issue 10).

Each seed drives a deterministic (per seed) random sequence of WinRS and PSRP
operations against a running daemon: Create, Command, Send, Receive, Signal,
Delete, Get, Enumerate, Disconnect, Reconnect, Connect, over several
keep-alive TLS connections for two users, with ids taken from a model of what
each user created (plus other users' ids, random GUIDs, absent ids and
client-chosen ShellIds/CommandIds).  Requests of one batch are written on
different connections before any reply is read, so Signal/Delete race a
pending Command spawn or Create session open, and commands that kill
themselves make processes exit at random moments.

After every batch the worker must be the same process; every few batches an
authenticated config Get must succeed; after every seed the daemon log must
hold no ASan/UBSan report.  Outcomes are (operation, HTTP status, WSManFault
code) tuples; a seed that reaches a new one is saved into the corpus.

Used by tests/hostile/test_seqfuzz.py (pytest) and `make fuzz-seq`.

Environment:
  WINRMD_SEQFUZZ_SECONDS   budget of new seeds after the corpus (default 60)
  WINRMD_SEQFUZZ_SEED      first new seed (default: from the clock)
  WINRMD_SEQFUZZ_AVOID     comma list of known crashers not to generate:
                           get-unknown-shell, race-pending-spawn
  WINRMD_SEQFUZZ_CORPUS    corpus directory (default tests/hostile/seqfuzz-corpus)
  WINRMD_SEQFUZZ_SAVE      1: write seeds with new outcomes into the corpus
"""
import base64
import http.client
import os
import random
import re
import socket
import ssl
import struct
import time
import uuid
import xml.etree.ElementTree as ET

from wsman_util import (NS, RESOURCE_CMD_SHELL, SOAP_CONTENT_TYPE, basic_header,
                        config_get_envelope, envelope)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.environ.get("WINRMD_SEQFUZZ_CORPUS") or os.path.join(HERE, "seqfuzz-corpus")

RES_SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
RES_PSH = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
A_SHELL = RES_SHELL + "/"
A_COMMAND, A_SEND, A_RECEIVE, A_SIGNAL = (A_SHELL + x for x in ("Command", "Send", "Receive", "Signal"))
A_DISCONNECT, A_RECONNECT, A_CONNECT = (A_SHELL + x for x in ("Disconnect", "Reconnect", "Connect"))
A_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
A_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
A_GET = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
A_ENUMERATE = "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate"

SIGNALS = [A_SHELL + "signal/terminate", A_SHELL + "signal/ctrl_c", A_SHELL + "signal/ctrl_break",
           "http://example.invalid/signal/bogus", ""]
COMMANDS = ["true", "echo x", "cat", "sleep 0.2", "exit 3", "sleep 0.$RANDOM; kill -9 $$",
            "head -c 100000 /dev/zero", "cat; exit 7", "echo err >&2; false"]

HTTP_TIMEOUT = 60.0
KNOWN = ("get-unknown-shell", "race-pending-spawn")


# ---------------------------------------------------------------- PSRP creationXml
SESSION_CAPABILITY = (
    '<Obj RefId="0"><MS><Version N="protocolversion">2.3</Version><Version N="PSVersion">2.0</Version>'
    '<Version N="SerializationVersion">1.1.0.1</Version></MS></Obj>')
INIT_RUNSPACEPOOL = (
    '<Obj RefId="0"><MS><I32 N="MinRunspaces">1</I32><I32 N="MaxRunspaces">1</I32>'
    '<Obj N="PSThreadOptions" RefId="1"><TN RefId="0"><T>System.Management.Automation.Runspaces.PSThreadOptions</T>'
    '<T>System.Enum</T><T>System.ValueType</T><T>System.Object</T></TN><ToString>Default</ToString><I32>0</I32></Obj>'
    '<Obj N="ApartmentState" RefId="2"><TN RefId="1"><T>System.Threading.ApartmentState</T><T>System.Enum</T>'
    '<T>System.ValueType</T><T>System.Object</T></TN><ToString>Unknown</ToString><I32>2</I32></Obj>'
    '<Obj N="HostInfo" RefId="3"><MS><B N="_isHostNull">true</B><B N="_isHostUINull">true</B>'
    '<B N="_isHostRawUINull">true</B><B N="_useRunspaceHost">true</B></MS></Obj>'
    '<Nil N="ApplicationArguments" /></MS></Obj>')


def psrp_message(mtype, rpid, xml):
    return (struct.pack("<II", 2, mtype) + rpid.bytes_le + uuid.UUID(int=0).bytes_le
            + xml.encode("utf-8"))


def psrp_fragment(obj_id, msg, frag_id=0, flags=3):
    return struct.pack(">QQBI", obj_id, frag_id, flags, len(msg)) + msg


def creation_xml(rng):
    """base64 of SESSION_CAPABILITY + INIT_RUNSPACEPOOL fragments, sometimes damaged."""
    rpid = uuid.UUID(int=rng.getrandbits(128))
    blob = (psrp_fragment(1, psrp_message(0x00010002, rpid, SESSION_CAPABILITY))
            + psrp_fragment(2, psrp_message(0x00010004, rpid, INIT_RUNSPACEPOOL)))
    r = rng.random()
    if r < 0.55:
        pass
    elif r < 0.75:          # bytes flipped inside the XML
        b = bytearray(blob)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(60, len(b))] = rng.randrange(256)
        blob = bytes(b)
    elif r < 0.85:          # cut short, or only the first message
        blob = blob[:rng.randrange(1, len(blob))]
    elif r < 0.92:          # random bytes
        blob = rng.randbytes(rng.randint(1, 300))
    else:
        return rng.choice(["!!notbase64!!", ""])
    return base64.b64encode(blob).decode()


def avoid_set():
    v = os.environ.get("WINRMD_SEQFUZZ_AVOID", "")
    return {x.strip() for x in v.split(",") if x.strip()}


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class FuzzFailure(AssertionError):
    pass


class Conn:
    """One keep-alive HTTPS connection of one user; at most one request in flight."""

    def __init__(self, d, user, idx):
        self.d, self.user, self.idx = d, user, idx
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.c = None
        self.pending = None  # (op record, sent at)

    def _open(self):
        self.c = http.client.HTTPSConnection("127.0.0.1", self.d.https_port, context=self.ctx,
                                             timeout=HTTP_TIMEOUT)

    def send(self, xml, rec):
        assert self.pending is None
        if self.c is None:
            self._open()
        body = xml.encode("utf-8")
        h = {"Content-Type": SOAP_CONTENT_TYPE,
             "Authorization": basic_header(self.user.name, self.user.password)}
        try:
            self.c.request("POST", "/wsman", body=body, headers=h)
        except (OSError, http.client.HTTPException):
            self.close()
            self._open()
            self.c.request("POST", "/wsman", body=body, headers=h)
        self.pending = (rec, time.monotonic())

    def collect(self):
        """Read the reply of the pending request: (status, text)."""
        rec, t0 = self.pending
        self.pending = None
        try:
            r = self.c.getresponse()
            text = r.read().decode("utf-8", "replace")
            status = r.status
            if r.will_close:
                self.close()
        except socket.timeout:
            self.close()
            raise FuzzFailure("request %s hung for more than %ss" % (rec["op"], HTTP_TIMEOUT))
        except (OSError, http.client.HTTPException) as e:
            self.close()
            if time.monotonic() - t0 >= HTTP_TIMEOUT - 1:
                raise FuzzFailure("request %s hung for more than %ss" % (rec["op"], HTTP_TIMEOUT))
            status, text = 0, "closed: %s" % type(e).__name__
        rec["elapsed"] = time.monotonic() - t0
        return rec, status, text

    def close(self):
        if self.c is not None:
            try:
                self.c.close()
            except OSError:
                pass
        self.c = None


def parse_reply(status, text):
    """(fault code or None, root or None)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None, None
    wf = root.find("s:Body/s:Fault/s:Detail/f:WSManFault", NS)
    code = None
    if wf is not None:
        try:
            code = int(wf.get("Code") or 0)
        except ValueError:
            code = -1
    return code, root


class Shell:
    def __init__(self, sid, kind, owner):
        self.sid, self.kind, self.owner = sid, kind, owner
        self.cmds = []


class Run:
    """One seed's sequence of operations against one daemon."""

    def __init__(self, d, users, seed, n_ops=40, avoid=frozenset(), conns_per_user=2, log=None):
        self.d, self.users, self.seed, self.n_ops = d, users, seed, n_ops
        self.avoid = set(avoid)
        self.rng = random.Random(seed)
        self.conns = [Conn(d, users[i % len(users)], i) for i in range(conns_per_user * len(users))]
        self.shells = {u.name: [] for u in users}
        self.gone = []          # deleted/ended ids (absent ids)
        self.oplog = []         # text lines
        self.outcomes = set()
        self.ops_done = 0
        self.log = log

    # ----------------------------------------------------------- id choice
    def pick_shell(self, user, kind=None, for_get=None):
        r = self.rng.random()
        own = [s for s in self.shells[user.name] if kind is None or s.kind == kind]
        other = [s for n, l in self.shells.items() if n != user.name for s in l]
        if for_get:
            # only a WinRS shell of this user that no request of this batch may have deleted
            # (a PSRP shell disconnected with a short IdleTimeOut may expire at any moment)
            live = [s for s in own if s.kind == "cmd" and s.sid not in for_get]
            return self.rng.choice(live).sid if live else None
        if r < 0.8 and own:
            return self.rng.choice(own).sid
        if r < 0.87 and other:
            return self.rng.choice(other).sid
        if r < 0.92 and self.gone:
            return self.rng.choice(self.gone)
        if r < 0.95:
            return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()
        return self.rng.choice(["", "not-a-guid", "00000000-0000-0000-0000-000000000000", None])

    def shell_obj(self, sid):
        for l in self.shells.values():
            for s in l:
                if s.sid == sid:
                    return s
        return None

    def pick_cmd(self, sid):
        s = self.shell_obj(sid)
        r = self.rng.random()
        if s and s.cmds and r < 0.85:
            return self.rng.choice(s.cmds)
        if r < 0.9:
            return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()
        return self.rng.choice(["", "x" * 40, "00000000-0000-0000-0000-000000000000"])

    def rguid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128))).upper()

    # ----------------------------------------------------------- operations
    def gen_op(self, user, batch_state):
        """(name, xml, info dict) of one random operation for `user`."""
        rng = self.rng
        op = rng.choices(
            ["create", "command", "send", "receive", "signal", "delete", "get", "enumerate",
             "disconnect", "reconnect", "connect", "ps_create", "ps_receive", "ps_signal",
             "ps_delete", "ps_command", "ps_send"],
            weights=[10, 14, 8, 14, 8, 6, 4, 3, 3, 2, 2, 3, 4, 2, 2, 2, 2])[0]
        own = self.shells[user.name]
        if not own and rng.random() < 0.5:
            op = "create"
        elif op.startswith("ps_") and op != "ps_create" and not any(s.kind == "ps" for s in own) \
                and rng.random() < 0.5:
            op = "ps_create"
        info = {"op": op}
        res = RESOURCE_CMD_SHELL
        sel = None
        opts = None
        timeout = rng.choice(["PT5S", "PT2S", "PT20S"])
        body = ""
        if op in ("ps_create", "ps_receive", "ps_signal", "ps_delete", "ps_command", "ps_send"):
            res = RES_PSH
        if op == "create":
            body, opts, sid = self.create_body(), {"WINRS_NOPROFILE": "FALSE", "WINRS_CODEPAGE": "437"}, None
            action = A_CREATE
            if rng.random() < 0.2:
                opts["WINRS_CODEPAGE"] = rng.choice(["65001", "abc", ""])
        elif op == "ps_create":
            action = A_CREATE
            opts = {"protocolversion": rng.choice(["2.3"] * 8 + ["1.0", ""])}
            timeout = "PT10S"
            cx = creation_xml(rng)
            attr = ' ShellId="%s"' % self.rguid() if rng.random() < 0.3 else ""
            body = ('<rsp:Shell xmlns:rsp="%s"%s><rsp:InputStreams>stdin pr</rsp:InputStreams>'
                    '<rsp:OutputStreams>stdout</rsp:OutputStreams>'
                    '<creationXml xmlns="http://schemas.microsoft.com/powershell">%s</creationXml>'
                    '</rsp:Shell>' % (RES_SHELL, attr, cx))
        elif op == "enumerate":
            action, res = A_ENUMERATE, rng.choice([RES_SHELL, RES_SHELL + "/Command", RES_PSH])
            body = '<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"/>'
        elif op == "get":
            action = A_GET
            res = rng.choice([RES_SHELL, RES_SHELL, RESOURCE_CMD_SHELL, RES_PSH])
            avoiding = res == RES_SHELL and "get-unknown-shell" in self.avoid
            if rng.random() < 0.7 or avoiding:
                sid = self.pick_shell(user, for_get=batch_state.setdefault("deleted", {""}) if avoiding else None)
                if sid is not None:
                    sel = {"ShellId": sid}
            if avoiding and sel is None:
                info["skip"] = True
        else:
            kind = "ps" if res == RES_PSH else ("cmd" if rng.random() < 0.9 else None)
            sid = self.pick_shell(user, kind=kind)
            sel = {"ShellId": sid} if sid is not None else None
            info["sid"] = sid
            if op in ("command", "ps_command"):
                action = A_COMMAND
                cid = ' CommandId="%s"' % self.rguid() if rng.random() < 0.3 else ""
                cmd = rng.choice(COMMANDS)
                info["cmdline"] = cmd
                if op == "ps_command":
                    body = ('<rsp:CommandLine%s><rsp:Command>Invoke-Expression</rsp:Command>'
                            '<rsp:Arguments>%s</rsp:Arguments></rsp:CommandLine>'
                            % (cid, base64.b64encode(rng.randbytes(40)).decode()))
                else:
                    body = ('<rsp:CommandLine%s><rsp:Command>%s</rsp:Command></rsp:CommandLine>'
                            % (cid, esc(cmd)))
                opts = {"WINRS_SKIP_CMD_SHELL": "FALSE"}
                batch_state.setdefault("spawn", set()).add(sid)
            elif op in ("send", "ps_send"):
                action = A_SEND
                data = base64.b64encode(rng.choice([b"hello\n", b"", rng.randbytes(50)])).decode()
                end = rng.choice(["true", "false", "false"])
                body = ('<rsp:Send><rsp:Stream Name="%s" CommandId="%s" End="%s">%s</rsp:Stream></rsp:Send>'
                        % (rng.choice(["stdin"] * 6 + ["pr", "bogus"]), self.pick_cmd(sid), end, data))
            elif op in ("receive", "ps_receive"):
                action = A_RECEIVE
                timeout = rng.choice(["PT0.5S", "PT0.5S", "PT1S", "PT0.1S"])
                cid = self.pick_cmd(sid)
                cattr = ' CommandId="%s"' % cid if rng.random() < 0.85 else ""
                body = ('<rsp:Receive><rsp:DesiredStream%s>stdout stderr</rsp:DesiredStream></rsp:Receive>'
                        % cattr)
            elif op in ("signal", "ps_signal"):
                action = A_SIGNAL
                code = rng.choice(SIGNALS)
                cid = self.pick_cmd(sid) if rng.random() < 0.85 else None
                cattr = ' CommandId="%s"' % cid if cid is not None else ""
                body = '<rsp:Signal%s><rsp:Code>%s</rsp:Code></rsp:Signal>' % (cattr, code)
                info["terminate"] = code.endswith("terminate")
            elif op in ("delete", "ps_delete"):
                action = A_DELETE
                batch_state.setdefault("deleted", {""}).add(sid)
                info["terminate"] = True
            elif op == "disconnect":
                action = A_DISCONNECT
                res = rng.choice([RESOURCE_CMD_SHELL, RES_PSH])
                body = ('<rsp:Disconnect><rsp:IdleTimeOut>PT%dS</rsp:IdleTimeOut></rsp:Disconnect>'
                        % rng.choice([1, 60, 0]))
            elif op == "reconnect":
                action, res = A_RECONNECT, rng.choice([RESOURCE_CMD_SHELL, RES_PSH])
                body = "<rsp:Reconnect/>"
            else:  # connect
                action, res = A_CONNECT, rng.choice([RESOURCE_CMD_SHELL, RES_PSH])
                cattr = ' CommandId="%s"' % self.pick_cmd(sid) if rng.random() < 0.3 else ""
                body = ('<rsp:Connect%s><connectXml xmlns="http://schemas.microsoft.com/powershell">%s'
                        '</connectXml></rsp:Connect>'
                        % (cattr, base64.b64encode(rng.randbytes(rng.randint(0, 80))).decode()))
                opts = {"protocolversion": "2.3"}
            # requests of one batch are handled in whatever order their logins finish, so a
            # Delete/terminate written before a Command of the same shell races its spawn too
            if "race-pending-spawn" in self.avoid and (
                    (info.get("terminate") and sid in batch_state.get("spawn", ()))
                    or (action == A_COMMAND and sid in batch_state.get("term", ()))):
                info["flush_first"] = True
            if info.get("terminate"):
                batch_state.setdefault("term", set()).add(sid)
        xml, _ = envelope(action, res, body, selectors=sel, options=opts, operation_timeout=timeout)
        info["line"] = "%s user=%s res=%s sel=%s body=%s" % (
            op, user.name[:6], res.rsplit("/", 1)[-1], sel, body[:160])
        return op, xml, info

    def create_body(self):
        rng = self.rng
        parts = ['<rsp:Shell%s>' % (' ShellId="%s"' % self.rguid() if rng.random() < 0.3 else "")]
        if rng.random() < 0.3:
            parts.append("<rsp:WorkingDirectory>%s</rsp:WorkingDirectory>"
                         % rng.choice(["/tmp", "/nonexistent", "", "relative/dir", "/"]))
        if rng.random() < 0.3:
            parts.append("<rsp:Environment>%s</rsp:Environment>" % "".join(
                '<rsp:Variable Name="%s">%s</rsp:Variable>' % (
                    rng.choice(["FOO", "PATH", "", "A=B", "LD_PRELOAD", "X" * 300]), esc(rng.choice(["1", "", "v" * 500])))
                for _ in range(rng.randint(1, 4))))
        parts.append("<rsp:InputStreams>stdin</rsp:InputStreams>"
                     "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>")
        return "".join(parts)

    # ----------------------------------------------------------- model update
    def absorb(self, rec, status, text):
        code, root = parse_reply(status, text)
        op = rec["op"]
        self.outcomes.add((op, status, code))
        rec["result"] = "%s/%s" % (status, code)
        if "logi" in rec:
            self.oplog[rec["logi"]] += "  -> %s %s" % (status, code)
        if root is None or status != 200:
            return
        user = rec["user"]
        if op in ("create", "ps_create"):
            sel = root.find(".//w:SelectorSet/w:Selector[@Name='ShellId']", NS)
            if sel is not None and sel.text:
                self.shells[user.name].append(Shell(sel.text, "ps" if op == "ps_create" else "cmd",
                                                    user.name))
        elif op in ("command", "ps_command"):
            el = root.find("s:Body/rsp:CommandResponse/rsp:CommandId", NS)
            s = self.shell_obj(rec.get("sid"))
            if el is not None and s is not None:
                s.cmds.append(el.text)
        elif op in ("delete", "ps_delete"):
            for n, l in self.shells.items():
                for s in list(l):
                    if s.sid == rec.get("sid"):
                        l.remove(s)
                        self.gone.append(s.sid)

    # ----------------------------------------------------------- execution
    def check_alive(self, worker, config_get=False):
        d = self.d
        if d.proc.poll() is not None:
            raise FuzzFailure("winrmd exited with %s" % d.proc.returncode)
        now = d.worker_pid(timeout=5)
        if now != worker:
            raise FuzzFailure("the worker changed from %s to %s (crashed?)" % (worker, now))
        if config_get:
            c = Conn(d, self.users[0], -1)
            xml, _ = config_get_envelope()
            c.send(xml, {"op": "config-get"})
            _, status, text = c.collect()
            c.close()
            if status != 200:
                raise FuzzFailure("authenticated config Get answered %s: %s" % (status, text[:300]))

    def flush(self):
        for c in self.conns:
            if c.pending is not None:
                rec, status, text = c.collect()
                self.absorb(rec, status, text)

    def run(self, worker, log_start):
        rng = self.rng
        batch = 0
        try:
            while self.ops_done < self.n_ops:
                state = {}
                nb = rng.choice([1, 1, 2, 3, 4])
                for _ in range(nb):
                    if self.ops_done >= self.n_ops:
                        break
                    ci = rng.randrange(len(self.conns))
                    conn = self.conns[ci]
                    op, xml, info = self.gen_op(conn.user, state)
                    self.ops_done += 1
                    if info.get("skip"):
                        continue
                    if info.get("flush_first"):
                        self.flush()
                        state.clear()
                        if op in ("command", "ps_command"):
                            state["spawn"] = {info.get("sid")}
                        if info.get("terminate"):
                            state["term"] = {info.get("sid")}
                    if conn.pending is not None:
                        # a Receive left unread for a while: sometimes wait, then read it
                        rec, status, text = conn.collect()
                        self.absorb(rec, status, text)
                    rec = dict(info, user=conn.user, conn=ci, logi=len(self.oplog))
                    self.oplog.append("%d c%d %s" % (self.ops_done, ci, info["line"]))
                    conn.send(xml, rec)
                    if rng.random() < 0.15:
                        time.sleep(rng.choice([0.01, 0.05, 0.2]))
                self.flush()
                batch += 1
                self.check_alive(worker, config_get=(batch % 8 == 0))
            self.cleanup()
            self.check_alive(worker, config_get=True)
            self.check_log(log_start)
        finally:
            for c in self.conns:
                c.close()

    def cleanup(self):
        """Delete every shell this seed made (the quotas stay free for the next seed)."""
        for user in self.users:
            for s in list(self.shells[user.name]):
                c = self.conns[self.users.index(user)]
                res = RES_PSH if s.kind == "ps" else RESOURCE_CMD_SHELL
                xml, _ = envelope(A_DELETE, res, "", selectors={"ShellId": s.sid})
                c.send(xml, {"op": "cleanup-delete", "user": user})
                c.collect()
            self.shells[user.name] = []

    def check_log(self, start):
        text = self.d.log()[start:]
        m = re.search(r"(ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|"
                      r"AddressSanitizer:DEADLYSIGNAL)", text)
        if m:
            i = m.start()
            raise FuzzFailure("sanitizer report in the daemon log:\n%s" % text[max(0, i - 200):i + 3000])


def log_len(d):
    return len(d.log())


def run_seed(d, users, seed, worker, n_ops=40, avoid=frozenset()):
    """Run one seed; returns the Run (with .outcomes, .oplog).  Raises FuzzFailure."""
    r = Run(d, users, seed, n_ops=n_ops, avoid=avoid)
    start = log_len(d)
    try:
        r.run(worker, start)
    except FuzzFailure as e:
        e.run = r
        # a crash may surface as a closed connection first; look in the log too
        raise
    except (OSError, http.client.HTTPException) as e:
        f = FuzzFailure("client error %s: %s" % (type(e).__name__, e))
        f.run = r
        raise f
    return r


def corpus_entries(path=CORPUS_DIR):
    out = []
    if not os.path.isdir(path):
        return out
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name)) as f:
            head = f.readline().split()
            ops = f.readline().split()
        if len(head) == 2 and head[0] == "seed" and len(ops) == 2 and ops[0] == "ops":
            out.append((int(head[1]), int(ops[1])))
    return out


def save_corpus_entry(r, new, path=CORPUS_DIR):
    os.makedirs(path, exist_ok=True)
    fn = os.path.join(path, "seed-%d" % r.seed)
    with open(fn, "w") as f:
        f.write("seed %d\nops %d\n" % (r.seed, r.n_ops))
        f.write("# new outcomes: %s\n" % " ".join("%s:%s:%s" % o for o in sorted(new, key=str)))
        for line in r.oplog:
            f.write("# %s\n" % line)
    return fn


def failure_report(e, d, path):
    r = getattr(e, "run", None)
    with open(path, "w") as f:
        if r is not None:
            f.write("seed %d\nops %d\n" % (r.seed, r.n_ops))
            f.write("# failed after op %d: %s\n" % (r.ops_done, str(e).splitlines()[0]))
            for line in r.oplog:
                f.write("# %s\n" % line)
        f.write("# daemon log tail:\n")
        for line in d.log()[-6000:].splitlines():
            f.write("# %s\n" % line)
    tail = "\n".join(r.oplog[-25:]) if r is not None else ""
    log = d.log()
    if "in on_spawn_result endpoints/shell.c" in log:
        e = "%s\n(known crasher race-pending-spawn: Signal terminate/Delete while a Command spawn is"\
            " pending; WINRMD_SEQFUZZ_AVOID=race-pending-spawn skips it)" % e
    elif "in shell_dispatch endpoints/shell.c" in log and "wsman_action_is" in log:
        e = "%s\n(known crasher get-unknown-shell: Get of the shell resource with an unknown or no ShellId;"\
            " WINRMD_SEQFUZZ_AVOID=get-unknown-shell skips it)" % e
    return ("seqfuzz failure: %s\nseed %s (replay: WINRMD_SEQFUZZ_SEED=%s WINRMD_SEQFUZZ_SECONDS=1, or put "
            "the file into the corpus)\nsaved to %s\nlast operations (c<connection>):\n%s"
            % (e, r.seed if r else "?", r.seed if r else "?", path, tail))
