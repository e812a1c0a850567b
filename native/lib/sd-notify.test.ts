import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { notifySystemd } from './index.js';

/** systemd's side: scripts/notify-receiver.py prints each datagram it gets as a JSON line. */
function receiver(address: string) {
  const child = spawn(
    'python3',
    [fileURLToPath(new URL('../scripts/notify-receiver.py', import.meta.url)), address],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value as string;
  return { child, ready: next().then(() => {}), next: async () => JSON.parse(await next()) as string };
}

describe('notifySystemd (sd_notify)', () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'emu-notify-'));
  });
  afterEach(() => {
    for (const c of children.splice(0)) c.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the state as one datagram to $NOTIFY_SOCKET, a path or an abstract name', async () => {
    for (const address of [join(dir, 'notify'), `@emu-notify-test-${process.pid}`]) {
      const r = receiver(address);
      children.push(r.child);
      await r.ready;
      expect(notifySystemd('READY=1\nSTATUS=serving 2 devices', { NOTIFY_SOCKET: address })).to.equal(true);
      expect(await r.next()).to.equal('READY=1\nSTATUS=serving 2 devices');
      expect(notifySystemd('STOPPING=1', { NOTIFY_SOCKET: address })).to.equal(true);
      expect(await r.next()).to.equal('STOPPING=1');
    }
  });

  it('does nothing without $NOTIFY_SOCKET, and says what is wrong otherwise', () => {
    expect(notifySystemd('READY=1', {})).to.equal(false);
    expect(notifySystemd('READY=1', { NOTIFY_SOCKET: '' })).to.equal(false);
    expect(() => notifySystemd('ready', { NOTIFY_SOCKET: '/x' })).to.throw(
      TypeError,
      'state must be VAR=value lines',
    );
    expect(() => notifySystemd('READY=1', { NOTIFY_SOCKET: 'relative' })).to.throw(
      TypeError,
      'NOTIFY_SOCKET must be an absolute path or @abstract name',
    );
    expect(() => notifySystemd('READY=1', { NOTIFY_SOCKET: join(dir, 'nobody') }))
      .to.throw(/^sendto .*nobody: no such file or directory$/)
      .with.property('code', 'ENOENT');
    expect(() => notifySystemd('READY=1', { NOTIFY_SOCKET: `/${'x'.repeat(200)}` })).to.throw(
      /name too long/,
    );
  });
});
