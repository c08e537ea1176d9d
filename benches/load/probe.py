#!/usr/bin/env python3
"""Tiny UDP DNS client for run.sh: wait for a server, and fingerprint its answers.

Why: the benchmark compares servers on the same query mix, which only means
something if they give the same answers. `answers` prints one line per query
(rcode, answer count, sorted answer data) so run.sh can diff servers; `wait`
blocks until the server answers at all.

Invariant: only talks to the address given (loopback in run.sh), never blocks
longer than its timeout. Standard library only.
"""

import random
import socket
import struct
import sys
import time

TYPES = {"A": 1, "NS": 2, "SOA": 6, "AAAA": 28, "SRV": 33}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def encode_query(qid, name, qtype):
    hdr = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".") if l)
    return hdr + q + b"\0" + struct.pack(">HH", TYPES[qtype], 1)


def read_name(msg, off):
    labels, jumped, end = [], False, off
    for _ in range(128):
        n = msg[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:
            ptr = ((n & 0x3F) << 8) | msg[off + 1]
            if not jumped:
                end = off + 2
            jumped, off = True, ptr
            continue
        labels.append(msg[off + 1 : off + 1 + n].decode("ascii", "replace").lower())
        off += 1 + n
    return ".".join(labels) + ".", (end if jumped else off)


def decode(msg):
    """Return (rcode, [answer strings])."""
    qid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = read_name(msg, off)
        off += 4
    out = []
    for _ in range(an):
        name, off = read_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[off : off + 10])
        off += 10
        rd = msg[off : off + rdlen]
        if rtype == 1:
            data = socket.inet_ntoa(rd)
        elif rtype == 33:
            prio, weight, port = struct.unpack(">HHH", rd[:6])
            target, _ = read_name(msg, off + 6)
            data = f"{prio} {weight} {port} {target}"
        else:
            data = rd.hex()
        out.append(f"{name} {rtype} {data}")
        off += rdlen
    return RCODES.get(flags & 0xF, str(flags & 0xF)), sorted(out)


def ask(addr, port, name, qtype, timeout=1.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        qid = random.randrange(65536)
        s.sendto(encode_query(qid, name, qtype), (addr, port))
        while True:
            msg, _ = s.recvfrom(65535)
            if struct.unpack(">H", msg[:2])[0] == qid:
                return decode(msg)
    finally:
        s.close()


def main():
    cmd, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if cmd == "wait":
        # wait ADDR PORT SECONDS NAME TYPE: exit 0 once any answer arrives.
        deadline = time.monotonic() + float(sys.argv[4])
        while time.monotonic() < deadline:
            try:
                rcode, ans = ask(addr, port, sys.argv[5], sys.argv[6], 0.3)
                if rcode == "NOERROR" and ans:
                    return 0
            except (OSError, socket.timeout):
                pass
            time.sleep(0.1)
        return 1
    if cmd == "answers":
        # answers ADDR PORT QUERYFILE N: one fingerprint line per query of the first N.
        with open(sys.argv[4]) as f:
            lines = [l.split() for l in f if l.strip()][: int(sys.argv[5])]
        for name, qtype in lines:
            try:
                rcode, ans = ask(addr, port, name, qtype, 5.0)
                print(f"{name} {qtype} {rcode} {len(ans)} | {' ; '.join(ans)}")
            except (OSError, socket.timeout):
                print(f"{name} {qtype} TIMEOUT")
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
