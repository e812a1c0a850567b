/**
 * @emu/vfio-user: the vfio-user protocol for Node. A device-side server (VfioUserServer), a VMM-side
 * client (VfioUserClient), the message codec, and PCI config-space helpers.
 */

/** The native table a DmaTable keeps its ranges in (DmaTable.native), for native data paths. */
export type { GuestMemoryTable } from '@emu/native';
export {
  type ClientOptions,
  type DeviceInfoResult,
  type DmaMapOptions,
  type IrqInfoResult,
  type RegionInfoResult,
  type RegionWrite,
  VfioUserClient,
} from './client/client.js';
export {
  consoleLogger,
  DEFAULT_LOG_RATE_LIMIT,
  type Logger,
  type LogLevel,
  type LogRateLimit,
  rateLimitedLogger,
  silentLogger,
} from './logger.js';
export * from './pci/index.js';
export {
  type Capabilities,
  DEFAULT_CAPABILITIES,
  encodeCapabilities,
  parseCapabilities,
} from './protocol/capabilities.js';
export * from './protocol/constants.js';
export { ProtocolError, VfioUserError } from './protocol/errors.js';
export * from './protocol/messages.js';
export { type Struct, StructRangeError, type StructValue, struct } from './protocol/struct.js';
export {
  BUDGET_RESOURCES,
  type BudgetLine,
  BudgetPool,
  type BudgetResource,
  type BudgetStats,
  ClientBudget,
  clientPools,
  emptyBudgetStats,
  type ProcessLimits,
  processBudgetPool,
  readProcessLimits,
} from './server/budget.js';
export type { DeviceSpec, HotArea, MmapArea, RegionHandlers, RegionSpec } from './server/device.js';
export { type DmaRegion, DmaTable, type DmaTableOptions } from './server/dma-table.js';
export { type IrqCounts, IrqTable } from './server/irqs.js';
export {
  type ClientInfo,
  DMA_REQUESTS_IN_FLIGHT,
  emptyServerStats,
  SERVER_MINOR,
  type ServerEvents,
  type ServerOptions,
  type ServerStats,
  type SocketAccess,
  VfioUserServer,
} from './server/server.js';
export { Connection, type ConnectionOptions } from './transport/connection.js';
export { type Message, MessageFramer } from './transport/framer.js';
