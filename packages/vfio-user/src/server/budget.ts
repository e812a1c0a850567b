/**
 * What one client may make the process hold, in one place: a ClientBudget per server (device), drawing
 * on one BudgetPool per process.
 *
 * The process-wide resources (memory maps: vm.max_map_count; fds: RLIMIT_NOFILE; address space for
 * mappings; memory for DMA table entries) are pooled: emu keeps a reserve of each for itself, and the
 * rest is shared evenly among the devices the process serves. A client is refused past its share, and
 * past what the pool has left, so the clients together never take the process to its limits. When a
 * device is added, every share shrinks: a client already holding more than its new share keeps it (a
 * guest's memory is never taken back) but gets nothing more until it is below; the pool's own bound
 * holds throughout. Per-connection resources (queued bytes, DMA requests in flight) have fixed bounds.
 * Each refusal is counted, and logged once per client and resource.
 */
import { readFileSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../logger.js';
import { Errno } from '../protocol/constants.js';
import { ProtocolError } from '../protocol/errors.js';

/** The resources a budget bounds, what a refusal answers, and whether the process's limits pool them. */
export const BUDGET_RESOURCES = {
  /** Ranges in the DMA table, with an fd or not (each costs table memory). Linux VFIO: ENOSPC. */
  dmaMaps: { what: 'DMA maps', errno: Errno.ENOSPC, pooled: true },
  /** DMA maps with an fd: one mmap each, counted against vm.max_map_count. */
  memoryMaps: { what: 'memory maps (DMA maps with an fd)', errno: Errno.ENOSPC, pooled: true },
  /** Bytes of client memory mapped into emu's address space. Linux VFIO, past its memory limit: ENOMEM. */
  mappedBytes: { what: 'mapped bytes', errno: Errno.ENOMEM, pooled: true },
  /** Fds the client made emu hold: interrupt eventfds, and fds of messages not handled yet. */
  fds: { what: 'fds', errno: Errno.ENOSPC, pooled: true },
  /** Reply bytes the client has not read; past it emu stops reading its requests (back-pressure). */
  queuedBytes: { what: 'queued reply bytes', errno: Errno.ENOSPC, pooled: false },
  /** DMA_READ / DMA_WRITE requests emu has in flight to it; past it the next waits for one to finish. */
  dmaRequests: { what: 'DMA requests in flight', errno: Errno.ENOSPC, pooled: false },
} as const;
export type BudgetResource = keyof typeof BUDGET_RESOURCES;
export type PooledResource = {
  [R in BudgetResource]: (typeof BUDGET_RESOURCES)[R]['pooled'] extends true ? R : never;
}[BudgetResource];

/** One resource of a client: what it holds, its limit now, and how often it was refused. */
export interface BudgetLine {
  used: number;
  limit: number;
  refused: number;
}
export type BudgetStats = Record<BudgetResource, BudgetLine>;

/** The process's own limits the pools derive from. */
export interface ProcessLimits {
  /** vm.max_map_count: memory maps a process may have. */
  maxMapCount: number;
  /** RLIMIT_NOFILE (soft): fds a process may have open. */
  maxOpenFiles: number;
  /** Bytes of address space mappings may take (RLIMIT_AS, at most the 47-bit user space). */
  addressSpace: number;
  /** V8's heap limit: what DMA table entries (JavaScript records) draw on. */
  heapBytes: number;
}

/** Table memory one DMA map costs, as an upper bound: its record, its key, its native node. */
const DMA_ENTRY_BYTES = 1024;
const USER_SPACE = 2 ** 47;

/** /proc/sys/vm/max_map_count, /proc/self/limits and V8's heap limit; Linux's defaults where unreadable. */
export function readProcessLimits(): ProcessLimits {
  const read = (path: string) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return '';
    }
  };
  const mapCount = Number.parseInt(read('/proc/sys/vm/max_map_count'), 10);
  const limits = read('/proc/self/limits');
  // "Max open files            1048576              1048576              files"
  const soft = (name: string) => {
    const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(limits);
    return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
  };
  return {
    maxMapCount: Number.isSafeInteger(mapCount) && mapCount > 0 ? mapCount : 65530,
    maxOpenFiles: Number.isFinite(soft('Max open files')) ? soft('Max open files') : 1024,
    addressSpace: Math.min(soft('Max address space'), USER_SPACE),
    heapBytes: getHeapStatistics().heap_size_limit,
  };
}

/**
 * What the process keeps for itself, and so what its clients share: a quarter of the memory maps
 * (V8's heap pages, threads, libraries) and at least 8192; a quarter of the fds and at least 1024; half
 * the address space; half the heap, at DMA_ENTRY_BYTES per DMA map.
 */
export function clientPools(limits: ProcessLimits): Record<PooledResource, number> {
  const afterReserve = (total: number, min: number) =>
    Math.max(0, total - Math.max(min, Math.floor(total / 4)));
  return {
    memoryMaps: afterReserve(limits.maxMapCount, 8192),
    fds: afterReserve(limits.maxOpenFiles, 1024),
    mappedBytes: Math.floor(limits.addressSpace / 2),
    dmaMaps: Math.floor(limits.heapBytes / 2 / DMA_ENTRY_BYTES),
  };
}

/** The process-wide pools every device's ClientBudget draws on. */
export class BudgetPool {
  readonly total: Readonly<Record<PooledResource, number>>;
  private readonly members = new Set<ClientBudget>();

  constructor(total: Record<PooledResource, number> = clientPools(readProcessLimits())) {
    this.total = { ...total };
  }

