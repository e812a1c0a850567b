/**
 * The second driver, emu_gpio, written only against @emu/emudev, served by the `emu` command to a QEMU
 * guest that drives it through Linux VFIO (emu-vfio-probe): identity, registers, an interrupt.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPIO_ID, GPIO_PCI_ID } from '@emu/example-gpio';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment } from '@emu/guest';
import { expect } from 'chai';
import { EmuProcess } from './emu-process.js';

const BDF = '0000:00:02.0';
const SCRIPT = `
D=/sys/bus/pci/devices/${BDF}
echo "id vendor=$(cat $D/vendor) device=$(cat $D/device) class=$(cat $D/class)"
emu-vfio-probe batch ${BDF} \\
  'read bar0 0x0 4' 'read bar0 0x4 4' \\
  'write bar0 0x10 4 1' 'write bar0 0x14 4 0xff' 'irq-on msix 0' \\
  'write bar0 0xc 4 0x5a' 'irq-wait msix 10000' \\
  'read bar0 0x8 4' 'read bar0 0x18 4' 'write bar0 0x18 4 0x5a' 'read bar0 0x1c 4'
`;

const value = (out: string, offset: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('read ') && l.includes(`offset=${offset} `))
    .map((l) => l.match(/value=(\S+)/)![1]);

describe('emu serving emu_gpio to a QEMU guest', function () {
  this.timeout(300_000);
  let dir: string;
  let emu: EmuProcess;
  let result: BootGuestResult;
  let sock: string;

  before(async function () {
    this.timeout(1_200_000);
    await ensureGuestEnvironment();
    dir = mkdtempSync(join(tmpdir(), 'emu-gpio-e2e-'));
    sock = join(dir, 'gpio0.sock');
    emu = new EmuProcess(['--vdev', `emu_gpio0,path=${sock},lines=8`]);
    await emu.waitFor(/qemu: -device/);
    result = await bootGuest({ sockets: [sock], modules: ['vfio-pci'], script: SCRIPT });
  });

  after(async () => {
    await emu?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints the QEMU -device argument for the socket', () => {
    expect(emu.stdout).to.contain(
      `-device '{"driver":"vfio-user-pci","socket":{"path":"${sock}","type":"unix"}}'`,
    );
  });

  it("shows the driver's PCI identity in the guest", () => {
    expect(result.exitCode, result.console.slice(-3000)).to.equal(0);
    expect(result.output).to.contain(
      `id vendor=0x${GPIO_PCI_ID.vendorId.toString(16)} device=0x${GPIO_PCI_ID.deviceId.toString(16)} class=0x0${GPIO_PCI_ID.classCode.toString(16)}`,
    );
  });

  it('answers its registers: ID and the configured number of lines', () => {
    expect(value(result.output, '0x0')).to.deep.equal([`0x${GPIO_ID.toString(16)}`]);
    expect(value(result.output, '0x4')).to.deep.equal(['0x8']);
  });

  it('raises MSI-X in the guest when an enabled line changes (loopback), latching it in IRQ_STATUS', () => {
    expect(result.output).to.match(/msix vector=0 status=fired/);
    expect(value(result.output, '0x8')).to.deep.equal(['0x5a']);
    expect(value(result.output, '0x18')).to.deep.equal(['0x5a']);
    expect(value(result.output, '0x1c')).to.deep.equal(['0x1']);
  });

  it('exits 0 on SIGINT and removes its socket', async () => {
    expect(await emu.stop()).to.equal(0);
    expect(existsSync(sock)).to.equal(false);
    expect(emu.stderr).to.not.match(/error/i);
  });
});
