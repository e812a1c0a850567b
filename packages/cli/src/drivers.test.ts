import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { iavfDriver } from '@emu/driver-iavf';
import { EmudevRegistry } from '@emu/emudev';
import { gpioDriver } from '@emu/example-gpio';
import { coerceArgs } from '@emu/vdev-bus';
import { expect } from 'chai';
import { DriverModuleError, driverModuleUrl, loadDriverModule, registerBuiltinDrivers } from './drivers.js';
import { fixtures, packageRoot } from './test-env.fixture.js';

describe('driver modules', () => {
  it('resolves paths against the working directory and package names as a script there would', () => {
    expect(driverModuleUrl('./my.mjs', '/srv/emu')).to.equal('file:///srv/emu/my.mjs');
    expect(driverModuleUrl('../my.mjs', '/srv/emu')).to.equal('file:///srv/my.mjs');
    expect(driverModuleUrl('/opt/d.mjs', '/srv/emu')).to.equal('file:///opt/d.mjs');
    expect(driverModuleUrl('file:///opt/d.mjs', '/srv/emu')).to.equal('file:///opt/d.mjs');
    const zod = driverModuleUrl('zod', packageRoot);
    expect(zod).to.match(/^file:\/\/\/.*\/node_modules\/.*zod/);
    // Not installed where we stand: left to import(), which will say so.
    expect(driverModuleUrl('no-such-package-xyz', '/')).to.equal('no-such-package-xyz');
  });

  it('loads `driver` from a module, by path or by URL', async () => {
    const [byPath] = await loadDriverModule('./blink-driver.mjs', fixtures);
    expect(byPath.name).to.equal('emu_blink');
    const [byUrl] = await loadDriverModule(pathToFileURL(join(fixtures, 'blink-driver.mjs')).href, '/');
    expect(byUrl).to.equal(byPath);
  });

  it('refuses a module without drivers, or one that is not there, naming it', async () => {
    const none = await loadDriverModule('./no-driver.mjs', fixtures).catch((e) => e);
    expect(none).to.be.instanceOf(DriverModuleError);
    expect(none.message).to.equal(
      '--driver ./no-driver.mjs: the module exports neither "driver" nor "drivers"',
    );
    const missing = await loadDriverModule('no-such-package-xyz', '/').catch((e) => e);
    expect(missing).to.be.instanceOf(DriverModuleError);
    expect(missing.message).to.match(
      /^--driver no-such-package-xyz: cannot load it: Cannot find package 'no-such-package-xyz'/,
    );
  });

  it('registers the built-in drivers once per registry', () => {
    const registry = new EmudevRegistry();
    registerBuiltinDrivers(registry);
    registerBuiltinDrivers(registry);
    expect(registry.drivers()).to.deep.equal([iavfDriver, gpioDriver]);
  });

  it('parses emu_iavf’s per-VF policy devargs: spoofchk on and trust off unless given', () => {
    const config = (args: Record<string, string>) =>
      iavfDriver.config.parse(coerceArgs('emu_iavf0', iavfDriver, args));
    expect(config({})).to.include({ spoofchk: true, trust: false });
    expect(config({ spoofchk: 'off', trust: 'on' })).to.include({
      spoofchk: false,
      trust: true,
    });
    expect(() => coerceArgs('emu_iavf0', iavfDriver, { trust: 'maybe' })).to.throw(
      'emu_iavf0: trust=maybe: expected a boolean (true/false, yes/no, on/off, 1/0)',
    );
  });
});
