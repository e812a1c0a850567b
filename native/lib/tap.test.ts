import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { expect } from 'chai';
import { isSystemError, type SystemError } from './errors.js';
import { TapDevice } from './tap.js';
import { fdFlags, isCloexec } from './test-helpers.js';

const O_NONBLOCK = 0o4000;
const isRoot = process.getuid?.() === 0;

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

function systemError(fn: () => unknown): SystemError {
  const error = thrown(fn);
  if (!isSystemError(error)) throw error;
  return error;
}

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const mac = (text: string): Buffer => Buffer.from(text.replaceAll(':', ''), 'hex');
const ipv4 = (text: string): Buffer => Buffer.from(text.split('.').map(Number));

/** An ARP request: who has `target`? tell `senderIp` (at `senderMac`). */
function arpRequest(senderMac: Buffer, senderIp: string, target: string): Buffer {
  return Buffer.concat([
    Buffer.from('ffffffffffff', 'hex'),
    senderMac,
    Buffer.from([0x08, 0x06]), // ARP
    Buffer.from([0, 1, 0x08, 0x00, 6, 4, 0, 1]), // Ethernet, IPv4, request
    senderMac,
    ipv4(senderIp),
    Buffer.alloc(6),
    ipv4(target),
  ]);
}

/** The sender MAC of an ARP reply to `asker` about `target`, else null. */
function arpReplyFrom(frame: Buffer, asker: Buffer, target: string): Buffer | null {
  if (frame.length < 42 || frame.readUInt16BE(12) !== 0x0806 || frame.readUInt16BE(20) !== 2) return null;
  if (!frame.subarray(0, 6).equals(asker) || !frame.subarray(28, 32).equals(ipv4(target))) return null;
  return frame.subarray(22, 28);
}

