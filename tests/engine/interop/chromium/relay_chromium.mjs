// tests/engine/interop/chromium/relay_chromium.mjs — headless Chromium's WebRTC through a TURN
// relay, driven by playwright-core (relay_chromium_test.sh runs it inside the lab's client
// namespace).
//
//   node relay_chromium.mjs --turn URL --username NAME --credential PASSWORD
//                           --user-data-dir DIR [--chromium PATH] [--timeout-ms N]
//                           [--hold-file PATH]
//
// One page (about:blank) holds two RTCPeerConnections, "a" and "b", both with
// iceTransportPolicy 'relay' and the one TURN server: neither may use a host or server-reflexive
// candidate, so every packet between them goes through two allocations of that server. The
// page trades offer, answer and candidates between them itself (no signalling server), opens
// a data channel, sends messages both ways, and reads getStats() of each side. It prints what
// it found, one fact a line, for the shell script to judge, then prints "result: ok" or
// "result: FAIL <why>". With --hold-file, it then prints "holding: ..." and keeps both peer
// connections, and so their allocations, open until PATH exists (at most 10 s): time for the
// test to read the server's own account of them.
//
// Exit status: 0 ok; 1 the exchange failed (candidate errors, ICE or channel timeout, a pair
// that is not relay-to-relay); 2 a usage or browser error; 77 playwright-core is not
// installed (scripts/setup runs `npm ci` in this folder).
//
// Bounded: every wait in the page has a deadline (timeout-ms, 30 s unless told), the whole run
// has a watchdog a little longer than that, and the browser is closed on every exit path (the
// lab kills whatever is left in its namespace afterwards).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: options } = parseArgs({
  options: {
    turn: { type: 'string' },
    username: { type: 'string' },
    credential: { type: 'string' },
    'user-data-dir': { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    'timeout-ms': { type: 'string', default: '30000' },
    'hold-file': { type: 'string' },
  },
});
for (const required of ['turn', 'username', 'credential', 'user-data-dir']) {
  if (!options[required]) {
    console.error(`usage: relay_chromium.mjs --turn URL --username NAME --credential PASSWORD ` +
      `--user-data-dir DIR [--chromium PATH] [--timeout-ms N] [--hold-file PATH] ` +
      `(--${required} missing)`);
    process.exit(2);
  }
}
const timeoutMs = Number(options['timeout-ms']);
const holdMs = 10000;

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (error) {
  console.log('SKIP: playwright-core is not installed here (scripts/setup: npm ci): ' +
    error.message);
  process.exit(77);
}

// Whatever hangs (the browser's start, a protocol call), the run ends: the page's own deadlines
// come first, this one only if they did not.
const watchdog = setTimeout(() => {
  console.log(`result: FAIL watchdog: the run took longer than ${timeoutMs + holdMs + 15000} ms`);
  process.exit(1);
}, timeoutMs + holdMs + 15000);

