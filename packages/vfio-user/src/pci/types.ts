// Public option and state types of the PCI configuration space.

export interface PciIdentity {
  vendorId: number;
  deviceId: number;
  /** Default: vendorId. */
  subsystemVendorId?: number;
  /** Default: deviceId. */
  subsystemId?: number;
  /** 24-bit: base class << 16 | subclass << 8 | programming interface. */
  classCode: number;
  /** Default 0. */
  revision?: number;
  /** 0 = no INTx (default), 1..4 = INTA#..INTD#. */
  interruptPin?: number;
}

export type PciBar =
  | { index: number; kind: 'mem32'; size: number; prefetchable?: boolean }
  /** Uses BAR index and index + 1. */
  | { index: number; kind: 'mem64'; size: number | bigint; prefetchable?: boolean }
  | { index: number; kind: 'io'; size: number };

export type PciBarKind = PciBar['kind'];

/** Link speed in GT/s. */
export type PciLinkSpeed = 2.5 | 5 | 8 | 16 | 32 | 64;
export type PciLinkWidth = 1 | 2 | 4 | 8 | 12 | 16 | 32;

export type PciCapability =
  | { id: 'pm' }
  | {
      id: 'msi';
      vectors: 1 | 2 | 4 | 8 | 16 | 32;
      /** 64-bit message address. Default true. */
      addr64?: boolean;
      /** Per-vector mask and pending registers. Default false. */
      perVectorMask?: boolean;
    }
  | {
      id: 'msix';
      /** Number of table entries, 1..2048. */
      tableSize: number;
      tableBar: number;
      tableOffset: number;
      pbaBar: number;
      pbaOffset: number;
    }
  | {
      id: 'pcie';
      /** Default 'endpoint'. A root-complex integrated endpoint has no link registers. */
      portType?: 'endpoint' | 'rc-endpoint';
      /** Max_Payload_Size supported, in bytes. Default 128. */
      maxPayload?: 128 | 256 | 512 | 1024 | 2048 | 4096;
      /** Default 2.5 (GT/s). Endpoint only. */
      linkSpeed?: PciLinkSpeed;
      /** Default 1 (x1). Endpoint only. */
      linkWidth?: PciLinkWidth;
      /**
       * Advertise Function Level Reset. A guest write of Initiate FLR then resets
       * the config space and fires the onFunctionLevelReset listeners. Default false.
       */
      flr?: boolean;
    }
  | {
      id: 'vendor';
      /** The bytes after the 3-byte header (id, next, length); at most 252. */
      data: Uint8Array;
      /** Optional per-byte guest write mask over `data` (same length); default read-only. */
      writable?: Uint8Array;
    };

export type PciCapabilityId = PciCapability['id'];

export interface PciConfigOptions {
  identity: PciIdentity;
  bars: PciBar[];
  /** Linked in this order from offset 0x40. */
  capabilities?: PciCapability[];
  /** 4096 = PCIe extended config space. Default: 4096 when a 'pcie' capability is present, else 256. */
  size?: 256 | 4096;
}

export interface PciBarInfo {
  index: number;
  kind: PciBarKind;
  size: bigint;
  prefetchable: boolean;
  /** What the guest programmed, without flag bits (may be a sizing pattern while the guest probes). */
  address: bigint;
}

export interface PciCapabilityInfo {
  id: PciCapabilityId;
  /** The capability ID byte (PCI_CAP_ID_*). */
  capId: number;
  offset: number;
  length: number;
}

export interface PciMsixState {
  enabled: boolean;
  functionMasked: boolean;
  tableSize: number;
  tableBar: number;
  tableOffset: number;
  pbaBar: number;
  pbaOffset: number;
}

export interface PciMsiState {
  enabled: boolean;
  /** Vectors the function supports (Multiple Message Capable). */
  vectors: number;
  /** Vectors the guest allocated (Multiple Message Enable). */
  vectorsEnabled: number;
  addr64: boolean;
  address: bigint;
  data: number;
  /** Present only with per-vector masking. */
  maskBits?: number;
  /** Present only with per-vector masking. */
  pendingBits?: number;
}

export type PciPowerState = 'D0' | 'D1' | 'D2' | 'D3hot';

/** Thrown by the PciConfigSpace constructor for invalid options. */
export class PciConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PciConfigError';
  }
}
