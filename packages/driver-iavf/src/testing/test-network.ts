/**
 * The other end of the emulated NIC's link, for tests: what the device transmits is collected in `sent`,
 * and `inject` hands the device a frame as a network would. Passed to the device as IavfOptions.connect
 * (Harness option `network`).
 */
import type { IavfOptions, NetworkLink } from '../device.js';

export class TestNetwork {
  /** Every frame the device sent, in order, as the device handed it over. */
  readonly sent: Uint8Array[] = [];
  /** connect() was called (once, when the device was built). */
  connects = 0;
  /** The device let go of the link (device closed). */
  detached = false;
  private receive?: (frame: Uint8Array) => void;
  private readonly waiters = new Set<() => void>();

  /** IavfOptions.connect: the device joins this network. */
  readonly connect: NonNullable<IavfOptions['connect']> = (receive): NetworkLink => {
    this.connects++;
    this.receive = receive;
    this.detached = false;
    return {
      send: (frame) => {
        this.sent.push(frame);
        for (const wake of this.waiters) wake();
      },
      detach: () => {
        this.detached = true;
        this.receive = undefined;
      },
    };
  };

  /** A frame from the network to the device. */
  inject(frame: Uint8Array): void {
    if (!this.receive) throw new Error('TestNetwork: no device is connected');
    this.receive(frame);
  }

  /** Removes and returns what was sent so far. */
  take(): Uint8Array[] {
    return this.sent.splice(0);
  }

  /** Waits until at least `count` frames have been sent (in total, in `sent`); returns them all. */
  async waitSent(count: number, timeoutMs = 2000): Promise<Uint8Array[]> {
    if (this.sent.length >= count) return this.sent;
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        if (this.sent.length < count) return;
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(wake);
        reject(new Error(`network: ${this.sent.length} frames sent, ${count} awaited for ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(wake);
    });
    return this.sent;
  }

  /** Waits `ms` and returns how many frames were sent meanwhile (to show that nothing was). */
  async quietFor(ms: number): Promise<number> {
    const before = this.sent.length;
    await new Promise((r) => setTimeout(r, ms));
    return this.sent.length - before;
  }
}
