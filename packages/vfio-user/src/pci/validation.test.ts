import { expect } from 'chai';
import { PciConfigSpace } from './config-space.js';
import { type PciBar, type PciCapability, PciConfigError, type PciConfigOptions } from './types.js';

const identity = { vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000 };
const bars: PciBar[] = [
  { index: 0, kind: 'mem64', size: 0x4000 },
  { index: 2, kind: 'io', size: 0x20 },
  { index: 3, kind: 'mem32', size: 0x1000 },
];
const msix = { id: 'msix', tableSize: 16, tableBar: 3, tableOffset: 0, pbaBar: 3, pbaOffset: 0x800 } as const;

// biome-ignore lint/suspicious/noExplicitAny: deliberately malformed options, as untyped JS callers could pass
type Loose = any;

const withIdentity = (patch: Loose): Loose => ({ identity: { ...identity, ...patch }, bars: [] });
const withBars = (list: Loose[]): Loose => ({ identity, bars: list });
const withCaps = (capabilities: Loose[]): Loose => ({ identity, bars, capabilities });

const cases: [string, Loose, string][] = [
  // options and identity
  ['missing options', undefined, 'options are required'],
  ['missing identity', { bars: [] }, 'identity is required'],
  [
    'vendor id too large',
    withIdentity({ vendorId: 0x10000 }),
    'identity.vendorId 0x10000 is not an unsigned 16-bit integer',
  ],
  ['vendor id 0xffff', withIdentity({ vendorId: 0xffff }), 'identity.vendorId 0xffff is invalid'],
  [
    'negative device id',
    withIdentity({ deviceId: -1 }),
    'identity.deviceId -1 is not an unsigned 16-bit integer',
  ],
  [
    'fractional subsystem id',
    withIdentity({ subsystemId: 1.5 }),
    'identity.subsystemId 1.5 is not an unsigned 16-bit integer',
  ],
  [
    'class code too large',
    withIdentity({ classCode: 0x1000000 }),
    'identity.classCode 0x1000000 is not an unsigned 24-bit integer',
  ],
  [
    'missing class code',
    withIdentity({ classCode: undefined }),
    'identity.classCode undefined is not an unsigned 24-bit integer',
  ],
  [
    'revision too large',
    withIdentity({ revision: 0x100 }),
    'identity.revision 0x100 is not an unsigned 8-bit integer',
  ],
  ['interrupt pin 5', withIdentity({ interruptPin: 5 }), 'identity.interruptPin 5 is out of range'],
  ['size 512', { identity, bars: [], size: 512 }, 'size must be 256 or 4096, got 512'],

  // BARs
  ['bars missing', { identity }, 'bars must be an array'],
  ['BAR index 6', withBars([{ index: 6, kind: 'mem32', size: 16 }]), 'BAR index 6 is out of range (0..5)'],
  ['BAR index -1', withBars([{ index: -1, kind: 'mem32', size: 16 }]), 'BAR index -1 is out of range (0..5)'],
  ['unknown kind', withBars([{ index: 0, kind: 'rom', size: 16 }]), 'BAR0 has unknown kind "rom"'],
  ['prototype kind', withBars([{ index: 0, kind: 'constructor', size: 16 }]), 'BAR0 has unknown kind'],
  [
    'fractional size',
    withBars([{ index: 0, kind: 'mem32', size: 16.5 }]),
    'BAR0 size 16.5 is not an integer',
  ],
  ['string size', withBars([{ index: 0, kind: 'mem32', size: '4096' }]), 'BAR0 size 4096 is not an integer'],
  [
    'bigint mem32 size',
    withBars([{ index: 0, kind: 'mem32', size: 4096n }]),
    'BAR0 size must be a number; only mem64 accepts a bigint',
  ],
  [
    'size not power of two',
    withBars([{ index: 1, kind: 'mem32', size: 12288 }]),
    'BAR1 size 12288 is not a power of two',
  ],
  ['size 0', withBars([{ index: 0, kind: 'mem32', size: 0 }]), 'BAR0 size 0 is not a power of two'],
  [
    'memory too small',
    withBars([{ index: 0, kind: 'mem64', size: 8 }]),
    'BAR0 64-bit memory size 8 is below the 16-byte minimum',
  ],
  [
    'I/O too small',
    withBars([{ index: 0, kind: 'io', size: 2 }]),
    'BAR0 I/O size 2 is below the 4-byte minimum',
  ],
  [
    'I/O too large',
    withBars([{ index: 0, kind: 'io', size: 512 }]),
    'BAR0 I/O size 512 exceeds the 256-byte maximum',
  ],
  [
    'mem32 of 4 GiB',
    withBars([{ index: 0, kind: 'mem32', size: 2 ** 32 }]),
    'BAR0 32-bit memory size 4294967296 exceeds the 2147483648-byte maximum',
  ],
  [
    'mem64 of 2^64',
    withBars([{ index: 0, kind: 'mem64', size: 1n << 64n }]),
    'exceeds the 9223372036854775808-byte maximum',
  ],
  ['mem64 at BAR5', withBars([{ index: 5, kind: 'mem64', size: 16 }]), 'BAR5 cannot be 64-bit'],
  [
    'duplicate index',
    withBars([
      { index: 1, kind: 'mem32', size: 16 },
      { index: 1, kind: 'io', size: 16 },
    ]),
    'BAR1 is defined twice',
  ],
  [
    'BAR inside the upper half of a 64-bit BAR',
    withBars([
      { index: 0, kind: 'mem64', size: 16 },
      { index: 1, kind: 'mem32', size: 16 },
    ]),
    'BAR1 is already the upper half of 64-bit BAR0',
  ],
  [
    '64-bit BAR over a defined BAR',
    withBars([
      { index: 3, kind: 'io', size: 16 },
      { index: 2, kind: 'mem64', size: 16 },
    ]),
    '64-bit BAR2 needs BAR3 for its upper half, but BAR3 is already defined',
  ],
  [
    'overlapping 64-bit BARs',
    withBars([
      { index: 0, kind: 'mem64', size: 16 },
      { index: 1, kind: 'mem64', size: 16 },
    ]),
    'BAR1 is already the upper half of 64-bit BAR0',
  ],

  // capability list
  [
    'capabilities not an array',
    { identity, bars, capabilities: { id: 'pm' } },
    'capabilities must be an array',
  ],
  ['null capability', withCaps([null]), 'each capability must be an object with an id'],
  ['unknown capability', withCaps([{ id: 'sriov' }]), 'unknown capability id "sriov"'],
  [
    'duplicate capability',
    withCaps([{ id: 'pm' }, { id: 'msi', vectors: 1 }, { id: 'pm' }]),
    "capability 'pm' is listed twice",
  ],
  [
    'capabilities overflow',
    withCaps([
      { id: 'pcie' },
      { id: 'vendor', data: new Uint8Array(100) },
      { id: 'vendor', data: new Uint8Array(40) },
    ]),
    'capabilities need 207 bytes from 0x40 but only 192 fit below 0x100',
  ],

  // MSI
  ['MSI vectors 3', withCaps([{ id: 'msi', vectors: 3 }]), 'MSI vectors 3 must be one of 1, 2, 4, 8, 16, 32'],
  ['MSI vectors 64', withCaps([{ id: 'msi', vectors: 64 }]), 'MSI vectors 64 must be one of'],

  // MSI-X
  [
    'MSI-X table size 0',
    withCaps([{ ...msix, tableSize: 0 }]),
    'MSI-X tableSize 0 is out of range (1..2048)',
  ],
  [
    'MSI-X table size 2049',
    withCaps([{ ...msix, tableSize: 2049 }]),
    'MSI-X tableSize 2049 is out of range (1..2048)',
  ],
  [
    'MSI-X table BAR 7',
    withCaps([{ ...msix, tableBar: 7 }]),
    'MSI-X table BAR index 7 is out of range (0..5)',
  ],
  ['MSI-X table BAR missing', withCaps([{ ...msix, tableBar: 4 }]), 'MSI-X table BAR4 is not implemented'],
  [
    'MSI-X table in I/O BAR',
    withCaps([{ ...msix, tableBar: 2 }]),
    'MSI-X table BAR2 is an I/O BAR; the table must be in memory space',
  ],
  [
    'MSI-X PBA in upper half',
    withCaps([{ ...msix, pbaBar: 1 }]),
    'MSI-X PBA BAR1 is the upper half of 64-bit BAR0',
  ],
  [
    'MSI-X table offset unaligned',
    withCaps([{ ...msix, tableOffset: 4 }]),
    'MSI-X tableOffset 0x4 is not 8-byte aligned',
  ],
  [
    'MSI-X negative PBA offset',
    withCaps([{ ...msix, pbaOffset: -8 }]),
    'MSI-X pbaOffset -8 is not a 32-bit offset',
  ],
  [
    'MSI-X table outside its BAR',
    withCaps([{ ...msix, tableSize: 257 }]),
    'MSI-X table 0x0..0x1010 does not fit in BAR3 of size 0x1000',
  ],
  [
    'MSI-X PBA outside its BAR',
    withCaps([{ ...msix, pbaBar: 0, pbaOffset: 0x3ffc + 4 }]),
    'MSI-X PBA 0x4000..0x4008 does not fit in BAR0 of size 0x4000',
  ],
  [
    'MSI-X PBA overlapping the table',
    withCaps([{ ...msix, pbaOffset: 0xf8 }]),
    'MSI-X PBA 0xf8..0x100 overlaps the table 0x0..0x100 in BAR3',
  ],

  // PCI Express
  [
    'PCIe port type',
    withCaps([{ id: 'pcie', portType: 'root-port' }]),
    'PCIe portType "root-port" is not supported',
  ],
  [
    'PCIe payload',
    withCaps([{ id: 'pcie', maxPayload: 64 }]),
    'PCIe maxPayload 64 must be one of 128, 256, 512',
  ],
  [
    'PCIe link speed',
    withCaps([{ id: 'pcie', linkSpeed: 3 }]),
    'PCIe linkSpeed 3 must be one of 2.5, 5, 8, 16, 32, 64 (GT/s)',
  ],
  [
    'PCIe link width',
    withCaps([{ id: 'pcie', linkWidth: 3 }]),
    'PCIe linkWidth 3 must be one of 1, 2, 4, 8, 12, 16, 32',
  ],
  [
    'PCIe rc-endpoint with a link',
    withCaps([{ id: 'pcie', portType: 'rc-endpoint', linkWidth: 4 }]),
    'PCIe rc-endpoint has no link; linkSpeed and linkWidth do not apply',
  ],

  // vendor
  [
    'vendor data not bytes',
    withCaps([{ id: 'vendor', data: [1, 2] }]),
    'vendor capability data must be a Uint8Array',
  ],
  [
    'vendor data too long',
    withCaps([{ id: 'vendor', data: new Uint8Array(253) }]),
    'vendor capability data is 253 bytes; at most 252 fit its 8-bit length',
  ],
  [
    'vendor mask length',
    withCaps([{ id: 'vendor', data: new Uint8Array(4), writable: new Uint8Array(3) }]),
    'vendor capability writable mask must be a Uint8Array as long as data',
  ],
];

