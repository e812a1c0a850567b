// Classic libpcap capture files (what tcpdump -w writes; tshark and Wireshark read them):
// a 24-byte file header, then per packet a 16-byte record header and the bytes.
// https://www.tcpdump.org/manpages/pcap-savefile.5.html
import { closeSync, constants, fchmodSync, fstatSync, openSync, writeSync, writevSync } from 'node:fs';
import { NetworkError } from './errors.js';
import type { Attachment, Port } from './port.js';

export const PCAP_MAGIC_MICROS = 0xa1b2c3d4;
export const PCAP_MAGIC_NANOS = 0xa1b23c4d;
export const LINKTYPE_ETHERNET = 1;
export const DEFAULT_SNAPLEN = 65535;
const FILE_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
/** Buffered bytes that force a write at once rather than at the end of the tick. */
const FLUSH_BYTES = 256 * 1024;

export interface PcapWriterOptions {
  /** Bytes kept per packet (default 65535); longer frames are cut, keeping their original length. */
  snaplen?: number;
  /** Microseconds since the epoch (default: wall clock at open + a monotonic clock since). */
  now?: () => bigint;
  /** Called once if writing fails (ENOSPC...): capture stops, the network keeps running. Default: a process warning. */
  onError?: (error: Error) => void;
  /**
   * Replace a file already at the path (default false: an existing file is an error, so a capture never
   * clobbers something by mistake). A symbolic link at the path is refused either way.
   */
  overwrite?: boolean;
}

/** Microseconds since the epoch that never go backwards (hrtime from a wall-clock origin). */
function monotonicMicros(): () => bigint {
  const origin = BigInt(Date.now()) * 1000n;
  const start = process.hrtime.bigint();
  return () => origin + (process.hrtime.bigint() - start) / 1000n;
}

/**
 * Writes frames to a pcap file (LINKTYPE_ETHERNET, microsecond timestamps, little-endian). Records
 * are buffered within one event-loop turn and written with one writev at its end (or at once past
 * 256 KiB), so a reader (tshark -r, tail -f | tshark -r -) sees every packet while emu runs.
 * Frames are referenced, not copied, until then: they are immutable once sent (see Port).
 */
export class PcapWriter {
  readonly path: string;
  readonly snaplen: number;
  #fd: number;
  readonly #now: () => bigint;
  readonly #onError: ((error: Error) => void) | undefined;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #flushScheduled = false;
  #packets = 0;
  #bytes = FILE_HEADER_LEN;
  #error: Error | null = null;

  private constructor(path: string, fd: number, snaplen: number, options: PcapWriterOptions) {
    this.path = path;
    this.#fd = fd;
    this.snaplen = snaplen;
    this.#now = options.now ?? monotonicMicros();
    this.#onError = options.onError;
  }

