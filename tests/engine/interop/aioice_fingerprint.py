#!/usr/bin/python3
"""aioice (python3-aioice) against punchlined: FINGERPRINT and server-reflexive gathering.

Run by aioice_fingerprint_test.sh inside the client namespace of its lab:

    aioice_fingerprint.py PRIMARY_IP ALTERNATE_IP CLIENT_IP

(a) A Binding request built with aioice.stun, with FINGERPRINT, sent from a UDP socket bound to
    CLIENT_IP. The response must parse with aioice.stun.parse_message (which raises ValueError
    on a wrong FINGERPRINT: checked here on a corrupted copy), carry a FINGERPRINT that an
    independent zlib CRC-32 also verifies, and name the socket's own address in
    XOR-MAPPED-ADDRESS. A request with a wrong FINGERPRINT must get no answer
    (RFC 8489 §7.3: "silently discarded").
(b) aioice.Connection(ice_controlling=True, stun_server=(PRIMARY_IP, 3478)) must gather a
    server-reflexive candidate equal to its host candidate (no NAT in between).

Every network wait is bounded with asyncio.wait_for. Exit 0 on success, 1 on the first failure.
"""

import asyncio
import struct
import sys
import zlib

import aioice
from aioice import stun

STUN_PORT = 3478
ALTERNATE_PORT = 3479
WAIT = 2.0  # seconds for one answer on a veth with a ~0 ms round trip


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def ok(message):
    print(f"ok: {message}", flush=True)


def binding_request_with_fingerprint():
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    if hasattr(request, "add_fingerprint"):  # newer aioice
        request.add_fingerprint()
    else:
        # aioice 0.8 adds FINGERPRINT only together with MESSAGE-INTEGRITY; this is what its
        # add_message_integrity() does for the FINGERPRINT half (RFC 8489 §14.7: computed over
        # the message with its length already counting the FINGERPRINT attribute).
        request.attributes["FINGERPRINT"] = stun.message_fingerprint(bytes(request))
    return request


def verify_fingerprint_independently(data):
    """RFC 8489 §14.7, checked with zlib rather than aioice's binascii: FINGERPRINT is the last
    attribute, its value is CRC-32 of the message up to it XOR 0x5354554e, and the header's
    length covers it."""
    if len(data) < 28:
        return "message shorter than a header and a FINGERPRINT"
    attribute_type, attribute_length = struct.unpack("!HH", data[-8:-4])
    if attribute_type != 0x8028 or attribute_length != 4:
        return f"last attribute is {attribute_type:#06x} length {attribute_length}, not FINGERPRINT"
    (length,) = struct.unpack("!H", data[2:4])
    if length != len(data) - 20:
        return f"header length {length} but {len(data) - 20} bytes of attributes"
    (value,) = struct.unpack("!I", data[-4:])
    expected = zlib.crc32(data[:-8]) ^ 0x5354554E
    if value != expected:
        return f"FINGERPRINT {value:#010x}, CRC-32 says {expected:#010x}"
    return None


class Receiver(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))

    def error_received(self, exc):
        self.queue.put_nowait((exc, None))


async def receive(receiver, what):
    try:
        data, addr = await asyncio.wait_for(receiver.queue.get(), WAIT)
    except asyncio.TimeoutError:
        fail(f"{what}: no answer within {WAIT} s")
    if isinstance(data, Exception):
        fail(f"{what}: socket error {data!r}")
    return data, addr


