import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { readCpio, S_IFCHR, S_IFLNK, S_IFMT, S_IFREG } from './cpio.js';
import {
  buildBaseInitramfs,
  buildBootInitramfs,
  buildModulesInitramfs,
  GUEST_PROBE_PATH,
  initScript,
  modulesLoadList,
  parseConsole,
} from './initramfs.js';
import { parseModulesDep, resolveModules } from './modules.js';

const DEP = `kernel/drivers/vfio/vfio.ko.xz:
kernel/virt/lib/irqbypass.ko.xz:
kernel/drivers/vfio/pci/vfio-pci-core.ko.xz: kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz
kernel/drivers/vfio/pci/vfio-pci.ko.xz: kernel/drivers/vfio/pci/vfio-pci-core.ko.xz kernel/drivers/vfio/vfio.ko.xz kernel/virt/lib/irqbypass.ko.xz
`;

function entries(buf: Buffer) {
  return new Map(readCpio(buf).map((e) => [e.name, e]));
}

describe('initramfs', () => {
  it('base archive: busybox, applet links, /init, the guest programs and /dev/console', () => {
    const busybox = Buffer.from('\x7fELF fake busybox');
    const probe = Buffer.from('\x7fELF fake probe');
    const net = Buffer.from('\x7fELF fake emu-net');
    const by = entries(
      buildBaseInitramfs({
        busybox,
        applets: ['bin/sh', 'usr/bin/awk', 'sbin/insmod', 'linuxrc'],
        programs: { 'emu-vfio-probe': probe, 'emu-net': net },
      }),
    );
    expect(by.get('bin/busybox')?.mode).to.equal(S_IFREG | 0o755);
    expect(by.get('bin/busybox')?.data.equals(busybox)).to.equal(true);
    for (const a of ['bin/sh', 'usr/bin/awk', 'sbin/insmod']) {
      expect((by.get(a)?.mode ?? 0) & S_IFMT, a).to.equal(S_IFLNK);
      expect(by.get(a)?.data.toString()).to.equal('/bin/busybox');
    }
    expect(by.has('linuxrc')).to.equal(false);
    expect(by.get('init')?.mode).to.equal(S_IFREG | 0o755);
    expect(by.get('init')?.data.toString()).to.equal(initScript());
    const con = by.get('dev/console');
    expect([(con?.mode ?? 0) & S_IFMT, con?.rdevMajor, con?.rdevMinor]).to.deep.equal([S_IFCHR, 5, 1]);
    expect(by.get(GUEST_PROBE_PATH.slice(1))?.data.equals(probe)).to.equal(true);
    expect(by.get('usr/bin/emu-net')?.data.equals(net)).to.equal(true);
    expect(by.get('usr/bin/emu-net')?.mode).to.equal(S_IFREG | 0o755);
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'emu']) expect(by.has(d), d).to.equal(true);
  });

  it('base archive is deterministic', () => {
    const input = { busybox: Buffer.from('bb'), applets: ['bin/ls'] };
    expect(buildBaseInitramfs(input).equals(buildBaseInitramfs(input))).to.equal(true);
  });

  it('modules archive: decompressed paths and a matching modules.dep', () => {
    const index = parseModulesDep(DEP);
    const { modules } = resolveModules(index, ['vfio-pci']);
    const files = modules.map((m) => ({ module: m, data: Buffer.from(`ko:${m.name}`) }));
    const by = entries(buildModulesInitramfs('6.12.0-test', files, index.deps));
    const root = 'lib/modules/6.12.0-test';
    expect(by.get(`${root}/kernel/drivers/vfio/pci/vfio-pci.ko`)?.data.toString()).to.equal('ko:vfio_pci');
    expect([...by.keys()].some((k) => k.endsWith('.xz'))).to.equal(false);
    const dep = by.get(`${root}/modules.dep`)?.data.toString() ?? '';
    expect(dep).to.contain(
      'kernel/drivers/vfio/pci/vfio-pci.ko: kernel/drivers/vfio/pci/vfio-pci-core.ko kernel/drivers/vfio/vfio.ko',
    );
    expect(dep).to.contain('kernel/drivers/vfio/vfio.ko:\n');
  });

  it('boot archive: script, nonce, load list and extra files', () => {
    const index = parseModulesDep(DEP);
    const { modules } = resolveModules(index, ['vfio_pci_core foo=1']);
    const by = entries(
      buildBootInitramfs({
        nonce: 'abc123',
        script: 'echo hi\n',
        modules,
        files: { '/root/data.bin': Buffer.from([1, 2]), '/emu/helper.sh': 'true\n' },
      }),
    );
    expect(by.get('emu/script.sh')?.data.toString()).to.equal('echo hi\n');
    expect(by.get('emu/script.sh')?.mode).to.equal(S_IFREG | 0o755);
    expect(by.get('emu/helper.sh')?.mode).to.equal(S_IFREG | 0o755);
    expect(by.get('root/data.bin')?.mode).to.equal(S_IFREG | 0o644);
    expect(by.get('emu/boot.env')?.data.toString()).to.equal('EMU_NONCE=abc123\n');
    const load = by.get('emu/modules.load')?.data.toString().trim().split('\n') ?? [];
    expect(load.at(-1)).to.equal('vfio_pci_core kernel/drivers/vfio/pci/vfio-pci-core.ko foo=1');
    expect(load).to.have.length(3);
    expect(modulesLoadList([])).to.equal('');
    expect(() => buildBootInitramfs({ nonce: 'x y', script: '' })).to.throw(/nonce/);
  });

  it('the three archives concatenate into one initrd', () => {
    const base = buildBaseInitramfs({ busybox: Buffer.from('bb'), applets: [] });
    const boot = buildBootInitramfs({ nonce: 'n1', script: 'true' });
    const names = readCpio(Buffer.concat([base, boot])).map((e) => e.name);
    expect(names).to.include.members(['init', 'bin/busybox', 'emu/script.sh']);
  });

  it('/init is valid shell', () => {
    const busybox = join(process.env.EMU_GUEST_CACHE ?? '/var/cache/emu-guest', 'bin', 'busybox');
    const sh = existsSync(busybox) ? [busybox, 'sh'] : ['/bin/sh'];
    const r = spawnSync(sh[0], [...sh.slice(1), '-n'], { input: initScript() });
    expect(r.status, r.stderr.toString()).to.equal(0);
  });

  describe('parseConsole', () => {
    const nonce = 'deadbeef';
    it('extracts the output between the markers and the exit status', () => {
      const log = [
        '[    0.000000] Linux version 6.12',
        'EMU_GUEST_INIT kernel=6.12',
        'EMU_GUEST_MODULE name=vfio status=ok',
        "EMU_GUEST_MODULE name=bad status=failed error=insmod: can't insert: File exists ",
        `EMU_GUEST_BEGIN_${nonce}`,
        'line 1',
        'line 2',
        `EMU_GUEST_EXIT_${nonce}=3`,
        `EMU_GUEST_END_${nonce}`,
        '[    2.9] reboot: Power down',
      ].join('\r\n');
      const p = parseConsole(log, nonce);
      expect(p.output).to.equal('line 1\nline 2\n');
      expect(p.exitCode).to.equal(3);
      expect(p.started).to.equal(true);
      expect(p.modules).to.deep.equal([
        { name: 'vfio', status: 'ok' },
        { name: 'bad', status: 'failed', error: "insmod: can't insert: File exists" },
      ]);
    });

    it('keeps output without a trailing newline', () => {
      const p = parseConsole(
        `EMU_GUEST_BEGIN_${nonce}\nno newline EMU_GUEST_EXIT_${nonce}=0\nEMU_GUEST_END_${nonce}\n`,
        nonce,
      );
      expect(p).to.include({ output: 'no newline ', exitCode: 0 });
    });

    it('ignores markers of another nonce and reports unfinished runs', () => {
      const p = parseConsole(
        `EMU_GUEST_BEGIN_${nonce}\npartial\nEMU_GUEST_EXIT_other=0\nEMU_GUEST_END_other\n`,
        nonce,
      );
      expect(p.exitCode).to.equal(null);
      expect(p.output).to.contain('partial');
      expect(parseConsole('kernel panic', nonce)).to.include({ started: false, exitCode: null, output: '' });
    });
  });
});
