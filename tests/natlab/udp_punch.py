#!/usr/bin/python3
"""One side of a UDP hole punch, the smallest that natlab.md's matrix holds for.

udp_punch.py STUN_IP:PORT MINE THEIRS [--timeout S]

From one unconnected UDP socket: a STUN Binding request (RFC 8489 §6) to STUN_IP:PORT gives
this side's reflexive address, which goes to the file MINE ("IP:PORT"); the peer's comes from
the file THEIRS (the two sides meet through the file system: both run on one machine, each in
its own namespace). Then, every 20 ms until --timeout (default 2 s) after the peer's address
is known, a PING to every address in the target list, which starts as the peer's reflexive
address alone. A PING is answered with a PONG to the address it came from, and that address
joins the targets (peer-reflexive learning, as an ICE triggered check: behind a symmetric NAT
the peer's packets to us come from a mapping its STUN server never saw). The side has punched
through once a PONG arrives; it then keeps answering for 0.5 s, so that the other side gets
its PONG too, and stops.

Prints the two reflexive addresses, then "punched ADDRESS in N ms" (the address the PONG came
from, the time since the first PING) and exits 0, or "no answer in N ms" and exits 1; exits 2
when STUN or the peer's file does not answer within its own 3 s and 5 s. ICMP errors (an unconnected socket sees none; a connected one would
see ECONNREFUSED, natlab.md pitfall 5) are ignored.
"""

import argparse
import os
import socket
import struct
import sys
import time

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020
PING = b"natlab-ping"
PONG = b"natlab-pong"


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def reflexive_address(sock, server, deadline):
    """XOR-MAPPED-ADDRESS (RFC 8489 §14.2) of a Binding success, retransmitted every 100 ms."""
    transaction = os.urandom(12)
    request = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + transaction
    while time.monotonic() < deadline:
        sock.sendto(request, server)
        sock.settimeout(0.1)
        try:
            data, _ = sock.recvfrom(2048)
        except (socket.timeout, ConnectionRefusedError):
            continue
        if len(data) < 20:
            continue
        kind, length, cookie = struct.unpack("!HHI", data[:8])
        if kind != BINDING_SUCCESS or cookie != MAGIC_COOKIE or data[8:20] != transaction:
            continue
        attributes = data[20:20 + length]
        while len(attributes) >= 4:
            kind, size = struct.unpack("!HH", attributes[:4])
            value = attributes[4:4 + size]
            if kind == XOR_MAPPED_ADDRESS and len(value) >= 8 and value[1] == 0x01:
                port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC_COOKIE >> 16)
                ip = struct.unpack("!I", value[4:8])[0] ^ MAGIC_COOKIE
                return socket.inet_ntoa(struct.pack("!I", ip)), port
            attributes = attributes[4 + (size + 3) // 4 * 4:]
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stun", type=address, help="STUN server, IP:PORT")
    parser.add_argument("mine", help="file to write this side's reflexive address to")
    parser.add_argument("theirs", help="file to read the peer's reflexive address from")
    parser.add_argument("--timeout", type=float, default=2.0,
                        help="seconds of punching after the peer's address is known")
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    mapped = reflexive_address(sock, args.stun, time.monotonic() + 3)
    if mapped is None:
        print(f"no STUN answer from {args.stun[0]}:{args.stun[1]} in 3 s")
        return 2
    with open(args.mine + ".tmp", "w") as out:
        out.write(f"{mapped[0]}:{mapped[1]}\n")
    os.rename(args.mine + ".tmp", args.mine)  # the peer never reads half a line

    deadline = time.monotonic() + 5
    while not os.path.exists(args.theirs):
        if time.monotonic() > deadline:
            print(f"reflexive {mapped[0]}:{mapped[1]}; the peer's address never came")
            return 2
        time.sleep(0.01)
    with open(args.theirs) as peer_file:
        targets = [address(peer_file.read().strip())]

    start = time.monotonic()
    end = start + args.timeout
    next_ping = start
    punched = None
    while time.monotonic() < end:
        now = time.monotonic()
        if punched is None and now >= next_ping:
            for target in targets:
                sock.sendto(PING, target)
            next_ping = now + 0.02
        sock.settimeout(max(0.001, min(next_ping, end) - now))
        try:
            data, source = sock.recvfrom(2048)
        except (socket.timeout, ConnectionRefusedError):
            continue
        if data == PING:
            sock.sendto(PONG, source)
            if source not in targets:
                targets.append(source)
        elif data == PONG and punched is None:
            punched = source, time.monotonic() - start
            end = min(end, time.monotonic() + 0.5)

    print(f"reflexive {mapped[0]}:{mapped[1]}, peer {targets[0][0]}:{targets[0][1]}")
    if punched is None:
        print(f"no answer in {args.timeout * 1000:.0f} ms")
        return 1
    (ip, port), seconds = punched
    print(f"punched {ip}:{port} in {seconds * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
