import { readlinkSync, readSync, writeSync } from 'node:fs';
import { expect } from 'chai';
import { binding } from './binding.js';
import { EventFd } from './eventfd.js';
import { injectFault } from './fault-injection.js';
import { closeFd, dupAll } from './fd.js';
import { IavfVectors } from './iavf-vectors.js';
import { IrqLines } from './irq-lines.js';
import { memfdCreate } from './memfd.js';
import { eventually, fdDiff, nextEvent, openFds, pattern, random } from './test-helpers.js';
import { TrapChannel } from './trap-channel.js';
import { UnixSocket } from './unix-socket.js';

const READ = 9;
const WRITE = 10;
const NO_REPLY = 0x10;
const AREA = { region: 0, offset: 0x2000, size: 0x1000 };

function header(msgId: number, command: number, size: number, flags = 0): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16LE(msgId, 0);
  h.writeUInt16LE(command, 2);
  h.writeUInt32LE(size, 4);
  h.writeUInt32LE(flags, 8);
  return h;
}

function access(
  msgId: number,
  command: number,
  offset: number,
  count: number,
  data?: Buffer,
  flags = 0,
): Buffer {
  const body = Buffer.alloc(16);
  body.writeBigUInt64LE(BigInt(offset), 0);
  body.writeUInt32LE(AREA.region, 8);
  body.writeUInt32LE(count, 12);
  const size = 32 + (data?.length ?? 0);
  return Buffer.concat([header(msgId, command, size, flags), body, data ?? Buffer.alloc(0)]);
}

/** Sends synchronously on a raw fd (the JS loop does not turn). */
function sendRaw(fd: number, data: Buffer, fds: number[] = []): void {
  const n = binding.sendmsg(fd, data, fds);
  if (n !== data.length) throw new Error(`sendmsg: ${n}`);
}

/** Reads synchronously until `length` bytes came or `ms` passed, without letting the JS loop turn. */
function spinReceive(fd: number, length: number, ms: number): Buffer {
  const parts: Buffer[] = [];
  let have = 0;
  const deadline = Date.now() + ms;
  while (have < length && Date.now() < deadline) {
    const r = binding.recvmsg(fd);
    if (typeof r === 'number') continue;
    parts.push(r.data);
    have += r.data.length;
  }
  return Buffer.concat(parts);
}

function spin(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // the socket thread works meanwhile
  }
}

/** The framer's bounds these tests run with (a server's: 1 MiB messages, 16 fds). */
const LIMITS = { maxMessageSize: 1 << 20, maxMessageFds: 16 };

