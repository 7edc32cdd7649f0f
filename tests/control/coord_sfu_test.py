#!/usr/bin/env python3
"""punchcoord's SFU rung (docs/sfu.md, "The coordinator's part") as a process on loopback,
spoken to from Python (tests/control/coord_client.py's Client):

  1. two SFU nodes register: one with no NAT, one port-restricted (which cannot take a
     symmetric client's unknown port, nat_matrix.h);
  2. two members join a room with NAT types full_cone and symmetric, and both ask `sfu`: the
     same session and the same order, the port-restricted node dropped as nat_client_b;
  3. each member's token verifies: HMAC-SHA256 recomputed here with the secret from the
     configuration file, and refused with another secret, so the check can fail;
  4. the serving node gets one sfu_punch per member with that member's direct addresses (not
     its relayed one), the other node none, and asking again sends no more;
  5. hostile requests (bad types, a huge rtt_ms, a room it is not in) get their errors;
  6. the serving node disconnects: the next reply drops it as expired and says why;
  7. an outcome report on the rung "sfu" is counted; SIGTERM's report counts the SFU work.

    coord_sfu_test.py PUNCHCOORD
No root needed.
"""
import base64
import hashlib
import hmac
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from coord_client import Client  # noqa: E402

punchcoord = sys.argv[1]


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main(work):
    secret = os.urandom(24).hex()
    with open(os.path.join(work, "sfu-secret"), "w") as f:
        f.write(secret + "\n")
    config = os.path.join(work, "coord.toml")
    with open(config, "w") as f:
        f.write(f'''listen = "127.0.0.1:0"
[sfu]
token_secret_file = "{work}/sfu-secret"
token_ttl_s = 600
race = 1
''')
    log = open(os.path.join(work, "punchcoord.log"), "w+")
    out = open(os.path.join(work, "punchcoord.out"), "w+")
    coord = subprocess.Popen([punchcoord, "--config", config], stdout=out, stderr=log)
    try:
        return scenario(coord, log, out, secret)
    finally:
        if coord.poll() is None:
            coord.kill()
            coord.wait()


