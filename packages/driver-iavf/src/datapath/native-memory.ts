/**
 * Guest memory as the native ring code sees it: a GuestMemoryTable (@emu/native) built from emudev's
 * GuestMemory. Ranges the VMM mapped with an fd are direct (their mmap, by zero-copy view); the others
 * are indirect, so that native code hands packets touching them back to the TypeScript path, which
 * reaches them with DMA messages.
 *
 * The table is rebuilt lazily: when a ring or buffer is not found in it (a DMA_MAP since the last
 * build), the caller calls sync() and tries again. A DMA_UNMAP needs nothing: the table drops a range
 * as soon as its mapping's buffer is detached, which MappedMemory.unmap does before munmap, and every
 * ring operation runs synchronously on the JS thread, where the unmap runs too.
 */
import type { GuestMemory } from '@emu/emudev';
import { GuestMemoryTable } from '@emu/native';

export class NativeGuestMemory {
  readonly table = new GuestMemoryTable();
  /** Rebuilds, for tests and status. */
  syncs = 0;

  constructor(private readonly memory: GuestMemory) {}

  /** Rebuilds the table from what the client mapped now. */
  sync(): void {
    this.syncs++;
    this.table.clear();
    for (const r of this.memory.table()) {
      const access = { readable: r.readable, writable: r.writable };
      let view: Uint8Array | undefined;
      if (r.direct && r.size <= BigInt(Number.MAX_SAFE_INTEGER)) {
        try {
          view = this.memory.view(r.iova, Number(r.size), r.readable ? 'read' : 'write');
        } catch {
          view = undefined; // larger than one ArrayBuffer can be: leave it to DMA messages
        }
      }
      try {
        if (view && view.byteLength > 0) this.table.add(r.iova, view, access);
        else this.table.addIndirect(r.iova, r.size, access);
      } catch {
        // An overlap cannot happen (the DMA table refuses them); a range we cannot list stays out.
      }
    }
  }

  /** Whether [iova, iova + length) is in one range mapped with an fd, allowing writes (rings). */
  direct(iova: bigint, length: number): boolean {
    return this.memory.view(iova, length, 'write') !== undefined;
  }
}
