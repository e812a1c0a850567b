// Builders for each capability's bytes and guest-write masks, and the linking of
// the capability list (offset 0x40 upward, dword aligned, in the given order).
//
// A builder fills everything from byte 2 on; placeCapabilities() writes the ID
// and next-pointer bytes (both read-only). Where a field needs more than a mask
// (MSI's MME clamp, PM's unsupported-state rule, FLR), the builder returns an
// afterWrite hook that the config space runs after applying the masks.

import type { BarSlots, NormalizedBar } from './bars.js';
import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CAP_LIST_START,
  PCI_CAP_MSIX_SIZEOF,
  PCI_CAP_VNDR_HEADER_SIZEOF,
  PCI_CAP_VNDR_LEN,
  PCI_CFG_SPACE_SIZE,
  PCI_D1,
  PCI_D2,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCAP_RBER,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_CERE,
  PCI_EXP_DEVCTL_FERE,
  PCI_EXP_DEVCTL_NFERE,
  PCI_EXP_DEVCTL_NOSNOOP_EN,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_DEVCTL_READRQ_512B,
  PCI_EXP_DEVCTL_RELAX_EN,
  PCI_EXP_DEVCTL_URRE,
  PCI_EXP_DEVSTA,
  PCI_EXP_DEVSTA_CED,
  PCI_EXP_DEVSTA_FED,
  PCI_EXP_DEVSTA_NFED,
  PCI_EXP_DEVSTA_URD,
  PCI_EXP_FLAGS,
  PCI_EXP_LNKCAP,
  PCI_EXP_LNKCAP2,
  PCI_EXP_LNKCTL,
  PCI_EXP_LNKCTL_CCC,
  PCI_EXP_LNKCTL_ES,
  PCI_EXP_LNKCTL_RCB,
  PCI_EXP_LNKCTL2,
  PCI_EXP_LNKCTL2_TLS,
  PCI_EXP_LNKSTA,
  PCI_EXP_LNKSTA_NLW_SHIFT,
  PCI_EXP_TYPE_ENDPOINT,
  PCI_EXP_TYPE_RC_END,
  PCI_EXP_VER2_SIZEOF,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_ADDRESS_LO_MASK,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
  PCI_MSIX_ENTRY_SIZE,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_ENABLE,
  PCI_MSIX_FLAGS_MASKALL,
  PCI_MSIX_PBA,
  PCI_MSIX_TABLE,
  PCI_PM_CAP_VER_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_NO_SOFT_RESET,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PM_SIZEOF,
} from './constants.js';
import { RegisterImage } from './registers.js';
import type { PciCapability, PciCapabilityId, PciLinkSpeed, PciLinkWidth } from './types.js';
import { fail, hex, isUint } from './validate.js';

export const CAPABILITY_IDS: Readonly<Record<PciCapabilityId, number>> = {
  pm: PCI_CAP_ID_PM,
  msi: PCI_CAP_ID_MSI,
  msix: PCI_CAP_ID_MSIX,
  pcie: PCI_CAP_ID_EXP,
  vendor: PCI_CAP_ID_VNDR,
};

/**
 * Runs after a guest write touching the capability, with the capability's
 * bytes (live view) and a copy from before the write. May fix fields up in
 * place; returns 'flr' to ask for a Function Level Reset.
 */
export type AfterWrite = (cap: Buffer, before: Buffer) => 'flr' | undefined;

export interface BuiltCapability {
  id: PciCapabilityId;
  capId: number;
  image: RegisterImage;
  afterWrite?: AfterWrite;
}

export interface PlacedCapability extends BuiltCapability {
  offset: number;
}

// --- Power management ------------------------------------------------------

const PM_VERSION = 3; // PCI Bus Power Management Interface 1.2