describe('TrapChannel', () => {
  let peer: number;
  let channel: TrapChannel;
  let memfd: number;
  /** The frames JavaScript got: each message's bytes (`chunk`), its fds and kind. */
  const data: Array<{ chunk: Buffer; fds: number[]; kind: string; excess: number }> = [];

  beforeEach(() => {
    const [a, b] = UnixSocket.pair();
    peer = a.detach();
    channel = TrapChannel.adopt(b, { ...LIMITS, label: 'test' });
    channel.on('frame', (f) => data.push({ chunk: f.bytes, fds: f.fds, kind: f.kind, excess: f.excess }));
    memfd = memfdCreate('emu-test-trap', 0x1000);
    writeSync(memfd, pattern(0x1000, 7), 0, 0x1000, 0);
    channel.setAreas([{ ...AREA, fd: memfd, fileOffset: 0, readable: true, writable: true }]);
    data.length = 0;
  });
  afterEach(() => {
    channel.close();
    closeFd(peer);
    closeFd(memfd);
    for (const d of data) for (const fd of d.fds) closeFd(fd);
  });

  it("contains an exception in a connection's read: that connection fails (ENOMEM), the others are served", async () => {
    // A second channel, the one whose read throws.
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const doomed = TrapChannel.adopt(b, { ...LIMITS, label: 'doomed' });
    const errors: string[] = [];
    doomed.on('error', (e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message));
    doomed.on('frame', (f) => {
      for (const fd of f.fds) closeFd(fd);
    });
    const closed = nextEvent(doomed, 'close');
    injectFault('connectionRead');
    sendRaw(client, access(1, READ, 0x2010, 4));
    await closed;
    expect(errors).to.deep.equal(['ENOMEM']);
    closeFd(client);
    // This test's own channel is still answered on the socket thread.
    sendRaw(peer, access(7, READ, 0x2010, 4));
    expect(spinReceive(peer, 36, 2000).length).to.equal(36);
  });

  it('answers a REGION_READ inside an area while the JS loop is busy', () => {
    sendRaw(peer, access(7, READ, 0x2010, 4));
    const reply = spinReceive(peer, 36, 2000);
    expect(reply.length).to.equal(36);
    expect(reply.readUInt16LE(0)).to.equal(7);
    expect(reply.readUInt16LE(2)).to.equal(READ);
    expect(reply.readUInt32LE(4)).to.equal(36);
    expect(reply.readUInt32LE(8)).to.equal(1); // a reply, no error
    expect(reply.subarray(16, 32)).to.deep.equal(access(7, READ, 0x2010, 4).subarray(16, 32));
    expect(reply.subarray(32)).to.deep.equal(pattern(0x1000, 7).subarray(0x10, 0x14));
    expect(channel.stats()).to.deep.equal({ servedReads: 1, servedWrites: 0 });
  });

  it('stores a REGION_WRITE in the area and replies, except with NO_REPLY', async () => {
    const value = Buffer.from('0123456789abcdef', 'hex');
    sendRaw(peer, access(1, WRITE, 0x2ff8, 8, value));
    const reply = spinReceive(peer, 32, 2000);
    expect(reply.readUInt32LE(4)).to.equal(32);
    expect(reply.readUInt16LE(0)).to.equal(1);
    sendRaw(peer, access(2, WRITE, 0x2000, 2, Buffer.from([0xaa, 0xbb]), NO_REPLY));
    // The read after it is the only reply: the posted write got none.
    sendRaw(peer, access(3, READ, 0x2000, 2));
    const next = spinReceive(peer, 34, 2000);
    expect(next.length).to.equal(34);
    expect(next.readUInt16LE(0)).to.equal(3);
    expect([...next.subarray(32)]).to.deep.equal([0xaa, 0xbb]);
    const mem = Buffer.alloc(8);
    readSync(memfd, mem, 0, 8, 0xff8);
    expect(mem).to.deep.equal(value);
    expect(channel.stats()).to.deep.equal({ servedReads: 1, servedWrites: 2 });
    await new Promise((r) => setTimeout(r, 20));
    expect(data).to.have.length(0);
  });

  it('applies accesses to a register block (iavf VFINT_DYN_CTLN1) with their effects, while the JS loop is busy', async () => {
    const vectors = new IavfVectors({ count: 3, manualClock: true });
    const lines = new IrqLines(3);
    const irq = EventFd.create();
    lines.assign(2, dupAll([irq.fd])[0]);
    vectors.setLines(lines);
    const dyn = { region: 0, offset: 0x3800, size: 0x100 };
    channel.setAreas([
      { ...AREA, fd: memfd, fileOffset: 0, readable: true, writable: true },
      { ...dyn, registers: vectors, readable: true, writable: true },
    ]);
    vectors.raise(2); // a cause while vector 2 is not armed: it waits
    // The guest re-arms vector 2 (VFINT_DYN_CTLN1(1)): the cause fires, with no JavaScript turn.
    sendRaw(peer, access(1, WRITE, 0x3804, 4, Buffer.from([0x19, 0, 0, 0]), NO_REPLY));
    sendRaw(peer, access(2, READ, 0x3800, 4));
    const reply = spinReceive(peer, 36, 2000);
    expect(reply.readUInt16LE(0)).to.equal(2);
    expect(reply.readUInt32LE(32), 'vector 1 untouched').to.equal(0);
    await lines.settled();
    expect(irq.read(), 'fired on the re-arm').to.equal(1n);
    expect(vectors.read(2), 'automask cleared INTENA').to.equal(0x18);
    expect(channel.stats()).to.deep.equal({ servedReads: 1, servedWrites: 1 });
    // A width the block does not serve goes to JavaScript.
    sendRaw(peer, access(3, WRITE, 0x3804, 2, Buffer.from([1, 0])));
    await eventually(() => data.length === 1, 'the 2-byte write passed on');
    expect(data[0].chunk.readUInt16LE(0)).to.equal(3);
    expect(() =>
      channel.setAreas([{ ...dyn, registers: {} as never, readable: true, writable: true }]),
    ).to.throw(/register block/);
    vectors.close();
    lines.close();
    irq.close();
  });

  it('passes on an access wider than a small area, never reading past it', async () => {
    // An area of 4 bytes and an 8-byte read at its start: size - count must not wrap around.
    channel.setAreas([{ ...AREA, size: 4, fd: memfd, fileOffset: 0, readable: true, writable: true }]);
    sendRaw(peer, access(5, READ, 0x2000, 8));
    await eventually(() => data.length === 1, 'the read passed on to JavaScript');
    expect(data[0].chunk.readUInt16LE(0)).to.equal(5);
    expect(channel.stats()).to.deep.equal({ servedReads: 0, servedWrites: 0 });
  });

  it('passes on accesses it must not answer: outside areas, odd sizes, misaligned, with fds', async () => {
    const denied = [
      access(1, READ, 0x1ffc, 4), // outside
      access(2, READ, 0x2ffe, 4), // straddles the end
      access(3, READ, 0x2000, 3), // not 1, 2, 4 or 8 bytes
      access(4, READ, 0x2002, 4), // misaligned
      access(5, READ, 0x2000, 4, Buffer.alloc(4)), // a read with data
    ];
    for (const m of denied) sendRaw(peer, m);
    const withFd = access(6, READ, 0x2000, 4);
    sendRaw(peer, withFd, [memfd]);
    await eventually(() => data.reduce((n, d) => n + d.chunk.length, 0) === 4 * 32 + 36 + 32, 'the data');
    expect(Buffer.concat(data.map((d) => d.chunk))).to.deep.equal(Buffer.concat([...denied, withFd]));
    const carried = data.filter((d) => d.fds.length > 0);
    expect(carried).to.have.length(1);
    expect(carried[0].chunk.subarray(-32)).to.deep.equal(withFd);
    expect(channel.stats()).to.deep.equal({ servedReads: 0, servedWrites: 0 });
  });

  it('answers nothing ahead of an earlier message still with JavaScript', async () => {
    const cold = Buffer.concat([header(1, 3, 24), Buffer.alloc(8)]); // GET_REGION_INFO
    sendRaw(peer, cold);
    spin(50); // the socket thread passes it on; JavaScript cannot take it yet
    sendRaw(peer, access(2, READ, 0x2000, 4));
    expect(spinReceive(peer, 1, 200)).to.have.length(0); // no reply while the first is with JS
    await eventually(() => data.reduce((n, d) => n + d.chunk.length, 0) === 24 + 32, 'both messages');
    expect(Buffer.concat(data.map((d) => d.chunk))).to.deep.equal(
      Buffer.concat([cold, access(2, READ, 0x2000, 4)]),
    );
    // Once JavaScript handled them, accesses are answered natively again.
    sendRaw(peer, access(3, READ, 0x2000, 4));
    expect(spinReceive(peer, 36, 2000)).to.have.length(36);
  });

  it('keeps every message, in order, whatever the split, with fds on their own message', async () => {
    const rand = random(99);
    const messages: Buffer[] = [];
    const fdFiles: number[] = [];
    const sent: Array<{ bytes: Buffer; fds: number[] }> = [];
    let pending: Buffer[] = [];
    const flush = () => {
      if (pending.length === 0) return;
      const all = Buffer.concat(pending);
      pending = [];
      for (let at = 0; at < all.length; ) {
        const n = Math.min(all.length - at, 1 + rand(48));
        sent.push({ bytes: all.subarray(at, at + n), fds: [] });
        at += n;
      }
    };
    for (let i = 0; i < 400; i++) {
      const kind = rand(6);
      let m: Buffer;
      if (kind <= 1) m = access(i, READ, 0x2000 + 4 * rand(1024), 4);
      else if (kind === 2) m = access(i, WRITE, 0x2000 + 8 * rand(512), 8, pattern(8, i + 1), NO_REPLY);
      else if (kind === 3) m = Buffer.concat([header(i, 2 + rand(8), 16 + 40), pattern(40, i)]);
      else if (kind === 4)
        m = header(i, READ, 8); // undersized: 16 bytes on the wire
      else m = Buffer.concat([header(i, 1, 16 + 1000), pattern(1000, i)]);
      messages.push(m);
      if (rand(8) === 0) {
        // A message with fds goes out in one write, as vfio-user senders do.
        flush();
        const fd = memfdCreate(`emu-test-msg-${i}`, 0);
        fdFiles.push(fd);
        sent.push({ bytes: m, fds: [fd] });
      } else {
        pending.push(m);
      }
    }
    flush();
    // In rounds, so that JavaScript takes (and acks) between them and the thread answers some.
    for (let k = 0; k < sent.length; k++) {
      sendRaw(peer, sent[k].bytes, sent[k].fds);
      if (k % 25 === 24) await new Promise((r) => setTimeout(r, 2));
    }
    for (const fd of fdFiles) closeFd(fd);
    const withFds = new Set(sent.filter((s) => s.fds.length > 0).map((s) => s.bytes.readUInt16LE(0)));
    let replyBytes = Buffer.alloc(0);
    const replies: number[] = [];
    /** The messages passed on: each one's id, bytes and fds. */
    const frame = () => data.map((d) => ({ id: d.chunk.readUInt16LE(0), bytes: d.chunk, fds: d.fds }));
    await eventually(
      () => {
        for (;;) {
          const r = binding.recvmsg(peer);
          if (typeof r === 'number') break;
          replyBytes = Buffer.concat([replyBytes, r.data]);
        }
        while (replyBytes.length >= 16 && replyBytes.length >= replyBytes.readUInt32LE(4)) {
          replies.push(replyBytes.readUInt16LE(0));
          replyBytes = replyBytes.subarray(replyBytes.readUInt32LE(4));
        }
        const stats = channel.stats();
        return frame().length + stats.servedReads + stats.servedWrites === messages.length;
      },
      'every message passed on or answered',
      5000,
    );
    const passed = frame();
    const passedIds = new Set(passed.map((p) => p.id));
    const servedIds = messages.map((m) => m.readUInt16LE(0)).filter((id) => !passedIds.has(id));
    expect(servedIds.length, 'some accesses answered natively').to.be.greaterThan(0);
    // Passed on: whole, in their order.
    expect(Buffer.concat(passed.map((p) => p.bytes))).to.deep.equal(
      Buffer.concat(messages.filter((m) => passedIds.has(m.readUInt16LE(0)))),
    );
    // Answered: only fd-less accesses; each read got its reply, in order, posted writes none.
    for (const id of servedIds) {
      expect(withFds.has(id), `message ${id} came with fds`).to.equal(false);
      expect([READ, WRITE]).to.include(messages[id].readUInt16LE(2));
    }
    expect(replies).to.deep.equal(servedIds.filter((id) => messages[id].readUInt16LE(2) === READ));
    // Fds: on their own message, and only there.
    for (const p of passed) {
      if (!withFds.has(p.id)) {
        expect(p.fds, `fds on message ${p.id}`).to.have.length(0);
        continue;
      }
      expect(p.fds).to.have.length(1);
      expect(readlinkSync(`/proc/self/fd/${p.fds[0]}`)).to.contain(`emu-test-msg-${p.id} `);
    }
  });

  it('frames what it refuses: an oversized message as its header, the rest skipped, its fds with it; fds past the bound released and counted', async () => {
    const before = openFds();
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const small = TrapChannel.adopt(b, { maxMessageSize: 64, maxMessageFds: 2, label: 'small' });
    const got: Array<{ kind: string; bytes: Buffer; fds: number[]; excess: number }> = [];
    small.on('frame', (f) => got.push(f));
    const big = Buffer.concat([header(1, 2, 16 + 100), pattern(100, 1)]);
    sendRaw(client, big.subarray(0, 16), [memfd]); // on its header: handed over with the frame
    sendRaw(client, big.subarray(16, 50), [memfd]); // on its body: released as it is skipped
    sendRaw(client, big.subarray(50));
    const next = Buffer.concat([header(2, 2, 24), Buffer.alloc(8)]);
    sendRaw(client, next, [memfd, memfd, memfd]);
    await eventually(() => got.length === 2, 'both frames');
    expect(got[0]).to.deep.include({ kind: 'oversized', bytes: big.subarray(0, 16), excess: 0 });
    expect(got[0].fds).to.have.length(1);
    expect(got[1]).to.deep.include({ kind: 'message', bytes: next, excess: 1 });
    expect(got[1].fds).to.have.length(2);
    expect(small.heldFds).to.equal(0);
    for (const f of got) for (const fd of f.fds) closeFd(fd);
    small.close();
    closeFd(client);
    await new Promise((r) => setTimeout(r, 10));
    expect(fdDiff(before, openFds())).to.equal('');
  });

  it('holds the fds of a message still arriving, and counts them', async () => {
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const other = TrapChannel.adopt(b, LIMITS);
    const got: number[][] = [];
    other.on('frame', (f) => got.push(f.fds));
    const m = Buffer.concat([header(1, 2, 16 + 64), pattern(64, 2)]);
    sendRaw(client, m.subarray(0, 40), [memfd]);
    await eventually(() => other.heldFds === 1, 'the fd held');
    expect(got).to.have.length(0);
    sendRaw(client, m.subarray(40));
    await eventually(() => got.length === 1, 'the message');
    expect(got[0]).to.have.length(1);
    expect(other.heldFds).to.equal(0);
    closeFd(got[0][0]);
    other.close();
    closeFd(client);
  });

  it('stops reading while the peer leaves its replies unread, and loses none', async () => {
    channel.close();
    const [a, b] = UnixSocket.pair();
    closeFd(peer);
    peer = a.detach();
    channel = TrapChannel.adopt(b, { ...LIMITS, maxQueuedBytes: 4096 });
    channel.setAreas([{ ...AREA, fd: memfd, fileOffset: 0, readable: true, writable: true }]);
    let sentReads = 0;
    const batch = Buffer.concat(Array.from({ length: 64 }, (_, i) => access(i, READ, 0x2000 + 4 * i, 4)));
    for (let round = 0; round < 20000; round++) {
      const n = binding.sendmsg(peer, batch, []);
      if (n < 0) {
        await new Promise((r) => setTimeout(r, 20));
        if (binding.sendmsg(peer, batch, []) < 0) break;
        sentReads += 64;
        continue;
      }
      expect(n).to.equal(batch.length);
      sentReads += 64;
    }
    // The peer's writes blocked: the thread stopped reading, its queue stays near the bound.
    expect(sentReads).to.be.lessThan(20000 * 64);
    expect(channel.writableLength).to.be.at.most(4096 + 2048 * 36 * 16);
    const got = spinReceive(peer, sentReads * 36, 10000);
    expect(got.length).to.equal(sentReads * 36);
    expect(channel.stats().servedReads).to.equal(sentReads);
  });

  it('reports the peer closing as end then close, and leaves no fd behind', async () => {
    const before = openFds();
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const other = TrapChannel.adopt(b, LIMITS);
    const events: string[] = [];
    other.on('frame', (f) => {
      events.push('frame');
      for (const fd of f.fds) closeFd(fd);
    });
    other.on('end', () => events.push('end'));
    other.on('error', (e) => events.push(`error ${e.message}`));
    const closed = nextEvent(other, 'close');
    sendRaw(client, Buffer.concat([header(1, 2, 20), Buffer.alloc(4)]), [memfd]);
    closeFd(client);
    await closed;
    expect(events).to.deep.equal(['frame', 'end']);
    expect(other.closed).to.equal(true);
    expect(fdDiff(before, openFds())).to.equal('');
  });

  it('settle() hands over what the peer sent and its hang-up before it returns', () => {
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const other = TrapChannel.adopt(b, LIMITS);
    const events: string[] = [];
    other.on('frame', (f) => events.push(`${f.kind} ${f.bytes.length}`));
    other.on('end', () => events.push('end'));
    other.on('close', () => events.push('close'));
    sendRaw(client, header(1, 2, 16));
    closeFd(client);
    other.settle();
    expect(events).to.deep.equal(['message 16', 'end', 'close']);
  });

  it('closes fds of messages JavaScript never took when it closes', async () => {
    const before = openFds();
    const [a, b] = UnixSocket.pair();
    const client = a.detach();
    const other = TrapChannel.adopt(b, LIMITS);
    sendRaw(client, Buffer.concat([header(1, 2, 20), Buffer.alloc(4)]), [memfd]);
    spin(50); // passed on, not taken
    other.close();
    closeFd(client);
    await new Promise((r) => setTimeout(r, 10));
    expect(fdDiff(before, openFds())).to.equal('');
  });
});
