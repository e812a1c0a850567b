/**
 * Fuzz target `stream` (pnpm fuzz stream): a VfioUserServer's message stream and dispatch, from a
 * client that sends anything: a VERSION with capability edge values (0, tiny, huge, wrong types,
 * duplicate and unknown keys), well-formed commands with random fields, mutated ones, raw bytes split
 * anywhere, each carrying fds of every kind (none, eventfd, memfd, regular file, socket), and answers
 * to the server's own DMA_READ / DMA_WRITE on fd-less memory: right or wrong sizes, error replies,
 * fds attached, or none at all. After each input of whole messages the server must still answer (a
 * sync request gets its reply, or it closed the connection) and every DMA it started must have
 * settled; after any input it must keep its DMA table sorted and disjoint, and once the client has
 * gone hold no mapping, no fd, no client and nothing of its budget: the process's fd count is back
 * where it started.
 */
import { mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeFd, EventFd, memfdCreate, UnixSocket } from '@emu/native';
import fc from 'fast-check';
import type { FuzzTarget } from '../../../scripts/fuzz/target.mjs';
import { openFds, turn } from '../../../scripts/fuzz/waiting.mjs';
import { Command, HeaderFlag } from '../src/protocol/constants.js';
import {
  DmaAccess,
  DmaMap,
  DmaUnmap,
  Header,
  IrqSet,
  RegionAccess,
  Version,
} from '../src/protocol/messages.js';
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
/** Where the client maps fd-less memory for the server's DMA through messages. */
const DMA_BASE = 0x7000_0000n;
const DMA_SIZE = 0x4000;
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

/** A capability value at the edges of what the table takes, of the right type or not. */
const capValue = fc.oneof(
  fc.constantFrom('0', '1', '1023', '1024', '4096', '65535', '1048576', '4294967296', '18446744073709551615'),
  fc.constantFrom('18446744073709551616', '-1', '1.5', '1e3', '"16"', 'null', 'true', '[]', '{}'),
  fc.nat().map(String),
);
const capKey = fc.constantFrom(
  'max_msg_fds',
  'max_data_xfer_size',
  'max_dma_maps',
  'pgsizes',
  'write_multiple',
  'migration',
  'twin_socket',
  'shiny',
);
/** The JSON text of a VERSION's capabilities: random members (a key may repeat), or none at all. */
const capabilities: fc.Arbitrary<string | undefined> = fc.oneof(
  fc.constant(undefined),
  // QEMU 11.1's own.
  fc.constant(
    '{"capabilities":{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}}',
  ),
  fc.constant('{"capabilities":{"max_data_xfer_size":1024,"max_msg_fds":0}}'),
  fc
    .array(
      fc.tuple(
        capKey,
        fc.oneof(
          capValue,
          fc.constantFrom(
            '{"pgsize":4096,"max_bitmap_size":268435456}',
            '{"supported":true}',
            '{"pgsize":1}',
          ),
        ),
      ),
      { maxLength: 6 },
    )
    .map((members) => `{"capabilities":{${members.map(([k, v]) => `"${k}":${v}`).join(',')}}}`),
);

/** One DMA the server starts on fd-less memory, and how the client answers its request. */
interface Dma {
  write: boolean;
  offset: number;
  length: number;
  /** none: never answered (the request times out); error: an error reply; else a reply. */
  answer: 'reply' | 'error' | 'none';
  /** Bytes more or fewer than the reply should have. */
  delta: number;
  fds: FdKind[];
}

const dma: fc.Arbitrary<Dma> = fc.record({
  write: fc.boolean(),
  offset: fc.integer({ min: 0, max: DMA_SIZE - 1 }),
  length: fc.integer({ min: 1, max: 3000 }),
  answer: fc.constantFrom<Dma['answer']>('reply', 'reply', 'error', 'none'),
  delta: fc.oneof(fc.constant(0), fc.integer({ min: -16, max: 16 })),
  fds: fdKinds,
});

