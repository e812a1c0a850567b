// The hash of the native sources (binding.gyp and everything under src/), baked into the .node by
// binding.gyp and recomputed by lib/prebuild.test.ts to catch a prebuild older than its sources.
// Run directly, it prints the hash (binding.gyp calls it as `<!(node scripts/source-hash.mjs)`).
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const nativeRoot = fileURLToPath(new URL('..', import.meta.url));

/** Relative, '/'-separated paths of the hashed files, in a locale-independent order. */
export function sourceFiles(root = nativeRoot) {
  const files = ['binding.gyp'];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) files.push(relative(root, full).split(sep).join('/'));
    }
  };
  walk(join(root, 'src'));
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** sha256 over each file's path and content; content is normalised (no BOM, LF line ends) so a
 * checkout with CRLF conversion hashes the same. */
export function computeSourceHash(root = nativeRoot) {
  const hash = createHash('sha256');
  for (const file of sourceFiles(root)) {
    const content = readFileSync(join(root, file), 'utf8')
      .replace(/^\uFEFF/, '')
      .replace(/\r\n?/g, '\n');
    hash.update(file).update('\0').update(content).update('\0');
  }
  return hash.digest('hex');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(computeSourceHash());
}
