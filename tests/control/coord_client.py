#!/usr/bin/env python3
"""punchcoord's protocol from another language: a plain socket, one JSON object per line.

    coord_client.py HOST:PORT ROOM NAME    joins, waits for the peer, prints one JSON line:
                                           {"joined": <join reply>, "peer": <peer event>}
"""
import json
import socket
import sys

host, port = sys.argv[1].rsplit(":", 1)
room, name = sys.argv[2], sys.argv[3]
conn = socket.create_connection((host, int(port)), timeout=10)
lines = conn.makefile("r", encoding="utf-8")


def request(op, **fields):
    conn.sendall((json.dumps({"op": op, "id": op, **fields}) + "\n").encode())
    while True:
        message = json.loads(lines.readline())
        if message.get("id") == op:
            if not message["ok"]:
                sys.exit(f"{op}: {message['error']['code']}: {message['error']['message']}")
            return message
        events.append(message)  # an event pushed before the reply


events = []
hello = request("hello")
joined = request("join", room=room, name=name, nat_type="none",
                 candidates=[{"type": "host", "address": "127.0.0.1:9"}])
while not any(e.get("event") == "peer" for e in events):
    events.append(json.loads(lines.readline()))
peer = next(e for e in events if e.get("event") == "peer")
print(json.dumps({"hello": hello, "joined": joined, "peer": peer}), flush=True)
request("leave", room=room)
