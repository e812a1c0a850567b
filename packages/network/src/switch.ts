// A built-in L2 learning switch: MAC learning with aging and moves, unicast to the learned port,
// flooding of broadcast, multicast and unknown unicast, never back out of the ingress port.
import { BaseNetwork, type Member, type NetworkOptions } from './base-network.js';
import { NetworkError } from './errors.js';
import { formatMac, isGroupDestination, isGroupSource, macAt, parseMac } from './ethernet.js';
import type { NetworkStats } from './port.js';

export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_MAX_MACS = 8192;

export interface L2SwitchOptions extends NetworkOptions {
  /** How long a learned MAC stays without being seen again (default 300 s, as IEEE 802.1D). */
  agingMs?: number;
  /** MAC table capacity (default 8192): past it, new MACs are not learned and their frames flood. */
  maxMacs?: number;
  /** Milliseconds from any fixed origin (default performance.now()); tests pass a fake clock. */
  now?: () => number;
}

export interface MacTableEntry {
  mac: string;
  port: string;
  /** Seconds since the MAC was last seen as a source. */
  ageSeconds: number;
}

export interface SwitchCounters {
  /** MACs learned (new entries). */
  learned: number;
  /** Entries that moved to another port. */
  moved: number;
  /** Entries removed by aging. */
  aged: number;
  /** Source MACs not learned because the table was full. */
  tableFull: number;
  /** Frames flooded: broadcast, multicast and unknown unicast. */
  flooded: number;
  /** Of those, unicast to an unknown (or aged-out) MAC. */
  unknownUnicast: number;
}

export interface SwitchStats extends NetworkStats {
  kind: 'switch';
  macTable: MacTableEntry[];
  counters: SwitchCounters;
  agingSeconds: number;
}

interface Entry {
  member: Member;
  lastSeen: number;
}

const SWITCH_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Whether `name` can name a switch: 1-64 of letters, digits, '_', '.', '-' (not starting with '.' or '-'). */
export function isValidSwitchName(name: string): boolean {
  return SWITCH_NAME.test(name) && name !== 'loopback';
}

export class L2Switch extends BaseNetwork {
  readonly kind = 'switch' as const;
  readonly agingMs: number;
  readonly maxMacs: number;
  readonly #now: () => number;
  readonly #table = new Map<number, Entry>();
  readonly #counters: SwitchCounters = {
    learned: 0,
    moved: 0,
    aged: 0,
    tableFull: 0,
    flooded: 0,
    unknownUnicast: 0,
  };

  constructor(name = 'default', options: L2SwitchOptions = {}) {
    if (typeof name !== 'string' || !isValidSwitchName(name)) {
      throw new NetworkError(
        'EINVAL',
        `invalid switch name ${JSON.stringify(name)}: use 1-64 letters, digits, '_', '.' or '-' (not "loopback")`,
      );
    }
    super(name, options);
    const { agingMs = DEFAULT_AGING_MS, maxMacs = DEFAULT_MAX_MACS, now = () => performance.now() } = options;
    if (typeof agingMs !== 'number' || !(agingMs > 0))
      throw new NetworkError(
        'EINVAL',
        `switch ${name}: agingMs must be a number > 0, got ${String(agingMs)}`,
      );
    if (!Number.isInteger(maxMacs) || maxMacs < 1)
      throw new NetworkError(
        'EINVAL',
        `switch ${name}: maxMacs must be an integer >= 1, got ${String(maxMacs)}`,
      );
    this.agingMs = agingMs;
    this.maxMacs = maxMacs;
    this.#now = now;
  }

  /** The port a MAC was learned on (and not aged out), or undefined. */
  lookup(mac: string): string | undefined {
    const key = macAt(parseMac(mac), 0);
    const entry = this.#fresh(key, this.#now());
    return entry?.member.port.name;
  }

  /** The learned MACs, oldest first in learning order. Expired entries are removed first. */
  macTable(): MacTableEntry[] {
    const now = this.#now();
    this.#sweep(now);
    return [...this.#table].map(([mac, entry]) => ({
      mac: formatMac(mac),
      port: entry.member.port.name,
      ageSeconds: Math.max(0, Math.floor((now - entry.lastSeen) / 1000)),
    }));
  }

  /** Forgets every learned MAC (frames flood until they are learned again). */
  flush(): void {
    this.#table.clear();
  }

  override stats(): SwitchStats {
    return {
      name: this.name,
      kind: this.kind,
      ports: this.portRows(),
      macTable: this.macTable(),
      counters: { ...this.#counters },
      agingSeconds: this.agingMs / 1000,
    };
  }

  protected override onDetach(member: Member): void {
    for (const [mac, entry] of this.#table) if (entry.member === member) this.#table.delete(mac);
  }

  protected override forward(from: Member, frame: Buffer): void {
    const now = this.#now();
    if (!isGroupSource(frame)) this.#learn(macAt(frame, 6), from, now);
    if (isGroupDestination(frame)) {
      this.#flood(from, frame);
      return;
    }
    const entry = this.#fresh(macAt(frame, 0), now);
    if (entry === undefined) {
      this.#counters.unknownUnicast++;
      this.#flood(from, frame);
    } else if (entry.member === from) {
      // The destination is on the segment the frame came from: a switch filters it.
      from.counters.drops.noDestination++;
    } else {
      this.deliverTo(entry.member, frame);
    }
  }

  #learn(mac: number, from: Member, now: number): void {
    const entry = this.#table.get(mac);
    if (entry !== undefined) {
      if (entry.member !== from) {
        entry.member = from;
        this.#counters.moved++;
      }
      entry.lastSeen = now;
      return;
    }
    if (this.#table.size >= this.maxMacs) {
      this.#sweep(now);
      if (this.#table.size >= this.maxMacs) {
        this.#counters.tableFull++;
        return;
      }
    }
    this.#table.set(mac, { member: from, lastSeen: now });
    this.#counters.learned++;
  }

  /** The entry for `mac` unless it has aged out (then it is removed). */
  #fresh(mac: number, now: number): Entry | undefined {
    const entry = this.#table.get(mac);
    if (entry === undefined) return undefined;
    if (now - entry.lastSeen < this.agingMs) return entry;
    this.#table.delete(mac);
    this.#counters.aged++;
    return undefined;
  }

  #sweep(now: number): void {
    for (const [mac, entry] of this.#table) {
      if (now - entry.lastSeen >= this.agingMs) {
        this.#table.delete(mac);
        this.#counters.aged++;
      }
    }
  }

  #flood(from: Member, frame: Buffer): void {
    this.#counters.flooded++;
    let targets = 0;
    for (const member of this.members.values()) {
      if (member === from || !member.attached) continue;
      targets++;
      this.deliverTo(member, frame);
    }
    if (targets === 0) from.counters.drops.noDestination++;
  }
}
