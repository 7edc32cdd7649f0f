#!/usr/bin/env python3
"""tests/control/punchctl_node_test.py PUNCHCTL: `punchctl node` against a scripted engine.

A Unix socket in a temporary folder plays punchlined's management socket (JSON lines,
control/protocol.h): each request is recorded and answered with the next scripted reply. What
punchctl makes of `/node`'s answers (NodeAgent::status(), control/node_agent.h, and the
engine's waiting_for_next_hop and not_available answers, engine/punchlined.cc) is checked line
by line, with the exit codes of docs/operations.md. No engine, no root: the reply format is the
contract, and the engine side of `/node` is tested by the agent's own tests.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

PUNCHCTL = sys.argv[1] if len(sys.argv) > 1 else "punchctl"

# A registered, draining node that took five sfu_punch orders and dropped two.
REGISTERED = {
    "state": "registered",
    "coordinator": "203.0.113.10:7000",
    "node_id": 3,
    "public_address": "198.51.100.14:3480",
    "nat_type": "port_restricted",
    "region": "eu-west",
    "draining": True,
    "discovery": {"mapping": "endpoint_independent",
                  "filtering": "address_and_port_dependent", "elapsed_ms": 2076},
    "counters": {"connects": 2, "connect_failures": 1, "disconnects": 1, "registrations": 2,
                 "register_refusals": 0, "heartbeats": 45, "expiries": 1,
                 "request_timeouts": 0, "bad_lines": 0, "punch_events": 5,
                 "punch_events_rejected": {"bad_username": 0, "expired": 2, "mismatch": 0,
                                           "bad_addresses": 0, "no_usable_address": 0,
                                           "no_secret": 0, "draining": 0},
                 "discovery_runs": 1, "datagrams_ignored": 4},
    "punch": {"live_targets": 1, "orders": 5, "targets": 6, "targets_refused": 0,
              "requests_sent": 80, "send_failures": 0, "answers": 5,
              "answers_bad_integrity": 1, "targets_answered": 4, "targets_unanswered": 1},
    "frames_unsent": 0,
}
# Not discovered (public address and NAT type configured), not registered yet, not draining.
CONFIGURED = dict(REGISTERED, state="connecting", node_id=None, draining=False, region="")
del CONFIGURED["discovery"]
WAITING = {"state": "waiting_for_next_hop",
           "message": "the agent starts once the port reaches the STUN server's next hop "
                      "(at most 10 s)"}
NOT_A_NODE = {"code": "not_available",
              "message": "this engine is no SFU node: it has no [node] table",
              "hint": "add [node] with coordinator = \"host:port\" (and the sfu role) to its "
                      "configuration; docs/operations.md"}


class Engine:
    """One scripted reply per connection's request, in order; the requests recorded."""

    def __init__(self, path):
        self.requests = []
        self.replies = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(4)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                lines = connection.makefile("rb")
                for line in lines:
                    request = json.loads(line)
                    self.requests.append(request)
                    kind, body = self.replies.pop(0)
                    reply = {"id": request["id"], "ok": kind == "ok"}
                    reply["result" if kind == "ok" else "error"] = body
                    connection.sendall((json.dumps(reply) + "\n").encode())


failures = 0


def check(what, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what} {detail}")


def punchctl(socket_path, *args):
    run = subprocess.run([PUNCHCTL, "--socket", socket_path, *args], capture_output=True,
                         text=True, timeout=20)
    print(f"$ punchctl {' '.join(args)} (exit {run.returncode})")
    for line in (run.stdout + run.stderr).splitlines():
        print(f"  | {line}")
    return run


def lines_match(what, text, patterns):
    lines = text.splitlines()
    check(f"{what}: {len(patterns)} lines", len(lines) == len(patterns), repr(lines))
    for line, pattern in zip(lines, patterns):
        check(f"{what}: {pattern}", re.fullmatch(pattern, line) is not None, repr(line))


def main():
    with tempfile.TemporaryDirectory(prefix="punchctl-node-") as folder:
        path = os.path.join(folder, "engine.sock")
        engine = Engine(path)

        engine.replies.append(("ok", REGISTERED))
        run = punchctl(path, "node")
        check("node: exit 0", run.returncode == 0)
        check("node: the /node command, no arguments",
              engine.requests[-1]["command"] == "/node" and engine.requests[-1]["args"] == {},
              repr(engine.requests[-1]))
        lines_match("node", run.stdout, [
            r"node: registered as node 3 with punchcoord 203\.0\.113\.10:7000 \| DRAINING: "
            r"reported full \(punchctl undrain\)",
            r"public address 198\.51\.100\.14:3480, NAT port_restricted \(mapping "
            r"endpoint_independent, filtering address_and_port_dependent; discovered in 2076 "
            r"ms\), region eu-west",
            r"coordinator: 2 connect\(s\), 1 failed, 1 disconnect\(s\) \| 2 registration\(s\), "
            r"0 refused \| 45 heartbeat\(s\), 1 expiry\(ies\), 0 request timeout\(s\), 0 bad "
            r"line\(s\)",
            r"sfu_punch orders: 5 taken, 2 dropped \(expired 2\)",
            r"test packets: 80 sent, 0 send failure\(s\), 0 frame\(s\) unsent \| 5 answer\(s\), "
            r"1 with bad integrity \| targets: 6, 4 answered, 1 unanswered, 1 live, 0 refused",
            r"discovery: 1 run\(s\); 4 datagram\(s\) ignored",
        ])

        engine.replies.append(("ok", CONFIGURED))
        run = punchctl(path, "node")
        check("node, configured: exit 0", run.returncode == 0)
        lines = run.stdout.splitlines()
        check("node, configured: no node id, not draining",
              lines[:1] == ["node: connecting with punchcoord 203.0.113.10:7000"], repr(lines))
        check("node, configured: NAT type as configured, no region",
              len(lines) > 1 and lines[1] == "public address 198.51.100.14:3480, NAT "
                                             "port_restricted (configured), region -", repr(lines))

        engine.replies.append(("ok", REGISTERED))
        run = punchctl(path, "--json", "node")
        check("node --json: exit 0", run.returncode == 0)
        check("node --json: the engine's result as it came", json.loads(run.stdout) == REGISTERED)

        engine.replies.append(("ok", WAITING))
        run = punchctl(path, "node")
        check("node, waiting: exit 0", run.returncode == 0)
        lines_match("node, waiting", run.stdout, [
            r"node: not started yet: the agent starts once the port reaches the STUN server's "
            r"next hop \(at most 10 s\)"])

        engine.replies.append(("error", NOT_A_NODE))
        run = punchctl(path, "node")
        check("node on an engine without [node]: exit 1 (not_available)", run.returncode == 1)
        lines_match("node, not a node", run.stderr, [
            r"punchctl: this engine is no SFU node: it has no \[node\] table \[not_available\]",
            r"  try: add \[node\] with coordinator = \"host:port\" \(and the sfu role\) to its "
            r"configuration; docs/operations\.md"])

        asked = len(engine.requests)
        run = punchctl(path, "node", "--session", "a1")
        check("node with an option it has not: exit 2 (usage)", run.returncode == 2)
        check("node with an option it has not: named", "--session" in run.stderr, run.stderr)
        check("node with an option it has not: nothing sent", len(engine.requests) == asked)

        engine.listener.close()
        os.unlink(path)
        run = punchctl(path, "node")
        check("node with no engine: exit 3 (unreachable)", run.returncode == 3)

    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
