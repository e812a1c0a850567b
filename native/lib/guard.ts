import { binding } from './binding.js';

export interface GuardStats {
  /** Faults the SIGBUS guard caught: touches of mapped pages whose file had shrunk away under them. */
  faults: number;
  /** Host address of the last one (0n if none). */
  lastAddress: bigint;
  /** Whether the guard's handler is installed (it is, once anything was mapped). */
  installed: boolean;
}

/**
 * The SIGBUS guard over every MappedMemory (src/memory/guard.h): when a client shrinks a file it mapped into
 * us, a touch of a page past its new end would raise SIGBUS and kill the process. The guard makes that
 * page a private zero page instead (the access completes, reads zeros, and its writes go nowhere) and
 * counts the fault, per mapping (MappedMemory.faults) and here. A mapping that faulted is poisoned:
 * its copies and windows refuse with a RangeError and a GuestMemoryTable no longer reaches it, since
 * the client broke the memory it handed over. SIGBUS anywhere else keeps its usual outcome.
 */
export function guardStats(): GuardStats {
  return binding.guardStats();
}
