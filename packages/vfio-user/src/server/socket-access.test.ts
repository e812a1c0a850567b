import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnixSocket } from '@emu/native';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { VfioUserServer } from './server.js';
import { makeTestDevice, type TestDevice } from './test-device.fixture.js';
import { captureLogger, tempDir, until } from './test-env.fixture.js';

/** Who may reach the socket: its mode and owner, and the peers' uids. */
describe('VfioUserServer socket access', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: TestDevice;
  let server: VfioUserServer | undefined;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(() => {
    dir = tempDir();
    dev = makeTestDevice();
    log = captureLogger();
  });

  afterEach(() => {
    server?.close();
    server = undefined;
    dev.dispose();
    dir.cleanup();
  });

  it('creates the socket mode 0600 by default, or with the mode and owner asked for', function () {
    server = new VfioUserServer(dev.spec, { path: dir.path('a.sock'), logger: log.logger }).listen();
    expect(statSync(server.path).mode & 0o777).to.equal(0o600);
    server.close();
    const uid = process.getuid!();
    const gid = process.getgid!();
    server = new VfioUserServer(dev.spec, {
      path: dir.path('b.sock'),
      logger: log.logger,
      socket: { mode: 0o660, uid, gid },
    }).listen();
    const st = statSync(server.path);
    expect({ mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).to.deep.equal({ mode: 0o660, uid, gid });
    server.close();
    if (uid !== 0) this.skip(); // giving the socket away (chown) needs root; CI runs as root
    server = new VfioUserServer(dev.spec, {
      path: dir.path('c.sock'),
      logger: log.logger,
      socket: { uid: 65534, gid: 65534 },
    }).listen();
    expect(statSync(server.path)).to.include({ uid: 65534, gid: 65534 });
  });

  it('says why the socket cannot be given to another user, and leaves none behind', async () => {
    // Giving a file away takes root. Run as root (CI), the check runs in a child process as nobody.
    const script = [
      "import { VfioUserServer } from './src/server/server.ts';",
      "import { makeTestDevice } from './src/server/test-device.fixture.ts';",
      'const dev = makeTestDevice();',
      'try {',
      '  new VfioUserServer(dev.spec, { path: process.argv[1], socket: { uid: 0, gid: 0 } }).listen();',
      "  console.log('listening');",
      '} catch (e) {',
      "  console.log(e.code + ': ' + e.message);",
      '}',
      'dev.dispose();',
    ].join('\n');
    const path = dir.path('g.sock');
    const asRoot = process.getuid!() === 0;
    if (asRoot) chmodSync(dirname(path), 0o777);
    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, path],
      {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      },
    );
    expect(child.stdout.trim() + child.stderr.trim()).to.equal(
      `EPERM: cannot give socket ${path} to uid 0 gid 0: only root may give a file away (chown)`,
    );
    expect(existsSync(path), 'the socket is gone').to.equal(false);
  });

  it('refuses peers whose uid is not allowed, logs them, and serves allowed ones', async () => {
    const me = process.getuid!();
    server = new VfioUserServer(dev.spec, {
      path: dir.path('e.sock'),
      logger: log.logger,
      socket: { allowedUids: [me + 1] },
    }).listen();
    const refused = UnixSocket.connect(server.path);
    let closed = false;
    refused.on('close', () => {
      closed = true;
    });
    refused.on('error', () => {});
    await until(() => closed, 'the refused peer to be closed');
    expect(server.stats.refusedPeers).to.equal(1);
    const line = log.lines.find((l) => l.msg.includes('uid is not allowed'));
    expect(line?.obj).to.deep.include({ uid: me, pid: process.pid, allowed: [me + 1] });
    server.close();

    server = new VfioUserServer(dev.spec, {
      path: dir.path('f.sock'),
      logger: log.logger,
      socket: { allowedUids: [me] },
    }).listen();
    const client = await VfioUserClient.connect(server.path);
    expect((await client.getDeviceInfo()).numRegions).to.equal(9);
    client.close();
  });
});
