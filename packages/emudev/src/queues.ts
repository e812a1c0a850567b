/** The queues a device has: drivers report what the guest set up, back-ends and users read it. */
import type { QueueInfo } from './types.js';

export class QueueTable {
  private readonly queues = new Map<number, QueueInfo>();

  /** @param onChange called with the new state of a queue after each update */
  constructor(private readonly onChange: (q: QueueInfo) => void) {}

  /** Records a queue's setup; fires 'queue-state' when anything about it changed. */
  update(id: number, info: Partial<Omit<QueueInfo, 'id'>>): QueueInfo {
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`queue id ${id} is not a non-negative integer`);
    const before = this.queues.get(id);
    const next: QueueInfo = { id, base: 0n, size: 0, enabled: false, ...before, ...info };
    this.queues.set(id, next);
    if (!before || (Object.keys(next) as Array<keyof QueueInfo>).some((k) => before[k] !== next[k]))
      this.onChange(next);
    return next;
  }

  get(id: number): QueueInfo | undefined {
    const q = this.queues.get(id);
    return q && { ...q };
  }

  list(): QueueInfo[] {
    return [...this.queues.values()].sort((a, b) => a.id - b.id).map((q) => ({ ...q }));
  }

  /** Every queue disabled and forgotten (device reset); fires 'queue-state' for each enabled one. */
  clear(): void {
    const enabled = [...this.queues.values()].filter((q) => q.enabled);
    this.queues.clear();
    for (const q of enabled) this.onChange({ ...q, enabled: false });
  }
}
