#!/usr/bin/python3
"""tests/control/relay_load.py — the two halves of tests/control/reload_under_load_test.sh.

Usage:
  relay_load.py flow SERVER PEER_IP REALM_SECRET STOP_FILE SUMMARY
      Makes four TURN allocations on SERVER:3478 (alice twice, bob, and a TURN REST user signed
      with REALM_SECRET), binds a channel on each to its own peer socket on PEER_IP, prints
      "ready", then relays a paced flow both ways (ChannelData from the clients, plain UDP
      from the peers to the relayed addresses) until STOP_FILE exists (at most 100 s), while
      refreshing every allocation, its permission and its channel every 2 s with the nonce of
      its first 401. Then waits for the last datagrams and writes SUMMARY (JSON): what was
      sent and received each way, the refreshes answered, and every error code received.
  relay_load.py churn SOCKET CONFIG COUNT SECONDS
      COUNT changes over the management socket, paced over about SECONDS, in cycles of ten: a user added and removed, a
      REST secret added and retired, a deny and an allow entry added and removed, a reload of
      CONFIG after flipping its peer_deny line, and a drain or an undrain. Every reply must be
      ok; prints one line per kind and the time taken.

  relay_load.py probe SERVER USER PASSWORD PEER
      One allocation attempt by USER, then a CreatePermission for PEER (an IP) when it
      succeeded; prints "allocate CODE" (0: success) with "alternate-server IP:PORT" when the
      answer names one, and "permission CODE". For the live-changes test, which judges them.

Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number of failures.
"""
import base64
import hashlib
import hmac
import json
import os
import select
import socket
import struct
import sys
import time

from aioice import stun

failures = 0


def check(what, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {what}", flush=True)
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + str(detail) if detail else ''}", flush=True)


class Allocation:
    """One TURN client socket, its allocation and channel, and the peer socket behind it."""

    def __init__(self, server, peer_ip, user, password, channel):
        self.server = (server, 3478)
        self.user, self.password, self.channel = user, password, channel
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("203.0.113.10", 0))
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind((peer_ip, 0))
        self.realm = self.nonce = self.relayed = None
        self.pending = {}  # transaction id -> (kind, message, sent at, retransmitted)

    def request(self, method, attributes=(), sign=True):
        message = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
        for name, value in attributes:
            message.attributes[name] = value
        if sign:
            message.attributes["USERNAME"] = self.user
            message.attributes["REALM"] = self.realm
            message.attributes["NONCE"] = self.nonce
            message.add_message_integrity(hashlib.md5(
                f"{self.user}:{self.realm}:{self.password}".encode()).digest())
        return message

    def exchange(self, message):
        self.sock.settimeout(0.5)
        for _ in range(10):
            self.sock.sendto(bytes(message), self.server)
            try:
                while True:
                    data, _ = self.sock.recvfrom(2048)
                    if data[0] < 2:
                        answer = stun.parse_message(data)
                        if answer.transaction_id == message.transaction_id:
                            self.last_raw = data
                            return answer
            except socket.timeout:
                continue
        raise TimeoutError(f"no answer to {message.message_method.name} for {self.user}")

    def setup(self):
        transport = [("REQUESTED-TRANSPORT", 17 << 24)]
        first = self.exchange(self.request(stun.Method.ALLOCATE, transport, sign=False))
        self.realm, self.nonce = first.attributes["REALM"], first.attributes["NONCE"]
        answer = self.exchange(self.request(stun.Method.ALLOCATE, transport))
        if answer.message_class != stun.Class.RESPONSE:
            raise RuntimeError(f"Allocate for {self.user}: {answer.attributes.get('ERROR-CODE')}")
        self.relayed = answer.attributes["XOR-RELAYED-ADDRESS"]
        answer = self.exchange(self.channel_bind())
        if answer.message_class != stun.Class.RESPONSE:
            raise RuntimeError(f"ChannelBind for {self.user}: {answer.attributes.get('ERROR-CODE')}")
        self.sock.setblocking(False)
        self.peer.setblocking(False)

    def channel_bind(self):
        return self.request(stun.Method.CHANNEL_BIND, [
            ("CHANNEL-NUMBER", self.channel),
            ("XOR-PEER-ADDRESS", self.peer.getsockname())])

    def refreshes(self):
        """The requests that keep the allocation, its permission and its channel alive."""
        return [("refresh", self.request(stun.Method.REFRESH, [("LIFETIME", 600)])),
                ("permission", self.request(stun.Method.CREATE_PERMISSION,
                                            [("XOR-PEER-ADDRESS", self.peer.getsockname())])),
                ("channel", self.channel_bind())]


