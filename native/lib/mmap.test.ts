import { closeSync, constants, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { expect } from 'chai';
import { isSystemError } from './errors.js';
import { closeFd } from './fd.js';
import { PAGE_SIZE } from './index.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';
import { pattern } from './test-helpers.js';

let serial = 0;

/** A memfd with a unique name (so /proc/self/maps lines can be told apart) holding `content`. */
function memfdWith(content: Buffer, size = content.length): { fd: number; name: string } {
  const name = `emu-test-mmap-${process.pid}-${++serial}`;
  const fd = memfdCreate(name, size);
  writeSync(fd, content, 0, content.length, 0);
  return { fd, name };
}

function mapsLines(name: string): string[] {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes(`/memfd:${name} `));
}

function pread(fd: number, length: number, position: number): Buffer {
  const out = Buffer.alloc(length);
  readSync(fd, out, 0, length, position);
  return out;
}

describe('MappedMemory', () => {
  it('writes through the buffer reach the fd: seen by pread and by a second mapping', () => {
    const { fd } = memfdWith(Buffer.alloc(0), 2 * PAGE_SIZE);
    const first = MappedMemory.map(fd, 0, 2 * PAGE_SIZE);
    const second = MappedMemory.map(fd, 0, 2 * PAGE_SIZE);
    expect(first.address).to.not.equal(second.address);
    expect(first.length).to.equal(2 * PAGE_SIZE);
    expect(first.mapped).to.equal(true);
    new Uint8Array(first.buffer).set(Buffer.from('hello guest'), PAGE_SIZE + 3);
    expect(Buffer.from(second.buffer, PAGE_SIZE + 3, 11).toString()).to.equal('hello guest');
    expect(pread(fd, 11, PAGE_SIZE + 3).toString()).to.equal('hello guest');
    first.unmap();
    second.unmap();
    closeFd(fd);
  });

  it('maps an unaligned offset, number or bigint, exposing exactly [offset, offset + length)', () => {
    const content = pattern(3 * PAGE_SIZE, 5);
    const { fd, name } = memfdWith(content);
    const offset = PAGE_SIZE + 123;
    for (const at of [offset, BigInt(offset)]) {
      const mapping = MappedMemory.map(fd, at, 1000);
      expect(mapping.buffer.byteLength).to.equal(1000);
      expect(Buffer.from(mapping.buffer).equals(content.subarray(offset, offset + 1000))).to.equal(true);
      expect(mapping.address % BigInt(PAGE_SIZE)).to.equal(123n);
      const [line] = mapsLines(name);
      expect(BigInt(`0x${line.split('-')[0]}`)).to.equal(mapping.address - 123n);
      mapping.unmap();
    }
    closeFd(fd);
  });

  it('unmap() detaches the buffer: views read 0 bytes, writes are harmless, the range is gone', () => {
    const { fd, name } = memfdWith(Buffer.from('data'), PAGE_SIZE);
    const mapping = MappedMemory.map(fd, 0, PAGE_SIZE);
    closeFd(fd); // the mapping keeps the memory alive on its own
    const view = new Uint8Array(mapping.buffer);
    const words = new Uint32Array(mapping.buffer, 0, 16);
    expect(view[0]).to.equal('d'.charCodeAt(0));
    expect(mapsLines(name)).to.have.length(1);

    mapping.unmap();
    expect(mapping.mapped).to.equal(false);
    expect(mapping.buffer.byteLength).to.equal(0);
    expect(view.length).to.equal(0);
    expect(words.length).to.equal(0);
    view[0] = 1; // ignored by a detached view rather than touching unmapped memory
    words[3] = 2;
    expect(view[0]).to.equal(undefined);
    expect(() => new Uint8Array(mapping.buffer, 0, 1)).to.throw(TypeError);
    expect(mapsLines(name)).to.deep.equal([]);
    mapping.unmap();
    expect(mapping.length).to.equal(PAGE_SIZE);
  });

  it('a mapping whose buffer is garbage-collected is unmapped', async function () {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) this.skip(); // .mocharc.json runs node with --expose-gc
    const { fd, name } = memfdWith(Buffer.from('x'), PAGE_SIZE);
    (() => {
      const mapping = MappedMemory.map(fd, 0, PAGE_SIZE);
      new Uint8Array(mapping.buffer)[1] = 7;
    })();
    closeFd(fd);
    expect(mapsLines(name)).to.have.length(1);
    // Node runs external-buffer finalizers on a later tick, after the collection.
    for (let i = 0; i < 50 && mapsLines(name).length > 0; i++) {
      gc!();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(mapsLines(name)).to.deep.equal([]);
  });

  it('a read-only mapping reads the shared data but keeps stores private', () => {
    const { fd } = memfdWith(Buffer.from('shared'), PAGE_SIZE);
    const mapping = MappedMemory.map(fd, 0, PAGE_SIZE, { write: false });
    const view = new Uint8Array(mapping.buffer);
    expect(Buffer.from(view.subarray(0, 6)).toString()).to.equal('shared');
    view[0] = 'X'.charCodeAt(0); // must not crash, must not reach the fd
    expect(pread(fd, 6, 0).toString()).to.equal('shared');
    mapping.unmap();
    closeFd(fd);
  });

  it('maps an fd opened read-only only with write: false (EACCES otherwise)', () => {
    const { fd } = memfdWith(Buffer.from('rom'), PAGE_SIZE);
    const readOnly = openSync(`/proc/self/fd/${fd}`, constants.O_RDONLY);
    let error: unknown;
    try {
      MappedMemory.map(readOnly, 0, PAGE_SIZE);
    } catch (e) {
      error = e;
    }
    expect(isSystemError(error, 'EACCES')).to.equal(true);
    expect((error as Error).message).to.equal(`mmap fd ${readOnly}: permission denied`);
    const rom = MappedMemory.map(readOnly, 0, PAGE_SIZE, { write: false });
    expect(Buffer.from(rom.buffer, 0, 3).toString()).to.equal('rom');
    rom.unmap();
    closeSync(readOnly);
    closeFd(fd);
  });

  it('maps more than one ArrayBuffer can hold (6 GiB, sparse): windows, copies, all detached at unmap', () => {
    const size = 6 * 2 ** 30;
    const fd = memfdCreate('emu-test-mmap-6g', size);
    try {
      const mapping = MappedMemory.map(fd, 0, size);
      expect(mapping.length).to.equal(size);
      expect(() => mapping.buffer).to.throw(RangeError, 'larger than one ArrayBuffer');
      const high = 5 * 2 ** 30 + 123;
      const window = mapping.view(high, 4096);
      window.set(Buffer.from('past 4 GiB'));
      expect(pread(fd, 10, high).toString()).to.equal('past 4 GiB');
      mapping.write(size - 5, Buffer.from('last!'));
      expect(mapping.read(size - 5, 5).toString()).to.equal('last!');
      expect(pread(fd, 5, size - 5).toString()).to.equal('last!');
      expect(() => mapping.read(size - 4, 5)).to.throw(RangeError);
      expect(() => mapping.view(0, 2 ** 33)).to.throw(RangeError);
      mapping.unmap();
      expect(window.byteLength, 'the window is detached').to.equal(0);
      expect(() => mapping.read(0, 1)).to.throw(/mapping is closed/);
    } finally {
      closeFd(fd);
    }
  });

  it('reports a bad fd as EBADF', () => {
    const fd = memfdCreate('emu-test-closed', PAGE_SIZE);
    closeFd(fd);
    expect(() => MappedMemory.map(fd, 0, PAGE_SIZE)).to.throw(`mmap fd ${fd}: bad file descriptor`);
  });
});