def scenario(coord, log, out, secret):
    port = None
    for _ in range(100):
        log.seek(0)
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read())
        if found:
            port = found.group(1)
            break
        check(coord.poll() is None, "punchcoord exited at start")
        time.sleep(0.1)
    check(port, "punchcoord did not say where it listens")
    address = f"127.0.0.1:{port}"
    print(f"punchcoord on {address}")

    # 1. Two SFU nodes.
    open_node = Client(address)
    restricted = Client(address)
    open_id = open_node.ok("register", role="sfu", address="203.0.113.5:3480",
                           nat_type="none", region="eu-west", load=10)["node_id"]
    restricted_id = restricted.ok("register", role="sfu", address="203.0.113.6:3480",
                                  nat_type="port_restricted", region="eu-west",
                                  load=0)["node_id"]

    # 2. Two members, then both ask.
    alice = Client(address)
    bob = Client(address)
    check(alice.ok("hello")["sfu_tokens"] is True, "hello: sfu_tokens")
    alice_candidates = [{"type": "host", "address": "10.0.0.2:40000"},
                        {"type": "srflx", "address": "198.51.100.7:40000"},
                        {"type": "relay", "address": "203.0.113.4:49152"}]
    alice.ok("join", room="call-sfu", name="alice", nat_type="full_cone", region="eu-west",
             candidates=alice_candidates)
    bob.ok("join", room="call-sfu", name="bob", nat_type="symmetric", region="us-east",
           candidates=[{"type": "srflx", "address": "198.51.100.9:6000"}])
    a = alice.ok("sfu", room="call-sfu", rtt_ms={str(open_id): 12.5})
    b = bob.ok("sfu", room="call-sfu")
    check(a["session"] == b["session"], f"one session: {a['session']} / {b['session']}")
    check(re.fullmatch(r"[0-9a-f]{16}", a["session"]), f"session {a['session']}")
    check(a["candidates"] == b["candidates"], "the same order for both")
    check([c["node_id"] for c in a["candidates"]] == [open_id], f"candidates {a['candidates']}")
    check(a["candidates"][0]["address"] == "203.0.113.5:3480", "the node's address")
    check(a["dropped"] == [{"node_id": restricted_id, "reason": "nat_client_b"}],
          f"dropped {a['dropped']}")
    check(a["race"] == 1, "race")
    print("alice and bob: session", a["session"], "candidates", [open_id],
          "dropped", a["dropped"])

    # 3. The tokens.
    now = int(time.time())
    for name, r in (("alice", a), ("bob", b)):
        expiry, session, participant = r["username"].split(":")
        check(participant == name and session == r["session"], r["username"])
        check(int(expiry) == r["expires_unix"], "expires_unix")
        check(now + 600 - 5 <= int(expiry) <= now + 600 + 5, f"expiry {expiry} ~ now + 600")
        mac = hmac.new(secret.encode(), r["username"].encode(), hashlib.sha256).digest()
        check(r["password"] == base64.b64encode(mac).decode(), f"{name}'s password")
        other = hmac.new(b"another-secret-16", r["username"].encode(), hashlib.sha256).digest()
        check(r["password"] != base64.b64encode(other).decode(), "another secret differs")
    print("tokens: HMAC-SHA256 of the username with the configured secret")

    # 4. The nodes.
    first = open_node.event("sfu_punch")
    second = open_node.event("sfu_punch")
    punches = {p["participant"]: p for p in (first, second)}
    check(set(punches) == {"alice", "bob"}, f"punches {punches}")
    check(punches["alice"] == {"event": "sfu_punch", "session": a["session"],
                               "participant": "alice", "username": a["username"],
                               "addresses": ["10.0.0.2:40000", "198.51.100.7:40000"]},
          f"alice's punch {punches['alice']}")
    check(punches["bob"]["addresses"] == ["198.51.100.9:6000"], "bob's addresses")
    check(punches["bob"]["username"] == b["username"], "bob's username")
    alice.ok("sfu", room="call-sfu")  # again: the node is not told again
    open_node.ok("ping")
    restricted.ok("ping")
    check(not any(e.get("event") == "sfu_punch" for e in open_node.events),
          f"told again: {open_node.events}")
    check(not restricted.events, f"the restricted node was told: {restricted.events}")
    print("nodes: the serving one told once per member, the other not at all")

    # 5. Hostile requests.
    for fields, code in ((dict(room=5), "bad_request"),
                         (dict(room="call-sfu", rtt_ms=[1, 2]), "bad_request"),
                         (dict(room="call-sfu", rtt_ms={"x": 1}), "bad_request"),
                         (dict(room="call-sfu", rtt_ms={"3": 60001}), "bad_request"),
                         (dict(room="call-sfu", rtt_ms={str(i): 1 for i in range(1, 1002)}),
                          "limit"),
                         (dict(room="elsewhere"), "not_found")):
        r = bob.request("sfu", **fields)
        check(not r["ok"] and r["error"]["code"] == code, f"{fields}: {r}")
    mallory = Client(address)
    r = mallory.request("sfu", room="call-sfu")
    check(not r["ok"] and r["error"]["code"] == "not_found", f"outsider: {r}")
    print("hostile requests: refused, each with its code")

    # 6. The node disconnects.
    open_node.close()
    for _ in range(100):
        r = alice.ok("sfu", room="call-sfu")
        if not r["candidates"]:
            break
        time.sleep(0.05)
    check(r["candidates"] == [] and r["reason"] == "candidates_gone", f"after the close: {r}")
    check({"node_id": open_id, "reason": "expired"} in r["dropped"], f"dropped {r['dropped']}")
    print("the node's disconnect: dropped as expired,", r["reason"])

    # 7. Reports and the exit report.
    alice.ok("report", room="call-sfu", rung="sfu", time_to_connect_ms=700,
             local_nat="full_cone", remote_nat="symmetric")
    outcomes = alice.ok("outcomes")
    check(outcomes["rungs"]["sfu"]["count"] == 1, f"outcomes {outcomes}")
    coord.send_signal(signal.SIGTERM)
    check(coord.wait(timeout=10) == 0, "exit status")
    out.seek(0)
    report = out.read()
    sfu_line = re.search(r"^sfu: requests (\d+), sessions 1, punches sent 2$", report, re.M)
    check(sfu_line, f"report: {report}")
    print(report.strip())
    return 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="punchcoord-sfu.") as work:
        try:
            sys.exit(main(work))
        except (AssertionError, EOFError, OSError) as error:
            print(f"FAIL: {error}")
            for name in ("punchcoord.log", "punchcoord.out"):
                path = os.path.join(work, name)
                if os.path.exists(path):
                    print(f"--- {name}\n{open(path).read()}")
            sys.exit(1)
