/**
 * One emu process against everything a client or guest did that once killed, starved or corrupted it
 * (issue "No client, guest or pipe can kill, starve or corrupt emu"), back to back. After each, a
 * well-behaved client is served, the control socket and the metrics endpoint answer, and the process is
 * the same one: nothing restarted it.
 */
import { createHash } from 'node:crypto';
import {
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { DynCtl, QLen, Reg } from '@emu/driver-iavf';
import { GuestRam, ipv4TcpFrame, rawFrame, SoftIavf, sleep } from '@emu/driver-iavf/testing';
import { closeFd, EventFd, memfdCreate, setNonblocking, UnixSocket } from '@emu/native';
import { lingeringSocket } from '@emu/native/testing';
import {
  Command,
  DeviceInfo,
  DmaMap,
  Errno,
  Header,
  IrqSet,
  type Message,
  MessageFramer,
  PciRegion,
  RegionAccess,
  RegionFlag,
  RegionInfo,
  silentLogger,
  Version,
  VfioUserClient,
} from '@emu/vfio-user';
import { expect } from 'chai';
import { ControlClient, type ControlError } from './control/client.js';
import { type EmuRun, spawnEmu, tempDir, until } from './test-env.fixture.js';

const MAC_A = '02:00:00:00:00:0a';
const MAC_B = '02:00:00:00:00:0b';
const GIB = 1n << 30n;
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};
const digest = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** A client speaking raw vfio-user: any bytes, any fds, replies parsed. */
class RawClient {
  readonly socket: UnixSocket;
  private readonly framer = new MessageFramer(1 << 26);
  private readonly inbox: Message[] = [];
  closed = false;

  constructor(path: string) {
    this.socket = UnixSocket.connect(path);
    this.socket.on('data', (chunk: Buffer, fds: number[]) => {
      for (const ev of this.framer.push(chunk, fds)) if (ev.kind === 'message') this.inbox.push(ev.message);
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
    });
  }

  static async negotiated(path: string): Promise<RawClient> {
    const c = new RawClient(path);
    c.send(1, Command.VERSION, Version.encode({ major: 0, minor: 0 }));
    await c.next();
    return c;
  }

  static message(msgId: number, command: number, payload: Buffer = Buffer.alloc(0)): Buffer {
    return Buffer.concat([Header.encode({ msgId, command, size: 16 + payload.length, flags: 0 }), payload]);
  }

  send(msgId: number, command: number, payload?: Buffer, fds: number[] = []): void {
    this.socket.write(RawClient.message(msgId, command, payload), fds);
  }

  /**
   * Sends a message with `fd` and closes this process's copy while emu still waits for the message's
   * end, so that emu's copy is the last one: whatever closing the file costs, emu pays it.
   */
  sendLastCopy(msgId: number, command: number, payload: Buffer, fd: number): void {
    const bytes = RawClient.message(msgId, command, payload);
    this.socket.write(bytes.subarray(0, 16), [fd]);
    closeFd(fd);
    this.socket.write(bytes.subarray(16));
  }

  async next(timeoutMs = 5000): Promise<Message> {
    await until(() => this.inbox.length > 0 || this.closed, 'a reply', timeoutMs);
    if (this.inbox.length === 0) throw new Error('emu closed the connection');
    return this.inbox.shift()!;
  }

  close(): void {
    this.socket.close();
  }
}

