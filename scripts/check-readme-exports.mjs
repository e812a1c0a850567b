#!/usr/bin/env node
// Every name a package README's API tables list must be something the package exports: each first
// cell's identifiers (`new Foo(…)`, `foo(…)`, `Foo`, `FOO: number`) is looked up in the built
// `dist/index.d.ts` (values and types alike). Rows naming a member (`socket.fd`), an event list or an
// option are not exports and are skipped. Run after `pnpm build`; part of `pnpm lint`.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const packages = [
  'native',
  'packages/vfio-user',
  'packages/emudev',
  'packages/vdev-bus',
  'packages/driver-iavf',
  'packages/network',
];

/** The names a bundled .d.ts exports. */
export function exportedNames(dts) {
  const names = new Set();
  for (const m of dts.matchAll(/^export\s*\{([^}]*)\}/gm)) {
    for (const part of m[1].split(',')) {
      const p = part.trim().replace(/^type\s+/, '');
      if (!p) continue;
      const as = p.split(/\s+as\s+/);
      names.add((as[1] ?? as[0]).trim());
    }
  }
  for (const m of dts.matchAll(
    /^export\s+(?:declare\s+)?(?:abstract\s+)?(?:const|let|function|class|interface|type|enum|namespace)\s+([A-Za-z_$][\w$]*)/gm,
  )) {
    names.add(m[1]);
  }
  return names;
}

/**
 * The identifiers a README's API tables list (tables headed "export" or "member", and unnamed ones in
 * a section whose heading says API): the code spans of each row's first cell. In a table of members (its header says "member") only the classes and
 * types it names count (`new VfioUserServer(…)`, `DeviceSpec`); members (`triggerIrq(…)`, `socket.fd`)
 * and event rows are not exports.
 */
export function listedNames(readme) {
  const out = [];
  let inApi = false;
  let checked = false;
  let members = false;
  let previous = '';
  for (const line of readme.split('\n')) {
    const h = /^#{2,3}\s+(.*)$/.exec(line);
    if (h) inApi = /\bAPI\b/.test(h[1]);
    if (line.startsWith('|') && !previous.startsWith('|')) {
      // A table's header: "export" and "member" tables list the API; an unnamed one in an API section too.
      const head = line.split('|')[1].trim().toLowerCase();
      checked = head === 'export' || head === 'member' || (head === '' && inApi);
      members = head === 'member';
    }
    previous = line;
    if (!checked || !line.startsWith('| `')) continue;
    const cell = line.split(/(?<!\\)\|/)[1].trim();
    if (/\bevents\b/.test(cell)) continue;
    const spans = [...cell.matchAll(/`([^`]+)`/g)].map((c) => c[1]);
    // `socket.pause()` / `resume()`: the spans after a member are members too.
    const ofMember = /^[a-z][\w$]*\./.test(spans[0] ?? '');
    for (const code of spans) {
      const m = /^(?:new\s+|interface\s+|type\s+)?([A-Za-z_$][\w$]*)(?=$|[(:<\s{.])/.exec(code);
      if (!m) continue;
      if (/^[a-z]/.test(m[1]) && (members || ofMember)) continue;
      out.push(m[1]);
    }
  }
  return out;
}

if (import.meta.main ?? process.argv[1] === import.meta.filename) {
  let bad = 0;
  for (const pkg of packages) {
    const dtsPath = join(root, pkg, 'dist', 'index.d.ts');
    if (!existsSync(dtsPath)) {
      console.error(`${pkg}: no dist/index.d.ts (run pnpm build first)`);
      bad++;
      continue;
    }
    const exported = exportedNames(readFileSync(dtsPath, 'utf8'));
    for (const name of listedNames(readFileSync(join(root, pkg, 'README.md'), 'utf8'))) {
      if (exported.has(name)) continue;
      console.error(`${pkg}/README.md lists \`${name}\`, which the package does not export`);
      bad++;
    }
  }
  if (bad > 0) process.exit(1);
  console.log(`README API tables: every listed name is exported (${packages.length} packages)`);
}
