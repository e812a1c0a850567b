import { fstatSync, readlinkSync } from 'node:fs';
import { expect } from 'chai';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
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
