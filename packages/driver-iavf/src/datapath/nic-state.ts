/**
 * What DataPath and the VF's twin in the data plane (@emu/native's IavfNic) share, in NIC_STATE's
 * layout: the queues' heads and every counter. Whichever runs the rings (the worker, or DataPath on
 * the JS thread) counts in the same memory, so statistics never depend on who ran.
 */
import { NIC_STATE } from '@emu/native';
import { MAX_QUEUE_PAIRS } from '../constants.js';

export interface QueueStats {
  packets: number;
  bytes: number;
  /** Dropped: no buffers, queue disabled, or bad descriptors. */
  drops: number;
  /** Descriptors the guest got wrong (addresses, lengths, missing EOP, tails). */
  errors: number;
}

/**
 * Counters kept in the state the data plane's worker shares (NIC_STATE's layout): a plain object whose
 * own enumerable accessors read and write `c[at + i]` for the i-th name.
 */
function sharedCounters<K extends string>(
  c: Float64Array,
  at: number,
  names: readonly K[],
): Record<K, number> {
  const o = {} as Record<K, number>;
  for (const [i, name] of names.entries()) {
    Object.defineProperty(o, name, {
      enumerable: true,
      get: () => c[at + i],
      set: (v: number) => {
        c[at + i] = v;
      },
    });
  }
  return o;
}
const QUEUE_STATS = ['packets', 'bytes', 'drops', 'errors'] as const;
const KINDS = ['unicast', 'multicast', 'broadcast'] as const;

export class NicState {
  /** The bytes the twin is given (IavfNic's `state`). */
  readonly buffer = new ArrayBuffer(NIC_STATE.stateBytes);
  private readonly counters = new Float64Array(this.buffer, NIC_STATE.headsBytes, NIC_STATE.counterCount);
  readonly tx: QueueStats[] = Array.from({ length: MAX_QUEUE_PAIRS }, (_, q) =>
    sharedCounters(this.counters, NIC_STATE.txStats + q * NIC_STATE.queueStats, QUEUE_STATS),
  );
  readonly rx: QueueStats[] = Array.from({ length: MAX_QUEUE_PAIRS }, (_, q) =>
    sharedCounters(this.counters, NIC_STATE.rxStats + q * NIC_STATE.queueStats, QUEUE_STATS),
  );
  /** Packets by destination kind, as virtchnl_eth_stats splits them. */
  readonly kinds = {
    rx: sharedCounters(this.counters, NIC_STATE.rxKinds, KINDS),
    tx: sharedCounters(this.counters, NIC_STATE.txKinds, KINDS),
  };
  /** Each queue's head: the next descriptor the device looks at. */
  readonly txHead = new Uint32Array(this.buffer, 0, MAX_QUEUE_PAIRS);
  readonly rxHead = new Uint32Array(this.buffer, MAX_QUEUE_PAIRS * 4, MAX_QUEUE_PAIRS);

  /** Frames the filters turned away. */
  get filtered(): number {
    return this.counters[NIC_STATE.filtered];
  }
  set filtered(v: number) {
    this.counters[NIC_STATE.filtered] = v;
  }

  /** TX frames the spoof check dropped (also counted in their queue's drops). */
  get spoofed(): number {
    return this.counters[NIC_STATE.spoofed];
  }
}
