/**
 * Every fd that reaches emu, on any path, has an owner that closes it: the process's fd count
 * (/proc/self/fd) is back where it was once the peer has gone, whatever the peer attached its fds to.
 * The server side against a raw client, the client side (VfioUserClient) against a raw server.
 */
import { closeFd, EventFd, memfdCreate, UnixListener, type UnixSocket } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag } from '../protocol/constants.js';
import {
  DmaAccess,
  DmaMap,
  Header,
  IrqSet,
  RegionAccess,
  RegionInfo,
  Version,
} from '../protocol/messages.js';
import { COMMAND_TABLE } from '../server/handlers.js';
import { RawPeer } from '../server/raw-peer.fixture.js';
import { serverPerTest } from '../server/test-device.fixture.js';
import { openFdCount, silentLoggerFixture, tempDir, until } from '../server/test-env.fixture.js';
import { type Message, MessageFramer } from './framer.js';

/** n fds of mixed kinds (eventfds and memfds), closed by `done()` once sent (SCM_RIGHTS made copies). */
function someFds(n: number): { fds: number[]; done(): void } {
  const events: EventFd[] = [];
  const memfds: number[] = [];
  const fds = Array.from({ length: n }, (_, i) => {
    if (i % 2 === 0) {
      const e = EventFd.create();
      events.push(e);
      return e.fd;
    }
    const fd = memfdCreate('emu-test-fd-owner', 4096);
    memfds.push(fd);
    return fd;
  });
  return {
    fds,
    done() {
      for (const e of events) e.close();
      for (const fd of memfds) closeFd(fd);
    },
  };
}

