#!/usr/bin/python3
"""Golden packets for the engine's packet handlers (style rule 17, after Katran's).

Each case is one file, <name>.golden, in this folder: the input frame, the port context it
arrives on, the verdict the handlers must reach (transmit, drop <reason>, or to_control: handed
unchanged to the control thread's neighbour cache), and for a transmitted frame the exact bytes
they must send. tests/engine/golden_test.cc replays every file through engine::handle_frame().
A `relay` case may also say when it arrives on the relay's clock (`relay_time:`, seconds after
golden_cases.h made its shard; 1 by default) and which requests its client sent first, with
the answers they must get (`prelude:`).

Nothing here comes from our C++: input and expected frames are built with scapy (Ethernet,
ARP, IPv4, IPv6, ICMP, ICMPv6, NDP, UDP, with the checksums scapy computes), and STUN payloads
are assembled by hand with struct from RFC 8489 / RFC 5780 (header, attributes padded with
zeros, the XOR-MAPPED-ADDRESS rules of RFC 8489 §14.2, FINGERPRINT = CRC-32 XOR 0x5354554E
of RFC 8489 §14.7), so that a bug in the codec cannot hide by agreeing with itself. The TURN
requests and answers are signed here too (RFC 8489 §9.2.2's long-term key, §14.5's
MESSAGE-INTEGRITY, with hashlib and hmac), and the server's stateless nonce is recomputed from
the relay context's fixed key, the case's time and the client's address.

Usage (Debian: apt-get install python3-scapy; scapy 2.5):
    /usr/bin/python3 tests/engine/golden/make_golden.py           # (re)write the files
    /usr/bin/python3 tests/engine/golden/make_golden.py --check   # fail if they are stale

A case with `pending:` encodes what an RFC requires where the handlers do not (yet) do it; the
test skips it while the handlers disagree and fails once they agree, so that the mark is
removed. Keep such cases rare and cite the RFC section.
"""

import argparse
import hashlib
import hmac
import ipaddress
import logging
import pathlib
import struct
import sys
import zlib

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
try:
    from scapy.all import (
        ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, ICMPv6EchoRequest, ICMPv6EchoReply,
        ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
        IPOption_EOL, IPOption_NOP, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, Padding, Raw,
        conf)
except ImportError:
    # 77: "skipped" to meson, so that --check does not fail where scapy is not installed.
    print("scapy is not installed (Debian: python3-scapy): cannot build golden packets",
          file=sys.stderr)
    sys.exit(77)

conf.verb = 0

HERE = pathlib.Path(__file__).resolve().parent
GENERATOR = "tests/engine/golden/make_golden.py"
REGENERATE = "/usr/bin/python3 tests/engine/golden/make_golden.py"

# ---------------------------------------------------------------------------------------------
# The port contexts (golden_test.cc builds the same three by name) and the client.

PORT_MAC = "02:00:00:00:00:01"
OTHER_MAC = "02:00:00:00:00:77"   # some other host on the segment
CLIENT_MAC = "02:00:00:00:00:99"
BROADCAST = "ff:ff:ff:ff:ff:ff"

V4 = {"primary": "198.18.0.2", "alternate": "198.18.0.3"}
V6 = {"primary": "2001:db8::2", "alternate": "2001:db8::3"}
CLIENT4 = "198.18.0.100"
CLIENT6 = "2001:db8::100"
CLIENT_PORT = 40000
# The gateways every context's neighbour cache watches (golden_cases.h publishes the same
# snapshot): 198.18.0.1 resolved to GATEWAY_MAC, 2001:db8::1 not resolved yet.
GATEWAY_MAC = "02:00:00:00:00:fe"
GATEWAY4 = "198.18.0.1"
GATEWAY6 = "2001:db8::1"
STUN_PORT = 3478
STUN_ALTERNATE_PORT = 3479
SOFTWARE = b"punchline"

CONTEXTS = {
    # name: has alternates (RFC 5780 §6: both an alternate address and an alternate port)
    "full": True,
    "no_alternate": False,
    "trust_checksum": True,   # `full`, with rx_checksum = trust
    "relay": True,            # `full`, with the relay role (below)
    "relay_reservation": True,  # `relay`, with eight relay ports and a reservation (below)
}
# The `relay` context (golden_cases.h makes the same state before each case): the client
# CLIENT4:CLIENT_PORT holds an allocation on RELAY_ADDRESS:RELAY_PORT, with permissions for
# RELAY_PEER, RELAY_ONLINK_PEER and RELAY_ADDRESS itself (channel 0x4002 bound to
# RELAY_ADDRESS:RELAY_PORT), and a bandwidth cap of 1000 bytes a second with a full 1500-byte
# bucket (on the port's subnet, which the neighbour cache does not
# know: no next hop yet). Peers off the subnet go through GATEWAY4 (resolved: GATEWAY_MAC).
RELAY_ADDRESS = "198.18.0.2"
RELAY_PORT = 49152
RELAY_PEER = "203.0.113.5"
RELAY_ONLINK_PEER = "198.18.0.77"
RELAY_UNPERMITTED_PEER = "203.0.113.99"
# The `relay_reservation` context: the same, on relay ports RELAY_PORT..RELAY_PORT + 7, and
# the client CLIENT4:CLIENT_PORT + 1 (user "other") has allocated with EVEN-PORT's R bit:
# RELAY_PORT + 2, with RELAY_PORT + 3 reserved under the shard's first RESERVATION-TOKEN, then
# deleted that allocation (the reservation stays).
RELAY_RESERVATION_PORTS = 8
DEFAULT_CAPACITY = 2048
# Four bytes of IPv4 options (three NOPs and an end-of-list), for IHL 6.
OPTIONS = [IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_EOL()]

# ---------------------------------------------------------------------------------------------
# STUN, by hand (RFC 8489 §5, §14; RFC 5780 §7).

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E

BINDING_REQUEST = 0x0001
BINDING_INDICATION = 0x0011
BINDING_SUCCESS = 0x0101
BINDING_ERROR = 0x0111
ALLOCATE_REQUEST = 0x0003
ALLOCATE_ERROR = 0x0113

MAPPED_ADDRESS = 0x0001
CHANGE_REQUEST = 0x0003
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
REQUESTED_TRANSPORT = 0x0019
SEND_INDICATION = 0x0016
DATA_INDICATION = 0x0017
XOR_PEER_ADDRESS = 0x0012
DATA_ATTR = 0x0013
XOR_MAPPED_ADDRESS = 0x0020
PADDING = 0x0026
RESPONSE_PORT = 0x0027
SOFTWARE_ATTR = 0x8022
FINGERPRINT = 0x8028
RESPONSE_ORIGIN = 0x802B
OTHER_ADDRESS = 0x802C

CHANGE_IP = 0x4     # RFC 5780 §7.2, flag A
CHANGE_PORT = 0x2   # flag B


def txid_for(name):
    """A fixed transaction ID per case, so that files only change when the case does."""
    return hashlib.sha256(name.encode()).digest()[:12]


def attribute(kind, value):
    """RFC 8489 §14: type, length of the value, value, zero padding to 4 bytes."""
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def stun_message(message_type, txid, attributes, fingerprint=False, length=None):
    body = b"".join(attributes)
    if fingerprint:
        # RFC 8489 §14.7: the CRC covers the message up to FINGERPRINT, with the header's
        # length already counting FINGERPRINT's 8 bytes.
        header = struct.pack("!HHI", message_type, len(body) + 8, MAGIC_COOKIE) + txid
        crc = (zlib.crc32(header + body) ^ FINGERPRINT_XOR) & 0xFFFFFFFF
        body += attribute(FINGERPRINT, struct.pack("!I", crc))
    if length is None:
        length = len(body)
    return struct.pack("!HHI", message_type, length, MAGIC_COOKIE) + txid + body


def ip_bytes(address):
    return ipaddress.ip_address(address).packed


def address_value(address, port):
    """RFC 8489 §14.1: reserved 0, family, port, address."""
    raw = ip_bytes(address)
    return struct.pack("!BBH", 0, 1 if len(raw) == 4 else 2, port) + raw


def xor_address_value(address, port, txid):
    """RFC 8489 §14.2: port XOR the cookie's high half; address XOR cookie (+ txid for v6)."""
    raw = ip_bytes(address)
    mask = struct.pack("!I", MAGIC_COOKIE) + txid
    xored = bytes(a ^ b for a, b in zip(raw, mask))
    return struct.pack("!BBH", 0, 1 if len(raw) == 4 else 2, port ^ (MAGIC_COOKIE >> 16)) + xored


