import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { NetworkError } from './errors.js';
import { readPcap } from './pcap.js';
import { PointToPoint } from './point-to-point.js';
import { NetworkRegistry } from './registry.js';
import { L2Switch } from './switch.js';
import { type TapBackend, TapPort } from './tap-port.js';
import {
  BROADCAST,
  ensureTshark,
  ethFrame,
  eventually,
  isRoot,
  MiniHost,
  Netns,
  parseFrame,
  RecordingPort,
  tempDir,
  tsharkFields,
} from './test-helpers.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

class FakeTap implements TapBackend {
  readonly written: Buffer[] = [];
  onFrame: ((frame: Buffer) => void) | null = null;
  onError: ((error: Error) => void) | null = null;
  failWrites: Error | null = null;
  closed = false;
  constructor(readonly name = 'tap9') {}
  write(frame: Uint8Array): void {
    if (this.failWrites) throw this.failWrites;
    this.written.push(Buffer.from(frame));
  }
  watch(onFrame: (frame: Buffer) => void, onError: (error: Error) => void): void {
    this.onFrame = onFrame;
    this.onError = onError;
  }
  unwatch(): void {
    this.onFrame = null;
    this.onError = null;
  }
  close(): void {
    this.closed = true;
  }
}

describe('TapPort', () => {
  it('reads frames into its network and writes what the network delivers, counting both', () => {
    const device = new FakeTap();
    const tap = new TapPort(device);
    expect(tap.name).to.equal('tap:tap9');
    const link = new PointToPoint('link');
    const nic = new RecordingPort('nic');
    nic.attachment = link.attach(nic);
    const attachment = tap.attachTo(link);
    device.onFrame!(ethFrame(A, B, { payloadLength: 86 }));
    expect(nic.frames).to.have.length(1);
    nic.send(ethFrame(B, A));
    expect(device.written).to.have.length(1);
    expect(tap.stats).to.deep.include({
      rxFrames: 1,
      rxBytes: 100,
      txFrames: 1,
      txBytes: 60,
      writeErrors: 0,
    });
    expect(attachment.stats).to.deep.include({ rxFrames: 1, txFrames: 1 });
    expect(() => tap.attachTo(link)).to.throw(NetworkError, 'tap:tap9 is already attached');
    attachment.detach();
    expect(device.onFrame).to.equal(null); // stopped reading
  });

  it('counts failed writes (e.g. EIO while the interface is down) and never throws them', () => {
    const device = new FakeTap();
    const tap = new TapPort(device);
    const link = new PointToPoint('link');
    const nic = new RecordingPort('nic');
    nic.attachment = link.attach(nic);
    tap.attachTo(link);
    device.failWrites = new Error('write TAP tap9: i/o error');
    nic.send(ethFrame(B, A));
    nic.send(ethFrame(B, A));
    expect(tap.stats).to.deep.include({
      txFrames: 0,
      writeErrors: 2,
      lastError: 'write TAP tap9: i/o error',
    });
    // The network delivered it; the TAP is what failed.
    expect(nic.attachment.stats.drops.error).to.equal(0);
  });

  it('counts a read failure and reports it once', () => {
    const device = new FakeTap();
    const errors: string[] = [];
    const tap = new TapPort(device, { onError: (e) => errors.push(e.message) });
    tap.attachTo(new L2Switch('sw'));
    device.onError!(new Error('read TAP tap9: the interface is gone'));
    expect(tap.stats).to.deep.include({ readErrors: 1, lastError: 'read TAP tap9: the interface is gone' });
    expect(errors).to.deep.equal(['read TAP tap9: the interface is gone']);
  });

  it('close() detaches, closes the device, and is idempotent', () => {
    const device = new FakeTap();
    const tap = new TapPort(device);
    const sw = new L2Switch('sw');
    tap.attachTo(sw);
    tap.close();
    tap.close();
    expect(device.closed).to.equal(true);
    expect(sw.ports).to.deep.equal([]);
    tap.deliver(ethFrame(BROADCAST, A)); // ignored
    expect(device.written).to.deep.equal([]);
    expect(() => tap.attachTo(sw)).to.throw(NetworkError, 'closed');
  });

  describe('through a real TAP into a network namespace (root)', function () {
    // 10.215.<n>.0/24 inside a namespace of this machine: nothing leaves it.
    const ns = `emu-net-${process.pid}`;
    const ifname = `emun${process.pid}`.slice(0, 15);
    const hostIp = '10.215.0.1';
    const guestIp = '10.215.0.2';
    let netns: Netns | null = null;
    let registry: NetworkRegistry;
    let tmp: ReturnType<typeof tempDir>;

    this.timeout(30_000);
    before(function () {
      if (!isRoot) this.skip(); // TAP devices and namespaces need root (CI runs as root)
      if (spawnSync('ip', ['-V']).error)
        throw new Error('the TAP tests need the ip command (Debian: apt-get install iproute2)');
    });
    beforeEach(() => {
      tmp = tempDir();
      registry = new NetworkRegistry();
      netns = Netns.create(ns);
    });
    afterEach(() => {
      // Even after a failure: close our TAPs (the interfaces go), then the namespace.
      registry.close();
      netns?.delete();
      netns = null;
      tmp.cleanup();
    });

    it('a guest on net=tap:IFNAME pings the namespace kernel; pcap=FILE holds the echo requests and replies (parsed and by tshark)', async () => {
      const pcap = tmp.path('guest.pcap');
      const guest = new MiniHost('guest0', '02:00:00:00:01:02', guestIp);
      guest.attachment = registry.attach(guest, `tap:${ifname}`, { pcap });
      // The TAP exists in our namespace once opened; hand it to the test namespace with an address.
      netns!.adopt(ifname, `${hostIp}/24`);

      const replies = await guest.ping(hostIp, 3);
      expect(replies.map((r) => r.seq).sort()).to.deep.equal([1, 2, 3]);
      expect(replies.every((r) => r.payload.toString().startsWith(`emu ping ${r.seq}`))).to.equal(true);

      // And the other way: a program in the namespace sends the guest a datagram.
      const send = netns!.exec(process.execPath, [
        '-e',
        `const s = require('node:dgram').createSocket('udp4');
         s.send('hello from the namespace', 5555, '${guestIp}', (e) => { if (e) throw e; s.close(); });`,
      ]);
      expect(send.status, `node in the namespace:\n${send.stderr}`).to.equal(0);
      await eventually(() => guest.datagrams.length > 0, 'the datagram from the namespace');
      expect(guest.datagrams).to.deep.equal([
        { from: hostIp, port: 5555, payload: 'hello from the namespace' },
      ]);

      const stats = registry.stats();
      expect(stats.taps[0]).to.deep.include({ ifname, peer: 'guest0', readErrors: 0, writeErrors: 0 });
      expect(stats.taps[0].rxFrames).to.be.greaterThanOrEqual(5); // ARP reply, 3 + 2 echoes at least
      expect(stats.links[0].ports[0].port).to.equal('guest0');

      registry.close(); // flushes and closes the capture
      const echoes = readPcap(readFileSync(pcap))
        .records.map((r) => parseFrame(r.data))
        .filter((p) => p.kind === 'echo');
      const guestPings = echoes.filter((e) => e.kind === 'echo' && e.id === 0x4242);
      expect(guestPings.map((e) => e.kind === 'echo' && `${e.type} ${e.seq} ${e.srcIp}`)).to.have.members([
        `request 1 ${guestIp}`,
        `request 2 ${guestIp}`,
        `request 3 ${guestIp}`,
        `reply 1 ${hostIp}`,
        `reply 2 ${hostIp}`,
        `reply 3 ${hostIp}`,
      ]);

      const problem = ensureTshark();
      if (problem !== null) throw new Error(problem);
      const icmp = tsharkFields(pcap, ['icmp.type', 'icmp.seq', 'ip.src', 'ip.dst'], 'icmp');
      expect(icmp.map(([type, seq, src, dst]) => `${type}/${seq} ${src}>${dst}`)).to.have.members([
        `8/1 ${guestIp}>${hostIp}`,
        `8/2 ${guestIp}>${hostIp}`,
        `8/3 ${guestIp}>${hostIp}`,
        `0/1 ${hostIp}>${guestIp}`,
        `0/2 ${hostIp}>${guestIp}`,
        `0/3 ${hostIp}>${guestIp}`,
      ]);
      expect(
        tsharkFields(pcap, ['udp.dstport', 'data.text'], 'udp', ['-o', 'data.show_as_text:TRUE']),
      ).to.deep.equal([['5555', 'hello from the namespace']]);
      expect(tsharkFields(pcap, ['arp.opcode'], 'arp').length).to.be.greaterThanOrEqual(2);
    });

    it('a TapPort can be a switch uplink: two guests on one switch both reach the namespace', async () => {
      const sw = new L2Switch('uplinked');
      const tap = TapPort.open(ifname);
      try {
        tap.attachTo(sw);
        netns!.adopt(ifname, `${hostIp}/24`);
        const guests = [2, 3].map((n) => {
          const guest = new MiniHost(`guest${n}`, `02:00:00:00:01:0${n}`, `10.215.0.${n}`);
          guest.attachment = sw.attach(guest);
          return guest;
        });
        for (const guest of guests) expect(await guest.ping(hostIp, 2)).to.have.length(2);
        // The switch learned the guests on their ports and the namespace's MAC on the uplink.
        const table = sw.macTable();
        expect(table.filter((e) => e.port === `tap:${ifname}`)).to.have.length(1);
        expect(table.filter((e) => e.port.startsWith('guest'))).to.have.length(2);
        // Unicast between the namespace and guest2 never reached guest3 (only broadcasts did).
        const stray = guests[1].received
          .map(parseFrame)
          .filter((p) => p.kind === 'echo' && p.dstIp === '10.215.0.2');
        expect(stray).to.deep.equal([]);
      } finally {
        tap.close();
      }
    });

    it('counts the error and stops reading when the namespace (and the interface with it) is deleted', async () => {
      const errors: Error[] = [];
      const reg = new NetworkRegistry({ onTapError: (error) => errors.push(error) });
      try {
        const guest = new RecordingPort('guest');
        guest.attachment = reg.attach(guest, `tap:${ifname}`);
        netns!.adopt(ifname, `${hostIp}/24`);
        netns!.delete();
        netns = null;
        await eventually(() => errors.length > 0, 'the TAP read error');
        expect((errors[0] as NodeJS.ErrnoException).code).to.equal('EBADFD');
        expect(reg.stats().taps[0]).to.deep.include({ readErrors: 1 });
        guest.send(ethFrame(BROADCAST, A)); // the write fails too: counted, not thrown
        expect(reg.stats().taps[0].writeErrors).to.equal(1);
      } finally {
        reg.close();
      }
    });

    it('names the problem when the TAP cannot be opened: busy', () => {
      registry.attach(new RecordingPort('first'), `tap:${ifname}`);
      expect(() => registry.attach(new RecordingPort('second'), `tap:${ifname}`)).to.throw(
        `TAP ${ifname} is busy: another process (or another TapDevice) has it open`,
      );
      expect(registry.stats().taps).to.have.length(1);
    });
  });
});
