/**
 * Fuzz target `stream` (pnpm fuzz stream): a VfioUserServer's message stream and dispatch, from a
 * client that sends anything: well-formed commands with random fields, mutated ones, raw bytes split
 * anywhere, each carrying fds of every kind (none, eventfd, memfd, regular file, socket). After each
 * input of whole messages the server must still answer (a sync request gets its reply, or it closed
 * the connection); after any input it must keep its DMA table sorted and disjoint, and once the client has
 * gone hold no mapping, no fd and no client: the process's fd count is back where it started.
 */
import { mkdtempSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeFd, EventFd, memfdCreate, UnixSocket } from '@emu/native';
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { Command, HeaderFlag } from '../src/protocol/constants.js';
import { DmaMap, DmaUnmap, Header, IrqSet, RegionAccess, Version } from '../src/protocol/messages.js';
import { RawPeer } from '../src/server/raw-peer.fixture.js';
import { VfioUserServer } from '../src/server/server.js';
import { makeTestDevice } from '../src/server/test-device.fixture.js';

type FdKind = 'eventfd' | 'memfd' | 'sealed-memfd' | 'file' | 'socket';

const dir = mkdtempSync(join(tmpdir(), 'emu-fuzz-stream-'));
writeFileSync(join(dir, 'file'), Buffer.alloc(8192));
const dev = makeTestDevice();
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const server = new VfioUserServer(dev.spec, {
  path: join(dir, 'dev.sock'),
  logger: quiet,
  requestTimeoutMs: 200,
  handshakeTimeoutMs: 2000,
}).listen();
dev.attach(server);
const openFds = () => readdirSync('/proc/self/fd').length;
let baseline = -1;

