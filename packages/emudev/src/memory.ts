/**
 * Guest memory for drivers: the table of what the client mapped, and reads and writes that take the
 * direct path (mmap of the client's fd) when there is one and DMA messages otherwise.
 */
import type { GuestMemoryTable, VfioUserServer } from '@emu/vfio-user';
import { type MemRegion, memRegionOf } from './types.js';

export class GuestMemory {
  private server?: VfioUserServer;

  /** @internal emudev binds the transport while the device serves. */
  bind(server: VfioUserServer | undefined): void {
    this.server = server;
  }

  /** What the client mapped, by address. Empty when no client is connected. */
  table(): MemRegion[] {
    return this.server ? this.server.dma.regions.map(memRegionOf) : [];
  }

  /**
   * The same table in native code (@emu/native), for native data paths: ring walks look addresses up
   * there, bounds-checked, O(log n), and miss while DMA is disabled. Undefined when not serving.
   */
  get nativeTable(): GuestMemoryTable | undefined {
    return this.server?.dma.native;
  }

  /** Whether the device may DMA now: a client is there and the guest set Bus Master Enable. */
  get dmaEnabled(): boolean {
    return this.server?.dma.dmaEnabled ?? false;
  }

  /** True when [iova, iova+length) lies in one mapped range allowing `access`. */
  contains(iova: bigint, length: number, access: 'read' | 'write' = 'read'): boolean {
    const hit = this.server?.dma.find(iova, length);
    return !!hit && (access === 'read' ? hit.region.readable : hit.region.writable);
  }

  /** Reads guest memory; rejects with a RangeError naming the range when it is not mapped for reading. */
  async read(iova: bigint, length: number): Promise<Buffer> {
    return this.need().dmaRead(iova, length);
  }

  /** Writes guest memory; rejects (never throws) like read. */
  async write(iova: bigint, data: Uint8Array): Promise<void> {
    return this.need().dmaWrite(iova, data);
  }

  /**
   * A zero-copy view, or undefined when the range is not reachable directly (not mapped, mapped
   * without an fd, or without the access, or DMA disabled). The view goes dead (length 0) when the
   * range is unmapped.
   */
  view(iova: bigint, length: number, access: 'read' | 'write' = 'read'): Uint8Array | undefined {
    try {
      return this.server?.dma.view(iova, length, access);
    } catch {
      return undefined; // not reachable directly: the DMA table says why (a RangeError)
    }
  }

  private need(): VfioUserServer {
    if (!this.server) throw new RangeError('guest memory: no client is connected');
    return this.server;
  }
}
