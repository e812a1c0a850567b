#!/usr/bin/env node
// docs/architecture.md draws the packages' layers as a mermaid flowchart; this checks that its arrows
// are exactly the workspace's runtime dependencies (`dependencies` and `peerDependencies` naming
// another workspace package, from every package.json pnpm-workspace.yaml lists). Part of `pnpm lint`.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const doc = 'docs/architecture.md';

/** Every workspace package's runtime dependencies on other workspace packages: "a -> b" strings. */
export function workspaceEdges() {
  const globs = [
    ...readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8').matchAll(/^\s+-\s+(\S+)\s*$/gm),
  ].map((m) => m[1]);
  const dirs = globs.flatMap((g) =>
    g.endsWith('/*')
      ? readdirSync(join(root, g.slice(0, -2)), { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => join(g.slice(0, -2), d.name))
      : [g],
  );
  const manifests = dirs
    .filter((d) => existsSync(join(root, d, 'package.json')))
    .map((d) => JSON.parse(readFileSync(join(root, d, 'package.json'), 'utf8')));
  const names = new Set(manifests.map((m) => m.name));
  const edges = new Set();
  for (const m of manifests) {
    for (const dep of Object.keys({ ...m.dependencies, ...m.peerDependencies })) {
      if (names.has(dep)) edges.add(`${m.name} -> ${dep}`);
    }
  }
  return edges;
}

/** The arrows of the one mermaid flowchart in `text`: "a -> b" strings, nodes named by their labels. */
export function drawnEdges(text) {
  const blocks = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
  if (blocks.length !== 1) throw new Error(`${doc}: expected one mermaid flowchart, found ${blocks.length}`);
  const labels = new Map();
  const arrows = [];
  for (const [i, raw] of blocks[0].split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || /^flowchart (TD|TB|BT|LR|RL)$/.test(line) || line.startsWith('%%')) continue;
    const label = /^(\w+)\["(@emu\/[\w-]+)[^"]*"\]$/.exec(line);
    const arrow = /^(\w+) --> (\w+)$/.exec(line);
    if (label) labels.set(label[1], label[2]);
    else if (arrow) arrows.push([arrow[1], arrow[2]]);
    else throw new Error(`${doc}: the flowchart's line ${i + 1} is neither a package nor an arrow: ${line}`);
  }
  const name = (id) => {
    if (!labels.has(id)) throw new Error(`${doc}: the flowchart's node ${id} has no package label`);
    return labels.get(id);
  };
  return new Set(arrows.map(([a, b]) => `${name(a)} -> ${name(b)}`));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const real = workspaceEdges();
  const drawn = drawnEdges(readFileSync(join(root, doc), 'utf8'));
  const missing = [...real].filter((e) => !drawn.has(e));
  const extra = [...drawn].filter((e) => !real.has(e));
  for (const e of missing) console.error(`${doc}: no arrow for the dependency ${e}`);
  for (const e of extra) console.error(`${doc}: an arrow ${e} that no package.json declares`);
  if (missing.length + extra.length > 0) process.exit(1);
  console.log(`${doc}: the layer diagram's ${drawn.size} arrows are the packages' dependencies`);
}
