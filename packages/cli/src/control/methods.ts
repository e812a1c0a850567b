/**
 * What the control socket can be asked: one row per method, with its parameters as a zod schema (checked
 * before the handler runs) and a line for `emu ctl methods`. Handlers work through the same VdevBus and
 * device attributes as the rest of emu, so anything they refuse is refused with the device's own error.
 */

import { isAbsolute } from 'node:path';
import type { EmuDevice, TextKind } from '@emu/emudev';
import { EmudevError, textProblem } from '@emu/emudev';
import type { DataPlane } from '@emu/native';
import type { VdevBus } from '@emu/vdev-bus';
import { z } from 'zod';
import { type LevelLogger, LOG_LEVELS } from '../logger.js';
import { deviceSnapshot, statsSnapshotInSlices } from '../snapshot.js';

export interface ControlContext {
  bus: VdevBus;
  plane: DataPlane;
  logger: LevelLogger;
  /** Date.now() when emu started. */
  startedAt: number;
  version: string;
}

interface MethodSpec<S extends z.ZodType> {
  description: string;
  params: S;
  handle(ctx: ControlContext, params: z.infer<S>): unknown;
}

const method = <S extends z.ZodType>(spec: MethodSpec<S>) => spec;

const none = z.object({}).strict();
/** A string an operator gives, held to emu's one rule for such text (emudev's operator-text). */
const text = (kind: TextKind) =>
  z
    .string()
    .min(1)
    .superRefine((s, ctx) => {
      const why = textProblem(s, kind);
      if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
    });
const deviceName = text('name').describe('a device name, e.g. emu_iavf0');
const attributeName = text('key');
const absolutePath = text('path').refine(
  isAbsolute,
  'must be an absolute path (emu ctl makes relative ones absolute)',
);

const device = (ctx: ControlContext, name: string): EmuDevice => ctx.bus.require(name);

/** A device's attribute, or an error that says the driver has none by that name. */
function needAttribute(d: EmuDevice, attribute: string, what: string): void {
  if (!d.attributes().some((a) => a.name === attribute)) {
    throw new EmudevError('ENOTSUP', `${d.name} (driver ${d.driver.name}) has no ${what}`);
  }
}

function summary(d: EmuDevice) {
  const s = deviceSnapshot(d);
  return {
    name: s.name,
    driver: s.driver,
    type: s.type,
    state: s.state,
    path: s.socket.path,
    connected: s.socket.connected,
    ...(s.link ? { link: s.link } : {}),
    status: s.status,
  };
}

export const METHODS = {
  'emu.info': method({
    description: "emu's version, process id, uptime and memory",
    params: none,
    handle: (ctx) => {
      // Node's own figures: the JavaScript heap apart from the rest, to tell a leak from the heap settling.
      const m = process.memoryUsage();
      return {
        version: ctx.version,
        pid: process.pid,
        uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
        logLevel: ctx.logger.level,
        memory: { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external },
      };
    },
  }),
  'emu.methods': method({
    description: 'the methods this socket answers',
    params: none,
    handle: (): Array<{ name: string; description: string }> =>
      Object.entries(METHODS as Record<string, { description: string }>).map(([name, m]) => ({
        name,
        description: m.description,
      })),
  }),
  'devices.list': method({
    description: 'every device: driver, state, socket, whether a client is connected, link',
    params: none,
    handle: (ctx) => ctx.bus.devices().map(summary),
  }),
  'devices.add': method({
    description: 'probe a device from devargs and serve it (hot-add)',
    params: z.object({ devargs: z.string().min(1) }).strict(),
    handle: async (ctx, { devargs }) => summary(await ctx.bus.probe(devargs)),
  }),
  'devices.remove': method({
    description: 'remove a device: its client is dropped and its socket deleted (hot-remove)',
    params: z.object({ device: deviceName }).strict(),
    handle: async (ctx, { device: name }) => {
      await ctx.bus.remove(name);
      return { removed: name };
    },
  }),
  'attributes.list': method({
    description: "a device's attributes with their values and whether they can be set",
    params: z.object({ device: deviceName }).strict(),
    handle: (ctx, { device: name }) => {
      const d = device(ctx, name);
      return d.attributes().map((a) => ({ ...a, value: d.getAttr(a.name) }));
    },
  }),
  'attributes.get': method({
    description: "one attribute's value",
    params: z.object({ device: deviceName, attribute: attributeName }).strict(),
    handle: (ctx, { device: name, attribute }) => device(ctx, name).getAttr(attribute),
  }),
  'attributes.set': method({
    description: 'set an attribute (checked against its schema)',
    params: z.object({ device: deviceName, attribute: attributeName, value: z.unknown() }).strict(),
    handle: (ctx, { device: name, attribute, value }) => {
      const d = device(ctx, name);
      d.setAttr(attribute, value);
      return d.getAttr(attribute);
    },
  }),
  'link.set': method({
    description: "set a NIC's link up or down; the guest gets a link event",
    params: z.object({ device: deviceName, up: z.boolean() }).strict(),
    handle: (ctx, { device: name, up }) => {
      const d = device(ctx, name);
      needAttribute(d, 'link', 'link to set');
      d.setAttr('link', up);
      return { device: name, up: d.getAttr('link') };
    },
  }),
  'stats.get': method({
    description: 'counters of every device (or one) and its queues, and of the data plane',
    params: z.object({ device: deviceName.optional() }).strict(),
    handle: (ctx, { device: name }) =>
      statsSnapshotInSlices(
        name === undefined ? ctx.bus.devices() : [device(ctx, name)],
        ctx.plane,
        ctx.startedAt,
      ),
  }),
  'capture.start': method({
    description: 'capture what a NIC sends and receives to a pcap file (created mode 0600)',
    params: z
      .object({ device: deviceName, path: absolutePath, overwrite: z.boolean().default(false) })
      .strict(),
    handle: (ctx, { device: name, path, overwrite }) => {
      const d = device(ctx, name);
      needAttribute(d, 'capture', 'pcap capture');
      d.setAttr('capture', { path, overwrite });
      return { device: name, capture: d.getAttr('capture') };
    },
  }),
  'capture.stop': method({
    description: "stop a NIC's pcap capture (the file is closed)",
    params: z.object({ device: deviceName }).strict(),
    handle: (ctx, { device: name }) => {
      const d = device(ctx, name);
      needAttribute(d, 'capture', 'pcap capture');
      const was = d.getAttr('capture');
      if (was === null) throw new EmudevError('EINVAL', `${name} is not capturing`);
      d.setAttr('capture', null);
      return { device: name, stopped: was };
    },
  }),
  'log.setLevel': method({
    description: 'change the log level (what emu writes to stderr): debug, info, warn, error, silent',
    params: z.object({ level: z.enum(LOG_LEVELS) }).strict(),
    handle: (ctx, { level }) => {
      const was = ctx.logger.level;
      ctx.logger.level = level;
      return { level, was };
    },
  }),
} satisfies Record<string, MethodSpec<z.ZodType>>;

export type MethodName = keyof typeof METHODS;
