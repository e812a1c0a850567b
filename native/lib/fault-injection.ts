// Test-only: arms a fault point of the native code (src/base/fault_injection.h), whose next pass throws
// std::bad_alloc (to prove the exception is contained where src/base/contain.h says) or, `workerHold`,
// pauses a worker inside its burst. Exported as @emu/native/testing, not from the package's main entry.
import { binding } from './binding.js';

export type FaultPoint = 'workerBurst' | 'connectionRead' | 'napiCall' | 'irqTimer' | 'workerHold';

export function injectFault(point: FaultPoint): void {
  binding.injectFault(point);
}

/** A TCP socket whose close(2) waits up to `seconds` (SO_LINGER, unsent data the peer never reads). */
export function lingeringSocket(seconds: number): { fd: number; peer: number; listener: number } {
  return binding.lingeringSocket(seconds);
}
