/**
 * The VERSION message's JSON capabilities: one table of rules (CAPABILITY_RULES) that both sides
 * parse the peer's capabilities with, and encoding.
 *
 * Parsing is strict where a lenient parser could be told two things at once: the text must be UTF-8,
 * NUL-terminated, at most MAX_CAPABILITIES_BYTES, plain JSON (no comments, trailing commas), with no
 * key twice in any object (a C peer's json-c keeps the last, ours would keep another); numbers are
 * integers written as such ("1e3", "1.0" and "-1" are refused, as QEMU's qnum_get_try_uint does) and
 * read exactly (pgsizes is a u64 bit mask). A value of the wrong type, or below what emu can work with,
 * refuses the VERSION (EINVAL); a value above what emu can use is clamped (the peer accepts at least
 * that much); an unknown key is ignored (the spec's way to add capabilities) and reported.
 */
import { type AnyNode, parse as parseJson } from '@humanwhocodes/momoa';
import {
  DEFAULT_MAX_DATA_XFER_SIZE,
  DEFAULT_MAX_DMA_MAPS,
  DEFAULT_MAX_MSG_FDS,
  DEFAULT_PGSIZES,
  Errno,
  MAX_DATA_XFER_SIZE,
  MIN_DATA_XFER_SIZE,
  SCM_MAX_FD,
} from './constants.js';
import { ProtocolError } from './errors.js';

export interface Capabilities {
  /** Most fds the sender of these capabilities accepts in one message (0: none). */
  maxMsgFds: number;
  /** Largest `count` of a REGION/DMA read or write the sender accepts. */
  maxDataXferSize: number;
  maxDmaMaps: number;
  /** Page sizes the sender supports in DMA maps, or'ed together (a u64 mask). */
  pgsizes: bigint;
  writeMultiple: boolean;
  /** Legacy migration v1 object; QEMU still sends it. Kept only to be validated and reported. */
  migration?: { pgsize: number; maxBitmapSize?: number };
  /** Whether the sender offers twin-socket mode (emu never enables it: its reply leaves it out). */
  twinSocket?: boolean;
}

export const DEFAULT_CAPABILITIES: Readonly<Capabilities> = {
  maxMsgFds: DEFAULT_MAX_MSG_FDS,
  maxDataXferSize: DEFAULT_MAX_DATA_XFER_SIZE,
  maxDmaMaps: DEFAULT_MAX_DMA_MAPS,
  pgsizes: DEFAULT_PGSIZES,
  writeMultiple: false,
};

/** Longest capabilities text accepted (QEMU's is about 200 bytes). */
export const MAX_CAPABILITIES_BYTES = 4096;
/** Unknown keys reported per VERSION, and the characters of each. */
const MAX_UNKNOWN_REPORTED = 8;
const MAX_KEY_REPORTED = 64;

const U64_MAX = (1n << 64n) - 1n;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const PAGE = 4096n;

type Rule =
  /** An integer in [min, ∞): below min refuses, above clamp is clamped; `check` says what else is wrong. */
  | { type: 'uint'; min: bigint; clamp: bigint; check?: (v: bigint) => string | undefined }
  | { type: 'boolean' }
  | { type: 'object'; fields: Rules };
type Rules = Readonly<Record<string, Rule>>;

const uint = (o: Partial<{ min: bigint; clamp: bigint; check: (v: bigint) => string | undefined }> = {}) =>
  ({ type: 'uint', min: o.min ?? 0n, clamp: o.clamp ?? SAFE, check: o.check }) as const;
/** A page-size mask emu can map in: it must hold a size of 4 KiB or more, and none below. */
const pageSizes = (v: bigint) =>
  v === 0n || v % PAGE !== 0n ? `0x${v.toString(16)} has no page size of 4 KiB or more alone` : undefined;

/** The spec's capabilities (docs/interop/vfio-user.rst, VERSION), and what emu accepts of each. */
export const CAPABILITY_RULES: Rules = {
  // 0: the peer takes no fds (emu then offers no region to mmap). More than Linux passes in one
  // sendmsg would never be used.
  max_msg_fds: uint({ clamp: BigInt(SCM_MAX_FD) }),
  // 0 would make every DMA through messages impossible (or, split naively, endless); a few bytes
  // would split one descriptor into dozens of messages.
  max_data_xfer_size: uint({ min: BigInt(MIN_DATA_XFER_SIZE), clamp: BigInt(MAX_DATA_XFER_SIZE) }),
  max_dma_maps: uint(),
  pgsizes: uint({ clamp: U64_MAX, check: pageSizes }),
  write_multiple: { type: 'boolean' },
  migration: { type: 'object', fields: { pgsize: uint({ check: pageSizes }), max_bitmap_size: uint() } },
  twin_socket: { type: 'object', fields: { supported: { type: 'boolean' }, fd_index: uint() } },
};

const bad = (message: string) => new ProtocolError(Errno.EINVAL, `VERSION capabilities: ${message}`);
const utf8 = new TextDecoder('utf-8', { fatal: true });

type Parsed = { [key: string]: bigint | boolean | Parsed };