def error_code_value(code, reason):
    """RFC 8489 §14.8: 21 zero bits, class (hundreds), number (code mod 100), reason."""
    return struct.pack("!HBB", 0, code // 100, code % 100) + reason.encode()


def unknown_attributes_value(types):
    return b"".join(struct.pack("!H", t) for t in types)


# ---------------------------------------------------------------------------------------------
# Frames.

def client_udp4(payload, destination=V4["primary"], dport=STUN_PORT, sport=CLIENT_PORT,
                udp_chksum=None, **ip_fields):
    ip = dict(src=CLIENT4, dst=destination, id=0x5A17, ttl=57, tos=0)
    ip.update(ip_fields)
    return (Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(**ip) /
            UDP(sport=sport, dport=dport, chksum=udp_chksum) / Raw(payload))


def client_udp6(payload, destination=V6["primary"], dport=STUN_PORT, sport=CLIENT_PORT,
                udp_chksum=None):
    return (Ether(dst=PORT_MAC, src=CLIENT_MAC) /
            IPv6(src=CLIENT6, dst=destination, hlim=57) /
            UDP(sport=sport, dport=dport, chksum=udp_chksum) / Raw(payload))


def server_udp4(payload, source, sport, dport=CLIENT_PORT, request_id=0x5A17, options=None):
    """What the STUN role sends: to the client's MAC from the port's, TTL 64, DF, the request's
    IP ID (and IP options, rewritten in place) kept, checksums computed by scapy."""
    extra = {} if options is None else {"options": options}
    return (Ether(dst=CLIENT_MAC, src=PORT_MAC) /
            IP(src=source, dst=CLIENT4, id=request_id, flags="DF", ttl=64, tos=0, **extra) /
            UDP(sport=sport, dport=dport) / Raw(payload))


def server_udp6(payload, source, sport, dport=CLIENT_PORT):
    return (Ether(dst=CLIENT_MAC, src=PORT_MAC) / IPv6(src=source, dst=CLIENT6, hlim=64) /
            UDP(sport=sport, dport=dport) / Raw(payload))


def with_wrong_ipv4_checksum(frame):
    """The same frame with its (correct, scapy-computed) IPv4 header checksum off by one bit."""
    raw = bytearray(bytes(frame))
    raw[14 + 11] ^= 0x01
    return bytes(raw)


def with_wrong_udp_checksum(frame):
    """The same frame with its (correct, scapy-computed) UDP checksum off by one bit."""
    raw = bytearray(bytes(frame))
    offset = 14 + (40 if raw[12:14] == b"\x86\xdd" else (raw[14] & 0xF) * 4) + 6
    raw[offset + 1] ^= 0x01
    return bytes(raw)


# ---------------------------------------------------------------------------------------------
# The STUN role's answers, from RFC 8489 §6.3 and RFC 5780 §6.1 (the same decisions the
# responder makes, taken again here from the RFC text, not from its code).

def binding_success(request_txid, family, arrived_ip, arrived_port, context, change=0,
                    padding=0, fingerprint=False, response_port=None):
    """Returns (payload, source ip, source port, destination port) of the success response.

    RFC 5780 §6.1 Table 1, relative to where the request arrived (Da:Dp), with Ca:Cp the other
    address and port:  none -> Da:Dp, change IP -> Ca:Dp, change port -> Da:Cp, both -> Ca:Cp;
    OTHER-ADDRESS is always Ca:Cp. RESPONSE-ORIGIN is in every response ("The server MUST
    add a RESPONSE-ORIGIN attribute"); a server without alternates (RFC 5780 §6) has no
    OTHER-ADDRESS to give."""
    addresses = V4 if family == 4 else V6
    client_ip = CLIENT4 if family == 4 else CLIENT6
    other_ip = addresses["alternate" if arrived_ip == addresses["primary"] else "primary"]
    other_port = STUN_ALTERNATE_PORT if arrived_port == STUN_PORT else STUN_PORT
    source_ip = other_ip if change & CHANGE_IP else arrived_ip
    source_port = other_port if change & CHANGE_PORT else arrived_port
    attributes = [
        attribute(XOR_MAPPED_ADDRESS, xor_address_value(client_ip, CLIENT_PORT, request_txid)),
        # RFC 5780 §6.1: "The server MUST include both MAPPED-ADDRESS and XOR-MAPPED-ADDRESS".
        attribute(MAPPED_ADDRESS, address_value(client_ip, CLIENT_PORT)),
    ]
    attributes.append(attribute(RESPONSE_ORIGIN, address_value(source_ip, source_port)))
    if CONTEXTS[context]:
        attributes.append(attribute(OTHER_ADDRESS, address_value(other_ip, other_port)))
    attributes.append(attribute(SOFTWARE_ATTR, SOFTWARE))
    if padding:
        attributes.append(attribute(PADDING, b"\0" * padding))
    payload = stun_message(BINDING_SUCCESS, request_txid, attributes, fingerprint)
    return payload, source_ip, source_port, response_port or CLIENT_PORT


def error_response(message_type, request_txid, code, reason, unknown=(), fingerprint=False):
    attributes = [attribute(ERROR_CODE, error_code_value(code, reason))]
    if unknown:
        attributes.append(attribute(UNKNOWN_ATTRIBUTES, unknown_attributes_value(unknown)))
    attributes.append(attribute(SOFTWARE_ATTR, SOFTWARE))
    return stun_message(message_type, request_txid, attributes, fingerprint)


# ---------------------------------------------------------------------------------------------
# The cases.

class Case:
    def __init__(self, name, description, frame, verdict, output=None, context="full",
                 capacity=None, pending=None, relay_time=None, prelude=()):
        assert context in CONTEXTS, context
        assert (relay_time is None and not prelude) or context == "relay", name
        assert (verdict == "transmit") == (output is not None), name
        self.name = name
        self.description = description
        self.input = bytes(frame)
        self.verdict = verdict
        self.output = None if output is None else bytes(output)
        self.context = context
        self.capacity = capacity
        self.pending = pending
        self.relay_time = relay_time
        # Requests sent first, on the same shard at the same time: (request, answer) frames.
        self.prelude = [(bytes(request), bytes(answer)) for request, answer in prelude]

    def render(self):
        lines = [
            f"# generated by: {GENERATOR}   (regenerate: {REGENERATE})",
            "# Do not edit by hand: change the generator and rerun it.",
            f"name: {self.name}",
            f"description: {self.description}",
            f"context: {self.context}",
        ]
        if self.capacity is not None:
            lines.append(f"capacity: {self.capacity}")
        if self.pending is not None:
            lines.append(f"pending: {self.pending}")
        if self.relay_time is not None:
            lines.append(f"relay_time: {self.relay_time}")
        if self.prelude:
            lines.append("prelude: " + " ".join(f"{request.hex()} {answer.hex()}"
                                                for request, answer in self.prelude))
        lines.append(f"input: {self.input.hex()}")
        lines.append(f"verdict: {self.verdict}")
        if self.output is not None:
            lines.append(f"output: {self.output.hex()}")
        return "\n".join(lines) + "\n"


def drop(reason):
    return f"drop {reason}"


TO_CONTROL = "to_control"


def arp_cases():
    def request(target, pad=False):
        frame = (Ether(dst=BROADCAST, src=CLIENT_MAC) /
                 ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT4, hwdst="00:00:00:00:00:00",
                     pdst=target))
        return frame / Padding(b"\0" * 18) if pad else frame

    def reply(owned, pad=False):
        frame = (Ether(dst=CLIENT_MAC, src=PORT_MAC) /
                 ARP(op=2, hwsrc=PORT_MAC, psrc=owned, hwdst=CLIENT_MAC, pdst=CLIENT4))
        # RFC 826 does not trim: the reply is the request rewritten, its padding kept.
        return frame / Padding(b"\0" * 18) if pad else frame

    yield Case("arp_request_primary", "ARP request for the primary IPv4 address: reply in place",
               request(V4["primary"]), "transmit", reply(V4["primary"]))
    yield Case("arp_request_alternate_padded",
               "ARP request for the alternate address in a 60-byte (padded) frame: reply, "
               "same length", request(V4["alternate"], pad=True), "transmit",
               reply(V4["alternate"], pad=True))
    yield Case("arp_request_no_alternate_for_alternate",
               "ARP for 198.18.0.3 on a port that does not own it", request(V4["alternate"]),
               drop("arp_not_for_us"), context="no_alternate")
    yield Case("arp_request_other_address", "ARP request for an address the port does not own",
               request("198.18.0.50"), drop("arp_not_for_us"))
    yield Case("arp_reply_dropped", "an ARP reply addressed to us: nothing to answer",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               ARP(op=2, hwsrc=CLIENT_MAC, psrc=CLIENT4, hwdst=PORT_MAC, pdst=V4["primary"]),
               drop("arp_reply"))
    yield Case("arp_gratuitous_announcement",
               "gratuitous ARP announcement (a reply broadcast): nothing to answer",
               Ether(dst=BROADCAST, src=CLIENT_MAC) /
               ARP(op=2, hwsrc=CLIENT_MAC, psrc=CLIENT4, hwdst=BROADCAST, pdst=CLIENT4),
               drop("arp_reply"))
    # The neighbour cache (engine/neighbour.h): what the gateway says about itself goes to the
    # control thread; RFC 826's merge updates only addresses the cache already has.
    yield Case("arp_reply_from_gateway",
               "ARP reply from the watched gateway 198.18.0.1: to the control thread",
               Ether(dst=PORT_MAC, src=GATEWAY_MAC) /
               ARP(op=2, hwsrc=GATEWAY_MAC, psrc=GATEWAY4, hwdst=PORT_MAC, pdst=V4["primary"]),
               TO_CONTROL)
    yield Case("arp_gratuitous_reply_from_gateway",
               "gratuitous ARP reply (broadcast, sender = target) from the watched gateway: "
               "to the control thread",
               Ether(dst=BROADCAST, src=GATEWAY_MAC) /
               ARP(op=2, hwsrc=GATEWAY_MAC, psrc=GATEWAY4, hwdst=BROADCAST, pdst=GATEWAY4),
               TO_CONTROL)
    yield Case("arp_announcement_request_from_gateway",
               "ARP announcement (RFC 5227 §2.3: a request, sender = target) from the watched "
               "gateway: to the control thread",
               Ether(dst=BROADCAST, src=GATEWAY_MAC) /
               ARP(op=1, hwsrc=GATEWAY_MAC, psrc=GATEWAY4, hwdst="00:00:00:00:00:00",
                   pdst=GATEWAY4),
               TO_CONTROL)
    yield Case("arp_reply_from_gateway_multicast_sender",
               "ARP reply for the watched gateway with a multicast sender MAC: nobody's "
               "address, nothing to learn",
               Ether(dst=PORT_MAC, src=GATEWAY_MAC) /
               ARP(op=2, hwsrc="01:00:5e:00:00:01", psrc=GATEWAY4, hwdst=PORT_MAC,
                   pdst=V4["primary"]),
               drop("arp_reply"))
    yield Case("arp_request_from_gateway",
               "ARP request from the watched gateway for our address: answered, not diverted",
               Ether(dst=BROADCAST, src=GATEWAY_MAC) /
               ARP(op=1, hwsrc=GATEWAY_MAC, psrc=GATEWAY4, hwdst="00:00:00:00:00:00",
                   pdst=V4["primary"]),
               "transmit",
               Ether(dst=GATEWAY_MAC, src=PORT_MAC) /
               ARP(op=2, hwsrc=PORT_MAC, psrc=V4["primary"], hwdst=GATEWAY_MAC, pdst=GATEWAY4))
    yield Case("arp_ptype_ipv6", "ARP with protocol type IPv6 (plen 16): not Ethernet/IPv4",
               Ether(dst=BROADCAST, src=CLIENT_MAC) /
               ARP(op=1, ptype=0x86DD, plen=16, hwsrc=CLIENT_MAC, psrc=CLIENT6,
                   hwdst="00:00:00:00:00:00", pdst=V6["primary"]),
               drop("arp_not_for_us"))
    yield Case("arp_hlen_8", "ARP with hardware address length 8: not Ethernet/IPv4",
               Ether(dst=BROADCAST, src=CLIENT_MAC) /
               ARP(op=1, hwlen=8, hwsrc=b"\x02\0\0\0\0\x99\0\0", hwdst=b"\0" * 8,
                   psrc=CLIENT4, pdst=V4["primary"]),
               drop("arp_not_for_us"))
    yield Case("arp_truncated", "ARP request cut after 16 of its 28 bytes",
               bytes(request(V4["primary"]))[:14 + 16], drop("truncated_frame"))


def icmp_cases():
    data = bytes(range(56))  # the payload of a default `ping`
    request = (Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], id=0x0BEE, ttl=57, flags="DF") /
               ICMP(type=8, code=0, id=0x1234, seq=7) / Raw(data))
    reply = (Ether(dst=CLIENT_MAC, src=PORT_MAC) /
             IP(src=V4["primary"], dst=CLIENT4, id=0x0BEE, ttl=64, flags="DF") /
             ICMP(type=0, code=0, id=0x1234, seq=7) / Raw(data))
    yield Case("icmp_echo_request", "ICMP echo request with 56 bytes of data: echo reply, TTL 64",
               request, "transmit", reply)

    yield Case("icmp_echo_request_ip_options",
               "ICMP echo with 4 bytes of IPv4 options (IHL 6): echo reply, options kept",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], id=0x0BF0, ttl=57, options=OPTIONS) /
               ICMP(type=8, code=0, id=0x1234, seq=9) / Raw(b"options"),
               "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IP(src=V4["primary"], dst=CLIENT4, id=0x0BF0, ttl=64, options=OPTIONS) /
               ICMP(type=0, code=0, id=0x1234, seq=9) / Raw(b"options"))

    small = (Ether(dst=PORT_MAC, src=CLIENT_MAC) /
             IP(src=CLIENT4, dst=V4["alternate"], id=0x0BEF, ttl=57) /
             ICMP(type=8, code=0, id=0x4321, seq=1) / Raw(b"ping"))
    assert len(small) == 46
    small_reply = (Ether(dst=CLIENT_MAC, src=PORT_MAC) /
                   IP(src=V4["alternate"], dst=CLIENT4, id=0x0BEF, ttl=64) /
                   ICMP(type=0, code=0, id=0x4321, seq=1) / Raw(b"ping"))
    yield Case("icmp_echo_request_padded",
               "ICMP echo to the alternate address in a 60-byte frame (14 bytes of Ethernet "
               "padding): the reply is trimmed to the IP packet",
               small / Padding(b"\0" * 14), "transmit", small_reply)

    # An echo request with identifier 0, sequence 0 and no data becomes an all-zero reply,
    # whose checksum must be 0xffff (-0: RFC 1071 §4, the complement of a +0 sum). RFC 1624
    # eqn. 3, which the handler uses, yields 0x0000 there, which does not verify.
    yield Case("icmp_echo_all_zero_reply",
               "ICMP echo request with id 0, seq 0, no data: the reply is all zeros but its "
               "checksum, 0xffff",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], id=0x0BF1, ttl=57) /
               ICMP(type=8, code=0, id=0, seq=0) / Padding(b"\0" * 18),
               "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IP(src=V4["primary"], dst=CLIENT4, id=0x0BF1, ttl=64) /
               ICMP(type=0, code=0, id=0, seq=0))

    yield Case("icmp_timestamp_request", "ICMP timestamp request (type 13): not echo",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               ICMP(type=13, code=0, id=1, seq=1, ts_ori=0, ts_rx=0, ts_tx=0),
               drop("icmp_not_echo"))
    good = bytes(ICMP(type=8, code=0, id=0x1234, seq=8) / Raw(b"abcdefgh"))
    bad_checksum = struct.unpack("!H", good[2:4])[0] ^ 0x0100
    yield Case("icmp_bad_checksum", "ICMP echo request whose checksum is wrong",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               ICMP(type=8, code=0, id=0x1234, seq=8, chksum=bad_checksum) / Raw(b"abcdefgh"),
               drop("bad_icmp_checksum"))
    yield Case("icmp_truncated", "ICMP message of 4 bytes (shorter than its 8-byte header)",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], proto=1) / Raw(b"\x08\x00\xf7\xff"),
               drop("truncated_frame"))


def solicited_node(address):
    """RFC 4291 §2.7.1: ff02::1:ff00:0/104 plus the address's low 24 bits."""
    prefix = bytes.fromhex("ff02") + bytes(9) + bytes.fromhex("01ff")
    return str(ipaddress.ip_address(prefix + ip_bytes(address)[13:]))


def solicited_node_mac(address):
    raw = ip_bytes(address)
    return "33:33:ff:" + ":".join(f"{b:02x}" for b in raw[13:])


