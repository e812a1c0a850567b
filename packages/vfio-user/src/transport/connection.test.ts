import { EventEmitter } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { MessageSocket, UnixSocketEvents } from '@emu/native';
import { expect } from 'chai';
import { silentLogger } from '../logger.js';
import { Command, HEADER_SIZE, HeaderFlag } from '../protocol/constants.js';
import { Header } from '../protocol/messages.js';
import { Connection } from './connection.js';
import type { Message } from './framer.js';

/** A socket that checks and forgets what is written to it, as a socket copies what it queues. */
class SinkSocket extends EventEmitter<UnixSocketEvents> implements MessageSocket {
  closed = false;
  writableLength = 0;
  readonly headers: Array<ReturnType<typeof Header.decode>> = [];
  readonly payloads: Buffer[] = [];
  keep = true;
  write(data: Uint8Array): void {
    if (!this.keep) return;
    this.headers.push(Header.decode(data));
    this.payloads.push(Buffer.from(data.subarray(HEADER_SIZE)));
  }
  pause(): void {}
  resume(): void {}
  close(): void {
    this.closed = true;
  }
}

const request = (msgId: number): Message => ({
  header: {
    msgId,
    command: Command.REGION_READ,
    size: HEADER_SIZE,
    flags: HeaderFlag.TYPE_COMMAND,
    error: 0,
  },
  payload: Buffer.alloc(0),
  fds: [],
});

describe('Connection', () => {
  it('sends each message whole, header and parts, small and large', () => {
    const socket = new SinkSocket();
    const conn = new Connection(socket, { maxMessageSize: 1 << 20, logger: silentLogger, name: 'test' });
    const big = Buffer.alloc(100_000, 0xab);
    conn.reply(request(1), [Buffer.from([1, 2, 3]), Buffer.from([4])]);
    conn.reply(request(2), big);
    conn.replyError({ msgId: 3, command: Command.DMA_MAP, flags: HeaderFlag.TYPE_COMMAND }, 22);
    conn.reply(request(4), Buffer.from([9]));
    expect(socket.headers.map((h) => [h.msgId, h.size, h.error])).to.deep.equal([
      [1, HEADER_SIZE + 4, 0],
      [2, HEADER_SIZE + big.length, 0],
      [3, HEADER_SIZE, 22],
      [4, HEADER_SIZE + 1, 0],
    ]);
    expect(socket.payloads[0]).to.deep.equal(Buffer.from([1, 2, 3, 4]));
    expect(socket.payloads[1]!.equals(big)).to.equal(true);
    expect(socket.payloads[3]).to.deep.equal(Buffer.from([9]));
  });

  it('leaves no memory behind its replies that only a full collection frees', () => {
    // A server answers a few registers a second: whatever lives a little while across young-generation
    // collections is promoted and stays until a full one, which a quiet heap seldom gets. Replies built
    // from Buffer's 8 KiB pool slabs did that (a 30-minute soak's RSS grew by tens of KiB a minute).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void;
    const socket = new SinkSocket();
    socket.keep = false;
    const conn = new Connection(socket, { maxMessageSize: 1 << 20, logger: silentLogger, name: 'test' });
    const data = Buffer.from([1, 2, 3, 4]);
    for (let i = 0; i < 3; i++) gc({ type: 'major' });
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 4000; i++) {
      conn.reply(request(i), data);
      if (i % 20 === 0) gc({ type: 'minor' });
    }
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    const grown = process.memoryUsage().arrayBuffers - before;
    expect(grown, `${grown} bytes outside the heap after minor collections`).to.be.below(16 * 1024);
  });
});
