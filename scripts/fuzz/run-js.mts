/**
 * Runs one JavaScript fuzz target (a module exporting `target: FuzzTarget`) with fast-check: every
 * saved failure first (fuzz/crashes/NAME/*.json: the seed and path fast-check reports, which replay
 * that exact input), then --runs N inputs or --time SECONDS from --seed S. A new failure is saved there
 * and printed; the last line is the summary scripts/fuzz.mjs prints.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import type { FuzzTarget } from './target.mjs';

const [modulePath, name, ...rest] = process.argv.slice(2);
const opt = (key: string) => {
  const i = rest.indexOf(key);
  return i >= 0 ? rest[i + 1] : undefined;
};
const runs = opt('--runs') ? Number(opt('--runs')) : undefined;
const seconds = Number(opt('--time') ?? 30);
const seed = Number(opt('--seed') ?? 1);
const { target } = (await import(pathToFileURL(modulePath).href)) as { target: FuzzTarget<unknown> };
const crashes = join(dirname(modulePath), 'crashes', name);

let executed = 0;
// Targets that talk over sockets are async: fast-check awaits each run.
const property = fc.asyncProperty(target.arbitrary, async (input) => {
  // A turn of the event loop now and then: Node runs native objects' finalizers (and so frees what
  // they hold, e.g. a guest memory table's buffers) from it, and a target that only awaits promises
  // would never give it one.
  if (++executed % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
  try {
    await target.check(input);
  } catch (err) {
    // Said at once: shrinking may take long when each try waits on a timeout.
    if (!reported)
      process.stderr.write(`fuzz: ${name}: an input failed (${(err as Error)?.message}); shrinking it\n`);
    reported = true;
    throw err;
  }
});
let reported = false;

let saved = 0;
for (const file of (existsSync(crashes) ? readdirSync(crashes, { withFileTypes: true }) : []).filter((f) =>
  f.name.endsWith('.json'),
)) {
  const { seed: s, path } = JSON.parse(readFileSync(join(crashes, file.name), 'utf8'));
  try {
    await fc.assert(property, { seed: s, path, endOnFailure: true, numRuns: 1 });
  } catch (err) {
    process.stderr.write(
      `${(err as Error).message}\nfuzz: ${name}: the saved crash input ${file.name} fails again\n`,
    );
    process.exit(1);
  }
  saved++;
}

const started = performance.now();
const result = await fc.check(property, {
  seed,
  numRuns: runs ?? Number.MAX_SAFE_INTEGER,
  interruptAfterTimeLimit: runs === undefined ? seconds * 1000 : undefined,
  markInterruptAsFailure: false,
});
const elapsed = (performance.now() - started) / 1000;
if (result.failed) {
  mkdirSync(crashes, { recursive: true });
  const file = join(crashes, `seed-${result.seed}-${Date.now()}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ seed: result.seed, path: result.counterexamplePath, error: String(result.errorInstance) }, null, 2)}\n`,
  );
  process.stderr.write(`${fc.defaultReportMessage(result)}\nfuzz: ${name} FAILED: replay saved in ${file}\n`);
  process.exit(1);
}
process.stdout.write(
  `fuzz: ${name}: ${executed} execs in ${elapsed.toFixed(1)} s (${Math.round(executed / elapsed)}/s), 0 crashes, ${saved} saved crash inputs replayed\n`,
  // A target may hold servers open: the run is over.
  () => process.exit(0),
);
