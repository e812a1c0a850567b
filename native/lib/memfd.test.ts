import { fstatSync, ftruncateSync, openSync, readlinkSync } from 'node:fs';
import { expect } from 'chai';
import { closeFd } from './fd.js';
import { fileInfo, memfdCreate, Seal } from './memfd.js';
import { isCloexec } from './test-helpers.js';

describe('memfdCreate and closeFd', () => {
  it('creates a CLOEXEC memfd of the requested size, named in /proc', () => {
    const fd = memfdCreate('emu-test-named', 12345);
    expect(fstatSync(fd).size).to.equal(12345);
    expect(readlinkSync(`/proc/self/fd/${fd}`)).to.equal('/memfd:emu-test-named (deleted)');
    expect(isCloexec(fd)).to.equal(true);
    closeFd(fd);
  });

  it('takes a bigint size beyond 4 GiB (sparse)', () => {
    const fd = memfdCreate('emu-test-big', 5n * 2n ** 30n);
    expect(fstatSync(fd, { bigint: true }).size).to.equal(5n * 2n ** 30n);
    closeFd(fd);
  });

  it('seals when asked: size fixed for good, no more seals; fileInfo tells', () => {
    const fd = memfdCreate('emu-test-sealed', 8192, { seal: true });
    try {
      expect(() => ftruncateSync(fd, 4096)).to.throw(/EPERM/);
      expect(() => ftruncateSync(fd, 16384)).to.throw(/EPERM/);
      expect(fileInfo(fd)).to.deep.equal({
        regular: true,
        size: 8192n,
        seals: Seal.SHRINK | Seal.GROW | Seal.SEAL,
      });
    } finally {
      closeFd(fd);
    }
    const open = memfdCreate('emu-test-unsealed', 4096);
    expect(fileInfo(open)).to.deep.equal({ regular: true, size: 4096n, seals: 0 });
    closeFd(open);
    const dir = openSync('/proc', 'r');
    expect(fileInfo(dir)).to.include({ regular: false, seals: 0 });
    closeFd(dir);
  });

  it('accepts a 249-byte name and rejects a 250-byte one', () => {
    closeFd(memfdCreate('n'.repeat(249), 0));
    expect(() => memfdCreate('n'.repeat(250), 0)).to.throw(TypeError, 'at most 249 bytes');
  });

  it('closeFd() throws EBADF for an fd that is not open', () => {
    const fd = memfdCreate('emu-test-close', 0);
    closeFd(fd);
    expect(() => closeFd(fd))
      .to.throw(`close fd ${fd}: bad file descriptor`)
      .with.property('code', 'EBADF');
  });
});