interface Input {
  negotiate: boolean;
  capabilities?: string;
  items: Item[];
  dmas: Dma[];
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

/**
 * The server's own DMA through messages: the client maps fd-less memory and enables bus mastering,
 * then for each DMA the server starts, answers its requests as told, one DMA after the other. A DMA
 * left unanswered is left in flight: the client leaves with it. Returns every DMA's outcome, for the
 * check that each settles (resolves or rejects, never throws past its promise) once the client is gone.
 * Nothing is started when the client did not negotiate.
 */
async function runDmas(peer: RawPeer, dmas: Dma[]): Promise<Array<Promise<unknown>>> {
  const outcomes: Array<Promise<unknown>> = [];
  if (dmas.length === 0 || server.client === undefined || peer.closed) return outcomes;
  const map = DmaMap.encode({ argsz: DmaMap.size, flags: 3, address: DMA_BASE, size: BigInt(DMA_SIZE) });
  // Bus Master Enable (and memory space), as a guest's driver sets it.
  const master = Buffer.concat([
    RegionAccess.encode({ offset: 4n, region: 7, count: 2 }),
    Buffer.from([6, 0]),
  ]);
  if (!trySend(peer, () => peer.send(0xffe0, Command.DMA_MAP, map))) return outcomes;
  if (!trySend(peer, () => peer.send(0xffe1, Command.REGION_WRITE, master))) return outcomes;
  // Handled in order: once the second is answered, the memory is mapped and bus mastering on.
  for (;;) {
    const m = await peer.next(3000).catch(() => undefined);
    if (!m) return outcomes;
    if (m.header.msgId === 0xffe1) break;
  }
  for (const d of dmas) {
    const length = Math.min(d.length, DMA_SIZE - d.offset);
    const address = DMA_BASE + BigInt(d.offset);
    const started = d.write
      ? server.dmaWrite(address, Buffer.alloc(length, 0x5a))
      : server.dmaRead(address, length);
    let done = false;
    const settled = started.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    outcomes.push(settled);
    if (d.answer === 'none') continue;
    // Answer each request of it until it settles (a long one is split by max_data_xfer_size); a
    // request of an earlier, unanswered DMA (outside this one's range) stays unanswered.
    while (!done && !peer.closed) {
      if (peer.queued === 0) {
        // A DMA refused at once (outside memory, bus mastering off) sends nothing: stop waiting then.
        await Promise.race([peer.arrival(3000), settled]);
        if (peer.queued === 0) break;
      }
      const m = await peer.next();
      if ((m.header.flags & HeaderFlag.TYPE_MASK) !== HeaderFlag.TYPE_COMMAND) continue;
      const req = DmaAccess.decode(m.payload);
      if (req.address < address || req.address >= address + BigInt(length)) continue;
      const data = d.write ? 0 : Math.max(0, Number(req.count) + d.delta);
      const body =
        d.answer === 'error'
          ? Buffer.alloc(0)
          : Buffer.concat([m.payload.subarray(0, DmaAccess.size), Buffer.alloc(data)]);
      const flags = HeaderFlag.TYPE_REPLY | (d.answer === 'error' ? HeaderFlag.ERROR : 0);
      const head = Header.encode({
        msgId: m.header.msgId,
        command: m.header.command,
        size: 16 + body.length,
        flags,
        error: 14,
      });
      const fds = d.fds.map(makeFd);
      try {
        trySend(peer, () => peer.sendRaw(Buffer.concat([head, body]), fds));
      } finally {
        for (const fd of fds) closeFd(fd);
      }
    }
  }
  return outcomes;
}

/**
 * Sends, unless the server has closed the connection (it does after a refused VERSION, or a framing
 * error): then the write fails, as it would for any client, and the input goes on to its checks.
 */
function trySend(peer: RawPeer, send: () => void): boolean {
  if (peer.closed || peer.socket.closed) return false;
  try {
    send();
    return true;
  } catch (err) {
    if (peer.closed || peer.socket.closed) return false;
    throw err;
  }
}

export const target: FuzzTarget<Input> = {
  arbitrary: fc.record({
    negotiate: fc.boolean(),
    capabilities,
    dmas: fc.array(dma, { maxLength: 3 }),
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
    const peer = new RawPeer(server.path);
    let dmas: Array<Promise<unknown>> = [];
    if (input.negotiate) {
      const tail = input.capabilities === undefined ? '' : `${input.capabilities}\0`;
      trySend(peer, () =>
        peer.send(
          1,
          Command.VERSION,
          Buffer.concat([Version.encode({ major: 0, minor: 0 }), Buffer.from(tail)]),
        ),
      );
    }
    try {
      // The server's own DMA first, while the client's state is known (memory mapped, bus mastering).
      if (input.negotiate) {
        await peer.arrival(1000);
        dmas = await runDmas(peer, input.dmas);
      }
      let id = 2;
      for (const item of input.items) {
        const fds = item.fds.map(makeFd);
        try {
          const msgId = id++ & 0xffff;
          trySend(peer, () =>
            item.raw
              ? peer.sendRaw(item.raw, fds)
              : peer.send(msgId, item.command, item.payload, fds, item.flags),
          );
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
      trySend(peer, () =>
        peer.send(
          sync,
          Command.DEVICE_GET_INFO,
          Buffer.from([16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
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
    // The client gone: every DMA it was asked for has settled.
    const settledAll = await Promise.race([
      Promise.all(dmas).then(() => true),
      new Promise((r) => setTimeout(() => r(false), 3000)),
    ]);
    if (!settledAll) throw new Error('a DMA of the server never settled after its client left');
    // And nothing of it is left, its budget included.
    const held = () =>
      Object.entries(server.stats.budget)
        .filter(([, line]) => line.used !== 0)
        .map(([name, line]) => `${name} ${line.used}`);
    const end = Date.now() + 2000;
    while (server.client !== undefined || server.dma.size > 0 || openFds() > baseline || held().length > 0) {
      if (Date.now() > end) {
        throw new Error(
          `after the client left: client ${server.client !== undefined}, ${server.dma.size} DMA ranges, ${openFds() - baseline} fds over the baseline, budget held: ${held().join(', ') || 'none'}`,
        );
      }
      await turn();
    }
  },
};
