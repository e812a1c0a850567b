/**
 * Boots real guests (QEMU TCG in the cached trixie chroot). Needs root; the first run builds the cache
 * (about a minute on a fast mirror, see README). Run with `pnpm e2e` in tools/guest.
 */
import { expect } from 'chai';
import { type BootGuestResult, bootGuest } from './boot.js';
import { ensureGuestEnvironment } from './setup.js';

function explain(r: BootGuestResult): string {
  return `exit ${r.exitCode}, qemu ${r.qemuExitStatus ?? r.qemuSignal}, timedOut ${r.timedOut}\n--- console ---\n${r.console.slice(-3000)}\n--- qemu stderr ---\n${r.qemuStderr}`;
}

describe('bootGuest (e2e)', function () {
  this.timeout(180_000);

  before(async function () {
    this.timeout(1_200_000);
    const env = await ensureGuestEnvironment();
    expect(env.manifest.kernel.release).to.match(/^6\.12\./);
    expect(env.manifest.qemu.version).to.match(/^11\.1\./);
  });

  it('boots a guest without devices and returns the script output', async () => {
    const lines: string[] = [];
    const r = await bootGuest({
      script: 'uname -r; cat /proc/cmdline; ls /sys/bus/pci/devices',
      kernelArgs: 'emu_test_marker=42',
      onConsole: (l) => lines.push(l),
    });
    expect(r.exitCode, explain(r)).to.equal(0);
    const out = r.output.split('\n');
    expect(out[0]).to.match(/^6\.12\.\d+\+deb13-amd64$/);
    expect(out[1]).to.contain('console=ttyS0').and.contain('emu_test_marker=42');
    expect(r.output).to.contain('0000:00:00.0');
    expect(r.output).not.to.contain('EMU_GUEST');
    expect(r.console).to.contain(r.output);
    expect(lines.join('\n')).to.contain('EMU_GUEST_BEGIN_');
    expect(r.iommu).to.equal(false);
    expect(r.timedOut).to.equal(false);
    expect(r.qemuExitStatus).to.equal(0);
    console.log(`      trivial guest: ${r.durationMs} ms`);
  });

  it('reports the script exit status', async () => {
    const r = await bootGuest({ script: 'echo before; exit 7' });
    expect(r.exitCode, explain(r)).to.equal(7);
    expect(r.output).to.equal('before\n');
  });

  it('loads vfio-pci with its dependencies (and modprobe works for them)', async () => {
    const r = await bootGuest({
      modules: ['vfio-pci'],
      script: [
        'lsmod',
        'modprobe vfio-pci && echo modprobe=ok',
        'test -d /sys/bus/pci/drivers/vfio-pci && echo driver=vfio-pci',
        'test -c /dev/vfio/vfio && echo dev=/dev/vfio/vfio',
        'cat /sys/module/vfio_iommu_type1/initstate',
        'test -e /sys/firmware/acpi/tables/DMAR && echo dmar=present',
      ].join('\n'),
    });
    expect(r.exitCode, explain(r)).to.equal(0);
    expect(r.output).to.match(/^vfio_pci\s/m);
    expect(r.output).to.match(/^vfio_pci_core\s/m);
    expect(r.output).to.match(/^vfio\s/m);
    expect(r.output).to.contain('modprobe=ok');
    expect(r.output).to.contain('driver=vfio-pci');
    expect(r.output).to.contain('dev=/dev/vfio/vfio');
    expect(r.output).to.contain('live');
    expect(r.output).to.contain('dmar=present');
    expect(r.iommu).to.equal(true);
    expect(r.modules.map((m) => m.name)).to.include.members([
      'vfio',
      'vfio_pci_core',
      'vfio_pci',
      'vfio_iommu_type1',
    ]);
    for (const m of r.modules) expect(m.status, `${m.name}: ${m.error}`).to.equal('ok');
  });

  // No vfio-user device yet: QEMU's own edu (MSI, INTx, DMA) and e1000e (MSI-X) devices stand in,
  // going through the same guest path (vfio-pci + emulated IOMMU) a vfio-user-pci device takes.
  it('emu-vfio-probe reads BARs, gets MSI/MSI-X/INTx interrupts and DMA through guest VFIO', async () => {
    const r = await bootGuest({
      modules: ['vfio-pci'],
      extraQemuArgs: ['-device', 'edu,addr=5.0', '-device', 'e1000e,addr=6.0'],
      script: [
        'set -e',
        'emu-vfio-probe info 00:05.0',
        'emu-vfio-probe read 00:05.0 0 0x0 4',
        // edu: 0x60 raises an interrupt (MSI when enabled), 0x64 acknowledges it
        'emu-vfio-probe msi 00:05.0 0 bar0 0x60 1 5000',
        "emu-vfio-probe batch 00:05.0 'irq-on intx 0' 'write 0 0x60 4 1' 'irq-wait intx 5000' 'write 0 0x64 4 1'",
        // edu DMA engine: guest buffer (IOVA 0x100000) -> device buffer 0x40000 -> guest IOVA 0x101000
        "emu-vfio-probe batch 00:05.0 'dma-map 0x100000 0x2000' 'dma-write 0x100000 8 0x1122334455667788' " +
          "'write 0 0x80 8 0x100000' 'write 0 0x88 8 0x40000' 'write 0 0x90 8 8' 'write 0 0x98 8 1' 'sleep 200' " +
          "'write 0 0x80 8 0x40000' 'write 0 0x88 8 0x101000' 'write 0 0x90 8 8' 'write 0 0x98 8 3' 'sleep 200' " +
          "'dma-read 0x101000 8'",
        // e1000e: IVAR routes "other" causes to vector 2, IMS enables bit 24 (other), ICS sets it
        // (e1000e may fire twice: a cause can already be pending when IMS enables it)
        "emu-vfio-probe batch 00:06.0 'irq-on msix 2' 'write 0 0xE4 4 0xA0000' 'write 0 0xD0 4 0x1000000' " +
          "'write 0 0xC8 4 0x1000000' 'irq-wait msix 5000'",
        'emu-vfio-probe msix 00:06.0 9 none 0 0 100 || echo "msix9 exit=$?"',
      ].join('\n'),
    });
    expect(r.exitCode, explain(r)).to.equal(0);
    expect(r.output).to.contain('device bdf=0000:00:05.0');
    expect(r.output).to.match(/config vendor=0x1234 device=0x11e8/);
    expect(r.output).to.match(/^region index=0 name=bar0 size=0x100000 /m);
    expect(r.output).to.match(/^irq index=1 name=msi count=1 /m);
    expect(r.output).to.contain('read region=bar0 offset=0x0 width=4 value=0x10000ed');
    expect(r.output).to.match(/^msi vector=0 status=fired count=1 .*proc_interrupts=1$/m);
    expect(r.output).to.match(/^intx vector=0 status=fired count=1 /m);
    expect(r.output).to.contain('dma-read iova=0x101000 width=8 value=0x1122334455667788');
    expect(r.output).to.match(/^msix vector=2 status=fired count=[12] .*proc_interrupts=[12]$/m);
    expect(r.output).to.contain('msix vector 9: the device has 5');
    expect(r.output).to.contain('msix9 exit=1');
  });

  it('kills QEMU when the timeout passes', async () => {
    const r = await bootGuest({ script: 'echo waiting; sleep 600', timeoutMs: 15_000 });
    expect(r.timedOut).to.equal(true);
    expect(r.exitCode).to.equal(null);
    expect(r.qemuSignal).to.equal('SIGKILL');
    expect(r.output).to.equal('waiting\n');
    expect(r.durationMs).to.be.lessThan(20_000);
  });

  it('refuses a socket path where nothing listens', async () => {
    let err: unknown;
    try {
      await bootGuest({ sockets: ['/nonexistent/emu.sock'], script: 'true' });
    } catch (e) {
      err = e;
    }
    expect(String(err)).to.match(/does not exist or is not a socket/);
  });
});
