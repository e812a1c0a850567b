import { closeFd, EventFd, IavfVectors, MappedMemory, memfdCreate, vfioUserWire } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, HEADER_SIZE, HeaderFlag, IrqIndex } from '../protocol/constants.js';
import { RegionAccess, Version } from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { serverPerTest } from './test-device.fixture.js';

describe('register traps answered by the socket thread', () => {
  const t = serverPerTest();
  let client: VfioUserClient;
  afterEach(() => client?.close());

  it('uses the wire facts @emu/vfio-user defines', () => {
    expect(vfioUserWire).to.deep.equal({
      headerSize: HEADER_SIZE,
      regionRead: Command.REGION_READ,
      regionWrite: Command.REGION_WRITE,
      typeMask: HeaderFlag.TYPE_MASK,
      typeCommand: HeaderFlag.TYPE_COMMAND,
      typeReply: HeaderFlag.TYPE_REPLY,
      noReply: HeaderFlag.NO_REPLY,
      regionAccessSize: RegionAccess.size,
      // The largest trapped access: a header, its region access and 8 bytes.
      maxTrapMessage: HEADER_SIZE + RegionAccess.size + 8,
    });
  });

  it('answers accesses inside mmap-able areas from their memory, without the region handlers', async () => {
    const server = t.serve();
    const bar2 = Buffer.from(t.dev.bar2.buffer);
    const handled: string[] = [];
    const region = t.dev.spec.regions![2]!;
    const { read, write } = region;
    region.read = (o, n) => {
      handled.push(`read ${o.toString(16)}`);
      return read!(o, n);
    };
    region.write = (o, d) => {
      handled.push(`write ${o.toString(16)}`);
      write!(o, d);
    };
    client = await VfioUserClient.connect(server.path);
    bar2.writeUInt32LE(0x12345678, 0x1004);
    expect((await client.regionRead(2, 0x1004, 4)).readUInt32LE(0)).to.equal(0x12345678);
    await client.regionWrite(2, 0x3ff8, Buffer.from('0102030405060708', 'hex'));
    expect(bar2.subarray(0x3ff8, 0x4000).toString('hex')).to.equal('0102030405060708');
    await client.regionWrite(2, 0x2000, Buffer.from([9, 9]), { posted: true });
    expect([...(await client.regionRead(2, 0x2000, 2))]).to.deep.equal([9, 9]);
    expect(handled, 'no handler ran').to.deep.equal([]);
    // Outside the areas, wider than 8 bytes, or misaligned: the handlers, as always.
    await client.regionRead(2, 0x0ffc, 4);
    await client.regionRead(2, 0x1000, 16);
    await client.regionWrite(2, 0x1001, Buffer.from([1, 2]));
    expect(handled).to.deep.equal(['read ffc', 'read 1000', 'write 1001']);
    const stats = server.stats;
    expect(stats.trapped).to.equal(4);
    expect(stats.commands.REGION_READ).to.equal(4);
    expect(stats.commands.REGION_WRITE).to.equal(3);
  });

  it('answers hot areas of a trapped BAR: memory not offered to map, and a native register block', async () => {
    // BAR0 has handlers only (nothing to mmap); it declares 8 bytes of memory at 0x40 and two
    // VFINT_DYN_CTLN1-style registers at 0x100, both answered by the socket thread.
    const fd = memfdCreate('emu-test-hot', 4096);
    const page = MappedMemory.map(fd, 0, 4096);
    const vectors = new IavfVectors({ count: 3, manualClock: true });
    const region = t.dev.spec.regions![0]!;
    region.hot = [
      { offset: 0x40, size: 8, fd, fileOffset: 0 },
      { offset: 0x100, size: 8, registers: vectors },
    ];
    const server = t.serve();
    client = await VfioUserClient.connect(server.path);
    const irq = [EventFd.create(), EventFd.create(), EventFd.create()];
    try {
      await client.setIrqEventfds('msix', 0, irq);
      vectors.setLines(server.irqs.lines(IrqIndex.MSIX)!);
      await client.regionWrite(0, 0x44, Buffer.from([1, 2, 3, 4]));
      expect([...new Uint8Array(page.buffer, 4, 4)], 'the write landed in the memory').to.deep.equal([
        1, 2, 3, 4,
      ]);
      new Uint32Array(page.buffer)[0] = 0xcafe;
      expect((await client.regionRead(0, 0x40, 4)).readUInt32LE(0)).to.equal(0xcafe);
      // A cause on vector 2 while it is disarmed waits; the client's re-arm of VFINT_DYN_CTLN1(1), a
      // posted write as QEMU sends it, fires it from the socket thread.
      vectors.raise(2);
      expect(irq[2].read()).to.equal(null);
      const INTENA = 1;
      await client.regionWrite(0, 0x104, Buffer.from([INTENA, 0, 0, 0]), { posted: true });
      expect(await irq[2].wait(2000)).to.equal(1n);
      expect(vectors.read(2) & INTENA, 'automasked after firing').to.equal(0);
      expect((await client.regionRead(0, 0x100, 4)).readUInt32LE(0)).to.equal(vectors.read(1));
      expect(t.dev.writes, 'no handler ran').to.deep.equal([]);
      // An access the block declines (2 bytes) goes to the handler, as does anything outside the areas.
      await client.regionWrite(0, 0x100, Buffer.from([1, 0]));
      await client.regionWrite(0, 0x48, Buffer.from([5, 5, 5, 5]));
      expect(t.dev.writes.map((w) => w.offset)).to.deep.equal([0x100, 0x48]);
      expect(server.stats.trapped).to.equal(4);
      expect(server.stats.irqsTriggered, 'fired by native code, counted by the server').to.equal(1);
    } finally {
      vectors.close();
      for (const e of irq) e.close();
      page.unmap();
      closeFd(fd);
    }
  });

  it('refuses hot areas outside the region or with a bad fd', () => {
    const region = t.dev.spec.regions![0]!;
    region.hot = [{ offset: 0xffc, size: 8, fd: 0 }];
    expect(() => t.serve()).to.throw(TypeError, /hot area \[4092, \+8\) must be inside the region/);
    region.hot = [{ offset: 0, size: 4, fd: -1 }];
    expect(() => t.serve()).to.throw(TypeError, /hot area fd -1 is invalid/);
  });

  it('leaves config space and trapped BARs to JavaScript', async () => {
    const server = t.serve();
    client = await VfioUserClient.connect(server.path);
    await client.regionRead(7, 0, 4);
    await client.regionWrite(0, 0x20, Buffer.from([1, 2, 3, 4]));
    expect(t.dev.writes.map((w) => w.offset)).to.deep.equal([0x20]);
    expect(server.stats.trapped).to.equal(0);
  });

  it('serves a new client from the same memory after the first one went away', async () => {
    const server = t.serve();
    client = await VfioUserClient.connect(server.path);
    await client.regionWrite(2, 0x1010, Buffer.from([7, 7, 7, 7]));
    client.close();
    await new Promise((r) => setTimeout(r, 20));
    client = await VfioUserClient.connect(server.path);
    expect([...(await client.regionRead(2, 0x1010, 4))]).to.deep.equal([7, 7, 7, 7]);
    expect(server.stats.trapped).to.equal(2);
  });

  it('takes a client that connects right after the last one hung up', async () => {
    const server = t.serve();
    for (let i = 0; i < 20; i++) {
      const p = new RawPeer(server.path);
      p.send(1, Command.VERSION, Version.encode({ major: 0, minor: 0 }));
      expect((await p.next()).header.error).to.equal(0);
      p.close();
    }
    expect(server.stats.connections).to.equal(20);
  });
});