describe('fd ownership: every fd a peer sends is closed by someone', () => {
  describe('server side', () => {
    const t = serverPerTest();
    let baseline = 0;

    /** After `body` and the peer gone: no client, no DMA range, and the process's fds back at the baseline. */
    async function leavesNoFd(body: (peer: RawPeer) => Promise<void>, negotiate = true): Promise<void> {
      const peer = negotiate ? await RawPeer.negotiated(t.server.path) : new RawPeer(t.server.path);
      baseline = openFdCount() - 1; // the peer's own socket goes with it
      await body(peer);
      peer.close();
      await until(() => t.server.client === undefined, 'the client to go');
      await until(() => openFdCount() <= baseline, `fds back at ${baseline} (now ${openFdCount()})`);
      expect(t.server.dma.size).to.equal(0);
    }

    /** Sends a command carrying n fds and returns the reply (or undefined for NO_REPLY). */
    async function sendWithFds(peer: RawPeer, command: number, payload: Buffer, n: number, flags = 0) {
      const f = someFds(n);
      peer.send(40, command, payload, f.fds, flags);
      f.done();
      if (flags & HeaderFlag.NO_REPLY) {
        expect(await peer.silent(100), 'no reply to NO_REPLY').to.equal(true);
        return undefined;
      }
      return (await peer.next()).header;
    }

    it("closes the fds a client attaches to its replies to the server's DMA_READ and DMA_WRITE", async () => {
      t.serve({ requestTimeoutMs: 1000 });
      await leavesNoFd(async (peer) => {
        // fd-less memory: every DMA of the device goes through messages.
        peer.send(
          2,
          Command.DMA_MAP,
          DmaMap.encode({ argsz: 32, flags: 3, address: 0x1000n, size: 0x1000n }),
        );
        expect((await peer.next()).header.error).to.equal(0);
        t.dev.spec.config.write(4, Buffer.from([0x06, 0])); // memory and bus master enable
        for (const command of [Command.DMA_READ, Command.DMA_WRITE]) {
          for (const error of [false, true]) {
            const dma =
              command === Command.DMA_READ
                ? t.server.dmaRead(0x1010n, 32)
                : t.server.dmaWrite(0x1010n, Buffer.alloc(32, 7));
            const outcome = dma.then(
              () => 'ok',
              (e: Error) => e.message,
            );
            const req = await peer.next();
            expect(req.header.command).to.equal(command);
            const f = someFds(16);
            const data = command === Command.DMA_READ ? Buffer.alloc(32) : Buffer.alloc(0);
            const flags = HeaderFlag.TYPE_REPLY | (error ? HeaderFlag.ERROR : 0);
            const body = error
              ? Buffer.alloc(0)
              : Buffer.concat([req.payload.subarray(0, DmaAccess.size), data]);
            const head = Header.encode({
              msgId: req.header.msgId,
              command,
              size: 16 + body.length,
              flags,
              error: error ? Errno.EFAULT : 0,
            });
            peer.sendRaw(Buffer.concat([head, body]), f.fds);
            f.done();
            // An error reply may carry no payload, let alone fds: refused as one that carried fds.
            expect(await outcome).to.contain('reply carried 16 fds, the request takes 0');
          }
        }
      });
    });

    it('closes fds on a reply to no request, and on a message of unknown type', async () => {
      t.serve();
      await leavesNoFd(async (peer) => {
        const f = someFds(8);
        peer.send(999, Command.DMA_READ, Buffer.alloc(16), f.fds, HeaderFlag.TYPE_REPLY);
        peer.send(998, Command.DEVICE_GET_INFO, Buffer.alloc(16), f.fds, 0x7);
        f.done();
        expect((await peer.next()).header).to.include({ msgId: 998, error: Errno.EINVAL });
      });
    });

    it('closes the fds of every command, past its declared fd count or not, valid or refused, replied or not', async () => {
      t.serve();
      const payloads: Record<number, Buffer> = {
        [Command.DMA_MAP]: DmaMap.encode({ argsz: 32, flags: 3, address: 0x10000n, size: 0x1000n }),
        [Command.DEVICE_SET_IRQS]: IrqSet.encode({ argsz: 20, flags: 4 | 32, index: 2, start: 0, count: 2 }),
        [Command.DEVICE_GET_REGION_INFO]: RegionInfo.encode({ argsz: 32, index: 2 }),
        [Command.REGION_READ]: RegionAccess.encode({ offset: 0n, region: 0, count: 4 }),
      };
      for (const [id, spec] of Object.entries(COMMAND_TABLE)) {
        const command = Number(id);
        const payload = payloads[command] ?? Buffer.alloc(spec!.minPayload);
        for (const n of [spec!.maxFds, spec!.maxFds + 1, 16]) {
          for (const flags of [0, HeaderFlag.NO_REPLY]) {
            await leavesNoFd(async (peer) => {
              await sendWithFds(peer, command, payload, n, flags);
            });
          }
        }
      }
    });

    it('closes fds on VERSION, on commands before it, on unknown commands and on framing errors', async () => {
      t.serve();
      const version = Version.encode({ major: 0, minor: 0 });
      await leavesNoFd(async (peer) => {
        expect((await sendWithFds(peer, Command.DEVICE_GET_INFO, Buffer.alloc(16), 3))!.error).to.equal(
          Errno.EINVAL,
        );
        expect((await sendWithFds(peer, Command.VERSION, version, 3))!.error).to.equal(Errno.EINVAL);
      }, false);
      await leavesNoFd(async (peer) => {
        expect((await sendWithFds(peer, Command.VERSION, version, 2))!.error).to.equal(Errno.EINVAL);
        expect((await sendWithFds(peer, 77, Buffer.alloc(8), 2))!.error).to.equal(Errno.ENOSYS);
        const f = someFds(4);
        // A header whose size is below 16, then one above the limit (its body never comes).
        peer.sendRaw(Header.encode({ msgId: 5, command: 4, size: 8 }), f.fds);
        expect((await peer.next()).header.error).to.equal(Errno.EINVAL);
        peer.sendRaw(Header.encode({ msgId: 6, command: 4, size: 0x7fffffff }), f.fds);
        expect((await peer.next()).header.error).to.equal(Errno.E2BIG);
        f.done();
      });
    });

    it('closes the fds of a message the client never finishes', async () => {
      t.serve();
      await leavesNoFd(async (peer) => {
        const f = someFds(12);
        const head = Header.encode({ msgId: 9, command: Command.REGION_WRITE, size: 16 + 16 + 64 });
        peer.sendRaw(Buffer.concat([head, Buffer.alloc(8)]), f.fds.slice(0, 6));
        peer.sendRaw(Buffer.alloc(8), f.fds.slice(6));
        f.done();
        await until(() => openFdCount() >= baseline + 12, 'the server to hold the fds');
      });
    });
  });

  describe('client side', () => {
    let dir: ReturnType<typeof tempDir>;
    let listener: UnixListener;
    /** What the raw server does with each message from the client. */
    let answer: (msg: Message, socket: UnixSocket) => void;

    beforeEach(() => {
      dir = tempDir();
      listener = UnixListener.listen(dir.path('raw.sock'));
      listener.on('connection', (socket: UnixSocket) => {
        const framer = new MessageFramer(1 << 20);
        socket.on('data', (chunk: Buffer, fds: number[]) => {
          for (const ev of framer.push(chunk, fds)) {
            if (ev.kind !== 'message') continue;
            for (const fd of ev.message.fds) closeFd(fd);
            // The client's answers to our own commands need none.
            if ((ev.message.header.flags & HeaderFlag.TYPE_MASK) === HeaderFlag.TYPE_REPLY) continue;
            if (ev.message.header.command === Command.VERSION) reply(socket, ev.message, version());
            else answer(ev.message, socket);
          }
        });
        socket.on('error', () => {});
      });
    });
    afterEach(() => {
      listener.close();
      dir.cleanup();
    });

    const version = () =>
      Buffer.concat([
        Version.encode({ major: 0, minor: 0 }),
        Buffer.from('{"capabilities":{"max_msg_fds":16}}\0'),
      ]);
    function reply(
      socket: UnixSocket,
      to: Message,
      payload: Buffer,
      fds: number[] = [],
      command?: number,
    ): void {
      const size = 16 + payload.length;
      const header = Header.encode({
        msgId: to.header.msgId,
        command: command ?? to.header.command,
        size,
        flags: HeaderFlag.TYPE_REPLY,
      });
      socket.write(Buffer.concat([header, payload]), fds);
    }

    async function clientLeavesNoFd(body: (client: VfioUserClient) => Promise<void>): Promise<void> {
      const before = openFdCount();
      const client = await VfioUserClient.connect(dir.path('raw.sock'), { logger: silentLoggerFixture });
      await body(client);
      client.close();
      await until(() => openFdCount() <= before, `the client's fds back at ${before} (now ${openFdCount()})`);
    }

    it('closes fds on replies to its requests that take none, or fewer', async () => {
      answer = (msg, socket) => {
        const f = someFds(5);
        const payload =
          msg.header.command === Command.DEVICE_GET_REGION_INFO
            ? RegionInfo.encode({ argsz: 32, flags: 7, index: 2, size: 0x1000n })
            : Buffer.alloc(16, 0);
        reply(socket, msg, payload, f.fds);
        f.done();
      };
      await clientLeavesNoFd(async (client) => {
        const info = await client.getDeviceInfo().catch((e: Error) => e.message);
        expect(info).to.contain('reply carried 5 fds, the request takes 0');
        const region = await client.getRegionInfo(2).catch((e: Error) => e.message);
        expect(region).to.contain('reply carried 5 fds, the request takes 1');
      });
    });

    it('closes fds on a too-short region info that carries one, and on commands the server sends', async () => {
      answer = (msg, socket) => {
        const f = someFds(1);
        reply(socket, msg, Buffer.alloc(4), f.fds);
        f.done();
        // The server's own commands, with fds: a DMA_READ and one the client does not know.
        const g = someFds(4);
        for (const command of [Command.DMA_READ, 60]) {
          const body = DmaAccess.encode({ address: 0n, count: 16n });
          socket.write(
            Buffer.concat([Header.encode({ msgId: 500, command, size: 16 + body.length }), body]),
            g.fds,
          );
        }
        g.done();
      };
      await clientLeavesNoFd(async (client) => {
        const region = await client.getRegionInfo(2).catch((e: Error) => e.message);
        expect(region).to.contain('DEVICE_GET_REGION_INFO failed: EPROTO');
      });
    });
  });
});