async def part_a(primary, alternate, client):
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(Receiver, local_addr=(client, 0))
    try:
        own = transport.get_extra_info("sockname")[:2]
        server = (primary, STUN_PORT)

        request = binding_request_with_fingerprint()
        transport.sendto(bytes(request), server)
        data, addr = await receive(receiver, "Binding request with FINGERPRINT")
        if addr[:2] != server:
            fail(f"answer came from {addr}, not {server}")
        try:
            response = stun.parse_message(data)
        except ValueError as error:
            fail(f"aioice rejects the response: {error}")
        if (response.message_method, response.message_class) != (
            stun.Method.BINDING,
            stun.Class.RESPONSE,
        ):
            fail(f"not a Binding success response: {response!r}")
        if response.transaction_id != request.transaction_id:
            fail("transaction ID differs from the request's")
        if "FINGERPRINT" not in response.attributes:
            fail("the response to a request with FINGERPRINT carries none (RFC 8489 §7.3)")
        problem = verify_fingerprint_independently(data)
        if problem:
            fail(f"FINGERPRINT, checked with zlib: {problem}")
        ok("response parsed by aioice; FINGERPRINT verified by aioice and by zlib")

        # aioice really checks FINGERPRINT: one flipped bit in the transaction ID must fail.
        corrupted = bytearray(data)
        corrupted[8] ^= 0x01
        try:
            stun.parse_message(bytes(corrupted))
            fail("aioice accepted a response with a wrong FINGERPRINT: it does not verify it")
        except ValueError:
            ok("aioice rejects a corrupted copy (it verifies FINGERPRINT)")

        mapped = response.attributes.get("XOR-MAPPED-ADDRESS")
        if mapped != own:
            fail(f"XOR-MAPPED-ADDRESS {mapped}, the socket is {own}")
        ok(f"XOR-MAPPED-ADDRESS {mapped[0]}:{mapped[1]} is the socket's own address")
        for name, expected in (
            ("MAPPED-ADDRESS", own),
            ("RESPONSE-ORIGIN", server),
            ("OTHER-ADDRESS", (alternate, ALTERNATE_PORT)),
        ):
            if response.attributes.get(name) != expected:
                fail(f"{name} {response.attributes.get(name)}, expected {expected}")
        ok("MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS as expected")

        # RFC 8489 §7.3: a wrong FINGERPRINT is silently discarded. Send a bad request, then a
        # good one: on this single path the engine answers in order, so the first answer must
        # be the good one's.
        bad = binding_request_with_fingerprint()
        bad.attributes["FINGERPRINT"] ^= 0x00000001
        good = binding_request_with_fingerprint()
        transport.sendto(bytes(bad), server)
        transport.sendto(bytes(good), server)
        data, _ = await receive(receiver, "good request after a bad FINGERPRINT")
        answered = stun.parse_message(data)
        if answered.transaction_id == bad.transaction_id:
            fail("the request with a wrong FINGERPRINT was answered (RFC 8489 §7.3: discard)")
        if answered.transaction_id != good.transaction_id:
            fail("an answer to a transaction never sent")
        ok("a request with a wrong FINGERPRINT gets no answer; the next one does")
    finally:
        transport.close()


async def part_b(primary, client):
    connection = aioice.Connection(ice_controlling=True, stun_server=(primary, STUN_PORT))
    try:
        await asyncio.wait_for(connection.gather_candidates(), 10)
        candidates = connection.local_candidates
        for candidate in candidates:
            print(f"  candidate {candidate.type} {candidate.host}:{candidate.port}", flush=True)
        host = [c for c in candidates if c.type == "host" and c.host == client]
        srflx = [c for c in candidates if c.type == "srflx"]
        if not host:
            fail(f"no host candidate on {client}")
        if not srflx:
            fail("no server-reflexive candidate: the engine's answer did not reach aioice")
        matching = [
            c for c in srflx
            if (c.host, c.port) == (client, host[0].port)
            and (c.related_address, c.related_port) == (client, host[0].port)
        ]
        if not matching:
            fail(f"srflx {[(c.host, c.port) for c in srflx]} is not the host candidate "
                 f"{client}:{host[0].port}")
        ok(f"aioice gathered srflx {client}:{host[0].port}")
    finally:
        await asyncio.wait_for(connection.close(), 5)


async def main():
    if len(sys.argv) != 4:
        fail("usage: aioice_fingerprint.py PRIMARY_IP ALTERNATE_IP CLIENT_IP")
    primary, alternate, client = sys.argv[1:]
    print(f"aioice {aioice.__version__}", flush=True)
    await part_a(primary, alternate, client)
    await part_b(primary, client)
    print("PASS", flush=True)


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(), 30))
