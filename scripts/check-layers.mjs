#!/usr/bin/env node
// The layers, checked (part of `pnpm lint`):
// - docs/architecture.md draws the packages' layers as a mermaid flowchart: its arrows are exactly the
//   workspace's runtime dependencies (`dependencies` and `peerDependencies` naming another workspace
//   package, from every package.json pnpm-workspace.yaml lists);
// - native/src/ has a folder per layer, in NATIVE_LAYERS' order: a file includes only its own folder's
//   and lower folders' headers (and src/module.h, where every concern registers its exports).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/** native/src/'s folders, lowest first. */
export const NATIVE_LAYERS = ['base', 'memory', 'irq', 'os', 'transport', 'iavf', 'dataplane'];

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

/** Includes in native/src/ that reach up a layer (or out of the layers): "file: include" strings. */
export function nativeLayerViolations(src = join(root, 'native', 'src')) {
  const bad = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      const path = relative(src, full).split(sep).join('/');
      const folder = path.includes('/') ? path.split('/')[0] : undefined;
      const rank = folder === undefined ? NATIVE_LAYERS.length : NATIVE_LAYERS.indexOf(folder);
      if (rank < 0) bad.push(`${path}: a folder that is no layer (NATIVE_LAYERS)`);
      for (const m of readFileSync(full, 'utf8').matchAll(/^#include "([^"]+)"/gm)) {
        if (m[1] === 'module.h') continue;
        const to = NATIVE_LAYERS.indexOf(m[1].split('/')[0]);
        if (!m[1].includes('/') || to < 0 || to > rank) bad.push(`${path}: #include "${m[1]}"`);
      }
    }
  };
  walk(src);
  return bad;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const upward = nativeLayerViolations();
  for (const v of upward)
    console.error(`native/src: an include up a layer (${NATIVE_LAYERS.join(' < ')}): ${v}`);
  if (upward.length === 0)
    console.log(`native/src: every include stays in its layer or below (${NATIVE_LAYERS.join(' < ')})`);
  const real = workspaceEdges();
  const drawn = drawnEdges(readFileSync(join(root, doc), 'utf8'));
  const missing = [...real].filter((e) => !drawn.has(e));
  const extra = [...drawn].filter((e) => !real.has(e));
  for (const e of missing) console.error(`${doc}: no arrow for the dependency ${e}`);
  for (const e of extra) console.error(`${doc}: an arrow ${e} that no package.json declares`);
  if (missing.length + extra.length + upward.length > 0) process.exit(1);
  console.log(`${doc}: the layer diagram's ${drawn.size} arrows are the packages' dependencies`);
}
