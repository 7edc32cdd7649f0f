#!/usr/bin/python3
"""tests/engine/interop/relay_refusals.py — the refusals a TURN client must get, checked with
aioice's STUN codec (python3-aioice: a third party's encoder and parser, MESSAGE-INTEGRITY and
FINGERPRINT included) against punchlined's relay role over real UDP.

Usage: relay_refusals.py SERVER PORT REALM USER PASSWORD REST_SECRET NONCE_LIFETIME_S DENIED_PEER

Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number of failures.
  - a wrong password: 401 (RFC 8489 §9.2.4), and the right one then allocates;
  - an expired REST username (TURN REST: "expiry:name", password base64(HMAC-SHA1(secret,
    username))): 401; an unexpired one allocates;
  - a stale nonce: 438 with a new nonce after NONCE_LIFETIME_S, with which the request then
    succeeds;
  - a denied peer: CreatePermission for DENIED_PEER (the configured deny list), for a loopback
    and for an RFC 1918 peer: 403 each (RFC 8656 §10.2).
"""
import base64
import hashlib
import hmac
import socket
import sys
import time

from aioice import stun

failures = 0


def check(what, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + detail if detail else ''}")


class Client:
    """One client 5-tuple: a UDP socket, and what the server told it (realm, nonce)."""

    def __init__(self, server):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.settimeout(0.5)
        self.nonce = None
        self.realm = None

    def exchange(self, request, key=None):
        """Sends `request` (signed with `key` if given) until answered; the parsed answer."""
        if key is not None:
            request.add_message_integrity(key)
        data = bytes(request)
        for _ in range(6):
            self.sock.sendto(data, self.server)
            try:
                answer, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            message = stun.parse_message(answer)
            if message.transaction_id != request.transaction_id:
                continue
            if "NONCE" in message.attributes:
                self.nonce = message.attributes["NONCE"]
            if "REALM" in message.attributes:
                self.realm = message.attributes["REALM"]
            return message
        raise TimeoutError(f"no answer to {request!r}")

    def request(self, method, attributes=(), username=None, password=None):
        """A request of `method`, with long-term credentials when `username` is given."""
        message = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
        for name, value in attributes:
            message.attributes[name] = value
        key = None
        if username is not None:
            message.attributes["USERNAME"] = username
            message.attributes["REALM"] = self.realm
            message.attributes["NONCE"] = self.nonce
            key = hashlib.md5(f"{username}:{self.realm}:{password}".encode()).digest()
        return self.exchange(message, key)

    def allocate(self, username=None, password=None):
        return self.request(stun.Method.ALLOCATE, [("REQUESTED-TRANSPORT", 17 << 24)],
                            username, password)


def error_code(message):
    if message.message_class != stun.Class.ERROR:
        return None
    return message.attributes.get("ERROR-CODE", (None, ""))[0]


def describe(message):
    if message.message_class == stun.Class.ERROR:
        code, reason = message.attributes.get("ERROR-CODE", (None, ""))
        return f"error {code} {reason!r}"
    return message.message_class.name.lower()


def rest_password(secret, username):
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def main():
    (server, port, realm, user, password, secret, nonce_lifetime,
     denied_peer) = sys.argv[1:9]
    server = (server, int(port))
    nonce_lifetime = int(nonce_lifetime)

    # The first Allocate of every client is answered 401 with a REALM and a NONCE.
    wrong = Client(server)
    first = wrong.allocate()
    check("an Allocate without credentials: 401 with REALM and NONCE",
          error_code(first) == 401 and wrong.realm == realm and wrong.nonce, describe(first))
    answer = wrong.allocate(user, password + "x")
    check("a wrong password: 401", error_code(answer) == 401, describe(answer))
    answer = wrong.allocate(user, password)
    check("the right password then: an allocation",
          answer.message_class == stun.Class.RESPONSE and
          "XOR-RELAYED-ADDRESS" in answer.attributes, describe(answer))

    expired = Client(server)
    expired.allocate()
    name = f"{int(time.time()) - 3600}:bob"
    answer = expired.allocate(name, rest_password(secret, name))
    check("an expired REST username: 401", error_code(answer) == 401, describe(answer))
    name = f"{int(time.time()) + 3600}:bob"
    answer = expired.allocate(name, rest_password(secret, name))
    check("an unexpired REST username: an allocation",
          answer.message_class == stun.Class.RESPONSE, describe(answer))

    # Denied peers, on the allocation made with the right password.
    for peer, why in ((denied_peer, "in the configured deny list"),
                      ("127.0.0.1", "loopback"), ("10.1.2.3", "RFC 1918")):
        answer = wrong.request(stun.Method.CREATE_PERMISSION,
                               [("XOR-PEER-ADDRESS", (peer, 0))], user, password)
        check(f"CreatePermission for {peer} ({why}): 403", error_code(answer) == 403,
              describe(answer))

    # A stale nonce: one issued more than the lifetime ago, on a request with valid
    # credentials, gets 438 and a fresh nonce, with which the request goes through.
    stale = Client(server)
    stale.allocate()
    old_nonce = stale.nonce
    time.sleep(nonce_lifetime + 1.5)
    answer = stale.allocate(user, password)
    check("a stale nonce: 438 with a new NONCE",
          error_code(answer) == 438 and stale.nonce and stale.nonce != old_nonce,
          describe(answer))
    answer = stale.allocate(user, password)
    check("the new nonce then: an allocation", answer.message_class == stun.Class.RESPONSE,
          describe(answer))
    return failures


if __name__ == "__main__":
    sys.exit(main())
