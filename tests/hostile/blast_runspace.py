#!/usr/bin/python3
"""A runspace that behaves like pwsh under back-pressure, for
test_robustness.py: one thread both reads stdin and writes stdout, so while a
write blocks (nobody reads its output), it reads nothing either.

Out-of-process packets, one per line (as `pwsh -s`): it acks what it gets;
a pipeline's first Data makes it write BLAST_MB MiB of output for that
pipeline, in 1 MiB PSRP fragments, before it reads again; Close is acked,
except the pool's with --no-pool-close-ack (a runspace that hangs in its
close).
Started by winrmd as a session configuration's Command.
"""
import base64
import os
import re
import struct
import sys

BLAST_MB = int(os.environ.get("BLAST_MB", "48"))
POOL = "00000000-0000-0000-0000-000000000000"
PIPELINE_OUTPUT = 0x00041004


def packet(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fragment(obj, payload):
    blob = struct.pack("<II", 2, PIPELINE_OUTPUT) + bytes(32) + payload
    return struct.pack(">QQBI", obj, 0, 3, len(blob)) + blob


def main():
    started = set()
    obj = 0
    for line in sys.stdin:
        m = re.match(r"<(\w+)(?: Stream='\w+')? PSGuid='([0-9a-f-]+)'", line.strip())
        if not m:
            continue
        kind, guid = m.groups()
        if kind == "Close" and guid == POOL and "--no-pool-close-ack" in sys.argv:
            continue
        if kind in ("Command", "Signal", "Close"):
            packet("<%sAck PSGuid='%s' />" % (kind, guid))
        elif kind == "Data":
            packet("<DataAck PSGuid='%s' />" % guid)
            if guid != POOL and guid not in started:
                started.add(guid)
                chunk = os.urandom(1024 * 1024)
                for _ in range(BLAST_MB):
                    obj += 1
                    data = base64.b64encode(fragment(obj, chunk)).decode()
                    packet("<Data Stream='Default' PSGuid='%s'>%s</Data>" % (guid, data))


if __name__ == "__main__":
    main()
