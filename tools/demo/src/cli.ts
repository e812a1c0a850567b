/** `pnpm demo [--short]`: runs the demo (src/demo.ts); exit 0 when the guests talked through emu. */
import { runDemo } from './demo.js';

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--short');
if (unknown.length > 0) {
  process.stderr.write(`emu-demo: unknown argument ${unknown[0]}\nusage: pnpm demo [--short]\n`);
  process.exit(2);
}
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
try {
  const result = await runDemo({ out: process.stdout, short: args.includes('--short'), signal: stop.signal });
  process.exitCode = result.ok ? 0 : 1;
} catch (err) {
  process.stderr.write(`emu-demo: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
