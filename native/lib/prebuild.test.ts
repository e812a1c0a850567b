import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { expect } from 'chai';
import { computeSourceHash } from '../scripts/source-hash.mjs';
import { bindingPath, packageRoot } from './binding.js';
import { sourceHash } from './index.js';

// prebuildify names a scoped package's binary after it, with '/' as '+'.
const prebuild = join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, '@emu+native.node');
const REBUILD = 'run `pnpm --filter @emu/native native:prebuild` and commit prebuilds/';
const STALE = `the committed prebuild is older than native/src: ${REBUILD}`;

describe('native build', () => {
  const expected = computeSourceHash(packageRoot);

  it('the committed prebuild was built from the current native sources', () => {
    if (!existsSync(prebuild)) throw new Error(`there is no committed prebuild (${prebuild}): ${REBUILD}`);
    const prebuilt = createRequire(import.meta.url)(prebuild) as { sourceHash: string };
    if (prebuilt.sourceHash !== expected) {
      throw new Error(`${STALE} (prebuild ${prebuilt.sourceHash}, sources ${expected})`);
    }
  });

  it('the loaded binding was built from the current native sources', () => {
    if (sourceHash !== expected) {
      throw new Error(
        bindingPath === prebuild
          ? STALE
          : `${bindingPath} is older than native/src: rebuild it (pnpm --filter @emu/native exec node-gyp rebuild) or delete native/build`,
      );
    }
  });

  it('loads the committed prebuild, not a local build/, in CI', function () {
    if (process.env.CI !== 'true') this.skip();
    expect(bindingPath).to.equal(prebuild);
  });
});
