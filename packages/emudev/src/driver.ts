/**
 * What a driver author writes: an EmudevDriver (name, config schema, probe) whose probe returns a
 * DeviceImpl (config space, region handlers, attributes, hooks), using the DeviceContext it is given
 * for guest memory, interrupts and queue reporting. Drivers never see sockets or fds.
 */
import type { IrqLines } from '@emu/native';
import type { IrqCounts, IrqIndexName, Logger, PciConfigSpace, RegionSpec } from '@emu/vfio-user';
import type { z } from 'zod';
import type { GuestMemory } from './memory.js';
import type { QueueTable } from './queues.js';
import type { DeviceCounters, DoorbellInfo, SelftestResult } from './types.js';

/** A typed attribute: validated on set, described for users. */
export interface AttributeSpec<T = unknown> {
  description: string;
  /** Validates (and may transform) values given to setAttr. */
  schema: z.ZodType<T>;
  get(): T;
  /** Absent for read-only attributes. */
  set?(value: T): void;
}

// Each attribute has its own value type; `any` lets a map hold them all and still type each `set`.
// biome-ignore lint/suspicious/noExplicitAny: a heterogeneous map of typed attributes
export type AttributeMap = Record<string, AttributeSpec<any>>;

export interface DeviceImpl {
  /** PCI config space: identity, BARs, capabilities. */
  config: PciConfigSpace;
  /** Handlers of the device's regions by index: BAR0-5, ROM (6). */
  regions: Partial<Record<number, RegionSpec>>;
  /** IRQ counts, when they differ from what config space implies. */
  irqs?: Partial<IrqCounts>;
  /** Most queues the device can have (0 if it has none). */
  maxQueues?: number;
  /** Doorbell registers, for back-ends that watch them. */
  doorbells?: DoorbellInfo[];
  attributes?: AttributeMap;
  /** Called when the device starts serving (after its socket listens) and stops (before it closes). */
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
  /** Back to power-on state. Config space is reset by emudev; this resets the device's own state. */
  reset?(): void;
  /**
   * The client went away (its memory is still mapped while this runs). Stop all DMA the device does
   * on its own (rings, queues, mailboxes) until a guest sets it up again: the next client's memory
   * may sit where this one's rings were. emudev clears Bus Master Enable as well, so no DMA happens
   * before the next guest's driver enables bus mastering.
   */
  disconnected?(): void;
  /** Release everything; the device is gone after this. */
  close?(): void | Promise<void>;
  /** A one-line summary of the device's state for status displays, e.g. link and traffic of a NIC. */
  status?(): string;
  /** Traffic counters by queue (and a NIC's link), read by `emu stats` and the metrics endpoint. */
  counters?(): DeviceCounters;
  /** The driver's own checks; emudev adds generic ones (config space, regions). */
  selftest?(): SelftestResult['checks'] | Promise<SelftestResult['checks']>;
}

/** Interrupts, by vector of an IRQ index (MSI-X unless said otherwise). */
export interface DeviceIrqs {
  /** Signals a vector; false if the client has not enabled it (or masked it: it fires at unmask). */
  trigger(vector: number, index?: IrqIndexName): boolean;
  enabled(vector: number, index?: IrqIndexName): boolean;
  /**
   * The index's lines themselves, for a device whose interrupt logic runs in native code (threads of
   * its own): they trigger them as trigger() does, with the client's eventfds and mask bits as the
   * client set them. The same lines from configure() to close(); undefined before and after.
   */
  lines(index?: IrqIndexName): IrqLines | undefined;
}

/** What a driver gets from emudev to do its work. */
export interface DeviceContext {
  readonly name: string;
  readonly log: Logger;
  /** The guest memory the client mapped. */
  readonly memory: GuestMemory;
  readonly irqs: DeviceIrqs;
  /** Where the driver reports the queues the guest set up. */
  readonly queues: QueueTable;
}

export interface EmudevDriver<S extends z.ZodObject = z.ZodObject> {
  /** Lower-case letters and underscores, e.g. 'emu_gpio'; devices are named NAME + a number. */
  name: string;
  /** The kind of device, e.g. 'gpio', 'net'. */
  type: string;
  /** One line for `emu --help`. */
  description: string;
  /** The driver's configuration (devargs keys besides `path`), with defaults and descriptions. */
  config: S;
  /** Creates a device from a validated configuration. */
  probe(ctx: DeviceContext, config: z.infer<S>): DeviceImpl | Promise<DeviceImpl>;
  /** Called after the device's close(), to release what probe took outside the device. */
  remove?(impl: DeviceImpl): void | Promise<void>;
}

/** Identity function that gives a driver literal its full type. */
export function defineDriver<S extends z.ZodObject>(driver: EmudevDriver<S>): EmudevDriver<S> {
  return driver;
}

export const DRIVER_NAME = /^[a-z][a-z_]*[a-z_]$/;
