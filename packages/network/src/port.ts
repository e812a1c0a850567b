// The contract between a network and what plugs into it (a NIC's data path, a TAP, a test).
//
// Frames are whole Ethernet frames without FCS. Both calls are synchronous. A frame is immutable
// once sent: the network may hand the same Buffer to several ports (a flood) and may keep it a
// little (the pcap writer until the end of the tick, a re-entrant send until the current one is
// done). So never modify a Buffer after send(), nor one given to deliver(); copy to keep changing it.

import type { IavfNic } from '@emu/native';

/**
 * A NIC's twin in the native data plane (@emu/native's IavfNic): a switch on the same plane attaches it
 * there, so frames between such NICs never reach JavaScript, and copies them to `capture` when a pcap
 * capture wants them.
 */
export interface NativePort {
  readonly nic: IavfNic;
  /** The network attached the twin (true), or detached it (false). */
  attached?(native: boolean): void;
  /**
   * A capture of the port (withCapture): a copy of each frame the twin sent or got natively, on the JS
   * thread, some time after (through the data plane's bounded escape queue; past it, counted in the
   * switch's `captureDrops`).
   */
  capture?(frame: Buffer): void;
  /**
   * The switch that attached the twin hands over how to turn its copies to `capture` on and off (at
   * attach; null at detach), so a capture can start and stop while the NIC stays native.
   */
  mirror?(set: ((on: boolean) => void) | null): void;
}

/** Something that plugs into a network: the network hands it frames. */
export interface Port {
  /** For stats, the MAC table and errors, e.g. 'emu_iavf0' or 'tap:tap0'. */
  readonly name: string;
  /**
   * The network hands the port a frame (valid: at least a header, at most the port's MTU + header).
   * Called synchronously from inside some port's send(), possibly this port's own (loopback). A
   * throw is caught and counted as an 'error' drop: it never reaches the sender.
   */
  deliver(frame: Buffer): void;
  /** Its native twin, if it has one (only switches use it). */
  readonly native?: NativePort;
}

/** A port's plug in a network, returned by attach(). */
export interface Attachment {
  /**
   * The port offers a frame to the network. Malformed frames (shorter than 14 bytes, longer than
   * the port's MTU + header) are dropped and counted, never thrown. After detach() this does nothing.
   */
  send(frame: Buffer): void;
  /** Leaves the network: no more deliveries, the MAC table forgets the port. Idempotent. */
  detach(): void;
  /** Live counters (read them any time; snapshotPortStats copies them). */
  readonly stats: PortStats;
}

export interface AttachOptions {
  /** The port's MTU (frames up to MTU + 14 bytes, + 4 with a VLAN tag). Default 1500. */
  mtu?: number;
}

/** Why a frame was dropped. */
export type DropReason =
  /** Shorter than an Ethernet header (14 bytes). */
  | 'runt'
  /** Longer than the port's MTU + header, on the way in or out. */
  | 'oversize'
  /** Nowhere to go: no other port, or the destination MAC is behind the port it came from. */
  | 'noDestination'
  /** Too many frames sent from inside deliver() calls (a port echoing synchronously). */
  | 'overrun'
  /** The port's deliver() threw. */
  | 'error';

export const DROP_REASONS: readonly DropReason[] = Object.freeze([
  'runt',
  'oversize',
  'noDestination',
  'overrun',
  'error',
]);

/**
 * A port's counters, seen from the network's side as on a switch port: `rx` is what the network
 * received from the port (its send() calls that were accepted), `tx` what the network delivered to
 * the port. A NIC's own view is the reverse (its tx is the port's rx). Dropped frames are counted
 * only under `drops`, on the port they came from (or, for an egress oversize or a deliver() error,
 * on the port they were going to).
 */
export interface PortStats {
  readonly rxFrames: number;
  readonly rxBytes: number;
  readonly txFrames: number;
  readonly txBytes: number;
  readonly drops: Readonly<Record<DropReason, number>>;
}

/** The mutable counters behind an attachment's `stats`. */
export class PortCounters implements PortStats {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  readonly drops: Record<DropReason, number> = {
    runt: 0,
    oversize: 0,
    noDestination: 0,
    overrun: 0,
    error: 0,
  };
}

/** A plain copy of a port's counters. */
export function snapshotPortStats(stats: PortStats): PortStats {
  return {
    rxFrames: stats.rxFrames,
    rxBytes: stats.rxBytes,
    txFrames: stats.txFrames,
    txBytes: stats.txBytes,
    drops: { ...stats.drops },
  };
}

/** The sum of a port's drops. */
export function totalDrops(stats: PortStats): number {
  let total = 0;
  for (const reason of DROP_REASONS) total += stats.drops[reason];
  return total;
}

/** One row of a network's stats table. */
export interface PortStatsRow extends PortStats {
  port: string;
  mtu: number;
}

/** What every network reports (L2Switch adds its MAC table). */
export interface NetworkStats {
  name: string;
  kind: 'switch' | 'point-to-point' | 'loopback';
  ports: PortStatsRow[];
}

/** What a switch, a point-to-point link and loopback have in common. */
export interface Network {
  readonly name: string;
  readonly kind: NetworkStats['kind'];
  attach(port: Port, options?: AttachOptions): Attachment;
  stats(): NetworkStats;
}