describe('pci: option validation', () => {
  for (const [name, options, message] of cases) {
    it(`rejects ${name}`, () => {
      expect(() => new PciConfigSpace(options as PciConfigOptions)).to.throw(PciConfigError, message);
    });
  }

  it('accepts the limits', () => {
    const capabilities: PciCapability[] = [
      { id: 'vendor', data: new Uint8Array(145) }, // 148 bytes; with the rest fills 0x40..0xff exactly
      { id: 'pm' },
      { id: 'msix', tableSize: 2048, tableBar: 0, tableOffset: 0, pbaBar: 0, pbaOffset: 0x8000 },
      { id: 'msi', vectors: 32, perVectorMask: true },
    ];
    const cfg = new PciConfigSpace({
      identity: { vendorId: 0xfffe, deviceId: 0xffff, classCode: 0xffffff, revision: 0xff, interruptPin: 4 },
      bars: [
        { index: 0, kind: 'mem64', size: 1n << 63n },
        { index: 2, kind: 'mem32', size: 2 ** 31 },
        { index: 3, kind: 'io', size: 256 },
        { index: 4, kind: 'mem64', size: 16 },
      ],
      capabilities,
    });
    const last = cfg.capabilities.at(-1)!;
    expect(last.offset + last.length).to.equal(0x100);
    expect(cfg.barSize(0)).to.equal(1n << 63n);
  });

  it('errors are PciConfigError instances named PciConfigError', () => {
    try {
      new PciConfigSpace(withBars([{ index: 1, kind: 'mem32', size: 12288 }]));
      expect.fail('no error');
    } catch (error) {
      expect(error).to.be.instanceOf(PciConfigError);
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).name).to.equal('PciConfigError');
    }
  });
});
