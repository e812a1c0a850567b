import { EventFd } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command, Errno, HeaderFlag } from '../protocol/constants.js';
import { Header, RegionAccess } from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { BAR2_SIZE, serverPerTest } from './test-device.fixture.js';
import { openFdCount, tick, until } from './test-env.fixture.js';

/** What one client can make the server hold: queued replies, fds, its one client slot. */
describe('VfioUserServer bounds what one client can make it hold', () => {
  const t = serverPerTest();
  const serve = t.serve;

  it('stops reading a client that does not read its replies, and serves every request once it does', async () => {
    serve();
    const peer = await RawPeer.negotiated(t.server.path);
    peer.socket.pause();
    const requests = 2000;
    // 2000 reads of 16 KiB: 32 MiB of replies the client does not read.
    for (let i = 0; i < requests; i++) {
      peer.send(
        100 + i,
        Command.REGION_READ,
        RegionAccess.encode({ offset: 0n, region: 2, count: BAR2_SIZE }),
      );
    }
    await until(() => t.server.backlog.throttled, 'the server to stop reading');
    await tick(100);
    const handled = t.server.stats.commands.REGION_READ;
    expect(handled).to.be.below(requests);
    // The bound (4 MiB) plus the one reply that crossed it.
    expect(t.server.backlog.queuedBytes).to.be.at.most((4 << 20) + BAR2_SIZE + 32);
    await tick(100);
    expect(t.server.stats.commands.REGION_READ, 'nothing more is handled while paused').to.equal(handled);

    peer.socket.resume();
    for (let i = 0; i < requests; i++) {
      const reply = await peer.next(5000);
      expect(reply.header).to.include({ msgId: 100 + i, flags: HeaderFlag.TYPE_REPLY });
      expect(reply.payload.length).to.equal(RegionAccess.size + BAR2_SIZE);
    }
    expect(t.server.backlog).to.deep.equal({ queuedBytes: 0, throttled: false });
    peer.close();
  });

  it('closes a connection that sends no VERSION in time, and serves the next client', async () => {
    serve({ handshakeTimeoutMs: 200 });
    const silent = new RawPeer(t.server.path);
    await until(() => silent.closed, 'the silent client to be closed', 3000);
    expect(t.log.lines.map((l) => l.msg).join('\n')).to.contain('sent no VERSION within 200 ms');
    const next = await VfioUserClient.connect(t.server.path);
    expect((await next.getDeviceInfo()).numRegions).to.equal(9);
    // A client that did negotiate is not timed out.
    await tick(400);
    expect((await next.getDeviceInfo()).numRegions).to.equal(9);
    next.close();
  });

  it('holds at most max_msg_fds fds for a message still arriving, and refuses that message', async () => {
    serve();
    const peer = await RawPeer.negotiated(t.server.path);
    const ev = EventFd.create();
    const baseline = openFdCount();
    const data = 64 * 10;
    const head = Buffer.concat([
      Header.encode({ msgId: 9, command: Command.REGION_WRITE, size: 16 + RegionAccess.size + data }),
      RegionAccess.encode({ offset: 0n, region: 0, count: data }),
    ]);
    peer.sendRaw(head);
    // Ten pieces of the message, each with 16 copies of the eventfd: 160 fds for one message.
    for (let i = 0; i < 10; i++) {
      peer.sendRaw(Buffer.alloc(64), Array(16).fill(ev.fd));
      await tick(5);
      expect(openFdCount() - baseline, `fds held after piece ${i}`).to.be.at.most(16);
    }
    const reply = await peer.next();
    expect(reply.header).to.include({ msgId: 9, error: Errno.EINVAL });
    expect(t.log.lines.map((l) => l.msg).join('\n')).to.contain('160 fds, more than max_msg_fds 16');
    expect(t.dev.writes).to.have.length(0);
    await until(() => openFdCount() === baseline, 'every fd to be closed');
    ev.close();
    peer.close();
  });
});