def icmpv6_cases():
    data = b"punchline echo data"
    yield Case("icmpv6_echo_request", "ICMPv6 echo request: echo reply, hop limit 64",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], hlim=57) /
               ICMPv6EchoRequest(id=0x1234, seq=3, data=data),
               "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IPv6(src=V6["primary"], dst=CLIENT6, hlim=64) /
               ICMPv6EchoReply(id=0x1234, seq=3, data=data))
    yield Case("icmpv6_echo_to_solicited_node",
               "ICMPv6 echo to our solicited-node group: only unicast echo is answered",
               Ether(dst=solicited_node_mac(V6["primary"]), src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=solicited_node(V6["primary"]), hlim=64) /
               ICMPv6EchoRequest(id=1, seq=1), drop("not_for_us_l3"))

    def solicitation(target, destination, hlim=255, source=CLIENT6, option=True):
        mac = (solicited_node_mac(destination) if destination.startswith("ff02")
               else PORT_MAC)
        frame = (Ether(dst=mac, src=CLIENT_MAC) / IPv6(src=source, dst=destination, hlim=hlim) /
                 ICMPv6ND_NS(tgt=target))
        return frame / ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC) if option else frame

    def advertisement(target):
        # RFC 4861 §7.2.4: solicited (S), override (O), to the solicitor, from the target
        # address, with the target link-layer address option; hop limit 255 (§7.1.2).
        return (Ether(dst=CLIENT_MAC, src=PORT_MAC) / IPv6(src=target, dst=CLIENT6, hlim=255) /
                ICMPv6ND_NA(R=0, S=1, O=1, tgt=target) / ICMPv6NDOptDstLLAddr(lladdr=PORT_MAC))

    primary_group = solicited_node(V6["primary"])
    assert primary_group == "ff02::1:ff00:2"
    yield Case("ndp_solicitation_primary",
               "NS for 2001:db8::2 to ff02::1:ff00:2 with SLLA: solicited NA with TLLA",
               solicitation(V6["primary"], primary_group), "transmit",
               advertisement(V6["primary"]))
    yield Case("ndp_solicitation_alternate",
               "NS for the alternate 2001:db8::3 to its solicited-node group: NA",
               solicitation(V6["alternate"], solicited_node(V6["alternate"])), "transmit",
               advertisement(V6["alternate"]))
    yield Case("ndp_solicitation_unicast_without_option",
               "unicast NS (neighbour unreachability probe) without SLLA: the 24-byte NS "
               "grows into a 32-byte NA", solicitation(V6["primary"], V6["primary"], option=False),
               "transmit", advertisement(V6["primary"]))
    yield Case("ndp_solicitation_hop_limit_64",
               "NS with hop limit 64 (RFC 4861 §7.1.1: must be 255): invalid",
               solicitation(V6["primary"], primary_group, hlim=64), drop("ndp_invalid"))
    yield Case("ndp_solicitation_other_target",
               "NS for 2001:db8:1::2, which shares our solicited-node group: not ours",
               solicitation("2001:db8:1::2", primary_group), drop("ndp_not_for_us"))
    yield Case("ndp_solicitation_other_group",
               "NS for 2001:db8::50 to its own solicited-node group: not a group we joined",
               solicitation("2001:db8::50", solicited_node("2001:db8::50")),
               drop("not_for_us_l3"))
    # RFC 4861 §7.1.1 counts a solicitation from :: to a solicited-node group, without SLLA,
    # as valid; §7.2.4: "If the source of the solicitation is the unspecified address, the
    # node MUST set the Solicited flag to zero and multicast the advertisement to the
    # all-nodes address"; RFC 4862 §5.4.3: an address the interface already has is defended
    # that way. The handler drops the probe (ndp_invalid), so a host autoconfiguring our
    # address never learns it is taken.
    yield Case("ndp_solicitation_dad",
               "duplicate address detection probe for our address: defended with an NA to "
               "ff02::1, S clear (RFC 4861 §7.2.4)",
               solicitation(V6["primary"], primary_group, source="::", option=False),
               "transmit",
               Ether(dst="33:33:00:00:00:01", src=PORT_MAC) /
               IPv6(src=V6["primary"], dst="ff02::1", hlim=255) /
               ICMPv6ND_NA(R=0, S=0, O=1, tgt=V6["primary"]) /
               ICMPv6NDOptDstLLAddr(lladdr=PORT_MAC))
    # RFC 4861 §7.1.1: "All included options have a length that is greater than zero."
    # (a node MUST silently discard a solicitation that fails a validity check).
    zero_option = (Ether(dst=solicited_node_mac(V6["primary"]), src=CLIENT_MAC) /
                   IPv6(src=CLIENT6, dst=primary_group, hlim=255) /
                   ICMPv6ND_NS(tgt=V6["primary"]) / Raw(b"\x01\x00" + bytes.fromhex(
                       CLIENT_MAC.replace(":", ""))))
    yield Case("ndp_solicitation_zero_length_option",
               "NS with an option whose length field is 0: invalid (RFC 4861 §7.1.1)",
               zero_option, drop("ndp_invalid"))
    yield Case("ndp_advertisement_dropped", "a (solicited) NA sent to us: nothing to answer",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], hlim=255) /
               ICMPv6ND_NA(R=0, S=1, O=1, tgt=CLIENT6) / ICMPv6NDOptDstLLAddr(lladdr=CLIENT_MAC),
               drop("ndp_advertisement"))
    yield Case("ndp_unsolicited_advertisement_all_nodes",
               "an unsolicited NA to ff02::1 (RFC 4861 §7.2.6) about an address the neighbour "
               "cache does not watch: nothing to learn",
               Ether(dst="33:33:00:00:00:01", src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst="ff02::1", hlim=255) /
               ICMPv6ND_NA(R=0, S=0, O=1, tgt=CLIENT6) / ICMPv6NDOptDstLLAddr(lladdr=CLIENT_MAC),
               drop("ndp_advertisement"))

    def gateway_advertisement(destination=V6["primary"], hlim=255, solicited=1, code=0,
                              option=True):
        mac = "33:33:00:00:00:01" if destination == "ff02::1" else PORT_MAC
        frame = (Ether(dst=mac, src=GATEWAY_MAC) /
                 IPv6(src=GATEWAY6, dst=destination, hlim=hlim) /
                 ICMPv6ND_NA(R=1, S=solicited, O=1, code=code, tgt=GATEWAY6))
        return frame / ICMPv6NDOptDstLLAddr(lladdr=GATEWAY_MAC) if option else frame

    yield Case("ndp_advertisement_from_gateway",
               "solicited NA with TLLA from the watched gateway 2001:db8::1: to the control "
               "thread", gateway_advertisement(), TO_CONTROL)
    yield Case("ndp_unsolicited_advertisement_from_gateway_all_nodes",
               "unsolicited NA (S clear) to ff02::1 from the watched gateway, announcing its "
               "MAC (RFC 4861 §7.2.6): to the control thread",
               gateway_advertisement(destination="ff02::1", solicited=0), TO_CONTROL)
    # RFC 4861 §7.1.2: "A node MUST silently discard any received Neighbor Advertisement
    # messages that do not satisfy all of the following validity checks".
    yield Case("ndp_advertisement_from_gateway_hop_limit_64",
               "NA from the watched gateway with hop limit 64 (RFC 4861 §7.1.2: must be 255)",
               gateway_advertisement(hlim=64), drop("ndp_invalid"))
    yield Case("ndp_advertisement_from_gateway_code_1",
               "NA from the watched gateway with ICMP code 1 (RFC 4861 §7.1.2: must be 0)",
               gateway_advertisement(code=1), drop("ndp_invalid"))
    yield Case("ndp_advertisement_from_gateway_solicited_to_all_nodes",
               "NA to ff02::1 with the Solicited flag (RFC 4861 §7.1.2: must be clear to a "
               "multicast destination)",
               gateway_advertisement(destination="ff02::1", solicited=1), drop("ndp_invalid"))
    zero_option_advertisement = (Ether(dst=PORT_MAC, src=GATEWAY_MAC) /
                                 IPv6(src=GATEWAY6, dst=V6["primary"], hlim=255) /
                                 ICMPv6ND_NA(R=1, S=1, O=1, tgt=GATEWAY6) /
                                 Raw(b"\x02\x00" + bytes.fromhex(GATEWAY_MAC.replace(":", ""))))
    yield Case("ndp_advertisement_from_gateway_zero_length_option",
               "NA from the watched gateway with an option of length 0 (RFC 4861 §7.1.2)",
               zero_option_advertisement, drop("ndp_invalid"))
    # RFC 4861 §7.2.4: the answer to a unicast solicitation may leave the option out (Linux
    # does); §7.2.5: it still confirms an entry that has a MAC.
    yield Case("ndp_advertisement_from_gateway_without_option",
               "valid NA from the watched gateway without a target link-layer address (an "
               "answer to a unicast probe): to the control thread, which it can confirm",
               gateway_advertisement(option=False), TO_CONTROL)
    yield Case("icmpv6_router_solicitation",
               "router solicitation unicast to the port: ICMPv6 it does not handle",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], hlim=255) / ICMPv6ND_RS() /
               ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC),
               drop("icmp_not_echo"))
    yield Case("icmpv6_router_solicitation_all_routers",
               "router solicitation to ff02::2 (its usual destination): not for us",
               Ether(dst="33:33:00:00:00:02", src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst="ff02::2", hlim=255) / ICMPv6ND_RS() /
               ICMPv6NDOptSrcLLAddr(lladdr=CLIENT_MAC),
               drop("not_for_us_l3"))
    yield Case("icmpv6_bad_checksum", "ICMPv6 echo request with a wrong checksum",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], hlim=64) /
               ICMPv6EchoRequest(id=9, seq=9, cksum=0x1234), drop("bad_icmp_checksum"))


def l2_l3_drop_cases():
    binding = stun_message(BINDING_REQUEST, txid_for("l3"), [])
    yield Case("truncated_ethernet", "a 10-byte frame: shorter than an Ethernet header",
               bytes(Ether(dst=PORT_MAC, src=CLIENT_MAC))[:10], drop("truncated_frame"))
    yield Case("l2_unicast_to_other_mac", "IPv4 to another host's MAC",
               Ether(dst=OTHER_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding), drop("not_for_us_l2"))
    yield Case("l2_ipv4_multicast_mac", "a frame to an IPv4 multicast MAC (01:00:5e:...)",
               Ether(dst="01:00:5e:00:00:fb", src=CLIENT_MAC) /
               IP(src=CLIENT4, dst="224.0.0.251") / UDP(sport=5353, dport=5353) / Raw(b"mdns"),
               drop("not_for_us_l2"))
    yield Case("vlan_tagged", "an 802.1Q-tagged frame (ethertype 0x8100)",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / Dot1Q(vlan=10) /
               IP(src=CLIENT4, dst=V4["primary"]) / UDP(sport=CLIENT_PORT, dport=STUN_PORT) /
               Raw(binding), drop("unsupported_ethertype"))
    yield Case("ipv4_version_5", "version field 5 in an Ethernet IPv4 frame",
               client_udp4(binding, version=5), drop("bad_ipv4_header"))
    yield Case("ipv4_ihl_4", "IHL 4 (16 bytes): less than the minimum 5 words",
               client_udp4(binding, ihl=4), drop("bad_ipv4_header"))
    yield Case("ipv4_total_length_short", "total length 16, less than the 20-byte header",
               client_udp4(binding, len=16), drop("bad_ipv4_header"))
    yield Case("ipv4_truncated_header", "an IPv4 frame cut inside the IP header",
               bytes(client_udp4(binding))[:14 + 12], drop("truncated_frame"))
    yield Case("ipv4_total_length_past_frame",
               "total length 200 in a frame that carries 48 bytes of IP",
               client_udp4(binding, len=200), drop("truncated_frame"))
    yield Case("ipv4_bad_header_checksum", "IPv4 header checksum wrong",
               with_wrong_ipv4_checksum(client_udp4(binding)), drop("bad_ipv4_checksum"))
    yield Case("ipv4_fragment_more_fragments", "first fragment (MF set, offset 0)",
               client_udp4(binding, flags="MF"), drop("ip_fragment"))
    yield Case("ipv4_fragment_offset", "a later fragment (offset 64 bytes, MF clear)",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], proto=17, frag=8) / Raw(binding),
               drop("ip_fragment"))
    yield Case("ipv4_not_for_us", "UDP to 198.18.0.50, not an address of the port",
               client_udp4(binding, destination="198.18.0.50"), drop("not_for_us_l3"))
    yield Case("ipv4_tcp", "TCP to the STUN port: the engine serves UDP only",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               TCP(sport=CLIENT_PORT, dport=STUN_PORT, flags="S", seq=1000),
               drop("unsupported_protocol"))
    yield Case("ipv6_version_4", "version 4 in an IPv6 (0x86DD) frame",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(version=4, src=CLIENT6, dst=V6["primary"]) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding), drop("bad_ipv6_header"))
    yield Case("ipv6_truncated_header", "an IPv6 frame cut inside the IP header",
               bytes(client_udp6(binding))[:14 + 30], drop("truncated_frame"))
    yield Case("ipv6_payload_length_past_frame", "payload length 500 in a short frame",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], plen=500) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding), drop("truncated_frame"))
    yield Case("ipv6_fragment_header", "IPv6 with a fragment header",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IPv6(src=CLIENT6, dst=V6["primary"]) /
               IPv6ExtHdrFragment(id=0x1234, m=1, offset=0) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding), drop("ip_fragment"))
    yield Case("ipv6_hop_by_hop", "IPv6 with a hop-by-hop options header",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IPv6(src=CLIENT6, dst=V6["primary"]) /
               IPv6ExtHdrHopByHop() / UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding),
               drop("ipv6_extension_header"))
    yield Case("ipv6_not_for_us", "UDP to 2001:db8::50, not an address of the port",
               client_udp6(binding, destination="2001:db8::50"), drop("not_for_us_l3"))
    yield Case("ipv6_tcp", "TCP over IPv6 to the STUN port",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IPv6(src=CLIENT6, dst=V6["primary"]) /
               TCP(sport=CLIENT_PORT, dport=STUN_PORT, flags="S", seq=1000),
               drop("unsupported_protocol"))


