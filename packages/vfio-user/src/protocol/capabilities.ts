/** The VERSION message's JSON capabilities: parsing with validation, and encoding. */
import {
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEFAULT_MAX_DMA_MAPS,
  DEFAULT_MAX_MSG_FDS,
  DEFAULT_PGSIZES,
  Errno,
} from './constants.js';
import { ProtocolError } from './errors.js';

export interface Capabilities {
  /** Most fds the sender of these capabilities accepts in one message. */
  maxMsgFds: number;
  /** Largest `count` of a REGION/DMA read or write the sender accepts. */
  maxDataXferSize: number;
  maxDmaMaps: number;
  pgsizes: number;
  writeMultiple: boolean;
  /** Legacy migration v1 object; QEMU still sends it. Kept only to be validated and reported. */
  migration?: { pgsize: number; maxBitmapSize?: number };
}

export const DEFAULT_CAPABILITIES: Capabilities = {
  maxMsgFds: DEFAULT_MAX_MSG_FDS,
  maxDataXferSize: DEFAULT_MAX_DATA_XFER_SIZE,
  maxDmaMaps: DEFAULT_MAX_DMA_MAPS,
  pgsizes: DEFAULT_PGSIZES,
  writeMultiple: false,
};

/** Limits we accept from a peer, so a hostile one cannot make us allocate or send absurd amounts. */
const LIMITS = { maxMsgFds: 1024, maxDataXferSize: 64 * 1024 * 1024, maxDmaMaps: 1_000_000 };

const bad = (message: string) => new ProtocolError(Errno.EINVAL, `VERSION capabilities: ${message}`);

function uint(obj: Record<string, unknown>, key: string, max: number): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw bad(`"${key}" must be a non-negative integer`);
  if (v > max) throw bad(`"${key}" ${v} is above the limit ${max}`);
  return v;
}

/**
 * Parses the JSON tail of a VERSION message (NUL-terminated). An empty tail means all defaults.
 * Unknown keys are returned in `unknown` so the caller can log them; the spec says to ignore them.
 */
export function parseCapabilities(tail: Uint8Array): { caps: Capabilities; unknown: string[] } {
  if (tail.byteLength === 0) return { caps: { ...DEFAULT_CAPABILITIES }, unknown: [] };
  if (tail[tail.byteLength - 1] !== 0) throw bad('JSON is not NUL-terminated');
  const text = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength - 1).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`malformed JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('JSON is not an object');
  const root = doc as Record<string, unknown>;
  const capsRaw = root.capabilities;
  if (capsRaw === undefined) return { caps: { ...DEFAULT_CAPABILITIES }, unknown: Object.keys(root) };
  if (typeof capsRaw !== 'object' || capsRaw === null || Array.isArray(capsRaw)) {
    throw bad('"capabilities" is not an object');
  }
  const c = capsRaw as Record<string, unknown>;
  const caps: Capabilities = { ...DEFAULT_CAPABILITIES };
  caps.maxMsgFds = uint(c, 'max_msg_fds', LIMITS.maxMsgFds) ?? caps.maxMsgFds;
  caps.maxDataXferSize = uint(c, 'max_data_xfer_size', LIMITS.maxDataXferSize) ?? caps.maxDataXferSize;
  caps.maxDmaMaps = uint(c, 'max_dma_maps', LIMITS.maxDmaMaps) ?? caps.maxDmaMaps;
  const pgsizes = uint(c, 'pgsizes', 0xffffffff);
  if (pgsizes !== undefined) {
    if (pgsizes === 0 || pgsizes % 4096 !== 0) throw bad(`"pgsizes" ${pgsizes} is not a multiple of 4096`);
    caps.pgsizes = pgsizes;
  }
  if (c.write_multiple !== undefined) {
    if (typeof c.write_multiple !== 'boolean') throw bad('"write_multiple" must be a boolean');
    caps.writeMultiple = c.write_multiple;
  }
  if (c.migration !== undefined) {
    const m = c.migration;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad('"migration" is not an object');
    const mig = m as Record<string, unknown>;
    const pgsize = uint(mig, 'pgsize', 0xffffffff) ?? 4096;
    if (pgsize === 0 || pgsize % 4096 !== 0)
      throw bad(`"migration.pgsize" ${pgsize} is not a multiple of 4096`);
    caps.migration = { pgsize, maxBitmapSize: uint(mig, 'max_bitmap_size', Number.MAX_SAFE_INTEGER) };
  }
  const known = new Set([
    'max_msg_fds',
    'max_data_xfer_size',
    'max_dma_maps',
    'pgsizes',
    'write_multiple',
    'migration',
    'twin_socket',
  ]);
  return { caps, unknown: Object.keys(c).filter((k) => !known.has(k)) };
}

/** Encodes capabilities as the NUL-terminated JSON tail; short on purpose (QEMU's reply buffer is ~214 bytes). */
export function encodeCapabilities(caps: Partial<Capabilities>): Buffer {
  const out: Record<string, unknown> = {};
  if (caps.maxMsgFds !== undefined) out.max_msg_fds = caps.maxMsgFds;
  if (caps.maxDataXferSize !== undefined) out.max_data_xfer_size = caps.maxDataXferSize;
  if (caps.maxDmaMaps !== undefined) out.max_dma_maps = caps.maxDmaMaps;
  if (caps.pgsizes !== undefined) out.pgsizes = caps.pgsizes;
  if (caps.writeMultiple) out.write_multiple = true;
  if (caps.migration) {
    out.migration = { pgsize: caps.migration.pgsize, max_bitmap_size: caps.migration.maxBitmapSize };
  }
  return Buffer.from(`${JSON.stringify({ capabilities: out })}\0`, 'utf8');
}
