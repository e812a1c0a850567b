/**
 * A small writer and reader for the "newc" cpio format (magic 070701), the only format the Linux
 * kernel's initramfs unpacker accepts. Written here rather than taken from a package or from `cpio(1)`:
 * the format is a 110-byte ASCII header per entry, so ~150 lines give us byte-for-byte deterministic
 * archives (fixed mtime, uid 0), device nodes without root or mknod, no dependency, and no host tool.
 */

const MAGIC = '070701';
const HEADER_SIZE = 110;
const TRAILER = 'TRAILER!!!';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export interface CpioEntry {
  /** Path inside the archive, without a leading slash (e.g. `bin/busybox`). */
  name: string;
  /** Full st_mode: type bits | permission bits. */
  mode: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** File contents, or the link target for a symlink. Empty for directories and devices. */
  data?: Uint8Array;
  /** For character and block devices. */
  rdevMajor?: number;
  rdevMinor?: number;
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cpio field out of range: ${n}`);
  return n.toString(16).padStart(8, '0');
}

/** Normalizes `/a//b/./c/` to `a/b/c`; rejects `..` so an archive can't write outside its root. */
export function normalizeArchivePath(path: string): string {
  const parts: string[] = [];
  for (const p of path.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new Error(`cpio: '..' is not allowed in archive paths: ${path}`);
    parts.push(p);
  }
  if (parts.length === 0) throw new Error(`cpio: empty archive path: ${JSON.stringify(path)}`);
  return parts.join('/');
}

function encodeEntry(e: CpioEntry, ino: number): Uint8Array[] {
  const name = Buffer.from(`${e.name}\0`, 'utf8');
  const data = e.data ?? new Uint8Array(0);
  const isDir = (e.mode & S_IFMT) === S_IFDIR;
  const header =
    MAGIC +
    hex8(ino) +
    hex8(e.mode) +
    hex8(e.uid ?? 0) +
    hex8(e.gid ?? 0) +
    hex8(isDir ? 2 : 1) +
    hex8(e.mtime ?? 0) +
    hex8(data.length) +
    hex8(0) + // devmajor
    hex8(0) + // devminor
    hex8(e.rdevMajor ?? 0) +
    hex8(e.rdevMinor ?? 0) +
    hex8(name.length) +
    hex8(0); // check
  const chunks: Uint8Array[] = [Buffer.from(header, 'ascii'), name];
  const namePad = pad4(HEADER_SIZE + name.length);
  if (namePad) chunks.push(new Uint8Array(namePad));
  if (data.length) {
    chunks.push(data);
    const dataPad = pad4(data.length);
    if (dataPad) chunks.push(new Uint8Array(dataPad));
  }
  return chunks;
}

/**
 * Builds a newc archive. Parent directories are added automatically (the kernel's unpacker does not
 * create them), each path is written once (a later add replaces an earlier one), and entries keep
 * their insertion order (so directories come before their contents).
 */
export class CpioWriter {
  private readonly entries = new Map<string, CpioEntry>();

  constructor(private readonly defaults: { mtime?: number; dirMode?: number } = {}) {}

  private ensureParents(name: string): void {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const existing = this.entries.get(dir);
      if (!existing) {
        this.entries.set(dir, {
          name: dir,
          mode: S_IFDIR | (this.defaults.dirMode ?? 0o755),
          mtime: this.defaults.mtime,
        });
      } else if ((existing.mode & S_IFMT) !== S_IFDIR) {
        throw new Error(`cpio: ${dir} is not a directory`);
      }
    }
  }

  add(entry: CpioEntry): this {
    const name = normalizeArchivePath(entry.name);
    this.ensureParents(name);
    const prev = this.entries.get(name);
    if (prev && (prev.mode & S_IFMT) === S_IFDIR && (entry.mode & S_IFMT) === S_IFDIR) {
      // Re-adding a directory only updates its permissions; it keeps its position.
      prev.mode = entry.mode;
      return this;
    }
    this.entries.delete(name);
    this.entries.set(name, { mtime: this.defaults.mtime, ...entry, name });
    return this;
  }

  dir(path: string, perm = 0o755): this {
    return this.add({ name: path, mode: S_IFDIR | perm });
  }

  file(path: string, data: Uint8Array | string, perm = 0o644): this {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.add({ name: path, mode: S_IFREG | perm, data: bytes });
  }

  symlink(path: string, target: string): this {
    return this.add({ name: path, mode: S_IFLNK | 0o777, data: Buffer.from(target, 'utf8') });
  }

  charDevice(path: string, major: number, minor: number, perm = 0o600): this {
    return this.add({ name: path, mode: S_IFCHR | perm, rdevMajor: major, rdevMinor: minor });
  }

  has(path: string): boolean {
    return this.entries.has(normalizeArchivePath(path));
  }

  get size(): number {
    return this.entries.size;
  }

  /** The archive bytes, ending with the TRAILER!!! entry; the length is a multiple of 4. */
  toBuffer(): Buffer {
    const chunks: Uint8Array[] = [];
    let ino = 1;
    for (const e of this.entries.values()) chunks.push(...encodeEntry(e, ino++));
    chunks.push(...encodeEntry({ name: TRAILER, mode: 0, mtime: 0 }, 0));
    return Buffer.concat(chunks);
  }
}

export interface ParsedCpioEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  ino: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Buffer;
}

/**
 * Parses one or more concatenated newc archives (as the kernel does with an initrd made of several
 * archives). Zero padding between archives is skipped. Trailer entries are not returned.
 */
export function readCpio(buf: Uint8Array): ParsedCpioEntry[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: ParsedCpioEntry[] = [];
  let off = 0;
  while (off < b.length) {
    if (b[off] === 0) {
      off++;
      continue;
    }
    if (off + HEADER_SIZE > b.length) throw new Error(`cpio: truncated header at ${off}`);
    const magic = b.toString('ascii', off, off + 6);
    if (magic !== MAGIC) throw new Error(`cpio: bad magic ${JSON.stringify(magic)} at ${off}`);
    const field = (i: number) => {
      const s = b.toString('ascii', off + 6 + i * 8, off + 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new Error(`cpio: bad header field ${i} at ${off}`);
      return Number.parseInt(s, 16);
    };
    const ino = field(0);
    const mode = field(1);
    const uid = field(2);
    const gid = field(3);
    const nlink = field(4);
    const mtime = field(5);
    const filesize = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const namesize = field(11);
    const nameStart = off + HEADER_SIZE;
    if (namesize < 1 || nameStart + namesize > b.length) throw new Error(`cpio: bad name size at ${off}`);
    const name = b.toString('utf8', nameStart, nameStart + namesize - 1);
    const dataStart = nameStart + namesize + pad4(HEADER_SIZE + namesize);
    if (dataStart + filesize > b.length) throw new Error(`cpio: truncated data for ${name}`);
    const data = Buffer.from(b.subarray(dataStart, dataStart + filesize));
    off = dataStart + filesize + pad4(filesize);
    if (name === TRAILER) continue;
    out.push({ name, mode, uid, gid, nlink, mtime, ino, rdevMajor, rdevMinor, data });
  }
  return out;
}