  /** The devices serving now, which share the pools. */
  get devices(): number {
    return this.members.size;
  }

  /** One device's share of a pool now. */
  share(resource: PooledResource): number {
    return Math.floor(this.total[resource] / Math.max(1, this.members.size));
  }

  /** What every client together holds of a pool. */
  used(resource: PooledResource): number {
    let n = 0;
    for (const b of this.members) n += b.used(resource);
    return n;
  }

  join(budget: ClientBudget): void {
    this.members.add(budget);
  }

  leave(budget: ClientBudget): void {
    this.members.delete(budget);
  }
}

let processPool: BudgetPool | undefined;
/** The pool of this process (made at first use, from its limits then). */
export function processBudgetPool(): BudgetPool {
  processPool ??= new BudgetPool();
  return processPool;
}

export interface ClientBudgetOptions {
  pool: BudgetPool;
  /** Fixed caps below the pool's share: the server's max_dma_maps, its queued-bytes bound, DMA requests. */
  caps: Partial<Record<BudgetResource, number>>;
  /** What a resource holds now, for those measured rather than counted (fds, queued bytes, requests). */
  measure: Partial<Record<BudgetResource, () => number>>;
  log: Logger;
  /** For log lines: the socket path. */
  name: string;
}

/** One device's budget for its client (the current one; counters reset when it goes). */
export class ClientBudget {
  private readonly counted: Record<BudgetResource, number> = zeros();
  private readonly refusals: Record<BudgetResource, number> = zeros();
  private readonly logged = new Set<BudgetResource>();
  /** A cap the client's own VERSION set (its max_dma_maps), until it goes. */
  private clientCaps: Partial<Record<BudgetResource, number>> = {};

  constructor(private readonly options: ClientBudgetOptions) {}

  /** The device serves: it takes its share of the pools. */
  join(): void {
    this.options.pool.join(this);
  }

  leave(): void {
    this.options.pool.leave(this);
  }

  /** A new client: its own caps (from VERSION), and its refusals logged afresh. */
  connected(caps: Partial<Record<BudgetResource, number>> = {}): void {
    this.clientCaps = caps;
    this.logged.clear();
  }

  /** The client went: what it held is gone (the server released it), and so are its caps. */
  disconnected(): void {
    for (const r of Object.keys(this.counted) as BudgetResource[]) this.counted[r] = 0;
    this.clientCaps = {};
  }

  used(resource: BudgetResource): number {
    return this.options.measure[resource]?.() ?? this.counted[resource];
  }

  /** The client's limit of a resource now: the smallest of its caps and its share of the pool. */
  limit(resource: BudgetResource): number {
    let limit = Math.min(
      this.options.caps[resource] ?? Number.MAX_SAFE_INTEGER,
      this.clientCaps[resource] ?? Number.MAX_SAFE_INTEGER,
    );
    if (BUDGET_RESOURCES[resource].pooled)
      limit = Math.min(limit, this.options.pool.share(resource as PooledResource));
    // A DMA map with an fd is a DMA map too.
    if (resource === 'memoryMaps') limit = Math.min(limit, this.limit('dmaMaps'));
    return limit;
  }

  /**
   * Makes sure the client may hold `amount` more of a resource (and, for a counted one, counts it):
   * past its limit, or past what the pool has left, a ProtocolError with the resource's errno, counted
   * and logged once per client.
   */
  take(resource: BudgetResource, amount: number): void {
    const used = this.used(resource);
    const limit = this.limit(resource);
    const spec = BUDGET_RESOURCES[resource];
    let why: string | undefined;
    if (used + amount > limit) {
      why = `the client holds ${used} ${spec.what}, its limit is ${limit}`;
    } else if (spec.pooled) {
      const pool = this.options.pool;
      const left = pool.total[resource as PooledResource] - pool.used(resource as PooledResource);
      if (amount > left)
        why = `the process has ${left} ${spec.what} left for its ${pool.devices} devices' clients`;
    }
    if (why) {
      this.refusals[resource]++;
      if (!this.logged.has(resource)) {
        this.logged.add(resource);
        this.options.log.warn(
          { path: this.options.name, resource, used, limit, asked: amount },
          `client refused ${amount} more ${spec.what}: ${why} (further refusals are only counted)`,
        );
      }
      throw new ProtocolError(spec.errno, `budget: ${amount} more ${spec.what} refused: ${why}`);
    }
    if (!this.options.measure[resource]) this.counted[resource] += amount;
  }

  /** Gives back what take() counted. */
  give(resource: BudgetResource, amount: number): void {
    this.counted[resource] = Math.max(0, this.counted[resource] - amount);
  }

  /** Every resource: held, limit now, refusals since the device was made. */
  stats(): BudgetStats {
    const out = {} as BudgetStats;
    for (const r of Object.keys(BUDGET_RESOURCES) as BudgetResource[]) {
      out[r] = { used: this.used(r), limit: this.limit(r), refused: this.refusals[r] };
    }
    return out;
  }
}

/** The budget stats of a device that has no server. */
export function emptyBudgetStats(): BudgetStats {
  const out = {} as BudgetStats;
  for (const r of Object.keys(BUDGET_RESOURCES) as BudgetResource[])
    out[r] = { used: 0, limit: 0, refused: 0 };
  return out;
}

function zeros(): Record<BudgetResource, number> {
  return Object.fromEntries(Object.keys(BUDGET_RESOURCES).map((r) => [r, 0])) as Record<
    BudgetResource,
    number
  >;
}
