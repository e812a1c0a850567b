/**
 * The rule hardware follows when a queue's configuration changes: which queues start again from
 * descriptor 0 (DataPath applies it, and the data plane's worker in the same step).
 */
import { MAX_QUEUE_PAIRS } from '../constants.js';
import type { VfConfig } from '../pf.js';

/**
 * Queues (bit q) that start again from descriptor 0 with a new configuration, and the queues active
 * before or after it (see queueResets).
 */
export interface QueueResets {
  tx: number;
  rx: number;
  active: { tx: number; rx: number };
}

export const NO_RESETS: QueueResets = { tx: 0, rx: 0, active: { tx: 0, rx: 0 } };

/**
 * What a new queue configuration resets, as hardware does: a queue starts from descriptor 0 when it is
 * (re)configured (CONFIG_VSI_QUEUES programs its context) or enabled again (DPDK's queue start re-posts
 * its ring from 0 and sends ENABLE_QUEUES alone); every other queue goes on where it is.
 */
export function queueResets(before: VfConfig | undefined, cfg: VfConfig): QueueResets {
  let tx = 0;
  let rx = 0;
  for (let q = 0; q < MAX_QUEUE_PAIRS; q++) {
    const bit = 1 << q;
    if (!before || before.tx[q] !== cfg.tx[q] || cfg.txEnabled & ~before.txEnabled & bit) tx |= bit;
    if (!before || before.rx[q] !== cfg.rx[q] || cfg.rxEnabled & ~before.rxEnabled & bit) rx |= bit;
  }
  return {
    tx,
    rx,
    active: { tx: (before?.txEnabled ?? 0) | cfg.txEnabled, rx: (before?.rxEnabled ?? 0) | cfg.rxEnabled },
  };
}
