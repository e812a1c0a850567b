/** Numbers of the vfio-user protocol (QEMU docs/interop/vfio-user.rst) and of <linux/vfio.h> that it reuses. */
import { constants } from 'node:os';

export const Command = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  DMA_READ: 11,
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  /** Removed with migration v2; QEMU keeps the number unused. */
  DIRTY_PAGES: 14,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
  MIG_DATA_READ: 17,
  MIG_DATA_WRITE: 18,
} as const;
export type CommandName = keyof typeof Command;
export type CommandId = (typeof Command)[CommandName];

const COMMAND_NAMES = new Map<number, CommandName>(
  Object.entries(Command).map(([name, id]) => [id, name as CommandName]),
);
export function commandName(id: number): string {
  return COMMAND_NAMES.get(id) ?? `UNKNOWN(${id})`;
}

/** Header flags: bits 0-3 are the message type. */
export const HeaderFlag = {
  TYPE_MASK: 0xf,
  TYPE_COMMAND: 0,
  TYPE_REPLY: 1,
  NO_REPLY: 0x10,
  ERROR: 0x20,
} as const;

export const HEADER_SIZE = 16;

/** The only major version there is; we speak minor 0 (QEMU rejects any reply above the minor it sent). */
export const PROTOCOL_MAJOR = 0;
export const PROTOCOL_MINOR = 0;

export const DmaMapFlag = { READ: 1 << 0, WRITE: 1 << 1 } as const;
export const DmaUnmapFlag = { GET_DIRTY_BITMAP: 1 << 0, ALL: 1 << 1 } as const;

export const DeviceFlag = { RESET: 1 << 0, PCI: 1 << 1 } as const;

export const RegionFlag = { READ: 1 << 0, WRITE: 1 << 1, MMAP: 1 << 2, CAPS: 1 << 3 } as const;
export const RegionCap = { SPARSE_MMAP: 1, TYPE: 2 } as const;

/** PCI region indices: 0-5 BARs, then ROM, config space, VGA. */
export const PciRegion = {
  BAR0: 0,
  BAR1: 1,
  BAR2: 2,
  BAR3: 3,
  BAR4: 4,
  BAR5: 5,
  ROM: 6,
  CONFIG: 7,
  VGA: 8,
} as const;
export const PCI_NUM_REGIONS = 9;

export const IrqIndex = { INTX: 0, MSI: 1, MSIX: 2, ERR: 3, REQ: 4 } as const;
export type IrqIndexName = 'intx' | 'msi' | 'msix' | 'err' | 'req';
export const IRQ_INDEX_NAMES: readonly IrqIndexName[] = ['intx', 'msi', 'msix', 'err', 'req'];
export const PCI_NUM_IRQS = 5;

export const IrqInfoFlag = {
  EVENTFD: 1 << 0,
  MASKABLE: 1 << 1,
  AUTOMASKED: 1 << 2,
  NORESIZE: 1 << 3,
} as const;

export const IrqSetFlag = {
  DATA_NONE: 1 << 0,
  DATA_BOOL: 1 << 1,
  DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3,
  ACTION_UNMASK: 1 << 4,
  ACTION_TRIGGER: 1 << 5,
  DATA_MASK: 0x7,
  ACTION_MASK_ALL: 0x38,
} as const;

/** errno values carried in error replies. */
export const Errno = {
  EPERM: constants.errno.EPERM,
  ENOENT: constants.errno.ENOENT,
  E2BIG: constants.errno.E2BIG,
  EBADF: constants.errno.EBADF,
  ENOMEM: constants.errno.ENOMEM,
  EFAULT: constants.errno.EFAULT,
  EBUSY: constants.errno.EBUSY,
  EEXIST: constants.errno.EEXIST,
  ENODEV: constants.errno.ENODEV,
  EINVAL: constants.errno.EINVAL,
  ENOSPC: constants.errno.ENOSPC,
  EPIPE: constants.errno.EPIPE,
  ERANGE: constants.errno.ERANGE,
  ENOSYS: constants.errno.ENOSYS,
  EPROTO: constants.errno.EPROTO,
  EMSGSIZE: constants.errno.EMSGSIZE,
  ENOTSUP: constants.errno.ENOTSUP,
  ETIMEDOUT: constants.errno.ETIMEDOUT,
  ENOTCONN: constants.errno.ENOTCONN,
} as const;

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return `errno ${errno}`;
}

/** Defaults of the VERSION capabilities when a peer leaves them out (spec). */
export const DEFAULT_MAX_MSG_FDS = 1;
export const DEFAULT_MAX_DATA_XFER_SIZE = 1024 * 1024;
export const DEFAULT_MAX_DMA_MAPS = 65535;
export const DEFAULT_PGSIZES = 4096n;
/**
 * The smallest max_data_xfer_size emu works with, either side: a peer that takes fewer bytes per
 * message is refused at VERSION (libvfio-user's own test client, the smallest known, takes 1024).
 */
export const MIN_DATA_XFER_SIZE = 1024;
/** The largest that is of use (QEMU's VFIO_USER_MAX_MAX_XFER): a peer's higher value is clamped to it. */
export const MAX_DATA_XFER_SIZE = 64 * 1024 * 1024;
/** Linux refuses more fds per sendmsg (SCM_MAX_FD). */
export const SCM_MAX_FD = 253;
/** The max_msg_fds our server advertises: most fds one message to it may carry (QEMU splits SET_IRQS by it). */
export const SERVER_MAX_MSG_FDS = 16;
/** The max_msg_fds our client advertises by default, as QEMU's (VFIO_USER_MAX_MAX_FDS). */
export const CLIENT_MAX_MSG_FDS = 16;
