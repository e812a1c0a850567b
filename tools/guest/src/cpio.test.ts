import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import {
  CpioWriter,
  normalizeArchivePath,
  readCpio,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
} from './cpio.js';

describe('cpio (newc)', () => {
  it('writes 110-byte ASCII headers, 4-byte alignment and a trailer', () => {
    const buf = new CpioWriter().file('a', 'xyz').toBuffer();
    expect(buf.toString('ascii', 0, 6)).to.equal('070701');
    expect(buf.length % 4).to.equal(0);
    // header + "a\0" padded to 4 (112), then 3 bytes of data padded to 4
    expect(buf.toString('ascii', 112, 115)).to.equal('xyz');
    expect(buf.includes(Buffer.from('TRAILER!!!\0'))).to.equal(true);
    // namesize field (index 11) of the first entry is 2 ("a" + NUL)
    expect(Number.parseInt(buf.toString('ascii', 6 + 11 * 8, 14 + 11 * 8), 16)).to.equal(2);
  });

  it('round-trips files, directories, symlinks and device nodes', () => {
    const w = new CpioWriter({ mtime: 1234 });
    w.dir('etc');
    w.file('/etc/hello.txt', 'hello\n');
    w.file('bin/tool', Buffer.from([0, 1, 2, 3, 4]), 0o755);
    w.symlink('bin/sh', '/bin/busybox');
    w.charDevice('dev/console', 5, 1);
    const entries = readCpio(w.toBuffer());
    const by = new Map(entries.map((e) => [e.name, e]));
    expect(by.get('etc/hello.txt')?.data.toString()).to.equal('hello\n');
    expect(by.get('etc/hello.txt')?.mode).to.equal(S_IFREG | 0o644);
    expect(by.get('etc/hello.txt')?.mtime).to.equal(1234);
    expect(by.get('bin/tool')?.mode).to.equal(S_IFREG | 0o755);
    expect([...(by.get('bin/tool')?.data ?? [])]).to.deep.equal([0, 1, 2, 3, 4]);
    expect((by.get('bin/sh')?.mode ?? 0) & S_IFMT).to.equal(S_IFLNK);
    expect(by.get('bin/sh')?.data.toString()).to.equal('/bin/busybox');
    const con = by.get('dev/console');
    expect((con?.mode ?? 0) & S_IFMT).to.equal(S_IFCHR);
    expect([con?.rdevMajor, con?.rdevMinor]).to.deep.equal([5, 1]);
    expect(new Set(entries.map((e) => e.ino)).size).to.equal(entries.length);
  });

  it('adds missing parent directories before their contents', () => {
    const names = readCpio(new CpioWriter().file('lib/modules/6.12/kernel/x.ko', 'x').toBuffer()).map(
      (e) => e.name,
    );
    expect(names).to.deep.equal([
      'lib',
      'lib/modules',
      'lib/modules/6.12',
      'lib/modules/6.12/kernel',
      'lib/modules/6.12/kernel/x.ko',
    ]);
    const dir = readCpio(new CpioWriter().file('a/b', '').toBuffer())[0];
    expect(dir.mode & S_IFMT).to.equal(S_IFDIR);
  });

  it('replaces an entry added twice and refuses files used as directories', () => {
    const w = new CpioWriter().file('x', 'one').file('x', 'two');
    expect(readCpio(w.toBuffer()).map((e) => e.data.toString())).to.deep.equal(['two']);
    expect(() => new CpioWriter().file('f', '').file('f/g', '')).to.throw(/not a directory/);
  });

  it('normalizes paths and rejects ..', () => {
    expect(normalizeArchivePath('/a//b/./c/')).to.equal('a/b/c');
    expect(() => normalizeArchivePath('a/../../etc')).to.throw(/\.\./);
    expect(() => normalizeArchivePath('/')).to.throw(/empty/);
  });

  it('reads concatenated archives, as the kernel unpacks an initrd', () => {
    const a = new CpioWriter().file('a', 'A').toBuffer();
    const b = new CpioWriter().file('b/c', 'BC').toBuffer();
    const names = readCpio(Buffer.concat([a, Buffer.alloc(8), b])).map((e) => e.name);
    expect(names).to.deep.equal(['a', 'b', 'b/c']);
  });

  it('rejects corrupt input', () => {
    expect(() => readCpio(Buffer.from('070702'.padEnd(120, '0')))).to.throw(/bad magic/);
    const good = new CpioWriter().file('a', 'hello world').toBuffer();
    expect(() => readCpio(good.subarray(0, 115))).to.throw(/truncated/);
  });

  // An independent reader: busybox cpio from the guest cache (skipped before `emu-guest setup`).
  it('is extracted correctly by busybox cpio', function () {
    const busybox = join(process.env.EMU_GUEST_CACHE ?? '/var/cache/emu-guest', 'bin', 'busybox');
    if (!existsSync(busybox)) this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'emu-cpio-'));
    try {
      const w = new CpioWriter()
        .file('d/file.txt', 'data\n', 0o640)
        .symlink('d/link', 'file.txt')
        .dir('e', 0o700);
      const r = spawnSync(busybox, ['cpio', '-i', '-d'], { cwd: dir, input: w.toBuffer() });
      expect(r.status, r.stderr.toString()).to.equal(0);
      expect(readFileSync(join(dir, 'd/file.txt'), 'utf8')).to.equal('data\n');
      expect(statSync(join(dir, 'd/file.txt')).mode & 0o777).to.equal(0o640);
      expect(readlinkSync(join(dir, 'd/link'))).to.equal('file.txt');
      expect(statSync(join(dir, 'e')).isDirectory()).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
