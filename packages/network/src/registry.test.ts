import { existsSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { NetworkError } from './errors.js';
import { readPcap } from './pcap.js';
import { formatNetSpec, NetworkRegistry, parseNetSpec } from './registry.js';
import type { TapBackend } from './tap-port.js';
import { BROADCAST, ethFrame, RecordingPort, tempDir } from './test-helpers.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

function thrown(fn: () => unknown): NetworkError {
  try {
    fn();
  } catch (error) {
    if (error instanceof NetworkError) return error;
    throw error;
  }
  throw new Error('expected a NetworkError');
}

/** A TAP stand-in: records writes; `inject` plays the kernel sending a frame. */
class FakeTap implements TapBackend {
  readonly written: Buffer[] = [];
  onFrame: ((frame: Buffer) => void) | null = null;
  closed = false;
  constructor(readonly name: string) {}
  write(frame: Uint8Array): void {
    this.written.push(Buffer.from(frame));
  }
  watch(onFrame: (frame: Buffer) => void): void {
    this.onFrame = onFrame;
  }
  unwatch(): void {
    this.onFrame = null;
  }
  close(): void {
    this.closed = true;
    this.onFrame = null;
  }
  inject(frame: Buffer): void {
    this.onFrame?.(frame);
  }
}

describe('parseNetSpec', () => {
  it('parses the three forms', () => {
    expect(parseNetSpec('default')).to.deep.equal({ kind: 'switch', name: 'default' });
    expect(parseNetSpec('lab-1.a_b')).to.deep.equal({ kind: 'switch', name: 'lab-1.a_b' });
    expect(parseNetSpec('tap:tap0')).to.deep.equal({ kind: 'tap', ifname: 'tap0' });
    expect(parseNetSpec('tap:emu%d')).to.deep.equal({ kind: 'tap', ifname: 'emu%d' });
    expect(parseNetSpec('loopback')).to.deep.equal({ kind: 'loopback' });
    for (const text of ['default', 'tap:tap0', 'loopback'])
      expect(formatNetSpec(parseNetSpec(text))).to.equal(text);
  });

  it('explains what is wrong, quoting the value', () => {
    const cases: [string, string][] = [
      ['tap:', 'net=tap: needs an interface name, e.g. net=tap:tap0'],
      ['', 'net= is empty: use NAME (a switch), tap:IFNAME or loopback'],
      [
        'vde:/tmp/sw',
        'net=vde:/tmp/sw: unknown network form "vde:": use NAME (a switch), tap:IFNAME or loopback',
      ],
      [':x', 'net=:x: unknown network form ":"'],
      [
        'tap:averyveryverylongname',
        'net=tap:averyveryverylongname: interface name "averyveryverylongname" is 21 bytes; Linux allows at most 15',
      ],
      ['tap:a/b', 'net=tap:a/b: "a/b" is not a valid interface name'],
      ['tap:a:b', 'net=tap:a:b: "a:b" is not a valid interface name'],
      ['my net', 'net=my net: not a valid network name'],
      ['-x', 'net=-x: not a valid network name'],
    ];
    for (const [text, message] of cases) {
      const error = thrown(() => parseNetSpec(text));
      expect(error.code, text).to.equal('EINVAL');
      expect(error.message, text).to.include(message);
    }
    expect(() => parseNetSpec(7 as never)).to.throw(NetworkError, 'net must be a string');
  });
});

describe('NetworkRegistry', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('creates switches on demand; every device shares "default" unless told otherwise', () => {
    const registry = new NetworkRegistry();
    expect(registry.switches).to.deep.equal([]);
    const nic0 = new RecordingPort('nic0');
    const nic1 = new RecordingPort('nic1');
    const lab = new RecordingPort('lab0');
    nic0.attachment = registry.attach(nic0);
    nic1.attachment = registry.attach(nic1, 'default');
    lab.attachment = registry.attach(lab, 'lab');
    expect(registry.get()).to.equal(registry.get('default'));
    expect(registry.find('nope')).to.equal(undefined);
    expect(registry.switches.map((s) => [s.name, s.ports])).to.deep.equal([
      ['default', ['nic0', 'nic1']],
      ['lab', ['lab0']],
    ]);
    nic0.send(ethFrame(BROADCAST, A));
    expect(nic1.frames).to.have.length(1);
    expect(lab.frames).to.have.length(0);
  });

  it('passes switch options and the MTU through', () => {
    const registry = new NetworkRegistry({ switch: { agingMs: 1000 } });
    const nic = new RecordingPort('nic');
    registry.attach(nic, 'jumbo', { mtu: 9000 });
    expect(registry.get('jumbo').agingMs).to.equal(1000);
    expect(registry.stats().switches[0].ports[0].mtu).to.equal(9000);
    expect(() => registry.attach(new RecordingPort('x'), 'jumbo', { mtu: 70_000 })).to.throw(
      NetworkError,
      'mtu',
    );
  });

  it('net=loopback sends every frame back to the NIC alone', () => {
    const registry = new NetworkRegistry();
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    a.attachment = registry.attach(a, 'loopback');
    b.attachment = registry.attach(b, { kind: 'loopback' });
    a.send(ethFrame(B, A));
    expect(a.frames).to.have.length(1);
    expect(b.frames).to.have.length(0);
    expect(registry.stats().links.map((l) => l.kind)).to.deep.equal(['loopback']);
  });

  it('net=tap:IFNAME links the NIC point-to-point with the TAP, both ways; detach closes the TAP', () => {
    const taps: FakeTap[] = [];
    const registry = new NetworkRegistry({
      openTap: (ifname) => {
        const tap = new FakeTap(ifname);
        taps.push(tap);
        return tap;
      },
    });
    const nic = new RecordingPort('emu_iavf0');
    nic.attachment = registry.attach(nic, 'tap:tap7');
    const [tap] = taps;
    const out = ethFrame(B, A);
    nic.send(out);
    nic.send(Buffer.alloc(4)); // runt: never reaches the TAP
    expect(tap.written).to.deep.equal([out]);
    const inbound = ethFrame(A, B, { payloadLength: 100 });
    tap.inject(inbound);
    expect(nic.frames).to.deep.equal([inbound]);

    const stats = registry.stats();
    expect(stats.switches).to.deep.equal([]);
    expect(stats.links).to.have.length(1);
    expect(stats.links[0]).to.deep.include({ name: 'tap:tap7', kind: 'point-to-point' });
    expect(stats.links[0].ports.map((p) => [p.port, p.rxFrames, p.txFrames])).to.deep.equal([
      ['emu_iavf0', 1, 1],
      ['tap:tap7', 1, 1],
    ]);
    expect(stats.links[0].ports[0].drops.runt).to.equal(1);
    expect(stats.taps).to.deep.equal([
      {
        ifname: 'tap7',
        peer: 'emu_iavf0',
        rxFrames: 1,
        rxBytes: 114,
        txFrames: 1,
        txBytes: 60,
        readErrors: 0,
        writeErrors: 0,
        lastError: null,
      },
    ]);

    nic.attachment.detach();
    expect(tap.closed).to.equal(true);
    expect(registry.stats().taps).to.deep.equal([]);
    nic.attachment.detach();
  });

  it('captures a port to pcap=FILE, both directions; ports may share a file until the last detaches', () => {
    const registry = new NetworkRegistry();
    const path = tmp.path('net.pcap');
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    const c = new RecordingPort('c');
    a.attachment = registry.attach(a, 'default', { pcap: path });
    b.attachment = registry.attach(b, 'default', { pcap: path });
    c.attachment = registry.attach(c, 'default');
    a.send(ethFrame(BROADCAST, A)); // recorded as a's send and as b's receive
    c.send(ethFrame(A, '02:00:00:00:00:0c')); // to a only
    expect(registry.stats().captures).to.deep.equal([
      { path, ports: ['a', 'b'], packets: 3, bytes: 24 + 3 * (16 + 60), error: null },
    ]);
    a.attachment.detach();
    expect(registry.stats().captures).to.have.length(1);
    b.attachment.detach();
    expect(registry.stats().captures).to.deep.equal([]);
    const records = readPcap(readFileSync(path)).records;
    expect(records).to.have.length(3);
    expect(records.map((r) => r.data.subarray(6, 12).toString('hex'))).to.deep.equal([
      '02000000000a',
      '02000000000a',
      '02000000000c',
    ]);
  });

  it('starts and stops a capture while the port stays attached, with clear errors', () => {
    const registry = new NetworkRegistry();
    const path = tmp.path('later.pcap');
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    const plug = registry.attach(a, 'default');
    a.attachment = plug;
    b.attachment = registry.attach(b, 'default');
    a.send(ethFrame(BROADCAST, A)); // before the capture: not recorded
    expect(plug.capture).to.equal(null);
    plug.startCapture(path);
    expect(plug.capture).to.equal(path);
    expect(thrown(() => plug.startCapture(tmp.path('other.pcap'))).message).to.equal(
      `a: already capturing to ${path}; stop that first`,
    );
    a.send(ethFrame(B, A)); // a sends
    b.send(ethFrame(A, B)); // a receives
    plug.stopCapture();
    plug.stopCapture(); // idempotent
    a.send(ethFrame(B, A)); // after: not recorded
    expect(registry.stats().captures).to.deep.equal([]);
    expect(
      readPcap(readFileSync(path)).records.map((r) => r.data.subarray(6, 12).toString('hex')),
    ).to.deep.equal(['02000000000a', '02000000000b']);
    // An existing file is refused unless overwriting; nothing is left half-open.
    expect(() => plug.startCapture(path)).to.throw(/exists/);
    expect(plug.capture).to.equal(null);
    plug.startCapture(path, { overwrite: true });
    expect(readPcap(readFileSync(path)).records).to.have.length(0);
    plug.detach();
    expect(registry.stats().captures).to.deep.equal([]);
    expect(thrown(() => plug.startCapture(path)).code).to.equal('ECLOSED');
  });

  it('cleans up after a failed attach: no capture left open, no half-made link', () => {
    const registry = new NetworkRegistry({
      openTap: () => {
        throw Object.assign(new Error('ioctl TUNSETIFF tap0: permission denied'), { code: 'EPERM' });
      },
    });
    const path = tmp.path('failed.pcap');
    expect(() => registry.attach(new RecordingPort('nic'), 'tap:tap0', { pcap: path })).to.throw(
      'permission denied',
    );
    expect(registry.stats()).to.deep.equal({ switches: [], links: [], taps: [], captures: [] });
    expect(existsSync(path)).to.equal(true); // created, then closed
    expect(() => registry.attach(new RecordingPort('nic'), 'tap:')).to.throw(
      NetworkError,
      'needs an interface name',
    );
  });

  it('close() detaches every port it attached, closing TAPs and captures', () => {
    const taps: FakeTap[] = [];
    const registry = new NetworkRegistry({ openTap: (name) => taps[taps.push(new FakeTap(name)) - 1] });
    const a = new RecordingPort('a');
    const b = new RecordingPort('b');
    a.attachment = registry.attach(a, 'tap:t0', { pcap: tmp.path('a.pcap') });
    b.attachment = registry.attach(b, 'lan');
    registry.close();
    registry.close();
    expect(taps[0].closed).to.equal(true);
    expect(registry.get('lan').ports).to.deep.equal([]);
    expect(registry.stats().captures).to.deep.equal([]);
  });
});
