/**
 * What a client says it takes in VERSION is what the server sends it: a refused capability ends the
 * handshake (and the connection), an accepted one bounds every message that follows.
 */
import { UnixListener, type UnixSocket } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag, MIN_DATA_XFER_SIZE, RegionFlag } from '../protocol/constants.js';
import { DmaAccess, DmaMap, Header, RegionInfo, Version } from '../protocol/messages.js';
import { MessageFramer } from '../transport/framer.js';
import { RawPeer } from './raw-peer.fixture.js';
import { serverPerTest } from './test-device.fixture.js';
import { openFdCount, silentLoggerFixture, tempDir, until } from './test-env.fixture.js';

const version = (capabilities: string) =>
  Buffer.concat([Version.encode({ major: 0, minor: 0 }), Buffer.from(`{"capabilities":${capabilities}}\0`)]);

describe('VfioUserServer honours the capabilities its client negotiated', () => {
  const t = serverPerTest();

  async function negotiate(capabilities: string): Promise<RawPeer> {
    const peer = new RawPeer(t.server.path);
    peer.send(1, Command.VERSION, version(capabilities));
    const reply = await peer.next();
    expect(reply.header.flags, reply.header.error ? `refused: ${reply.header.error}` : '').to.equal(
      HeaderFlag.TYPE_REPLY,
    );
    return peer;
  }

  it('refuses a VERSION whose max_data_xfer_size is 0 or tiny, and closes the connection', async () => {
    t.serve();
    for (const size of [0, 1, 32, MIN_DATA_XFER_SIZE - 1]) {
      const peer = new RawPeer(t.server.path);
      peer.send(1, Command.VERSION, version(`{"max_data_xfer_size":${size}}`));
      expect((await peer.next()).header.error).to.equal(Errno.EINVAL);
      await until(() => peer.closed, 'the refused client to be closed');
      expect(t.server.client).to.equal(undefined);
    }
    expect(t.log.lines.map((l) => l.msg).join('\n')).to.contain(
      `"capabilities.max_data_xfer_size" 0 is below the minimum ${MIN_DATA_XFER_SIZE}`,
    );
    // The slot is free at once: the next client negotiates.
    const next = await VfioUserClient.connect(t.server.path, { logger: silentLoggerFixture });
    expect((await next.getDeviceInfo()).numRegions).to.equal(9);
    next.close();
  });

  it("splits its DMA_READ and DMA_WRITE by the client's max_data_xfer_size, never beyond it", async () => {
    t.serve();
    const peer = await negotiate(`{"max_data_xfer_size":${MIN_DATA_XFER_SIZE}}`);
    peer.send(2, Command.DMA_MAP, DmaMap.encode({ argsz: 32, flags: 3, address: 0x10000n, size: 0x10000n }));
    expect((await peer.next()).header.error).to.equal(0);
    t.dev.spec.config.write(4, Buffer.from([0x06, 0]));
    const length = 4000;
    const read = t.server.dmaRead(0x10010n, length);
    const counts: number[] = [];
    for (let done = 0; done < length; ) {
      const req = await peer.next();
      expect(req.header.command).to.equal(Command.DMA_READ);
      const { count } = DmaAccess.decode(req.payload);
      counts.push(Number(count));
      const body = Buffer.concat([
        req.payload.subarray(0, DmaAccess.size),
        Buffer.alloc(Number(count), 0xab),
      ]);
      peer.sendRaw(
        Buffer.concat([
          Header.encode({
            msgId: req.header.msgId,
            command: Command.DMA_READ,
            size: 16 + body.length,
            flags: HeaderFlag.TYPE_REPLY,
          }),
          body,
        ]),
      );
      done += Number(count);
    }
    expect(counts).to.deep.equal([1024, 1024, 1024, 928]);
    expect((await read).every((b) => b === 0xab)).to.equal(true);
    peer.close();
  });

  it('sends a client that takes no fds its region info without an fd and without mmap areas', async () => {
    t.serve();
    const fds = openFdCount();
    const peer = await negotiate('{"max_msg_fds":0}');
    for (const argsz of [RegionInfo.size, 4096]) {
      peer.send(3, Command.DEVICE_GET_REGION_INFO, RegionInfo.encode({ argsz, index: 2 }));
      const reply = await peer.next();
      expect(reply.fds).to.deep.equal([]);
      const info = RegionInfo.decode(reply.payload);
      expect(info.flags & (RegionFlag.MMAP | RegionFlag.CAPS)).to.equal(0);
      expect(info.flags & (RegionFlag.READ | RegionFlag.WRITE)).to.equal(RegionFlag.READ | RegionFlag.WRITE);
      expect(reply.payload.length).to.equal(RegionInfo.size);
    }
    // It still reaches the region, with messages.
    const client = t.server.client!;
    expect(client.capabilities.maxMsgFds).to.equal(0);
    peer.close();
    await until(() => openFdCount() <= fds, 'no fd left');
  });

  it('takes QEMU 11.1 as it is: version 0.0, its capabilities, the short reply', async () => {
    t.serve();
    const peer = new RawPeer(t.server.path);
    peer.send(
      1,
      Command.VERSION,
      version(
        '{"migration":{"pgsize":4096,"max_bitmap_size":268435456},"max_msg_fds":16,"max_data_xfer_size":1048576,"pgsizes":4096,"max_dma_maps":65535,"write_multiple":true}',
      ),
    );
    const reply = await peer.next();
    expect(reply.header.flags).to.equal(HeaderFlag.TYPE_REPLY);
    expect(Version.decode(reply.payload)).to.deep.equal({ major: 0, minor: 0 });
    // QEMU's buffer for the reply is its own request's size.
    expect(reply.payload.length).to.be.below(200);
    expect(t.server.client?.capabilities).to.include({ maxMsgFds: 16, maxDataXferSize: 1048576 });
    peer.close();
  });
});

