// A built-in L2 learning switch: MAC learning with aging and moves, unicast to the learned port,
// flooding of broadcast, multicast and unknown unicast, never back out of the ingress port.
//
// The MAC table and the forwarding decisions live in the native data plane (@emu/native's SwitchCore),
// one table for every port: a NIC that offers a native twin (Port.native) is attached there, and frames
// between such NICs go from TX ring to RX ring on the plane's worker thread without JavaScript. Frames
// from JavaScript ports are forwarded through the same core; frames the worker has for JavaScript
// ports come back through its bounded escape queue (docs/architecture.md, "The data plane").
import { DataPlane, SwitchCore, type SwitchCoreCounters } from '@emu/native';
import { BaseNetwork, type Member, type NetworkOptions } from './base-network.js';
import { NetworkError } from './errors.js';
import { formatMac, macAt, parseMac } from './ethernet.js';
import { DROP_REASONS, type NetworkStats, type PortStatsRow } from './port.js';

export const DEFAULT_AGING_MS = 300_000;
export const DEFAULT_MAX_MACS = 8192;

export interface L2SwitchOptions extends NetworkOptions {
  /** How long a learned MAC stays without being seen again (default 300 s, as IEEE 802.1D). */
  agingMs?: number;
  /** MAC table capacity (default 8192): past it, new MACs are not learned and their frames flood. */
  maxMacs?: number;
  /** Milliseconds from any fixed origin (default performance.now()); tests pass a fake clock. The
   * worker's clock for frames between native NICs starts at its value when the switch is made. */
  now?: () => number;
  /** The data plane whose worker forwards between native NICs (default the process's). */
  plane?: DataPlane;
}

export interface MacTableEntry {
  mac: string;
  port: string;
  /** Seconds since the MAC was last seen as a source. */
  ageSeconds: number;
}

/** The switch's counters: its core's (@emu/native's SwitchCore), one definition. */
export type SwitchCounters = SwitchCoreCounters;

export interface SwitchStats extends NetworkStats {
  kind: 'switch';
  macTable: MacTableEntry[];
  counters: SwitchCounters;
  agingSeconds: number;
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
  readonly #core: SwitchCore;
  readonly #ids = new Map<Member, number>();
  readonly #byId = new Map<number, Member>();
  /** Members attached in the data plane (NICs with a native twin). */
  readonly #native = new Set<Member>();

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
    // The core's callback must not keep the switch alive by itself.
    const self = new WeakRef(this);
    this.#core = new SwitchCore(options.plane ?? DataPlane.shared(), {
      agingMs,
      maxMacs,
      now: now(),
      onEscape: (ports, frames, copies) => {
        const sw = self.deref();
        if (sw) sw.#escaped(ports, frames, copies);
      },
    });
  }

  /** The port a MAC was learned on (and not aged out), or undefined. */
  lookup(mac: string): string | undefined {
    const id = this.#core.lookup(macAt(parseMac(mac), 0), this.#now());
    return id === undefined ? undefined : this.#byId.get(id)?.port.name;
  }

  /** The learned MACs, oldest first in learning order. Expired entries are removed first. */
  macTable(): MacTableEntry[] {
    const now = this.#now();
    return this.#core.macTable(now).map(({ mac, port, lastSeen }) => ({
      mac: formatMac(mac),
      port: this.#byId.get(port)?.port.name ?? '?',
      ageSeconds: Math.max(0, Math.floor((now - lastSeen) / 1000)),
    }));
  }

  /** Forgets every learned MAC (frames flood until they are learned again). */
  flush(): void {
    this.#core.flush();
  }

  /** Whether a port was attached in the data plane (its frames to other such ports skip JavaScript). */
  isNative(portName: string): boolean {
    for (const m of this.#native) if (m.port.name === portName) return true;
    return false;
  }

  override stats(): SwitchStats {
    return {
      name: this.name,
      kind: this.kind,
      ports: this.portRows(),
      macTable: this.macTable(),
      counters: this.#core.counters(),
      agingSeconds: this.agingMs / 1000,
    };
  }

  /** Rows as the base network counts them, plus what the core counted itself on native ports. */
  protected override portRows(): PortStatsRow[] {
    return super.portRows().map((row) => {
      const member = [...this.#native].find((m) => m.port.name === row.port);
      const id = member && this.#ids.get(member);
      if (id === undefined) return row;
      const c = this.#core.portCounters(id);
      const drops = { ...row.drops };
      for (const reason of DROP_REASONS) drops[reason] += c.drops[reason];
      return {
        ...row,
        rxFrames: row.rxFrames + c.rxFrames,
        rxBytes: row.rxBytes + c.rxBytes,
        txFrames: row.txFrames + c.txFrames,
        txBytes: row.txBytes + c.txBytes,
        drops,
      };
    });
  }

  protected override onAttach(member: Member): void {
    const native = member.port.native;
    let id: number;
    if (native && native.nic.plane === this.#core.plane) {
      id = native.nic.attach(this.#core, member.mtu);
      this.#native.add(member);
    } else {
      id = this.#core.addPort(member.mtu);
    }
    this.#ids.set(member, id);
    this.#byId.set(id, member);
    if (this.#native.has(member)) {
      native?.mirror?.((on) => {
        if (this.#ids.get(member) === id) this.#core.setMirror(id, on);
      });
      native?.attached?.(true);
    }
  }

  protected override onDetach(member: Member): void {
    const id = this.#ids.get(member);
    if (id === undefined) return;
    this.#ids.delete(member);
    this.#byId.delete(id);
    if (this.#native.delete(member)) {
      member.port.native?.mirror?.(null);
      member.port.native?.nic.detach();
      member.port.native?.attached?.(false);
    } else {
      this.#core.removePort(id);
    }
  }

  protected override forward(from: Member, frame: Buffer): void {
    const id = this.#ids.get(from);
    if (id === undefined) return;
    const to = this.#core.forward(id, frame, this.#now());
    if (to === 'noDestination') {
      from.counters.drops.noDestination++;
      return;
    }
    for (const port of to) {
      const member = this.#byId.get(port);
      if (member) this.deliverTo(member, frame);
    }
  }

  /**
   * Frames the worker had for JavaScript ports (or for NICs that went to their JavaScript path), and
   * capture copies of native ports' frames.
   */
  #escaped(ports: number[], frames: Buffer[], copies: boolean[]): void {
    for (let i = 0; i < ports.length; i++) {
      const member = this.#byId.get(ports[i]);
      if (!member) continue;
      if (copies[i]) member.port.native?.capture?.(frames[i]);
      else this.deliverOutside(member, frames[i]);
    }
  }
}
