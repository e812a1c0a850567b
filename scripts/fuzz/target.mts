/**
 * A JavaScript fuzz target: inputs from a fast-check arbitrary, each checked by `check` (throws on a
 * failure). Its name and its line for `pnpm fuzz --list` are in scripts/fuzz.mjs's table.
 */
import type fc from 'fast-check';

export interface FuzzTarget<T> {
  arbitrary: fc.Arbitrary<T>;
  /** Runs one input; throws when an invariant breaks (an exception from the code under test counts too). */
  check(input: T): void | Promise<void>;
}