describe('VfioUserClient honours the capabilities its server negotiated', () => {
  let dir: ReturnType<typeof tempDir>;
  let listener: UnixListener;
  beforeEach(() => {
    dir = tempDir();
    listener = UnixListener.listen(dir.path('raw.sock'));
    listener.on('connection', (socket: UnixSocket) => {
      const framer = new MessageFramer(1 << 20);
      socket.on('error', () => {});
      socket.on('data', (chunk: Buffer, fds: number[]) => {
        for (const ev of framer.push(chunk, fds)) {
          if (ev.kind !== 'message') continue;
          const { header } = ev.message;
          // A server that takes no fds, and answers every other command with an empty reply.
          const body = header.command === Command.VERSION ? version('{"max_msg_fds":0}') : Buffer.alloc(0);
          socket.write(
            Buffer.concat([
              Header.encode({
                msgId: header.msgId,
                command: header.command,
                size: 16 + body.length,
                flags: 1,
              }),
              body,
            ]),
          );
        }
      });
    });
  });
  afterEach(() => {
    listener.close();
    dir.cleanup();
  });

  it('sends a server that takes no fds none: a clear error instead of a SET_IRQS loop or a DMA_MAP fd', async () => {
    const client = await VfioUserClient.connect(dir.path('raw.sock'), { logger: silentLoggerFixture });
    const irqs = await Promise.race([
      client.setIrqEventfds('msix', 0, [3]).then(
        () => 'sent',
        (e: Error) => e.message,
      ),
      new Promise((r) => setTimeout(() => r('hung'), 2000)),
    ]);
    expect(irqs).to.contain('the server takes no fds');
    const map = await client
      .dmaMap({ address: 0n, size: 4096n, fd: 3, memory: new Uint8Array(4096) })
      .catch((e: Error) => e.message);
    expect(map).to.contain('the server takes no fds');
    // De-assigning needs no fd: still sent.
    await client.setIrqEventfds('msix', 0, [null, null]);
    client.close();
  });
});
