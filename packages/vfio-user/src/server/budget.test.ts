/**
 * The per-client budget: what one client may make the process hold, refused past its share with the
 * resource's errno and one log line, shared with the devices added later, released when it goes.
 */
import { closeFd, EventFd, memfdCreate } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag } from '../protocol/constants.js';
import { DmaAccess, DmaMap, Header, IrqSet, Version } from '../protocol/messages.js';
import { BudgetPool, clientPools, processBudgetPool, readProcessLimits } from './budget.js';
import { RawPeer } from './raw-peer.fixture.js';
import { VfioUserServer } from './server.js';
import { makeTestDevice, type TestDevice } from './test-device.fixture.js';
import { captureLogger, mappingsOf, openFdCount, tempDir, until } from './test-env.fixture.js';

const map = (address: bigint, size = 0x1000n) => DmaMap.encode({ argsz: 32, flags: 3, address, size });

describe('the per-client budget', () => {
  let dir: ReturnType<typeof tempDir>;
  const devices: TestDevice[] = [];
  const servers: VfioUserServer[] = [];
  let log: ReturnType<typeof captureLogger>;
  const fds: number[] = [];

  function serve(
    name: string,
    options: ConstructorParameters<typeof VfioUserServer>[1] extends infer O ? Partial<O> : never = {},
  ) {
    const dev = makeTestDevice();
    devices.push(dev);
    const server = new VfioUserServer(dev.spec, {
      path: dir.path(name),
      logger: log.logger,
      ...options,
    }).listen();
    servers.push(server);
    return server;
  }
  const memfd = (name: string, size: number) => {
    const fd = memfdCreate(name, size);
    fds.push(fd);
    return fd;
  };

  beforeEach(() => {
    dir = tempDir();
    log = captureLogger();
  });
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
    for (const d of devices.splice(0)) d.dispose();
    for (const fd of fds.splice(0)) closeFd(fd);
    dir.cleanup();
  });

  it('derives the pools from the process limits, keeping a reserve for emu itself', () => {
    const pools = clientPools({
      maxMapCount: 65530,
      maxOpenFiles: 20000,
      addressSpace: 2 ** 47,
      heapBytes: 4 * 2 ** 30,
    });
    expect(pools).to.deep.equal({
      memoryMaps: 65530 - 16382,
      fds: 15000,
      mappedBytes: 2 ** 46,
      dmaMaps: 2 * 1024 * 1024,
    });
    expect(
      clientPools({ maxMapCount: 4000, maxOpenFiles: 512, addressSpace: 2 ** 47, heapBytes: 1 << 30 }),
    ).to.include({
      memoryMaps: 0,
      fds: 0,
    });
    const real = readProcessLimits();
    expect(real.maxMapCount).to.be.above(0);
    expect(real.maxOpenFiles).to.be.above(0);
  });

  it('refuses 65535 DMA maps with an fd past the share of vm.max_map_count; the process lives, the other device is served, all is released when the client goes', async function () {
    this.timeout(120_000);
    const a = serve('a.sock');
    const b = serve('b.sock');
    const pool = processBudgetPool();
    const share = pool.share('memoryMaps');
    expect(share, 'two devices share the maps left after the reserve').to.be.at.most(
      Math.floor(clientPools(readProcessLimits()).memoryMaps / 2),
    );
    const client = await VfioUserClient.connect(a.path, { logger: log.logger });
    expect(client.server.capabilities.maxDmaMaps, 'what VERSION advertised').to.equal(Math.min(65535, share));
    const fd = memfd('emu-test-budget-maps', 0x1000);
    const memory = new Uint8Array(0x1000);
    let mapped = 0;
    const refusals = new Map<string, number>();
    for (let i = 0; i < 65535; i += 512) {
      const batch = [];
      for (let j = i; j < Math.min(65535, i + 512); j++) {
        batch.push(
          client.dmaMap({ address: 0x100_0000_0000n + BigInt(j) * 0x1000n, size: 0x1000n, fd, memory }).then(
            () => mapped++,
            (e: Error) => {
              const code = (e as { code?: string }).code ?? e.message;
              refusals.set(code, (refusals.get(code) ?? 0) + 1);
            },
          ),
        );
      }
      await Promise.all(batch);
    }
    expect(mapped).to.equal(share);
    expect(Object.fromEntries(refusals)).to.deep.equal({ ENOSPC: 65535 - share });
    expect(mappingsOf('emu-test-budget-maps')).to.equal(share);
    const warnings = log.lines.filter((l) => l.msg.includes('client refused'));
    expect(warnings, 'one log line for the client').to.have.length(1);
    expect(warnings[0].msg).to.contain(`memory maps (DMA maps with an fd): the client holds ${share}`);
    expect(a.stats.budget.memoryMaps).to.deep.equal({ used: share, limit: share, refused: 65535 - share });
    expect(a.stats.budget.mappedBytes.used).to.equal(share * 0x1000);
    // The other device serves its own client, memory maps included.
    const other = await VfioUserClient.connect(b.path, { logger: log.logger });
    await other.dmaMap({ address: 0n, size: 0x1000n, fd, memory });
    expect((await other.getDeviceInfo()).numRegions).to.equal(9);
    other.close();
    client.close();
    await until(() => a.dma.size === 0 && b.dma.size === 0, 'the maps to go', 20_000);
    expect(mappingsOf('emu-test-budget-maps')).to.equal(0);
    expect(a.stats.budget.memoryMaps.used).to.equal(0);
    expect(a.stats.budget.dmaMaps.used).to.equal(0);
    expect(a.stats.budget.mappedBytes.used).to.equal(0);
  });

  it('shares the pools with a device added later: a client over its new share keeps what it has, gets no more', async () => {
    const pool = new BudgetPool({ memoryMaps: 100, fds: 1000, mappedBytes: 1 << 30, dmaMaps: 1000 });
    const a = serve('a.sock', { budgetPool: pool });
    const peerA = await RawPeer.negotiated(a.path);
    const fd = memfd('emu-test-budget-share', 0x1000);
    const mapA = async (i: number) => {
      peerA.send(10, Command.DMA_MAP, map(BigInt(i + 1) * 0x1000n), [fd]);
      return (await peerA.next()).header.error;
    };
    for (let i = 0; i < 80; i++) expect(await mapA(i)).to.equal(0);
    const b = serve('b.sock', { budgetPool: pool });
    expect(pool.share('memoryMaps')).to.equal(50);
    expect(await mapA(80), 'over its new share').to.equal(Errno.ENOSPC);
    expect(a.dma.size).to.equal(80);
    // The new device's client gets what the pool has left (20), not its share (50).
    const peerB = await RawPeer.negotiated(b.path);
    let gotB = 0;
    for (let i = 0; i < 50; i++) {
      peerB.send(11, Command.DMA_MAP, map(BigInt(i + 1) * 0x1000n), [fd]);
      if ((await peerB.next()).header.error === 0) gotB++;
    }
    expect(gotB).to.equal(20);
    expect(pool.used('memoryMaps')).to.equal(100);
    expect(log.lines.map((l) => l.msg).join('\n')).to.contain('the process has 0 memory maps');
    // Back under its share, A maps again.
    peerA.send(
      12,
      Command.DMA_UNMAP,
      Buffer.concat([
        Buffer.from([32, 0, 0, 0, 0, 0, 0, 0]),
        Buffer.alloc(8),
        Buffer.from([0, 0, 0x10, 0, 0, 0, 0, 0]),
        Buffer.from([0, 0, 0x28, 0, 0, 0, 0, 0]),
      ]),
    );
    expect((await peerA.next()).header.error).to.equal(0);
    expect(a.dma.size).to.be.below(50);
    expect(await mapA(200)).to.equal(0);
    peerA.close();
    peerB.close();
  });

  it("lowers the limit to the client's own max_dma_maps, and advertises it", async () => {
    const pool = new BudgetPool({ memoryMaps: 1000, fds: 1000, mappedBytes: 1 << 30, dmaMaps: 1000 });
    const a = serve('a.sock', { budgetPool: pool });
    const peer = new RawPeer(a.path);
    peer.send(
      1,
      Command.VERSION,
      Buffer.concat([
        Version.encode({ major: 0, minor: 0 }),
        Buffer.from('{"capabilities":{"max_dma_maps":3}}\0'),
      ]),
    );
    const reply = await peer.next();
    expect(reply.payload.subarray(Version.size).toString()).to.contain('"max_dma_maps":3');
    for (let i = 0; i < 4; i++) {
      peer.send(2, Command.DMA_MAP, map(BigInt(i) * 0x1000n));
      expect((await peer.next()).header.error).to.equal(i < 3 ? 0 : Errno.ENOSPC);
    }
    peer.close();
  });

  it('refuses eventfds past the fds budget, and closes them', async () => {
    const pool = new BudgetPool({ memoryMaps: 100, fds: 3, mappedBytes: 1 << 30, dmaMaps: 100 });
    const a = serve('a.sock', { budgetPool: pool });
    const peer = await RawPeer.negotiated(a.path);
    const events = Array.from({ length: 4 }, () => EventFd.create());
    const before = openFdCount();
    const set = (count: number) => IrqSet.encode({ argsz: 20, flags: 4 | 32, index: 2, start: 0, count });
    peer.send(
      3,
      Command.DEVICE_SET_IRQS,
      set(4),
      events.map((e) => e.fd),
    );
    expect((await peer.next()).header.error).to.equal(Errno.ENOSPC);
    await until(() => openFdCount() <= before, 'the refused eventfds to be closed');
    peer.send(
      4,
      Command.DEVICE_SET_IRQS,
      set(3),
      events.slice(0, 3).map((e) => e.fd),
    );
    expect((await peer.next()).header.error).to.equal(0);
    expect(a.stats.budget.fds).to.deep.include({ used: 3, limit: 3, refused: 1 });
    // Replacing them costs nothing more.
    peer.send(
      5,
      Command.DEVICE_SET_IRQS,
      set(3),
      events.slice(1, 4).map((e) => e.fd),
    );
    expect((await peer.next()).header.error).to.equal(0);
    for (const e of events) e.close();
    peer.close();
  });

  it('has at most 32 DMA requests in flight to a client that does not answer; the rest wait, and fail when it goes', async () => {
    const a = serve('a.sock', { requestTimeoutMs: 60_000 });
    const peer = await RawPeer.negotiated(a.path);
    peer.send(2, Command.DMA_MAP, map(0x10000n, 0x10000n));
    expect((await peer.next()).header.error).to.equal(0);
    devices[0].spec.config.write(4, Buffer.from([0x06, 0]));
    const reads = Array.from({ length: 100 }, (_, i) =>
      a.dmaRead(0x10000n + BigInt(i) * 16n, 16).catch((e: Error) => e),
    );
    const seen = [];
    for (let i = 0; i < 32; i++) seen.push(await peer.next());
    expect(await peer.silent(100)).to.equal(true);
    expect(a.stats.budget.dmaRequests).to.deep.include({ used: 32, limit: 32 });
    // One answered: one more goes out.
    const req = seen[0];
    const body = Buffer.concat([req.payload.subarray(0, DmaAccess.size), Buffer.alloc(16)]);
    peer.sendRaw(
      Buffer.concat([
        Header.encode({
          msgId: req.header.msgId,
          command: Command.DMA_READ,
          size: 16 + body.length,
          flags: HeaderFlag.TYPE_REPLY,
        }),
        body,
      ]),
    );
    expect((await peer.next()).header.command).to.equal(Command.DMA_READ);
    peer.close();
    const outcomes = await Promise.all(reads);
    expect(outcomes.filter((o) => Buffer.isBuffer(o))).to.have.length(1);
    expect(outcomes.filter((o) => o instanceof Error && /ENOTCONN|no client/.test(o.message))).to.have.length(
      99,
    );
    expect(a.stats.budget.dmaRequests.used).to.equal(0);
  });
});
