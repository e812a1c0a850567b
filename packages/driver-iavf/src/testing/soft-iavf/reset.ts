/**
 * A VF reset as the driver watches it through registers: VFGEN_RSTAT reaching COMPLETED or VFACTIVE
 * (iavf_check_reset_complete), and ARQLEN.ENABLE dropping to 0 (how iavf_reset_task notices a reset).
 */
import { IAVF, RSTAT_VFR_STATE_MASK, VFR_COMPLETED, VFR_VFACTIVE } from '../iavf-defs.js';
import type { AdminQueue } from './adminq.js';
import { type Bar0, sleep } from './io.js';

async function vfrState(regs: Bar0): Promise<number> {
  return (await regs.rd32(IAVF.VFGEN_RSTAT)) & RSTAT_VFR_STATE_MASK;
}

/** iavf_check_reset_complete: VFGEN_RSTAT reads COMPLETED or VFACTIVE. Returns the state read. */
export async function waitResetComplete(regs: Bar0, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rstat = await vfrState(regs);
    if (rstat === VFR_COMPLETED || rstat === VFR_VFACTIVE) return rstat;
    if (Date.now() > deadline) throw new Error(`VFGEN_RSTAT stayed ${rstat} for ${timeoutMs} ms`);
    await sleep(1);
  }
}

/**
 * iavf_reset_task's waits: ARQLEN.ENABLE to drop (detected, or not within 2.5 s: "Never saw reset" is not
 * fatal), then VFGEN_RSTAT to reach VFACTIVE, the distinct states seen on the way in order.
 */
export async function waitVfReset(
  regs: Bar0,
  aq: AdminQueue,
  timeoutMs: number,
): Promise<{ detected: boolean; rstatSeen: number[] }> {
  // IAVF_RESET_WAIT_DETECTED_COUNT: 500 × 5-10 ms.
  let detected = false;
  const detectDeadline = Date.now() + Math.min(timeoutMs, 2500);
  while (Date.now() < detectDeadline) {
    if (!(await aq.arqEnabled())) {
      detected = true;
      break;
    }
    await sleep(1);
  }
  const rstatSeen: number[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rstat = await vfrState(regs);
    if (rstatSeen[rstatSeen.length - 1] !== rstat) rstatSeen.push(rstat);
    if (rstat === VFR_VFACTIVE) return { detected, rstatSeen };
    if (Date.now() > deadline)
      throw new Error(`Reset never finished: VFGEN_RSTAT ${rstat} after ${timeoutMs} ms`);
    await sleep(1);
  }
}
