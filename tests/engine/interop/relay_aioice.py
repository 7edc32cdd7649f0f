#!/usr/bin/python3
"""Two aioice ICE agents, relay candidates only, connected through punchlined's TURN relay.

Run by relay_aioice_test.sh inside the client namespace of its lab:

    relay_aioice.py [-v] SERVER_IP USERNAME PASSWORD [REPORT_FILE]

(-v: aioice's own log, at INFO, on stdout: each check's state changes, each channel bound.)

Two aioice.Connection agents in this one process, one controlling and one controlled, each
with turn_server=(SERVER_IP, 3478) and long-term credentials, each gathering one candidate: the
relayed address of its own allocation. Each is given the other's relay candidate as its only
remote candidate, so the one pair either can check is relay -> relay: agent A's peer is agent
B's relayed address on the same server and the other way round (a "hairpin" through one TURN
server). Everything either agent sends goes to the server as ChannelData (aioice 0.8 binds a
channel per peer and sends no Send indications).

Checks, failing on the first that does not hold:
  (a) each agent gathers exactly one local candidate, of type relay, on SERVER_IP, with a
      related address (its TURN socket's), and the two relayed addresses differ;
  (b) ICE completes on both ends within CONNECT_WAIT s, and the nominated pair of each agent
      is its own relay candidate -> the other's relay candidate;
  (c) len(SIZES) datagrams from A to B and as many from B to A, of sizes from 1 to 1200 bytes
      (odd ones included: ChannelData padding), each arrive exactly once and intact.

With REPORT_FILE, once (c) has passed and before the agents close (aioice then deletes both
allocations, and with them the engine's per-allocation counters), the script creates
REPORT_FILE and waits up to REPORT_WAIT s for REPORT_FILE.done: time for the test script to
take the engine's SIGUSR1 report while both allocations still exist.

A TURN request of aioice's that the server refuses (Allocate, ChannelBind, Refresh) surfaces in
aioice 0.8 only as an exception in a background task; every such exception is printed, and one
during connect ends the test at once with the server's error code, rather than after the check
timeouts. Every network wait is bounded with asyncio.wait_for. Exit 0 on success, 1 on the
first failure.
"""

import asyncio
import hashlib
import logging
import os
import sys

import aioice
from aioice import stun

TURN_PORT = 3478
GATHER_WAIT = 5.0  # seconds: one Allocate, 401 then the signed one, on a ~0 ms veth
CONNECT_WAIT = 10.0  # seconds: ChannelBinds and checks both ways; a lost first check is
                     # retransmitted after 0.5 s, the next after 1.5 s
RECEIVE_WAIT = 2.0  # seconds for all of one direction's datagrams
REPORT_WAIT = 5.0  # seconds for the test script to take the engine's report
CLOSE_WAIT = 3.0  # seconds: aioice deletes each allocation (Refresh, LIFETIME 0)
SIZES = [1, 2, 3, 20, 64, 255, 256, 513, 999, 1200]


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def ok(message):
    print(f"ok: {message}", flush=True)


def describe(candidate):
    related = ""
    if candidate.related_address:
        related = f" (related {candidate.related_address}:{candidate.related_port})"
    return f"{candidate.type} {candidate.host}:{candidate.port}{related}"


class BackgroundErrors:
    """The loop's exception handler: aioice 0.8 sends through TURN from tasks nobody awaits
    (TurnTransport.sendto -> ensure_future(send_data)), so a refused ChannelBind is only ever
    reported here, as "Task exception was never retrieved". Each is printed once, and the
    first sets `failed` so that connect can give up at once."""

    def __init__(self):
        self.failed = asyncio.Event()
        self.errors = []

    def __call__(self, loop, context):
        exception = context.get("exception")
        if exception is not None and not isinstance(exception, Exception):
            return  # SystemExit from fail(), CancelledError: this script's own exits
        text = f"{type(exception).__name__}: {exception}" if exception else context["message"]
        response = getattr(exception, "response", None)
        if response is not None:
            # Which request: the exception's text gives only the error code.
            text = (f"{response.message_method.name} answered {response.message_class.name} "
                    f"{response.attributes.get('ERROR-CODE', '')}")
        self.errors.append(text)
        print(f"  aioice background task failed: {text}", flush=True)
        if isinstance(exception, stun.TransactionError):
            self.failed.set()


