/**
 * @emu/emudev: the device abstraction emu drivers are written against (after DPDK's proposed
 * rte_emudev). A driver describes a device (config space, regions, attributes, hooks); emudev serves it
 * over vfio-user and gives back-ends and users one API for its lifecycle, memory, queues and events.
 */

/** The logger shape every emu package takes (pino-compatible). */
export type { Logger } from '@emu/vfio-user';
export { type DeviceOptions, EmuDevice } from './device.js';
export {
  type AttributeMap,
  type AttributeSpec,
  type DeviceContext,
  type DeviceImpl,
  type DeviceIrqs,
  DRIVER_NAME,
  defineDriver,
  type EmudevDriver,
} from './driver.js';
export { EmudevError } from './errors.js';
export { GuestMemory } from './memory.js';
export {
  showText,
  showValue,
  TEXT_LIMITS,
  type TextKind,
  textProblem,
  valueTextProblem,
} from './operator-text.js';
export { QueueTable } from './queues.js';
export { defaultRegistry, EmudevRegistry } from './registry.js';
export * from './types.js';
export { buildSteps, buildStepsSync, UndoStack } from './undo.js';