// environment.md: Debian's chromium, these flags, a fresh profile, never a downloaded browser.
// playwright-core adds --headless itself (headless: true); --user-data-dir is the
// persistent context's own argument.
let context;
try {
  context = await chromium.launchPersistentContext(options['user-data-dir'], {
    executablePath: options.chromium,
    headless: true,
    timeout: timeoutMs,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
} catch (error) {
  console.log(`result: FAIL the browser did not start: ${error.message}`);
  process.exit(2);
}

let status = 2;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  console.log(`browser: ${context.browser()?.version() ?? 'chromium'} ` +
    `(${await page.evaluate(() => navigator.userAgent)})`);
  const found = await page.evaluate(relayExchange, {
    iceServers: [
      { urls: options.turn, username: options.username, credential: options.credential },
    ],
    timeoutMs,
  });
  for (const line of found.lines) console.log(line);
  if (found.failure) {
    console.log(`result: FAIL ${found.failure}`);
    status = 1;
  } else {
    console.log('result: ok');
    status = 0;
  }
  if (options['hold-file']) {
    console.log(`holding: both peer connections open until ${options['hold-file']} exists ` +
      `(at most ${holdMs} ms)`);
    const until = Date.now() + holdMs;
    while (!existsSync(options['hold-file']) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await page.evaluate(() => {
    for (const pc of window.relayPeers ?? []) pc.close();
  });
} catch (error) {
  console.log(`result: FAIL ${error.message.split('\n')[0]}`);
  status = 2;
} finally {
  clearTimeout(watchdog);
  await context.close().catch(() => {});
}
process.exit(status);

// Runs in the page. Returns { lines: [...], failure: string | null }; never throws, so that what
// was seen before a failure (candidates, candidate errors, states) is printed with it. Leaves
// the two peer connections open, in window.relayPeers.
async function relayExchange({ iceServers, timeoutMs }) {
  const lines = [];
  const started = performance.now();
  const at = () => `${Math.round(performance.now() - started)} ms`;
  const note = (line) => lines.push(line);

  const config = { iceServers, iceTransportPolicy: 'relay' };
  const peers = { a: new RTCPeerConnection(config), b: new RTCPeerConnection(config) };
  const other = { a: 'b', b: 'a' };
  // A candidate may be gathered before the other side has its remote description; it waits.
  const pending = { a: [], b: [] };
  const remoteSet = { a: false, b: false };

  for (const name of ['a', 'b']) {
    const pc = peers[name];
    pc.onicecandidate = ({ candidate }) => {
      if (!candidate || !candidate.candidate) {
        note(`${name}: gathering done at ${at()}`);
        return;
      }
      note(`${name}: candidate ${candidate.candidate}`);
      const to = other[name];
      if (remoteSet[to]) {
        peers[to].addIceCandidate(candidate).catch((error) =>
          note(`${to}: addIceCandidate failed: ${error.message}`));
      } else {
        pending[to].push(candidate);
      }
    };
    pc.onicecandidateerror = (event) => note(`${name}: icecandidateerror ${event.errorCode} ` +
      `"${event.errorText}" url ${event.url} from ${event.address}:${event.port}`);
    pc.oniceconnectionstatechange = () => note(`${name}: ice ${pc.iceConnectionState} at ${at()}`);
    pc.onconnectionstatechange = () => note(`${name}: connection ${pc.connectionState} at ${at()}`);
  }
  const setRemote = async (name, description) => {
    await peers[name].setRemoteDescription(description);
    remoteSet[name] = true;
    for (const candidate of pending[name].splice(0)) {
      await peers[name].addIceCandidate(candidate).catch((error) =>
        note(`${name}: addIceCandidate failed: ${error.message}`));
    }
  };

  // Ends every wait: the deadline, or either side's connection failing (ICE gave up on every
  // pair: no reason to wait out the deadline).
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    for (const name of ['a', 'b']) {
      peers[name].addEventListener('connectionstatechange', () => {
        if (peers[name].connectionState === 'failed') {
          reject(new Error(`${name}'s connection failed at ${at()}`));
        }
      });
    }
  });
  deadline.catch(() => {});
  const within = (promise) => Promise.race([promise, deadline]);
  const opened = (channel) => channel.readyState === 'open' ? Promise.resolve() :
    new Promise((resolve) => channel.addEventListener('open', () => resolve(), { once: true }));

  // Both ways, a short one and one of 1000 bytes (a ChannelData message near 1.1 kB on the wire).
  const messages = {
    a: ['hello from a', 'a'.repeat(1000), 'bye from a'],
    b: ['hello from b', 'b'.repeat(1000), 'bye from b'],
  };
  const describe = (text) =>
    text.length > 40 ? `${text.length} bytes of "${text[0]}"` : `"${text}"`;

  let failure = null;
  try {
    const channels = { a: peers.a.createDataChannel('punchline') };
    const channelB = new Promise((resolve) => {
      peers.b.ondatachannel = ({ channel }) => resolve(channel);
    });
    const offer = await peers.a.createOffer();
    await peers.a.setLocalDescription(offer);
    await setRemote('b', offer);
    const answer = await peers.b.createAnswer();
    await peers.b.setLocalDescription(answer);
    await setRemote('a', answer);

    channels.b = await within(channelB);
    await within(Promise.all([opened(channels.a), opened(channels.b)]));
    note(`data channel "${channels.a.label}" open on both sides at ${at()}`);

    const received = { a: [], b: [] };
    const arrived = {};
    for (const name of ['a', 'b']) {
      arrived[name] = new Promise((resolve) => {
        channels[name].onmessage = ({ data }) => {
          received[name].push(data);
          note(`${name}: received ${describe(data)} at ${at()}`);
          if (received[name].length === messages[other[name]].length) resolve();
        };
      });
    }
    for (const name of ['a', 'b']) {
      for (const text of messages[name]) channels[name].send(text);
    }
    await within(Promise.all([arrived.a, arrived.b]));
    for (const name of ['a', 'b']) {
      const sent = messages[other[name]];
      const same = received[name].length === sent.length &&
        received[name].every((text, i) => text === sent[i]);
      note(`${name}: ${received[name].length} of ${sent.length} messages from ` +
        `${other[name]} ${same ? 'arrived intact, in order' : 'DIFFER from what was sent'}`);
      if (!same) failure ??= `${name} received other messages than ${other[name]} sent`;
    }
  } catch (error) {
    failure = error.message;
  } finally {
    clearTimeout(timer);
  }

  // The pair each side's transport selected, and what its two candidates are: read whether the
  // exchange worked or not (a failed run shows which pairs were tried and how far they got).
  // libwebrtc marks a pair in-progress again with every consent check it sends on it
  // (Connection::Ping) until the answer arrives, so a nominated pair that works can read
  // in-progress for a moment: the stats are read again, every 100 ms for at most 5 s, until
  // both sides show their selected pair succeeded.
  const readSelected = async (name) => {
    const found = { lines: [], problem: null };
    let report;
    try {
      report = await peers[name].getStats();
    } catch (error) {
      found.lines.push(`${name}: getStats failed: ${error.message}`);
      found.problem = `getStats of ${name} failed`;
      return found;
    }
    const stats = new Map();
    report.forEach((entry) => stats.set(entry.id, entry));
    const candidate = (id) => {
      const c = stats.get(id);
      return c ? `${c.candidateType} ${c.address}:${c.port} ${c.protocol}` +
        (c.relayProtocol ? ` (relay over ${c.relayProtocol})` : '') : `unknown ${id}`;
    };
    const pairs = [...stats.values()].filter((entry) => entry.type === 'candidate-pair');
    for (const pair of pairs) {
      found.lines.push(`${name}: pair ${candidate(pair.localCandidateId)}` +
        ` -> ${candidate(pair.remoteCandidateId)}` +
        ` state ${pair.state} nominated ${pair.nominated} requests ${pair.requestsSent ?? 0}` +
        ` responses ${pair.responsesReceived ?? 0}`);
    }
    const transport = [...stats.values()].find((entry) => entry.type === 'transport');
    const selected = transport && stats.get(transport.selectedCandidatePairId);
    if (!selected) {
      found.lines.push(`${name}: no selected candidate pair`);
      found.problem = `${name} has no selected candidate pair`;
      return found;
    }
    const local = stats.get(selected.localCandidateId);
    const remote = stats.get(selected.remoteCandidateId);
    found.lines.push(`${name}: selected pair state ${selected.state}` +
      ` nominated ${selected.nominated} local ${local?.candidateType}` +
      ` remote ${remote?.candidateType} bytes sent ${selected.bytesSent}` +
      ` received ${selected.bytesReceived}`);
    if (selected.state !== 'succeeded' || !selected.nominated ||
        local?.candidateType !== 'relay' || remote?.candidateType !== 'relay') {
      found.problem = `${name}'s selected pair is not a nominated, succeeded relay-to-relay pair`;
    }
    return found;
  };
  const statsUntil = performance.now() + (failure ? 0 : 5000);
  let reads = 0;
  let sides;
  for (;;) {
    sides = [await readSelected('a'), await readSelected('b')];
    reads += 1;
    if (sides.every((side) => !side.problem) || performance.now() >= statsUntil) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  note(`getStats read ${reads} time(s)`);
  for (const side of sides) {
    for (const line of side.lines) note(line);
    failure ??= side.problem;
  }
  // Closed by the caller, which may first hold them open (--hold-file).
  window.relayPeers = [peers.a, peers.b];
  return { lines, failure };
}
