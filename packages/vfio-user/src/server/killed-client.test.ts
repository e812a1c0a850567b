import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { VfioUserClient } from '../client/client.js';
import { VfioUserServer } from './server.js';
import { makeTestDevice, type TestDevice } from './test-device.fixture.js';
import { mappingsOf, openFdCount, silentLoggerFixture, tempDir, until } from './test-env.fixture.js';

describe('VfioUserServer when its client process is killed', () => {
  let dir: ReturnType<typeof tempDir>;
  let dev: TestDevice;
  let server: VfioUserServer;

  beforeEach(() => {
    dir = tempDir();
    dev = makeTestDevice();
    server = new VfioUserServer(dev.spec, {
      path: dir.path('dev.sock'),
      logger: silentLoggerFixture,
    }).listen();
  });

  afterEach(() => {
    server.close();
    dev.dispose();
    dir.cleanup();
  });

  it('releases every fd and mapping, keeps the device state, and serves the next client', async () => {
    const baseline = openFdCount();
    const script = fileURLToPath(new URL('./client-process.fixture.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, server.path], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      child.on('exit', (code) => reject(new Error(`client exited early with ${code}`)));
    });
    expect(server.dma.regions).to.have.length(1);
    expect(mappingsOf('emu-test-killed')).to.equal(1);
    expect(server.irqs.enabled(2, 3)).to.equal(true);
    expect(openFdCount()).to.be.above(baseline);
    await server.dmaWrite(0x10n, Buffer.from('state'));
    dev.bar0.write('before', 0x80);

    child.kill('SIGKILL');
    await until(() => server.client === undefined && server.dma.regions.length === 0, 'the server to notice');
    expect(mappingsOf('emu-test-killed')).to.equal(0);
    expect(server.irqs.enabled(2, 3)).to.equal(false);
    // No DMA until the next guest enables bus mastering again.
    expect(dev.spec.config.busMasterEnabled).to.equal(false);
    expect(server.dma.dmaEnabled).to.equal(false);
    await until(() => openFdCount() === baseline, 'every fd to be released');

    const next = await VfioUserClient.connect(server.path);
    await next.regionWrite(0, 0x40, Buffer.from('still here'));
    expect((await next.regionRead(0, 0x40, 10)).toString()).to.equal('still here');
    expect((await next.regionRead(0, 0x80, 6)).toString()).to.equal('before');
    next.close();
  });
});