describe('TapDevice', () => {
  it('rejects invalid interface names before any syscall', () => {
    const cases: [unknown, string][] = [
      [42, 'name must be a string'],
      ['', 'must not be empty'],
      ['a-very-long-name', 'is 16 bytes; an interface name holds at most 15'],
      ['..', 'must not be ".."'],
      ['tap/0', 'must not contain'],
      ['tap 0', 'must not contain'],
      ['tap:0', 'must not contain'],
    ];
    for (const [name, message] of cases) {
      const error = thrown(() => TapDevice.open(name as string));
      expect(error, String(name)).to.be.instanceOf(TypeError);
      expect(error.message).to.include(message);
    }
  });

  describe('with root', () => {
    const open: TapDevice[] = [];
    function tap(name = 'emutest%d'): TapDevice {
      const device = TapDevice.open(name);
      open.push(device);
      return device;
    }

    before(function () {
      if (!isRoot) this.skip(); // TAP devices need CAP_NET_ADMIN; CI runs as root
      if (spawnSync('ip', ['-V']).error)
        throw new Error('the TAP tests need the ip command (Debian: apt-get install iproute2)');
    });
    afterEach(() => {
      for (const device of open.splice(0)) device.close();
    });

    it('creates a TAP from a name template: nonblocking, CLOEXEC, removed on close', () => {
      const device = tap();
      expect(device.name).to.match(/^emutest\d+$/);
      expect(isCloexec(device.fd)).to.equal(true);
      expect(fdFlags(device.fd) & O_NONBLOCK).to.equal(O_NONBLOCK);
      expect(existsSync(`/sys/class/net/${device.name}/tun_flags`)).to.equal(true);
      // IFF_TAP (0x2) | IFF_NO_PI (0x1000)
      expect(ip('-d', 'link', 'show', device.name)).to.include('tun type tap');
      expect(device.read()).to.equal(null);
      device.close();
      device.close();
      expect(device.closed).to.equal(true);
      expect(existsSync(`/sys/class/net/${device.name}`)).to.equal(false);
    });

    it('names the problem: busy, not a TAP, down, closed', () => {
      const device = tap();
      const busy = systemError(() => TapDevice.open(device.name));
      expect(busy.code).to.equal('EBUSY');
      expect(busy.syscall).to.equal('ioctl');
      expect(busy.message).to.equal(
        `ioctl TUNSETIFF ${device.name}: TAP ${device.name} is busy: another process (or another TapDevice) has it open`,
      );
      const notTap = systemError(() => TapDevice.open('lo'));
      expect(notTap.code).to.equal('EINVAL');
      expect(notTap.message).to.include('an interface of that name exists but is not a single-queue TAP');

      const down = systemError(() => device.write(Buffer.alloc(60)));
      expect(down.code).to.equal('EIO'); // the interface is not up
      expect(() => device.write('frame' as unknown as Buffer)).to.throw(
        TypeError,
        'frame must be a Uint8Array',
      );

      device.close();
      expect(systemError(() => device.read()).code).to.equal('EBADF');
      expect(systemError(() => device.write(Buffer.alloc(60))).code).to.equal('EBADF');
      expect(
        systemError(() =>
          device.watch(
            () => {},
            () => {},
          ),
        ).code,
      ).to.equal('EBADF');
    });

    it('explains EPERM: no CAP_NET_ADMIN', function () {
      const script = [
        "import { TapDevice } from './lib/tap.ts';",
        "try { TapDevice.open('emutest%d').close(); console.log('opened'); }",
        'catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }',
      ].join('\n');
      const child = spawnSync(
        'setpriv',
        [
          '--inh-caps=-net_admin',
          '--bounding-set=-net_admin',
          process.execPath,
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          script,
        ],
        { encoding: 'utf8' },
      );
      if (child.error) this.skip(); // no setpriv
      const result = JSON.parse(child.stdout);
      expect(result.code).to.equal('EPERM');
      expect(result.message).to.equal(
        'ioctl TUNSETIFF emutest%d: permission denied: opening TAP emutest%d needs root or CAP_NET_ADMIN, ' +
          'or a persistent device made for this user (ip tuntap add dev emutest%d mode tap user $USER)',
      );
    });

    it('explains ENOENT: no /dev/net/tun', function () {
      // A private mount namespace where /dev/net is an empty tmpfs.
      const script = [
        "import { TapDevice } from './lib/tap.ts';",
        "try { TapDevice.open('emutest%d').close(); console.log('opened'); }",
        'catch (e) { console.log(JSON.stringify({ code: e.code, path: e.path, message: e.message })); }',
      ].join('\n');
      const child = spawnSync(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs none /dev/net && exec "$0" "$@"',
          process.execPath,
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          script,
        ],
        { encoding: 'utf8' },
      );
      if (child.error || child.status !== 0) this.skip(); // no unshare, or mounts not allowed here
      const result = JSON.parse(child.stdout);
      expect(result).to.deep.equal({
        code: 'ENOENT',
        path: '/dev/net/tun',
        message:
          'open /dev/net/tun: /dev/net/tun does not exist: load the tun module (modprobe tun) or, in a container, ' +
          'pass the device through (--device /dev/net/tun)',
      });
    });

    describe('frames through a network namespace', () => {
      const ns = `emu-native-${process.pid}`;
      const ours = mac('02:00:00:00:00:01');
      const hostIp = '10.213.0.1';
      const guestIp = '10.213.0.2';
      let device: TapDevice;
      let peerMac: string;

      beforeEach(() => {
        ip('netns', 'add', ns);
        device = tap();
        peerMac = ip('-br', 'link', 'show', device.name).trim().split(/\s+/)[2];
        ip('link', 'set', device.name, 'netns', ns);
        ip('-n', ns, 'addr', 'add', `${hostIp}/24`, 'dev', device.name);
        ip('-n', ns, 'link', 'set', device.name, 'up');
      });
      afterEach(() => {
        device.close();
        spawnSync('ip', ['netns', 'del', ns]);
      });

      it('writes a frame the kernel answers, and watch() reads the answer', async () => {
        const reply = new Promise<Buffer>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no ARP reply within 5 s')), 5000);
          device.watch(
            (frame) => {
              const sender = arpReplyFrom(frame, ours, hostIp);
              if (sender === null) return; // IPv6 neighbour discovery and the like
              clearTimeout(timer);
              resolve(sender);
            },
            (error) => reject(error),
          );
        });
        device.write(arpRequest(ours, guestIp, hostIp));
        expect((await reply).toString('hex').match(/../g)!.join(':')).to.equal(peerMac);
        device.unwatch();
        expect(device.watching).to.equal(false);

        // read() without a watch: the frame waits in the kernel until asked for.
        device.write(arpRequest(ours, guestIp, hostIp));
        const deadline = Date.now() + 5000;
        let answer: Buffer | null = null;
        while (answer === null && Date.now() < deadline) {
          const frame = device.read();
          if (frame === null) await new Promise((resolve) => setTimeout(resolve, 10));
          else answer = arpReplyFrom(frame, ours, hostIp);
        }
        expect(answer, 'ARP reply through read()').to.not.equal(null);
        // Shorter than an Ethernet header: the kernel refuses it.
        expect(systemError(() => device.write(Buffer.alloc(13))).code).to.equal('EINVAL');
      });

      it('reports EBADFD through onError when the namespace (and so the interface) is deleted', async () => {
        const failure = new Promise<SystemError>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no error within 5 s')), 5000);
          device.watch(
            () => {},
            (error) => {
              clearTimeout(timer);
              resolve(error);
            },
          );
        });
        ip('netns', 'del', ns);
        const error = await failure;
        expect(error.code).to.equal('EBADFD');
        expect(error.message).to.equal(
          `read TAP ${device.name}: the interface is gone (deleted, or its network namespace was)`,
        );
        expect(device.watching).to.equal(false);
      });
    });
  });
});