  /**
   * Creates `path` (mode 0600: captures hold guest traffic) and writes the file header. An existing
   * file is EEXIST unless `overwrite`; a symbolic link is refused (O_NOFOLLOW), so nobody can point the
   * capture at a file of their choosing.
   */
  static open(path: string, options: PcapWriterOptions = {}): PcapWriter {
    if (typeof path !== 'string' || path.length === 0) {
      throw new NetworkError(
        'EINVAL',
        `pcap: the path must be a non-empty string, got ${JSON.stringify(path)}`,
      );
    }
    const snaplen = options.snaplen ?? DEFAULT_SNAPLEN;
    if (!Number.isInteger(snaplen) || snaplen < 14 || snaplen > 0x3ffffff) {
      throw new NetworkError('EINVAL', `pcap ${path}: snaplen must be an integer from 14 to 67108863`);
    }
    const header = Buffer.alloc(FILE_HEADER_LEN);
    header.writeUInt32LE(PCAP_MAGIC_MICROS, 0);
    header.writeUInt16LE(2, 4); // version 2.4
    header.writeUInt16LE(4, 6);
    header.writeInt32LE(0, 8); // thiszone: timestamps are UTC
    header.writeUInt32LE(0, 12); // sigfigs
    header.writeUInt32LE(snaplen, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    const { O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW, O_NONBLOCK, O_CLOEXEC } =
      constants as typeof constants & { O_CLOEXEC: number };
    // O_NONBLOCK: a FIFO planted at the path would otherwise hold the open (and emu) until a reader came.
    const flags =
      O_WRONLY |
      O_CREAT |
      O_NOFOLLOW |
      O_NONBLOCK |
      (O_CLOEXEC ?? 0) |
      (options.overwrite ? O_TRUNC : O_EXCL);
    let fd: number;
    try {
      fd = openSync(path, flags, 0o600);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        throw new NetworkError(
          'EEXIST',
          `pcap ${path}: the file exists; remove it, pick another path, or ask to overwrite it`,
        );
      }
      if (code === 'ELOOP') {
        throw new NetworkError('EINVAL', `pcap ${path}: is a symbolic link; give the capture file itself`);
      }
      if (code === 'ENXIO') {
        throw new NetworkError('EINVAL', `pcap ${path}: is a FIFO nobody reads; give a regular file`);
      }
      throw error;
    }
    if (!fstatSync(fd).isFile()) {
      closeSync(fd);
      throw new NetworkError('EINVAL', `pcap ${path}: is not a regular file; give a regular file`);
    }
    try {
      if (options.overwrite) fchmodSync(fd, 0o600);
      writeSync(fd, header);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return new PcapWriter(path, fd, snaplen, options);
  }

  /** Packets recorded so far. */
  get packets(): number {
    return this.#packets;
  }

  /** The file's size once everything pending is written. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Why capture stopped, if a write failed. */
  get error(): Error | null {
    return this.#error;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /** Records one frame, stamped now (or at `timestampMicros` since the epoch). Ignored once closed or failed. */
  write(frame: Uint8Array, timestampMicros?: bigint): void {
    if (this.#fd < 0) return;
    const micros = timestampMicros ?? this.#now();
    const caplen = Math.min(frame.length, this.snaplen);
    const record = Buffer.allocUnsafe(RECORD_HEADER_LEN);
    record.writeUInt32LE(Number(micros / 1_000_000n) >>> 0, 0);
    record.writeUInt32LE(Number(micros % 1_000_000n), 4);
    record.writeUInt32LE(caplen, 8);
    record.writeUInt32LE(frame.length, 12);
    this.#pending.push(record, caplen === frame.length ? frame : frame.subarray(0, caplen));
    this.#pendingBytes += RECORD_HEADER_LEN + caplen;
    this.#bytes += RECORD_HEADER_LEN + caplen;
    this.#packets++;
    if (this.#pendingBytes >= FLUSH_BYTES) this.flush();
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Writes everything pending now. */
  flush(): void {
    if (this.#fd < 0 || this.#pending.length === 0) return;
    let chunks = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    try {
      // writev may write less than asked (and takes at most IOV_MAX buffers): go on from there.
      while (chunks.length > 0) {
        const batch = chunks.slice(0, 1024);
        let written = writevSync(this.#fd, batch);
        if (written === 0) throw new Error('writev wrote nothing');
        let i = 0;
        while (i < batch.length && written >= batch[i].length) {
          written -= batch[i].length;
          i++;
        }
        chunks = chunks.slice(i);
        if (written > 0) chunks[0] = chunks[0].subarray(written);
      }
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  /** Flushes and closes the file. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.flush();
    if (this.#fd < 0) return; // the flush failed and closed it
    const fd = this.#fd;
    this.#fd = -1;
    closeSync(fd);
  }

  #fail(error: Error): void {
    this.#error = error;
    const fd = this.#fd;
    this.#fd = -1;
    try {
      closeSync(fd);
    } catch {
      // already failing
    }
    if (this.#onError) this.#onError(error);
    else {
      process.emitWarning(`pcap ${this.path}: capture stopped: ${error.message}`, {
        code: 'EMU_NETWORK_PCAP_ERROR',
      });
    }
  }
}

/** An attachment made by withCapture, whose capture can be changed while the port stays attached. */
export interface CapturedAttachment extends Attachment {
  /** Where frames are recorded now; null: nowhere. */
  readonly writer: PcapWriter | null;
  /** Records from now on into `writer` (null: stops recording). The old writer is left open. */
  setWriter(writer: PcapWriter | null): void;
}

/**
 * Captures everything `port` sends and receives into `writer` (or, while it is null, nothing): attaches
 * a stand-in for `port` with `connect` (e.g. `(p) => sw.attach(p, { mtu })`) and returns that
 * attachment, wrapped so sends are recorded too. Frames the port sends are recorded as offered, even
 * ones the network then drops as malformed. A port's native twin stays native: the switch copies the
 * frames it forwards without JavaScript to the writer (NativePort.capture), and only while there is
 * one (NativePort.mirror). Writers stay open after detach (close them yourself).
 */
export function withCapture(
  port: Port,
  initial: PcapWriter | null,
  connect: (port: Port) => Attachment,
): CapturedAttachment {
  const twin = port.native;
  let writer = initial;
  let attached = true;
  let setMirror: ((on: boolean) => void) | null = null;
  const recorder: Port = {
    name: port.name,
    deliver: (frame) => {
      writer?.write(frame);
      port.deliver(frame);
    },
    native: twin && {
      nic: twin.nic,
      attached: (on) => twin.attached?.(on),
      capture: (frame) => {
        if (attached) writer?.write(frame);
      },
      mirror: (set) => {
        setMirror = set;
        set?.(writer !== null);
      },
    },
  };
  const inner = connect(recorder);
  return {
    send: (frame) => {
      if (attached && writer !== null && frame instanceof Uint8Array) writer.write(frame);
      inner.send(frame);
    },
    detach: () => {
      attached = false;
      inner.detach();
    },
    get stats() {
      return inner.stats;
    },
    get writer() {
      return writer;
    },
    setWriter: (next) => {
      writer = next;
      setMirror?.(next !== null);
    },
  };
}

export interface PcapRecord {
  /** Microseconds since the epoch. */
  timestampMicros: bigint;
  /** Length on the wire (the frame may have been cut to the snaplen). */
  originalLength: number;
  data: Buffer;
}

export interface PcapFile {
  linktype: number;
  snaplen: number;
  records: PcapRecord[];
}

/** Parses a classic pcap file (either byte order, micro- or nanosecond timestamps). Throws on anything else or a truncated file. */
export function readPcap(data: Buffer): PcapFile {
  if (data.length < FILE_HEADER_LEN)
    throw new NetworkError('EINVAL', 'pcap: shorter than the 24-byte file header');
  let le: boolean;
  let nanos: boolean;
  const magicLe = data.readUInt32LE(0);
  const magicBe = data.readUInt32BE(0);
  if (magicLe === PCAP_MAGIC_MICROS || magicLe === PCAP_MAGIC_NANOS) {
    le = true;
    nanos = magicLe === PCAP_MAGIC_NANOS;
  } else if (magicBe === PCAP_MAGIC_MICROS || magicBe === PCAP_MAGIC_NANOS) {
    le = false;
    nanos = magicBe === PCAP_MAGIC_NANOS;
  } else {
    throw new NetworkError('EINVAL', `pcap: bad magic 0x${magicLe.toString(16)} (not a classic pcap file)`);
  }
  const u16 = (offset: number) => (le ? data.readUInt16LE(offset) : data.readUInt16BE(offset));
  const u32 = (offset: number) => (le ? data.readUInt32LE(offset) : data.readUInt32BE(offset));
  if (u16(4) !== 2) throw new NetworkError('EINVAL', `pcap: unsupported version ${u16(4)}.${u16(6)}`);
  const snaplen = u32(16);
  const linktype = u32(20) & 0x0fffffff;
  const records: PcapRecord[] = [];
  let offset = FILE_HEADER_LEN;
  while (offset < data.length) {
    if (offset + RECORD_HEADER_LEN > data.length) {
      throw new NetworkError('EINVAL', `pcap: truncated record header at byte ${offset}`);
    }
    const seconds = BigInt(u32(offset));
    const fraction = BigInt(u32(offset + 4));
    const caplen = u32(offset + 8);
    const originalLength = u32(offset + 12);
    const start = offset + RECORD_HEADER_LEN;
    if (start + caplen > data.length) {
      throw new NetworkError('EINVAL', `pcap: record at byte ${offset} runs past the end of the file`);
    }
    records.push({
      timestampMicros: seconds * 1_000_000n + (nanos ? fraction / 1000n : fraction),
      originalLength,
      data: data.subarray(start, start + caplen),
    });
    offset = start + caplen;
  }
  return { linktype, snaplen, records };
}
