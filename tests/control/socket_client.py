#!/usr/bin/python3
"""tests/control/socket_client.py — raw clients of punchlined's management socket (JSON lines)
and the UDP clients the control test needs, for tests/control/punchctl_test.sh.

Usage:
  socket_client.py raw SOCKET          malformed, unknown, bad and over-long lines, each
                                       answered with its error on a connection that stays open
  socket_client.py many SOCKET N       N connections at once, each answered; one more than the
                                       engine's limit (N) is refused too_many_clients
  socket_client.py stall SOCKET        sends requests and never reads a reply, until the engine
                                       drops the connection (exit 0) or 60 s pass (exit 1)
  socket_client.py allocate SERVER USER PASSWORD
                                       one TURN allocation (aioice's codec); prints
                                       "allocated CLIENT_PORT RELAYED"
  socket_client.py binding SERVER      one STUN Binding request, answered
  socket_client.py flood SERVER SECONDS
                                       Binding requests, about 200 a second for SECONDS, and
                                       their answers read: traffic for punchctl top to show

Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number of failures.
"""
import hashlib
import json
import socket
import sys
import time

failures = 0


def check(what, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + str(detail) if detail else ''}")


class Line:
    """A connection to the socket that sends raw lines and reads JSON replies."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def reply(self):
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the engine closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, data):
        self.send(data)
        return self.reply()


def error_of(reply):
    return reply.get("error", {}).get("code") if not reply.get("ok") else None


def raw(path):
    c = Line(path)
    r = c.call("this is not json\n")
    check("a line that is not JSON: malformed_request", error_of(r) == "malformed_request", r)
    r = c.call('{"command": "/status", "id": 1}\n')
    check("the connection is kept after it: /status answered", r.get("ok") and r["id"] == 1, r)
    r = c.call('["/status"]\n')
    check("a JSON array: malformed_request", error_of(r) == "malformed_request", r)
    r = c.call('{"command": "/stat", "id": 2}\n')
    check("an unknown command: unknown_command with a suggestion",
          error_of(r) == "unknown_command" and "did you mean /stats?" in r["error"]["message"]
          and r["error"].get("hint") == "punchctl stats" and r["id"] == 2, r)
    r = c.call('{"command": "/stats", "args": {"window": "ten"}, "id": 3}\n')
    check("a bad argument: bad_argument naming it and what to type",
          error_of(r) == "bad_argument" and 'argument "window" of /stats' in r["error"]["message"]
          and r["error"].get("hint") == "punchctl stats --window 10", r)
    r = c.call('{"command": "/allocations", "args": {"kill": true}}\n')
    check("an unknown argument: unknown_argument", error_of(r) == "unknown_argument", r)
    r = c.call(b'{"command": "/status", "junk": "\xff"}\n')
    check("bytes that are not UTF-8: malformed_request", error_of(r) == "malformed_request", r)
    r = c.call("[" * 30000 + "]" * 30000 + "\n")
    check("arrays nested 30000 deep: malformed_request, no crash",
          error_of(r) == "malformed_request" and "nested deeper" in r["error"]["message"], r)
    r = c.call("x" * 70000 + "\n")
    check("a line over 64 KiB: line_too_long", error_of(r) == "line_too_long", r)
    r = c.call('{"command": "/help", "id": 4}\n')
    check("the connection is kept after all of them: /help answered",
          r.get("ok") and r["id"] == 4 and {"/status", "/stats", "/allocations", "/help"}
          <= {c["path"] for c in r["result"]["commands"]}, r)
    # Pipelined: two requests in one write, two replies in order.
    c.send('{"command": "/status", "id": 5}\n{"command": "/stats", "id": 6}\n')
    first, second = c.reply(), c.reply()
    check("pipelined requests answered in order", (first["id"], second["id"]) == (5, 6),
          (first.get("id"), second.get("id")))


def many(path, limit):
    connections = []
    for _ in range(limit):
        connections.append(Line(path))
    for i, c in enumerate(connections):
        c.send(json.dumps({"command": "/status", "id": i}) + "\n")
    answered = sum(1 for i, c in enumerate(connections) if c.reply().get("id") == i)
    check(f"{limit} clients at once, each answered", answered == limit, f"{answered} answered")
    extra = Line(path)
    r = extra.reply()
    check(f"client {limit + 1} refused: too_many_clients", error_of(r) == "too_many_clients", r)
    for c in connections:
        c.sock.close()


def stall(path):
    c = Line(path)
    c.sock.settimeout(60)
    request = (json.dumps({"command": "/help"}) + "\n").encode() * 1000
    sent = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c.sock.sendall(request)
            sent += 1000
        except (BrokenPipeError, ConnectionResetError):
            check(f"a client that never reads is dropped (after sending {sent} requests)", True)
            return
        except socket.timeout:
            break
    check("a client that never reads is dropped", False, f"still connected after {sent} requests")


def stun_message(method, attributes=(), username=None, realm=None, nonce=None, password=None):
    from aioice import stun
    message = stun.Message(message_method=method, message_class=stun.Class.REQUEST)
    for name, value in attributes:
        message.attributes[name] = value
    if username is not None:
        message.attributes["USERNAME"] = username
        message.attributes["REALM"] = realm
        message.attributes["NONCE"] = nonce
        message.add_message_integrity(
            hashlib.md5(f"{username}:{realm}:{password}".encode()).digest())
    return message


def exchange(sock, server, message):
    from aioice import stun
    for _ in range(10):
        sock.sendto(bytes(message), server)
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        answer = stun.parse_message(data)
        if answer.transaction_id == message.transaction_id:
            return answer
    raise TimeoutError("no answer")


def allocate(server, user, password):
    from aioice import stun
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.settimeout(0.5)
    transport = [("REQUESTED-TRANSPORT", 17 << 24)]
    first = exchange(sock, (server, 3478), stun_message(stun.Method.ALLOCATE, transport))
    realm, nonce = first.attributes.get("REALM"), first.attributes.get("NONCE")
    answer = exchange(sock, (server, 3478),
                      stun_message(stun.Method.ALLOCATE, transport, user, realm, nonce, password))
    ok = answer.message_class == stun.Class.RESPONSE
    check(f"allocation for {user}", ok, answer.attributes.get("ERROR-CODE"))
    if ok:
        relayed = answer.attributes["XOR-RELAYED-ADDRESS"]
        print(f"allocated {sock.getsockname()[1]} {relayed[0]}:{relayed[1]}")


def binding(server):
    from aioice import stun
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    answer = exchange(sock, (server, 3478), stun_message(stun.Method.BINDING))
    check("a STUN Binding request answered", answer.message_class == stun.Class.RESPONSE)


def flood(server, seconds):
    from aioice import stun
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.005)
    sent = answered = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.sendto(bytes(stun_message(stun.Method.BINDING)), (server, 3478))
        sent += 1
        try:
            while True:
                sock.recv(2048)
                answered += 1
        except (TimeoutError, socket.timeout):
            pass
    check(f"flood: {answered} of {sent} Binding requests answered", answered > 0)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    try:
        if mode == "raw":
            raw(args[0])
        elif mode == "many":
            many(args[0], int(args[1]))
        elif mode == "stall":
            stall(args[0])
        elif mode == "allocate":
            allocate(*args[:3])
        elif mode == "binding":
            binding(args[0])
        elif mode == "flood":
            flood(args[0], float(args[1]))
        else:
            check(f"known mode {mode}", False)
    except (OSError, ValueError, TimeoutError) as error:
        check(f"{mode} ran to its end", False, repr(error))
    sys.exit(failures)


if __name__ == "__main__":
    main()
