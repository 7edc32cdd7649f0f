#!/usr/bin/python3
"""tests/control/sfu_live.py PUNCHCTL SOCKET SECRET SERVER: the SFU's operator commands on live
legs, for tests/control/sfu_live_test.sh (run in the client's namespace).

Participants are UDP sockets of this namespace, admitted by real Binding requests (docs/sfu.md,
"Admission"): USERNAME = a session token's username signed with SECRET as punchcoord signs it
(stun/sfu_token.h: HMAC-SHA256, base64), MESSAGE-INTEGRITY keyed with that password and
FINGERPRINT, all built here from RFC 8489 rather than by the engine's code. Media are opaque
datagrams (first byte 0x81, docs/sfu.md "Forwarding") numbered so that each receiver can tell
what it got. punchctl runs from here against SOCKET (a file: any namespace reaches it).

No sleeps stand in for an event: each step polls for what it waits for (an answer, a leg in
the listing). "Nothing arrives" is shown by a marker sent after the datagrams that must not
arrive, on a path that keeps their order (the same worker, the same port): once the marker is
in, anything sent before it would be too.

Each check prints "ok: ..." or "FAIL: ..."; the exit status is the number of failures.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
import zlib

PUNCHCTL, SOCKET, SECRET, SERVER = sys.argv[1:5]
SFU = (SERVER, 3480)
SESSION = 0x00C0FFEE12345678
SESSION_TEXT = f"{SESSION:016x}"

failures = 0


def check(what, condition, detail=""):
    global failures
    if condition:
        print(f"ok: {what}", flush=True)
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + str(detail) if detail else ''}", flush=True)


# --- STUN (RFC 8489) ---

MAGIC = 0x2112A442


def attribute(kind, value):
    padding = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * padding


def binding_request(username, password, txid):
    """USERNAME, MESSAGE-INTEGRITY (§14.5: HMAC-SHA1 over the message up to it, the length
    covering it) and FINGERPRINT (§14.7: CRC-32 XOR 0x5354554e, the length covering it)."""
    body = attribute(0x0006, username.encode())

    def header(length):
        return struct.pack("!HHI", 0x0001, length, MAGIC) + txid

    integrity = hmac.new(password.encode(), header(len(body) + 24) + body, hashlib.sha1).digest()
    body += attribute(0x0008, integrity)
    crc = zlib.crc32(header(len(body) + 8) + body) ^ 0x5354554E
    body += attribute(0x8028, struct.pack("!I", crc))
    return header(len(body)) + body


def answer_of(data, txid):
    """(class, error code, reason) of a response to `txid`; None for anything else."""
    if len(data) < 20 or data[8:20] != txid:
        return None
    kind, length = struct.unpack("!HH", data[:4])
    offset, code, reason = 20, None, ""
    while offset + 4 <= 20 + length:
        attr, size = struct.unpack("!HH", data[offset:offset + 4])
        value = data[offset + 4:offset + 4 + size]
        if attr == 0x0009:  # ERROR-CODE (§14.8): class, number, reason
            code = (value[2] & 7) * 100 + value[3]
            reason = value[4:].decode(errors="replace")
        offset += 4 + size + (4 - size % 4) % 4
    return ("success" if kind == 0x0101 else "error" if kind == 0x0111 else "other",
            code, reason)


def token(name):
    username = f"{int(time.time()) + 3600}:{SESSION_TEXT}:{name}"
    mac = hmac.new(SECRET.encode(), username.encode(), hashlib.sha256).digest()
    return username, base64.b64encode(mac).decode()


class Participant:
    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        self.port = self.sock.getsockname()[1]
        self.username, self.password = token(name)
        self.received = []  # (sender's name, number) of the media datagrams received

    def binding(self):
        """One admission or keepalive transaction, retransmitted (RFC 8489 §6.2.1's pace, cut
        short): its answer, or None after about 4 s."""
        txid = os.urandom(12)
        request = binding_request(self.username, self.password, txid)
        timeout = 0.25
        for _ in range(6):
            self.sock.sendto(request, SFU)
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([self.sock], [], [], left)[0]:
                    break
                data, _ = self.sock.recvfrom(2048)
                answer = answer_of(data, txid)
                if answer is not None:
                    return answer
                self.take(data)
            timeout = min(timeout * 2, 1.0)
        return None

    def send_media(self, first, count, marker=False):
        for n in range(first, first + count):
            payload = struct.pack("!B8sIB", 0x81, self.name.encode().ljust(8), n, marker)
            self.sock.sendto(payload + b"\x55" * 40, SFU)

    def take(self, data):
        if len(data) >= 14 and data[0] == 0x81:
            _, sender, n, marker = struct.unpack("!B8sIB", data[:14])
            self.received.append((sender.rstrip(b"\0 ").decode(), n, bool(marker)))

    def receive_until(self, done, seconds=5.0):
        """Reads media until done(received) or `seconds`; whether done."""
        deadline = time.monotonic() + seconds
        while not done(self.received) and (left := deadline - time.monotonic()) > 0:
            if select.select([self.sock], [], [], left)[0]:
                self.take(self.sock.recvfrom(2048)[0])
        return done(self.received)

    def numbers_from(self, sender):
        return sorted(n for s, n, marker in self.received if s == sender and not marker)

    def markers_from(self, sender):
        return sum(1 for s, _, marker in self.received if s == sender and marker)


def has(sender, numbers):
    def done(received):
        got = {n for s, n, marker in received if s == sender and not marker}
        return set(numbers) <= got
    return done


def has_marker(sender):
    return lambda received: any(s == sender and marker for s, _, marker in received)


def punchctl(*args, want=0):
    run = subprocess.run([PUNCHCTL, "--socket", SOCKET, *args], capture_output=True, text=True,
                         timeout=20)
    print(f"$ punchctl {' '.join(args)} (exit {run.returncode})")
    for line in (run.stdout + run.stderr).splitlines():
        print(f"  | {line}")
    check(f"punchctl {' '.join(args)}: exit {want}", run.returncode == want, run.returncode)
    return run


def quiet_punchctl(*args):
    return subprocess.run([PUNCHCTL, "--socket", SOCKET, *args], capture_output=True,
                          timeout=20).returncode


def legs():
    """The listing's legs of the session by participant."""
    reply = json.loads(punchctl("--json", "sfu").stdout)
    out = {}
    for session in reply["sessions"]:
        if session["session"] == SESSION_TEXT:
            for leg in session["legs"]:
                out[leg["participant"]] = leg
    return out