def udp_drop_cases():
    binding = stun_message(BINDING_REQUEST, txid_for("udp"), [])
    yield Case("udp_length_4", "UDP length field 4: less than the UDP header",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT, len=4, chksum=0) / Raw(binding),
               drop("bad_udp_length"))
    yield Case("udp_length_past_ip_payload", "UDP length 200 in a 48-byte IP payload",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IP(src=CLIENT4, dst=V4["primary"]) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT, len=200, chksum=0) / Raw(binding),
               drop("bad_udp_length"))
    yield Case("udp_shorter_than_header", "IPv4 protocol UDP with 4 bytes of payload",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src=CLIENT4, dst=V4["primary"], proto=17) / Raw(b"\x9c\x40\x0d\x96"),
               drop("bad_udp_length"))
    yield Case("udp_bad_checksum_ipv4", "UDP/IPv4 with a wrong checksum on a verifying port",
               with_wrong_udp_checksum(client_udp4(binding)), drop("bad_udp_checksum"))
    yield Case("udp_zero_checksum_ipv6",
               "UDP/IPv6 with checksum 0 (RFC 8200 §8.1: not allowed over IPv6)",
               client_udp6(binding, udp_chksum=0), drop("bad_udp_checksum"))
    yield Case("udp_bad_checksum_ipv6", "UDP/IPv6 with a wrong checksum",
               with_wrong_udp_checksum(client_udp6(binding)), drop("bad_udp_checksum"))
    yield Case("udp_to_port_53", "UDP to port 53: no role listens there",
               client_udp4(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", dport=53),
               drop("no_service"))
    yield Case("udp_alternate_port_without_alternate",
               "UDP to 3479 on a port with no alternate STUN port",
               client_udp4(binding, dport=STUN_ALTERNATE_PORT), drop("no_service"),
               context="no_alternate")


def stun_drop_cases():
    yield Case("stun_rtp_payload", "an RTP packet (first byte 0x80) on the STUN port",
               client_udp4(bytes.fromhex("80e01234000003e8deadbeef") + b"\0" * 160),
               drop("stun_garbage"))
    yield Case("stun_short_payload", "a 12-byte payload: shorter than a STUN header",
               client_udp4(stun_message(BINDING_REQUEST, txid_for("short"), [])[:12]),
               drop("stun_garbage"))
    bad_cookie = bytearray(stun_message(BINDING_REQUEST, txid_for("cookie"), []))
    bad_cookie[4:8] = b"\x21\x12\xa4\x43"
    yield Case("stun_bad_cookie", "a Binding request whose magic cookie is 0x2112A443",
               client_udp4(bytes(bad_cookie)), drop("stun_garbage"))
    yield Case("stun_binding_indication", "a Binding indication (keepalive): not answered",
               client_udp4(stun_message(BINDING_INDICATION, txid_for("indication"), [],
                                        fingerprint=True)),
               drop("stun_not_request"))
    yield Case("stun_success_response", "a Binding success response sent to the server",
               client_udp4(stun_message(
                   BINDING_SUCCESS, txid_for("response"),
                   [attribute(XOR_MAPPED_ADDRESS,
                              xor_address_value("203.0.113.9", 5000, txid_for("response")))])),
               drop("stun_not_request"))
    txid = txid_for("stun_bad_fingerprint")
    good = bytearray(stun_message(BINDING_REQUEST, txid, [], fingerprint=True))
    good[-1] ^= 0x01
    yield Case("stun_bad_fingerprint", "a Binding request whose FINGERPRINT is off by one bit",
               client_udp4(bytes(good)), drop("stun_bad_fingerprint"))
    txid = txid_for("stun_response_too_large")
    request = client_udp4(stun_message(BINDING_REQUEST, txid, []))
    yield Case("stun_response_too_large",
               "a Binding request in a buffer with no tailroom (capacity = frame length): the "
               "response cannot grow in place", request, drop("stun_response_too_large"),
               capacity=len(request))


def stun_cases():
    def binding_v4(name, description, attributes=(), fingerprint=False, context="full",
                   destination=V4["primary"], dport=STUN_PORT, change=0, padding=0,
                   response_port=None, wrong_checksum=False, udp_checksum=None,
                   ip_options=None):
        txid = txid_for(name)
        options = {} if ip_options is None else {"options": ip_options}
        request = client_udp4(stun_message(BINDING_REQUEST, txid, list(attributes), fingerprint),
                              destination=destination, dport=dport, udp_chksum=udp_checksum,
                              **options)
        payload, source, sport, reply_port = binding_success(
            txid, 4, destination, dport, context, change=change, padding=padding,
            fingerprint=fingerprint, response_port=response_port)
        frame = with_wrong_udp_checksum(request) if wrong_checksum else request
        return Case(name, description, frame, "transmit",
                    server_udp4(payload, source, sport, dport=reply_port, **options),
                    context=context)

    def binding_v6(name, description, attributes=(), fingerprint=False, context="full",
                   destination=V6["primary"], dport=STUN_PORT, change=0):
        txid = txid_for(name)
        request = client_udp6(stun_message(BINDING_REQUEST, txid, list(attributes), fingerprint),
                              destination=destination, dport=dport)
        payload, source, sport, reply_port = binding_success(
            txid, 6, destination, dport, context, change=change, fingerprint=fingerprint)
        return Case(name, description, request, "transmit",
                    server_udp6(payload, source, sport, dport=reply_port), context=context)

    def change_request(flags):
        return attribute(CHANGE_REQUEST, struct.pack("!I", flags))

    def error_v4(name, description, code, reason, attributes=(), unknown=(), fingerprint=False,
                 context="full", message_type=BINDING_REQUEST, length=None, pending=None):
        txid = txid_for(name)
        request = client_udp4(stun_message(message_type, txid, list(attributes), fingerprint,
                                           length=length))
        error_type = message_type | 0x0110   # RFC 8489 §5: class bits C1 C0 = 1 1
        payload = error_response(error_type, txid, code, reason, unknown, fingerprint)
        return Case(name, description, request, "transmit",
                    server_udp4(payload, V4["primary"], STUN_PORT), context=context,
                    pending=pending)

    yield binding_v4("stun_binding_ipv4", "Binding request without FINGERPRINT: XOR-MAPPED-"
                     "ADDRESS, MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE")
    yield binding_v4("stun_binding_ipv4_fingerprint",
                     "Binding request with FINGERPRINT: so is the response", fingerprint=True)
    yield binding_v6("stun_binding_ipv6", "Binding request over IPv6", fingerprint=True)
    yield binding_v4("stun_binding_alternate_port",
                     "to 198.18.0.2:3479: answered from there, OTHER-ADDRESS 198.18.0.3:3478",
                     dport=STUN_ALTERNATE_PORT)
    yield binding_v4("stun_binding_alternate_address",
                     "to 198.18.0.3:3478: answered from there, OTHER-ADDRESS 198.18.0.2:3479",
                     destination=V4["alternate"])
    for label, flags in (("ip", CHANGE_IP), ("port", CHANGE_PORT),
                         ("ip_and_port", CHANGE_IP | CHANGE_PORT)):
        yield binding_v4(f"stun_change_{label}_from_primary",
                         f"CHANGE-REQUEST change-{label.replace('_and_', '-and-')} arriving at "
                         "198.18.0.2:3478 (RFC 5780 §6.1 Table 1)",
                         [change_request(flags)], change=flags)
        yield binding_v4(f"stun_change_{label}_from_alternate",
                         f"CHANGE-REQUEST change-{label.replace('_and_', '-and-')} arriving at "
                         "198.18.0.3:3479: relative to the arrival address",
                         [change_request(flags)], destination=V4["alternate"],
                         dport=STUN_ALTERNATE_PORT, change=flags, fingerprint=True)
    yield binding_v4("stun_change_none", "CHANGE-REQUEST with no flag set: as without it",
                     [change_request(0)])
    yield binding_v6("stun_change_ip_and_port_ipv6",
                     "CHANGE-REQUEST change-IP and change-port over IPv6",
                     [change_request(CHANGE_IP | CHANGE_PORT)], change=CHANGE_IP | CHANGE_PORT)
    yield binding_v4("stun_response_port", "RESPONSE-PORT 40001: the response goes to that port "
                     "(RFC 5780 §7.5); XOR-MAPPED-ADDRESS still reports 40000",
                     [attribute(RESPONSE_PORT, struct.pack("!HH", 40001, 0))],
                     response_port=40001)
    yield binding_v4("stun_padding", "PADDING of 100 bytes: the response is padded as much "
                     "(RFC 5780 §7.6), never more (no amplification)",
                     [attribute(PADDING, b"\0" * 100)], padding=100, fingerprint=True)
    # The engine does not fragment and its responses carry DF, so a padded response must fit
    # the port's MTU (1500): 20 (IPv4) + 8 (UDP) + 84 (header and XOR-MAPPED-ADDRESS,
    # MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS, SOFTWARE) + 4 (PADDING header) + 1376 +
    # 8 (FINGERPRINT) = 1500 exactly.
    yield binding_v4("stun_padding_capped_at_mtu",
                     "PADDING of 1400 bytes: the response's PADDING is cut to 1376 so that the "
                     "IPv4 datagram is 1500 bytes, the port's MTU",
                     [attribute(PADDING, b"\0" * 1400)], padding=1376, fingerprint=True)
    yield binding_v4("stun_optional_unknown_ignored",
                     "an unknown comprehension-optional attribute 0xFFFE is ignored",
                     [attribute(0xFFFE, b"\x01\x02\x03")])
    yield binding_v4("stun_udp_checksum_zero_ipv4",
                     "UDP/IPv4 checksum 0 means none (RFC 768): answered on a verifying port",
                     udp_checksum=0)
    yield binding_v4("stun_ipv4_options",
                     "an IPv4 header with 4 bytes of options (IHL 6): answered, header kept",
                     ip_options=OPTIONS)
    yield binding_v4("stun_trust_checksum_wrong_udp_checksum",
                     "a wrong UDP checksum on a port that trusts the NIC: answered",
                     context="trust_checksum", wrong_checksum=True)
    yield binding_v4("stun_no_alternate_binding",
                     "Binding request on a port without alternates: RESPONSE-ORIGIN, no "
                     "OTHER-ADDRESS", context="no_alternate")
    yield binding_v6("stun_no_alternate_binding_ipv6", "the same over IPv6",
                     context="no_alternate", fingerprint=True)

    yield error_v4("stun_no_alternate_change_request",
                   "CHANGE-REQUEST on a port without alternates: 420 listing 0x0003 "
                   "(RFC 5780 §6.1)", 420, "Unknown Attribute",
                   [change_request(CHANGE_IP)], unknown=[CHANGE_REQUEST],
                   context="no_alternate")
    yield error_v4("stun_unknown_comprehension_required",
                   "unknown comprehension-required attribute 0x7FFF: 420 listing it "
                   "(RFC 8489 §6.3.1.1)", 420, "Unknown Attribute",
                   [attribute(0x7FFF, b"\0\0\0\0")], unknown=[0x7FFF], fingerprint=True)
    yield error_v4("stun_unknown_several",
                   "two unknown comprehension-required attributes, one repeated: each listed "
                   "once", 420, "Unknown Attribute",
                   [attribute(0x7FFF, b""), attribute(0x4000, b"\x01"), attribute(0x7FFF, b"")],
                   unknown=[0x7FFF, 0x4000])
    yield error_v4("stun_turn_attribute_in_binding",
                   "REQUESTED-TRANSPORT (a TURN attribute) in a Binding request: 420",
                   420, "Unknown Attribute", [attribute(REQUESTED_TRANSPORT, b"\x11\0\0\0")],
                   unknown=[REQUESTED_TRANSPORT])
    yield error_v4("stun_attribute_overrun",
                   "an attribute whose length runs past the message: 400", 400,
                   "Bad Request (attribute_overrun)",
                   [struct.pack("!HH", SOFTWARE_ATTR, 100) + b"abcd"])
    # RFC 8489 §6.3: the agent "checks ... that the message length is sensible ... If any
    # errors are detected, the message is silently discarded."
    txid = txid_for("stun_length_mismatch")
    yield Case("stun_length_mismatch",
               "STUN length field 8 in a 20-byte datagram: silently discarded (RFC 8489 §6.3)",
               client_udp4(stun_message(BINDING_REQUEST, txid, [], length=8)),
               drop("stun_garbage"))
    txid = txid_for("stun_length_not_multiple_of_4")
    yield Case("stun_length_not_multiple_of_4",
               "STUN length field 2 (not a multiple of 4, RFC 8489 §5): silently discarded",
               client_udp4(stun_message(BINDING_REQUEST, txid, [], length=2) + b"\0\0"),
               drop("stun_garbage"))
    # RFC 8489 §6.3: the agent checks "that the method value is a supported method ... If any
    # errors are detected, the message is silently discarded."
    yield Case("stun_allocate_request",
               "Allocate on a port that serves only Binding: silently discarded (RFC 8489 §6.3)",
               client_udp4(stun_message(ALLOCATE_REQUEST, txid_for("stun_allocate_request"),
                                        [attribute(REQUESTED_TRANSPORT, b"\x11\0\0\0")],
                                        True)),
               drop("stun_unsupported_method"))
    yield error_v4("stun_change_request_bad_length", "a CHANGE-REQUEST of 8 bytes: 400", 400,
                   "Bad Request (CHANGE-REQUEST is not 4 bytes)",
                   [attribute(CHANGE_REQUEST, b"\0\0\0\x04\0\0\0\0")])
    # The 400 goes where any response goes without a usable RESPONSE-PORT: to the request's
    # source port (RFC 8489 §6.3; RFC 768: port 0 is no destination).
    yield error_v4("stun_response_port_zero",
                   "RESPONSE-PORT 0: 400 to the request's source port", 400,
                   "Bad Request (RESPONSE-PORT is not a port)",
                   [attribute(RESPONSE_PORT, b"\0\0\0\0")])
    # RFC 5780 §6.1: "If the Request contained a PADDING attribute ... If the Request also
    # contains the RESPONSE-PORT attribute the server MUST return an error response of type
    # 400."
    yield error_v4("stun_padding_with_response_port",
                   "PADDING together with RESPONSE-PORT: 400 (RFC 5780 §6.1)", 400,
                   "Bad Request (PADDING with RESPONSE-PORT)",
                   [attribute(RESPONSE_PORT, struct.pack("!HH", 40001, 0)),
                    attribute(PADDING, b"\0" * 100)])


def source_and_ecn_cases():
    """RFC 1122 §3.2.1.3 and RFC 4291 §2.5.3, §2.7: sources nobody can be answered at; and
    RFC 3168 §5: STUN over UDP is not ECN-capable, so a response never echoes ECN bits."""
    binding = stun_message(BINDING_REQUEST, txid_for("bad_source"), [])
    for name, source in (("broadcast", "255.255.255.255"), ("multicast", "224.0.0.1"),
                         ("loopback", "127.0.0.1"), ("unspecified", "0.0.0.0"),
                         ("own_address", V4["primary"])):
        yield Case(f"ipv4_source_{name}", f"a Binding request from {source}: discarded",
                   Ether(dst=PORT_MAC, src=CLIENT_MAC) /
                   IP(src=source, dst=V4["primary"]) /
                   UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding),
                   drop("bad_source_address"))
    yield Case("icmp_echo_from_broadcast", "an ICMP echo request from 255.255.255.255",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IP(src="255.255.255.255", dst=V4["primary"]) /
               ICMP(type=8, code=0, id=1, seq=1), drop("bad_source_address"))
    yield Case("udp_source_port_zero", "a Binding request from UDP port 0: nowhere to answer",
               client_udp4(binding, sport=0), drop("bad_source_address"))
    for name, source in (("multicast", "ff02::1"), ("loopback", "::1"),
                         ("unspecified", "::"), ("own_address", V6["primary"])):
        yield Case(f"ipv6_source_{name}", f"a Binding request from {source}: discarded",
                   Ether(dst=PORT_MAC, src=CLIENT_MAC) /
                   IPv6(src=source, dst=V6["primary"]) /
                   UDP(sport=CLIENT_PORT, dport=STUN_PORT) / Raw(binding),
                   drop("bad_source_address"))
    yield Case("icmpv6_echo_from_unspecified", "an ICMPv6 echo request from ::",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) / IPv6(src="::", dst=V6["primary"]) /
               ICMPv6EchoRequest(id=1, seq=1), drop("bad_source_address"))

    txid = txid_for("stun_ecn_ipv4")
    payload, source, sport, reply_port = binding_success(txid, 4, V4["primary"], STUN_PORT, "full")
    yield Case("stun_ecn_ipv4", "a Binding request marked CE (TOS 0x03): the response is not",
               client_udp4(stun_message(BINDING_REQUEST, txid, []), tos=0x03), "transmit",
               server_udp4(payload, source, sport, dport=reply_port))
    txid = txid_for("stun_ecn_ipv6")
    payload, source, sport, reply_port = binding_success(txid, 6, V6["primary"], STUN_PORT, "full")
    yield Case("stun_ecn_ipv6",
               "over IPv6, traffic class 0xb3 (ECN CE): the response keeps the DSCP, not the ECN",
               Ether(dst=PORT_MAC, src=CLIENT_MAC) /
               IPv6(src=CLIENT6, dst=V6["primary"], hlim=57, tc=0xB3) /
               UDP(sport=CLIENT_PORT, dport=STUN_PORT) /
               Raw(stun_message(BINDING_REQUEST, txid, [])),
               "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IPv6(src=source, dst=CLIENT6, hlim=64, tc=0xB0) /
               UDP(sport=sport, dport=reply_port) / Raw(payload))


