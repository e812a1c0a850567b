/**
 * Register round trips: 4-byte REGION_READs of config space, one outstanding, to a server in another
 * process, as a vCPU's trapped access waits for its reply. Reference in the same run: the transport
 * floor, a peer that answers each REGION_READ with the same bytes straight from the socket (framing
 * only, no server). Reported: round trips per second, p50/p99, and the ratio to the floor.
 * `BENCH_MS` sets the time per figure (default 2000).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnixListener, UnixSocket } from '@emu/native';
import { Command, HEADER_SIZE, HeaderFlag } from '../src/protocol/constants.js';
import { Header, RegionAccess } from '../src/protocol/messages.js';
import { VfioUserServer } from '../src/server/server.js';
import { makeTestDevice } from '../src/server/test-device.fixture.js';
import { MessageFramer } from '../src/transport/framer.js';

const MS = Number(process.env.BENCH_MS ?? 2000);
const self = fileURLToPath(import.meta.url);

/** The floor: answers VERSION and REGION_READ, in order, with nothing in between. */
function floor(path: string): void {
  const listener = UnixListener.listen(path);
  listener.on('connection', (socket: UnixSocket) => {
    const framer = new MessageFramer(1 << 20);
    const data = Buffer.alloc(4);
    socket.on('data', (chunk: Buffer, fds: number[]) => {
      for (const ev of framer.push(chunk, fds)) {
        if (ev.kind !== 'message') continue;
        const { header, payload } = ev.message;
        const body =
          header.command === Command.VERSION
            ? Buffer.concat([payload.subarray(0, 4), Buffer.from('{"capabilities":{}}\0')])
            : Buffer.concat([payload.subarray(0, RegionAccess.size), data]);
        const reply = Header.encode({
          msgId: header.msgId,
          command: header.command,
          size: HEADER_SIZE + body.length,
          flags: HeaderFlag.TYPE_REPLY,
        });
        socket.write(Buffer.concat([reply, body]));
      }
    });
    socket.on('error', () => {});
  });
}

function emu(path: string): void {
  const dev = makeTestDevice();
  new VfioUserServer(dev.spec, { path, logger: { debug() {}, info() {}, warn() {}, error() {} } }).listen();
}

/**
 * A lean client, so that the figure is the server's: the same request bytes sent again as soon as the
 * previous reply is complete (replies are 16 + 16 + 4 bytes), straight on the socket.
 */
async function measure(path: string): Promise<{ rate: number; p50: number; p99: number }> {
  const socket = UnixSocket.connect(path);
  const version = Buffer.concat([
    Header.encode({ msgId: 0, command: Command.VERSION, size: HEADER_SIZE + 4, flags: 0 }),
    Buffer.from([0, 0, 0, 0]),
  ]);
  const request = Buffer.concat([
    Header.encode({
      msgId: 1,
      command: Command.REGION_READ,
      size: HEADER_SIZE + RegionAccess.size,
      flags: 0,
    }),
    RegionAccess.encode({ offset: 0n, region: 7, count: 4 }),
  ]);
  const replySize = HEADER_SIZE + RegionAccess.size + 4;
  const times: number[] = [];
  let warm = 2000;
  let pending = 0;
  let sent = 0n;
  let end = 0;
  let negotiated = false;
  await new Promise<void>((resolve) => {
    const next = () => {
      sent = process.hrtime.bigint();
      socket.write(request);
    };
    socket.on('data', (chunk: Buffer) => {
      if (!negotiated) {
        negotiated = true;
        next();
        return;
      }
      pending += chunk.length;
      while (pending >= replySize) {
        pending -= replySize;
        if (warm > 0) {
          if (--warm === 0) end = performance.now() + MS;
        } else times.push(Number(process.hrtime.bigint() - sent) / 1000);
        if (warm === 0 && performance.now() >= end) {
          resolve();
          return;
        }
        next();
      }
    });
    socket.write(version);
  });
  socket.close();
  times.sort((x, y) => x - y);
  return {
    rate: times.length / (MS / 1000),
    p50: times[times.length >> 1],
    p99: times[Math.floor(times.length * 0.99)],
  };
}

async function withPeer(kind: 'floor' | 'emu', dir: string) {
  const path = join(dir, `${kind}.sock`);
  const child = fork(self, [kind, path], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  try {
    return await measure(path);
  } finally {
    child.kill();
  }
}

if (process.argv[2] === 'floor' || process.argv[2] === 'emu') {
  (process.argv[2] === 'floor' ? floor : emu)(process.argv[3]);
  process.send?.('ready');
} else {
  const dir = mkdtempSync(join(tmpdir(), 'emu-rtt-'));
  try {
    const ref = await withPeer('floor', dir);
    const got = await withPeer('emu', dir);
    const line = (name: string, r: typeof ref) =>
      `  ${name.padEnd(38)} ${Math.round(r.rate).toString().padStart(7)}/s  p50 ${r.p50.toFixed(0)} µs  p99 ${r.p99.toFixed(0)} µs`;
    console.log('REGION_READ round trips, 4 bytes of config space, one outstanding');
    console.log(line('reference: framing-only peer', ref));
    console.log(`${line('VfioUserServer', got)}  ratio ${(got.rate / ref.rate).toFixed(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
