import { openSync } from 'node:fs';
import { closeFd, closerStats, EventFd, memfdCreate, releaseFd } from '@emu/native';
import { lingeringSocket } from '@emu/native/testing';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag } from '../protocol/constants.js';
import {
  DeviceInfo,
  DmaMap,
  DmaUnmap,
  Header,
  IrqSet,
  RegionAccess,
  RegionInfo,
  Version,
} from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { VfioUserServer } from './server.js';
import { makeTestDevice, type TestDevice } from './test-device.fixture.js';
import { captureLogger, openFdCount, tempDir, until } from './test-env.fixture.js';

const getInfo = () => DeviceInfo.encode({ argsz: 16 });
const dmaMap = (address: bigint, size: bigint, flags = 3) =>
  DmaMap.encode({ argsz: 32, flags, address, size });
const access = (region: number, offset: bigint, count: number) =>
  RegionAccess.encode({ offset, region, count });

describe('VfioUserServer against bad input', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: TestDevice;
  let server: VfioUserServer;
  let log: ReturnType<typeof captureLogger>;
  let peer: RawPeer;

  beforeEach(async () => {
    dir = tempDir();
    dev = makeTestDevice();
    log = captureLogger();
    server = new VfioUserServer(dev.spec, { path: dir.path('dev.sock'), logger: log.logger }).listen();
    peer = await RawPeer.negotiated(server.path);
  });

  afterEach(() => {
    peer.close();
    server.close();
    dev.dispose();
    dir.cleanup();
  });

  /** Sends one command and expects an error reply with `errno`, logged, and the server still serving. */
  async function expectError(
    command: number,
    payload: Buffer,
    errno: number,
    logged: string,
    fds: number[] = [],
  ) {
    const before = log.lines.length;
    peer.send(77, command, payload, fds);
    const reply = await peer.next();
    expect(reply.header).to.include({
      msgId: 77,
      command,
      size: 16,
      flags: HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR,
    });
    expect(reply.header.error, `errno for ${logged}`).to.equal(errno);
    const lines = log.lines.slice(before).map((l) => l.msg);
    expect(lines.join('\n')).to.contain(logged);
    await expectServing();
  }

  async function expectServing() {
    peer.send(500, Command.DEVICE_GET_INFO, getInfo());
    const ok = await peer.next();
    expect(ok.header).to.include({ msgId: 500, flags: HeaderFlag.TYPE_REPLY });
    expect(DeviceInfo.decode(ok.payload).numRegions).to.equal(9);
  }

  it('never waits on a file the client sends that emu does not take: a socket whose close lingers', async () => {
    // A file whose close(2) waits 2 s (as one on a FUSE mount the client runs could, for ever), on a
    // message that takes no fd: emu lets go of it on its closer thread, and goes on answering at once.
    const s = lingeringSocket(2);
    try {
      const before = closerStats();
      peer.send(10, Command.DEVICE_GET_INFO, getInfo(), [s.fd]);
      // The client's own copy, on the closer too: whichever copy goes last waits out the linger.
      releaseFd(s.fd);
      const at = performance.now();
      await peer.next();
      await expectServing();
      expect(performance.now() - at, 'ms for two replies').to.be.below(1000);
      // Both copies went to the closer: the client's, and the one emu did not take.
      const after = closerStats();
      expect(after.pending + after.closed).to.be.at.least(before.pending + before.closed + 2);
    } finally {
      closeFd(s.peer);
      closeFd(s.listener);
    }
  });

  it('refuses to map a file it cannot use without calls that may wait on its server, saying where it is', async () => {
    const fd = openSync('/proc/self/status', 'r');
    try {
      await expectError(Command.DMA_MAP, dmaMap(0x1000n, 0x1000n), Errno.EINVAL, 'it is on proc', [fd]);
    } finally {
      closeFd(fd);
    }
  });

  it('answers a header whose size is below 16 with EINVAL and resynchronises', async () => {
    peer.sendRaw(Header.encode({ msgId: 3, command: Command.DEVICE_GET_INFO, size: 15, flags: 0 }));
    const reply = await peer.next();
    expect(reply.header).to.include({ msgId: 3, error: Errno.EINVAL });
    expect(log.lines.map((l) => l.msg).join()).to.contain('smaller than the 16-byte header');
    await expectServing();
  });

  it('cleans up after a client that sends half a header and hangs up', async () => {
    peer.sendRaw(Header.encode({ msgId: 1, command: Command.DEVICE_GET_INFO, size: 32 }).subarray(0, 10));
    peer.close();
    await until(() => server.client === undefined, 'disconnect');
    const next = await VfioUserClient.connect(server.path);
    expect((await next.getDeviceInfo()).numIrqs).to.equal(5);
    next.close();
  });

  it('refuses DMA maps beyond max_dma_maps with ENOSPC', async () => {
    peer.close();
    server.close();
    server = new VfioUserServer(dev.spec, {
      path: dir.path('limited.sock'),
      logger: log.logger,
      maxDmaMaps: 2,
    }).listen();
    peer = await RawPeer.negotiated(server.path);
    for (const address of [0x1000n, 0x2000n]) {
      peer.send(9, Command.DMA_MAP, dmaMap(address, 0x1000n));
      expect((await peer.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    }
    await expectError(Command.DMA_MAP, dmaMap(0x3000n, 0x1000n), Errno.ENOSPC, 'its limit is 2');
  });

  it('answers a message above max_data_xfer_size with E2BIG and skips its body', async () => {
    const body = Buffer.alloc(2 << 20, 0x41);
    peer.sendRaw(
      Buffer.concat([
        Header.encode({ msgId: 4, command: Command.REGION_WRITE, size: 16 + body.length }),
        body,
      ]),
    );
    const reply = await peer.next();
    expect(reply.header).to.include({ msgId: 4, error: Errno.E2BIG });
    expect(log.lines.map((l) => l.msg).join()).to.contain('above the limit');
    await expectServing();
  });

  it('answers an unknown command with ENOSYS', async () => {
    await expectError(99, Buffer.alloc(8), Errno.ENOSYS, 'unknown command 99');
  });

  it('answers a command with too short a payload with EINVAL', async () => {
    await expectError(Command.DMA_MAP, Buffer.alloc(20), Errno.EINVAL, 'payload 20 bytes, need 32');
    await expectError(Command.DEVICE_GET_REGION_INFO, Buffer.alloc(0), Errno.EINVAL, 'need 32');
  });

  it('refuses the wrong number of fds and closes every one of them', async () => {
    const baseline = openFdCount();
    const a = EventFd.create();
    const b = EventFd.create();
    await expectError(Command.DMA_MAP, dmaMap(0x1000n, 0x1000n), Errno.EINVAL, '2 fds, at most 1', [
      a.fd,
      b.fd,
    ]);
    await expectError(Command.DEVICE_GET_INFO, getInfo(), Errno.EINVAL, '1 fds, at most 0', [a.fd]);
    const set = IrqSet.encode({ argsz: 20, flags: 4 | 32, index: 2, start: 0, count: 3 });
    await expectError(Command.DEVICE_SET_IRQS, set, Errno.EINVAL, '2 fds for 3 vectors', [a.fd, b.fd]);
    const bool = IrqSet.encode({ argsz: 21, flags: 2 | 32, index: 2, start: 0, count: 1 });
    await expectError(
      Command.DEVICE_SET_IRQS,
      Buffer.concat([bool, Buffer.from([1])]),
      Errno.EINVAL,
      'without DATA_EVENTFD',
      [a.fd],
    );
    a.close();
    b.close();
    await until(() => openFdCount() === baseline, 'the server to close the fds it refused');
  });

  it('refuses zero-sized, wrapping and overlapping DMA maps', async () => {
    await expectError(Command.DMA_MAP, dmaMap(0x1000n, 0n), Errno.EINVAL, 'size 0');
    await expectError(Command.DMA_MAP, dmaMap(0xffff_ffff_ffff_f000n, 0x2000n), Errno.EINVAL, 'wraps around');
    await expectError(Command.DMA_MAP, dmaMap(0x1000n, 0x1000n, 0x10), Errno.EINVAL, 'unknown flags');
    peer.send(5, Command.DMA_MAP, dmaMap(0x10000n, 0x10000n));
    expect((await peer.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    await expectError(Command.DMA_MAP, dmaMap(0x1f000n, 0x2000n), Errno.EEXIST, 'overlaps');
    await expectError(Command.DMA_MAP, dmaMap(0x10000n, 0x10000n), Errno.EEXIST, 'overlaps');
    expect(server.dma.regions).to.have.length(1);
  });

  it('refuses an unmap that would split a mapping, and a zero-sized one', async () => {
    peer.send(5, Command.DMA_MAP, dmaMap(0x10000n, 0x10000n));
    expect((await peer.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    const unmap = (address: bigint, size: bigint, flags = 0) =>
      DmaUnmap.encode({ argsz: 24, flags, address, size });
    await expectError(Command.DMA_UNMAP, unmap(0x18000n, 0x10000n), Errno.EINVAL, 'would split');
    await expectError(Command.DMA_UNMAP, unmap(0x0n, 0x11000n), Errno.EINVAL, 'would split');
    await expectError(Command.DMA_UNMAP, unmap(0x10000n, 0n), Errno.EINVAL, 'size 0');
    await expectError(Command.DMA_UNMAP, unmap(1n, 0n, 2), Errno.EINVAL, 'ALL needs');
    await expectError(Command.DMA_UNMAP, unmap(0x10000n, 0x10000n, 1), Errno.ENOTSUP, 'dirty page tracking');
    expect(server.dma.regions).to.have.length(1);
  });

  it('refuses region accesses outside a region, with bad sizes, or to a missing region', async () => {
    await expectError(Command.REGION_READ, access(0, 0xffcn, 8), Errno.EINVAL, 'outside region 0');
    await expectError(
      Command.REGION_READ,
      access(0, 0xffff_ffff_ffff_fff0n, 0x20),
      Errno.EINVAL,
      'outside region 0',
    );
    await expectError(Command.REGION_READ, access(0, 0n, 2 << 20), Errno.EINVAL, 'above 1048576');
    await expectError(Command.REGION_READ, access(42, 0n, 4), Errno.EINVAL, 'no region 42');
    await expectError(Command.REGION_READ, access(1, 0n, 4), Errno.EINVAL, 'not readable');
    const short = Buffer.concat([access(0, 0n, 8), Buffer.alloc(4)]);
    await expectError(Command.REGION_WRITE, short, Errno.EINVAL, 'count 8 but 4 data bytes');
    await expectError(
      Command.REGION_WRITE,
      Buffer.concat([access(7, 4095n, 2), Buffer.alloc(2)]),
      Errno.EINVAL,
      'outside region 7',
    );
    expect(dev.writes).to.have.length(0);
  });

  it('refuses a bad region info index and bad IRQ requests', async () => {
    await expectError(
      Command.DEVICE_GET_REGION_INFO,
      RegionInfo.encode({ argsz: 32, index: 9 }),
      Errno.EINVAL,
      'no region 9',
    );
    await expectError(
      Command.DEVICE_GET_REGION_INFO,
      RegionInfo.encode({ argsz: 8, index: 0 }),
      Errno.EINVAL,
      'argsz 8',
    );
    const irq = (flags: number, index: number, start: number, count: number) =>
      IrqSet.encode({ argsz: 20, flags, index, start, count });
    await expectError(Command.DEVICE_SET_IRQS, irq(1 | 32, 9, 0, 1), Errno.EINVAL, 'no such IRQ index');
    await expectError(Command.DEVICE_SET_IRQS, irq(1 | 2 | 32, 2, 0, 1), Errno.EINVAL, 'exactly one DATA_');
    await expectError(Command.DEVICE_SET_IRQS, irq(1 | 8 | 16, 2, 0, 1), Errno.EINVAL, 'exactly one ACTION_');
    await expectError(Command.DEVICE_SET_IRQS, irq(1 | 32, 2, 3, 2), Errno.EINVAL, 'outside the 4');
    await expectError(Command.DEVICE_SET_IRQS, irq(1 | 8, 3, 0, 1), Errno.EINVAL, 'ERR and REQ only take');
  });

  it('drops a reply to an unknown message id, logs it, and keeps serving', async () => {
    peer.send(1234, Command.DMA_READ, Buffer.alloc(16), [], HeaderFlag.TYPE_REPLY);
    await expectServing();
    expect(log.lines.map((l) => l.msg).join()).to.contain('reply to an unknown message id');
  });

  it('refuses commands before VERSION and a second VERSION', async () => {
    const fresh = new RawPeer(server.path);
    // A second client is refused while the first is connected.
    await until(() => fresh.closed, 'the second client to be refused');
    peer.close();
    await until(() => server.client === undefined, 'disconnect');
    const early = new RawPeer(server.path);
    early.send(1, Command.DEVICE_GET_INFO, getInfo());
    expect((await early.next()).header.error).to.equal(Errno.EINVAL);
    early.send(2, Command.VERSION, Version.encode({ major: 0, minor: 0 }));
    expect((await early.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    early.send(3, Command.VERSION, Version.encode({ major: 0, minor: 0 }));
    expect((await early.next()).header.error).to.equal(Errno.EINVAL);
    early.close();
  });

  it('refuses a VERSION with another major or malformed capabilities', async () => {
    peer.close();
    await until(() => server.client === undefined, 'disconnect');
    for (const [payload, errno] of [
      [Version.encode({ major: 1, minor: 0 }), Errno.ENOTSUP],
      [
        Buffer.concat([Version.encode({ major: 0, minor: 0 }), Buffer.from('{"capabilities":')]),
        Errno.EINVAL,
      ],
      [
        Buffer.concat([
          Version.encode({ major: 0, minor: 0 }),
          Buffer.from('{"capabilities":{"max_msg_fds":-1}}\0'),
        ]),
        Errno.EINVAL,
      ],
    ] as const) {
      const p = new RawPeer(server.path);
      p.send(1, Command.VERSION, payload);
      expect((await p.next()).header.error).to.equal(errno);
      p.close();
      await until(() => p.closed, 'close');
    }
  });

  it('sends no reply to a NO_REPLY command, even when it fails, but logs the failure', async () => {
    peer.send(
      8,
      Command.REGION_WRITE,
      Buffer.concat([access(0, 0x10000n, 4), Buffer.alloc(4)]),
      [],
      HeaderFlag.NO_REPLY,
    );
    expect(await peer.silent()).to.equal(true);
    expect(log.lines.map((l) => l.msg).join()).to.contain('outside region 0');
    await expectServing();
  });

  it('survives a device handler that throws', async () => {
    dev.spec.regions![0]!.read = () => {
      throw new Error('device bug');
    };
    await expectError(Command.REGION_READ, access(0, 0n, 4), Errno.EINVAL, 'device bug');
  });

  it('releases DMA mappings and IRQ fds of a client that disconnects mid-message', async () => {
    peer.close();
    await until(() => server.client === undefined, 'disconnect');
    const baseline = openFdCount();
    const p = await RawPeer.negotiated(server.path);
    const fd = memfdCreate('emu-test-midmsg', 0x10000);
    p.send(2, Command.DMA_MAP, dmaMap(0x0n, 0x10000n), [fd]);
    await p.next();
    const ev = EventFd.create();
    p.send(
      3,
      Command.DEVICE_SET_IRQS,
      IrqSet.encode({ argsz: 20, flags: 4 | 32, index: 2, start: 0, count: 1 }),
      [ev.fd],
    );
    await p.next();
    closeFd(fd);
    ev.close();
    expect(server.dma.regions).to.have.length(1);
    // Half a message, then gone.
    p.sendRaw(
      Buffer.concat([
        Header.encode({ msgId: 4, command: Command.REGION_WRITE, size: 100 }),
        Buffer.alloc(20),
      ]),
    );
    p.close();
    await until(() => server.client === undefined, 'disconnect');
    expect(server.dma.regions).to.have.length(0);
    expect(server.irqs.enabled(2, 0)).to.equal(false);
    await until(() => openFdCount() === baseline, 'every fd to be released');
    const next = await VfioUserClient.connect(server.path);
    expect((await next.getDeviceInfo()).numRegions).to.equal(9);
    next.close();
  });
});
