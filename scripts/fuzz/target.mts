/** A JavaScript fuzz target: inputs from a fast-check arbitrary, each checked by `check` (throws on a failure). */
import type fc from 'fast-check';

export interface FuzzTarget<T> {
  /** One line for `pnpm fuzz --list`. */
  description: string;
  arbitrary: fc.Arbitrary<T>;
  /** Runs one input; throws when an invariant breaks (an exception from the code under test counts too). */
  check(input: T): void | Promise<void>;
  /** After every run (fds closed, memory released…). */
  cleanup?(): void;
}
