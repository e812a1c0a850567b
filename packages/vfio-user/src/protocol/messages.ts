/**
 * Every vfio-user payload layout, one declaration per command (request and reply).
 * Variable tails (JSON, data, caps, bools) follow the fixed part and are handled by the server/client.
 */
import { struct } from './struct.js';

export const Header = struct('header', {
  msgId: 'u16',
  command: 'u16',
  size: 'u32',
  flags: 'u32',
  error: 'u32',
});

/** VERSION: major, minor, then optional NUL-terminated JSON. */
export const Version = struct('version', { major: 'u16', minor: 'u16' });

export const DmaMap = struct('dma_map', {
  argsz: 'u32',
  flags: 'u32',
  offset: 'u64',
  address: 'u64',
  size: 'u64',
});
export const DmaUnmap = struct('dma_unmap', { argsz: 'u32', flags: 'u32', address: 'u64', size: 'u64' });

export const DeviceInfo = struct('device_info', {
  argsz: 'u32',
  flags: 'u32',
  numRegions: 'u32',
  numIrqs: 'u32',
});

export const RegionInfo = struct('region_info', {
  argsz: 'u32',
  flags: 'u32',
  index: 'u32',
  capOffset: 'u32',
  size: 'u64',
  offset: 'u64',
});
export const RegionCapHeader = struct('region_cap_header', { id: 'u16', version: 'u16', next: 'u32' });
export const SparseMmapHeader = struct('sparse_mmap', { nrAreas: 'u32', reserved: 'u32' });
export const SparseMmapArea = struct('sparse_mmap_area', { offset: 'u64', size: 'u64' });

export const RegionIoFds = struct('region_io_fds', {
  argsz: 'u32',
  flags: 'u32',
  index: 'u32',
  count: 'u32',
});
export const IoFdEntry = struct('io_fd', {
  offset: 'u64',
  size: 'u64',
  fdIndex: 'u32',
  type: 'u32',
  flags: 'u32',
  padding: 'u32',
  datamatch: 'u64',
});

export const IrqInfo = struct('irq_info', { argsz: 'u32', flags: 'u32', index: 'u32', count: 'u32' });
export const IrqSet = struct('irq_set', {
  argsz: 'u32',
  flags: 'u32',
  index: 'u32',
  start: 'u32',
  count: 'u32',
});

export const RegionAccess = struct('region_access', { offset: 'u64', region: 'u32', count: 'u32' });
export const WriteMultiCount = struct('write_multi', { count: 'u64' });
/** One REGION_WRITE_MULTI entry: offset, region, count, then 8 data bytes (24 bytes in all). */
export const WriteMultiEntry = struct('write_multi_entry', { offset: 'u64', region: 'u32', count: 'u32' });
export const WRITE_MULTI_ENTRY_SIZE = 24;
export const WRITE_MULTI_MAX_DATA = 8;

/**
 * DMA_READ / DMA_WRITE: count is a u64 and data starts 16 bytes in. QEMU 11.1 uses this layout too
 * (checked end to end); older QEMU sources had a u32 count.
 */
export const DmaAccess = struct('dma_access', { address: 'u64', count: 'u64' });
export const DeviceFeature = struct('device_feature', { argsz: 'u32', flags: 'u32' });
