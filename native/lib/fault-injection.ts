// Test-only: arms a fault point of the native code (src/fault_injection.h), whose next pass throws
// std::bad_alloc (to prove the exception is contained where src/contain.h says) or, `workerHold`,
// pauses a worker inside its burst. Not exported from the package.
import { binding } from './binding.js';

export type FaultPoint = 'workerBurst' | 'connectionRead' | 'napiCall' | 'irqTimer' | 'workerHold';

export function injectFault(point: FaultPoint): void {
  binding.injectFault(point);
}
