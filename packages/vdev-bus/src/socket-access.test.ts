import { chmodSync, chownSync, lchownSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { EmudevRegistry } from '@emu/emudev';
import { closeFd, memfdCreate, UnixSocket } from '@emu/native';
import { VfioUserClient } from '@emu/vfio-user';
import { expect } from 'chai';
import { z } from 'zod';
import { gidOf, uidOf } from './accounts.js';
import { VdevBus } from './bus.js';
import type { DevargsError } from './devargs.js';
import { testDriver } from './test-driver.fixture.js';
import { captureLogger, tempDir, until } from './test-env.fixture.js';

const root = process.getuid?.() === 0;

describe('socket access: who may reach a device', () => {
  let tmp: ReturnType<typeof tempDir>;
  let bus: VdevBus;
  let log: ReturnType<typeof captureLogger>;

  beforeEach(() => {
    tmp = tempDir();
    const registry = new EmudevRegistry();
    registry.registerDriver(testDriver);
    log = captureLogger();
    bus = new VdevBus(registry, { logger: log.logger });
  });
  afterEach(async () => {
    await bus.removeAll();
    tmp.cleanup();
  });

  const refusal = async (devargs: string) => {
    try {
      await bus.probe(devargs);
    } catch (err) {
      return err as DevargsError;
    }
    throw new Error(`${devargs} was accepted`);
  };

  it('serves mode 0600 by default, owned by whoever runs emu', async () => {
    const dev = await bus.probe(`emu_test0,path=${tmp.path('a.sock')}`);
    const st = statSync(dev.path);
    expect({ mode: st.mode & 0o777, uid: st.uid }).to.deep.equal({ mode: 0o600, uid: process.getuid!() });
  });

  it('takes mode=, owner= and group= (names or ids) for a QEMU running as another user', async function () {
    if (!root) this.skip(); // giving a file away (chown) needs root; CI runs as root
    const dev = await bus.probe(`emu_test0,path=${tmp.path('b.sock')},mode=0660,owner=nobody,group=65534`);
    const st = statSync(dev.path);
    expect({ mode: st.mode & 0o777, uid: st.uid, gid: st.gid }).to.deep.equal({
      mode: 0o660,
      uid: uidOf('nobody'),
      gid: 65534,
    });
  });

  it('serves only the users in allow_users=, logging the ones it refuses', async () => {
    const me = process.getuid!();
    const other = await bus.probe(`emu_test0,path=${tmp.path('c.sock')},allow_users=${me + 1}`);
    const peer = UnixSocket.connect(other.path);
    peer.on('error', () => {});
    let closed = false;
    peer.on('close', () => {
      closed = true;
    });
    await until(() => closed, 'the refused peer to be closed');
    expect(log.lines.some((l) => l.msg.includes('uid is not allowed'))).to.equal(true);
    const mine = await bus.probe(`emu_test1,path=${tmp.path('d.sock')},allow_users=nobody:${me}`);
    const client = await VfioUserClient.connect(mine.path);
    expect((await client.getDeviceInfo()).numRegions).to.equal(9);
    client.close();
  });

  it('refuses client memory not sealed against shrinking with sealed_memory=on', async () => {
    const dev = await bus.probe(`emu_test0,path=${tmp.path('s.sock')},sealed_memory=on`);
    const client = await VfioUserClient.connect(dev.path);
    const open = memfdCreate('emu-vdev-unsealed', 0x4000);
    const sealed = memfdCreate('emu-vdev-sealed', 0x4000, { seal: true });
    try {
      const err = (await client.dmaMap({ address: 0n, size: 0x4000n, fd: open }).catch((e) => e)) as Error;
      expect(err.message).to.contain('EPERM');
      await client.dmaMap({ address: 0x10000n, size: 0x4000n, fd: sealed });
      expect(dev.memTable().map((r) => r.iova)).to.deep.equal([0x10000n]);
    } finally {
      client.close();
      closeFd(open);
      closeFd(sealed);
    }
  });

  it('says what is wrong with a bad mode, an unknown user or group, and builds nothing', async () => {
    const cases: Array<[string, string]> = [
      ['sealed_memory=maybe', 'sealed_memory=maybe: expected a boolean'],
      ['mode=999', 'mode=999: expected octal permission bits, e.g. 0600 or 660'],
      ['mode=rw', 'mode=rw: expected octal permission bits'],
      [
        'owner=no-such-user-here',
        'owner=no-such-user-here: no user named "no-such-user-here" in /etc/passwd',
      ],
      ['group=no-such-group', 'group=no-such-group: no group named "no-such-group" in /etc/group'],
      ['allow_users=:', 'allow_users=:: expected users (names or uids), colon-separated'],
    ];
    for (const [args, message] of cases) {
      const err = await refusal(`emu_test0,path=${tmp.path('e.sock')},${args}`);
      expect(err.code, args).to.equal('EVALUE');
      expect(err.message).to.contain(`emu_test0: ${message}`);
    }
    expect(bus.devices()).to.deep.equal([]);
  });

  it('refuses a socket directory others could swap the socket in, saying how to fix it', async () => {
    mkdirSync(tmp.path('open'));
    chmodSync(tmp.path('open'), 0o777);
    const err = await refusal(`emu_test0,path=${tmp.path('open/s.sock')}`);
    expect(err.code).to.equal('EPATH');
    expect(err.message).to.contain(
      `directory ${tmp.path('open')} is writable by other users (mode 0777) and not sticky: any of them could replace the socket and receive guest memory; use a directory only you can write (chmod go-w ${tmp.path('open')}) or set the sticky bit (chmod +t ${tmp.path('open')})`,
    );
    mkdirSync(tmp.path('group'));
    chmodSync(tmp.path('group'), 0o775);
    expect((await refusal(`emu_test0,path=${tmp.path('group/s.sock')}`)).message).to.contain('mode 0775');
    // Sticky, as /tmp: others may not rename or remove our socket there.
    mkdirSync(tmp.path('sticky'));
    chmodSync(tmp.path('sticky'), 0o1777);
    await bus.probe(`emu_test0,path=${tmp.path('sticky/s.sock')}`);
  });

  it('refuses a socket directory inside one others could swap, or behind a link another user owns', async function () {
    mkdirSync(tmp.path('open2'));
    chmodSync(tmp.path('open2'), 0o777);
    mkdirSync(tmp.path('open2/mine'), { mode: 0o700 });
    // Safe itself, but anyone can rename open2/mine away and put their own directory there.
    const err = await refusal(`emu_test0,path=${tmp.path('open2/mine/s.sock')}`);
    expect(err.message).to.contain(`directory ${tmp.path('open2')} is writable by other users (mode 0777)`);
    if (!root) this.skip(); // a link of someone else's needs root to make; CI runs as root
    mkdirSync(tmp.path('target'), { mode: 0o700 });
    symlinkSync(tmp.path('target'), tmp.path('link'));
    lchownSync(tmp.path('link'), 65534, 65534);
    const linked = await refusal(`emu_test0,path=${tmp.path('link/s.sock')}`);
    expect(linked.message).to.contain(
      `${tmp.path('link')} is a symbolic link of uid 65534, who could point it elsewhere`,
    );
    // A link of our own to a safe directory is fine.
    symlinkSync(tmp.path('target'), tmp.path('ours'));
    await bus.probe(`emu_test0,path=${tmp.path('ours/s.sock')}`);
  });

  it('refuses a socket directory that belongs to another user (its owner can replace anything in it)', async function () {
    if (!root) this.skip(); // making a directory someone else's needs root; CI runs as root
    mkdirSync(tmp.path('theirs'));
    chownSync(tmp.path('theirs'), 65534, 65534);
    const err = await refusal(`emu_test0,path=${tmp.path('theirs/s.sock')}`);
    expect(err.message).to.contain(
      `directory ${tmp.path('theirs')} belongs to uid 65534, who could replace the socket: use a directory you own`,
    );
  });

  it('refuses a driver that declares a socket key for itself, naming it', async () => {
    const registry = new EmudevRegistry();
    registry.registerDriver({ ...testDriver, name: 'emu_moody', config: z.object({ mode: z.string() }) });
    const moody = new VdevBus(registry, { logger: log.logger });
    const err = (await moody.probe(`emu_moody0,path=${tmp.path('m.sock')}`).catch((e) => e)) as DevargsError;
    expect(err.message).to.equal(
      'emu_moody0: driver emu_moody declares the key "mode", which the bus keeps for the socket',
    );
  });

  it('resolves user and group names from passwd and group files, and numeric ids as they are', () => {
    writeFileSync(
      tmp.path('passwd'),
      'root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n',
    );
    writeFileSync(tmp.path('group'), 'root:x:0:\nkvm:x:108:libvirt-qemu\n');
    const files = { passwd: tmp.path('passwd'), group: tmp.path('group') };
    expect(uidOf('libvirt-qemu', files)).to.equal(64055);
    expect(gidOf('kvm', files)).to.equal(108);
    expect(uidOf('1234', files)).to.equal(1234);
    expect(() => uidOf('kvm', files)).to.throw(`no user named "kvm" in ${files.passwd}`);
  });
});
