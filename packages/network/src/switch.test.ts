import { expect } from 'chai';
import { NetworkError } from './errors.js';
import { L2Switch, type L2SwitchOptions } from './switch.js';
import { BROADCAST, ethFrame, eventually, RecordingPort } from './test-helpers.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';
const UNKNOWN = '02:00:00:00:00:99';
const MULTICAST = '01:00:5e:00:00:fb';

/** A switch with ports p1..pn attached, and a clock the test moves. */
function setup(n: number, options: L2SwitchOptions & { mtu?: number } = {}) {
  const clock = { ms: 0 };
  const sw = new L2Switch('test', { now: () => clock.ms, ...options });
  const ports = Array.from({ length: n }, (_, i) => {
    const port = new RecordingPort(`p${i + 1}`);
    port.attachment = sw.attach(port, { mtu: options.mtu });
    return port;
  });
  return { sw, clock, ports };
}

function counts(ports: RecordingPort[]): number[] {
  return ports.map((p) => p.take().length);
}

describe('L2Switch', () => {
  it('floods broadcast, multicast and unknown unicast to every port but the ingress one', () => {
    const { ports } = setup(4);
    const [p1, p2, p3, p4] = ports;
    for (const dst of [BROADCAST, MULTICAST, UNKNOWN]) {
      const frame = ethFrame(dst, A);
      p1.send(frame);
      expect(counts(ports), dst).to.deep.equal([0, 1, 1, 1]);
      expect(p2.frames).to.deep.equal([]);
    }
    p3.send(ethFrame(BROADCAST, C));
    expect(p1.take()).to.have.length(1);
    expect(p2.take()).to.have.length(1);
    expect(p3.take()).to.have.length(0);
    expect(p4.take()).to.have.length(1);
  });

  it('learns source MACs and sends unicast only to the learned port', () => {
    const { sw, ports } = setup(3);
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, A)); // learns A on p1
    p2.send(ethFrame(A, B)); // A is known: only p1; learns B on p2
    counts(ports);
    expect(sw.lookup(A)).to.equal('p1');
    expect(sw.lookup(B)).to.equal('p2');
    expect(sw.lookup(C)).to.equal(undefined);

    const toB = ethFrame(B, A, { payloadLength: 100 });
    p1.send(toB);
    expect(p2.frames).to.deep.equal([toB]);
    expect(p2.frames[0]).to.equal(toB); // the same Buffer: no copy
    expect(counts(ports)).to.deep.equal([0, 1, 0]);
    p3.send(ethFrame(A, C));
    expect(counts(ports)).to.deep.equal([1, 0, 0]);
    expect(sw.macTable().map((e) => [e.mac, e.port])).to.deep.equal([
      [A, 'p1'],
      [B, 'p2'],
      [C, 'p3'],
    ]);
    expect(sw.stats().counters).to.include({ learned: 3, moved: 0, unknownUnicast: 0, flooded: 1 });
  });

  it('never sends a frame back out of its ingress port: a destination behind it is dropped as noDestination', () => {
    const { ports } = setup(2);
    const [p1] = ports;
    p1.send(ethFrame(BROADCAST, A));
    p1.send(ethFrame(BROADCAST, B)); // A and B both behind p1 (e.g. a bridge in the guest)
    counts(ports);
    p1.send(ethFrame(B, A));
    expect(counts(ports)).to.deep.equal([0, 0]);
    expect(p1.attachment!.stats.drops.noDestination).to.equal(1);
    expect(p1.attachment!.stats.rxFrames).to.equal(3);
  });

  it('counts a flood with no other port as noDestination', () => {
    const { ports } = setup(1);
    ports[0].send(ethFrame(BROADCAST, A));
    expect(ports[0].frames).to.have.length(0);
    expect(ports[0].attachment!.stats.drops.noDestination).to.equal(1);
  });

  it('moves a MAC that shows up on another port', () => {
    const { sw, ports } = setup(3);
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, A));
    p3.send(ethFrame(A, C));
    expect(counts(ports)).to.deep.equal([1, 1, 1]);
    p2.send(ethFrame(BROADCAST, A)); // A migrated to p2
    counts(ports);
    expect(sw.lookup(A)).to.equal('p2');
    p3.send(ethFrame(A, C));
    expect(counts(ports)).to.deep.equal([0, 1, 0]);
    expect(sw.stats().counters.moved).to.equal(1);
  });

  it('ages MACs out after agingMs without traffic from them; traffic refreshes them', () => {
    const { sw, clock, ports } = setup(3, { agingMs: 300_000 });
    const [p1, p2] = ports;
    p1.send(ethFrame(BROADCAST, A));
    counts(ports);
    clock.ms = 200_000;
    p2.send(ethFrame(A, B));
    expect(counts(ports)).to.deep.equal([1, 0, 0]);
    p1.send(ethFrame(UNKNOWN, A)); // refreshes A at 200 s
    counts(ports);
    clock.ms = 499_999;
    expect(sw.lookup(A)).to.equal('p1');
    expect(sw.macTable().find((e) => e.mac === A)?.ageSeconds).to.equal(299);
    clock.ms = 500_000;
    p2.send(ethFrame(A, B)); // A expired: flooded as unknown unicast
    expect(counts(ports)).to.deep.equal([1, 0, 1]);
    expect(sw.lookup(A)).to.equal(undefined);
    const { counters } = sw.stats();
    expect(counters.aged).to.be.greaterThanOrEqual(1);
    expect(counters.unknownUnicast).to.equal(2);
    // B was learned at 200 s and refreshed at 500 s; it is still there, A is not.
    expect(sw.macTable().map((e) => e.mac)).to.deep.equal([B]);
  });

  it('forgets the MACs of a detached port and stops delivering to it', () => {
    const { sw, ports } = setup(3);
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, A));
    counts(ports);
    p1.attachment!.detach();
    p1.attachment!.detach(); // idempotent
    expect(sw.lookup(A)).to.equal(undefined);
    expect(sw.ports).to.deep.equal(['p2', 'p3']);
    p2.send(ethFrame(A, B));
    expect(counts(ports)).to.deep.equal([0, 0, 1]);
    const before = p1.attachment!.stats.rxFrames;
    p1.send(ethFrame(BROADCAST, A)); // ignored after detach
    expect(p1.attachment!.stats.rxFrames).to.equal(before);
    expect(counts(ports)).to.deep.equal([0, 0, 0]);
    // It may join again, as a new port with fresh counters.
    p1.attachment = sw.attach(p1);
    p3.send(ethFrame(BROADCAST, C));
    expect(counts(ports)).to.deep.equal([1, 1, 0]);
  });

  it('drops runts (< 14 bytes) and oversize frames (> MTU + header, + 4 when VLAN-tagged), counting each', () => {
    const { ports } = setup(2, { mtu: 1500 });
    const [p1] = ports;
    for (const length of [0, 1, 13]) p1.send(Buffer.alloc(length, 0xff));
    p1.send(ethFrame(BROADCAST, A, { payloadLength: 1501 })); // 1515 bytes
    p1.send(ethFrame(BROADCAST, A, { payloadLength: 1500 })); // 1514: fits
    const tagged = (payloadLength: number) => {
      const frame = ethFrame(BROADCAST, A, { type: 0x8100, payloadLength });
      return frame;
    };
    p1.send(tagged(1504)); // 1518 with an 802.1Q tag: fits
    p1.send(tagged(1505)); // 1519: too long
    p1.send(ethFrame(BROADCAST, A, { payloadLength: 0 })); // a bare header is valid
    expect(counts(ports)).to.deep.equal([0, 3]);
    const stats = p1.attachment!.stats;
    expect(stats.drops).to.deep.equal({ runt: 3, oversize: 2, noDestination: 0, overrun: 0, error: 0 });
    expect(stats.rxFrames).to.equal(3);
    expect(stats.rxBytes).to.equal(1514 + 1518 + 14);
  });

  it('drops a frame too long for the egress port on egress, counted there', () => {
    const sw = new L2Switch('mixed');
    const big = new RecordingPort('big');
    const small = new RecordingPort('small');
    const other = new RecordingPort('other');
    big.attachment = sw.attach(big, { mtu: 9000 });
    small.attachment = sw.attach(small, { mtu: 1500 });
    other.attachment = sw.attach(other, { mtu: 9000 });
    big.send(ethFrame(BROADCAST, A, { payloadLength: 4000 }));
    expect(small.frames).to.have.length(0);
    expect(other.frames).to.have.length(1);
    expect(small.attachment.stats.drops.oversize).to.equal(1);
    expect(big.attachment.stats.drops.oversize).to.equal(0);
  });

  it('keeps per-port rx/tx frame and byte counters from the switch side', () => {
    const { ports } = setup(3);
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, A, { payloadLength: 86 })); // 100 bytes to p2 and p3
    p2.send(ethFrame(A, B, { payloadLength: 186 })); // 200 bytes to p1
    const s1 = p1.attachment!.stats;
    const s2 = p2.attachment!.stats;
    const s3 = p3.attachment!.stats;
    expect([s1.rxFrames, s1.rxBytes, s1.txFrames, s1.txBytes]).to.deep.equal([1, 100, 1, 200]);
    expect([s2.rxFrames, s2.rxBytes, s2.txFrames, s2.txBytes]).to.deep.equal([1, 200, 1, 100]);
    expect([s3.rxFrames, s3.rxBytes, s3.txFrames, s3.txBytes]).to.deep.equal([0, 0, 1, 100]);
  });

  it('gives a switch-wide stats table: ports, MAC table, counters', () => {
    const { sw, clock, ports } = setup(2);
    ports[0].send(ethFrame(BROADCAST, A));
    clock.ms = 5_000;
    ports[1].send(ethFrame(A, B));
    ports[0].send(Buffer.alloc(3));
    const stats = sw.stats();
    expect(stats).to.deep.include({ name: 'test', kind: 'switch', agingSeconds: 300 });
    expect(stats.ports).to.deep.equal([
      {
        port: 'p1',
        mtu: 1500,
        rxFrames: 1,
        rxBytes: 60,
        txFrames: 1,
        txBytes: 60,
        drops: { runt: 1, oversize: 0, noDestination: 0, overrun: 0, error: 0 },
      },
      {
        port: 'p2',
        mtu: 1500,
        rxFrames: 1,
        rxBytes: 60,
        txFrames: 1,
        txBytes: 60,
        drops: { runt: 0, oversize: 0, noDestination: 0, overrun: 0, error: 0 },
      },
    ]);
    expect(stats.macTable).to.deep.equal([
      { mac: A, port: 'p1', ageSeconds: 5 },
      { mac: B, port: 'p2', ageSeconds: 0 },
    ]);
    // A snapshot: later traffic does not change it.
    ports[0].send(ethFrame(BROADCAST, A));
    expect(stats.ports[0].rxFrames).to.equal(1);
  });

  it('does not learn group source MACs, and floods when the MAC table is full', () => {
    const { sw, ports } = setup(3, { maxMacs: 2 });
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, MULTICAST)); // forwarded, not learned
    expect(sw.macTable()).to.deep.equal([]);
    p1.send(ethFrame(BROADCAST, A));
    p2.send(ethFrame(BROADCAST, B));
    p3.send(ethFrame(BROADCAST, C)); // table full: C not learned
    counts(ports);
    expect(sw.lookup(C)).to.equal(undefined);
    expect(sw.stats().counters.tableFull).to.equal(1);
    p1.send(ethFrame(C, A));
    expect(counts(ports)).to.deep.equal([0, 1, 1]);
  });

  it('makes room in a full MAC table only from entries that aged out, the least recently seen first', () => {
    const { sw, clock, ports } = setup(3, { maxMacs: 2, agingMs: 1000 });
    const [p1, p2, p3] = ports;
    p1.send(ethFrame(BROADCAST, A)); // t=0
    clock.ms = 600;
    p2.send(ethFrame(BROADCAST, B)); // t=600
    clock.ms = 900;
    p1.send(ethFrame(BROADCAST, A)); // A seen again: now the most recent
    clock.ms = 1700; // B aged out (1100 ms), A not (800 ms)
    p3.send(ethFrame(BROADCAST, C));
    expect(sw.lookup(C), 'C learned in B’s place').to.equal('p3');
    expect(sw.lookup(A), 'A kept').to.equal('p1');
    expect(sw.lookup(B)).to.equal(undefined);
    clock.ms = 1750; // full again, nobody aged: a new source is not learned, nobody is dropped
    p2.send(ethFrame(BROADCAST, B));
    expect(sw.lookup(B)).to.equal(undefined);
    expect(sw.macTable().map((r) => r.mac)).to.deep.equal([A, C]);
    expect(sw.stats().counters).to.include({ tableFull: 1, aged: 1 });
    counts(ports);
  });

  it('catches a throwing port: counted as an error drop there, the others still get the frame', () => {
    const errors: string[] = [];
    const sw = new L2Switch('errors', {
      onPortError: (e, port) => errors.push(`${port.name}: ${(e as Error).message}`),
    });
    const bad = {
      name: 'bad',
      deliver: () => {
        throw new Error('ring full');
      },
    };
    const good = new RecordingPort('good');
    const sender = new RecordingPort('sender');
    const badAttachment = sw.attach(bad);
    good.attachment = sw.attach(good);
    sender.attachment = sw.attach(sender);
    sender.send(ethFrame(BROADCAST, A));
    expect(good.frames).to.have.length(1);
    expect(badAttachment.stats.drops.error).to.equal(1);
    expect(badAttachment.stats.txFrames).to.equal(0);
    expect(errors).to.deep.equal(['bad: ring full']);
  });

  it('forwards sends made from inside deliver() after the current frame, in order, never re-entering a port', () => {
    const sw = new L2Switch('reentrant');
    const log: string[] = [];
    let depth = 0;
    let maxDepth = 0;
    const echo = {
      name: 'echo',
      attachment: null as null | ReturnType<L2Switch['attach']>,
      deliver(frame: Buffer) {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        log.push(`echo got ${frame[14]}`);
        if (frame[14] < 3)
          echo.attachment!.send(ethFrame(BROADCAST, B, { payload: Buffer.from([frame[14] + 1]) }));
        log.push(`echo sent ${frame[14] + 1}`);
        depth--;
      },
    };
    const peer = {
      name: 'peer',
      attachment: null as null | ReturnType<L2Switch['attach']>,
      deliver(frame: Buffer) {
        depth++;
        maxDepth = Math.max(maxDepth, depth);
        log.push(`peer got ${frame[14]}`);
        if (frame[14] < 3)
          peer.attachment!.send(ethFrame(BROADCAST, A, { payload: Buffer.from([frame[14] + 1]) }));
        depth--;
      },
    };
    echo.attachment = sw.attach(echo);
    peer.attachment = sw.attach(peer);
    peer.attachment.send(ethFrame(BROADCAST, A, { payload: Buffer.from([0]) }));
    expect(log).to.deep.equal([
      'echo got 0',
      'echo sent 1',
      'peer got 1',
      'echo got 2',
      'echo sent 3',
      'peer got 3',
    ]);
    expect(maxDepth).to.equal(1);
  });

  it('bounds a synchronous echo loop: overrun drops, and the event loop keeps running', async () => {
    const sw = new L2Switch('storm');
    let delivered = 0;
    // Each delivery sends two frames back: without a bound the queue would grow forever.
    const mk = (name: string, mac: string) => {
      const port = {
        name,
        attachment: null as null | ReturnType<L2Switch['attach']>,
        deliver() {
          delivered++;
          port.attachment!.send(ethFrame(BROADCAST, mac));
          port.attachment!.send(ethFrame(BROADCAST, mac));
        },
      };
      port.attachment = sw.attach(port);
      return port;
    };
    const a = mk('a', A);
    const b = mk('b', B);
    a.attachment!.send(ethFrame(BROADCAST, A));
    // The first send returned: the rest runs on later turns of the loop, while timers still fire.
    const afterSend = delivered;
    const overruns = () => a.attachment!.stats.drops.overrun + b.attachment!.stats.drops.overrun;
    await eventually(() => overruns() > 0, 'overrun drops');
    expect(delivered).to.be.greaterThan(afterSend);
    a.attachment!.detach();
    b.attachment!.detach();
    const total = delivered;
    await new Promise((resolve) => setTimeout(resolve, 10)); // pending drains find nothing to do
    expect(delivered).to.equal(total);
  });

  it('rejects bad names, options, ports and double attachment', () => {
    expect(() => new L2Switch('no spaces')).to.throw(NetworkError, 'invalid switch name "no spaces"');
    expect(() => new L2Switch('loopback')).to.throw(NetworkError, 'invalid switch name');
    expect(() => new L2Switch('x', { agingMs: 0 })).to.throw(NetworkError, 'agingMs must be a number > 0');
    const sw = new L2Switch('x');
    const port = new RecordingPort('p');
    expect(() => sw.attach(port, { mtu: 67 })).to.throw(
      NetworkError,
      'x: port p: mtu must be an integer from 68 to 65535, got 67',
    );
    expect(() => sw.attach({ name: 'q' } as never)).to.throw(TypeError, 'deliver(frame)');
    const attachment = sw.attach(port);
    expect(() => sw.attach(port)).to.throw(NetworkError, 'x: port p is already attached');
    expect(() => attachment.send('frame' as never)).to.throw(TypeError, 'not a Buffer');
    // A Uint8Array that is not a Buffer is accepted and delivered as a Buffer view.
    const other = new RecordingPort('other');
    sw.attach(other);
    attachment.send(new Uint8Array(ethFrame(BROADCAST, A)) as Buffer);
    expect(Buffer.isBuffer(other.frames[0])).to.equal(true);
  });
});
