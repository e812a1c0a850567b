// What every network does the same way: attach and detach ports, check frames against the MTU,
// count, catch throwing ports, and serialise sends made from inside deliver() so that a port is
// never re-entered and frames keep their order. Subclasses only decide where a frame goes.

import { NetworkError } from './errors.js';
import { DEFAULT_MTU, ETH_HEADER_LEN, maxFrameLength, validateMtu } from './ethernet.js';
import {
  type Attachment,
  type AttachOptions,
  type Network,
  type NetworkStats,
  type Port,
  PortCounters,
  type PortStatsRow,
  snapshotPortStats,
} from './port.js';

/** Frames sent from inside deliver() wait here; past this many the newest are dropped ('overrun'). */
const MAX_QUEUED = 1024;
/** Queued frames forwarded before yielding to the event loop (a port echoing synchronously forever
 * must not hang the process). */
const DRAIN_BUDGET = 256;

export interface NetworkOptions {
  /**
   * Called when a port's deliver() throws (the frame is counted as an 'error' drop on that port).
   * Default: one process warning per port, then counting only.
   */
  onPortError?: (error: unknown, port: Port) => void;
}

export interface Member {
  readonly port: Port;
  readonly mtu: number;
  readonly counters: PortCounters;
  attached: boolean;
  warned: boolean;
}

function validatePort(port: unknown): asserts port is Port {
  const p = port as Partial<Port> | null;
  if (typeof p !== 'object' || p === null || typeof p.name !== 'string' || typeof p.deliver !== 'function') {
    throw new TypeError('port must be an object with a string name and a deliver(frame) method');
  }
}

export abstract class BaseNetwork implements Network {
  abstract readonly kind: NetworkStats['kind'];
  /** In attach order; a detached member is removed. */
  protected readonly members = new Map<Port, Member>();
  readonly #onPortError: NetworkOptions['onPortError'];
  readonly #queue: { from: Member; frame: Buffer }[] = [];
  #forwarding = false;
  #drainScheduled = false;

  constructor(
    readonly name: string,
    options: NetworkOptions = {},
  ) {
    this.#onPortError = options.onPortError;
  }

  /** Plugs `port` in. Throws EEXIST if it is already attached here, EINVAL for a bad MTU. */
  attach(port: Port, options: AttachOptions = {}): Attachment {
    validatePort(port);
    const mtu = validateMtu(options.mtu ?? DEFAULT_MTU, `${this.name}: port ${port.name}`);
    if (this.members.has(port)) {
      throw new NetworkError('EEXIST', `${this.name}: port ${port.name} is already attached`);
    }
    this.checkAttach(port);
    const member: Member = { port, mtu, counters: new PortCounters(), attached: true, warned: false };
    this.members.set(port, member);
    this.onAttach(member);
    return {
      send: (frame: Buffer) => this.#ingress(member, frame),
      detach: () => this.#detach(member),
      stats: member.counters,
    };
  }

  /** The ports and their counters, in attach order. */
  stats(): NetworkStats {
    return { name: this.name, kind: this.kind, ports: this.portRows() };
  }

  /** The attached ports' names, in attach order. */
  get ports(): string[] {
    return [...this.members.values()].map((m) => m.port.name);
  }

  protected portRows(): PortStatsRow[] {
    return [...this.members.values()].map((m) => ({
      port: m.port.name,
      mtu: m.mtu,
      ...snapshotPortStats(m.counters),
    }));
  }

  /** Throws if `port` may not join (e.g. a full point-to-point link). */
  protected checkAttach(_port: Port): void {}

  /** Called once a member has joined. */
  protected onAttach(_member: Member): void {}

  /** Called once a member has left (after it stops receiving). */
  protected onDetach(_member: Member): void {}

  /** Sends a valid, counted frame from `from` wherever it should go. */
  protected abstract forward(from: Member, frame: Buffer): void;

  /** Hands `frame` to `to`, checking its MTU; false if it was dropped. */
  protected deliverTo(to: Member, frame: Buffer): boolean {
    if (!to.attached) return false;
    if (frame.length > maxFrameLength(to.mtu, frame)) {
      to.counters.drops.oversize++;
      return false;
    }
    try {
      to.port.deliver(frame);
    } catch (error) {
      to.counters.drops.error++;
      this.#reportPortError(to, error);
      return false;
    }
    to.counters.txFrames++;
    to.counters.txBytes += frame.length;
    return true;
  }

  /**
   * Hands `to` a frame that came from outside any send() (e.g. from the data plane's worker), with
   * the same serialisation: what the port sends from inside deliver() is forwarded after it.
   */
  protected deliverOutside(to: Member, frame: Buffer): void {
    if (this.#forwarding) {
      this.deliverTo(to, frame);
      return;
    }
    this.#forwarding = true;
    try {
      this.deliverTo(to, frame);
      this.#drain();
    } finally {
      this.#forwarding = false;
    }
  }

  #ingress(from: Member, input: Uint8Array): void {
    if (!(input instanceof Uint8Array)) {
      throw new TypeError(`${this.name}: port ${from.port.name} sent ${typeof input}, not a Buffer`);
    }
    if (!from.attached) return;
    const frame = Buffer.isBuffer(input)
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const counters = from.counters;
    if (frame.length < ETH_HEADER_LEN) {
      counters.drops.runt++;
      return;
    }
    if (frame.length > maxFrameLength(from.mtu, frame)) {
      counters.drops.oversize++;
      return;
    }
    if (this.#forwarding || this.#queue.length > 0) {
      // Sent from inside a deliver() (or while a drain is pending): forward after the current frame.
      if (this.#queue.length >= MAX_QUEUED) {
        counters.drops.overrun++;
        return;
      }
      counters.rxFrames++;
      counters.rxBytes += frame.length;
      this.#queue.push({ from, frame });
      if (!this.#forwarding) this.#scheduleDrain();
      return;
    }
    counters.rxFrames++;
    counters.rxBytes += frame.length;
    this.#forwarding = true;
    try {
      this.forward(from, frame);
      this.#drain();
    } finally {
      this.#forwarding = false;
    }
  }

  #drain(): void {
    for (let budget = DRAIN_BUDGET; budget > 0 && this.#queue.length > 0; budget--) {
      const { from, frame } = this.#queue.shift()!;
      if (from.attached) this.forward(from, frame);
    }
    if (this.#queue.length > 0) this.#scheduleDrain();
  }

  #scheduleDrain(): void {
    if (this.#drainScheduled) return;
    this.#drainScheduled = true;
    setImmediate(() => {
      this.#drainScheduled = false;
      if (this.#forwarding) return; // the running forward drains on its way out
      this.#forwarding = true;
      try {
        this.#drain();
      } finally {
        this.#forwarding = false;
      }
    });
  }

  #detach(member: Member): void {
    if (!member.attached) return;
    member.attached = false;
    this.members.delete(member.port);
    this.onDetach(member);
  }

  #reportPortError(member: Member, error: unknown): void {
    if (this.#onPortError) {
      try {
        this.#onPortError(error, member.port);
      } catch {
        // A throwing error handler must not break forwarding either.
      }
      return;
    }
    if (member.warned) return;
    member.warned = true;
    const message = error instanceof Error ? error.message : String(error);
    process.emitWarning(
      `${this.name}: port ${member.port.name}: deliver() threw (${message}); further errors are only counted (drops.error)`,
      { code: 'EMU_NETWORK_PORT_ERROR' },
    );
  }
}
