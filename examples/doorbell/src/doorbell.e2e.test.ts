/**
 * The doorbell device against the real peer: QEMU 11.1's vfio-user-pci, with a Linux 6.12 guest driving
 * the device through VFIO (emu-vfio-probe, from tools/guest). Needs root; `pnpm e2e`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BootGuestResult, bootGuest, ensureGuestEnvironment } from '@emu/guest';
import { consoleLogger, type DmaRegion } from '@emu/vfio-user';
import { expect } from 'chai';
import { DmaStatus, DOORBELL_IDS, DoorbellDevice, MAGIC } from './device.js';

const BDF = '0000:00:02.0';
const hex = (n: number) => `0x${n.toString(16)}`;

/** What the guest does: identity and BARs from sysfs, then register, MSI-X and DMA through VFIO. */
const SCRIPT = `
D=/sys/bus/pci/devices/${BDF}
echo "id vendor=$(cat $D/vendor) device=$(cat $D/device) class=$(cat $D/class)"
i=0
while read start end flags; do echo "resource index=$i start=$start end=$end"; i=$((i+1)); done < $D/resource
emu-vfio-probe batch ${BDF} \\
  'read bar0 0x0 4' 'write bar0 0x4 4 0x12345678' 'read bar0 0x4 4' \\
  'irq-on msix 0' 'write bar0 0x8 4 42' 'irq-wait msix 10000' 'read bar0 0xc 4' 'read bar0 0x14 4' \\
  'dma-map 0x100000 4096' 'dma-write 0x100000 4 0xfa030201' \\
  'write bar0 0x18 4 0x100000' 'write bar0 0x1c 4 0' 'write bar0 0x20 4 4' 'write bar0 0x24 4 1' \\
  'irq-wait msix 10000' 'read bar0 0x2c 4' 'read bar0 0x28 4' 'dma-read 0x100000 4'
`;

function explain(r: BootGuestResult): string {
  return `exit ${r.exitCode}, timedOut ${r.timedOut}\n--- output ---\n${r.output}\n--- console ---\n${r.console.slice(-4000)}\n--- qemu stderr ---\n${r.qemuStderr}`;
}

/** key=value pairs of the first output line starting with `prefix` and containing all of `having`. */
function line(output: string, prefix: string, ...having: string[]): Record<string, string> {
  const l = output.split('\n').find((x) => x.startsWith(`${prefix} `) && having.every((h) => x.includes(h)));
  if (!l) throw new Error(`no "${prefix} ${having.join(' ')}" line in:\n${output}`);
  return Object.fromEntries(
    l
      .split(' ')
      .slice(1)
      .map((kv) => kv.split('=') as [string, string]),
  );
}

for (const sharedMemory of [true, false]) {
  describe(`doorbell device in a QEMU guest (${sharedMemory ? 'memfd RAM: DMA through mmap' : 'plain RAM: DMA through messages'})`, function () {
    this.timeout(300_000);
    let dir: string;
    let device: DoorbellDevice;
    let result: BootGuestResult;
    const maps: DmaRegion[] = [];

    before(async function () {
      this.timeout(1_200_000);
      await ensureGuestEnvironment();
      dir = mkdtempSync(join(tmpdir(), 'emu-doorbell-e2e-'));
      device = new DoorbellDevice({
        path: join(dir, 'doorbell.sock'),
        logger: consoleLogger('warn', 'doorbell'),
      });
      device.server.on('dma-map', (r) => maps.push(r));
      device.listen();
      result = await bootGuest({
        sockets: [device.server.path],
        modules: ['vfio-pci'],
        script: SCRIPT,
        sharedMemory,
      });
    });

    after(() => {
      device?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('boots with the device and runs the guest script to the end', () => {
      expect(result.exitCode, explain(result)).to.equal(0);
      expect(result.devices).to.deep.equal([{ socket: device.server.path, bdf: BDF }]);
    });

    it("shows the device's vendor, device id and class in sysfs", () => {
      const id = line(result.output, 'id');
      expect(id).to.deep.equal({
        vendor: hex(DOORBELL_IDS.vendorId),
        device: hex(DOORBELL_IDS.deviceId),
        class: `0x${DOORBELL_IDS.classCode.toString(16).padStart(6, '0')}`,
      });
    });

    it('shows BAR0 and BAR2 with 4 KiB each and no other BAR', () => {
      const size = (i: number) => {
        const r = line(result.output, 'resource', `index=${i} `);
        return Number(BigInt(r.end) - BigInt(r.start)) + (BigInt(r.end) === 0n ? 0 : 1);
      };
      expect([0, 1, 2, 3, 4, 5].map(size)).to.deep.equal([0x1000, 0, 0x1000, 0, 0, 0]);
    });

    it('reads and writes BAR0 registers', () => {
      expect(line(result.output, 'read', 'offset=0x0 ').value).to.equal(hex(MAGIC));
      expect(line(result.output, 'read', 'offset=0x4 ').value).to.equal('0x12345678');
      expect(line(result.output, 'read', 'offset=0xc ').value).to.equal('0x2a');
    });

    it('delivers the MSI-X interrupt the device raises to the guest CPU', () => {
      const irq = line(result.output, 'msix', 'status=');
      expect(irq.status, explain(result)).to.equal('fired');
      expect(Number(irq.proc_interrupts)).to.be.at.least(1);
      expect(line(result.output, 'read', 'offset=0x14 ').value).to.equal('0x1');
    });

    it(`reads and writes guest memory by DMA (${sharedMemory ? 'mapped from the memfd' : 'DMA_READ/DMA_WRITE'})`, () => {
      expect(line(result.output, 'read', 'offset=0x2c ').value, explain(result)).to.equal(
        hex(DmaStatus.DONE),
      );
      expect(line(result.output, 'read', 'offset=0x28 ').value).to.equal(hex(1 + 2 + 3 + 0xfa));
      expect(line(result.output, 'dma-read').value).to.equal('0x5fcfdfe');
      const buffer = maps.find((r) => r.address <= 0x100000n && 0x100000n < r.address + r.size);
      expect(buffer, 'a DMA_MAP covering the guest buffer').to.not.equal(undefined);
      expect(buffer!.memory !== undefined).to.equal(sharedMemory);
      expect(device.server.stats.dmaReadBytes).to.be.at.least(4);
      expect(device.server.stats.dmaWriteBytes).to.be.at.least(4);
    });

    it('answered QEMU without a single error reply', () => {
      expect(device.server.stats.errors).to.deep.equal({});
      expect(device.server.stats.commands.VERSION).to.equal(1);
    });
  });
}