def wait_for_legs(what, condition):
    for _ in range(50):
        current = legs()
        if condition(current):
            check(what, True)
            return current
        time.sleep(0.1)  # polling the listing, not standing in for the event
    check(what, False, sorted(current))
    return current


def main():
    alice, bob, carol = Participant("alice"), Participant("bob"), Participant("carol")

    print("== admission: three legs")
    for p in (alice, bob, carol):
        check(f"{p.name} admitted (the ACK)", p.binding() == ("success", None, ""))
    current = wait_for_legs("three members in the published membership",
                            lambda l: len(l) == 3 and all(x["member"] for x in l.values()))
    check("each leg's client is its socket",
          all(current[p.name]["client"] == f"203.0.113.10:{p.port}" for p in (alice, bob, carol)
              if p.name in current), current)

    print("== media: each to the two others")
    alice.send_media(0, 20)
    bob.send_media(100, 10)
    check("bob got alice's 20", bob.receive_until(has("alice", range(20))))
    check("carol got alice's 20", carol.receive_until(has("alice", range(20))))
    check("alice got bob's 10", alice.receive_until(has("bob", range(100, 110))))
    check("carol got bob's 10", carol.receive_until(has("bob", range(100, 110))))
    check("nobody got their own", not alice.numbers_from("alice") and not bob.numbers_from("bob"))
    current = legs()
    a, b = current.get("alice", {}), current.get("bob", {})
    # In: the media and the Binding requests (one, or a retransmission more).
    check("alice's leg: 20 media and its Binding in, 40 copies out",
          a.get("rx_packets", 0) >= 21 and a.get("forwarded_packets") == 40, a)
    check("bob's leg: 10 media and its Binding in, 20 copies out",
          b.get("rx_packets", 0) >= 11 and b.get("forwarded_packets") == 20, b)
    check("each leg has an age and an idle time",
          all(x["age_s"] >= x["idle_s"] >= 0 for x in current.values()), current)
    reply = json.loads(punchctl("--json", "sfu", "sessions").stdout)
    summary = next((s["summary"] for s in reply["sessions"] if s["session"] == SESSION_TEXT), {})
    check("the session's summary sums its legs",
          summary.get("legs") == 3 and summary.get("forwarded_packets") == 60 and
          summary.get("rx_packets") == sum(x["rx_packets"] for x in current.values()) and
          summary.get("forwarded_bytes") == sum(x["forwarded_bytes"] for x in current.values()),
          summary)
    run = punchctl("sfu", "sessions")
    check("sfu sessions: one line for the session, 3 legs, 60 copies out",
          re.search(rf"^{SESSION_TEXT} +3 +alice,bob,carol +\S+ +\d+ pkts \S+ +60 pkts ",
                    run.stdout, re.M), run.stdout)
    run = punchctl("sfu")
    check("sfu: a line per leg with its age", len(re.findall(rf"^{SESSION_TEXT} ", run.stdout,
                                                             re.M)) == 3, run.stdout)

    print("== pause: alice's media no longer reaches carol")
    punchctl("sfu", "pause", "--session", SESSION_TEXT, "--subscriber", "carol", "--publisher",
             "alice")
    alice.send_media(20, 10)
    bob.send_media(110, 1, marker=True)  # after alice's: carol's proof that they are not coming
    check("bob got alice's 10", bob.receive_until(has("alice", range(20, 30))))
    check("carol got bob's marker", carol.receive_until(has_marker("bob")))
    check("carol got none of alice's 10", not set(range(20, 30)) & set(carol.numbers_from("alice")),
          carol.numbers_from("alice"))
    check("alice's leg counts 10 filtered", legs().get("alice", {}).get("filtered") == 10)

    print("== resume: carol gets alice's media again")
    punchctl("sfu", "resume", "--session", SESSION_TEXT, "--subscriber", "carol", "--publisher",
             "alice")
    alice.send_media(30, 10)
    check("carol got alice's 10 again", carol.receive_until(has("alice", range(30, 40))))
    check("still 10 filtered", legs().get("alice", {}).get("filtered") == 10)

    print("== kill: carol's leg removed, media to it stops")
    punchctl("sfu", "kill", "--session", SESSION_TEXT, "--participant", "carol")
    wait_for_legs("carol's leg gone, alice's and bob's kept",
                  lambda l: sorted(l) == ["alice", "bob"])
    # Gone from the table is not yet gone from the published membership, which follows the
    # worker's leave message: the control thread publishes it before it answers another
    # command, so once a command no longer finds carol as a member, no worker forwards to her.
    for _ in range(50):
        if quiet_punchctl("sfu", "resume", "--session", SESSION_TEXT, "--subscriber", "carol",
                          "--publisher", "alice") == 1:
            break
        time.sleep(0.1)  # polling the model, not standing in for the event
    check("carol is no member any more (not_found)",
          quiet_punchctl("sfu", "resume", "--session", SESSION_TEXT, "--subscriber", "carol",
                         "--publisher", "alice") == 1)
    before = len(carol.received)
    alice.send_media(40, 10)
    check("bob got alice's 10", bob.receive_until(has("alice", range(40, 50))))
    # The copies to carol would have gone in the same burst as bob's: none came.
    carol.receive_until(lambda r: len(r) > before, seconds=0.5)
    check("carol got nothing since", len(carol.received) == before, carol.received[before:])
    carol.send_media(200, 3)  # no leg any more: dropped (sfu_not_a_leg)
    alice.send_media(50, 1, marker=True)
    check("bob got alice's marker", bob.receive_until(has_marker("alice")))
    check("bob got none of carol's", not bob.numbers_from("carol") or
          max(bob.numbers_from("carol")) < 200, bob.numbers_from("carol"))

    print("== drain: new legs refused with 508, the others carry on")
    run = punchctl("drain")
    check("drain names the SFU's answer", "new SFU legs get 508" in run.stdout, run.stdout)
    check("drain counts the legs left", re.search(r"^2 SFU leg\(s\) left \(lcore1 2\)$",
                                                   run.stdout, re.M), run.stdout)
    dave = Participant("dave")
    answer = dave.binding()
    check("dave (a new leg) gets 508", answer is not None and answer[:2] == ("error", 508), answer)
    check("its reason says the node drains", answer is not None and
          "SFU node draining".startswith(answer[2]) and answer[2] != "", answer)
    answer = carol.binding()
    check("carol (killed) is refused too", answer is not None and answer[:2] == ("error", 508),
          answer)
    check("alice's keepalive is answered", alice.binding() == ("success", None, ""))
    alice.send_media(60, 5)
    bob.send_media(120, 5)
    check("bob still gets alice's", bob.receive_until(has("alice", range(60, 65))))
    check("alice still gets bob's", alice.receive_until(has("bob", range(120, 125))))
    run = punchctl("status")
    check("status says the SFU drains", re.search(r"^sfu: DRAINING, 2 leg\(s\) left",
                                                  run.stdout, re.M), run.stdout)
    status = json.loads(punchctl("--json", "status").stdout)
    check("status --json: sfu role and drain",
          "sfu" in status["roles"] and status["sfu"]["drain"]["draining"] and
          status["sfu"]["drain"]["legs"] == 2, status.get("sfu"))
    check("still two legs", sorted(legs()) == ["alice", "bob"])

    print("== undrain: admitted again")
    run = punchctl("undrain")
    check("undrain says so", "not draining any more: new SFU legs are accepted" in run.stdout,
          run.stdout)
    check("dave admitted", dave.binding() == ("success", None, ""))
    wait_for_legs("three members again", lambda l: sorted(l) == ["alice", "bob", "dave"] and
                  all(x["member"] for x in l.values()))
    alice.send_media(70, 5)
    check("dave gets alice's media", dave.receive_until(has("alice", range(70, 75))))
    print(f"{failures} failure(s)")
    return failures


if __name__ == "__main__":
    sys.exit(min(main(), 255))
