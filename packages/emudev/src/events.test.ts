import { EventFd } from '@emu/native';
import { VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { counterDriver } from './counter.fixture.js';
import { EmuDevice } from './device.js';
import { quiet, tempDir, u32, until } from './test-env.fixture.js';

describe('EmuDevice events', () => {
  it('fire in the documented order over a whole client session', async () => {
    const dir = tempDir();
    const dev = new EmuDevice('emu_counter0', counterDriver, { path: dir.path('c.sock'), ...quiet });
    const log: string[] = [];
    dev.on('state', (s) => log.push(`state:${s.to}`));
    dev.on('ready', () => log.push('ready'));
    dev.on('mem-update', (m) =>
      log.push(`mem-update:${m.kind}:0x${m.region.iova.toString(16)}:${m.table.length}`),
    );
    dev.on('irq-update', (i) => log.push(`irq-update:${i.index}`));
    dev.on('queue-state', (q) => log.push(`queue-state:${q.id}:${q.enabled ? 'on' : 'off'}`));
    dev.on('reset', (r) => log.push(`reset:${r.cause}`));
    dev.on('disconnect', () => log.push('disconnect'));
    dev.on('destroyed', () => log.push('destroyed'));

    await dev.configure();
    await dev.start();
    const client = await VfioUserClient.connect(dev.path);
    await client.dmaMap({ address: 0x1000n, size: 0x1000n, memory: new Uint8Array(0x1000) });
    await client.dmaMap({ address: 0x8000n, size: 0x1000n, memory: new Uint8Array(0x1000) });
    const ev = EventFd.create();
    await client.setIrqEventfds('msix', 0, [ev]);
    await client.regionWrite(0, 0x14, u32(1));
    await client.reset();
    await client.dmaUnmap(0x8000n, 0x1000n);
    client.close();
    await until(() => log.includes('disconnect'), 'disconnect');
    await dev.close();
    ev.close();
    dir.cleanup();

    expect(log).to.deep.equal([
      'state:configured',
      'state:started',
      'ready',
      'mem-update:map:0x1000:1',
      'mem-update:map:0x8000:2',
      'irq-update:msix',
      'queue-state:0:on',
      'queue-state:0:off', // a reset disables the queues first...
      'reset:client', // ...then says it happened
      'mem-update:unmap:0x8000:1',
      'mem-update:unmap:0x1000:0', // the client left: its memory goes...
      'disconnect', // ...before the disconnect is told
      'state:stopped',
      'state:closed',
      'destroyed',
    ]);
  });

  it('lets a subscriber unsubscribe', async () => {
    const dir = tempDir();
    const dev = new EmuDevice('emu_counter1', counterDriver, { path: dir.path('c.sock'), ...quiet });
    let n = 0;
    const off = dev.subscribe('state', () => n++);
    await dev.configure();
    off();
    await dev.start();
    await dev.close();
    dir.cleanup();
    expect(n).to.equal(1);
  });
});
