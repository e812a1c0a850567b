/**
 * The DMA table at the size a vIOMMU guest gives it: the cost of one DMA_MAP, lookup and DMA_UNMAP
 * with 65535 ranges mapped, as a ratio to the same with 1000 (the reference, same run). O(log n)
 * operations keep the ratio near 1; a table scanned per operation would make it ~65. Fd-less
 * ranges, as QEMU maps plain RAM: the table alone, no mmap. `pnpm --filter @emu/vfio-user bench`.
 */
import { DmaTable } from '../src/server/dma-table.js';

const PAGE = 0x1000n;

function perOp(count: number): { map: number; find: number; unmap: number } {
  const table = new DmaTable(65535);
  const at = (i: number) => 0x10_0000_0000n + BigInt(i) * 2n * PAGE;
  let t = process.hrtime.bigint();
  const regions = [];
  for (let i = 0; i < count; i++) {
    regions.push(table.add({ address: at(i), size: PAGE, readable: true, writable: true, fileOffset: 0n }));
  }
  const map = Number(process.hrtime.bigint() - t) / count;
  t = process.hrtime.bigint();
  let found = 0;
  for (let i = 0; i < count; i++) if (table.find(at((i * 7919) % count) + 16n, 64)) found++;
  const find = Number(process.hrtime.bigint() - t) / count;
  if (found !== count) throw new Error(`found ${found} of ${count}`);
  t = process.hrtime.bigint();
  for (const r of regions) table.remove(r);
  const unmap = Number(process.hrtime.bigint() - t) / count;
  return { map, find, unmap };
}

// Warm up the JIT, then measure small and large in one run.
perOp(5000);
const small = perOp(1000);
const large = perOp(65535);
const row = (name: string, k: 'map' | 'find' | 'unmap') =>
  console.log(
    `  ${name.padEnd(7)} ${(small[k] / 1000).toFixed(2).padStart(6)} µs at 1000 ranges, ${(large[k] / 1000).toFixed(2).padStart(6)} µs at 65535: ratio ${(large[k] / small[k]).toFixed(2)}`,
  );
console.log('DMA table, per operation (reference: the same operation with 1000 ranges mapped)');
row('map', 'map');
row('lookup', 'find');
row('unmap', 'unmap');
