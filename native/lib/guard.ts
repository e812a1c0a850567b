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
 * The SIGBUS guard over every MappedMemory (src/guard.h): when a client shrinks a file it mapped into
 * us, a touch of a page past its new end would raise SIGBUS and kill the process. The guard makes that
 * page, and the rest of the mapping after it, private zero pages instead (the access completes, reads
 * zeros, and its writes go nowhere) and counts the fault, per mapping (MappedMemory.faults) and here.
 * SIGBUS anywhere else keeps its usual outcome.
 */
export function guardStats(): GuardStats {
  return binding.guardStats();
}