export function buildPm(): BuiltCapability {
  const image = new RegisterImage(PCI_PM_SIZEOF)
    // D1/D2 unsupported, no PME#, no aux current.
    .field(PCI_PM_PMC, 2, { value: PM_VERSION & PCI_PM_CAP_VER_MASK })
    // NoSoftReset: the function keeps its state across D3hot -> D0, so no internal reset is owed.
    .field(PCI_PM_CTRL, 2, { value: PCI_PM_CTRL_NO_SOFT_RESET, writable: PCI_PM_CTRL_STATE_MASK });
  return {
    id: 'pm',
    capId: PCI_CAP_ID_PM,
    image,
    afterWrite(cap, before) {
      // A write of an unsupported state completes but changes nothing (PCI PM 1.2, PMCSR PowerState).
      const ctrl = cap.readUInt16LE(PCI_PM_CTRL);
      const state = ctrl & PCI_PM_CTRL_STATE_MASK;
      if (state === PCI_D1 || state === PCI_D2) {
        const old = before.readUInt16LE(PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK;
        cap.writeUInt16LE((ctrl & ~PCI_PM_CTRL_STATE_MASK) | old, PCI_PM_CTRL);
      }
      return undefined;
    },
  };
}

// --- MSI -------------------------------------------------------------------

export interface MsiLayout {
  addressHi?: number;
  data: number;
  mask?: number;
  pending?: number;
  length: number;
}

/** Register offsets of the four MSI structure variants (PCI 3.0, 6.8.1). */
export function msiLayout(addr64: boolean, perVectorMask: boolean): MsiLayout {
  if (addr64) {
    return perVectorMask
      ? {
          addressHi: PCI_MSI_ADDRESS_HI,
          data: PCI_MSI_DATA_64,
          mask: PCI_MSI_MASK_64,
          pending: PCI_MSI_PENDING_64,
          length: 0x18,
        }
      : { addressHi: PCI_MSI_ADDRESS_HI, data: PCI_MSI_DATA_64, length: 0x0e };
  }
  return perVectorMask
    ? { data: PCI_MSI_DATA_32, mask: PCI_MSI_MASK_32, pending: PCI_MSI_PENDING_32, length: 0x14 }
    : { data: PCI_MSI_DATA_32, length: 0x0a };
}

const MSI_VECTORS = [1, 2, 4, 8, 16, 32];

export function buildMsi(cap: Extract<PciCapability, { id: 'msi' }>): BuiltCapability {
  if (!MSI_VECTORS.includes(cap.vectors)) {
    fail(`MSI vectors ${String(cap.vectors)} must be one of ${MSI_VECTORS.join(', ')}`);
  }
  const addr64 = cap.addr64 ?? true;
  const perVectorMask = cap.perVectorMask ?? false;
  const layout = msiLayout(addr64, perVectorMask);
  const mmc = Math.log2(cap.vectors);
  const image = new RegisterImage(layout.length).field(PCI_MSI_FLAGS, 2, {
    value: (mmc << 1) | (addr64 ? PCI_MSI_FLAGS_64BIT : 0) | (perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0),
    writable: PCI_MSI_FLAGS_QSIZE | PCI_MSI_FLAGS_ENABLE,
  });
  image.field(PCI_MSI_ADDRESS_LO, 4, { writable: PCI_MSI_ADDRESS_LO_MASK });
  if (layout.addressHi !== undefined) image.field(layout.addressHi, 4, { writable: 0xffffffff });
  image.field(layout.data, 2, { writable: 0xffff });
  if (layout.mask !== undefined && layout.pending !== undefined) {
    // Only the bits of implemented vectors exist; pending bits belong to the device.
    image.field(layout.mask, 4, { writable: cap.vectors === 32 ? 0xffffffff : (1 << cap.vectors) - 1 });
    image.field(layout.pending, 4, {});
  }
  return {
    id: 'msi',
    capId: PCI_CAP_ID_MSI,
    image,
    afterWrite(bytes) {
      // Enabling more vectors than capable is undefined; clamp to MMC as QEMU does.
      const flags = bytes.readUInt16LE(PCI_MSI_FLAGS);
      const capable = (flags & PCI_MSI_FLAGS_QMASK) >> 1;
      const enabled = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;
      if (enabled > capable)
        bytes.writeUInt16LE((flags & ~PCI_MSI_FLAGS_QSIZE) | (capable << 4), PCI_MSI_FLAGS);
      return undefined;
    },
  };
}

// --- MSI-X -----------------------------------------------------------------

const MSIX_MAX_TABLE_SIZE = 2048;

function msixBar(what: string, index: unknown, slots: BarSlots): NormalizedBar {
  if (!Number.isInteger(index) || (index as number) < 0 || (index as number) > 5) {
    fail(`MSI-X ${what} BAR index ${String(index)} is out of range (0..5)`);
  }
  const i = index as number;
  const bar = slots[i];
  if (bar === undefined) fail(`MSI-X ${what} BAR${i} is not implemented`);
  if (bar.index !== i) fail(`MSI-X ${what} BAR${i} is the upper half of 64-bit BAR${bar.index}`);
  if (bar.kind === 'io') fail(`MSI-X ${what} BAR${i} is an I/O BAR; the ${what} must be in memory space`);
  return bar;
}

function msixRange(
  what: string,
  option: string,
  offset: unknown,
  length: number,
  bar: NormalizedBar,
): [number, number] {
  if (!isUint(offset, 32)) fail(`MSI-X ${option} ${String(offset)} is not a 32-bit offset`);
  // The low 3 bits of the register hold the BIR.
  if (offset % 8 !== 0) fail(`MSI-X ${option} ${hex(offset)} is not 8-byte aligned`);
  const end = offset + length;
  if (BigInt(end) > bar.size) {
    fail(
      `MSI-X ${what} ${hex(offset)}..${hex(end)} does not fit in BAR${bar.index} of size ${hex(bar.size)}`,
    );
  }
  return [offset, end];
}

export function buildMsix(cap: Extract<PciCapability, { id: 'msix' }>, slots: BarSlots): BuiltCapability {
  const { tableSize } = cap;
  if (!Number.isInteger(tableSize) || tableSize < 1 || tableSize > MSIX_MAX_TABLE_SIZE) {
    fail(`MSI-X tableSize ${String(tableSize)} is out of range (1..${MSIX_MAX_TABLE_SIZE})`);
  }
  const tableBar = msixBar('table', cap.tableBar, slots);
  const pbaBar = msixBar('PBA', cap.pbaBar, slots);
  const table = msixRange('table', 'tableOffset', cap.tableOffset, tableSize * PCI_MSIX_ENTRY_SIZE, tableBar);
  // One pending bit per vector, in whole qwords.
  const pba = msixRange('PBA', 'pbaOffset', cap.pbaOffset, Math.ceil(tableSize / 64) * 8, pbaBar);
  if (tableBar === pbaBar && table[0] < pba[1] && pba[0] < table[1]) {
    fail(
      `MSI-X PBA ${hex(pba[0])}..${hex(pba[1])} overlaps the table ${hex(table[0])}..${hex(table[1])} in BAR${tableBar.index}`,
    );
  }
  const image = new RegisterImage(PCI_CAP_MSIX_SIZEOF)
    .field(PCI_MSIX_FLAGS, 2, {
      value: tableSize - 1,
      writable: PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL,
    })
    .field(PCI_MSIX_TABLE, 4, { value: cap.tableOffset | tableBar.index })
    .field(PCI_MSIX_PBA, 4, { value: cap.pbaOffset | pbaBar.index });
  return { id: 'msix', capId: PCI_CAP_ID_MSIX, image };
}

// --- PCI Express -----------------------------------------------------------

// Link speed encodings: LNKCAP Max Link Speed / LNKSTA Current Link Speed, i.e.
// bit n-1 of the LNKCAP2 Supported Link Speeds Vector.
const LINK_SPEED_CODE = new Map<PciLinkSpeed, number>([
  [2.5, 1],
  [5, 2],
  [8, 3],
  [16, 4],
  [32, 5],
  [64, 6],
]);
const LINK_WIDTHS: readonly PciLinkWidth[] = [1, 2, 4, 8, 12, 16, 32];
const PAYLOAD_CODE = new Map<number, number>([
  [128, 0],
  [256, 1],
  [512, 2],
  [1024, 3],
  [2048, 4],
  [4096, 5],
]);
const PORT_TYPE = { endpoint: PCI_EXP_TYPE_ENDPOINT, 'rc-endpoint': PCI_EXP_TYPE_RC_END } as const;
const PCIE_CAP_VERSION = 2;

export function buildPcie(cap: Extract<PciCapability, { id: 'pcie' }>): BuiltCapability {
  const portType = cap.portType ?? 'endpoint';
  if (!Object.hasOwn(PORT_TYPE, portType)) fail(`PCIe portType ${JSON.stringify(portType)} is not supported`);
  const payload = PAYLOAD_CODE.get(cap.maxPayload ?? 128);
  if (payload === undefined) {
    fail(`PCIe maxPayload ${String(cap.maxPayload)} must be one of ${[...PAYLOAD_CODE.keys()].join(', ')}`);
  }
  const hasLink = portType === 'endpoint';
  if (!hasLink && (cap.linkSpeed !== undefined || cap.linkWidth !== undefined)) {
    fail('PCIe rc-endpoint has no link; linkSpeed and linkWidth do not apply');
  }
  const speed = LINK_SPEED_CODE.get(cap.linkSpeed ?? 2.5);
  if (speed === undefined) {
    fail(
      `PCIe linkSpeed ${String(cap.linkSpeed)} must be one of ${[...LINK_SPEED_CODE.keys()].join(', ')} (GT/s)`,
    );
  }
  const width = cap.linkWidth ?? 1;
  if (!LINK_WIDTHS.includes(width)) {
    fail(`PCIe linkWidth ${String(width)} must be one of ${LINK_WIDTHS.join(', ')}`);
  }
  const flr = cap.flr === true;

  const image = new RegisterImage(PCI_EXP_VER2_SIZEOF)
    .field(PCI_EXP_FLAGS, 2, { value: (PORT_TYPE[portType] << 4) | PCIE_CAP_VERSION })
    // Role-based error reporting is mandatory since PCIe 1.1.
    .field(PCI_EXP_DEVCAP, 4, { value: payload | PCI_EXP_DEVCAP_RBER | (flr ? PCI_EXP_DEVCAP_FLR : 0) })
    .field(PCI_EXP_DEVCTL, 2, {
      // Spec power-on defaults: relaxed ordering and no-snoop enabled, 512-byte read requests.
      value: PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B,
      writable:
        PCI_EXP_DEVCTL_CERE |
        PCI_EXP_DEVCTL_NFERE |
        PCI_EXP_DEVCTL_FERE |
        PCI_EXP_DEVCTL_URRE |
        PCI_EXP_DEVCTL_RELAX_EN |
        PCI_EXP_DEVCTL_PAYLOAD |
        PCI_EXP_DEVCTL_NOSNOOP_EN |
        PCI_EXP_DEVCTL_READRQ |
        (flr ? PCI_EXP_DEVCTL_BCR_FLR : 0),
    })
    .field(PCI_EXP_DEVSTA, 2, {
      w1c: PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD,
    });
  if (hasLink) {
    // No ASPM support (allowed since PCIe 3.0), port number 0.
    image
      .field(PCI_EXP_LNKCAP, 4, { value: speed | (width << 4) })
      .field(PCI_EXP_LNKCTL, 2, { writable: PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES })
      .field(PCI_EXP_LNKSTA, 2, { value: speed | (width << PCI_EXP_LNKSTA_NLW_SHIFT) })
      // Supported Link Speeds Vector: every speed up to the maximum (bits 1..speed).
      .field(PCI_EXP_LNKCAP2, 4, { value: ((1 << speed) - 1) << 1 })
      // Target Link Speed defaults to the highest supported speed.
      .field(PCI_EXP_LNKCTL2, 2, { value: speed, writable: PCI_EXP_LNKCTL2_TLS });
  }
  return {
    id: 'pcie',
    capId: PCI_CAP_ID_EXP,
    image,
    afterWrite: flr
      ? (bytes) => {
          // Initiate Function Level Reset always reads 0; writing 1 starts the reset.
          const ctl = bytes.readUInt16LE(PCI_EXP_DEVCTL);
          if ((ctl & PCI_EXP_DEVCTL_BCR_FLR) === 0) return undefined;
          bytes.writeUInt16LE(ctl & ~PCI_EXP_DEVCTL_BCR_FLR, PCI_EXP_DEVCTL);
          return 'flr';
        }
      : undefined,
  };
}

// --- Vendor specific -------------------------------------------------------

const VENDOR_MAX_DATA = 0xff - PCI_CAP_VNDR_HEADER_SIZEOF;

export function buildVendor(cap: Extract<PciCapability, { id: 'vendor' }>): BuiltCapability {
  if (!(cap.data instanceof Uint8Array)) fail('vendor capability data must be a Uint8Array');
  if (cap.data.length > VENDOR_MAX_DATA) {
    fail(
      `vendor capability data is ${cap.data.length} bytes; at most ${VENDOR_MAX_DATA} fit its 8-bit length`,
    );
  }
  if (cap.writable !== undefined) {
    if (!(cap.writable instanceof Uint8Array) || cap.writable.length !== cap.data.length) {
      fail('vendor capability writable mask must be a Uint8Array as long as data');
    }
  }
  const length = PCI_CAP_VNDR_HEADER_SIZEOF + cap.data.length;
  const image = new RegisterImage(length);
  image.data[PCI_CAP_VNDR_LEN] = length;
  image.data.set(cap.data, PCI_CAP_VNDR_HEADER_SIZEOF);
  if (cap.writable) image.wmask.set(cap.writable, PCI_CAP_VNDR_HEADER_SIZEOF);
  return { id: 'vendor', capId: PCI_CAP_ID_VNDR, image };
}

// --- The list --------------------------------------------------------------

export function buildCapability(cap: PciCapability, slots: BarSlots): BuiltCapability {
  switch (cap.id) {
    case 'pm':
      return buildPm();
    case 'msi':
      return buildMsi(cap);
    case 'msix':
      return buildMsix(cap, slots);
    case 'pcie':
      return buildPcie(cap);
    case 'vendor':
      return buildVendor(cap);
    default:
      return fail(`unknown capability id ${JSON.stringify((cap as { id: unknown }).id)}`);
  }
}

const align4 = (n: number) => (n + 3) & ~3;

/** Validates and builds the capabilities, assigns offsets and links the list. */
export function placeCapabilities(caps: unknown, slots: BarSlots): PlacedCapability[] {
  if (caps === undefined) return [];
  if (!Array.isArray(caps)) fail('capabilities must be an array');
  const seen = new Set<string>();
  const placed: PlacedCapability[] = [];
  let offset = PCI_CAP_LIST_START;
  let end = offset;
  for (const cap of caps as PciCapability[]) {
    if (typeof cap !== 'object' || cap === null) fail('each capability must be an object with an id');
    const built = buildCapability(cap, slots);
    if (seen.has(built.id) && built.id !== 'vendor') {
      fail(`capability '${built.id}' is listed twice; only 'vendor' may repeat`);
    }
    seen.add(built.id);
    placed.push({ ...built, offset });
    end = offset + built.image.length;
    offset = align4(end);
  }
  if (end > PCI_CFG_SPACE_SIZE) {
    fail(
      `capabilities need ${end - PCI_CAP_LIST_START} bytes from 0x40 but only ${PCI_CFG_SPACE_SIZE - PCI_CAP_LIST_START} fit below 0x100`,
    );
  }
  placed.forEach((cap, i) => {
    cap.image.data[PCI_CAP_LIST_ID] = cap.capId;
    cap.image.data[PCI_CAP_LIST_NEXT] = placed[i + 1]?.offset ?? 0;
  });
  return placed;
}
