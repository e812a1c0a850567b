export { CAPABILITY_IDS } from './capabilities.js';
export { PciConfigSpace, type PciWriteListener } from './config-space.js';
export * from './constants.js';
export {
  type PciBar,
  type PciBarInfo,
  type PciBarKind,
  type PciCapability,
  type PciCapabilityId,
  type PciCapabilityInfo,
  PciConfigError,
  type PciConfigOptions,
  type PciIdentity,
  type PciLinkSpeed,
  type PciLinkWidth,
  type PciMsiState,
  type PciMsixState,
  type PciPowerState,
} from './types.js';
