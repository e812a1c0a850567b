/**
 * @emu/driver-iavf/testing: a guest for emu_iavf without a VM. SoftIavf drives any vfio-user connection
 * to an emu_iavf device the way Linux 6.12's iavf does (probe, admin queue, virtchnl, rings, interrupts),
 * over a GuestRam it maps to the device; for tests and tools outside this package (the emu command's
 * hostile-client campaign, benchmarks).
 */

export { type FlowSpec, ipv4TcpFrame, ipv4UdpFrame, rawFrame, type TcpSpec } from './frames.js';
export { DEFAULT_IOVA_BASE, GuestRam, type GuestRamOptions, MIB } from './guest-memory.js';
export type { RxFrame } from './soft-iavf/descriptors.js';
export { sleep } from './soft-iavf/io.js';
export { type BringUpOptions, SoftIavf, type SoftIavfOptions } from './soft-iavf/main.js';
export type { TransmitOptions } from './soft-iavf/txrx.js';
