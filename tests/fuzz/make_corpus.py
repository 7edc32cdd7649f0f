#!/usr/bin/env python3
"""Writes the seed corpora of the STUN fuzz targets (tests/fuzz/corpus/).

Usage:
    tests/fuzz/make_corpus.py            rewrite tests/fuzz/corpus/{message,channel_data,coordinator}/
    tests/fuzz/make_corpus.py --check    exit 1 if the committed files differ from what this
                                         script would write (a meson test runs this)
    tests/fuzz/make_corpus.py --out DIR  write under DIR instead

Standard library only, and independent of the C++ codec on purpose: the seeds are encoded here
from the RFCs, so they are not shaped by the writer they are meant to test. The RFC 5769 vectors
are hex literals copied from the RFC; the script checks their MESSAGE-INTEGRITY and FINGERPRINT
before writing them, so a transcription error fails loudly instead of seeding garbage.

The hand-made messages use the credentials fuzz_message.cc verifies with: the RFC 5769 ones,
short-term password "VOkJxbRl1RmTxUk/WvJxBt" (§2.1-2.3) and long-term username "マトリックス",
realm "example.org", SASLprep'd password "TheMatrIX" (§2.4); and, for the TURN REST seed, the
shared secret "fuzz-shared-secret".
Output is deterministic: fixed transaction IDs, no clock, no randomness.
"""

import argparse
import base64
import hashlib
import hmac
import pathlib
import struct
import sys
import zlib

MAGIC_COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E

# Attribute types (RFC 8489 §18.3, RFC 8656 §18, RFC 5780 §7, RFC 8445 §16.1).
MAPPED_ADDRESS = 0x0001
CHANGE_REQUEST = 0x0003
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
CHANNEL_NUMBER = 0x000C
LIFETIME = 0x000D
XOR_PEER_ADDRESS = 0x0012
DATA = 0x0013
REALM = 0x0014
NONCE = 0x0015
XOR_RELAYED_ADDRESS = 0x0016
REQUESTED_ADDRESS_FAMILY = 0x0017
EVEN_PORT = 0x0018
REQUESTED_TRANSPORT = 0x0019
DONT_FRAGMENT = 0x001A
MESSAGE_INTEGRITY_SHA256 = 0x001C
PASSWORD_ALGORITHM = 0x001D
USERHASH = 0x001E
XOR_MAPPED_ADDRESS = 0x0020
RESERVATION_TOKEN = 0x0022
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
PADDING = 0x0026
RESPONSE_PORT = 0x0027
ADDITIONAL_ADDRESS_FAMILY = 0x8000
ADDRESS_ERROR_CODE = 0x8001
PASSWORD_ALGORITHMS = 0x8002
ALTERNATE_DOMAIN = 0x8003
ICMP = 0x8004
SOFTWARE = 0x8022
ALTERNATE_SERVER = 0x8023
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A
RESPONSE_ORIGIN = 0x802B
OTHER_ADDRESS = 0x802C

# Methods (RFC 8489 §18.2, RFC 8656 §17) and classes (RFC 8489 §5).
BINDING, ALLOCATE, REFRESH, SEND, DATA_METHOD, CREATE_PERMISSION, CHANNEL_BIND = (
    0x001, 0x003, 0x004, 0x006, 0x007, 0x008, 0x009)
REQUEST, INDICATION, SUCCESS, ERROR = 0b00, 0b01, 0b10, 0b11

# RFC 5769 credentials.
SHORT_TERM_PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"
LONG_TERM_USERNAME = "\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9".encode()
LONG_TERM_REALM = b"example.org"
LONG_TERM_PASSWORD = b"TheMatrIX"  # after SASLprep
LONG_TERM_KEY_MD5 = hashlib.md5(
    LONG_TERM_USERNAME + b":" + LONG_TERM_REALM + b":" + LONG_TERM_PASSWORD).digest()
LONG_TERM_KEY_SHA256 = hashlib.sha256(
    LONG_TERM_USERNAME + b":" + LONG_TERM_REALM + b":" + LONG_TERM_PASSWORD).digest()


