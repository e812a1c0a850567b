/**
 * The systemd unit and its example config (systemd/): the unit passes `systemd-analyze verify` with no
 * complaint, says Type=notify (which bin.test shows emu answers), and the config it starts emu with is
 * one emu accepts. No systemd runs PID 1 on the test machine, so the unit is not started here
 * (docs/deployment.md says so).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmudevRegistry } from '@emu/emudev';
import { VdevBus } from '@emu/vdev-bus';
import { expect } from 'chai';
import { checkConfigDevices, readConfigFile } from './config-file.js';
import { registerBuiltinDrivers } from './drivers.js';
import { packageRoot, tempDir } from './test-env.fixture.js';

const unitPath = join(packageRoot, 'systemd/emu.service');
const unit = readFileSync(unitPath, 'utf8');

describe('the systemd unit (systemd/emu.service) and its example config', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir();
  });
  afterEach(() => tmp.cleanup());

  it('passes systemd-analyze verify without a single complaint', () => {
    // verify checks that ExecStart's program exists: point it at one that does.
    const copy = tmp.path('emu.service');
    writeFileSync(copy, unit.replace('/usr/local/bin/emu ', '/bin/true '));
    const run = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    expect(run.error, 'systemd-analyze is needed (Debian: systemd)').to.equal(undefined);
    expect({ status: run.status, out: run.stdout + run.stderr }).to.deep.equal({ status: 0, out: '' });
    // And verify does complain about what a typo would make of it.
    writeFileSync(
      copy,
      unit.replace('/usr/local/bin/emu ', '/bin/true ').replace('Type=notify', 'Tpye=notify'),
    );
    expect(spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' }).stderr).to.include(
      "Unknown key 'Tpye'",
    );
  });

  it('runs emu with Type=notify from the example config, as its own user with only CAP_NET_ADMIN', () => {
    const service = Object.fromEntries(
      unit
        .split('\n')
        .filter((l) => /^[A-Za-z]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(service).to.include({
      Type: 'notify',
      ExecStart: '/usr/local/bin/emu --config /etc/emu/emu.yaml --status 0',
      User: 'emu',
      RuntimeDirectory: 'emu',
      AmbientCapabilities: 'CAP_NET_ADMIN',
      CapabilityBoundingSet: 'CAP_NET_ADMIN',
      DeviceAllow: '/dev/net/tun rw',
    });
    const example = readFileSync(join(packageRoot, 'systemd/emu.yaml'), 'utf8');
    // The example's /run/emu and group libvirt-qemu are the target host's: here, a temp dir and root.
    const file = tmp.path('emu.yaml');
    writeFileSync(file, example.replaceAll('/run/emu', tmp.dir).replaceAll('libvirt-qemu', 'root'));
    const config = readConfigFile(file);
    expect(config.argv.slice(0, 8)).to.deep.equal([
      '--log-level',
      'info',
      '--workers',
      '1',
      '--control',
      join(tmp.dir, 'emu.ctl'),
      '--metrics',
      '127.0.0.1:9464',
    ]);
    const registry = new EmudevRegistry();
    registerBuiltinDrivers(registry);
    const bus = new VdevBus(registry);
    expect(() => checkConfigDevices(config, (t) => bus.validate(t))).to.not.throw();
    expect(config.devices).to.deep.equal([
      `emu_iavf0,path=${tmp.path('iavf0.sock')},group=root,mode=0660,queues=4,net=tap:emu0`,
      `emu_iavf1,path=${tmp.path('iavf1.sock')},group=root,mode=0660,queues=4`,
    ]);
  });
});
