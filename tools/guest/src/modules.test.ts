import { expect } from 'chai';
import { moduleNameFromPath, parseModuleSpec, parseModulesDep, resolveModules } from './modules.js';

// An excerpt of Debian 6.12's modules.dep
const DEP = `kernel/virt/lib/irqbypass.ko.xz:
kernel/drivers/vfio/vfio.ko.xz:
kernel/drivers/vfio/vfio_iommu_type1.ko.xz: kernel/drivers/vfio/vfio.ko.xz
kernel/drivers/vfio/pci/vfio-pci-core.ko.xz: kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz
kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz
kernel/drivers/uio/uio.ko.xz:
kernel/drivers/uio/uio_pci_generic.ko.xz: kernel/drivers/uio/uio.ko.xz
`;
const BUILTIN = 'kernel/drivers/pci/pcie/portdrv.ko\nkernel/drivers/tty/serial/8250/8250.ko\n';

describe('kernel modules', () => {
  const index = parseModulesDep(DEP, BUILTIN);

  it('names modules like lsmod does', () => {
    expect(moduleNameFromPath('kernel/drivers/vfio/pci/vfio-pci-core.ko.xz')).to.equal('vfio_pci_core');
    expect(moduleNameFromPath('a/b.ko')).to.equal('b');
    expect(moduleNameFromPath('a/c.ko.zst')).to.equal('c');
    expect(index.byName.get('vfio_pci')).to.equal('kernel/drivers/vfio/pci/vfio-pci.ko.xz');
    expect(index.builtin.has('8250')).to.equal(true);
  });

  it('parses module specs with parameters', () => {
    expect(parseModuleSpec(' vfio-pci ')).to.deep.equal({ name: 'vfio_pci', params: [] });
    expect(parseModuleSpec('vfio_iommu_type1 allow_unsafe_interrupts=1 x')).to.deep.equal({
      name: 'vfio_iommu_type1',
      params: ['allow_unsafe_interrupts=1', 'x'],
    });
    expect(parseModuleSpec('uio.ko.xz').name).to.equal('uio');
    expect(() => parseModuleSpec('vfio a;b=1')).to.throw(/bad module parameter/);
  });

  it('orders dependencies before the modules that need them', () => {
    const { modules } = resolveModules(index, ['vfio-pci']);
    const names = modules.map((m) => m.name);
    expect(names).to.have.members(['vfio', 'irqbypass', 'vfio_pci_core', 'vfio_pci']);
    expect(names).to.have.length(4);
    for (const m of modules) {
      for (const d of index.deps.get(m.path) ?? []) {
        expect(modules.findIndex((x) => x.path === d)).to.be.lessThan(names.indexOf(m.name));
      }
    }
    expect(modules.filter((m) => m.requested).map((m) => m.name)).to.deep.equal(['vfio_pci']);
  });

  it('loads shared dependencies once and keeps parameters on the requested module', () => {
    const { modules } = resolveModules(index, [
      'vfio-pci',
      'vfio_iommu_type1 allow_unsafe_interrupts=1',
      'vfio',
    ]);
    expect(modules.filter((m) => m.name === 'vfio')).to.have.length(1);
    expect(modules.find((m) => m.name === 'vfio_iommu_type1')?.params).to.deep.equal([
      'allow_unsafe_interrupts=1',
    ]);
    expect(modules.find((m) => m.name === 'vfio')?.requested).to.equal(true);
    expect(modules.find((m) => m.name === 'irqbypass')?.params).to.deep.equal([]);
  });

  it('skips built-in modules and rejects unknown ones', () => {
    const r = resolveModules(index, ['8250', 'uio_pci_generic']);
    expect(r.builtin).to.deep.equal(['8250']);
    expect(r.modules.map((m) => m.name)).to.deep.equal(['uio', 'uio_pci_generic']);
    expect(() => resolveModules(index, ['no-such-module'])).to.throw(/unknown kernel module/);
  });

  it('detects dependency cycles', () => {
    const cyclic = parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n');
    expect(() => resolveModules(cyclic, ['a'])).to.throw(/cycle/);
  });
});