def message_type(method, cls):
    """RFC 8489 §5: M11..M7 C1 M6..M4 C0 M3..M0."""
    return (((method & 0x0F80) << 2) | ((method & 0x0070) << 1) | (method & 0x000F) |
            ((cls & 0b10) << 7) | ((cls & 0b01) << 4))


def txid(seed):
    """A fixed, recognisable 12-byte transaction ID."""
    return hashlib.sha256(seed.encode()).digest()[:12]


class Message:
    """A STUN message built attribute by attribute, as RFC 8489 §5 and §14 lay it out."""

    def __init__(self, method, cls, transaction_id):
        self.type = message_type(method, cls)
        self.transaction_id = transaction_id
        self.body = b""

    def header(self, length):
        return struct.pack("!HHI", self.type, length, MAGIC_COOKIE) + self.transaction_id

    def add(self, attr_type, value, pad=b"\0"):
        self.body += struct.pack("!HH", attr_type, len(value)) + value
        self.body += pad * (-len(value) % 4)
        return self

    def add_u32(self, attr_type, value):
        return self.add(attr_type, struct.pack("!I", value))

    def add_u64(self, attr_type, value):
        return self.add(attr_type, struct.pack("!Q", value))

    def add_address(self, attr_type, family, ip, port):
        """RFC 8489 §14.1: 0, family, port, address."""
        return self.add(attr_type, struct.pack("!BBH", 0, family, port) + ip)

    def add_xor_address(self, attr_type, family, ip, port):
        """RFC 8489 §14.2: port XOR the cookie's top 16 bits, address XOR cookie || txid."""
        mask = struct.pack("!I", MAGIC_COOKIE) + self.transaction_id
        xored = bytes(b ^ m for b, m in zip(ip, mask))
        return self.add(attr_type, struct.pack("!BBH", 0, family, port ^ (MAGIC_COOKIE >> 16)) +
                        xored)

    def add_error_code(self, code, reason):
        """RFC 8489 §14.8: 21 zero bits, class (3 bits), number (8 bits), reason."""
        return self.add(ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + reason)

    def add_message_integrity(self, key):
        """RFC 8489 §14.5: HMAC-SHA1 with the length counting MESSAGE-INTEGRITY itself."""
        covered = self.header(len(self.body) + 24) + self.body
        return self.add(MESSAGE_INTEGRITY, hmac.new(key, covered, hashlib.sha1).digest())

    def add_message_integrity_sha256(self, key, length=32):
        """RFC 8489 §14.6: HMAC-SHA256, possibly truncated to `length` bytes."""
        covered = self.header(len(self.body) + 4 + length) + self.body
        return self.add(MESSAGE_INTEGRITY_SHA256,
                        hmac.new(key, covered, hashlib.sha256).digest()[:length])

    def add_fingerprint(self):
        """RFC 8489 §14.7: CRC-32 of the message so far XOR 0x5354554E."""
        covered = self.header(len(self.body) + 8) + self.body
        return self.add_u32(FINGERPRINT, zlib.crc32(covered) ^ FINGERPRINT_XOR)

    def bytes(self):
        return self.header(len(self.body)) + self.body


IPV4 = 0x01
IPV6 = 0x02


def ipv4(text):
    return bytes(int(part) for part in text.split("."))


def ipv6(groups):
    return b"".join(struct.pack("!H", g) for g in groups)


# ------------------------------------------------------------------------------ RFC 5769 vectors
# Copied from RFC 5769 §2.1-§2.4. Padding bytes are the RFC's (spaces in 2.1-2.3, zeros in 2.4).

RFC5769_SAMPLE_REQUEST = bytes.fromhex(
    "00010058" "2112a442" "b7e7a701" "bc34d686" "fa87dfae"
    "80220010" "5354554e" "20746573" "7420636c" "69656e74"  # SOFTWARE "STUN test client"
    "00240004" "6e0001ff"                                   # PRIORITY
    "80290008" "932ff9b1" "51263b36"                        # ICE-CONTROLLED
    "00060009" "6576746a" "3a683676" "59202020"             # USERNAME "evtj:h6vY"
    "00080014" "9aeaa70c" "bfd8cb56" "781ef2b5" "b2d3f249" "c1b571a2"  # MESSAGE-INTEGRITY
    "80280004" "e57a3bcf")                                  # FINGERPRINT