def flow(server, peer_ip, rest_secret, stop_file, summary_path):
    expiry = int(time.time()) + 3600
    rest_user = f"{expiry}:dave"
    rest_password = base64.b64encode(
        hmac.new(rest_secret.encode(), rest_user.encode(), hashlib.sha1).digest()).decode()
    allocations = [
        Allocation(server, peer_ip, "alice", "pw-alice", 0x4000),
        Allocation(server, peer_ip, "alice", "pw-alice", 0x4001),
        Allocation(server, peer_ip, "bob", "pw-bob", 0x4002),
        Allocation(server, peer_ip, rest_user, rest_password, 0x4003),
    ]
    for a in allocations:
        a.setup()
    print(f"ready {len(allocations)}", flush=True)

    counts = {"to_peer_sent": 0, "to_peer_received": 0, "to_client_sent": 0,
              "to_client_received": 0, "refreshes_sent": 0, "refreshes_ok": 0,
              "retransmitted": 0, "unanswered": 0, "out_of_order_or_foreign": 0}
    errors = {}
    by_socket = {}
    for a in allocations:
        by_socket[a.sock.fileno()] = ("client", a)
        by_socket[a.peer.fileno()] = ("peer", a)
    period = 0.0025  # one datagram each way every 2.5 ms: 400 a second each way, in all
    started = time.monotonic()
    next_send = started
    next_refresh = started + 2.0
    sequence = 0
    deadline = started + 100
    stopping_at = None

    def receive(timeout):
        readable, _, _ = select.select(list(by_socket), [], [], timeout)
        for fd in readable:
            side, a = by_socket[fd]
            sock = a.sock if side == "client" else a.peer
            while True:
                try:
                    data, _ = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                if side == "peer":
                    if data.startswith(b"to-peer "):
                        counts["to_peer_received"] += 1
                    else:
                        counts["out_of_order_or_foreign"] += 1
                elif 0x40 <= data[0] <= 0x7F:
                    channel, length = struct.unpack("!HH", data[:4])
                    if channel == a.channel and data[4:4 + length].startswith(b"to-client "):
                        counts["to_client_received"] += 1
                    else:
                        counts["out_of_order_or_foreign"] += 1
                else:
                    answer = stun.parse_message(data)
                    entry = a.pending.pop(answer.transaction_id, None)
                    if entry is None:
                        continue  # the answer to a retransmission already answered
                    if answer.message_class == stun.Class.RESPONSE:
                        counts["refreshes_ok"] += 1
                    else:
                        code = answer.attributes.get("ERROR-CODE", (0, ""))[0]
                        errors[f"{entry[0]} {code}"] = errors.get(f"{entry[0]} {code}", 0) + 1

    while True:
        now = time.monotonic()
        if stopping_at is None and (os.path.exists(stop_file) or now > deadline):
            stopping_at = now
        if stopping_at is not None and now > stopping_at + 2 and \
                not any(a.pending for a in allocations):
            break
        if stopping_at is not None and now > stopping_at + 5:
            break
        if stopping_at is None and now >= next_send:
            a = allocations[sequence % len(allocations)]
            payload = b"to-client " + str(sequence).encode()
            a.peer.sendto(payload, a.relayed)
            counts["to_client_sent"] += 1
            payload = b"to-peer " + str(sequence).encode()
            a.sock.sendto(struct.pack("!HH", a.channel, len(payload)) + payload, a.server)
            counts["to_peer_sent"] += 1
            sequence += 1
            next_send += period
        if stopping_at is None and now >= next_refresh:
            for a in allocations:
                for kind, message in a.refreshes():
                    a.pending[message.transaction_id] = (kind, message, now, False)
                    a.sock.sendto(bytes(message), a.server)
                    counts["refreshes_sent"] += 1
            next_refresh += 2.0
        # A request unanswered for a second is sent again once (RFC 8489 §6.2.1: UDP may lose
        # it); the engine answers a retransmission from its cache.
        for a in allocations:
            for tid, (kind, message, sent, again) in list(a.pending.items()):
                if not again and now > sent + 1.0:
                    a.pending[tid] = (kind, message, now, True)
                    a.sock.sendto(bytes(message), a.server)
                    counts["retransmitted"] += 1
        receive(max(0.0, min(next_send, next_refresh) - time.monotonic()) if stopping_at is None
                else 0.05)
    counts["unanswered"] = sum(len(a.pending) for a in allocations)
    counts["errors"] = errors
    counts["seconds"] = round(time.monotonic() - started, 1)
    with open(summary_path, "w") as out:
        json.dump(counts, out)
    print(json.dumps(counts), flush=True)


