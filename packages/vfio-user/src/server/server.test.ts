import { closeFd, EventFd, MappedMemory, memfdCreate } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { DeviceFlag, Errno, IrqInfoFlag, PciRegion, RegionFlag } from '../protocol/constants.js';
import { VfioUserError } from '../protocol/errors.js';
import { VfioUserServer } from './server.js';
import {
  IDS,
  MSIX_VECTORS,
  makeTestDevice,
  REG_DOORBELL,
  REG_RESETS,
  type TestDevice,
} from './test-device.fixture.js';
import { captureLogger, mappingsOf, tempDir, tick, until } from './test-env.fixture.js';

describe('VfioUserServer with VfioUserClient over a real socket', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: TestDevice;
  let server: VfioUserServer;
  let client: VfioUserClient;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(async () => {
    dir = tempDir();
    dev = makeTestDevice();
    log = captureLogger();
    server = new VfioUserServer(dev.spec, { path: dir.path('dev.sock'), logger: log.logger }).listen();
    dev.attach(server);
    client = await VfioUserClient.connect(server.path);
  });

  afterEach(() => {
    client.close();
    server.close();
    dev.dispose();
    dir.cleanup();
  });

  it('negotiates version 0.2 (our client) and exchanges capabilities', () => {
    expect(client.server.version).to.deep.equal({ major: 0, minor: 2 });
    expect(client.server.capabilities).to.include({
      maxMsgFds: 16,
      maxDataXferSize: 1 << 20,
      writeMultiple: true,
    });
    expect(server.client?.capabilities.maxMsgFds).to.equal(16);
  });

  it('answers 0.0 to a client that asks for 0.0, as QEMU does', async () => {
    client.close();
    await until(() => server.client === undefined, 'disconnect');
    const old = await VfioUserClient.connect(server.path, { minor: 0 });
    expect(old.server.version).to.deep.equal({ major: 0, minor: 0 });
    old.close();
  });

  it('describes a PCI device with 9 regions and 5 IRQ indexes that can reset', async () => {
    const info = await client.getDeviceInfo();
    expect(info).to.include({ numRegions: 9, numIrqs: 5, pci: true, resettable: true });
    expect(info.flags).to.equal(DeviceFlag.PCI | DeviceFlag.RESET);
  });

  it('reports region sizes and flags from config space and the region table', async () => {
    const bar0 = await client.getRegionInfo(0);
    expect(bar0).to.include({
      size: 0x1000n,
      readable: true,
      writable: true,
      mmappable: false,
      fd: undefined,
    });
    const bar1 = await client.getRegionInfo(1);
    expect(bar1).to.include({ size: 0n, readable: false, writable: false });
    const cfg = await client.getRegionInfo(PciRegion.CONFIG);
    expect(cfg).to.include({ size: 4096n, readable: true, writable: true });
    const rom = await client.getRegionInfo(PciRegion.ROM);
    expect(rom.size).to.equal(0n);
  });

  it('sends the sparse mmap capability and the fd only when the buffer is large enough', async () => {
    const small = await client.request(5, Buffer.from(new Uint32Array([32, 0, 2, 0, 0, 0, 0, 0]).buffer));
    const argsz = small.payload.readUInt32LE(0);
    expect(argsz).to.equal(32 + 8 + 8 + 2 * 16);
    // No CAPS flag without the caps: QEMU rejects CAPS with cap_offset 0.
    expect(small.payload.readUInt32LE(4) & RegionFlag.CAPS).to.equal(0);
    expect(small.payload.length).to.equal(32);
    expect(small.fds).to.have.length(0);

    const bar2 = await client.getRegionInfo(2);
    expect(bar2.mmappable).to.equal(true);
    expect(bar2.areas).to.deep.equal([
      { offset: 0x1000n, size: 0x1000n },
      { offset: 0x2000n, size: 0x2000n },
    ]);
    expect(bar2.fd).to.be.a('number');
    // The areas map the device's memory: what the device writes, the client sees, and back.
    const maps = client.mapRegion(bar2);
    const area = new Uint8Array(maps[1].memory.buffer);
    new Uint8Array(dev.bar2.buffer)[0x2000 + 5] = 0xab;
    expect(area[5]).to.equal(0xab);
    area[6] = 0xcd;
    expect((await client.regionRead(2, 0x2006, 1))[0]).to.equal(0xcd);
    for (const m of maps) m.memory.unmap();
  });

  it('serves config space: identity, BAR sizing, capabilities', async () => {
    const head = await client.regionRead(PciRegion.CONFIG, 0, 64);
    expect(head.readUInt16LE(0)).to.equal(IDS.vendorId);
    expect(head.readUInt16LE(2)).to.equal(IDS.deviceId);
    expect(head.readUIntLE(9, 3)).to.equal(IDS.classCode);
    await client.regionWrite(PciRegion.CONFIG, 0x10, Buffer.from([0xff, 0xff, 0xff, 0xff]));
    expect((await client.regionRead(PciRegion.CONFIG, 0x10, 4)).readUInt32LE(0)).to.equal(0xfffff000);
    await client.regionWrite(PciRegion.CONFIG, 0x10, Buffer.from([0, 0, 0xe0, 0xfe]));
    expect(dev.spec.config.barAddress(0)).to.equal(0xfee00000n);
    const capPtr = (await client.regionRead(PciRegion.CONFIG, 0x34, 1))[0];
    expect(capPtr).to.be.at.least(0x40);
  });

  it('times each message JavaScript handles for onHandled, and survives an observer that throws', async () => {
    client.close();
    server.close();
    const seen: Array<[string, number]> = [];
    let throwing = false;
    server = new VfioUserServer(dev.spec, {
      path: dir.path('timed.sock'),
      logger: log.logger,
      onHandled: (command, seconds) => {
        seen.push([command, seconds]);
        if (throwing) throw new Error('observer broke');
      },
    }).listen();
    dev.attach(server);
    client = await VfioUserClient.connect(server.path);
    await client.regionRead(0, 0x20, 4);
    await client.regionRead(0, 0x5000, 4).catch(() => {}); // out of range: an error reply, timed too
    expect(seen.map(([c]) => c)).to.deep.equal(['VERSION', 'REGION_READ', 'REGION_READ']);
    for (const [, s] of seen) expect(s).to.be.within(0, 1);
    throwing = true;
    expect((await client.regionRead(0, 0x20, 4)).length).to.equal(4);
    await client.regionRead(0, 0x20, 4);
    expect(log.lines.filter((e) => e.msg.includes('onHandled failed'))).to.have.length(1);
  });

  it('reads and writes BAR registers, posted or not', async () => {
    await client.regionWrite(0, 0x20, Buffer.from('emu!'));
    expect((await client.regionRead(0, 0x20, 4)).toString()).to.equal('emu!');
    await client.regionWrite(0, 0x24, Buffer.from([1, 2]), { posted: true });
    // A posted write gets no reply; the next read is ordered after it.
    expect([...(await client.regionRead(0, 0x24, 2))]).to.deep.equal([1, 2]);
    expect(dev.writes.map((w) => w.offset)).to.deep.equal([0x20, 0x24]);
  });

  it('applies REGION_WRITE_MULTI writes in order', async () => {
    await client.regionWriteMulti([
      { region: 0, offset: 0x30, data: Buffer.from([1, 1, 1, 1]) },
      { region: 0, offset: 0x31, data: Buffer.from([2]) },
      { region: 2, offset: 0x10, data: Buffer.from('12345678') },
    ]);
    expect([...(await client.regionRead(0, 0x30, 4))]).to.deep.equal([1, 2, 1, 1]);
    expect((await client.regionRead(2, 0x10, 8)).toString()).to.equal('12345678');
  });

  it('reports IRQ counts from config space', async () => {
    const msix = await client.getIrqInfo('msix');
    expect(msix).to.include({ count: MSIX_VECTORS });
    expect(msix.flags & IrqInfoFlag.EVENTFD).to.equal(IrqInfoFlag.EVENTFD);
    expect((await client.getIrqInfo('intx')).count).to.equal(0);
    expect((await client.getIrqInfo('err')).count).to.equal(1);
    expect((await client.getIrqInfo('req')).count).to.equal(1);
  });

  it('raises MSI-X vectors through the eventfds the client handed over', async () => {
    const fds = Array.from({ length: MSIX_VECTORS }, () => EventFd.create());
    await client.setIrqEventfds('msix', 0, fds);
    const fired = fds[2].wait(2000);
    await client.regionWrite(0, REG_DOORBELL, Buffer.from([2, 0, 0, 0]));
    expect(await fired).to.equal(1n);
    await server.irqs.settled();
    expect(fds[0].read()).to.equal(null);
    expect(server.stats.irqsTriggered).to.equal(1);
    // De-assigned vectors no longer fire.
    await client.setIrqEventfds('msix', 2, [null]);
    expect(server.triggerIrq('msix', 2)).to.equal(false);
    await client.disableIrqs('msix');
    expect(server.triggerIrq('msix', 0)).to.equal(false);
    for (const f of fds) f.close();
  });

  it('holds masked vectors pending until unmasked', async () => {
    const fd = EventFd.create();
    await client.setIrqEventfds('msix', 1, [fd]);
    await client.irqAction('msix', 'mask', 1, 1);
    expect(server.triggerIrq('msix', 1)).to.equal(false);
    await server.irqs.settled();
    expect(fd.read()).to.equal(null);
    await client.irqAction('msix', 'unmask', 1, 1);
    await server.irqs.settled();
    expect(fd.read()).to.equal(1n);
    await client.irqAction('msix', 'trigger', 0, 2, [false, true]);
    await server.irqs.settled();
    expect(fd.read()).to.equal(1n);
    fd.close();
  });

  it('maps guest memory from a memfd and reaches it directly', async () => {
    const size = 1 << 20;
    const fd = memfdCreate('emu-test-guest', size);
    const guest = MappedMemory.map(fd, 0, size);
    const mine = new Uint8Array(guest.buffer);
    await client.dmaMap({ address: 0x100000n, size: BigInt(size), fd, memory: mine });
    closeFd(fd);
    expect(server.dma.regions).to.have.length(1);
    // No DMA until the guest enables bus mastering, as on a PCI bus.
    let refused: unknown;
    await server.dmaRead(0x100042n, 11).catch((err) => {
      refused = err;
    });
    expect(String(refused)).to.contain('Bus Master Enable is clear');
    await client.setBusMaster();
    expect(server.dma.regions[0].memory).to.not.equal(undefined);
    mine.set(Buffer.from('hello guest'), 0x42);
    expect((await server.dmaRead(0x100042n, 11)).toString()).to.equal('hello guest');
    await server.dmaWrite(0x100100n, Buffer.from('from device'));
    expect(Buffer.from(mine.subarray(0x100, 0x10b)).toString()).to.equal('from device');
    await client.dmaUnmap(0x100000n, BigInt(size));
    expect(server.dma.regions).to.have.length(0);
    guest.unmap();
  });

  it('reaches memory mapped without an fd through DMA_READ and DMA_WRITE messages', async () => {
    const memory = new Uint8Array(3 << 20); // bigger than one transfer: the server splits it
    memory.set(Buffer.from('no fd here'), 5);
    await client.dmaMap({ address: 0x4000_0000n, size: BigInt(memory.length), memory });
    expect(server.dma.regions[0].memory).to.equal(undefined);
    await client.setBusMaster();
    expect((await server.dmaRead(0x4000_0005n, 10)).toString()).to.equal('no fd here');
    const big = Buffer.alloc(memory.length - 16, 0x5a);
    await server.dmaWrite(0x4000_0010n, big);
    expect(memory[0x10]).to.equal(0x5a);
    expect(memory[memory.length - 1]).to.equal(0x5a);
    const back = await server.dmaRead(0x4000_0000n, memory.length);
    expect(back.subarray(5, 15).toString()).to.equal('no fd here');
    expect(server.stats.dmaWriteBytes).to.equal(big.length);
  });

  it('rejects device DMA outside the mapped memory without troubling the client', async () => {
    await client.dmaMap({ address: 0x1000n, size: 0x1000n, memory: new Uint8Array(0x1000), writable: false });
    let err: unknown;
    await server.dmaRead(0x1ff0n, 0x20).catch((e) => (err = e));
    expect(err).to.be.instanceOf(RangeError);
    err = undefined;
    await server.dmaWrite(0x1000n, Buffer.from([1])).catch((e) => (err = e));
    expect(err).to.be.instanceOf(RangeError);
    expect((await client.regionRead(0, 0, 4)).length).to.equal(4);
  });

  it('unmaps everything on DMA_UNMAP with the ALL flag', async () => {
    await client.dmaMap({ address: 0x1000n, size: 0x1000n, memory: new Uint8Array(0x1000) });
    await client.dmaMap({ address: 0x3000n, size: 0x1000n, memory: new Uint8Array(0x1000) });
    const unmapped: bigint[] = [];
    server.on('dma-unmap', (r) => unmapped.push(r.address));
    await client.dmaUnmapAll();
    expect(unmapped).to.deep.equal([0x1000n, 0x3000n]);
    expect(server.dma.regions).to.have.length(0);
  });

  it('unmaps, as Linux VFIO does, every mapping inside a window and nothing where nothing is mapped', async () => {
    for (const address of [0x1000n, 0x3000n, 0x8000n]) {
      await client.dmaMap({ address, size: 0x1000n, memory: new Uint8Array(0x1000) });
    }
    // QEMU with a vIOMMU unmaps whole windows, most of them empty.
    await client.dmaUnmap(0x4000_0000_00n, 0x4000_0000_00n);
    expect(server.dma.regions).to.have.length(3);
    await client.dmaUnmap(0x0n, 0x4000n);
    expect(server.dma.regions.map((r) => r.address)).to.deep.equal([0x8000n]);
  });

  it('resets the device and its config space on DEVICE_RESET', async () => {
    await client.regionWrite(PciRegion.CONFIG, 4, Buffer.from([0x06, 0]));
    expect(dev.spec.config.memoryEnabled).to.equal(true);
    let resets = 0;
    server.on('reset', () => resets++);
    await client.reset();
    expect(resets).to.equal(1);
    expect(dev.spec.config.memoryEnabled).to.equal(false);
    expect((await client.regionRead(0, REG_RESETS, 4)).readUInt32LE(0)).to.equal(1);
  });

  it('answers migration commands with a clean ENOTSUP', async () => {
    for (const command of [14, 16, 17, 18]) {
      const err = await client.request(command, Buffer.alloc(8)).catch((e) => e);
      expect(err).to.be.instanceOf(VfioUserError);
      expect((err as VfioUserError).errno).to.equal(Errno.ENOTSUP);
    }
    expect((await client.getDeviceInfo()).numRegions).to.equal(9);
  });

  it('answers GET_REGION_IO_FDS with an empty list', async () => {
    const r = await client.getRegionIoFds(0);
    expect(r.count).to.equal(0);
    expect(r.fds).to.have.length(0);
  });

  it('keeps serving while a client maps and unmaps memory in a loop, leaking no mappings', async () => {
    const fd = memfdCreate('emu-test-loop', 0x10000);
    for (let i = 0; i < 50; i++) {
      await client.dmaMap({ address: 0x10000n, size: 0x10000n, fd });
      await client.dmaUnmap(0x10000n, 0x10000n);
    }
    closeFd(fd);
    await tick();
    expect(mappingsOf('emu-test-loop')).to.equal(0);
  });
});
