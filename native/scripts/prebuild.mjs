// Builds the committed prebuild: prebuilds/<platform>-<arch>/@emu+native.node (prebuildify's
// name for a scoped package), then removes build/ so node-gyp-build (which prefers build/Release)
// loads the prebuild in tests, as it will on a fresh machine.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env };

// node-gyp downloads headers unless told where they are. The running Node's own headers (next to
// its binary) are the right ones and keep the build offline.
if (!env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'common.gypi'))) env.npm_config_nodedir = prefix;
}

const prebuildify = join(root, 'node_modules', '.bin', 'prebuildify');
// --napi: one binary for every Node with Node-API 8; --target pins the headers to this Node's
// (otherwise prebuildify picks the newest Node it knows and fetches its headers).
const args = ['--napi', '--strip', `--target=${process.versions.node}`];
console.log(`prebuild: prebuildify ${args.join(' ')}`);
const result = spawnSync(prebuildify, args, { cwd: root, env, stdio: 'inherit' });
if (result.error) throw result.error;
if (result.status !== 0) process.exit(result.status ?? 1);

rmSync(join(root, 'build'), { recursive: true, force: true });
console.log(`prebuild: wrote ${join('prebuilds', `${process.platform}-${process.arch}`)}/, removed build/`);
