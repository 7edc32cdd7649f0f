#!/usr/bin/env python3
"""punchcoord's protocol from another language: a plain socket, one JSON object per line.

    coord_client.py HOST:PORT ROOM NAME    joins, waits for the peer, prints one JSON line:
                                           {"joined": <join reply>, "peer": <peer event>}

Imported (tests/control/coord_sfu_test.py), `Client` is the same client for several
connections at once: a member, a node.
"""
import json
import socket
import sys


class Client:
    """One connection: requests answered in order, events kept until asked for."""

    def __init__(self, address, timeout=10):
        host, port = address.rsplit(":", 1)
        self.conn = socket.create_connection((host, int(port)), timeout=timeout)
        self.lines = self.conn.makefile("r", encoding="utf-8")
        self.events = []
        self.next_id = 0

    def request(self, op, **fields):
        """The reply to one request, ok or not; events pushed before it are kept."""
        self.next_id += 1
        ident = f"{op}-{self.next_id}"
        self.conn.sendall((json.dumps({"op": op, "id": ident, **fields}) + "\n").encode())
        while True:
            message = self.read()
            if message.get("id") == ident:
                return message
            self.events.append(message)  # an event pushed before the reply

    def ok(self, op, **fields):
        """The reply to a request that must succeed."""
        reply = self.request(op, **fields)
        if not reply["ok"]:
            sys.exit(f"{op}: {reply['error']['code']}: {reply['error']['message']}")
        return reply

    def event(self, name):
        """The first event called `name`, waiting for it if none came yet."""
        while True:
            for i, e in enumerate(self.events):
                if e.get("event") == name:
                    return self.events.pop(i)
            self.events.append(self.read())

    def read(self):
        line = self.lines.readline()
        if not line:
            raise EOFError("the coordinator closed the connection")
        return json.loads(line)

    def close(self):
        self.lines.close()
        self.conn.close()


def main():
    address, room, name = sys.argv[1], sys.argv[2], sys.argv[3]
    client = Client(address)
    hello = client.ok("hello")
    joined = client.ok("join", room=room, name=name, nat_type="none",
                       candidates=[{"type": "host", "address": "127.0.0.1:9"}])
    peer = client.event("peer")
    print(json.dumps({"hello": hello, "joined": joined, "peer": peer}), flush=True)
    client.ok("leave", room=room)


if __name__ == "__main__":
    main()