describe('one emu process against hostile clients and guests, back to back', function () {
  this.timeout(180_000);
  let tmp: ReturnType<typeof tempDir>;
  let run: EmuRun;
  let a: string;
  let b: string;

  before(async () => {
    tmp = tempDir();
    a = tmp.path('a.sock');
    b = tmp.path('b.sock');
    run = spawnEmu([
      '--vdev',
      `emu_iavf0,path=${a},mac=${MAC_A}`,
      '--vdev',
      `emu_iavf1,path=${b},mac=${MAC_B}`,
      '--status',
      '1',
      '--metrics',
      '127.0.0.1:0',
    ]);
    await until(() => run.io.stdout.includes('serving 2 devices'), `emu to serve (${run.io.stderr})`, 15_000);
  });
  after(async () => {
    if (run.child.exitCode === null) run.child.kill('SIGKILL');
    tmp.cleanup();
  });

  const pid = () => run.child.pid!;
  const alive = () => expect(run.child.exitCode, `emu died: ${run.io.stderr}`).to.equal(null);
  const rssKib = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid()}/status`, 'utf8'))![1]);
  const openFds = () => readdirSync(`/proc/${pid()}/fd`).length;

  /** A well-behaved client gets served on the socket (once the one before it is gone), and `operated()`. */
  async function served(path = a): Promise<void> {
    alive();
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        const client = await VfioUserClient.connect(path, { logger: silentLogger, timeoutMs: 2000 });
        try {
          expect((await client.getDeviceInfo()).numRegions).to.equal(9);
          expect((await client.regionRead(PciRegion.CONFIG, 0, 4)).readUInt32LE(0)).to.equal(0x18898086);
        } finally {
          client.close();
        }
        break;
      } catch (err) {
        // Refused while the previous client's connection is still being torn down: try again.
        if (Date.now() > deadline) throw err;
        await sleep(50);
      }
    }
    // And the operator's surfaces answer too.
    await operated();
  }

  /** The operator's surfaces answer: the control socket (devices.list) and the metrics endpoint. */
  async function operated(): Promise<void> {
    alive();
    const at = performance.now();
    const ctl = await ControlClient.connect(tmp.path('emu.ctl'));
    try {
      expect((await ctl.call('devices.list')) as unknown[]).to.have.length(2);
    } finally {
      ctl.close();
    }
    const url = /metrics: (http:\/\/\S+)\n/.exec(run.io.stdout)![1];
    const res = await fetch(url);
    expect(res.status).to.equal(200);
    expect(await res.text()).to.include('emu_device_info{device="emu_iavf0"');
    expect(performance.now() - at, 'ms the control socket and metrics took').to.be.below(2000);
  }

  /** What emu holds: open fds, memfd mappings, resident memory (KiB). */
  const footprint = () => ({
    fds: openFds(),
    memfdMappings: readFileSync(`/proc/${pid()}/maps`, 'utf8')
      .split('\n')
      .filter((l) => l.includes('/memfd:')).length,
    rssKib: rssKib(),
  });

  it('survives every one of them and serves a good client after each', async () => {
    await served();
    await served(b);
    const baseline = footprint();

    // 1. Requests in flight from a client that exits before the replies (QEMU killed mid-access).
    for (const n of [2, 3, 16]) {
      const c = new RawClient(a);
      const reads = Array.from({ length: n }, (_, i) =>
        RawClient.message(
          10 + i,
          Command.REGION_READ,
          RegionAccess.encode({ offset: 0n, region: 7, count: 4 }),
        ),
      );
      c.socket.write(
        Buffer.concat([
          RawClient.message(1, Command.VERSION, Version.encode({ major: 0, minor: 0 })),
          ...reads,
        ]),
      );
      c.close();
    }
    await served();

    // 2. A DMA_MAP past the end of its fd.
    {
      const c = await RawClient.negotiated(a);
      const fd = memfdCreate('emu-hostile-short', 4096);
      c.send(2, Command.DMA_MAP, DmaMap.encode({ argsz: 32, flags: 3, address: 0n, size: 8192n }), [fd]);
      expect((await c.next()).header.error).to.equal(Errno.EINVAL);
      closeFd(fd);
      c.close();
    }
    await served();

    // 3. Memory that shrinks under a mapping the device then reads (its admin queue ring).
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const fd = memfdCreate('emu-hostile-shrinks', 1 << 20);
      await client.dmaMap({ address: 0x1000_0000n, size: 1n << 20n, fd });
      await client.setBusMaster();
      await client.regionWrite(0, Reg.VF_ATQBAL1, u32(0x1000_0000));
      await client.regionWrite(0, Reg.VF_ATQBAH1, u32(0));
      await client.regionWrite(0, Reg.VF_ATQLEN1, u32(QLen.ENABLE | 32));
      ftruncateSync(fd, 0);
      await client.regionWrite(0, Reg.VF_ATQT1, u32(1));
      await until(() => run.io.stderr.includes('client memory vanished'), 'the fault to be logged', 5000);
      closeFd(fd);
      client.close();
    }
    await served();

    // 4. SET_IRQS whose second fd is not an eventfd.
    {
      const c = await RawClient.negotiated(a);
      const ev = EventFd.create();
      const memfd = memfdCreate('emu-hostile-not-eventfd', 4096);
      const set = IrqSet.encode({ argsz: 20, flags: 4 | 32, index: 2, start: 0, count: 2 });
      c.send(3, Command.DEVICE_SET_IRQS, set, [ev.fd, memfd]);
      expect((await c.next()).header.error).to.equal(Errno.EINVAL);
      ev.close();
      closeFd(memfd);
      c.close();
    }
    await served();

    // 5. An interrupt eventfd the client filled and never reads.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const ev = EventFd.create();
      await client.setIrqEventfds('msix', 0, [ev]);
      ev.write(0xffff_ffff_ffff_fffen);
      for (let i = 0; i < 3; i++) {
        await client.regionWrite(0, Reg.VFINT_DYN_CTL01, u32(DynCtl.INTENA | DynCtl.SWINT_TRIG));
      }
      await sleep(50);
      expect(ev.read()).to.equal(0xffff_ffff_ffff_fffen);
      ev.close();
      client.close();
    }
    await served();

    // 5b. The same, with O_NONBLOCK cleared on the eventfd (the flag is the open file's, which the
    //     client shares): the write of the interrupt blocks. Only this device's interrupt writer
    //     waits; its registers, the other device and the control socket are served meanwhile.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const ev = EventFd.create();
      await client.setIrqEventfds('msix', 0, [ev]);
      setNonblocking(ev.fd, false);
      ev.write(0xffff_ffff_ffff_fffen);
      for (let i = 0; i < 3; i++) {
        await client.regionWrite(0, Reg.VFINT_DYN_CTL01, u32(DynCtl.INTENA | DynCtl.SWINT_TRIG));
      }
      expect((await client.regionRead(PciRegion.CONFIG, 0, 4)).readUInt32LE(0)).to.equal(0x18898086);
      await served(b);
      // The stall detector names the thread the client holds, and what it was doing.
      await until(
        () => /emu-irq:emu_iavf0 stalled: \d+ ms at writing an interrupt eventfd/.test(run.io.stderr),
        'the stall to be logged',
        5000,
      );
      // ...and counts it in the metrics.
      const url = /metrics: (http:\/\/\S+)\n/.exec(run.io.stdout)![1];
      expect(await (await fetch(url)).text()).to.match(/^emu_stalls_total\{thread="emu-irq:emu_iavf0"\} 1$/m);
      const ctl = await ControlClient.connect(tmp.path('emu.ctl'));
      try {
        expect(((await ctl.call('devices.list')) as unknown[]).length).to.equal(2);
      } finally {
        ctl.close();
      }
      expect(ev.read()).to.equal(0xffff_ffff_ffff_fffen);
      ev.close();
      client.close();
    }
    await served();

    // 6. 256 MiB of replies asked for and never read.
    {
      const rss = rssKib();
      const c = await RawClient.negotiated(a);
      c.socket.pause();
      const read = RegionAccess.encode({ offset: 0n, region: 0, count: 65536 });
      for (let i = 0; i < 4096; i++) c.send(100 + i, Command.REGION_READ, read);
      await sleep(1000);
      alive();
      expect(rssKib() - rss, 'KiB emu grew by').to.be.below(64 * 1024);
      c.close();
    }
    await served();

    // 7. 160 fds for one message that never completes in time.
    {
      const c = await RawClient.negotiated(a);
      const ev = EventFd.create();
      const fds = openFds();
      const count = 640;
      c.socket.write(
        Buffer.concat([
          Header.encode({ msgId: 9, command: Command.REGION_WRITE, size: 16 + RegionAccess.size + count }),
          RegionAccess.encode({ offset: 0n, region: 0, count }),
        ]),
      );
      for (let i = 0; i < 10; i++) {
        c.socket.write(Buffer.alloc(64), Array(16).fill(ev.fd));
        await sleep(5);
        expect(openFds() - fds, 'fds emu holds').to.be.at.most(16 + 2);
      }
      expect((await c.next()).header.error).to.equal(Errno.EINVAL);
      ev.close();
      c.close();
    }
    await served();

    // 8. A connection that never sends VERSION holds the slot only until the handshake times out.
    {
      const silent = new RawClient(a);
      await served(b);
      await served(a);
      expect(silent.closed).to.equal(true);
      expect(run.io.stderr).to.contain('sent no VERSION within 10000 ms');
    }

    // 9. The 65535 DMA maps a vIOMMU guest may make.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const memory = new Uint8Array(4096);
      for (let i = 0; i < 65535; i += 512) {
        const batch = [];
        for (let j = i; j < Math.min(65535, i + 512); j++)
          batch.push(
            client.dmaMap({ address: 0x10_0000_0000n + BigInt(j) * 0x1000n, size: 0x1000n, memory }),
          );
        await Promise.all(batch);
      }
      expect((await client.getDeviceInfo()).numRegions).to.equal(9);
      client.close();
    }
    await served();

    // 10. Guest RAM bigger than one ArrayBuffer: 6 GiB of memfd, with the admin queue near its top.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const fd = memfdCreate('emu-hostile-6g', 6n * GIB);
      await client.dmaMap({ address: 0x1_0000_0000n, size: 6n * GIB, fd });
      closeFd(fd);
      await client.setBusMaster();
      const ring = 0x1_0000_0000n + 5n * GIB;
      await client.regionWrite(0, Reg.VF_ATQBAL1, u32(Number(ring & 0xffff_ffffn)));
      await client.regionWrite(0, Reg.VF_ATQBAH1, u32(Number(ring >> 32n)));
      await client.regionWrite(0, Reg.VF_ATQLEN1, u32(QLen.ENABLE | 32));
      await client.regionWrite(0, Reg.VF_ATQT1, u32(1));
      // The device read (zeros: nothing was written there), answered and moved its head.
      let head = 0;
      for (let i = 0; i < 100 && head !== 1; i++) {
        await sleep(10);
        head = (await client.regionRead(0, Reg.VF_ATQH1, 4)).readUInt32LE(0);
      }
      expect(head, 'ATQH').to.equal(1);
      client.close();
    }
    await served();

    // 11. A guest's ring of 64-byte-MSS TSO packets, while the other NIC is served.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const ram = GuestRam.shared(64);
      await ram.attach(client);
      const vf = new SoftIavf(client, ram, { txBufferBytes: 1 << 20 });
      await vf.bringUp();
      for (let i = 0; i < 12; i++) {
        const frame = ipv4TcpFrame({
          dstMac: MAC_B,
          srcMac: MAC_A,
          srcIp: '10.0.0.1',
          dstIp: '10.0.0.2',
          sport: 2000 + i,
          dport: 80,
          payload: Buffer.alloc(60 * 1024, i),
        });
        await vf.transmit(frame, { tso: { mss: 64 }, kick: i === 11 });
      }
      await served(b);
      expect(await vf.waitTxDone(0, 30_000)).to.equal(12);
      vf.close();
      client.close();
      ram.close();
    }
    await served();

    // 12. A new client with fresh RAM at the old IOVAs: nothing of the old guest's setup lands in it.
    {
      const guest = async (path: string, ram: GuestRam) => {
        const client = await VfioUserClient.connect(path, { logger: silentLogger });
        await ram.attach(client);
        const vf = new SoftIavf(client, ram);
        await vf.bringUp();
        return { client, vf };
      };
      const ramA = GuestRam.shared(32);
      const ramB = GuestRam.shared(32);
      const first = await guest(a, ramA);
      const other = await guest(b, ramB);
      first.client.close();
      await sleep(100);
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      const fresh = GuestRam.shared(32);
      fresh.fill(fresh.base, fresh.size, 0x5a);
      const before = digest(fresh.bytes);
      await fresh.attach(client);
      await client.setBusMaster();
      for (let i = 0; i < 50; i++) await other.vf.transmit(rawFrame(MAC_A, MAC_B, 200, i));
      await other.vf.waitTxDone(0);
      await sleep(50);
      expect(digest(fresh.bytes), 'the new RAM changed').to.equal(before);
      const vf = new SoftIavf(client, fresh);
      await vf.bringUp();
      await other.vf.transmit(rawFrame(MAC_A, MAC_B, 123, 99));
      expect((await vf.waitFrames(0, 1))[0].data.length).to.equal(123);
      for (const v of [vf, first.vf, other.vf]) v.close();
      client.close();
      other.client.close();
      for (const r of [ramA, ramB, fresh]) r.close();
    }
    await served();
    await served(b);

    // 13. fds attached to the replies to emu's own DMA_READs (the admin queue in fd-less RAM).
    {
      const fds = openFds();
      const c = await RawClient.negotiated(a);
      const access = (region: number, offset: number, data: Buffer) =>
        Buffer.concat([RegionAccess.encode({ offset: BigInt(offset), region, count: data.length }), data]);
      c.send(
        2,
        Command.DMA_MAP,
        DmaMap.encode({ argsz: 32, flags: 3, address: 0x1000_0000n, size: 0x10000n }),
      );
      c.send(3, Command.REGION_WRITE, access(PciRegion.CONFIG, 4, Buffer.from([6, 0])));
      c.send(4, Command.REGION_WRITE, access(0, Reg.VF_ATQBAL1, u32(0x1000_0000)));
      c.send(5, Command.REGION_WRITE, access(0, Reg.VF_ATQBAH1, u32(0)));
      c.send(6, Command.REGION_WRITE, access(0, Reg.VF_ATQLEN1, u32(QLen.ENABLE | 32)));
      c.send(7, Command.REGION_WRITE, access(0, Reg.VF_ATQT1, u32(4)));
      let answered = 0;
      const end = Date.now() + 3000;
      while (answered < 4 && Date.now() < end) {
        const m = await c.next(3000).catch(() => undefined);
        if (!m) break;
        if (m.header.command !== Command.DMA_READ || m.header.flags & 1) continue;
        const count = Number(m.payload.readBigUInt64LE(8));
        const body = Buffer.concat([m.payload.subarray(0, 16), Buffer.alloc(count)]);
        const junk = Array.from({ length: 12 }, () => memfdCreate('emu-hostile-dma-reply', 4096));
        c.socket.write(
          Buffer.concat([
            Header.encode({
              msgId: m.header.msgId,
              command: m.header.command,
              size: 16 + body.length,
              flags: 1,
            }),
            body,
          ]),
          junk,
        );
        for (const fd of junk) closeFd(fd);
        answered++;
      }
      expect(answered, `DMA_READs emu sent (${run.io.stderr.slice(-2000)})`).to.be.above(0);
      c.close();
      await served();
      await until(() => openFds() <= fds, `emu's fds back at ${fds} (now ${openFds()})`, 5000);
    }

    // 14. VERSION capabilities at their edges: max_data_xfer_size 0 is refused (the connection ends),
    // a client that takes no fds gets BAR0's info without an fd or mmap areas.
    {
      const version = (caps: string) =>
        Buffer.concat([Version.encode({ major: 0, minor: 0 }), Buffer.from(`{"capabilities":${caps}}\0`)]);
      const zero = new RawClient(a);
      zero.send(1, Command.VERSION, version('{"max_data_xfer_size":0}'));
      expect((await zero.next()).header.error).to.equal(Errno.EINVAL);
      await until(() => zero.closed, 'the refused client to be closed');
      const noFds = new RawClient(a);
      noFds.send(1, Command.VERSION, version('{"max_msg_fds":0}'));
      expect((await noFds.next()).header.error).to.equal(0);
      noFds.send(2, Command.DEVICE_GET_REGION_INFO, RegionInfo.encode({ argsz: 4096, index: 0 }));
      const info = await noFds.next();
      expect(info.fds, 'fds sent to a client that takes none').to.deep.equal([]);
      expect(RegionInfo.decode(info.payload).flags & (RegionFlag.MMAP | RegionFlag.CAPS)).to.equal(0);
      noFds.close();
    }
    await served();

    // 15. A refused devices.add (pcap= naming an existing file, or a missing folder) leaves nothing.
    {
      const ctl = await ControlClient.connect(tmp.path('emu.ctl'));
      try {
        const taken = tmp.path('taken.pcap');
        writeFileSync(taken, 'x');
        const memfds = () =>
          readFileSync(`/proc/${pid()}/maps`, 'utf8')
            .split('\n')
            .filter((l) => l.includes('memfd:')).length;
        // One answer first: emu has accepted the control connection before its fds are counted.
        await ctl.call('devices.list');
        const fds = openFds();
        const maps = memfds();
        for (let i = 0; i < 10; i++) {
          for (const pcap of [taken, tmp.path(`missing/cap${i}.pcap`)]) {
            const refused = await ctl
              .call('devices.add', { devargs: `emu_iavf9,path=${tmp.path('c.sock')},pcap=${pcap}` })
              .then(
                () => 'added',
                (e: Error) => e.message,
              );
            expect(refused).to.not.equal('added');
          }
        }
        const links = () =>
          readdirSync(`/proc/${pid()}/fd`).map((f) => {
            try {
              return readlinkSync(`/proc/${pid()}/fd/${f}`);
            } catch {
              return '?';
            }
          });
        await until(() => openFds() <= fds, `emu's fds back at ${fds}: ${links().join(' ')}`, 3000);
        expect(memfds(), 'emu memfd mappings').to.equal(maps);
      } finally {
        ctl.close();
        rmSync(tmp.path('taken.pcap'), { force: true });
      }
    }
    await served();

    // 16. 65535 DMA maps, each with its own fd: refused past the client's share of the process's memory
    // maps (ENOSPC), emu lives, the other device is served, everything goes with the client.
    {
      const client = await VfioUserClient.connect(a, { logger: silentLogger, timeoutMs: 20_000 });
      const fd = memfdCreate('emu-hostile-fd-maps', 4096);
      const memory = new Uint8Array(4096);
      const mapsOf = () =>
        readFileSync(`/proc/${pid()}/maps`, 'utf8')
          .split('\n')
          .filter((l) => l.includes('emu-hostile-fd-maps')).length;
      let mapped = 0;
      let refused = 0;
      for (let i = 0; i < 65535; i += 512) {
        const batch = [];
        for (let j = i; j < Math.min(65535, i + 512); j++) {
          batch.push(
            client.dmaMap({ address: 0x20_0000_0000n + BigInt(j) * 0x1000n, size: 0x1000n, fd, memory }).then(
              () => mapped++,
              (e: { code?: string }) => {
                expect(e.code).to.equal('ENOSPC');
                refused++;
              },
            ),
          );
        }
        await Promise.all(batch);
      }
      closeFd(fd);
      alive();
      expect(mapped, 'maps taken').to.equal(client.server.capabilities.maxDmaMaps);
      expect(refused).to.equal(65535 - mapped);
      expect(mapsOf()).to.equal(mapped);
      expect(run.io.stderr).to.contain('client refused 1 more memory maps');
      await served(b);
      client.close();
      await until(() => mapsOf() === 0, 'the maps to go with the client', 20_000);
    }
    await served();

    // 17. Control clients past the 16 it serves, none of them reading: the refused are closed at once.
    const ctlPath = tmp.path('emu.ctl');
    const lingering: Socket[] = [];
    {
      // emu's fd count settled after the step before (its clients' fds closing), then 20 clients.
      let fds = openFds();
      for (let settled = 0; settled < 3; ) {
        await sleep(200);
        const now = openFds();
        settled = now === fds ? settled + 1 : 0;
        fds = now;
      }
      const sockets = Array.from({ length: 20 }, () => {
        const s = connect(ctlPath);
        s.on('error', () => {});
        s.pause();
        return s;
      });
      await sleep(500);
      expect(openFds() - fds, 'fds for 20 clients: the 16 served').to.be.within(16, 17);
      // Three stay (silent, not reading) until the end: stopping must not wait for them.
      for (const s of sockets.splice(0, 3)) lingering.push(s);
      for (const s of sockets) s.destroy();
      await until(() => openFds() - fds <= 3, 'the closed ones to go', 5000);
    }
    await served();

    // 18. Control clients that send a line too long, dribble a line forever, or ask and never read.
    {
      const rss = rssKib();
      const long = connect(ctlPath);
      long.on('error', () => {});
      long.resume(); // reads (and drops) what emu says, so that its end is seen
      long.write(`{"jsonrpc":"2.0","id":1,"method":"${'x'.repeat(70_000)}"}\n`);
      const dribbler = connect(ctlPath);
      dribbler.on('error', () => {});
      dribbler.resume();
      const drip = setInterval(() => dribbler.write(' '), 100);
      const greedy = connect(ctlPath);
      greedy.on('error', () => {});
      greedy.pause();
      greedy.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'stats.get' })}\n`.repeat(50_000));
      await served();
      await until(() => long.destroyed || long.readableEnded, 'the long line to be refused', 5000);
      // The dribbler's line does not end within 10 s: emu closes it, however often bytes come.
      await until(() => dribbler.destroyed || dribbler.readableEnded, 'the dribbler to be closed', 15_000);
      clearInterval(drip);
      expect(greedy.writableLength, 'requests emu would not read').to.be.above(1 << 20);
      expect(rssKib() - rss, 'KiB emu grew by').to.be.below(32 * 1024);
      for (const s of [long, dribbler, greedy]) s.destroy();
    }
    await served();

    // 19. Names like __proto__, text with control characters, a 10,000-character device name.
    {
      const ctl = await ControlClient.connect(ctlPath);
      try {
        for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
          const e = (await ctl
            .call('attributes.get', { device: 'emu_iavf0', attribute: name })
            .catch((x) => x)) as ControlError;
          expect(e.data?.code, name).to.equal('ENOENT');
        }
        for (const devargs of [
          `emu_iavf2,path=${tmp.path('x\ny.sock')}`,
          `emu_iavf${'2'.repeat(10_000)},path=${tmp.path('c.sock')}`,
        ]) {
          const e = (await ctl.call('devices.add', { devargs }).catch((x) => x)) as ControlError;
          expect(e.data?.code).to.be.oneOf(['EVALUE', 'ENAME']);
        }
        expect((await ctl.call('devices.list')) as unknown[]).to.have.length(2);
      } finally {
        ctl.close();
      }
      expect(readdirSync(tmp.dir).sort()).to.deep.equal(['a.sock', 'b.sock', 'emu.ctl']);
    }
    await served();

    // 20. 1,900 pipelined scrapes on each of 3 connections, never read, while a guest's client is served.
    {
      const url = new URL(/metrics: (http:\/\/\S+)\n/.exec(run.io.stdout)![1]);
      const rss = rssKib();
      const scrapers = Array.from({ length: 3 }, () => {
        const s = connect(Number(url.port), url.hostname);
        s.on('error', () => {});
        s.pause();
        s.write(`GET /metrics HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`.repeat(1900));
        return s;
      });
      const client = await VfioUserClient.connect(a, { logger: silentLogger });
      let worst = 0;
      for (const end = Date.now() + 2000; Date.now() < end; ) {
        const at = performance.now();
        await client.regionRead(PciRegion.CONFIG, 0, 4);
        worst = Math.max(worst, performance.now() - at);
        await sleep(5);
      }
      client.close();
      expect(worst, 'ms of the slowest REGION_READ').to.be.below(250);
      expect(rssKib() - rss, 'KiB emu grew by').to.be.below(32 * 1024);
      for (const s of scrapers) s.destroy();
    }
    await served();

    // 21. Files emu does not take and whose close waits (a socket lingering on unsent data, as a file
    //     on a FUSE mount the client runs could for ever): let go of on emu's closer thread, never on a
    //     thread that serves anyone; a client sending more than 16 of them is disconnected; a file on
    //     a filesystem other than memory or a local disk is never mapped.
    {
      const lingering = Array.from({ length: 3 }, () => lingeringSocket(3));
      const c = await RawClient.negotiated(a);
      const at = performance.now();
      for (const s of lingering) {
        c.sendLastCopy(30, Command.DEVICE_GET_INFO, DeviceInfo.encode({ argsz: 16 }), s.fd);
        await c.next();
      }
      await served(b);
      expect(performance.now() - at, 'ms for 3 replies and a client served').to.be.below(2000);
      await until(() => run.io.stderr.includes('emu-closer stalled'), 'the closer stall to be logged', 5000);
      // A DMA_MAP of a file on /proc: refused without a call into it.
      const proc = openSync('/proc/self/status', 'r');
      c.send(31, Command.DMA_MAP, DmaMap.encode({ argsz: 32, flags: 3, address: 0n, size: 4096n }), [proc]);
      expect((await c.next()).header.error).to.equal(Errno.EINVAL);
      closeFd(proc);
      // 17 files it does not take: the connection goes.
      const ev = EventFd.create();
      for (let i = 0; i < 17 && !c.closed; i++) {
        const [x, y] = UnixSocket.pair();
        c.send(40 + i, Command.DEVICE_GET_INFO, DeviceInfo.encode({ argsz: 16 }), [x.fd]);
        x.close();
        y.close();
        await sleep(5);
      }
      await until(() => c.closed, 'the connection to be closed', 5000);
      ev.close();
      for (const s of lingering) {
        closeFd(s.peer);
        closeFd(s.listener);
      }
    }
    await served();

    // Everything those clients made emu hold was given back (the heap grew by what V8 keeps).
    {
      const now = footprint();
      expect(now.fds, 'open fds').to.be.at.most(baseline.fds + 4);
      expect(now.memfdMappings, 'memfd mappings').to.be.at.most(baseline.memfdMappings);
      expect(now.rssKib - baseline.rssKib, 'KiB of RSS more than at the start').to.be.below(256 * 1024);
    }

    // 22. Its stdout and stderr readers go away (emu | head, a dead log collector).
    run.child.stdout!.destroy();
    run.child.stderr!.destroy();
    await sleep(1500);
    await served();

    // Stopping is prompt with control clients still attached that never read.
    const stopping = performance.now();
    run.child.kill('SIGINT');
    expect(await run.exit).to.deep.equal({ code: 0, signal: null });
    expect(performance.now() - stopping, 'ms to stop').to.be.below(5000);
    for (const s of lingering) s.destroy();
  });
});
