import { spawnSync } from 'node:child_process';
import { ftruncateSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { closeFd } from './fd.js';
import { guardStats } from './guard.js';
import { GuestMemoryTable, iavfRxRing, iavfTxRing } from './iavf-rings.js';
import { PAGE_SIZE } from './index.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';

/**
 * A client that shrinks the file it mapped into us (ftruncate of an unsealed memfd). Without the guard,
 * the first touch past the new end raises SIGBUS and this process, mocha with it, dies.
 */
describe('the SIGBUS guard over mapped memory', () => {
  const size = 16 * PAGE_SIZE;
  let fd: number;
  let mapping: MappedMemory;

  beforeEach(() => {
    fd = memfdCreate('emu-test-guard', size);
    writeSync(fd, Buffer.alloc(size, 0xab), 0, size, 0);
    mapping = MappedMemory.map(fd, 0, size);
  });
  afterEach(() => {
    mapping.unmap();
    closeFd(fd);
  });

  it('turns a JavaScript touch of a truncated page into zeros and one counted fault', () => {
    const before = guardStats().faults;
    const bytes = new Uint8Array(mapping.buffer);
    expect(bytes[10 * PAGE_SIZE]).to.equal(0xab);
    ftruncateSync(fd, 8 * PAGE_SIZE);
    expect(bytes[7 * PAGE_SIZE], 'a page before the new end').to.equal(0xab);
    expect(bytes[10 * PAGE_SIZE + 5], 'a page past it reads zero').to.equal(0);
    bytes[10 * PAGE_SIZE + 6] = 7; // and takes a write without a fault
    expect(bytes[10 * PAGE_SIZE + 6]).to.equal(7);
    expect(mapping.faults).to.equal(1);
    expect(guardStats()).to.include({ faults: before + 1, installed: true });
    expect(guardStats().lastAddress).to.equal(mapping.address + BigInt(10 * PAGE_SIZE + 5));
    // Each other page past the end faults once when first touched; the ones before it are the file's.
    for (let page = 8; page < 16; page++) void bytes[page * PAGE_SIZE];
    expect(mapping.faults).to.equal(8);
    expect(bytes[7 * PAGE_SIZE]).to.equal(0xab);
    // The mapping is poisoned: emu's own copies refuse it from now on.
    expect(() => mapping.read(0, 4)).to.throw(RangeError, 'vanished');
  });

  it('covers native code: a ring walk into a truncated range reads zeros; the mapping is used no more', () => {
    ftruncateSync(fd, 0);
    const table = new GuestMemoryTable();
    table.add(0x10000n, mapping);
    // A TX ring in the vanished pages, walked first: every descriptor reads as zero.
    const tx = iavfTxRing(table, { iova: 0x10000n + BigInt(8 * PAGE_SIZE), length: 64 }, 0, 10);
    expect(tx.frames).to.deep.equal([]);
    expect(tx.stop, 'ten zero descriptors: no EOP yet').to.equal('incomplete');
    expect(mapping.faults, 'the ring walk faulted').to.equal(1);
    // Poisoned: the table no longer reaches the mapping, nor do copies; it stays listed until removed.
    const rx = iavfRxRing(
      table,
      { iova: 0x10000n + BigInt(12 * PAGE_SIZE), length: 64, bufferSize: 2048, maxFrame: 2048 },
      0,
      10,
      Buffer.alloc(60, 1),
    );
    expect(rx.status).to.equal('ring');
    expect(table.lookup(0x10000n, 4n)).to.equal('miss');
    expect(table.size).to.equal(1);
    expect(() => mapping.write(4 * PAGE_SIZE, Buffer.from('gone'))).to.throw(RangeError, 'vanished');
    table.clear();
  });

  it('covers copies too: the first touch of a vanished page by mapping.read reads zeros', () => {
    ftruncateSync(fd, 2 * PAGE_SIZE);
    expect(mapping.read(3 * PAGE_SIZE, 16).every((b) => b === 0)).to.equal(true);
    expect(mapping.faults).to.equal(1);
  });

  it('leaves every other SIGBUS as it was: a SIGBUS sent to the process still ends it', () => {
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        [
          "import { memfdCreate, MappedMemory } from './lib/index.ts';",
          "MappedMemory.map(memfdCreate('emu-test-guard-kill', 4096), 0, 4096);",
          "process.kill(process.pid, 'SIGBUS');",
          'setTimeout(() => console.log("survived"), 200);',
        ].join('\n'),
      ],
      { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' },
    );
    expect({ signal: child.signal, stdout: child.stdout }).to.deep.equal({ signal: 'SIGBUS', stdout: '' });
  });

  it('leaves a sealed memfd alone: it cannot shrink, so there is nothing to catch', () => {
    const sealed = memfdCreate('emu-test-guard-sealed', size, { seal: true });
    try {
      expect(() => ftruncateSync(sealed, 0)).to.throw(/EPERM/);
      const m = MappedMemory.map(sealed, 0, size);
      new Uint8Array(m.buffer).fill(1);
      expect(m.faults).to.equal(0);
      m.unmap();
    } finally {
      closeFd(sealed);
    }
  });
});