function makeFd(kind: FdKind): number {
  switch (kind) {
    case 'eventfd': {
      const e = EventFd.create();
      const fd = e.fd;
      return fd; // the EventFd object is dropped; its fd is closed by the caller after sending
    }
    case 'memfd':
      return memfdCreate('fuzz', 1 << 20);
    case 'sealed-memfd':
      return memfdCreate('fuzz', 1 << 20, { seal: true });
    case 'file':
      return openSync(join(dir, 'file'), 'r+');
    case 'socket': {
      const [a, b] = UnixSocket.pair();
      b.close();
      return a.detach();
    }
  }
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const addr = fc.oneof(
  fc.constantFrom(0n, 0x100000n, 0x200000n, 2n ** 64n - 4096n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const size = fc.oneof(
  fc.constantFrom(0n, 4096n, 1n << 20n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
);
const fdKinds = fc.array(fc.constantFrom<FdKind>('eventfd', 'memfd', 'sealed-memfd', 'file', 'socket'), {
  maxLength: 3,
});

interface Item {
  command: number;
  payload: Buffer;
  fds: FdKind[];
  flags: number;
  /** Raw bytes sent instead of a framed message (a header that lies, a split, garbage). */
  raw?: Buffer;
}

const command = (c: number, payload: fc.Arbitrary<Buffer>, fds = fc.constant<FdKind[]>([])) =>
  fc.record({ command: fc.constant(c), payload, fds, flags: fc.constantFrom(0, 0, HeaderFlag.NO_REPLY) });

const wellFormed: fc.Arbitrary<Item> = fc.oneof(
  command(
    Command.DMA_MAP,
    fc
      .record({
        flags: fc.integer({ min: 0, max: 7 }),
        offset: fc.constantFrom(0n, 4096n, 1n << 21n),
        address: addr,
        size,
      })
      .map((m) => DmaMap.encode({ argsz: DmaMap.size, ...m })),
    fc.oneof(fc.constant<FdKind[]>([]), fdKinds),
  ),
  command(
    Command.DMA_UNMAP,
    fc
      .record({ flags: fc.integer({ min: 0, max: 3 }), address: addr, size })
      .map((m) => DmaUnmap.encode({ argsz: DmaUnmap.size, ...m })),
  ),
  command(
    Command.REGION_READ,
    fc
      .record({
        offset: fc.bigInt({ min: 0n, max: 0x5000n }),
        region: fc.integer({ min: 0, max: 10 }),
        count: fc.integer({ min: 0, max: 64 }),
      })
      .map((a) => RegionAccess.encode(a)),
  ),
  command(
    Command.REGION_WRITE,
    fc
      .tuple(
        fc.record({
          offset: fc.bigInt({ min: 0n, max: 0x5000n }),
          region: fc.integer({ min: 0, max: 10 }),
          count: fc.integer({ min: 0, max: 16 }),
        }),
        fc.uint8Array({ maxLength: 16 }),
      )
      .map(([a, d]) => Buffer.concat([RegionAccess.encode(a), Buffer.from(d)])),
  ),
  command(
    Command.DEVICE_SET_IRQS,
    fc
      .record({
        flags: u32,
        index: fc.integer({ min: 0, max: 6 }),
        start: fc.integer({ min: 0, max: 8 }),
        count: fc.integer({ min: 0, max: 8 }),
      })
      .map((s) => IrqSet.encode({ argsz: IrqSet.size, ...s })),
    fdKinds,
  ),
  command(
    Command.DEVICE_GET_REGION_INFO,
    fc.uint8Array({ minLength: 32, maxLength: 48 }).map((b) => Buffer.from(b)),
  ),
  command(
    Command.DEVICE_GET_IRQ_INFO,
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b)),
  ),
  command(Command.DEVICE_RESET, fc.constant(Buffer.alloc(0))),
  command(Command.VERSION, fc.constant(Version.encode({ major: 0, minor: 0 }))),
);

const anyCommand: fc.Arbitrary<Item> = fc.record({
  command: fc.integer({ min: 0, max: 20 }),
  payload: fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  fds: fdKinds,
  flags: fc.integer({ min: 0, max: 0xf }),
});

const raw: fc.Arbitrary<Item> = fc
  .tuple(
    fc.record({
      msgId: fc.integer({ min: 0, max: 0xffff }),
      command: fc.integer({ min: 0, max: 20 }),
      size: u32,
      flags: u32,
      error: u32,
    }),
    fc.uint8Array({ maxLength: 64 }),
  )
  .map(([h, tail]) => ({
    command: -1,
    payload: Buffer.alloc(0),
    fds: [],
    flags: 0,
    raw: Buffer.concat([Header.encode(h), Buffer.from(tail)]),
  }));

interface Input {
  negotiate: boolean;
  items: Item[];
}

function checkTable(): void {
  const regions = server.dma.regions;
  for (let i = 1; i < regions.length; i++) {
    const a = regions[i - 1];
    const b = regions[i];
    if (a.address + a.size > b.address)
      throw new Error(`DMA table overlaps: ${a.address}+${a.size} and ${b.address}`);
  }
}

/** One turn of the event loop (its I/O poll included). */
const turn = () => new Promise((r) => setImmediate(r));

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    negotiate: fc.boolean(),
    items: fc.array(
      fc.oneof(
        { weight: 6, arbitrary: wellFormed },
        { weight: 2, arbitrary: anyCommand },
        { weight: 1, arbitrary: raw },
      ),
      { maxLength: 12 },
    ),
  }),
  async check(input) {
    if (baseline < 0) baseline = openFds();
    const peer = input.negotiate ? await RawPeer.negotiated(server.path) : new RawPeer(server.path);
    try {
      let id = 2;
      for (const item of input.items) {
        const fds = item.fds.map(makeFd);
        try {
          if (item.raw) peer.sendRaw(item.raw, fds);
          else peer.send(id++ & 0xffff, item.command, item.payload, fds, item.flags);
        } finally {
          for (const fd of fds) closeFd(fd);
        }
      }
      // Raw bytes may leave a message half sent (a header whose size is still to come): the server
      // waits for the rest, as a stream server must. Otherwise a sync point: the reply to a last
      // request, or the server hung up.
      if (input.items.some((i) => i.raw)) {
        // The bytes are in the socket already: a few turns of the event loop let the server read them.
        for (let i = 0; i < 8; i++) await turn();
        checkTable();
        return;
      }
      const sync = 0xfff0;
      peer.send(
        sync,
        Command.DEVICE_GET_INFO,
        Buffer.from([16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
      );
      for (;;) {
        let m: Awaited<ReturnType<RawPeer['next']>>;
        try {
          m = await peer.next(3000);
        } catch (err) {
          if (peer.closed) break;
          throw new Error(`the server stopped answering: ${(err as Error).message}`);
        }
        if (m.header.msgId === sync) break;
      }
      checkTable();
    } finally {
      peer.close();
    }
    // The client gone: nothing of it is left.
    const end = Date.now() + 2000;
    while (server.client !== undefined || server.dma.size > 0 || openFds() > baseline) {
      if (Date.now() > end) {
        throw new Error(
          `after the client left: client ${server.client !== undefined}, ${server.dma.size} DMA ranges, ${openFds() - baseline} fds over the baseline`,
        );
      }
      await turn();
    }
  },
};
