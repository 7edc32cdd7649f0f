#!/usr/bin/python3
"""tests/engine/interop/relay_flood.py — a bounded flood of TURN Allocate requests from many
source addresses, spoken with aioice's STUN codec (python3-aioice), for relay_flood_test.sh.

Usage: relay_flood.py SERVER PORT REALM FIRST_SOURCE SOURCES QUOTA_USER QUOTA_PASSWORD
                      QUOTA_ATTEMPTS REST_SECRET REST_USERS REST_ATTEMPTS_PER_USER
                      UNAUTHENTICATED_PER_SOURCE RATE DEADLINE_S

The SOURCES source addresses are FIRST_SOURCE and the ones after it; the caller has put them
on an interface. Three stages, one after the other, so that each refusal is the one the
configuration predicts (an Allocate is refused 486 or 508 by what was allocated before it):
  1. quota: QUOTA_ATTEMPTS Allocates with QUOTA_USER's valid credentials, each from its own
     5-tuple (a socket on the next source address): the first max_allocations_per_user get
     allocations, the rest 486;
  2. table: REST_USERS TURN REST users ("expiry:flood-N", password the HMAC of REST_SECRET,
     as a service handing out credentials would), REST_ATTEMPTS_PER_USER Allocates each (no
     more than the per-user quota): allocations until the table is full, then 508;
  3. unauthenticated: UNAUTHENTICATED_PER_SOURCE Allocates without credentials from each
     source, half from each of two ports (the limit is per source IP, whatever the port),
     sent round-robin: each source's first few are answered 401, then its token bucket is empty
     and the rest are dropped unanswered (rate_limited).
An authenticated Allocate first needs a nonce, which the server binds to the 5-tuple: each
socket of stages 1 and 2 gets its 401 first (one token of its source's bucket), then sends the
Allocate signed with it.

Every request is sent once (no retransmission: an answer lost would show as a difference
from the server's counters, which the test compares). Sending is paced at RATE requests per
second in all; the whole flood stops at DEADLINE_S seconds whatever is left, and every socket
is closed on every path.

Prints one "flood: ..." line per stage and a "flood: total ..." line, key=value, for the test
to compare with the engine's counters. Exit 0 once the flood ran (the test judges it); 1 when
it could not (a source address missing, the deadline passed before the stages ended).
"""
import base64
import hashlib
import hmac
import ipaddress
import selectors
import socket
import sys
import time
from collections import Counter

from aioice import stun

SETTLE_S = 0.3  # after a stage's last request: time for its answers to come back


class Flood:
    def __init__(self, server, realm, rate, deadline_s):
        self.server = server
        self.realm = realm
        self.interval = 1.0 / rate
        self.start = time.monotonic()
        self.deadline = self.start + deadline_s
        self.selector = selectors.DefaultSelector()
        self.sockets = []
        self.opened = 0
        self.closed = 0
        self.sent = 0
        self.next_send = self.start
        # transaction id -> (stage, socket index); answers by (stage, outcome).
        self.pending = {}
        self.answers = Counter()  # (stage, "sent" or outcome) -> count
        self.stray = Counter()  # "unparsable", "unexpected" (no request of ours)
        self.last_answer = {}  # transaction id -> parsed answer, for stages 1 and 2

    def open(self, source):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.opened += 1
        self.sockets.append(sock)
        sock.setblocking(False)
        sock.bind((source, 0))
        self.selector.register(sock, selectors.EVENT_READ)
        return sock

    def close_all(self):
        for sock in self.sockets:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
            self.closed += 1
        self.sockets = []
        self.selector.close()

    def time_left(self):
        return self.deadline - time.monotonic()

    def receive(self, timeout):
        """Reads every answer waiting (or arriving within `timeout`), counting each."""
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    continue
                try:
                    message = stun.parse_message(data)
                except ValueError:
                    self.stray["unparsable"] += 1
                    continue
                stage = self.pending.pop(message.transaction_id, None)
                if stage is None:
                    self.stray["unexpected"] += 1
                    continue
                self.answers[(stage, outcome(message))] += 1
                self.last_answer[message.transaction_id] = message

    def send(self, sock, message, stage, key=None):
        """Sends at the paced rate, reading answers while it waits for its turn."""
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                raise TimeoutError("the deadline passed during the flood")
            if now >= self.next_send:
                break
            self.receive(self.next_send - now)
        if key is not None:
            message.add_message_integrity(key)
        sock.sendto(bytes(message), self.server)
        self.sent += 1
        self.answers[(stage, "sent")] += 1
        self.pending[message.transaction_id] = stage
        # No catching up after a stall: a burst would exceed the rate asked for.
        self.next_send = max(self.next_send + self.interval, now - self.interval)

    def settle(self, transaction_ids=None):
        """Reads answers until the given requests (default: all) are answered or SETTLE_S
        passes without an answer."""
        quiet_until = time.monotonic() + SETTLE_S
        while time.monotonic() < min(quiet_until, self.deadline):
            waiting = self.pending if transaction_ids is None else \
                [t for t in transaction_ids if t in self.pending]
            if not waiting:
                return
            before = sum(self.answers.values())
            self.receive(0.05)
            if sum(self.answers.values()) != before:
                quiet_until = time.monotonic() + SETTLE_S

    def allocate_signed(self, stage, sources, credentials):
        """One 5-tuple per (username, password): a 401 for its nonce, then the Allocate
        signed with it. Returns nothing; the answers are counted under `stage`."""
        sockets = []
        firsts = []
        for index, (username, password) in enumerate(credentials):
            sock = self.open(sources[index % len(sources)])
            request = allocate_request()
            self.send(sock, request, stage + "-nonce")
            sockets.append((sock, username, password, request.transaction_id))
            firsts.append(request.transaction_id)
        self.settle(firsts)
        seconds = []
        for sock, username, password, first in sockets:
            answer = self.last_answer.get(first)
            if answer is None or "NONCE" not in answer.attributes:
                continue  # counted as unanswered under stage-nonce
            request = allocate_request()
            request.attributes["USERNAME"] = username
            request.attributes["REALM"] = self.realm
            request.attributes["NONCE"] = answer.attributes["NONCE"]
            key = hashlib.md5(f"{username}:{self.realm}:{password}".encode()).digest()
            self.send(sock, request, stage, key)
            seconds.append(request.transaction_id)
        self.settle(seconds)

    def unauthenticated(self, stage, sources, per_source):
        """per_source unsigned Allocates from each source, over two ports, round-robin."""
        pairs = [(self.open(source), self.open(source)) for source in sources]
        for n in range(per_source):
            for pair in pairs:
                self.send(pair[n % 2], allocate_request(), stage)
        self.settle()


