#!/usr/bin/env node
// pnpm fuzz [TARGET...] [--runs N | --time SECONDS] [--seed S] [--list]: every fuzz target (or those
// named), one after another, each for N inputs or SECONDS (default 30) from seed S (default 1), after
// replaying its saved crash inputs. Native targets run under libFuzzer with ASan + UBSan
// (native/scripts/fuzz.sh), JavaScript ones under fast-check (scripts/fuzz/run-js.mts). Exit 1 at the
// first failure, whose input is saved next to the target (commit it with the fix). docs/reliability.md.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGETS = {
  ring: {
    what: 'native TX walk, frame building (checksums, SCTP CRC32c, TSO, VLAN), RX write-back, on hostile guest memory (libFuzzer, ASan, UBSan)',
    command: (args) => ['bash', join(root, 'native/scripts/fuzz.sh'), 'ring', ...args],
  },
  framer: {
    what: 'the vfio-user message framer every connection reads through: hostile streams and fds, framed as sent and as the kernel glues them; the same frames, every fd handed over or released once, the bound on held fds (libFuzzer, ASan, UBSan)',
    command: (args) => ['bash', join(root, 'native/scripts/fuzz.sh'), 'framer', ...args],
  },
  adminq: {
    what: 'AdminQueue over hostile guest memory: ring registers, descriptors and buffers, replies, resets (fast-check)',
    module: 'packages/driver-iavf/fuzz/admin-queue.fuzz.ts',
  },
  stream: {
    what: 'VfioUserServer: message stream and dispatch, fds of every kind; DMA table, fds and client checked after each input (fast-check)',
    module: 'packages/vfio-user/fuzz/stream.fuzz.ts',
  },
  fdless: {
    what: 'fd-less RAM: random rings, tails and frames through the ring engine over directly mapped memory and over DMA messages, frames, guest memory, counters and interrupts compared (fast-check)',
    module: 'packages/driver-iavf/fuzz/fdless.fuzz.ts',
  },
  control: {
    what: 'the control socket: JSON-RPC from several clients (any method and params, batches, random text, split and long lines, unread floods, half-closes); bounds, fds and a good client checked after each input (fast-check)',
    module: 'packages/cli/fuzz/control.fuzz.ts',
  },
  metrics: {
    what: 'the metrics endpoint: HTTP from several clients (any method, target, version and headers, pipelining, raw bytes, slow and half-closed clients, answers never read); one answer per connection, bounds, fds and a good scrape checked after each input (fast-check)',
    module: 'packages/cli/fuzz/metrics.fuzz.ts',
  },
  virtchnl: {
    what: 'VirtualFunction: every virtchnl op, well-formed, mutated and random, in any order and state (fast-check)',
    module: 'packages/driver-iavf/fuzz/virtchnl.fuzz.ts',
  },
};

const argv = process.argv.slice(2);
if (argv.includes('--list')) {
  for (const [name, t] of Object.entries(TARGETS)) console.log(`${name.padEnd(10)} ${t.what}`);
  process.exit(0);
}
const names = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const options = argv.filter((a) => !names.includes(a));
for (const n of names) {
  if (!(n in TARGETS)) {
    console.error(`fuzz: no target ${n} (targets: ${Object.keys(TARGETS).join(', ')})`);
    process.exit(2);
  }
}
const summaries = [];
for (const name of names.length > 0 ? names : Object.keys(TARGETS)) {
  const t = TARGETS[name];
  const command = t.command
    ? t.command(options)
    : [
        process.execPath,
        '--import',
        'tsx',
        join(root, 'scripts/fuzz/run-js.mts'),
        join(root, t.module),
        name,
        ...options,
      ];
  console.log(`fuzz: ${name}: ${t.what}`);
  const run = spawnSync(command[0], command.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    cwd: root,
  });
  process.stdout.write(run.stdout ?? '');
  if (run.status !== 0) process.exit(1);
  summaries.push(run.stdout.trim().split('\n').pop());
}
console.log(`\n${summaries.join('\n')}`);