def make_agent(controlling, server, username, password):
    # transport_policy=RELAY keeps host candidates out of local_candidates, but aioice 0.8 still
    # binds a socket per host address and pairs it with every remote candidate, so checks
    # would also leave from the host address straight to the other's relayed address. With
    # neither IPv4 nor IPv6 host addresses it binds none: the TURN socket (connected to the
    # server, its source chosen by the kernel) is the agent's only socket.
    return aioice.Connection(
        ice_controlling=controlling,
        turn_server=(server, TURN_PORT),
        turn_username=username,
        turn_password=password,
        use_ipv4=False,
        use_ipv6=False,
        transport_policy=aioice.TransportPolicy.RELAY,
    )


async def gather(name, agent, server):
    try:
        await asyncio.wait_for(agent.gather_candidates(), GATHER_WAIT)
    except asyncio.TimeoutError:
        fail(f"{name}: no allocation within {GATHER_WAIT} s")
    except stun.TransactionError as error:
        fail(f"{name}: Allocate refused: {error}")
    candidates = agent.local_candidates
    for candidate in candidates:
        print(f"  {name} candidate {describe(candidate)}", flush=True)
    if len(candidates) != 1 or candidates[0].type != "relay":
        fail(f"{name}: expected one relay candidate, got {[describe(c) for c in candidates]}")
    relay = candidates[0]
    if relay.host != server:
        fail(f"{name}: relayed address {relay.host} is not the server's {server}")
    if not relay.related_address:
        fail(f"{name}: relay candidate without a related address")
    ok(f"{name} gathered relay {relay.host}:{relay.port} only")
    return relay


def nominated_pair(name, agent):
    # aioice 0.8 has no public accessor for the selected pair: Connection._nominated maps each
    # component to the pair its data goes through (what sendto uses).
    nominated = getattr(agent, "_nominated", None)
    if not isinstance(nominated, dict):
        fail(f"{name}: this aioice has no Connection._nominated to read the selected pair from")
    pair = nominated.get(1)
    if pair is None:
        fail(f"{name}: ICE completed without a nominated pair for component 1")
    return pair