def allocate_request():
    message = stun.Message(message_method=stun.Method.ALLOCATE,
                           message_class=stun.Class.REQUEST)
    message.attributes["REQUESTED-TRANSPORT"] = 17 << 24
    return message


def outcome(message):
    """"allocated", an error code as text ("401"), or the class."""
    if message.message_class == stun.Class.RESPONSE:
        return "allocated" if "XOR-RELAYED-ADDRESS" in message.attributes else "response"
    if message.message_class == stun.Class.ERROR:
        return str(message.attributes.get("ERROR-CODE", (0, ""))[0])
    return message.message_class.name.lower()


def rest_password(secret, username):
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def stage_line(answers, stage):
    """"flood: STAGE sent=N answered=A unanswered=U 401=... allocated=..." """
    sent = answers[(stage, "sent")]
    outcomes = {o: c for (s, o), c in answers.items() if s == stage and o != "sent"}
    answered = sum(outcomes.values())
    parts = [f"sent={sent}", f"answered={answered}", f"unanswered={sent - answered}"]
    parts += [f"{o}={c}" for o, c in sorted(outcomes.items())]
    return f"flood: {stage} " + " ".join(parts)


def main():
    (server, port, realm, first_source, sources, quota_user, quota_password, quota_attempts,
     rest_secret, rest_users, rest_attempts, per_source, rate, deadline_s) = sys.argv[1:15]
    first = ipaddress.IPv4Address(first_source)
    sources = [str(first + i) for i in range(int(sources))]
    flood = Flood((server, int(port)), realm, float(rate), float(deadline_s))
    expiry = int(time.time()) + 3600
    rest = []
    for user in range(int(rest_users)):
        name = f"{expiry}:flood-{user}"
        rest += [(name, rest_password(rest_secret, name))] * int(rest_attempts)
    status = 0
    try:
        # Stages 1 and 2 take their sockets from the sources in turn, stage 2 going on where
        # stage 1 stopped, so that no source spends more than a token or two on nonces.
        quota = [(quota_user, quota_password)] * int(quota_attempts)
        flood.allocate_signed("quota", sources, quota)
        flood.allocate_signed("table", sources[len(quota) % len(sources):] +
                              sources[:len(quota) % len(sources)], rest)
        flood.unauthenticated("unauthenticated", sources, int(per_source))
    except TimeoutError as error:  # before OSError, of which it is a subclass
        print(f"flood: {error}")
        status = 1
    except OSError as error:
        print(f"flood: could not send: {error}")
        status = 1
    finally:
        flood.close_all()
    elapsed = time.monotonic() - flood.start
    stages = ["quota-nonce", "quota", "table-nonce", "table", "unauthenticated"]
    for stage in stages:
        print(stage_line(flood.answers, stage))
    by_outcome = Counter()
    for (stage, result), count in flood.answers.items():
        if result != "sent":
            by_outcome[result] += count
    print(f"flood: total sources={len(sources)} sockets_opened={flood.opened} "
          f"sockets_closed={flood.closed} sent={flood.sent} "
          + " ".join(f"{o}={c}" for o, c in sorted(by_outcome.items()))
          + f" unexpected={flood.stray['unexpected']}"
          f" unparsable={flood.stray['unparsable']}"
          f" seconds={elapsed:.2f} rate={flood.sent / elapsed:.0f}/s")
    return status


if __name__ == "__main__":
    sys.exit(main())
