import { existsSync } from 'node:fs';
import { closeFd, memfdCreate } from '@emu/native';
import { expect } from 'chai';
import { Header } from '../protocol/messages.js';
import { MessageFramer } from './framer.js';

const msg = (msgId: number, payload: Buffer) =>
  Buffer.concat([Header.encode({ msgId, command: 9, size: 16 + payload.length, flags: 0 }), payload]);

describe('MessageFramer', () => {
  it('splits coalesced messages and joins split ones', () => {
    const f = new MessageFramer(1024);
    const stream = Buffer.concat([
      msg(1, Buffer.from('aaaa')),
      msg(2, Buffer.alloc(0)),
      msg(3, Buffer.from('cc')),
    ]);
    const got = [];
    for (let i = 0; i < stream.length; i += 7) got.push(...f.push(stream.subarray(i, i + 7), []));
    expect(got.map((e) => (e.kind === 'message' ? e.message.header.msgId : -1))).to.deep.equal([1, 2, 3]);
    const first = got[0];
    expect(first.kind === 'message' && first.message.payload.toString()).to.equal('aaaa');
  });

  it('gives each message the fds that arrived with a chunk ending inside it', () => {
    const f = new MessageFramer(1024);
    const a = msg(1, Buffer.alloc(8));
    const b = msg(2, Buffer.alloc(8));
    const events = [...f.push(a.subarray(0, 10), [100]), ...f.push(Buffer.concat([a.subarray(10), b]), [])];
    expect(events.map((e) => e.kind === 'message' && e.message.fds)).to.deep.equal([[100], []]);
    const c = f.push(msg(3, Buffer.alloc(4)), [7, 8]);
    expect(c[0].kind === 'message' && c[0].message.fds).to.deep.equal([7, 8]);
    // The kernel glues fd-less data in front of a write with fds: the fds belong to the later message.
    const d = msg(4, Buffer.alloc(4));
    const e = msg(5, Buffer.alloc(4));
    const glued = [...f.push(d.subarray(0, 5), []), ...f.push(Buffer.concat([d.subarray(5), e]), [9])];
    expect(glued.map((x) => x.kind === 'message' && x.message.fds)).to.deep.equal([[], [9]]);
  });

  it('reports an undersized header and goes on after its 16 bytes', () => {
    const f = new MessageFramer(1024);
    const bad = Header.encode({ msgId: 9, command: 4, size: 3, flags: 0 });
    const events = f.push(Buffer.concat([bad, msg(10, Buffer.from('ok'))]), []);
    expect(events.map((e) => e.kind)).to.deep.equal(['undersized', 'message']);
  });

  it('skips the body of an oversized message without buffering it, closing fds that ride on it', () => {
    const f = new MessageFramer(64);
    const first = memfdCreate('emu-framer-a', 0);
    const big = Header.encode({ msgId: 5, command: 10, size: 16 + 1000, flags: 0 });
    const events = f.push(big, [first]);
    expect(events.map((e) => e.kind)).to.deep.equal(['oversized']);
    // The header's fds go to the caller, who closes them with the error reply.
    expect((events[0] as { fds: number[] }).fds).to.deep.equal([first]);
    closeFd(first);
    // The body arrives later, with an fd on it: the framer closes that one itself.
    const late = memfdCreate('emu-framer-b', 0);
    expect(f.push(Buffer.alloc(600), [late])).to.deep.equal([]);
    const rest = f.push(Buffer.concat([Buffer.alloc(400), msg(6, Buffer.from('next'))]), []);
    expect(rest.map((e) => e.kind === 'message' && e.message.payload.toString())).to.deep.equal(['next']);
    expect(existsSync(`/proc/self/fd/${late}`)).to.equal(false);
  });

  it('closes the fds of a message that never completed on dispose', () => {
    const f = new MessageFramer(1024);
    const fd = memfdCreate('emu-framer-c', 0);
    expect(f.push(msg(1, Buffer.alloc(100)).subarray(0, 30), [fd])).to.deep.equal([]);
    f.dispose();
    expect(existsSync(`/proc/self/fd/${fd}`)).to.equal(false);
  });
});
