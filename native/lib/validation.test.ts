import { expect } from 'chai';
import { EventFd } from './eventfd.js';
import { closeFd } from './fd.js';
import { memfdCreate } from './memfd.js';
import { MappedMemory } from './mmap.js';
import { UnixListener, UnixSocket } from './unix-socket.js';

// Each case must throw before any syscall, with the right class, Node-style code and a message
// that names the argument.
function expectInvalid(fn: () => unknown, type: typeof TypeError | typeof RangeError, message: string): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, message).to.be.instanceOf(type);
  expect((error as Error).message).to.include(message);
  expect((error as { code?: string }).code).to.be.oneOf([
    'ERR_INVALID_ARG_TYPE',
    'ERR_OUT_OF_RANGE',
    'ERR_INVALID_ARG_VALUE',
  ]);
}

describe('argument validation', () => {
  it('rejects fds that are not non-negative 32-bit integers', () => {
    expectInvalid(() => closeFd(-1), RangeError, 'fd must be an integer from 0 to 2147483647, got -1');
    expectInvalid(() => closeFd(1.5), RangeError, 'got 1.5');
    expectInvalid(() => closeFd(2 ** 31), RangeError, 'got 2147483648');
    expectInvalid(() => closeFd(Number.NaN), RangeError, 'got NaN');
    expectInvalid(() => closeFd('3' as unknown as number), TypeError, 'fd must be a number, got "3"');
    expectInvalid(() => EventFd.fromFd(-3), RangeError, 'fd must be');
    expectInvalid(() => MappedMemory.map(-1, 0, 1), RangeError, 'fd must be');
  });

  it('rejects bad mmap offsets, lengths and protections', () => {
    expectInvalid(() => MappedMemory.map(0, -1, 1), RangeError, 'offset must be');
    expectInvalid(() => MappedMemory.map(0, -1n, 1), RangeError, 'offset must be');
    expectInvalid(() => MappedMemory.map(0, 2n ** 63n, 1), RangeError, 'offset must be');
    expectInvalid(() => MappedMemory.map(0, 0.5, 1), RangeError, 'offset must be');
    expectInvalid(
      () => MappedMemory.map(0, '0' as unknown as number, 1),
      TypeError,
      'offset must be a number or bigint',
    );
    expectInvalid(() => MappedMemory.map(0, 0, 1.5), RangeError, 'length must be an integer');
    expectInvalid(() => MappedMemory.map(0, 0, 0), RangeError, 'length must be an integer from 1');
    expectInvalid(() => MappedMemory.map(0, 0, 2 ** 43 + 1), RangeError, 'length must be an integer');
    expectInvalid(() => MappedMemory.map(0, 0, 1, { read: false }), TypeError, 'prot.read must be true');
    expectInvalid(
      () => MappedMemory.map(0, 0, 1, { write: 1 as unknown as boolean }),
      TypeError,
      'prot.write',
    );
    expectInvalid(
      () => MappedMemory.map(0, 0, 1, null as unknown as object),
      TypeError,
      'prot must be an object',
    );
  });

  it('rejects bad socket paths, options and writes', () => {
    expectInvalid(() => UnixListener.listen(''), TypeError, 'path must not be empty');
    expectInvalid(() => UnixListener.listen('a\0b'), TypeError, 'NUL');
    expectInvalid(() => UnixListener.listen(`/tmp/${'x'.repeat(103)}`), TypeError, 'at most 107');
    expectInvalid(() => UnixSocket.connect(42 as unknown as string), TypeError, 'path must be a string');
    expectInvalid(() => UnixListener.listen('/tmp/x.sock', { backlog: 0 }), RangeError, 'options.backlog');
    const [a, b] = UnixSocket.pair();
    try {
      expectInvalid(() => a.write('text' as unknown as Uint8Array), TypeError, 'data must be a Uint8Array');
      expectInvalid(() => a.write(Buffer.from('x'), [1, -1]), RangeError, 'fds[1] must be');
      expectInvalid(
        () => a.write(Buffer.from('x'), 3 as unknown as number[]),
        TypeError,
        'fds must be an array',
      );
      expectInvalid(() => a.write(Buffer.alloc(0), [0]), TypeError, 'must not be empty when fds are sent');
    } finally {
      a.close();
      b.close();
    }
  });

  it('rejects bad eventfd and memfd arguments', () => {
    expectInvalid(() => EventFd.create({ initval: -1 }), RangeError, 'options.initval');
    expectInvalid(() => EventFd.create({ initval: 2 ** 32 }), RangeError, 'options.initval');
    expectInvalid(
      () => EventFd.create({ semaphore: 'yes' as unknown as boolean }),
      TypeError,
      'options.semaphore',
    );
    const event = EventFd.create();
    try {
      expectInvalid(() => event.write(-1), RangeError, 'value must be');
      expectInvalid(() => event.write(2n ** 64n - 1n), RangeError, 'value must be');
      expectInvalid(() => event.write(2 ** 53), RangeError, 'value must be a safe integer');
      expectInvalid(() => event.wait(-1), TypeError, 'timeoutMs');
      expectInvalid(
        () => event.watch('f' as unknown as () => void),
        TypeError,
        'callback must be a function',
      );
    } finally {
      event.close();
    }
    expectInvalid(() => memfdCreate('a\0b', 1), TypeError, 'NUL');
    expectInvalid(() => memfdCreate('m', -1), RangeError, 'size must be');
    expectInvalid(() => memfdCreate('m', 2n ** 63n), RangeError, 'size must be');
  });
});
