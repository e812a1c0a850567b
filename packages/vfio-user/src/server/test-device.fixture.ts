/**
 * A small device for the server's tests: BAR0 registers (a scratch area and an "IRQ doorbell"),
 * BAR2 backed by a memfd with two mmap-able areas, BAR4 holding the MSI-X table and PBA.
 */
import { closeFd, MappedMemory, memfdCreate } from '@emu/native';
import { PciConfigSpace } from '../pci/index.js';
import type { DeviceSpec } from './device.js';
import { type ServerOptions, VfioUserServer } from './server.js';
import { captureLogger, tempDir } from './test-env.fixture.js';

export const IDS = { vendorId: 0x1af4, deviceId: 0x10f0, classCode: 0xff0000 };
/** Writing n here raises MSI-X vector n. */
export const REG_DOORBELL = 0x10;
export const REG_RESETS = 0x14;
export const MSIX_VECTORS = 4;
export const BAR2_SIZE = 0x4000;

export interface TestDevice {
  spec: DeviceSpec;
  bar0: Buffer;
  bar2fd: number;
  bar2: MappedMemory;
  attach(server: VfioUserServer): void;
  dispose(): void;
  writes: Array<{ offset: number; data: Buffer }>;
}

export function makeTestDevice(): TestDevice {
  const config = new PciConfigSpace({
    identity: { ...IDS, revision: 1 },
    bars: [
      { index: 0, kind: 'mem32', size: 0x1000 },
      { index: 2, kind: 'mem32', size: BAR2_SIZE },
      { index: 4, kind: 'mem32', size: 0x2000 },
    ],
    capabilities: [
      { id: 'pm' },
      { id: 'msix', tableSize: MSIX_VECTORS, tableBar: 4, tableOffset: 0, pbaBar: 4, pbaOffset: 0x1000 },
      { id: 'pcie' },
    ],
  });
  const bar0 = Buffer.alloc(0x1000);
  const bar2fd = memfdCreate('emu-test-bar2', BAR2_SIZE);
  const bar2 = MappedMemory.map(bar2fd, 0, BAR2_SIZE);
  const bar2bytes = new Uint8Array(bar2.buffer);
  const writes: TestDevice['writes'] = [];
  let server: VfioUserServer | undefined;
  let resets = 0;
  const spec: DeviceSpec = {
    config,
    regions: {
      0: {
        read: (offset, length) => {
          bar0.writeUInt32LE(resets, REG_RESETS);
          return bar0.subarray(offset, offset + length);
        },
        write: (offset, data) => {
          writes.push({ offset, data: Buffer.from(data) });
          data.copy(bar0, offset);
          if (offset === REG_DOORBELL && data.length === 4) server?.triggerIrq('msix', data.readUInt32LE(0));
        },
      },
      2: {
        read: (offset, length) => bar2bytes.slice(offset, offset + length),
        write: (offset, data) => bar2bytes.set(data, offset),
        mmap: {
          fd: bar2fd,
          areas: [
            { offset: 0x1000, size: 0x1000 },
            { offset: 0x2000, size: 0x2000 },
          ],
        },
      },
      4: {
        read: (_offset, length) => Buffer.alloc(length),
        write: () => {},
      },
    },
    reset: () => {
      resets++;
      bar0.fill(0);
    },
  };
  return {
    spec,
    bar0,
    bar2fd,
    bar2,
    writes,
    attach: (s) => {
      server = s;
    },
    dispose: () => {
      bar2.unmap();
      closeFd(bar2fd);
    },
  };
}

/**
 * Mocha hooks for the common case: per test, a fresh directory, the test device and a captured log;
 * `serve(options)` starts a VfioUserServer on them (closed after the test).
 */
export function serverPerTest() {
  const t = {
    dir: undefined as unknown as ReturnType<typeof tempDir>,
    dev: undefined as unknown as TestDevice,
    log: undefined as unknown as ReturnType<typeof captureLogger>,
    server: undefined as unknown as VfioUserServer,
    serve(options: Omit<ServerOptions, 'path' | 'logger'> = {}): VfioUserServer {
      t.server = new VfioUserServer(t.dev.spec, {
        path: t.dir.path('dev.sock'),
        logger: t.log.logger,
        ...options,
      }).listen();
      return t.server;
    },
  };
  beforeEach(() => {
    t.dir = tempDir();
    t.dev = makeTestDevice();
    t.log = captureLogger();
  });
  afterEach(() => {
    t.server?.close();
    t.server = undefined as unknown as VfioUserServer;
    t.dev.dispose();
    t.dir.cleanup();
  });
  return t;
}
