/**
 * Where the command's drivers come from: the built-in ones (emu_iavf and the emu_gpio example) and third-party modules
 * named with `--driver`, which export `driver` (one EmudevDriver) or `drivers` (an array of them).
 */
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { register as registerIavf } from '@emu/driver-iavf';
import { type EmudevDriver, type EmudevRegistry, showText, textProblem } from '@emu/emudev';
import { register as registerGpio } from '@emu/example-gpio';

/** A --driver module that cannot be used; the message says which and why. */
export class DriverModuleError extends Error {
  constructor(
    readonly module: string,
    why: string,
  ) {
    super(`--driver ${module}: ${why}`);
    this.name = 'DriverModuleError';
  }
}

/** Registers the drivers that come with emu (once per registry). */
export function registerBuiltinDrivers(registry: EmudevRegistry): void {
  registerIavf(registry);
  registerGpio(registry);
}

/**
 * The URL to import for a --driver argument: a path (`./x.js`, `/abs/x.mjs`, `file:` URL) relative to
 * `cwd`, or a package name resolved from `cwd` as Node would from a script there.
 */
export function driverModuleUrl(spec: string, cwd: string): string {
  if (spec.startsWith('file:')) return spec;
  if (spec.startsWith('.') || isAbsolute(spec)) return pathToFileURL(resolve(cwd, spec)).href;
  try {
    return pathToFileURL(createRequire(join(cwd, 'noop.js')).resolve(spec)).href;
  } catch {
    // Not resolvable from cwd (an ESM-only package without a require condition, or not installed
    // there): let import() try from here, and say what it says if it fails.
    return spec;
  }
}

/** Imports a driver module and returns the drivers it exports. */
export async function loadDriverModule(spec: string, cwd: string): Promise<EmudevDriver[]> {
  const bad = textProblem(spec, 'path');
  if (bad !== undefined) throw new DriverModuleError(showText(spec), bad);
  let mod: Record<string, unknown>;
  try {
    mod = await import(driverModuleUrl(spec, cwd));
  } catch (err) {
    throw new DriverModuleError(spec, `cannot load it: ${(err as Error).message}`);
  }
  const fallback = (mod.default ?? {}) as Record<string, unknown>;
  const found = mod.drivers ?? mod.driver ?? fallback.drivers ?? fallback.driver;
  if (found === undefined)
    throw new DriverModuleError(spec, 'the module exports neither "driver" nor "drivers"');
  const list = Array.isArray(found) ? found : [found];
  if (list.length === 0) throw new DriverModuleError(spec, '"drivers" is empty');
  for (const d of list) {
    const ok = typeof d === 'object' && d !== null && typeof (d as EmudevDriver).name === 'string';
    if (!ok)
      throw new DriverModuleError(
        spec,
        `exports ${JSON.stringify(d) ?? String(d)} where a driver object belongs`,
      );
  }
  return list as EmudevDriver[];
}

/** Loads each module and registers its drivers; a driver already registered as is is fine. */
export async function registerDriverModules(
  registry: EmudevRegistry,
  specs: string[],
  cwd: string,
): Promise<void> {
  for (const spec of specs) {
    for (const driver of await loadDriverModule(spec, cwd)) {
      if (registry.getDriver(driver.name) === driver) continue;
      try {
        registry.registerDriver(driver);
      } catch (err) {
        throw new DriverModuleError(spec, (err as Error).message);
      }
    }
  }
}
