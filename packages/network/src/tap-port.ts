// The TAP backend: a port whose other side is a Linux TAP interface, so the host's kernel
// networking reaches whatever the port is attached to (a NIC, point-to-point; or a switch, as its uplink).
import { TapDevice } from '@emu/native';
import { NetworkError } from './errors.js';
import type { Attachment, AttachOptions, Network, Port } from './port.js';

/** What TapPort needs of a TAP device: @emu/native's TapDevice (tests pass a fake). */
export interface TapBackend {
  readonly name: string;
  write(frame: Uint8Array): void;
  watch(onFrame: (frame: Buffer) => void, onError: (error: Error) => void): void;
  unwatch(): void;
  close(): void;
}

/** Counters from the TAP's side: rx is what the kernel sent out of the interface, tx what was written into it. */
export interface TapStats {
  /** Frames read from the interface (the host sent them toward emu). */
  readonly rxFrames: number;
  readonly rxBytes: number;
  /** Frames written into the interface (the host received them). */
  readonly txFrames: number;
  readonly txBytes: number;
  /** Reads that failed; reading stops at the first (the interface is gone). */
  readonly readErrors: number;
  /** Writes that failed, the frame dropped: EIO while the interface is down is the usual one. */
  readonly writeErrors: number;
  /** The most recent error's message. */
  readonly lastError: string | null;
}

export interface TapPortOptions {
  /** Called when reading fails for good (the interface was deleted). Default: a process warning. */
  onError?: (error: Error) => void;
}

class TapCounters implements TapStats {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  readErrors = 0;
  writeErrors = 0;
  lastError: string | null = null;
}

export class TapPort implements Port {
  readonly name: string;
  readonly ifname: string;
  readonly #backend: TapBackend;
  readonly #counters = new TapCounters();
  readonly #onError: TapPortOptions['onError'];
  #attachment: Attachment | null = null;
  #closed = false;

  /**
   * Opens (creating it if needed) TAP interface `ifname` in this process's network namespace.
   * Needs root or CAP_NET_ADMIN, or a persistent TAP made for this user; throws @emu/native's
   * SystemError (EPERM, ENOENT for a missing /dev/net/tun, EBUSY if it is in use) with a hint.
   */
  static open(ifname: string, options: TapPortOptions = {}): TapPort {
    return new TapPort(TapDevice.open(ifname), options);
  }

  /** Wraps an open TAP device; the port owns it from here on (close() closes it). */
  constructor(backend: TapBackend, options: TapPortOptions = {}) {
    this.#backend = backend;
    this.ifname = backend.name;
    this.name = `tap:${backend.name}`;
    this.#onError = options.onError;
  }

  /** Live counters. */
  get stats(): TapStats {
    return this.#counters;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Attaches to `network` and starts reading the interface (frames the host sends go to the network).
   * One network at a time; the returned attachment's detach() stops reading.
   */
  attachTo(network: Network, options?: AttachOptions): Attachment {
    if (this.#closed) throw new NetworkError('ECLOSED', `${this.name} is closed`);
    if (this.#attachment !== null) {
      throw new NetworkError('EBUSY', `${this.name} is already attached to a network: detach it first`);
    }
    const inner = network.attach(this, options);
    try {
      this.#backend.watch(
        (frame) => this.#fromKernel(frame),
        (error) => this.#readFailed(error),
      );
    } catch (error) {
      inner.detach();
      throw error;
    }
    const attachment: Attachment = {
      send: (frame) => inner.send(frame),
      detach: () => {
        if (this.#attachment !== attachment) return;
        this.#attachment = null;
        this.#backend.unwatch();
        inner.detach();
      },
      stats: inner.stats,
    };
    this.#attachment = attachment;
    return attachment;
  }

  /** The network hands us a frame: write it into the interface. Failures are counted, never thrown. */
  deliver(frame: Buffer): void {
    if (this.#closed) return;
    try {
      this.#backend.write(frame);
    } catch (error) {
      this.#counters.writeErrors++;
      this.#counters.lastError = error instanceof Error ? error.message : String(error);
      return;
    }
    this.#counters.txFrames++;
    this.#counters.txBytes += frame.length;
  }

  /** Detaches and closes the device (a non-persistent interface disappears). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#attachment?.detach();
    this.#closed = true;
    this.#backend.close();
  }

  #fromKernel(frame: Buffer): void {
    this.#counters.rxFrames++;
    this.#counters.rxBytes += frame.length;
    this.#attachment?.send(frame);
  }

  #readFailed(error: Error): void {
    this.#counters.readErrors++;
    this.#counters.lastError = error.message;
    if (this.#onError) this.#onError(error);
    else
      process.emitWarning(`${this.name}: reading stopped: ${error.message}`, {
        code: 'EMU_NETWORK_TAP_ERROR',
      });
  }
}