RFC5769_SAMPLE_IPV4_RESPONSE = bytes.fromhex(
    "0101003c" "2112a442" "b7e7a701" "bc34d686" "fa87dfae"
    "8022000b" "74657374" "20766563" "746f7220"             # SOFTWARE "test vector"
    "00200008" "0001a147" "e112a643"                        # XOR-MAPPED-ADDRESS 192.0.2.1:32853
    "00080014" "2b91f599" "fd9e90c3" "8c7489f9" "2af9ba53" "f06be7d7"  # MESSAGE-INTEGRITY
    "80280004" "c07d4c96")                                  # FINGERPRINT

RFC5769_SAMPLE_IPV6_RESPONSE = bytes.fromhex(
    "01010048" "2112a442" "b7e7a701" "bc34d686" "fa87dfae"
    "8022000b" "74657374" "20766563" "746f7220"             # SOFTWARE "test vector"
    "00200014" "0002a147" "0113a9fa" "a5d3f179" "bc25f4b5" "bed2b9d9"  # XOR-MAPPED-ADDRESS
    "00080014" "a382954e" "4be67bf1" "1784c97c" "8292c275" "bfe3ed41"  # MESSAGE-INTEGRITY
    "80280004" "c8fb0b4c")                                  # FINGERPRINT

RFC5769_SAMPLE_REQUEST_LONG_TERM = bytes.fromhex(
    "00010060" "2112a442" "78ad3433" "c6ad72c0" "29da412e"
    "00060012" "e3839ee3" "8388e383" "aae38383" "e382afe3" "82b90000"  # USERNAME
    "0015001c" "662f2f34" "39396b39" "35346436" "4f4c3334" "6f4c3946" "53547679"
    "36347341"                                              # NONCE
    "0014000b" "6578616d" "706c652e" "6f726700"             # REALM "example.org"
    "00080014" "f6702465" "6dd64a3e" "02b8e071" "2e85c9a2" "8ca89666")  # MESSAGE-INTEGRITY


def check_integrity(message, key):
    """Recomputes the MESSAGE-INTEGRITY of a message whose MESSAGE-INTEGRITY is followed by
    nothing or by FINGERPRINT only (true of the four RFC 5769 vectors)."""
    has_fingerprint = message[-8:-6] == struct.pack("!H", FINGERPRINT)
    integrity_end = len(message) - (8 if has_fingerprint else 0)
    integrity_start = integrity_end - 24
    assert message[integrity_start:integrity_start + 4] == bytes.fromhex("00080014")
    header = message[:2] + struct.pack("!H", integrity_end - 20) + message[4:20]
    expected = hmac.new(key, header + message[20:integrity_start], hashlib.sha1).digest()
    assert message[integrity_start + 4:integrity_end] == expected, "MESSAGE-INTEGRITY"
    if has_fingerprint:
        expected_crc = zlib.crc32(message[:-8]) ^ FINGERPRINT_XOR
        assert message[-4:] == struct.pack("!I", expected_crc), "FINGERPRINT"


def rfc5769_vectors():
    check_integrity(RFC5769_SAMPLE_REQUEST, SHORT_TERM_PASSWORD)
    check_integrity(RFC5769_SAMPLE_IPV4_RESPONSE, SHORT_TERM_PASSWORD)
    check_integrity(RFC5769_SAMPLE_IPV6_RESPONSE, SHORT_TERM_PASSWORD)
    check_integrity(RFC5769_SAMPLE_REQUEST_LONG_TERM, LONG_TERM_KEY_MD5)
    return {
        "rfc5769_2_1_sample_request.bin": RFC5769_SAMPLE_REQUEST,
        "rfc5769_2_2_ipv4_response.bin": RFC5769_SAMPLE_IPV4_RESPONSE,
        "rfc5769_2_3_ipv6_response.bin": RFC5769_SAMPLE_IPV6_RESPONSE,
        "rfc5769_2_4_long_term_request.bin": RFC5769_SAMPLE_REQUEST_LONG_TERM,
    }