def relay_cases():
    """RFC 8656 §11.2: a Send indication's DATA leaves from the allocation's relayed address to
    the peer, as a UDP datagram of its own; §14: TTL one less than received, DSCP and ECN
    copied, DF (the engine does not fragment). What cannot be sent is discarded, counted."""
    def send(name, peer, data, port=5000):
        return stun_message(SEND_INDICATION, txid_for(name),
                            [attribute(XOR_PEER_ADDRESS,
                                       xor_address_value(peer, port, txid_for(name))),
                             attribute(DATA_ATTR, data)])
    data = b"media over the relay"
    yield Case("relay_send_indication",
               "a Send indication with a permission: its DATA to the peer, from the relayed "
               "address, through the gateway, TTL one less, TOS kept",
               client_udp4(send("relay_send_indication", RELAY_PEER, data), tos=0xB8),
               "transmit",
               Ether(dst=GATEWAY_MAC, src=PORT_MAC) /
               IP(src=RELAY_ADDRESS, dst=RELAY_PEER, id=0x5A17, flags="DF", ttl=56, tos=0xB8) /
               UDP(sport=RELAY_PORT, dport=5000) / Raw(data),
               context="relay")
    yield Case("relay_send_no_permission",
               "a Send indication to a peer without a permission: discarded (RFC 8656 §11.2)",
               client_udp4(send("relay_send_no_permission", RELAY_UNPERMITTED_PEER, data)),
               drop("turn_dropped"), context="relay")
    yield Case("relay_send_ttl_expired",
               "a Send indication that arrived with TTL 1: none left to relay it with (§14)",
               client_udp4(send("relay_send_ttl_expired", RELAY_PEER, data), ttl=1),
               drop("relay_unforwardable"), context="relay")
    yield Case("relay_send_no_next_hop",
               "a Send indication to a peer on the port's subnet whose MAC is not known yet",
               client_udp4(send("relay_send_no_next_hop", RELAY_ONLINK_PEER, data)),
               drop("relay_no_route"), context="relay")
    # The server's relayed address as a peer (peer_policy.h, rule 3): delivered in the engine
    # to the allocation on that relay port (here the client's own, whose channel 0x4002 is
    # bound to it), never to the wire; its other ports are the server's own listeners.
    yield Case("relay_send_hairpin",
               "a Send indication to the relayed address itself: delivered to the allocation "
               "there, back to its client on channel 0x4002, TTL one less at each leg",
               client_udp4(send("relay_send_hairpin", RELAY_ADDRESS, data, RELAY_PORT)),
               "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IP(src=V4["primary"], dst=CLIENT4, id=0x5A17, flags="DF", ttl=55, tos=0) /
               UDP(sport=STUN_PORT, dport=CLIENT_PORT) /
               Raw(struct.pack("!HH", 0x4002, len(data)) + data),
               context="relay")
    yield Case("relay_send_own_port",
               "a Send indication to the relayed address on its STUN port, not a relay port: "
               "the server's own listener, never reached",
               client_udp4(send("relay_send_own_port", RELAY_ADDRESS, data, STUN_PORT)),
               drop("relay_own_port"), context="relay")


