#!/usr/bin/env python3
"""Attack traffic for benches/attack/run.sh: hold idle TCP connections open
and send malformed UDP packets at a fixed rate, against one loopback server.

Why: issue 8 item 8 asks that 1,000 held-open idle TCP connections plus a
stream of malformed packets do not lower the legitimate UDP rate. This
script is the attacker; run.sh measures dnsperf beside it.

  attack.py HOST PORT SECONDS --conns 1000 --malformed 2000

Idle connections send nothing (the server closes them after its idle
timeout, and the attacker reconnects at once, so about --conns stay open).
Malformed packets cycle through: shorter than a header, a header followed by
garbage (the server answers FORMERR), a response (QR set, dropped), a
compression pointer loop, and a header claiming 65535 records. Prints one
JSON line: connections opened, closed by the server, open at the end (min
over the run, sampled each second), and packets sent.

Invariants: only the address given (run.sh passes 127.0.0.1); bounded by
SECONDS; standard library only.
"""

import argparse
import json
import random
import selectors
import socket
import struct
import time


def malformed_packets():
    rnd = random.Random(8)
    hdr = lambda qid, flags, qd, an: struct.pack(">HHHHHH", qid, flags, qd, an, 0, 0)
    out = [
        bytes(rnd.randrange(256) for _ in range(7)),  # shorter than a header
        hdr(0x1234, 0x0100, 1, 0) + b"\xff\xff\xff\x07\x41",  # garbage name
        hdr(0x1235, 0x8180, 1, 0) + b"\x01a\x00\x00\x01\x00\x01",  # a response
        hdr(0x1236, 0x0100, 1, 0) + b"\xc0\x0c\x00\x01\x00\x01",  # pointer loop
        hdr(0x1237, 0x0100, 1, 65535) + b"\x01a\x00\x00\x01\x00\x01",  # counts lie
    ]
    out += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(12, 300))) for _ in range(20)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--malformed", type=int, default=2000, help="packets per second")
    a = ap.parse_args()
    target = (a.host, a.port)

    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "closed_by_server": 0, "connect_failed": 0, "sent": 0, "min_open": None}
    open_conns = set()

    def connect():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(target)
        except BlockingIOError:
            pass
        except OSError:
            stats["connect_failed"] += 1
            s.close()
            return
        sel.register(s, selectors.EVENT_READ)
        open_conns.add(s)
        stats["opened"] += 1

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    packets = malformed_packets()

    start = time.monotonic()
    end = start + a.seconds
    # Ramp the connections up over the first second, then keep them topped up.
    for _ in range(a.conns):
        connect()
    next_sample = start + 1.0
    i = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        # Malformed packets, paced to --malformed per second.
        due = int((now - start) * a.malformed)
        while stats["sent"] < due:
            try:
                udp.sendto(packets[i % len(packets)], target)
            except (BlockingIOError, OSError):
                pass
            i += 1
            stats["sent"] += 1
        # Drain answers to the malformed packets (FORMERR) so the socket never fills.
        try:
            while True:
                udp.recv(4096)
        except (BlockingIOError, OSError):
            pass
        for key, _ in sel.select(timeout=0.005):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                open_conns.discard(s)
                stats["closed_by_server"] += 1
        while len(open_conns) < a.conns and time.monotonic() < end:
            connect()
        if now >= next_sample:
            m = stats["min_open"]
            stats["min_open"] = len(open_conns) if m is None else min(m, len(open_conns))
            next_sample += 1.0
    stats["open_at_end"] = len(open_conns)
    stats["seconds"] = round(time.monotonic() - start, 2)
    for s in list(open_conns):
        s.close()
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
