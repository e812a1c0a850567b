import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EmuDevice, EmudevError, EmudevRegistry } from '@emu/emudev';
import { EventFd } from '@emu/native';
import { PciRegion, silentLogger, VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { GPIO_ID, GPIO_PCI_ID, GpioReg, gpioDriver, register } from './index.js';

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

describe('emu_gpio driver', () => {
  let dir: string;
  let registry: EmudevRegistry;
  let dev: EmuDevice;
  let client: VfioUserClient;
  const reg = async (offset: number) => (await client.regionRead(0, offset, 4)).readUInt32LE(0);

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'emu-gpio-'));
    registry = new EmudevRegistry();
    register(registry);
    register(registry); // idempotent
    dev = registry.allocate('emu_gpio0', 'emu_gpio', { path: join(dir, 'g.sock'), logger: silentLogger });
    await dev.configure({ lines: '8' });
    await dev.start();
    client = await VfioUserClient.connect(dev.path);
  });

  afterEach(async () => {
    client.close();
    await registry.release('emu_gpio0');
    rmSync(dir, { recursive: true, force: true });
  });

  it('is a PCI device with its identity, its registers and one MSI-X vector', async () => {
    const cfg = await client.regionRead(PciRegion.CONFIG, 0, 12);
    expect(cfg.readUInt16LE(0)).to.equal(GPIO_PCI_ID.vendorId);
    expect(cfg.readUInt16LE(2)).to.equal(GPIO_PCI_ID.deviceId);
    expect(await reg(GpioReg.ID)).to.equal(GPIO_ID);
    expect(await reg(GpioReg.LINES)).to.equal(8);
    expect((await client.getIrqInfo('msix')).count).to.equal(1);
  });

  it('interrupts when an enabled input changes, latching the lines until cleared', async () => {
    const ev = EventFd.create();
    await client.setIrqEventfds('msix', 0, [ev]);
    await client.regionWrite(0, GpioReg.IRQ_ENABLE, u32(0x0f));
    const fired = ev.wait(2000);
    dev.setAttr('inputs', 0x15);
    expect(await fired).to.equal(1n);
    expect(await reg(GpioReg.INPUT)).to.equal(0x15);
    expect(await reg(GpioReg.IRQ_STATUS)).to.equal(0x05); // line 4 changed too, but is not enabled
    await client.regionWrite(0, GpioReg.IRQ_STATUS, u32(0x01));
    expect(await reg(GpioReg.IRQ_STATUS)).to.equal(0x04);
    dev.setAttr('inputs', 0x15); // no change: no interrupt
    expect(ev.read()).to.equal(null);
    expect(dev.getAttr('interrupts')).to.equal(1);
    ev.close();
  });

  it('feeds outputs back to inputs in loopback, and masks to its lines', async () => {
    await client.regionWrite(0, GpioReg.LOOPBACK, u32(1));
    await client.regionWrite(0, GpioReg.OUTPUT, u32(0x1ff));
    expect(await reg(GpioReg.OUTPUT)).to.equal(0xff);
    expect(await reg(GpioReg.INPUT)).to.equal(0xff);
    expect(dev.getAttr('outputs')).to.equal(0xff);
  });

  it('refuses input levels beyond its lines and a bad configuration', async () => {
    expect(() => dev.setAttr('inputs', 0x100)).to.throw(EmudevError, '8 lines: at most 0xff');
    expect(() => dev.setAttr('outputs', 1)).to.throw(EmudevError, 'read-only');
    const other = registry.allocate('emu_gpio1', 'emu_gpio', {
      path: join(dir, 'h.sock'),
      logger: silentLogger,
    });
    const err = await other.configure({ lines: 33 }).catch((e) => e);
    expect(err.message).to.contain('lines');
    await registry.release('emu_gpio1');
  });

  it('goes back to power-on on reset, keeping the host-driven inputs', async () => {
    dev.setAttr('inputs', 3);
    await client.regionWrite(0, GpioReg.OUTPUT, u32(0x7));
    await client.reset();
    expect(await reg(GpioReg.OUTPUT)).to.equal(0);
    expect(await reg(GpioReg.INPUT)).to.equal(3);
  });

  it('passes its selftest', async () => {
    const result = await dev.selftest();
    expect(result.ok, JSON.stringify(result.checks)).to.equal(true);
    expect(result.checks.map((c) => c.name)).to.include('gpio id register');
    expect(gpioDriver.type).to.equal('gpio');
  });
});
