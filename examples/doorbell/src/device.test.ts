import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeFd, EventFd, MappedMemory, memfdCreate } from '@emu/native';
import { PciRegion, silentLogger, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { DmaStatus, DOORBELL_IDS, DoorbellDevice, MAGIC, Reg } from './device.js';

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

describe('doorbell example device', () => {
  let dir: string;
  let device: DoorbellDevice;
  let client: VfioUserClient;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'emu-doorbell-'));
    device = new DoorbellDevice({ path: join(dir, 'd.sock'), logger: silentLogger }).listen();
    client = await VfioUserClient.connect(device.server.path);
  });

  afterEach(() => {
    client.close();
    device.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows its identity and one MSI-X vector', async () => {
    const cfg = await client.regionRead(PciRegion.CONFIG, 0, 16);
    expect(cfg.readUInt16LE(0)).to.equal(DOORBELL_IDS.vendorId);
    expect(cfg.readUInt16LE(2)).to.equal(DOORBELL_IDS.deviceId);
    expect((await client.getIrqInfo('msix')).count).to.equal(1);
    expect((await client.getRegionInfo(0)).size).to.equal(0x1000n);
    expect((await client.getRegionInfo(2)).size).to.equal(0x1000n);
  });

  it('keeps SCRATCH and reads MAGIC', async () => {
    expect((await client.regionRead(0, Reg.MAGIC, 4)).readUInt32LE(0)).to.equal(MAGIC);
    await client.regionWrite(0, Reg.SCRATCH, u32(0xdeadbeef));
    expect((await client.regionRead(0, Reg.SCRATCH, 4)).readUInt32LE(0)).to.equal(0xdeadbeef);
  });

  it('rings MSI-X vector 0 when RING is written, and counts it', async () => {
    const ev = EventFd.create();
    await client.setIrqEventfds('msix', 0, [ev]);
    const fired = ev.wait(2000);
    await client.regionWrite(0, Reg.RING, u32(42), { posted: true });
    expect(await fired).to.equal(1n);
    const regs = await client.regionRead(0, 0, 0x18);
    expect(regs.readUInt32LE(Reg.LAST)).to.equal(42);
    expect(regs.readUInt32LE(Reg.RINGS)).to.equal(1);
    expect(regs.readUInt32LE(Reg.DELIVERED)).to.equal(1);
    ev.close();
  });

  it('counts a ring with no vector enabled as not delivered', async () => {
    await client.regionWrite(0, Reg.RING, u32(1));
    expect(device.stats).to.include({ rings: 1, delivered: 0 });
  });

  async function runDma(address: number, length: number): Promise<number> {
    const ev = EventFd.create();
    await client.setIrqEventfds('msix', 0, [ev]);
    await client.regionWrite(0, Reg.DMA_ADDR_LO, u32(address));
    await client.regionWrite(0, Reg.DMA_ADDR_HI, u32(0));
    await client.regionWrite(0, Reg.DMA_LEN, u32(length));
    const done = ev.wait(2000);
    await client.regionWrite(0, Reg.DMA_CMD, u32(1));
    await done;
    ev.close();
    return (await client.regionRead(0, Reg.DMA_STATUS, 4)).readUInt32LE(0);
  }

  for (const withFd of [true, false]) {
    it(`reads and writes guest memory by DMA ${withFd ? 'through an fd mapping' : 'through DMA messages'}`, async () => {
      const memory = new Uint8Array(0x2000);
      memory.set([1, 2, 3, 250], 0x100);
      if (withFd) {
        const fd = memfdCreate('emu-doorbell-ram', 0x2000);
        const mapped = MappedMemory.map(fd, 0, 0x2000);
        const view = new Uint8Array(mapped.buffer);
        view.set(memory);
        await client.dmaMap({ address: 0x10000n, size: 0x2000n, fd, memory: view });
        closeFd(fd);
        await client.regionWrite(PciRegion.CONFIG, 4, Buffer.from([0x06, 0]));
        expect(await runDma(0x10100, 4)).to.equal(DmaStatus.DONE);
        expect([...view.subarray(0x100, 0x104)]).to.deep.equal([254, 253, 252, 5]);
        mapped.unmap();
      } else {
        await client.dmaMap({ address: 0x10000n, size: 0x2000n, memory });
        await client.regionWrite(PciRegion.CONFIG, 4, Buffer.from([0x06, 0]));
        expect(await runDma(0x10100, 4)).to.equal(DmaStatus.DONE);
        expect([...memory.subarray(0x100, 0x104)]).to.deep.equal([254, 253, 252, 5]);
      }
      expect((await client.regionRead(0, Reg.DMA_SUM, 4)).readUInt32LE(0)).to.equal(256);
    });
  }

  it('fails DMA outside guest memory or without bus mastering, and keeps working', async () => {
    await client.dmaMap({ address: 0x10000n, size: 0x1000n, memory: new Uint8Array(0x1000) });
    expect(await runDma(0x10100, 4)).to.equal(DmaStatus.FAILED); // bus mastering still off
    await client.regionWrite(PciRegion.CONFIG, 4, Buffer.from([0x06, 0]));
    expect(await runDma(0x10ffe, 4)).to.equal(DmaStatus.FAILED); // runs past the mapping
    expect(await runDma(0x10000, 4)).to.equal(DmaStatus.DONE);
  });

  it('clears its registers on reset', async () => {
    await client.regionWrite(0, Reg.SCRATCH, u32(5));
    await client.reset();
    expect((await client.regionRead(0, Reg.SCRATCH, 4)).readUInt32LE(0)).to.equal(0);
  });
});
