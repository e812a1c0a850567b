import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { Command } from '../protocol/constants.js';
import { Header, RegionAccess } from '../protocol/messages.js';
import { RawPeer } from './raw-peer.fixture.js';
import { VfioUserServer } from './server.js';
import { makeTestDevice, type TestDevice } from './test-device.fixture.js';
import { captureLogger, openFdCount, tempDir, until } from './test-env.fixture.js';

const read = (msgId: number, count = 4) =>
  Buffer.concat([
    Header.encode({ msgId, command: Command.REGION_READ, size: 16 + RegionAccess.size, flags: 0 }),
    RegionAccess.encode({ offset: 0n, region: 0, count }),
  ]);

describe('VfioUserServer when its client goes away with requests in flight', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: TestDevice;
  let server: VfioUserServer;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(() => {
    dir = tempDir();
    dev = makeTestDevice();
    log = captureLogger();
    server = new VfioUserServer(dev.spec, { path: dir.path('dev.sock'), logger: log.logger }).listen();
  });

  afterEach(() => {
    server.close();
    dev.dispose();
    dir.cleanup();
  });

  async function expectServed() {
    const next = await VfioUserClient.connect(server.path);
    expect((await next.getDeviceInfo()).numRegions).to.equal(9);
    next.close();
    await until(() => server.client === undefined, 'the check client to go');
  }

  it('survives a client that writes several requests in one write and exits before the replies', async () => {
    for (const requests of [2, 3, 16]) {
      const baseline = openFdCount();
      const peer = await RawPeer.negotiated(server.path);
      // QEMU killed with several vCPUs mid-access: requests are in the socket, nobody reads the replies.
      peer.sendRaw(Buffer.concat(Array.from({ length: requests }, (_, i) => read(10 + i))));
      peer.close();
      await until(() => server.client === undefined, 'the server to notice');
      await until(() => openFdCount() === baseline, 'its fds to be released');
      await expectServed();
    }
  });

  it('survives a client that exits while a large reply is still queued', async () => {
    const peer = await RawPeer.negotiated(server.path);
    peer.socket.pause();
    // Enough replies to fill the socket buffer, so the rest wait in the server's write queue.
    peer.sendRaw(Buffer.concat(Array.from({ length: 64 }, (_, i) => read(10 + i, 4096))));
    await until(() => server.stats.commands.REGION_READ >= 64, 'the requests to be handled');
    peer.close();
    await until(() => server.client === undefined, 'the server to notice');
    await expectServed();
  });
});