def churn(path, config, count, seconds):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from socket_client import Line

    line = Line(path)
    line.sock.settimeout(30)
    kinds = {}
    started = time.monotonic()
    secret_id = None

    def call(kind, command, args=None):
        nonlocal secret_id
        reply = line.call(json.dumps({"command": command, "args": args or {}}) + "\n")
        if not reply.get("ok"):
            check(f"{command} {args} accepted", False, reply)
            return None
        kinds[kind] = kinds.get(kind, 0) + 1
        return reply["result"]

    for i in range(count):
        # Paced, so that the changes fall among the flow's refreshes (every 2 s), not before.
        pause = started + i * seconds / count - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        step, cycle = i % 10, i // 10
        if step == 0:
            call("users", "/users/add", {"name": f"churn{cycle}", "password": f"pw{cycle}"})
        elif step == 1:
            call("users", "/users/remove", {"name": f"churn{cycle}"})
        elif step == 2:
            result = call("secrets", "/secrets/add", {"secret": f"churn-secret-{cycle:08d}"})
            secret_id = result["id"] if result else None
        elif step == 3:
            call("secrets", "/secrets/retire", {"id": secret_id or 0})
        elif step in (4, 5):
            call("peer-policy", "/peer-policy/" + ("add" if step == 4 else "remove"),
                 {"list": "deny", "cidr": f"192.0.2.{cycle % 256}"})
        elif step in (6, 7):
            call("peer-policy", "/peer-policy/" + ("add" if step == 6 else "remove"),
                 {"list": "allow", "cidr": f"10.{cycle % 256}.0.0/16"})
        elif step == 8:
            with open(config) as f:
                text = f.read()
            old, new = ('"198.51.100.99"', '"198.51.100.98"') if cycle % 2 == 0 else \
                ('"198.51.100.98"', '"198.51.100.99"')
            with open(config, "w") as f:
                f.write(text.replace(f"peer_deny = [{old}]", f"peer_deny = [{new}]"))
            result = call("reloads", "/reload")
            if result is not None and result["changed"] != ["relay.peer_deny"]:
                check(f"reload {cycle} changed relay.peer_deny alone", False, result)
        else:
            call("drain", "/drain" if cycle % 2 == 0 else "/undrain")
    elapsed = time.monotonic() - started
    for kind, n in sorted(kinds.items()):
        print(f"{kind}: {n} changes applied")
    total = sum(kinds.values())
    check(f"{count} changes applied, each a new snapshot ({elapsed:.1f} s)", total == count,
          f"{total} applied")


def probe(server, user, password, peer):
    a = Allocation(server, "203.0.113.10", user, password, 0x4000)
    transport = [("REQUESTED-TRANSPORT", 17 << 24)]
    first = a.exchange(a.request(stun.Method.ALLOCATE, transport, sign=False))
    a.realm, a.nonce = first.attributes["REALM"], first.attributes["NONCE"]
    answer = a.exchange(a.request(stun.Method.ALLOCATE, transport))
    code = answer.attributes.get("ERROR-CODE", (0, ""))[0]
    print(f"allocate {code}")
    # ALTERNATE-SERVER (0x8023, RFC 8489 §14.15: MAPPED-ADDRESS's encoding), which aioice's
    # codec does not know: read from the raw answer.
    raw, at = a.last_raw, 20
    while at + 4 <= len(raw):
        kind, length = struct.unpack("!HH", raw[at:at + 4])
        if kind == 0x8023 and length == 8 and raw[at + 5] == 1:
            port = struct.unpack("!H", raw[at + 6:at + 8])[0]
            print(f"alternate-server {socket.inet_ntoa(raw[at + 8:at + 12])}:{port}")
        at += 4 + length + (-length % 4)
    if code == 0:
        answer = a.exchange(a.request(stun.Method.CREATE_PERMISSION,
                                      [("XOR-PEER-ADDRESS", (peer, 9))]))
        print(f"permission {answer.attributes.get('ERROR-CODE', (0, ''))[0]}")


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    try:
        if mode == "flow":
            flow(*args[:5])
        elif mode == "probe":
            probe(*args[:4])
        elif mode == "churn":
            churn(args[0], args[1], int(args[2]), float(args[3]))
        else:
            check(f"known mode {mode}", False)
    except (OSError, ValueError, TimeoutError, RuntimeError, KeyError) as error:
        check(f"{mode} ran to its end", False, repr(error))
    sys.exit(failures)


if __name__ == "__main__":
    main()
