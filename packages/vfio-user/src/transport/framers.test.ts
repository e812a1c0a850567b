/**
 * The framing rules exist twice: in native code for every server connection (@emu/native's
 * TrapChannel, src/transport/message_framer.h) and in framer.ts for a plain socket (the client's).
 * This is the declared oracle that keeps them one rule: random streams of messages (good, undersized,
 * oversized), cut anywhere, with fds on random writes (past the bound too), framed by both, must give
 * the same frames: kinds, bytes, fds per frame and the excess counted.
 */
import { closeFd, memfdCreate, TrapChannel, UnixSocket } from '@emu/native';
import { expect } from 'chai';
import { Header } from '../protocol/messages.js';
import { type FrameEvent, MessageFramer } from './framer.js';

const MAX_MESSAGE = 256;
const MAX_FDS = 3;

/** A small deterministic generator (xorshift32). */
function random(seed: number): (n: number) => number {
  let x = seed || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

interface Seen {
  kind: string;
  bytes: string;
  fds: number;
  excess: number;
}

function fromFramer(ev: FrameEvent): Seen {
  if (ev.kind !== 'message') {
    return { kind: ev.kind, bytes: Header.encode(ev.header).toString('hex'), fds: ev.fds.length, excess: 0 };
  }
  const m = ev.message;
  return {
    kind: 'message',
    bytes: Buffer.concat([Header.encode(m.header), m.payload]).toString('hex'),
    fds: m.fds.length,
    excess: m.excessFds ?? 0,
  };
}

function stream(rand: (n: number) => number, count: number): Buffer[] {
  const messages: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const kind = rand(10);
    if (kind === 0) {
      messages.push(Header.encode({ msgId: i, command: 2, size: rand(16), flags: 0 })); // undersized
    } else if (kind === 1) {
      const size = MAX_MESSAGE + 1 + rand(600); // oversized: its body follows and is skipped
      const body = Buffer.alloc(size - 16, i & 0xff);
      messages.push(Buffer.concat([Header.encode({ msgId: i, command: 3, size, flags: 0 }), body]));
    } else {
      const n = rand(MAX_MESSAGE - 16 + 1);
      const body = Buffer.from(Array.from({ length: n }, (_, k) => (k * 7 + i) & 0xff));
      messages.push(
        Buffer.concat([Header.encode({ msgId: i, command: 4 + rand(8), size: 16 + n, flags: 0 }), body]),
      );
    }
  }
  return messages;
}

describe('the two framers (native for servers, framer.ts for a plain socket) frame alike', () => {
  it('random streams, cut anywhere, fds on random writes: the same frames', async () => {
    const file = memfdCreate('emu-framers', 0);
    try {
      for (let seed = 1; seed <= 60; seed++) {
        const rand = random(seed * 7919);
        const all = Buffer.concat(stream(rand, 30));
        // Writes of 1 to 100 bytes; about one in five carries 1 to 5 fds (the framers hold at most 3).
        const writes: Array<{ bytes: Buffer; fds: number }> = [];
        for (let at = 0; at < all.length; ) {
          const n = Math.min(all.length - at, 1 + rand(100));
          writes.push({ bytes: all.subarray(at, at + n), fds: rand(5) === 0 ? 1 + rand(5) : 0 });
          at += n;
        }
        const framer = new MessageFramer(MAX_MESSAGE, MAX_FDS, () => {});
        const expected: Seen[] = [];
        let fake = 1000;
        for (const w of writes) {
          const fds = Array.from({ length: w.fds }, () => fake++);
          expected.push(...framer.push(w.bytes, fds).map(fromFramer));
        }
        const [a, b] = UnixSocket.pair();
        const channel = TrapChannel.adopt(b, { maxMessageSize: MAX_MESSAGE, maxMessageFds: MAX_FDS });
        const got: Seen[] = [];
        channel.on('frame', (f) => {
          got.push({ kind: f.kind, bytes: f.bytes.toString('hex'), fds: f.fds.length, excess: f.excess });
          for (const fd of f.fds) closeFd(fd);
        });
        for (const w of writes)
          a.write(
            w.bytes,
            Array.from({ length: w.fds }, () => file),
          );
        const until = Date.now() + 5000;
        while (got.length < expected.length && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
        expect(got, `seed ${seed}`).to.deep.equal(expected);
        expect(channel.heldFds, `seed ${seed}: fds held`).to.equal(framer.heldFds);
        channel.close();
        a.close();
        framer.dispose();
      }
    } finally {
      closeFd(file);
    }
  });
});