def splitmix64(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def indication_txid(seed, count):
    """The shard's n-th Data indication transaction ID (RelayShard::next_indication_id: two
    splitmix64 outputs of the seed and a counter, stored little-endian)."""
    a = splitmix64((seed + 0x9E3779B97F4A7C15 * count) & 0xFFFFFFFFFFFFFFFF)
    b = splitmix64(a ^ seed)
    return struct.pack("<Q", a) + struct.pack("<Q", b)[:4]


def relay_data_cases():
    """RFC 8656 §12.6: ChannelData from the client goes to the channel's peer without its
    4-byte header; §12.5, §11.3: a peer's datagram goes to the client as ChannelData on its
    channel, else in a Data indication; §9: only from peers with a permission."""
    data = b"rtp over a channel"

    def channel_data(number, payload, length=None, padding=b""):
        return struct.pack("!HH", number, len(payload) if length is None else length) + \
            payload + padding

    yield Case("relay_channel_data",
               "ChannelData on a bound channel: its data to the peer, from the relayed address",
               client_udp4(channel_data(0x4000, data)), "transmit",
               Ether(dst=GATEWAY_MAC, src=PORT_MAC) /
               IP(src=RELAY_ADDRESS, dst=RELAY_PEER, id=0x5A17, flags="DF", ttl=56, tos=0) /
               UDP(sport=RELAY_PORT, dport=5000) / Raw(data),
               context="relay")
    yield Case("relay_channel_data_padded",
               "ChannelData padded to 4 bytes (RFC 8656 §12.5: a receiver accepts it): the "
               "padding is not relayed",
               client_udp4(channel_data(0x4000, b"hello", padding=b"\0\0\0")), "transmit",
               Ether(dst=GATEWAY_MAC, src=PORT_MAC) /
               IP(src=RELAY_ADDRESS, dst=RELAY_PEER, id=0x5A17, flags="DF", ttl=56, tos=0) /
               UDP(sport=RELAY_PORT, dport=5000) / Raw(b"hello"),
               context="relay")
    yield Case("relay_channel_data_unbound", "ChannelData on channel 0x4001, bound to nobody",
               client_udp4(channel_data(0x4001, data)), drop("relay_no_channel"),
               context="relay")
    yield Case("relay_channel_data_rfc5766_number",
               "ChannelData on 0x7FFF (RFC 5766's range, first byte 127), bound to nobody: "
               "taken as ChannelData, not as STUN",
               client_udp4(channel_data(0x7FFF, data)), drop("relay_no_channel"),
               context="relay")
    yield Case("relay_channel_data_no_allocation",
               "ChannelData from a 5-tuple with no allocation",
               client_udp4(channel_data(0x4000, data), sport=CLIENT_PORT + 1),
               drop("relay_no_allocation"), context="relay")
    yield Case("relay_channel_data_overrun",
               "ChannelData whose length field says more than the datagram holds",
               client_udp4(channel_data(0x4000, data, length=200)),
               drop("relay_bad_channel_data"), context="relay")
    yield Case("relay_channel_data_over_bandwidth",
               "ChannelData with more data than the allocation's bandwidth bucket holds (1500 "
               "bytes; 1000 a second)",
               client_udp4(channel_data(0x4000, bytes(1501))), drop("relay_bandwidth"),
               context="relay")
    yield Case("relay_channel_data_hairpin",
               "ChannelData on 0x4002, bound to the relayed address itself: delivered to the "
               "allocation there, back to its client as ChannelData 0x4002",
               client_udp4(channel_data(0x4002, data)), "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IP(src=V4["primary"], dst=CLIENT4, id=0x5A17, flags="DF", ttl=55, tos=0) /
               UDP(sport=STUN_PORT, dport=CLIENT_PORT) / Raw(channel_data(0x4002, data)),
               context="relay")

    def from_peer(peer, sport, payload, ttl=50):
        return (Ether(dst=PORT_MAC, src=GATEWAY_MAC) /
                IP(src=peer, dst=RELAY_ADDRESS, id=0x1234, ttl=ttl, tos=0x28) /
                UDP(sport=sport, dport=RELAY_PORT) / Raw(payload))

    def to_client(payload):
        return (Ether(dst=CLIENT_MAC, src=PORT_MAC) /
                IP(src=V4["primary"], dst=CLIENT4, id=0x1234, flags="DF", ttl=49, tos=0x28) /
                UDP(sport=STUN_PORT, dport=CLIENT_PORT) / Raw(payload))

    yield Case("relay_peer_on_channel",
               "a datagram from the channel's peer: to the client as ChannelData 0x4000",
               from_peer(RELAY_PEER, 5000, data), "transmit",
               to_client(channel_data(0x4000, data)), context="relay")
    txid = indication_txid(1, 1)
    indication = stun_message(DATA_INDICATION, txid,
                              [attribute(XOR_PEER_ADDRESS,
                                         xor_address_value(RELAY_PEER, 6000, txid)),
                               attribute(DATA_ATTR, data)])
    yield Case("relay_peer_data_indication",
               "a datagram from a permitted peer on a port with no channel: a Data indication "
               "(XOR-PEER-ADDRESS, DATA padded to 4 bytes)",
               from_peer(RELAY_PEER, 6000, data), "transmit", to_client(indication),
               context="relay")
    yield Case("relay_peer_no_permission",
               "a datagram to the relayed address from a peer without a permission",
               from_peer(RELAY_UNPERMITTED_PEER, 5000, data), drop("relay_no_permission"),
               context="relay")


# ---------------------------------------------------------------------------------------------
# The relay role's answers to TURN requests (RFC 8656 §7-§12 over RFC 8489's long-term
# credentials), built here from the RFC text: the nonce, the keys and the integrity are computed
# with hashlib and hmac, not taken from the engine.

REFRESH_REQUEST = 0x0004
CREATE_PERMISSION_REQUEST = 0x0008
CHANNEL_BIND_REQUEST = 0x0009

USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_ADDRESS_FAMILY = 0x0017
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
PASSWORD_ALGORITHMS = 0x8002
# RFC 8489 §18.5: MD5 1, SHA-256 2; the server offers SHA-256 first, neither with parameters.
OFFERED_ALGORITHMS = struct.pack("!HHHH", 2, 0, 1, 0)

# The relay context's credentials (golden_cases.h, make_relay_context): two users of realm
# "punchline", and the nonce key the workers share: id 1, 32 bytes of 0x33.
RELAY_REALM = b"punchline"
RELAY_USERS = {b"golden": b"golden-password", b"other": b"other-password"}
NONCE_KEY_ID = 1
NONCE_KEY = b"\x33" * 32
NONCE_LIFETIME_S = 600
# The relay's clock: golden_cases.h makes each case's shard at RELAY_SETUP_S; a case arrives
# one second later unless its file says otherwise (`relay_time:`).
RELAY_SETUP_S = 1_800_000_000
# RFC 8656 §7.2, §9, §12: the default allocation lifetime, a permission's and a channel's.
ALLOCATION_LIFETIME_S = 600
PERMISSION_LIFETIME_S = 300
CHANNEL_LIFETIME_S = 600

# RFC 8489 §14.8 and RFC 8656 §18.11 reason phrases.
REASONS = {400: "Bad Request", 401: "Unauthenticated", 403: "Forbidden",
           420: "Unknown Attribute", 437: "Allocation Mismatch", 438: "Stale Nonce",
           440: "Address Family not Supported", 441: "Wrong Credentials",
           442: "Unsupported Transport Protocol", 443: "Peer Address Family Mismatch",
           486: "Allocation Quota Reached", 508: "Insufficient Capacity"}


def success_type(request_type):
    return request_type | 0x0100


def error_type(request_type):
    return request_type | 0x0110


def long_term_key(user, algorithm=hashlib.md5):
    """RFC 8489 §9.2.2: key = MD5(username ":" realm ":" SASLprep(password)), or SHA-256 of
    the same with PASSWORD-ALGORITHM SHA-256."""
    return algorithm(user + b":" + RELAY_REALM + b":" + RELAY_USERS[user]).digest()


def relay_nonce(client_port, issued_s, client=CLIENT4):
    """The server's stateless nonce (engine/include/engine/turn_nonce.h gives the layout):
    RFC 8489 §9.2.1's cookie "obMatJos2" and the features "gAAA" (base64 of 0x800000:
    password algorithms), the key id and the issue time in hex, then HMAC-SHA256 over those 31
    characters and the client's transport address (family, IP padded to 16 bytes, port),
    truncated to 16 bytes, in hex."""
    signed = b"obMatJos2" + b"gAAA" + b"%02x" % NONCE_KEY_ID + b"%016x" % issued_s
    raw = ip_bytes(client)
    bound = bytes([1 if len(raw) == 4 else 2]) + raw.ljust(16, b"\0") + \
        struct.pack("!H", client_port)
    return signed + hmac.new(NONCE_KEY, signed + bound, hashlib.sha256).digest()[:16].hex().encode()


def signed_message(message_type, txid, attributes, key, fingerprint=False):
    """RFC 8489 §14.5: MESSAGE-INTEGRITY, HMAC-SHA1 over the message up to it, with the
    header's length counting it (and not the FINGERPRINT after it); then FINGERPRINT."""
    body = b"".join(attributes)
    header = struct.pack("!HHI", message_type, len(body) + 24, MAGIC_COOKIE) + txid
    mac = hmac.new(key, header + body, hashlib.sha1).digest()
    return stun_message(message_type, txid, attributes + [attribute(MESSAGE_INTEGRITY, mac)],
                        fingerprint)


def signed_sha256_message(message_type, txid, attributes, key):
    """RFC 8489 §14.6: MESSAGE-INTEGRITY-SHA256, HMAC-SHA256 (all 32 bytes) over the message
    up to it, with the header's length counting it."""
    body = b"".join(attributes)
    header = struct.pack("!HHI", message_type, len(body) + 36, MAGIC_COOKIE) + txid
    mac = hmac.new(key, header + body, hashlib.sha256).digest()
    return stun_message(message_type, txid,
                        attributes + [attribute(MESSAGE_INTEGRITY_SHA256, mac)])


def turn_request(message_type, name, attributes, user=b"golden", nonce=None,
                 client_port=CLIENT_PORT, relay_time=1, fingerprint=False, txid=None,
                 password_key=None):
    """A request as a client sends it after its first 401 (RFC 8489 §9.2.3): the method's
    attributes, USERNAME, REALM, the NONCE the server gave this 5-tuple, MESSAGE-INTEGRITY."""
    txid = txid or txid_for(name)
    if nonce is None:
        nonce = relay_nonce(client_port, RELAY_SETUP_S + relay_time)
    credentials = [attribute(USERNAME, user), attribute(REALM, RELAY_REALM),
                   attribute(NONCE, nonce)]
    key = password_key or long_term_key(user)
    return signed_message(message_type, txid, attributes + credentials, key, fingerprint)


def turn_answer(request_type, name, code=0, attributes=(), user=b"golden", fingerprint=False,
                txid=None, unknown=()):
    """The server's answer to an authenticated request (RFC 8656 §5, RFC 8489 §9.2.4): a
    success with the method's attributes, or ERROR-CODE (and UNKNOWN-ATTRIBUTES for 420),
    then MESSAGE-INTEGRITY with the user's key, FINGERPRINT when the request had one. No
    SOFTWARE: the relay role sends none."""
    txid = txid or txid_for(name)
    if code:
        body = [attribute(ERROR_CODE, error_code_value(code, REASONS[code]))]
        if unknown:
            body.append(attribute(UNKNOWN_ATTRIBUTES, unknown_attributes_value(unknown)))
        return signed_message(error_type(request_type), txid, body, long_term_key(user),
                              fingerprint)
    return signed_message(success_type(request_type), txid, list(attributes),
                          long_term_key(user), fingerprint)


def auth_refusal(request_type, name, code, client_port=CLIENT_PORT, relay_time=1,
                 fingerprint=False):
    """RFC 8489 §9.2.4: a 401 or 438 carries REALM and a fresh NONCE (and, our nonce
    announcing password algorithms, PASSWORD-ALGORITHMS: SHA-256 then MD5, no parameters); a
    400 none of them. Never integrity."""
    body = [attribute(ERROR_CODE, error_code_value(code, REASONS[code]))]
    if code != 400:
        body += [attribute(REALM, RELAY_REALM),
                 attribute(NONCE, relay_nonce(client_port, RELAY_SETUP_S + relay_time)),
                 attribute(PASSWORD_ALGORITHMS, OFFERED_ALGORITHMS)]
    return stun_message(error_type(request_type), txid_for(name), body, fingerprint)


def requested_transport(protocol=17):
    return attribute(REQUESTED_TRANSPORT, struct.pack("!BBH", protocol, 0, 0))


def address_family(family):
    return attribute(REQUESTED_ADDRESS_FAMILY, struct.pack("!BBH", family, 0, 0))


def peer(name, address, port=0, txid=None):
    return attribute(XOR_PEER_ADDRESS, xor_address_value(address, port, txid or txid_for(name)))


def channel_number(number):
    return attribute(CHANNEL_NUMBER, struct.pack("!HH", number, 0))


def lifetime(seconds):
    return attribute(LIFETIME, struct.pack("!I", seconds))


def relay_frames(request, answer, client_port=CLIENT_PORT):
    """A request from CLIENT4:client_port to the STUN port, and its answer on the same 5-tuple
    (respond_turn: framed as the STUN role frames, TTL 64, DF, the request's IP ID)."""
    return (client_udp4(request, sport=client_port),
            server_udp4(answer, V4["primary"], STUN_PORT, dport=client_port))


def relay_exchange(name, description, request, answer, client_port=CLIENT_PORT, relay_time=None,
                   pending=None, prelude=()):
    frame, reply = relay_frames(request, answer, client_port)
    return Case(name, description, frame, "transmit", reply, context="relay",
                relay_time=relay_time, pending=pending, prelude=prelude)


def relay_request_cases():
    """RFC 8656's four requests on the relay context's shard: Allocate (§7), Refresh (§8),
    CreatePermission (§10), ChannelBind (§12), each answer and each error from the RFC's list,
    with RFC 8489 §9.2's long-term credentials."""
    other_port = CLIENT_PORT + 1   # a 5-tuple without an allocation
    allocate = ALLOCATE_REQUEST

    # Allocate: the first request a client sends has no credentials (RFC 8489 §9.2.3).
    name = "relay_allocate_unauthenticated"
    yield relay_exchange(
        name, "an Allocate without credentials from a fresh 5-tuple: 401 with REALM, a NONCE "
        "bound to that 5-tuple and PASSWORD-ALGORITHMS (RFC 8489 §9.2.4), FINGERPRINT as asked",
        stun_message(allocate, txid_for(name), [requested_transport()], fingerprint=True),
        auth_refusal(allocate, name, 401, client_port=other_port, fingerprint=True),
        client_port=other_port)
    name = "relay_allocate_missing_nonce"
    yield relay_exchange(
        name, "an Allocate with MESSAGE-INTEGRITY but no NONCE: 400, without REALM or NONCE "
        "(RFC 8489 §9.2.4)",
        signed_message(allocate, txid_for(name),
                       [requested_transport(), attribute(USERNAME, b"golden"),
                        attribute(REALM, RELAY_REALM)], long_term_key(b"golden")),
        auth_refusal(allocate, name, 400, client_port=other_port), client_port=other_port)
    name = "relay_allocate_wrong_password"
    yield relay_exchange(
        name, "an Allocate signed with a key from the wrong password: 401 (RFC 8489 §9.2.4)",
        turn_request(allocate, name, [requested_transport()], client_port=other_port,
                     password_key=hashlib.md5(b"golden:punchline:guessed").digest()),
        auth_refusal(allocate, name, 401, client_port=other_port), client_port=other_port)
    name = "relay_allocate_unknown_user"
    yield relay_exchange(
        name, "an Allocate from a username the server does not know: 401 (RFC 8489 §9.2.4)",
        signed_message(allocate, txid_for(name),
                       [requested_transport(), attribute(USERNAME, b"nobody"),
                        attribute(REALM, RELAY_REALM),
                        attribute(NONCE, relay_nonce(other_port, RELAY_SETUP_S + 1))],
                       hashlib.md5(b"nobody:punchline:nobody-password").digest()),
        auth_refusal(allocate, name, 401, client_port=other_port), client_port=other_port)
    name = "relay_allocate_stale_nonce"
    yield relay_exchange(
        name, "an Allocate with the right password and a nonce issued 600 s ago (its "
        "lifetime): 438 with a fresh NONCE (RFC 8489 §9.2.4)",
        turn_request(allocate, name, [requested_transport()], client_port=other_port,
                     nonce=relay_nonce(other_port, RELAY_SETUP_S + 1 - NONCE_LIFETIME_S)),
        auth_refusal(allocate, name, 438, client_port=other_port), client_port=other_port)
    name = "relay_allocate_nonce_of_another_5_tuple"
    yield relay_exchange(
        name, "an Allocate with the nonce the golden client's 5-tuple was given: not this "
        "5-tuple's, 438",
        turn_request(allocate, name, [requested_transport()], client_port=other_port,
                     nonce=relay_nonce(CLIENT_PORT, RELAY_SETUP_S + 1)),
        auth_refusal(allocate, name, 438, client_port=other_port), client_port=other_port)

    name = "relay_allocate_exists"
    yield relay_exchange(
        name, "an Allocate on the golden client's 5-tuple, which has an allocation: 437 "
        "(RFC 8656 §7.2), signed",
        turn_request(allocate, name, [requested_transport()]),
        turn_answer(allocate, name, 437))
    name = "relay_allocate_missing_transport"
    yield relay_exchange(
        name, "an Allocate without REQUESTED-TRANSPORT: 400 (RFC 8656 §7.2)",
        turn_request(allocate, name, [], client_port=other_port),
        turn_answer(allocate, name, 400), client_port=other_port)
    name = "relay_allocate_tcp"
    yield relay_exchange(
        name, "an Allocate asking for TCP (REQUESTED-TRANSPORT 6): 442 (RFC 8656 §7.2)",
        turn_request(allocate, name, [requested_transport(6)], client_port=other_port),
        turn_answer(allocate, name, 442), client_port=other_port)
    name = "relay_allocate_ipv6"
    yield relay_exchange(
        name, "an Allocate asking for an IPv6 relayed address (REQUESTED-ADDRESS-FAMILY 2) "
        "from a relay with IPv4 only: 440 (RFC 8656 §7.2)",
        turn_request(allocate, name, [requested_transport(), address_family(2)],
                     client_port=other_port),
        turn_answer(allocate, name, 440), client_port=other_port)
    name = "relay_allocate_unknown_attribute"
    yield relay_exchange(
        name, "an Allocate with an unknown comprehension-required attribute (0x7F01): 420 "
        "listing it, after authentication (RFC 8489 §6.3.1.1), FINGERPRINT as asked",
        turn_request(allocate, name, [requested_transport(), attribute(0x7F01, b"\1\2\3\4")],
                     client_port=other_port, fingerprint=True),
        turn_answer(allocate, name, 420, unknown=[0x7F01], fingerprint=True),
        client_port=other_port)
    name = "relay_allocate_fresh_5_tuple"
    first = [relay_frames(turn_request(REFRESH_REQUEST, name + "/delete", [lifetime(0)]),
                          turn_answer(REFRESH_REQUEST, name + "/delete",
                                      attributes=[lifetime(0)]))]
    yield relay_exchange(
        name, "the golden client deletes its allocation (Refresh, LIFETIME 0); an Allocate "
        "from a fresh 5-tuple then gets the freed relay port: XOR-RELAYED-ADDRESS, LIFETIME "
        "600, XOR-MAPPED-ADDRESS of that 5-tuple (RFC 8656 §7.2), signed",
        turn_request(allocate, name, [requested_transport()], client_port=other_port),
        turn_answer(allocate, name, attributes=[
            attribute(XOR_RELAYED_ADDRESS,
                      xor_address_value(RELAY_ADDRESS, RELAY_PORT, txid_for(name))),
            lifetime(ALLOCATION_LIFETIME_S),
            attribute(XOR_MAPPED_ADDRESS,
                      xor_address_value(CLIENT4, other_port, txid_for(name)))]),
        client_port=other_port, prelude=first)
    name = "relay_allocate_user_quota"
    yield relay_exchange(
        name, "an Allocate by `golden` from a second 5-tuple: the user holds its one "
        "allocation already (max_allocations_per_user 1): 486 (RFC 8656 §7.2)",
        turn_request(allocate, name, [requested_transport()], client_port=other_port),
        turn_answer(allocate, name, 486), client_port=other_port)
    name = "relay_allocate_no_relay_port"
    yield relay_exchange(
        name, "an Allocate by another user from a fresh 5-tuple: the shard's one relay port "
        "is the golden client's: 508 (RFC 8656 §7.2)",
        turn_request(allocate, name, [requested_transport()], user=b"other",
                     client_port=other_port),
        turn_answer(allocate, name, 508, user=b"other"), client_port=other_port)

    # Refresh (§8.2).
    refresh = REFRESH_REQUEST
    # RFC 8489 §9.2.4: a client that saw PASSWORD-ALGORITHMS may choose SHA-256, echoing the
    # list it was offered; the answer is signed as the request was.
    name = "relay_refresh_sha256"
    credentials = [attribute(PASSWORD_ALGORITHMS, OFFERED_ALGORITHMS),
                   attribute(PASSWORD_ALGORITHM, struct.pack("!HH", 2, 0)),
                   attribute(USERNAME, b"golden"), attribute(REALM, RELAY_REALM),
                   attribute(NONCE, relay_nonce(CLIENT_PORT, RELAY_SETUP_S + 1))]
    yield relay_exchange(
        name, "a Refresh with PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256: "
        "LIFETIME 600, signed with MESSAGE-INTEGRITY-SHA256 and the SHA-256 key "
        "(RFC 8489 §9.2.4, §14.6)",
        signed_sha256_message(refresh, txid_for(name), credentials,
                              long_term_key(b"golden", hashlib.sha256)),
        signed_sha256_message(success_type(refresh), txid_for(name),
                              [lifetime(ALLOCATION_LIFETIME_S)],
                              long_term_key(b"golden", hashlib.sha256)))
    name = "relay_refresh_bid_down"
    yield relay_exchange(
        name, "a Refresh with PASSWORD-ALGORITHM but not the PASSWORD-ALGORITHMS it was "
        "offered (a bid-down): 400 (RFC 8489 §9.2.4)",
        signed_sha256_message(refresh, txid_for(name), [
            attribute(PASSWORD_ALGORITHM, struct.pack("!HH", 2, 0)),
            attribute(USERNAME, b"golden"), attribute(REALM, RELAY_REALM),
            attribute(NONCE, relay_nonce(CLIENT_PORT, RELAY_SETUP_S + 1))],
            long_term_key(b"golden", hashlib.sha256)),
        auth_refusal(refresh, name, 400))
    name = "relay_refresh"
    yield relay_exchange(
        name, "a Refresh asking for 1200 s: LIFETIME 1200 (within the 3600 s maximum)",
        turn_request(refresh, name, [lifetime(1200)]),
        turn_answer(refresh, name, attributes=[lifetime(1200)]))
    name = "relay_refresh_default_lifetime"
    yield relay_exchange(
        name, "a Refresh without LIFETIME, with FINGERPRINT: the default, 600 s, and "
        "FINGERPRINT back",
        turn_request(refresh, name, [], fingerprint=True),
        turn_answer(refresh, name, attributes=[lifetime(ALLOCATION_LIFETIME_S)],
                    fingerprint=True))
    name = "relay_refresh_delete"
    yield relay_exchange(
        name, "a Refresh with LIFETIME 0: the allocation deleted, LIFETIME 0 (§8.2)",
        turn_request(refresh, name, [lifetime(0)]),
        turn_answer(refresh, name, attributes=[lifetime(0)]))
    name = "relay_refresh_no_allocation"
    yield relay_exchange(
        name, "a Refresh from a 5-tuple without an allocation: 437 (§8.2)",
        turn_request(refresh, name, [], client_port=other_port),
        turn_answer(refresh, name, 437), client_port=other_port)
    name = "relay_refresh_wrong_user"
    yield relay_exchange(
        name, "a Refresh by `other` on the golden client's 5-tuple, whose allocation `golden` "
        "made: 441 (§5), signed with `other`'s key",
        turn_request(refresh, name, [], user=b"other"),
        turn_answer(refresh, name, 441, user=b"other"))
    name = "relay_refresh_family_mismatch"
    yield relay_exchange(
        name, "a Refresh for the IPv6 relayed address (REQUESTED-ADDRESS-FAMILY 2) of an "
        "IPv4 allocation: 443 (§8.2)",
        turn_request(refresh, name, [address_family(2)]),
        turn_answer(refresh, name, 443))

    # CreatePermission (§10.2); the shard allows 4 permissions and has 3.
    permission = CREATE_PERMISSION_REQUEST
    name = "relay_create_permission"
    yield relay_exchange(
        name, "a CreatePermission for 198.18.0.50: installed, a success with integrity alone",
        turn_request(permission, name, [peer(name, "198.18.0.50")]),
        turn_answer(permission, name))
    name = "relay_create_permission_refresh"
    yield relay_exchange(
        name, "a CreatePermission for two peers that have permissions: refreshed, no room "
        "needed",
        turn_request(permission, name, [peer(name, RELAY_PEER), peer(name, RELAY_ONLINK_PEER)]),
        turn_answer(permission, name))
    for suffix, address, what in (("loopback", "127.0.0.1", "a loopback address"),
                                  ("private", "10.0.0.1", "a private address (RFC 1918)"),
                                  ("own_address", V4["alternate"],
                                   "the server's own alternate address")):
        name = f"relay_create_permission_forbidden_{suffix}"
        yield relay_exchange(
            name, f"a CreatePermission for {address}, {what}: 403 (§10.2, §21)",
            turn_request(permission, name, [peer(name, address)]),
            turn_answer(permission, name, 403))
    name = "relay_create_permission_one_forbidden"
    yield relay_exchange(
        name, "a CreatePermission for 198.18.0.50 and 127.0.0.1: 403, and neither installed "
        "(§10.2: all or nothing)",
        turn_request(permission, name, [peer(name, "198.18.0.50"), peer(name, "127.0.0.1")]),
        turn_answer(permission, name, 403))
    # The same refusal, then a Send indication to the allowed peer of the pair: no permission
    # was installed for it.
    name = "relay_create_permission_all_or_nothing"
    step = name + "/refused"
    first = [relay_frames(
        turn_request(permission, step, [peer(step, "203.0.113.50"), peer(step, "127.0.0.1")]),
        turn_answer(permission, step, 403))]
    yield Case(name, "after a CreatePermission for 203.0.113.50 and 127.0.0.1 refused 403, a "
               "Send indication to 203.0.113.50: no permission, discarded (§10.2: all or "
               "nothing; §11.2)",
               client_udp4(stun_message(SEND_INDICATION, txid_for(name),
                                        [peer(name, "203.0.113.50", 5000),
                                         attribute(DATA_ATTR, b"media over the relay")])),
               drop("turn_dropped"), context="relay", prelude=first)
    name = "relay_create_permission_missing_peer"
    yield relay_exchange(
        name, "a CreatePermission without XOR-PEER-ADDRESS: 400 (§10.2)",
        turn_request(permission, name, []), turn_answer(permission, name, 400))
    name = "relay_create_permission_ipv6_peer"
    yield relay_exchange(
        name, "a CreatePermission for an IPv6 peer on an IPv4 allocation: 443 (§10.2)",
        turn_request(permission, name, [peer(name, "2001:db8::50")]),
        turn_answer(permission, name, 443))
    name = "relay_create_permission_quota"
    yield relay_exchange(
        name, "a CreatePermission for two new peers where one permission is left (4 at most, "
        "3 held): 508",
        turn_request(permission, name, [peer(name, "198.18.0.50"), peer(name, "198.18.0.51")]),
        turn_answer(permission, name, 508))
    name = "relay_create_permission_no_allocation"
    yield relay_exchange(
        name, "a CreatePermission from a 5-tuple without an allocation: 437 (§10.2)",
        turn_request(permission, name, [peer(name, RELAY_PEER)], client_port=other_port),
        turn_answer(permission, name, 437), client_port=other_port)

    # ChannelBind (§12.2); the shard has 0x4000 -> RELAY_PEER:5000, 0x4002 -> its own relayed
    # address.
    bind = CHANNEL_BIND_REQUEST
    name = "relay_channel_bind"
    yield relay_exchange(
        name, "a ChannelBind of 0x4001 to 203.0.113.5:6000: bound, a success with integrity "
        "alone",
        turn_request(bind, name, [channel_number(0x4001), peer(name, RELAY_PEER, 6000)]),
        turn_answer(bind, name))
    name = "relay_channel_bind_refresh"
    yield relay_exchange(
        name, "a ChannelBind of 0x4000 to its own peer again: refreshed",
        turn_request(bind, name, [channel_number(0x4000), peer(name, RELAY_PEER, 5000)]),
        turn_answer(bind, name))
    for number in (0x3FFF, 0x8000):
        name = f"relay_channel_bind_number_{number:04x}"
        yield relay_exchange(
            name, f"a ChannelBind of 0x{number:04X}, outside 0x4000-0x7FFF: 400 (§12.2)",
            turn_request(bind, name, [channel_number(number), peer(name, RELAY_PEER, 6000)]),
            turn_answer(bind, name, 400))
    name = "relay_channel_bind_missing_number"
    yield relay_exchange(
        name, "a ChannelBind without CHANNEL-NUMBER: 400 (§12.2)",
        turn_request(bind, name, [peer(name, RELAY_PEER, 6000)]), turn_answer(bind, name, 400))
    name = "relay_channel_bind_missing_peer"
    yield relay_exchange(
        name, "a ChannelBind without XOR-PEER-ADDRESS: 400 (§12.2)",
        turn_request(bind, name, [channel_number(0x4001)]), turn_answer(bind, name, 400))
    name = "relay_channel_bind_number_in_use"
    yield relay_exchange(
        name, "a ChannelBind of 0x4000, bound to 203.0.113.5:5000, to 203.0.113.5:7000: 400 "
        "(§12.2)",
        turn_request(bind, name, [channel_number(0x4000), peer(name, RELAY_PEER, 7000)]),
        turn_answer(bind, name, 400))
    name = "relay_channel_bind_peer_in_use"
    yield relay_exchange(
        name, "a ChannelBind of 0x4001 to 203.0.113.5:5000, bound to 0x4000: 400 (§12.2)",
        turn_request(bind, name, [channel_number(0x4001), peer(name, RELAY_PEER, 5000)]),
        turn_answer(bind, name, 400))
    name = "relay_channel_bind_forbidden"
    yield relay_exchange(
        name, "a ChannelBind of 0x4001 to 127.0.0.1:5000: 403 (§12.2)",
        turn_request(bind, name, [channel_number(0x4001), peer(name, "127.0.0.1", 5000)]),
        turn_answer(bind, name, 403))
    name = "relay_channel_bind_ipv6_peer"
    yield relay_exchange(
        name, "a ChannelBind of 0x4001 to an IPv6 peer on an IPv4 allocation: 443 (§12.2)",
        turn_request(bind, name, [channel_number(0x4001), peer(name, "2001:db8::50", 5000)]),
        turn_answer(bind, name, 443))
    name = "relay_channel_bind_no_allocation"
    yield relay_exchange(
        name, "a ChannelBind from a 5-tuple without an allocation: 437 (§12.2)",
        turn_request(bind, name, [channel_number(0x4001), peer(name, RELAY_PEER, 6000)],
                     client_port=other_port),
        turn_answer(bind, name, 437), client_port=other_port)

    # 508s that need more state than the shard has: requests first (prelude).
    name = "relay_channel_bind_quota"
    first = []
    for number, address, port in ((0x4001, RELAY_PEER, 6000), (0x4003, RELAY_ONLINK_PEER, 5000)):
        step = f"{name}/{number:04x}"
        first.append(relay_frames(
            turn_request(bind, step, [channel_number(number), peer(step, address, port)]),
            turn_answer(bind, step)))
    yield relay_exchange(
        name, "after two more ChannelBinds (0x4001, 0x4003: four channels, the most an "
        "allocation has here), a fifth, 0x4004: 508 (§12.2)",
        turn_request(bind, name, [channel_number(0x4004), peer(name, RELAY_PEER, 7000)]),
        turn_answer(bind, name, 508), prelude=first)
    name = "relay_channel_bind_permission_quota"
    first = [relay_frames(turn_request(permission, name + "/first",
                                       [peer(name + "/first", "198.18.0.50")]),
                          turn_answer(permission, name + "/first"))]
    yield relay_exchange(
        name, "after a CreatePermission fills the permissions (4), a ChannelBind to a fifth "
        "peer, whose permission it would install: 508, and no channel",
        turn_request(bind, name, [channel_number(0x4001), peer(name, "198.18.0.51", 5000)]),
        turn_answer(bind, name, 508), prelude=first)

    # RFC 8656 §5 (RFC 8489 §6.3.1): a retransmission gets the first answer again. The shard's
    # last request was the ChannelBind of 0x4002 (golden_cases.h: transaction ID 05 00 .. 00,
    # the NONCE of the shard's first 401, made at RELAY_SETUP_S).
    txid = bytes([5]) + bytes(11)
    name = "relay_channel_bind_retransmitted"
    request = signed_message(
        bind, txid,
        [channel_number(0x4002),
         attribute(XOR_PEER_ADDRESS, xor_address_value(RELAY_ADDRESS, RELAY_PORT, txid)),
         attribute(USERNAME, b"golden"), attribute(REALM, RELAY_REALM),
         attribute(NONCE, relay_nonce(CLIENT_PORT, RELAY_SETUP_S))], long_term_key(b"golden"))
    yield relay_exchange(
        name, "the shard's last ChannelBind, retransmitted byte for byte: the same success "
        "(RFC 8656 §5)", request, turn_answer(bind, name, txid=txid))
    # An Allocate retransmitted: answered anew it would get 437 (its own allocation exists).
    name = "relay_allocate_retransmitted"
    allocated = turn_answer(allocate, name, attributes=[
        attribute(XOR_RELAYED_ADDRESS, xor_address_value(RELAY_ADDRESS, RELAY_PORT,
                                                         txid_for(name))),
        lifetime(ALLOCATION_LIFETIME_S),
        attribute(XOR_MAPPED_ADDRESS, xor_address_value(CLIENT4, CLIENT_PORT, txid_for(name)))])
    request = turn_request(allocate, name, [requested_transport()])
    first = [relay_frames(turn_request(REFRESH_REQUEST, name + "/delete", [lifetime(0)]),
                          turn_answer(REFRESH_REQUEST, name + "/delete",
                                      attributes=[lifetime(0)])),
             relay_frames(request, allocated)]
    yield relay_exchange(
        name, "the golden client deletes its allocation (Refresh, LIFETIME 0) and allocates "
        "again; that Allocate retransmitted gets the same success, not 437 (RFC 8656 §5)",
        request, allocated, prelude=first)


def relay_expiry_cases():
    """RFC 8656 §6, §9, §12: an allocation lives 600 s unless refreshed, a permission 300 s, a
    channel 600 s; each case's clock is set by its `relay_time:` (seconds after the shard was
    made), which both golden tests inject."""
    after_allocation = max(ALLOCATION_LIFETIME_S, CHANNEL_LIFETIME_S) + 1
    after_permission = PERMISSION_LIFETIME_S + 1
    data = b"media over the relay"
    name = "relay_refresh_after_lifetime"
    yield relay_exchange(
        name, "a Refresh 601 s after the Allocate (lifetime 600 s): the allocation is gone, "
        "437 (§8.2)",
        turn_request(REFRESH_REQUEST, name, [], relay_time=after_allocation),
        turn_answer(REFRESH_REQUEST, name, 437), relay_time=after_allocation)
    name = "relay_allocate_after_lifetime"
    yield relay_exchange(
        name, "an Allocate on the golden client's 5-tuple 601 s on: its allocation expired, a "
        "new one on the freed relay port, XOR-RELAYED-ADDRESS, LIFETIME, XOR-MAPPED-ADDRESS "
        "(§7.2), signed, FINGERPRINT as asked",
        turn_request(ALLOCATE_REQUEST, name, [requested_transport()],
                     relay_time=after_allocation, fingerprint=True),
        turn_answer(ALLOCATE_REQUEST, name, attributes=[
            attribute(XOR_RELAYED_ADDRESS,
                      xor_address_value(RELAY_ADDRESS, RELAY_PORT, txid_for(name))),
            lifetime(ALLOCATION_LIFETIME_S),
            attribute(XOR_MAPPED_ADDRESS,
                      xor_address_value(CLIENT4, CLIENT_PORT, txid_for(name)))],
            fingerprint=True),
        relay_time=after_allocation)
    name = "relay_refresh_before_lifetime"
    yield relay_exchange(
        name, "a Refresh 599 s after the Allocate: still alive, LIFETIME 600",
        turn_request(REFRESH_REQUEST, name, [], relay_time=ALLOCATION_LIFETIME_S - 1),
        turn_answer(REFRESH_REQUEST, name, attributes=[lifetime(ALLOCATION_LIFETIME_S)]),
        relay_time=ALLOCATION_LIFETIME_S - 1)
    yield Case("relay_channel_data_after_lifetime",
               "ChannelData on 0x4000 601 s on: the channel's lifetime (600 s) is over, and "
               "its allocation's with it (swept by then): discarded",
               client_udp4(struct.pack("!HH", 0x4000, len(data)) + data),
               drop("relay_no_allocation"), context="relay", relay_time=after_allocation)

    def from_peer(payload):
        return (Ether(dst=PORT_MAC, src=GATEWAY_MAC) /
                IP(src=RELAY_PEER, dst=RELAY_ADDRESS, id=0x1234, ttl=50, tos=0x28) /
                UDP(sport=5000, dport=RELAY_PORT) / Raw(payload))

    yield Case("relay_peer_after_permission_lifetime",
               "a datagram from the channel's peer 301 s on: its permission (300 s, not "
               "refreshed) is over, discarded (§9)",
               from_peer(data), drop("relay_no_permission"), context="relay",
               relay_time=after_permission)
    yield Case("relay_peer_before_permission_lifetime",
               "a datagram from the channel's peer 299 s on: still permitted, to the client as "
               "ChannelData 0x4000",
               from_peer(data), "transmit",
               Ether(dst=CLIENT_MAC, src=PORT_MAC) /
               IP(src=V4["primary"], dst=CLIENT4, id=0x1234, flags="DF", ttl=49, tos=0x28) /
               UDP(sport=STUN_PORT, dport=CLIENT_PORT) /
               Raw(struct.pack("!HH", 0x4000, len(data)) + data),
               context="relay", relay_time=PERMISSION_LIFETIME_S - 1)
    yield Case("relay_channel_data_after_permission_lifetime",
               "ChannelData on 0x4000 301 s on: the channel lives (600 s) but its peer's "
               "permission (300 s, not refreshed) is over: discarded (§9)",
               client_udp4(struct.pack("!HH", 0x4000, len(data)) + data),
               drop("relay_no_permission"), context="relay", relay_time=after_permission)
    yield Case("relay_peer_after_lifetime",
               "a datagram from the channel's peer 601 s on: the allocation is gone, and its "
               "relay port is no service's any more",
               from_peer(data), drop("no_service"), context="relay",
               relay_time=after_allocation)
    name = "relay_send_after_lifetime"
    send = stun_message(SEND_INDICATION, txid_for(name),
                        [peer(name, RELAY_PEER, 5000), attribute(DATA_ATTR, data)])
    yield Case(name, "a Send indication 601 s on: the allocation is gone, discarded (§11.2)",
               client_udp4(send), drop("turn_dropped"), context="relay",
               relay_time=after_allocation)
    name = "relay_send_after_permission_lifetime"
    send = stun_message(SEND_INDICATION, txid_for(name),
                        [peer(name, RELAY_PEER, 5000), attribute(DATA_ATTR, data)])
    yield Case(name, "a Send indication to the peer 301 s on: its permission is over, "
               "discarded (§11.2)", client_udp4(send), drop("turn_dropped"), context="relay",
               relay_time=after_permission)

# Port reservations (RFC 8656 §7.2) in the `relay_reservation` context (golden_cases.h:
# make_relay_shard(..., with_reservation)).
EVEN_PORT = 0x0018
RESERVATION_TOKEN = 0x0022
RELAY_SHARD_SEED = 1  # RelayShard's seed in make_relay_shard()


def reservation_token(count):
    """RelayShard::next_reservation_token(): the first 8 bytes of HMAC-SHA256 over the
    count (big-endian), keyed with SHA-256 of the seed (little-endian) and a label."""
    key = hashlib.sha256(struct.pack("<Q", RELAY_SHARD_SEED) +
                         b"punchline reservation token").digest()
    return hmac.new(key, struct.pack("!Q", count), hashlib.sha256).digest()[:8]


def relay_reservation_cases():
    """RFC 8656 §7.2: an Allocate with EVEN-PORT's R bit gets an even relay port whose next
    port is free, which the server reserves, and a RESERVATION-TOKEN in its success response;
    an Allocate with a token gets the port it reserved; with an unknown one, 508."""
    def allocate_case(name, description, client_port, more, code=0, relay_port=None,
                      token=None):
        request = turn_request(ALLOCATE_REQUEST, name, [requested_transport()] + more,
                               user=b"other", client_port=client_port)
        attributes = []
        if not code:
            attributes = [attribute(XOR_RELAYED_ADDRESS,
                                    xor_address_value(RELAY_ADDRESS, relay_port,
                                                      txid_for(name))),
                          lifetime(ALLOCATION_LIFETIME_S)]
            if token is not None:
                attributes.append(attribute(RESERVATION_TOKEN, token))
            attributes.append(attribute(XOR_MAPPED_ADDRESS,
                                        xor_address_value(CLIENT4, client_port,
                                                          txid_for(name))))
        answer = turn_answer(ALLOCATE_REQUEST, name, code, attributes, user=b"other")
        frame, reply = relay_frames(request, answer, client_port)
        return Case(name, description, frame, "transmit", reply, context="relay_reservation")

    # The search for an even port starts where the transaction ID says (find_even_port());
    # RELAY_PORT is allocated and RELAY_PORT + 3 reserved in this context.
    name = "relay_allocate_even_port_reserve"
    start = struct.unpack("!I", txid_for(name)[:4])[0] % RELAY_RESERVATION_PORTS
    taken = {0, 3}
    offset = next(o for o in ((start + i) % RELAY_RESERVATION_PORTS
                              for i in range(RELAY_RESERVATION_PORTS))
                  if o % 2 == 0 and o not in taken and o + 1 not in taken and
                  o + 1 < RELAY_RESERVATION_PORTS)
    yield allocate_case(name, "Allocate with EVEN-PORT's R bit: an even relayed port whose next "
                        "port is free, and the RESERVATION-TOKEN that reserves it (the shard's "
                        "second)", CLIENT_PORT + 2, [attribute(EVEN_PORT, bytes([0x80]))],
                        relay_port=RELAY_PORT + offset, token=reservation_token(2))
    yield allocate_case("relay_allocate_reservation_token",
                        "Allocate with the RESERVATION-TOKEN of the context's reservation: the "
                        "reserved port, RELAY_PORT + 3, and no token of its own",
                        CLIENT_PORT + 3, [attribute(RESERVATION_TOKEN, reservation_token(1))],
                        relay_port=RELAY_PORT + 3)
    yield allocate_case("relay_allocate_unknown_token",
                        "Allocate with a RESERVATION-TOKEN this worker never gave out: 508",
                        CLIENT_PORT + 3, [attribute(RESERVATION_TOKEN, reservation_token(2))],
                        code=508)


def all_cases():
    cases = []
    for group in (arp_cases, icmp_cases, icmpv6_cases, l2_l3_drop_cases, udp_drop_cases,
                  stun_drop_cases, stun_cases, source_and_ecn_cases, relay_cases,
                  relay_data_cases, relay_request_cases, relay_expiry_cases,
                  relay_reservation_cases):
        cases.extend(group())
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, duplicates
    for c in cases:
        assert len(c.input) <= (c.capacity or DEFAULT_CAPACITY), c.name
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and fail if the files differ")
    parser.add_argument("--dir", type=pathlib.Path, default=HERE,
                        help="folder of the .golden files (default: this script's)")
    args = parser.parse_args()

    wanted = {f"{c.name}.golden": c.render() for c in all_cases()}
    present = {p.name for p in args.dir.glob("*.golden")}
    if args.check:
        problems = []
        for name, text in sorted(wanted.items()):
            path = args.dir / name
            if not path.exists():
                problems.append(f"missing: {name}")
            elif path.read_text() != text:
                problems.append(f"stale: {name}")
        problems += [f"not generated (remove it): {n}" for n in sorted(present - wanted.keys())]
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"golden files out of date; regenerate with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{len(wanted)} golden files up to date")
        return 0

    for name, text in wanted.items():
        path = args.dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    for stale in present - wanted.keys():
        (args.dir / stale).unlink()
    print(f"wrote {len(wanted)} golden files to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
