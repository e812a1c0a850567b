import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventFd } from '@emu/native';
import { PciRegion, VfioUserClient, silentLogger } from '@emu/vfio-user';
import { expect } from 'chai';
import { DOORBELL_IDS, DoorbellDevice, MAGIC, Reg } from './device.js';

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

  it('clears its registers on reset', async () => {
    await client.regionWrite(0, Reg.SCRATCH, u32(5));
    await client.reset();
    expect((await client.regionRead(0, Reg.SCRATCH, 4)).readUInt32LE(0)).to.equal(0);
  });
});
