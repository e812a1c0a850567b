import { ftruncateSync, writeSync } from 'node:fs';
import { closeFd, EventFd, guardStats, memfdCreate } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag } from '../protocol/constants.js';
import { DmaMap } from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { serverPerTest } from './test-device.fixture.js';
import { until } from './test-env.fixture.js';

const GIB = 1n << 30n;
const dmaMap = (address: bigint, size: bigint, offset = 0n) =>
  DmaMap.encode({ argsz: 32, flags: 3, offset, address, size });

/** Memory a client hands over, and what it may do to it afterwards. */
describe('VfioUserServer and the memory a client maps', () => {
  const t = serverPerTest();
  const serve = t.serve;
  const fds: number[] = [];
  const memfd = (size: number | bigint, seal = false) => {
    const fd = memfdCreate('emu-test-client-memory', size, { seal });
    fds.push(fd);
    return fd;
  };
  afterEach(() => {
    for (const fd of fds.splice(0)) closeFd(fd);
  });

  async function expectMapError(peer: RawPeer, payload: Buffer, fd: number, errno: number, logged: string) {
    peer.send(7, Command.DMA_MAP, payload, [fd]);
    const reply = await peer.next();
    expect(reply.header).to.include({ msgId: 7, flags: HeaderFlag.TYPE_REPLY | HeaderFlag.ERROR });
    expect(reply.header.error, logged).to.equal(errno);
    expect(t.log.lines.map((l) => l.msg).join('\n')).to.contain(logged);
    expect(t.server.dma.size).to.equal(0);
  }

  it('refuses a DMA_MAP past the end of its fd, or of an fd that is not a memory file', async () => {
    serve();
    const peer = await RawPeer.negotiated(t.server.path);
    const fd = memfd(0x4000);
    await expectMapError(peer, dmaMap(0n, 0x8000n), fd, Errno.EINVAL, 'goes past its end');
    await expectMapError(peer, dmaMap(0n, 0x2000n, 0x3000n), fd, Errno.EINVAL, 'goes past its end');
    const ev = EventFd.create();
    await expectMapError(peer, dmaMap(0n, 0x1000n), ev.fd, Errno.EINVAL, 'not memory emu can use');
    ev.close();
    // The same fd within its size is fine.
    peer.send(8, Command.DMA_MAP, dmaMap(0n, 0x4000n), [fd]);
    expect((await peer.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    peer.close();
  });

  it('refuses unsealed memory when told to, and takes sealed memory', async () => {
    serve({ requireSealedMemory: true });
    const peer = await RawPeer.negotiated(t.server.path);
    await expectMapError(
      peer,
      dmaMap(0n, 0x4000n),
      memfd(0x4000),
      Errno.EPERM,
      'not sealed against shrinking',
    );
    peer.send(8, Command.DMA_MAP, dmaMap(0n, 0x4000n), [memfd(0x4000, true)]);
    expect((await peer.next()).header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    expect(t.server.dma.regions[0].sealed).to.equal(true);
    peer.close();
  });

  it('survives a client that shrinks mapped memory: the lost page reads zeros, the mapping is used no more, the fault is logged', async () => {
    serve();
    const client = await VfioUserClient.connect(t.server.path);
    const size = 0x10000;
    const fd = memfd(size);
    writeSync(fd, Buffer.alloc(size, 0x5a), 0, size, 0);
    await client.dmaMap({ address: 0x100000n, size: BigInt(size), fd });
    await client.setBusMaster();
    expect(t.log.lines.map((l) => l.msg).join('\n')).to.contain('not sealed against shrinking');
    const before = guardStats().faults;
    ftruncateSync(fd, 0x4000);
    // Page 8 is past the new end: without the guard, this read would kill the process.
    expect((await t.server.dmaRead(0x108000n, 16)).every((b) => b === 0)).to.equal(true);
    expect(guardStats().faults).to.equal(before + 1);
    // The client broke that memory: the device uses it no more, not even the pages still there.
    const refused = await t.server.dmaRead(0x100000n, 4).catch((e) => e as Error);
    expect(String(refused)).to.contain('vanished');
    expect(t.server.dma.native.lookup(0x100000n, 4n)).to.equal('miss');
    await until(() => t.server.stats.memoryFaults === 1, 'the fault to be reported', 3000);
    expect(t.log.lines.find((l) => l.level === 'error')?.msg).to.contain('client memory vanished');
    // Still serving.
    expect((await client.getDeviceInfo()).numRegions).to.equal(9);
    client.close();
  });

  it('maps client memory larger than one ArrayBuffer (6 GiB, sparse) and reaches all of it', async () => {
    serve();
    const client = await VfioUserClient.connect(t.server.path);
    const fd = memfd(6n * GIB);
    await client.dmaMap({ address: 0x1_0000_0000n, size: 6n * GIB, fd });
    await client.setBusMaster();
    const high = 0x1_0000_0000n + 5n * GIB + 0x123n;
    await t.server.dmaWrite(high, Buffer.from('far up'));
    expect((await t.server.dmaRead(high, 6)).toString()).to.equal('far up');
    expect(t.server.dma.view(high, 6).length).to.equal(6);
    expect(t.server.dma.native.lookup(high, 6n, 'write')).to.equal('ok');
    client.close();
    await until(() => t.server.dma.size === 0, 'the mapping to go');
  });

  it('holds the advertised 65535 DMA maps, found and unmapped one by one', async function () {
    // 131070 round trips; how fast the table is at that size is the DMA table benchmark's to say.
    this.timeout(30_000);
    serve();
    const client = await VfioUserClient.connect(t.server.path);
    const memory = new Uint8Array(4096);
    const count = 65535;
    const at = (i: number) => 0x10_0000_0000n + BigInt(i) * 0x2000n;
    // A vIOMMU guest maps page by page; requests in flight in batches, as QEMU's do.
    for (let i = 0; i < count; i += 256) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 256); j++) {
        batch.push(client.dmaMap({ address: at(j), size: 0x1000n, memory }));
      }
      await Promise.all(batch);
    }
    expect(t.server.dma.size).to.equal(count);
    expect(t.server.dma.find(at(40000) + 0x10n, 16)?.region.address).to.equal(at(40000));
    expect(t.server.dma.find(at(40000) + 0x1000n, 1), 'the gap after it').to.equal(undefined);
    for (let i = 0; i < count; i += 256) {
      const batch = [];
      for (let j = i; j < Math.min(count, i + 256); j++) batch.push(client.dmaUnmap(at(j), 0x1000n));
      await Promise.all(batch);
    }
    expect(t.server.dma.size).to.equal(0);
    client.close();
  });
});