async def connect(agents, background):
    connecting = asyncio.ensure_future(
        asyncio.gather(*(agent.connect() for _, agent in agents))
    )
    refused = asyncio.ensure_future(background.failed.wait())
    done, _ = await asyncio.wait({connecting, refused}, timeout=CONNECT_WAIT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if connecting not in done:
        connecting.cancel()
        refused.cancel()
        for name, agent in agents:
            for pair in getattr(agent, "_check_list", []):
                print(f"  {name} {pair} {pair.state.name}", flush=True)
        if refused in done:
            fail(f"ICE: a TURN request was refused: {background.errors[0]}")
        fail(f"ICE did not complete within {CONNECT_WAIT} s")
    refused.cancel()
    try:
        connecting.result()
    except ConnectionError as error:
        fail(f"ICE failed: {error}")
    ok("ICE completed on both agents")


async def exchange(sender_name, sender, receiver_name, receiver, tag):
    sent = {}
    for index, size in enumerate(SIZES):
        # Recognisable and different in every byte, so that a truncated, shifted or swapped
        # datagram cannot pass; the first byte is outside STUN's 0x00-0x3F, so aioice hands
        # the payload up as data rather than trying it as a STUN message.
        seed = hashlib.sha256(f"{tag} {index}".encode()).digest()
        payload = bytes([0x80 | index]) + (seed * (size // len(seed) + 1))[: size - 1]
        sent[index] = payload
        await sender.send(payload)
    received = {}
    try:
        while len(received) < len(sent):
            data = await asyncio.wait_for(receiver.recv(), RECEIVE_WAIT)
            if not data:
                fail(f"{receiver_name}: an empty datagram")
            index = data[0] & 0x7F
            if index in received:
                fail(f"{receiver_name}: datagram {index} arrived twice")
            if sent.get(index) != data:
                fail(f"{receiver_name}: datagram {index} arrived as {len(data)} bytes that "
                     f"differ from the {len(sent.get(index, b''))} sent")
            received[index] = data
    except asyncio.TimeoutError:
        missing = sorted(set(sent) - set(received))
        fail(f"{sender_name} -> {receiver_name}: datagrams {missing} did not arrive within "
             f"{RECEIVE_WAIT} s")
    ok(f"{sender_name} -> {receiver_name}: {len(sent)} datagrams of {min(SIZES)}-{max(SIZES)} "
       f"bytes ({sum(SIZES)} in all) arrived intact, once each")


async def let_the_engine_report(report_file):
    with open(report_file, "w") as marker:
        marker.write("both allocations live, datagrams exchanged\n")
    done = report_file + ".done"
    for _ in range(int(REPORT_WAIT / 0.05)):
        if os.path.exists(done):
            return
        await asyncio.sleep(0.05)
    fail(f"{done} did not appear within {REPORT_WAIT} s")


async def main():
    if len(sys.argv) not in (4, 5):
        fail("usage: relay_aioice.py SERVER_IP USERNAME PASSWORD [REPORT_FILE]")
    server, username, password = sys.argv[1:4]
    report_file = sys.argv[4] if len(sys.argv) == 5 else None
    print(f"aioice {aioice.__version__}", flush=True)
    background = BackgroundErrors()
    asyncio.get_running_loop().set_exception_handler(background)

    a = make_agent(True, server, username, password)
    b = make_agent(False, server, username, password)
    agents = [("A (controlling)", a), ("B (controlled)", b)]
    try:
        relay_a = await gather("A", a, server)
        relay_b = await gather("B", b, server)
        if (relay_a.host, relay_a.port) == (relay_b.host, relay_b.port):
            fail("both allocations got the same relayed address")

        # Signalling, in process: each learns the other's credentials and relay candidate only.
        for agent, other, relay in ((a, b, relay_b), (b, a, relay_a)):
            agent.remote_username = other.local_username
            agent.remote_password = other.local_password
            await agent.add_remote_candidate(relay)
            await agent.add_remote_candidate(None)

        await connect(agents, background)
        for (name, agent), own, other in ((agents[0], relay_a, relay_b),
                                          (agents[1], relay_b, relay_a)):
            pair = nominated_pair(name, agent)
            local, remote = pair.local_candidate, pair.remote_candidate
            print(f"  {name} nominated {describe(local)} -> {describe(remote)}", flush=True)
            if local.type != "relay" or (local.host, local.port) != (own.host, own.port):
                fail(f"{name}: the nominated pair's local candidate is not its relay candidate")
            if remote.type != "relay" or (remote.host, remote.port) != (other.host, other.port):
                fail(f"{name}: the nominated pair's remote candidate is not the other's relay "
                     "candidate")
        ok("both nominated pairs are relay -> relay")

        await exchange("A", a, "B", b, "a to b")
        await exchange("B", b, "A", a, "b to a")
        if report_file:
            await let_the_engine_report(report_file)
    finally:
        for name, agent in agents:
            try:
                await asyncio.wait_for(agent.close(), CLOSE_WAIT)
            except asyncio.TimeoutError:
                print(f"  {name}: close (deleting the allocation) took over {CLOSE_WAIT} s",
                      flush=True)
    # A refused Refresh (the deletion) shows up only here.
    if background.errors:
        fail(f"{len(background.errors)} aioice background task(s) failed")
    print("PASS", flush=True)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO if "-v" in sys.argv[1:] else logging.WARNING,
        format="  %(name)s: %(message)s",
        stream=sys.stdout,
    )
    sys.argv = [arg for arg in sys.argv if arg != "-v"]
    # The waits above add up to 35 s at most; relay_aioice_test.sh allows 40.
    asyncio.run(asyncio.wait_for(main(), 38))