# ------------------------------------------------------------------------------ hand-made
# A nonce with the RFC 8489 §9.2 cookie: "obMatJos2", 4 base64 characters of feature bits
# ("gAAA": bit 0, password algorithms), then the server's opaque part.
NONCE_WITH_COOKIE = b"obMatJos2gAAA" + b"f3b1c0ffee0123456789"
NONCE_PLAIN = b"f//499k954d6OL34oL9FSTvy64sA"
CLIENT_V4 = ipv4("192.0.2.1")
PEER_V4 = ipv4("198.51.100.7")
RELAY_V4 = ipv4("203.0.113.9")
CLIENT_V6 = ipv6([0x2001, 0x0db8, 0x1234, 0x5678, 0x0011, 0x2233, 0x4455, 0x6677])


def long_term_credentials(message, nonce=NONCE_PLAIN):
    return (message.add(USERNAME, LONG_TERM_USERNAME)
                   .add(REALM, LONG_TERM_REALM)
                   .add(NONCE, nonce))


def hand_made_messages():
    out = {}

    # A browser's request to a STUN server: the header and FINGERPRINT, nothing else.
    m = Message(BINDING, REQUEST, txid("binding-minimal"))
    out["binding_request_fingerprint.bin"] = m.add_fingerprint().bytes()

    # TURN Allocate request, authenticated (RFC 8656 §7.1).
    m = Message(ALLOCATE, REQUEST, txid("allocate"))
    m.add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0])).add_u32(LIFETIME, 600)
    long_term_credentials(m, NONCE_WITH_COOKIE).add_message_integrity(LONG_TERM_KEY_MD5)
    out["allocate_request.bin"] = m.bytes()

    # The same with TURN REST API credentials (stun/rest.h): USERNAME "<expiry>:<user>", password
    # base64(HMAC-SHA1(secret, USERNAME)); fuzz_message derives this key with the same secret.
    rest_username = b"1893456000:alice"
    rest_password = base64.b64encode(
        hmac.new(b"fuzz-shared-secret", rest_username, hashlib.sha1).digest())
    rest_key = hashlib.md5(rest_username + b":" + LONG_TERM_REALM + b":" + rest_password).digest()
    m = Message(ALLOCATE, REQUEST, txid("allocate-rest"))
    m.add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
    m.add(USERNAME, rest_username).add(REALM, LONG_TERM_REALM).add(NONCE, NONCE_PLAIN)
    out["allocate_request_rest.bin"] = m.add_message_integrity(rest_key).add_fingerprint().bytes()

    # Allocate request asking for IPv6 plus IPv4, an even port and DONT-FRAGMENT (RFC 8656 §7.1).
    m = Message(ALLOCATE, REQUEST, txid("allocate-options"))
    m.add(REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
    m.add(REQUESTED_ADDRESS_FAMILY, bytes([IPV4, 0, 0, 0]))
    m.add(ADDITIONAL_ADDRESS_FAMILY, bytes([IPV6, 0, 0, 0]))
    m.add(EVEN_PORT, bytes([0x80])).add(DONT_FRAGMENT, b"")
    long_term_credentials(m).add_message_integrity(LONG_TERM_KEY_MD5).add_fingerprint()
    out["allocate_request_options.bin"] = m.bytes()

    # Allocate success response (RFC 8656 §7.3), with a dual-stack ADDRESS-ERROR-CODE.
    m = Message(ALLOCATE, SUCCESS, txid("allocate-options"))
    m.add_xor_address(XOR_RELAYED_ADDRESS, IPV4, RELAY_V4, 49152)
    m.add_xor_address(XOR_MAPPED_ADDRESS, IPV4, CLIENT_V4, 32853)
    m.add_u32(LIFETIME, 600).add_u64(RESERVATION_TOKEN, 0x0123456789ABCDEF)
    m.add(ADDRESS_ERROR_CODE, struct.pack("!BBBB", IPV6, 0, 4, 40) +
          b"Address Family not Supported")
    m.add(SOFTWARE, b"punchline corpus")
    m.add_message_integrity(LONG_TERM_KEY_MD5).add_fingerprint()
    out["allocate_success.bin"] = m.bytes()

    # 401 to an unauthenticated Allocate, offering both password algorithms (RFC 8489 §9.2.4).
    m = Message(ALLOCATE, ERROR, txid("allocate-401"))
    m.add_error_code(401, b"Unauthenticated").add(REALM, LONG_TERM_REALM)
    m.add(NONCE, NONCE_WITH_COOKIE)
    m.add(PASSWORD_ALGORITHMS, struct.pack("!HH", 0x0002, 0) + struct.pack("!HH", 0x0001, 0))
    out["allocate_error_401.bin"] = m.add_fingerprint().bytes()

    # Refresh with USERHASH, PASSWORD-ALGORITHM and MESSAGE-INTEGRITY-SHA256 (RFC 8489 §9.2).
    m = Message(REFRESH, REQUEST, txid("refresh-sha256"))
    m.add_u32(LIFETIME, 0)
    m.add(USERHASH, hashlib.sha256(LONG_TERM_USERNAME + b":" + LONG_TERM_REALM).digest())
    m.add(REALM, LONG_TERM_REALM).add(NONCE, NONCE_WITH_COOKIE)
    m.add(PASSWORD_ALGORITHM, struct.pack("!HH", 0x0002, 0))
    m.add_message_integrity_sha256(LONG_TERM_KEY_SHA256).add_fingerprint()
    out["refresh_request_sha256.bin"] = m.bytes()

    # ChannelBind request (RFC 8656 §11.1).
    m = Message(CHANNEL_BIND, REQUEST, txid("channel-bind"))
    m.add(CHANNEL_NUMBER, struct.pack("!HH", 0x4001, 0))
    m.add_xor_address(XOR_PEER_ADDRESS, IPV4, PEER_V4, 50000)
    long_term_credentials(m).add_message_integrity(LONG_TERM_KEY_MD5).add_fingerprint()
    out["channel_bind_request.bin"] = m.bytes()

    # CreatePermission with an IPv6 peer (RFC 8656 §9.1).
    m = Message(CREATE_PERMISSION, REQUEST, txid("create-permission"))
    m.add_xor_address(XOR_PEER_ADDRESS, IPV6, CLIENT_V6, 0)
    long_term_credentials(m).add_message_integrity(LONG_TERM_KEY_MD5)
    out["create_permission_request_ipv6.bin"] = m.bytes()

    # Send indication and Data indication with ICMP (RFC 8656 §10.1, §10.3, §18.13).
    m = Message(SEND, INDICATION, txid("send"))
    m.add_xor_address(XOR_PEER_ADDRESS, IPV4, PEER_V4, 50000).add(DONT_FRAGMENT, b"")
    out["send_indication.bin"] = m.add(DATA, b"\x80\x00\x00\x01hello").bytes()
    m = Message(DATA_METHOD, INDICATION, txid("data-icmp"))
    m.add_xor_address(XOR_PEER_ADDRESS, IPV4, PEER_V4, 50000)
    out["data_indication_icmp.bin"] = m.add(ICMP, struct.pack("!HBBI", 0, 3, 3, 0)).bytes()

    # 420 to a request carrying unknown comprehension-required attributes (RFC 8489 §6.3.1).
    m = Message(BINDING, ERROR, txid("binding-420"))
    m.add_error_code(420, b"Unknown Attribute")
    m.add(UNKNOWN_ATTRIBUTES, struct.pack("!HHH", 0x0031, 0x7F00, 0x0042))
    out["binding_error_420_unknown_attributes.bin"] = (
        m.add(SOFTWARE, b"punchline corpus").add_fingerprint().bytes())

    # ... and such a request: comprehension-required 0x0031 and 0x7F00, optional 0xC001.
    m = Message(BINDING, REQUEST, txid("binding-420"))
    m.add(0x0031, b"\x01\x02\x03").add(0x7F00, b"").add(0xC001, b"optional")
    out["binding_request_unknown_attributes.bin"] = m.add_fingerprint().bytes()

    # 300 Try Alternate (RFC 8489 §10).
    m = Message(ALLOCATE, ERROR, txid("allocate-300"))
    m.add_error_code(300, b"Try Alternate")
    m.add_address(ALTERNATE_SERVER, IPV4, RELAY_V4, 3478)
    m.add(ALTERNATE_DOMAIN, b"turn.example.org")
    out["allocate_error_300_alternate.bin"] = m.add_fingerprint().bytes()

    # Binding response to an RFC 5780 client: IPv6 XOR-MAPPED-ADDRESS, OTHER-ADDRESS,
    # RESPONSE-ORIGIN, and the old MAPPED-ADDRESS.
    m = Message(BINDING, SUCCESS, txid("binding-5780"))
    m.add_xor_address(XOR_MAPPED_ADDRESS, IPV6, CLIENT_V6, 32853)
    m.add_address(MAPPED_ADDRESS, IPV6, CLIENT_V6, 32853)
    m.add_address(OTHER_ADDRESS, IPV4, RELAY_V4, 3479)
    m.add_address(RESPONSE_ORIGIN, IPV4, PEER_V4, 3478)
    out["binding_success_ipv6_5780.bin"] = m.add_fingerprint().bytes()

    # RFC 5780 §7.2, §7.5, §7.6: CHANGE-REQUEST, RESPONSE-PORT and PADDING.
    m = Message(BINDING, REQUEST, txid("binding-5780"))
    m.add_u32(CHANGE_REQUEST, 0x6).add(RESPONSE_PORT, struct.pack("!HH", 40000, 0))
    out["binding_request_5780.bin"] = m.add(PADDING, bytes(64)).add_fingerprint().bytes()

    # An ICE connectivity check (RFC 8445 §7.1.2) with short-term integrity.
    m = Message(BINDING, REQUEST, txid("ice-check"))
    m.add(USERNAME, b"evtj:h6vY").add_u32(PRIORITY, 0x6E0001FF)
    m.add_u64(ICE_CONTROLLING, 0x932FF9B151263B36).add(USE_CANDIDATE, b"")
    m.add_message_integrity(SHORT_TERM_PASSWORD).add_fingerprint()
    out["ice_check_use_candidate.bin"] = m.bytes()

    return out


# ------------------------------------------------------------------------------ ChannelData
def channel_data(channel, data, pad):
    """RFC 8656 §12.4: channel number, length, data; padded to 4 when `pad` (§12.5)."""
    frame = struct.pack("!HH", channel, len(data)) + data
    return frame + b"\0" * (-len(frame) % 4 if pad else 0)


def channel_data_frames():
    rtp = bytes.fromhex("80 6f 1a 2b 00 00 03 c0 de ad be ef") + bytes(range(148))  # 160 B
    return {
        "ch4000_empty.bin": channel_data(0x4000, b"", pad=False),
        "ch4001_padded.bin": channel_data(0x4001, b"hello", pad=True),
        "ch4002_unpadded.bin": channel_data(0x4002, b"hello", pad=False),
        "ch4000_rtp_160.bin": channel_data(0x4000, rtp, pad=False),
        "ch4fff_aligned.bin": channel_data(0x4FFF, b"\x17\xfe\xfd\x00", pad=True),
    }


# ------------------------------------------------------------------------------ coordinator
def session(*steps):
    """fuzz_coordinator's input: one line per step, its first byte the connection (0, 1, 2),
    0xFE for time passing, 0xFF for connection 1 closing."""
    out = b""
    for who, text in steps:
        out += bytes([who]) + text.encode() + b"\n"
    return out


def coordinator_sessions():
    candidates = '[{"type":"host","address":"198.18.0.2:40000"},' \
                 '{"type":"srflx","address":"[2001:db8::7]:5000"}]'
    join = '{"op":"join","id":%d,"room":"%s","name":"%s","candidates":' + candidates + \
           ',"nat_type":"full_cone","region":"eu"}'
    return {
        "call.bin": session(
            (0, '{"op":"hello","id":1}'),
            (0, join % (2, "r1", "alice")),
            (1, join % (3, "r1", "bob")),
            (0, '{"op":"candidates","id":4,"room":"r1","candidates":'
                '[{"type":"relay","address":"203.0.113.4:49152"}]}'),
            (1, '{"op":"signal","id":5,"room":"r1","to":"alice","data":{"k":"moving"}}'),
            (0, '{"op":"report","id":6,"room":"r1","rung":"p2p","time_to_connect_ms":140,'
                '"local_nat":"full_cone","remote_nat":"symmetric"}'),
            (2, '{"op":"outcomes","id":7}'),
            (1, '{"op":"leave","id":8,"room":"r1"}'),
            (0xFF, ""),
            (2, '{"op":"ping","id":9}')),
        "nodes.bin": session(
            (0, '{"op":"register","id":1,"role":"relay","address":"203.0.113.4:3478",'
                '"nat_type":"none","region":"eu","load":10}'),
            (1, '{"op":"register","id":2,"role":"sfu","address":"198.51.100.8:5000"}'),
            (0, '{"op":"heartbeat","id":3,"load":20}'),
            (0xFE, "xx"),
            (2, '{"op":"nodes","id":4,"role":"relay"}'),
            (1, '{"op":"heartbeat","id":5}')),
        "sfu.bin": session(
            (2, '{"op":"register","id":1,"role":"sfu","address":"203.0.113.5:3480",'
                '"nat_type":"none","region":"eu","load":10}'),
            (0, join % (2, "r1", "alice")),
            (1, join % (3, "r1", "bob")),
            (0, '{"op":"sfu","id":4,"room":"r1","rtt_ms":{"1":12.5}}'),
            (1, '{"op":"sfu","id":5,"room":"r1"}'),
            (0xFE, "xxxx"),
            (0, '{"op":"sfu","id":6,"room":"r1","rtt_ms":{"x":-1}}'),
            (1, '{"op":"report","id":7,"room":"r1","rung":"sfu","time_to_connect_ms":800}')),
        "hostile.bin": session(
            (0, "not json"),
            (0, "[" * 40 + "]" * 40),
            (0, '{"op":7}'),
            (0, '{"op":"join","room":"a:b","name":"x","candidates":[]}'),
            (0, '{"op":"report","room":"r","rung":"p2p","time_to_connect_ms":1e999}'),
            (0, '{"op":"ping","id":{"a":1}}'),
            (0, " "),
            (0, '{"op":"teleport"}')),
    }


# ------------------------------------------------------------------------------ output
def corpora():
    message = rfc5769_vectors()
    message.update(hand_made_messages())
    return {"message": message, "channel_data": channel_data_frames(),
            "coordinator": coordinator_sessions()}


def write(root):
    for name, files in corpora().items():
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.bin"):
            if stale.name not in files:
                stale.unlink()
        for file_name, content in files.items():
            (directory / file_name).write_bytes(content)


def check(root):
    """True when `root` holds exactly the files write() would make."""
    ok = True
    for name, files in corpora().items():
        directory = root / name
        present = {p.name for p in directory.glob("*.bin")} if directory.is_dir() else set()
        for extra in sorted(present - files.keys()):
            print(f"make_corpus: {directory / extra}: not made by this script", file=sys.stderr)
            ok = False
        for file_name, content in sorted(files.items()):
            path = directory / file_name
            if not path.is_file():
                print(f"make_corpus: {path}: missing", file=sys.stderr)
                ok = False
            elif path.read_bytes() != content:
                print(f"make_corpus: {path}: differs", file=sys.stderr)
                ok = False
    if not ok:
        print("make_corpus: run tests/fuzz/make_corpus.py to regenerate", file=sys.stderr)
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path(__file__).resolve().parent / "corpus")
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing; exit 1 on any difference")
    args = parser.parse_args()
    if args.check:
        return 0 if check(args.out) else 1
    write(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