/** The text being read (for the exact digits of its numbers) and the unknown keys met so far. */
interface Reading {
  text: string;
  unknown: string[];
}

/** Checks `node` against `rules`; collects unknown keys (dotted) into `r.unknown`. */
function readObject(node: AnyNode, rules: Rules, path: string, r: Reading): Parsed {
  if (node.type !== 'Object') throw bad(`"${path}" is not an object`);
  const out: Parsed = Object.create(null);
  const seen = new Set<string>();
  for (const member of node.members) {
    const key = member.name.type === 'String' ? member.name.value : member.name.name;
    const at = path ? `${path}.${key}` : key;
    if (seen.has(key)) throw bad(`"${at.slice(0, MAX_KEY_REPORTED)}" appears twice`);
    seen.add(key);
    const rule = Object.hasOwn(rules, key) ? rules[key] : undefined;
    if (!rule) {
      if (r.unknown.length < MAX_UNKNOWN_REPORTED) r.unknown.push(at.slice(0, MAX_KEY_REPORTED));
      continue;
    }
    out[key] = readValue(member.value, rule, at, r);
  }
  return out;
}

function readValue(node: AnyNode, rule: Rule, path: string, r: Reading): bigint | boolean | Parsed {
  if (rule.type === 'object') return readObject(node, rule.fields, path, r);
  if (rule.type === 'boolean') {
    if (node.type !== 'Boolean') throw bad(`"${path}" must be a boolean`);
    return node.value;
  }
  const text = node.type === 'Number' && node.range ? r.text.slice(node.range[0], node.range[1]) : '';
  if (!/^(0|[1-9][0-9]*)$/.test(text)) throw bad(`"${path}" must be a non-negative integer`);
  const value = BigInt(text);
  if (value < rule.min) throw bad(`"${path}" ${value} is below the minimum ${rule.min}`);
  if (value > U64_MAX) throw bad(`"${path}" ${value} is above 2^64 - 1`);
  const problem = rule.check?.(value);
  if (problem) throw bad(`"${path}" ${problem}`);
  return value > rule.clamp ? rule.clamp : value;
}

/**
 * Parses the JSON tail of a VERSION message (NUL-terminated) from either side. An empty tail means
 * all defaults. Unknown keys are returned in `unknown` (at most 8, cut to 64 characters) for the
 * caller to log; the spec's capabilities the rules do not take throw a ProtocolError (EINVAL).
 */
export function parseCapabilities(tail: Uint8Array): { caps: Capabilities; unknown: string[] } {
  if (tail.byteLength === 0) return { caps: { ...DEFAULT_CAPABILITIES }, unknown: [] };
  if (tail.byteLength > MAX_CAPABILITIES_BYTES)
    throw bad(`${tail.byteLength} bytes, more than ${MAX_CAPABILITIES_BYTES}`);
  if (tail[tail.byteLength - 1] !== 0) throw bad('JSON is not NUL-terminated');
  let text: string;
  try {
    text = utf8.decode(tail.subarray(0, tail.byteLength - 1));
  } catch {
    throw bad('JSON is not UTF-8');
  }
  let doc: AnyNode;
  try {
    doc = parseJson(text, { mode: 'json', ranges: true }).body;
  } catch (e) {
    throw bad(`malformed JSON (${(e as Error).message})`);
  }
  if (doc.type !== 'Object') throw bad('JSON is not an object');
  const unknown: string[] = [];
  const root = readObject(doc, { capabilities: { type: 'object', fields: CAPABILITY_RULES } }, '', {
    text,
    unknown,
  });
  const c = (root.capabilities ?? {}) as Parsed;
  const num = (v: unknown, fallback: number) => (typeof v === 'bigint' ? Number(v) : fallback);
  const caps: Capabilities = {
    maxMsgFds: num(c.max_msg_fds, DEFAULT_CAPABILITIES.maxMsgFds),
    maxDataXferSize: num(c.max_data_xfer_size, DEFAULT_CAPABILITIES.maxDataXferSize),
    maxDmaMaps: num(c.max_dma_maps, DEFAULT_CAPABILITIES.maxDmaMaps),
    pgsizes: typeof c.pgsizes === 'bigint' ? c.pgsizes : DEFAULT_CAPABILITIES.pgsizes,
    writeMultiple: c.write_multiple === true,
  };
  const mig = c.migration as Parsed | undefined;
  if (mig) {
    caps.migration = { pgsize: num(mig.pgsize, 4096) };
    if (mig.max_bitmap_size !== undefined) caps.migration.maxBitmapSize = num(mig.max_bitmap_size, 0);
  }
  const twin = c.twin_socket as Parsed | undefined;
  if (twin) caps.twinSocket = twin.supported === true;
  return { caps, unknown };
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
  // A u64 mask as the integer it is, not a string: JSON.stringify knows no bigint.
  const text = JSON.stringify({ capabilities: out }, (_k, v) => (typeof v === 'bigint' ? `#${v}#` : v));
  return Buffer.from(`${text.replace(/"#(\d+)#"/g, '$1')}\0`, 'utf8');
}
